use kafka_protocol::error::ResponseError::*;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{DeleteGroupsRequest, OffsetFetchRequest};

use super::admin::{describe, list};
use super::*;
use crate::{GroupState, RecordError};

/// Everything a client can observe of the groups and offsets, for comparison.
pub(super) fn observe(h: &Harness) -> String {
    let listed = list(h, 5, &[], &[]);
    let ids: Vec<&str> = listed.iter().map(|(id, ..)| id.as_str()).collect();
    let described = describe(h, 5, &ids);
    let mut request = OffsetFetchRequest::default();
    for id in &ids {
        let mut group = OffsetFetchRequestGroup::default();
        group.group_id = s(id).into();
        group.topics = None;
        request.groups.push(group);
    }
    let offsets = h.coord.offset_fetch(8, &request);
    format!("{listed:#?}\n{described:#?}\n{offsets:#?}")
}

pub(super) fn replayed(log: &[OffsetsRecord]) -> Harness {
    let mut h = Harness::new();
    for record in log {
        h.coord.replay(record).expect("valid record");
    }
    h
}

#[test]
fn replaying_the_records_rebuilds_groups_and_offsets() {
    // A short initial delay, so every group forms well within the members' sessions.
    let mut h = Harness::with_config(GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..GroupConfig::default()
    });
    // A Stable group of dynamic members with offsets.
    let members = h.stable_group("dynamic", &["a", "b"]);
    let a = &members[0];
    h.commit(
        "dynamic",
        &a.member_id,
        1,
        &[("orders", 0, 42, Some("meta")), ("orders", 1, 7, None)],
        8,
    );
    // A Stable group of static members, one of them restarted (a new member id).
    let specs = [
        JoinSpec::new("static", "c1").instance("s1"),
        JoinSpec::new("static", "c2").instance("s2"),
    ];
    h.stable_group_of(&specs);
    let token = h.send_join(&specs[1]);
    assert_eq!(h.expect_join(token).error_code, NONE);
    // A group used only for offsets, with one offset deleted.
    h.commit("simple", "", -1, &[("t", 0, 1, None), ("t", 1, 2, None)], 8);
    let mut delete = kafka_protocol::messages::OffsetDeleteRequest::default();
    delete.group_id = s("simple").into();
    let mut topic =
        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default();
    topic.name = s("t").into();
    topic.partitions.push(
        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default(),
    );
    delete.topics.push(topic);
    let (_, records) = h.coord.offset_delete(0, &delete);
    h.log.extend(records);
    // A consumer group whose members all left, keeping its offsets.
    let left = h.stable_group("emptied", &["e"]);
    h.commit("emptied", &left[0].member_id, 1, &[("x", 0, 3, None)], 8);
    h.leave("emptied", &[(&left[0].member_id, None)], 3);
    // A group that was deleted.
    let gone = h.stable_group("gone", &["g"]);
    h.commit("gone", &gone[0].member_id, 1, &[("x", 0, 3, None)], 8);
    h.leave("gone", &[(&gone[0].member_id, None)], 3);
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = vec![s("gone").into()];
    let (_, records) = h.coord.delete_groups(2, &request);
    h.log.extend(records);

    let restarted = replayed(&h.log);
    assert_eq!(observe(&restarted), observe(&h));
    assert_eq!(restarted.coord.group_state("gone"), None);
    assert_eq!(
        restarted.coord.group_state("static"),
        Some(GroupState::Stable)
    );
}

#[test]
fn replayed_members_carry_on_and_time_out() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let mut restarted = replayed(&h.log);
    restarted.now = h.now;
    assert_eq!(
        restarted.coord.next_deadline_ms(),
        Some(i64::MIN),
        "tick to start sessions"
    );
    restarted.advance(0);
    // The generation goes on: heartbeats, commits and SyncGroup work as before.
    let (a, b) = (&members[0], &members[1]);
    assert_eq!(restarted.heartbeat(a), NONE);
    let token = restarted.send_sync(b, &[], 5);
    assert_eq!(
        restarted.expect_sync(token).assignment,
        b.member_id.as_bytes()
    );
    // b stops heartbeating: its session, started at load, expires.
    restarted.advance(i64::from(SESSION_MS) / 2);
    assert_eq!(restarted.heartbeat(a), NONE);
    restarted.advance(i64::from(SESSION_MS) / 2);
    assert_eq!(
        restarted.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(restarted.heartbeat(a), code(RebalanceInProgress));
}

#[test]
fn later_records_win_and_tombstones_remove() {
    let mut h = Harness::new();
    h.commit("g", "", -1, &[("t", 0, 1, None)], 8);
    h.commit("g", "", -1, &[("t", 0, 2, None)], 8);
    let restarted = replayed(&h.log);
    assert_eq!(observe(&restarted), observe(&h));

    let mut request = DeleteGroupsRequest::default();
    request.groups_names = vec![s("g").into()];
    let (_, records) = h.coord.delete_groups(2, &request);
    h.log.extend(records);
    let restarted = replayed(&h.log);
    assert_eq!(restarted.coord.group_state("g"), None);
    // Replay order decides: the last record for a key wins.
    let restarted = replayed(&[h.log[1].clone(), h.log[0].clone()]);
    assert_eq!(
        observe(&restarted).matches("committed_offset: 1").count(),
        1
    );
}

#[test]
fn a_malformed_record_is_an_error() {
    let mut h = Harness::new();
    let record = OffsetsRecord {
        key: Bytes::from_static(&[0, 99]),
        value: None,
    };
    assert_eq!(
        h.coord.replay(&record),
        Err(RecordError::UnknownKeyType(99))
    );
    assert!(list(&h, 5, &[], &[]).is_empty());
}

#[test]
fn a_self_contradicting_group_record_loads_what_makes_sense() {
    use crate::records::{GroupMetadataValue, MemberMetadataValue};
    let member = |id: &str, instance: Option<&str>| MemberMetadataValue {
        member_id: id.into(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "c".into(),
        client_host: "h".into(),
        rebalance_timeout_ms: REBALANCE_MS,
        session_timeout_ms: SESSION_MS,
        subscription: subscription(&["t"]),
        assignment: Bytes::new(),
    };
    let value = |protocol: Option<&str>| GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 3,
        protocol_name: protocol.map(str::to_owned),
        leader: Some("not-a-member".into()),
        state_timestamp_ms: None,
        members: vec![
            member("m1", Some("i")),
            member("m1", None),
            member("m2", Some("i")),
            member("m3", None),
        ],
    };
    let mut h = Harness::new();
    h.coord
        .replay(&OffsetsRecord::group_metadata("g", &value(Some("range"))))
        .unwrap();
    h.coord
        .replay(&OffsetsRecord::group_metadata("no-protocol", &value(None)))
        .unwrap();
    let described = describe(&h, 5, &["g", "no-protocol"]);
    let ids: Vec<&str> = described.groups[0]
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, ["m1", "m3"]);
    assert_eq!(described.groups[1].group_state.as_str(), "Empty");
    // The group works: a member rejoins and becomes the leader of generation 4.
    h.advance(0);
    let token = h.send_join(&JoinSpec::new("g", "c").member("m3"));
    let other = h.send_join(&JoinSpec::new("g", "c").member("m1").instance("i"));
    let response = h.expect_join(token);
    assert_eq!(response.generation_id, 4);
    assert_eq!(h.expect_join(other).generation_id, 4);
}
