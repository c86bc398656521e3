//! KIP-932 share groups through ShareGroupHeartbeat: joining, epochs and fencing,
//! leaving and session expiry, every member of a one-partition topic getting the
//! partition, ListGroups and ShareGroupDescribe, and the records replaying to the same
//! group (share-partition state included).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    GroupId, ListGroupsRequest, ShareGroupDescribeRequest, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

use crate::config::GroupConfig;
use crate::consumer::testing::Topics;
use crate::coordinator::GroupCoordinator;
use crate::records::OffsetsRecord;
use crate::share::{StoredBatch, StoredPartitionState};

const GROUP: &str = "sg";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn request(member: &str, epoch: i32, topics: Option<&[&str]>) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topics.map(|t| t.iter().map(|n| TopicName(s(n))).collect()))
}

struct Harness {
    c: GroupCoordinator,
    topics: Topics,
    log: Vec<OffsetsRecord>,
    now: i64,
}

impl Harness {
    fn new() -> Self {
        Harness {
            c: GroupCoordinator::with_seed(
                GroupConfig {
                    share_max_size: 3,
                    ..GroupConfig::default()
                },
                7,
            ),
            topics: Topics::with(&[("t", 1), ("u", 4)]),
            log: Vec::new(),
            now: 1_000,
        }
    }

    fn beat(&mut self, req: ShareGroupHeartbeatRequest) -> ShareGroupHeartbeatResponse {
        let (r, records) =
            self.c
                .share_group_heartbeat(&req, "client", "/127.0.0.1", &self.topics, self.now);
        let mut buf = bytes::BytesMut::new();
        r.encode(&mut buf, 1).expect("encodes at v1");
        self.log.extend(records);
        r
    }

    fn partitions(r: &ShareGroupHeartbeatResponse) -> Vec<(Uuid, Vec<i32>)> {
        r.assignment
            .as_ref()
            .map(|a| {
                a.topic_partitions
                    .iter()
                    .map(|tp| (tp.topic_id, tp.partitions.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[test]
fn members_join_share_one_partition_and_are_fenced_on_stale_epochs() {
    let mut h = Harness::new();
    let (t, _) = h.topics.0["t"];
    let a = h.beat(request("a", 0, Some(&["t"])));
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 5_000);
    assert_eq!(Harness::partitions(&a), vec![(t, vec![0])]);
    let b = h.beat(request("b", 0, Some(&["t"])));
    assert_eq!(b.member_epoch, 2);
    assert_eq!(
        Harness::partitions(&b),
        vec![(t, vec![0])],
        "shared, not moved"
    );
    // a catches up to epoch 2 and keeps the partition.
    let a2 = h.beat(request("a", 1, None));
    assert_eq!(a2.member_epoch, 2);
    assert_eq!(Harness::partitions(&a2), vec![(t, vec![0])]);
    // Nothing changed: no assignment in the answer.
    let a3 = h.beat(request("a", 2, None));
    assert!(a3.assignment.is_none());
    let stale = h.beat(request("a", 1, None));
    assert_eq!(stale.error_code, ResponseError::FencedMemberEpoch.code());
    let unknown = h.beat(request("zz", 4, None));
    assert_eq!(unknown.error_code, ResponseError::UnknownMemberId.code());
    let bad = h.beat(request("c", 0, None));
    assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
    let no_id = h.beat(request("", 0, Some(&["t"])));
    assert_eq!(no_id.error_code, ResponseError::InvalidRequest.code());
    h.beat(request("c", 0, Some(&["t"])));
    let full = h.beat(request("d", 0, Some(&["t"])));
    assert_eq!(full.error_code, ResponseError::GroupMaxSizeReached.code());
}

#[test]
fn leaving_and_session_expiry_remove_members_and_are_reported() {
    let mut h = Harness::new();
    h.beat(request("a", 0, Some(&["u"])));
    h.beat(request("b", 0, Some(&["u"])));
    let left = h.beat(request("a", -1, None));
    assert_eq!(left.member_epoch, -1);
    assert_eq!(
        h.c.take_departed_share_members(),
        vec![(GROUP.to_owned(), "a".to_owned())]
    );
    // b's session runs out.
    h.now += 45_001;
    let effects = h.c.tick(h.now, &h.topics);
    h.log.extend(effects.records);
    assert_eq!(
        h.c.take_departed_share_members(),
        vec![(GROUP.to_owned(), "b".to_owned())]
    );
    let again = h.beat(request("b", 3, None));
    assert_eq!(again.error_code, ResponseError::UnknownMemberId.code());
    // The group stays, Empty, in ListGroups with the share type.
    let listed = h.c.list_groups(
        5,
        &ListGroupsRequest::default().with_types_filter(vec![s("share")]),
    );
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "Empty");
    assert_eq!(listed.groups[0].group_type.as_str(), "share");
    let classic = h.c.list_groups(
        5,
        &ListGroupsRequest::default().with_types_filter(vec![s("classic")]),
    );
    assert!(classic.groups.is_empty());
}

#[test]
fn every_partition_of_a_wider_topic_is_assigned() {
    let mut h = Harness::new();
    h.beat(request("a", 0, Some(&["u"])));
    h.beat(request("b", 0, Some(&["u"])));
    let a = h.beat(request("a", 1, None));
    let b = h.beat(request("b", 2, None));
    let mut all: Vec<i32> = Harness::partitions(&a)
        .into_iter()
        .chain(Harness::partitions(&b))
        .flat_map(|(_, p)| p)
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, vec![0, 1, 2, 3]);
}

#[test]
fn describe_and_replay_rebuild_the_group_and_its_partition_state() {
    let mut h = Harness::new();
    h.beat(request("a", 0, Some(&["t"])));
    h.beat(request("b", 0, Some(&["t", "u"])));
    let (t, _) = h.topics.0["t"];
    let state = StoredPartitionState {
        start_offset: 5,
        batches: vec![StoredBatch {
            first_offset: 7,
            last_offset: 9,
            state: 2,
            delivery_count: 1,
        }],
    };
    let record =
        h.c.write_share_partition_state(GROUP, t, 0, state.clone())
            .expect("a share group");
    h.log.push(record);
    assert!(h
        .c
        .write_share_partition_state("nope", t, 0, state.clone())
        .is_none());

    let req = ShareGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s(GROUP)), GroupId(s("nope"))]);
    let described = h.c.share_group_describe(&req, &h.topics);
    let mut buf = bytes::BytesMut::new();
    described.encode(&mut buf, 1).expect("encodes");
    let g = &described.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.assignor_name.as_str(), "simple");
    assert_eq!(g.members.len(), 2);
    assert_eq!(
        described.groups[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );

    let mut replayed = GroupCoordinator::with_seed(GroupConfig::default(), 1);
    for r in &h.log {
        replayed.replay(r).expect("replays");
    }
    assert_eq!(replayed.share_group_describe(&req, &h.topics), described);
    assert_eq!(replayed.share_partition_state(GROUP, &t, 0), Some(state));
    // The snapshot compaction writes replays to the same state too.
    let mut from_snapshot = GroupCoordinator::with_seed(GroupConfig::default(), 2);
    for r in &replayed.snapshot(|_| true) {
        from_snapshot.replay(r).expect("replays");
    }
    assert_eq!(
        from_snapshot.share_group_describe(&req, &h.topics),
        described
    );
    // A replayed member keeps its epoch: its next heartbeat is accepted.
    let b = {
        let (r, _) = replayed.share_group_heartbeat(
            &request("b", 2, None),
            "client",
            "/127.0.0.1",
            &h.topics,
            h.now,
        );
        r
    };
    assert_eq!(b.error_code, 0, "{:?}", b.error_message);
}

#[test]
fn a_share_group_is_not_a_consumer_group_and_deletion_removes_it() {
    let mut h = Harness::new();
    h.beat(request("a", 0, Some(&["t"])));
    let (cg, _) = h.c.consumer_group_heartbeat(
        1,
        &kafka_protocol::messages::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_member_id(s("x"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(1_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(vec![])),
        "client",
        "/127.0.0.1",
        &h.topics,
        h.now,
    );
    assert_eq!(cg.error_code, ResponseError::GroupIdNotFound.code());
    let del = kafka_protocol::messages::DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(s(GROUP))]);
    let (resp, _) = h.c.delete_groups(2, &del);
    assert_eq!(
        resp.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
    h.beat(request("a", -1, None));
    let (resp, records) = h.c.delete_groups(2, &del);
    assert_eq!(resp.results[0].error_code, 0);
    h.log.extend(records);
    let mut replayed = GroupCoordinator::with_seed(GroupConfig::default(), 1);
    for r in &h.log {
        replayed.replay(r).expect("replays");
    }
    assert!(replayed.group_state(GROUP).is_none(), "deleted for good");
}

#[test]
fn share_group_offsets_describe_alter_and_delete() {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    use kafka_protocol::messages::{AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest};

    let mut h = Harness::new();
    h.beat(request("a", 0, Some(&["t"])));
    let (t, _) = h.topics.0["t"];
    let state = StoredPartitionState {
        start_offset: 5,
        batches: vec![StoredBatch {
            first_offset: 7,
            last_offset: 9,
            state: 2,
            delivery_count: 1,
        }],
    };
    h.log
        .extend(h.c.write_share_partition_state(GROUP, t, 0, state));
    let end = |_: &str, _: i32| Some((20, 3));
    let all = DescribeShareGroupOffsetsRequestGroup::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(None);
    let d = h.c.describe_share_group_offsets(&all, &h.topics, &end);
    let mut buf = bytes::BytesMut::new();
    d.encode(&mut buf, 1).expect("encodes at v1");
    assert_eq!(d.error_code, 0);
    assert_eq!(d.topics.len(), 1);
    assert_eq!(d.topics[0].topic_id, t);
    let p = &d.topics[0].partitions[0];
    // 20 - 5, less the three acknowledged records 7..9.
    assert_eq!((p.start_offset, p.leader_epoch, p.lag), (5, 3, 12));

    let named = |topic: &str, partitions: Vec<i32>| {
        DescribeShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(s(topic)))
            .with_partitions(partitions)
    };
    let some = all.clone().with_topics(Some(vec![
        named("t", vec![0, 5]),
        named("u", vec![1]),
        named("gone", vec![0]),
    ]));
    let d = h.c.describe_share_group_offsets(&some, &h.topics, &end);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let codes: Vec<(i64, i16)> = d
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.start_offset, p.error_code)))
        .collect();
    assert_eq!(codes, vec![(5, 0), (-1, unknown), (-1, 0), (-1, unknown)]);
    let nope = all.clone().with_group_id(GroupId(s("nope")));
    assert_eq!(
        h.c.describe_share_group_offsets(&nope, &h.topics, &end)
            .error_code,
        ResponseError::GroupIdNotFound.code()
    );

    let alter = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(vec![
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(s("t")))
                .with_partitions(vec![AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(0)
                    .with_start_offset(2)]),
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(s("u")))
                .with_partitions(vec![AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(9)
                    .with_start_offset(0)]),
        ]);
    let (r, records, changed) = h.c.alter_share_group_offsets(&alter, &h.topics);
    assert_eq!(r.error_code, ResponseError::NonEmptyGroup.code());
    assert!(records.is_empty() && changed.is_empty());
    h.beat(request("a", -1, None));
    let (r, records, changed) = h.c.alter_share_group_offsets(&alter, &h.topics);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(r.responses[1].partitions[0].error_code, unknown);
    assert_eq!(changed, vec![(t, 0)]);
    h.log.extend(records);
    let fresh = StoredPartitionState {
        start_offset: 2,
        batches: vec![],
    };
    assert_eq!(h.c.share_partition_state(GROUP, &t, 0), Some(fresh));

    let delete = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(vec![
            DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(s("t"))),
            DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(s("gone"))),
        ]);
    let (r, records, changed) = h.c.delete_share_group_offsets(&delete, &h.topics);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[1].error_code, unknown);
    assert_eq!(changed, vec![(t, 0)]);
    h.log.extend(records);
    assert_eq!(h.c.share_partition_state(GROUP, &t, 0), None);
    let mut replayed = GroupCoordinator::with_seed(GroupConfig::default(), 1);
    for r in &h.log {
        replayed.replay(r).expect("replays");
    }
    assert_eq!(replayed.share_partition_state(GROUP, &t, 0), None);
    let d = replayed.describe_share_group_offsets(&all, &h.topics, &end);
    assert!(d.topics.is_empty());
}

/// KIP-1101 for share groups too: the racks of a subscribed partition's replicas are
/// part of the metadata hash, so their change bumps the group epoch.
#[test]
fn replica_rack_changes_bump_the_share_group_epoch() {
    let mut h = Harness::new();
    let a = h.beat(request("a", 0, Some(&["t"])));
    assert_eq!(a.member_epoch, 1);
    assert_eq!(h.beat(request("a", 1, None)).member_epoch, 1);
    h.topics.set_racks("t", 0, &["r1"]);
    assert_eq!(h.beat(request("a", 1, None)).member_epoch, 2);
    h.topics.set_racks("t", 0, &["r1"]);
    assert_eq!(h.beat(request("a", 2, None)).member_epoch, 2, "same racks");
}
