use crate::consumer::testing::Topics;
use kafka_protocol::error::ResponseError::*;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse,
};

use super::*;
use crate::GroupState;

/// (topic, partition, offset, leader epoch, metadata) as OffsetFetch reports them.
type Row = (String, i32, i64, i32, String);

fn fetch(h: &Harness, version: i16, group: &str, topics: Option<&[(&str, &[i32])]>) -> Vec<Row> {
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        let mut wanted = OffsetFetchRequestGroup::default();
        wanted.group_id = s(group).into();
        wanted.topics = topics.map(|topics| {
            topics
                .iter()
                .map(|(name, partitions)| {
                    let mut t = OffsetFetchRequestTopics::default();
                    t.name = s(name).into();
                    t.partition_indexes = partitions.to_vec();
                    t
                })
                .collect()
        });
        request.groups.push(wanted);
    } else {
        request.group_id = s(group).into();
        request.topics = topics.map(|topics| {
            topics
                .iter()
                .map(|(name, partitions)| {
                    let mut t = OffsetFetchRequestTopic::default();
                    t.name = s(name).into();
                    t.partition_indexes = partitions.to_vec();
                    t
                })
                .collect()
        });
    }
    let response = h.coord.offset_fetch(version, &request);
    assert_encodes(&response, version);
    rows(version, &response)
}

fn rows(version: i16, response: &OffsetFetchResponse) -> Vec<Row> {
    if version >= 8 {
        assert_eq!(response.groups.len(), 1);
        let group = &response.groups[0];
        assert_eq!(group.error_code, NONE);
        group
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    assert_eq!(p.error_code, NONE);
                    (
                        t.name.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata.as_deref().unwrap_or("<null>").to_owned(),
                    )
                })
            })
            .collect()
    } else {
        assert_eq!(response.error_code, NONE);
        response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    assert_eq!(p.error_code, NONE);
                    (
                        t.name.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata.as_deref().unwrap_or("<null>").to_owned(),
                    )
                })
            })
            .collect()
    }
}

fn row(topic: &str, partition: i32, offset: i64, metadata: &str) -> Row {
    (topic.into(), partition, offset, -1, metadata.into())
}

fn errors(response: &OffsetCommitResponse) -> Vec<i16> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

fn delete_offsets(h: &mut Harness, group: &str, topics: &[(&str, &[i32])]) -> OffsetDeleteResponse {
    let mut request = OffsetDeleteRequest::default();
    request.group_id = s(group).into();
    for (name, partitions) in topics {
        let mut t = OffsetDeleteRequestTopic::default();
        t.name = s(name).into();
        for p in *partitions {
            let mut partition = OffsetDeleteRequestPartition::default();
            partition.partition_index = *p;
            t.partitions.push(partition);
        }
        request.topics.push(t);
    }
    let (response, records) = h.coord.offset_delete(0, &request);
    assert_encodes(&response, 0);
    h.log.extend(records);
    response
}

#[test]
fn offsets_round_trip_with_metadata_at_every_version() {
    for commit_version in 2..=9 {
        let mut h = Harness::new();
        let response = h.commit(
            "g",
            "",
            -1,
            &[
                ("t", 0, 10, Some("checkpoint-1")),
                ("t", 1, 20, None),
                ("u", 0, 5, Some("")),
            ],
            commit_version,
        );
        assert_eq!(errors(&response), [NONE; 3]);
        assert_eq!(h.log.len(), 3, "one record per partition");
        assert_eq!(h.coord.group_state("g"), Some(GroupState::Empty));
        for fetch_version in 1..=9 {
            let asked = fetch(
                &h,
                fetch_version,
                "g",
                Some(&[("t", &[0, 1, 2]), ("v", &[0])]),
            );
            assert_eq!(
                asked,
                [
                    row("t", 0, 10, "checkpoint-1"),
                    row("t", 1, 20, ""),
                    row("t", 2, -1, ""),
                    row("v", 0, -1, ""),
                ],
                "commit v{commit_version} fetch v{fetch_version}"
            );
            if fetch_version >= 2 {
                let all = fetch(&h, fetch_version, "g", None);
                assert_eq!(
                    all,
                    [
                        row("t", 0, 10, "checkpoint-1"),
                        row("t", 1, 20, ""),
                        row("u", 0, 5, "")
                    ]
                );
                assert!(fetch(&h, fetch_version, "unknown", None).is_empty());
            }
            assert_eq!(
                fetch(&h, fetch_version, "unknown", Some(&[("t", &[0])])),
                [row("t", 0, -1, "")]
            );
        }
    }
}

#[test]
fn offset_fetch_v8_answers_several_groups() {
    let mut h = Harness::new();
    h.commit("a", "", -1, &[("t", 0, 1, None)], 8);
    h.commit("b", "", -1, &[("t", 0, 2, None)], 8);
    let mut request = OffsetFetchRequest::default();
    for group in ["a", "b", "c"] {
        let mut wanted = OffsetFetchRequestGroup::default();
        wanted.group_id = s(group).into();
        wanted.topics = None;
        request.groups.push(wanted);
    }
    let response = h.coord.offset_fetch(8, &request);
    assert_encodes(&response, 8);
    let summary: Vec<(String, Vec<i64>)> = response
        .groups
        .iter()
        .map(|g| {
            let offsets = g
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
                .collect();
            (g.group_id.to_string(), offsets)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a".into(), vec![1]),
            ("b".into(), vec![2]),
            ("c".into(), vec![])
        ]
    );
}

#[test]
fn the_leader_epoch_is_kept() {
    let mut h = Harness::new();
    let mut request = OffsetCommitRequest::default();
    request.group_id = s("g").into();
    let mut topic = OffsetCommitRequestTopic::default();
    topic.name = s("t").into();
    let mut partition = OffsetCommitRequestPartition::default();
    partition.committed_offset = 7;
    partition.committed_leader_epoch = 3;
    topic.partitions.push(partition);
    request.topics.push(topic);
    let (response, _) = h
        .coord
        .offset_commit(8, &request, &Topics::default(), h.now);
    assert_eq!(errors(&response), [NONE]);
    assert_eq!(
        fetch(&h, 8, "g", None),
        [("t".into(), 0, 7, 3, String::new())]
    );
    // Before v5 the field does not exist.
    assert_eq!(fetch(&h, 4, "g", None), [row("t", 0, 7, "")]);
}

#[test]
fn offset_commit_validation() {
    struct Case {
        name: &'static str,
        group: &'static str,
        who: fn(&[Joined]) -> (String, i32),
        version: i16,
        error: i16,
    }
    fn member(m: &[Joined]) -> (String, i32) {
        (m[0].member_id.clone(), m[0].generation)
    }
    let cases = [
        Case {
            name: "a member of the current generation",
            group: "g",
            who: member,
            version: 8,
            error: NONE,
        },
        Case {
            name: "no group management while the group has members",
            group: "g",
            who: |_| (String::new(), -1),
            version: 8,
            error: code(UnknownMemberId),
        },
        Case {
            name: "an unknown member",
            group: "g",
            who: |m| ("nobody".into(), m[0].generation),
            version: 8,
            error: code(UnknownMemberId),
        },
        Case {
            name: "an old generation",
            group: "g",
            who: |m| (m[0].member_id.clone(), m[0].generation - 1),
            version: 8,
            error: code(IllegalGeneration),
        },
        Case {
            name: "a member id with generation -1",
            group: "g",
            who: |m| (m[0].member_id.clone(), -1),
            version: 8,
            error: code(IllegalGeneration),
        },
        Case {
            name: "a generation for a group that does not exist (v8)",
            group: "missing",
            who: |_| ("x".into(), 1),
            version: 8,
            error: code(IllegalGeneration),
        },
        Case {
            name: "a generation for a group that does not exist (v9)",
            group: "missing",
            who: |_| ("x".into(), 1),
            version: 9,
            error: code(GroupIdNotFound),
        },
        Case {
            name: "a new group without group management",
            group: "simple",
            who: |_| (String::new(), -1),
            version: 9,
            error: NONE,
        },
    ];
    for case in cases {
        let mut h = Harness::new();
        let members = h.stable_group("g", &["a"]);
        let (member_id, generation) = (case.who)(&members);
        let response = h.commit(
            case.group,
            &member_id,
            generation,
            &[("t", 0, 1, None)],
            case.version,
        );
        assert_eq!(errors(&response), [case.error], "{}", case.name);
        let stored = fetch(&h, 8, case.group, None);
        assert_eq!(
            stored.len(),
            usize::from(case.error == NONE),
            "{}",
            case.name
        );
    }
}

#[test]
fn commits_during_a_rebalance() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let (a, b) = (&members[0], &members[1]);
    // A new member: PreparingRebalance. Members of the current generation may still
    // commit (cooperative rebalancing relies on it) and keep heartbeating.
    h.join_member(&JoinSpec::new("g", "c"));
    let response = h.commit("g", &a.member_id, a.generation, &[("t", 0, 1, None)], 8);
    assert_eq!(errors(&response), [NONE]);
    assert_eq!(h.heartbeat(b), code(RebalanceInProgress));
    // The join completes: CompletingRebalance refuses commits until the leader syncs.
    let tokens = [
        h.send_join(&JoinSpec::new("g", "a").member(&a.member_id)),
        h.send_join(&JoinSpec::new("g", "b").member(&b.member_id)),
    ];
    let a2 = h.joined(&JoinSpec::new("g", "a"), tokens[0]);
    h.joined(&JoinSpec::new("g", "b"), tokens[1]);
    let response = h.commit("g", &a2.member_id, a2.generation, &[("t", 0, 2, None)], 8);
    assert_eq!(errors(&response), [code(RebalanceInProgress)]);
    assert_eq!(fetch(&h, 8, "g", None), [row("t", 0, 1, "")]);
}

#[test]
fn commits_keep_a_member_alive() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a"]);
    let a = &members[0];
    for _ in 0..5 {
        h.advance(i64::from(SESSION_MS) / 2);
        let response = h.commit("g", &a.member_id, a.generation, &[("t", 0, 1, None)], 8);
        assert_eq!(errors(&response), [NONE]);
    }
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn metadata_longer_than_the_limit_is_refused_per_partition() {
    let mut h = Harness::new();
    let long = "x".repeat(4_097);
    let exact = "é".repeat(4_096);
    let response = h.commit(
        "g",
        "",
        -1,
        &[("t", 0, 1, Some(&long)), ("t", 1, 2, Some(&exact))],
        8,
    );
    assert_eq!(errors(&response), [code(OffsetMetadataTooLarge), NONE]);
    assert_eq!(fetch(&h, 8, "g", None), [row("t", 1, 2, &exact)]);
}

#[test]
fn offset_delete() {
    let mut h = Harness::new();
    // A Stable consumer group subscribed to "orders", with offsets for it and "old".
    let members = h.stable_group("g", &["a"]);
    let a = &members[0];
    h.commit(
        "g",
        &a.member_id,
        1,
        &[("orders", 0, 1, None), ("old", 0, 2, None)],
        8,
    );
    let records_before = h.log.len();
    let response = delete_offsets(&mut h, "g", &[("orders", &[0]), ("old", &[0, 1])]);
    assert_eq!(response.error_code, NONE);
    let errors: Vec<Vec<i16>> = response
        .topics
        .iter()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    assert_eq!(
        errors,
        [vec![code(GroupSubscribedToTopic)], vec![NONE, NONE]]
    );
    assert_eq!(
        h.log.len(),
        records_before + 1,
        "one tombstone: only old/0 existed"
    );
    assert_eq!(h.log.last().unwrap().value, None);
    assert_eq!(fetch(&h, 8, "g", None), [row("orders", 0, 1, "")]);

    // Once the group is Empty, every topic may go.
    h.leave("g", &[(&a.member_id, None)], 3);
    let response = delete_offsets(&mut h, "g", &[("orders", &[0])]);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    assert!(fetch(&h, 8, "g", None).is_empty());

    // Group errors.
    let cases = [("", InvalidGroupId), ("missing", GroupIdNotFound)];
    for (group, error) in cases {
        let response = delete_offsets(&mut h, group, &[("t", &[0])]);
        assert_eq!(response.error_code, code(error), "{group:?}");
        assert!(response.topics.is_empty());
    }
    // Groups that are not consumer groups cannot say what they consume.
    let spec = JoinSpec {
        protocol_type: "connect".into(),
        ..JoinSpec::new("connect", "w")
    };
    h.stable_group_of(&[spec]);
    let response = delete_offsets(&mut h, "connect", &[("t", &[0])]);
    assert_eq!(response.error_code, code(NonEmptyGroup));
}

fn retention_config(retention_ms: i64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: i64::from(INITIAL_DELAY_MS),
        offsets_retention_ms: retention_ms,
        offsets_retention_check_interval_ms: 100,
        ..GroupConfig::default()
    }
}

#[test]
fn offsets_of_a_group_without_management_expire_after_retention() {
    let mut h = Harness::with_config(retention_config(60_000));
    h.commit("simple", "", -1, &[("t", 0, 1, None)], 8);
    h.advance(30_000);
    h.commit("simple", "", -1, &[("t", 1, 1, None)], 8);
    let committed = h.log.len();
    h.advance_in_ticks(30_000 - 100);
    assert_eq!(fetch(&h, 8, "simple", None).len(), 2);
    h.advance_in_ticks(100);
    assert_eq!(fetch(&h, 8, "simple", None), [row("t", 1, 1, "")]);
    assert_eq!(h.log.len(), committed + 1);
    h.advance_in_ticks(30_000);
    assert!(fetch(&h, 8, "simple", None).is_empty());
    // The group went with its last offset: an offset tombstone, then a group tombstone.
    assert_eq!(h.log.len(), committed + 3);
    assert!(h.log[committed..].iter().all(|r| r.value.is_none()));
    assert_eq!(h.coord.group_state("simple"), None);
}

#[test]
fn offsets_of_an_empty_group_expire_from_when_it_emptied() {
    let mut h = Harness::with_config(retention_config(60_000));
    let members = h.stable_group("g", &["a"]);
    let a = &members[0];
    h.commit("g", &a.member_id, 1, &[("orders", 0, 1, None)], 8);
    // Still a member (it heartbeats): nothing expires while subscribed.
    for _ in 0..8 {
        h.advance_in_ticks(5_000);
        assert_eq!(h.heartbeat(a), NONE);
    }
    h.leave("g", &[(&a.member_id, None)], 3);
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Empty));
    h.advance_in_ticks(60_000 - 100);
    assert_eq!(fetch(&h, 8, "g", None).len(), 1);
    h.advance_in_ticks(100);
    assert!(fetch(&h, 8, "g", None).is_empty());
    assert_eq!(h.coord.group_state("g"), None);
}

#[test]
fn a_stable_group_keeps_the_offsets_of_topics_it_subscribes_to() {
    let mut h = Harness::with_config(retention_config(60_000));
    let members = h.stable_group("g", &["a"]);
    let a = members[0].clone();
    h.commit(
        "g",
        &a.member_id,
        1,
        &[("orders", 0, 1, None), ("old", 0, 2, None)],
        8,
    );
    for _ in 0..14 {
        h.advance_in_ticks(5_000);
        assert_eq!(h.heartbeat(&a), NONE);
    }
    assert_eq!(fetch(&h, 8, "g", None), [row("orders", 0, 1, "")]);
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn a_commit_may_carry_its_own_retention_before_v5() {
    let mut h = Harness::with_config(retention_config(600_000));
    let mut request = OffsetCommitRequest::default();
    request.group_id = s("g").into();
    request.retention_time_ms = 1_000;
    let mut topic = OffsetCommitRequestTopic::default();
    topic.name = s("t").into();
    topic
        .partitions
        .push(OffsetCommitRequestPartition::default());
    request.topics.push(topic);
    let (response, _) = h
        .coord
        .offset_commit(4, &request, &Topics::default(), h.now);
    assert_eq!(errors(&response), [NONE]);
    h.advance_in_ticks(900);
    assert_eq!(fetch(&h, 8, "g", None).len(), 1);
    h.advance_in_ticks(100);
    assert!(fetch(&h, 8, "g", None).is_empty());
}
