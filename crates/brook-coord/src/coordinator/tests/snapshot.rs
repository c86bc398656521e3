//! `GroupCoordinator::snapshot`: records that rebuild the live groups on their own, as
//! the broker uses them to compact `__consumer_offsets`.

use crate::consumer::testing::Topics;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{DeleteGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest};

use super::replay::{observe, replayed};
use super::*;
use crate::records::{RecordKey, RecordValue};
use crate::GroupState;

/// A scenario: builds one group through the public API.
struct Scenario {
    group: &'static str,
    build: fn(&mut Harness),
    /// Whether the group is in the snapshot.
    present: bool,
    /// Whether the group is at rest (its live state is durable): then the snapshot
    /// rebuilds exactly what the coordinator shows, not only what the log rebuilds.
    at_rest: bool,
}

fn stable(h: &mut Harness) {
    let members = h.stable_group("stable", &["a", "b"]);
    let a = &members[0];
    let offsets = [("orders", 0, 42, Some("meta")), ("orders", 1, 7, None)];
    h.commit("stable", &a.member_id, a.generation, &offsets, 8);
    // A later commit of the same partition wins.
    h.commit(
        "stable",
        &a.member_id,
        a.generation,
        &[("orders", 0, 43, None)],
        8,
    );
}

/// A simple consumer: commits without joining (generation -1, no member id), once with
/// its own retention (v2), which gives the offset an expire timestamp.
fn simple(h: &mut Harness) {
    h.commit(
        "simple",
        "",
        -1,
        &[("t", 0, 1, Some("m")), ("u", 3, 9, None)],
        8,
    );
    let mut request = OffsetCommitRequest::default();
    request.group_id = s("simple").into();
    request.generation_id_or_member_epoch = -1;
    request.retention_time_ms = 60_000;
    let mut partition = OffsetCommitRequestPartition::default();
    partition.partition_index = 1;
    partition.committed_offset = 5;
    let mut topic = OffsetCommitRequestTopic::default();
    topic.name = s("t").into();
    topic.partitions.push(partition);
    request.topics.push(topic);
    let (response, records) = h
        .coord
        .offset_commit(2, &request, &Topics::default(), h.now);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    h.log.extend(records);
}

fn offset_delete(h: &mut Harness, group: &str, topic: &str, partition: i32) {
    let mut request = OffsetDeleteRequest::default();
    request.group_id = s(group).into();
    let mut t = OffsetDeleteRequestTopic::default();
    t.name = s(topic).into();
    let mut p = OffsetDeleteRequestPartition::default();
    p.partition_index = partition;
    t.partitions.push(p);
    request.topics.push(t);
    let (response, records) = h.coord.offset_delete(0, &request);
    assert_eq!(response.error_code, NONE);
    h.log.extend(records);
}

/// Offsets committed, then every one deleted: the group holds nothing; the next
/// retention check removes it.
fn offsets_deleted(h: &mut Harness) {
    h.commit("offsets-deleted", "", -1, &[("t", 0, 1, None)], 8);
    offset_delete(h, "offsets-deleted", "t", 0);
    h.advance(GroupConfig::default().offsets_retention_check_interval_ms);
    assert_eq!(h.coord.group_state("offsets-deleted"), None);
}

/// One of two offsets deleted: only the other is in the snapshot.
fn one_offset_deleted(h: &mut Harness) {
    h.commit(
        "one-deleted",
        "",
        -1,
        &[("t", 0, 1, None), ("t", 1, 2, None)],
        8,
    );
    offset_delete(h, "one-deleted", "t", 0);
}

/// A consumer group with offsets, emptied, then deleted with DeleteGroups.
fn deleted(h: &mut Harness) {
    let members = h.stable_group("deleted", &["g"]);
    let g = &members[0];
    h.commit(
        "deleted",
        &g.member_id,
        g.generation,
        &[("x", 0, 3, None)],
        8,
    );
    h.leave("deleted", &[(&g.member_id, None)], 3);
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = vec![s("deleted").into()];
    let (response, records) = h.coord.delete_groups(2, &request);
    assert_eq!(response.results[0].error_code, NONE);
    h.log.extend(records);
}

/// Static members, one restarted with a new member id (a metadata record without a
/// rebalance).
fn static_members(h: &mut Harness) {
    let specs = [
        JoinSpec::new("static", "c1").instance("s1"),
        JoinSpec::new("static", "c2").instance("s2"),
    ];
    let members = h.stable_group_of(&specs);
    h.commit(
        "static",
        &members[0].member_id,
        members[0].generation,
        &[("orders", 0, 11, None)],
        8,
    );
    let token = h.send_join(&specs[1]);
    assert_eq!(h.expect_join(token).error_code, NONE);
}

/// A consumer group whose members all left: Empty, with its offsets and a metadata
/// record of the empty generation.
fn emptied(h: &mut Harness) {
    let members = h.stable_group("emptied", &["e"]);
    let e = &members[0];
    h.commit(
        "emptied",
        &e.member_id,
        e.generation,
        &[("x", 0, 3, None)],
        8,
    );
    h.leave("emptied", &[(&e.member_id, None)], 3);
    assert_eq!(h.coord.group_state("emptied"), Some(GroupState::Empty));
}

/// A Stable group in which a third member joins: the rebalance is not durable, so the
/// snapshot (like the log) has the last Stable generation.
fn rebalancing(h: &mut Harness) {
    let members = h.stable_group("rebalancing", &["r1", "r2"]);
    let r = &members[0];
    h.commit(
        "rebalancing",
        &r.member_id,
        r.generation,
        &[("t", 0, 4, None)],
        8,
    );
    h.join_member(&JoinSpec::new("rebalancing", "late"));
    assert_eq!(
        h.coord.group_state("rebalancing"),
        Some(GroupState::PreparingRebalance)
    );
}

/// A group in its first rebalance: nothing durable yet, so nothing in the snapshot.
fn forming(h: &mut Harness) {
    h.join_member(&JoinSpec::new("forming", "f"));
    assert_eq!(
        h.coord.group_state("forming"),
        Some(GroupState::PreparingRebalance)
    );
}

/// In build order when built into one coordinator: "offsets-deleted" moves the clock
/// past the members' sessions, so it comes first.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        group: "offsets-deleted",
        build: offsets_deleted,
        present: false,
        at_rest: true,
    },
    Scenario {
        group: "stable",
        build: stable,
        present: true,
        at_rest: true,
    },
    Scenario {
        group: "simple",
        build: simple,
        present: true,
        at_rest: true,
    },
    Scenario {
        group: "one-deleted",
        build: one_offset_deleted,
        present: true,
        at_rest: true,
    },
    Scenario {
        group: "deleted",
        build: deleted,
        present: false,
        at_rest: true,
    },
    Scenario {
        group: "static",
        build: static_members,
        present: true,
        at_rest: true,
    },
    Scenario {
        group: "emptied",
        build: emptied,
        present: true,
        at_rest: true,
    },
    Scenario {
        group: "rebalancing",
        build: rebalancing,
        present: true,
        at_rest: false,
    },
    Scenario {
        group: "forming",
        build: forming,
        present: false,
        at_rest: false,
    },
];

fn harness() -> Harness {
    // A short initial delay, so every group forms well within the members' sessions.
    Harness::with_config(GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..GroupConfig::default()
    })
}

/// The groups the records are about, in order of first appearance.
fn groups_of(records: &[OffsetsRecord]) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for record in records {
        let group = record.group_id().expect("readable key");
        if groups.last() != Some(&group) {
            assert!(!groups.contains(&group), "{group}: records not contiguous");
            groups.push(group);
        }
    }
    groups
}

/// Per group: at most one metadata record, first; then only live offsets (no
/// tombstones).
fn assert_well_formed(snapshot: &[OffsetsRecord]) {
    let mut previous: Option<String> = None;
    for record in snapshot {
        let (key, value) = record.decode().expect("decodes");
        let group = record.group_id().unwrap();
        let first_of_group = previous.as_ref() != Some(&group);
        match (key, value) {
            (RecordKey::GroupMetadata { .. }, Some(RecordValue::GroupMetadata(_))) => {
                assert!(first_of_group, "{group}: metadata record after its offsets");
            }
            (RecordKey::OffsetCommit { .. }, Some(RecordValue::OffsetCommit(_))) => {}
            other => panic!("{group}: unexpected record in a snapshot: {other:?}"),
        }
        previous = Some(group);
    }
}

/// The snapshot, replayed alone, rebuilds what the log rebuilds (and what the
/// coordinator shows, when at rest); replayed after the log, it changes nothing; and the
/// replayed coordinator's own snapshot is the same records (timestamps included).
fn check_round_trip(h: &Harness, snapshot: &[OffsetsRecord], at_rest: bool) {
    assert_well_formed(snapshot);
    let from_snapshot = replayed(snapshot);
    let from_log = replayed(&h.log);
    assert_eq!(observe(&from_snapshot), observe(&from_log));
    if at_rest {
        assert_eq!(observe(&from_snapshot), observe(h));
    }
    let log_then_snapshot: Vec<OffsetsRecord> = h.log.iter().chain(snapshot).cloned().collect();
    assert_eq!(observe(&replayed(&log_then_snapshot)), observe(&from_log));
    assert_eq!(from_snapshot.coord.snapshot(|_| true), snapshot);
    assert_eq!(from_log.coord.snapshot(|_| true), snapshot);
}

#[test]
fn each_group_round_trips_through_its_snapshot() {
    for scenario in SCENARIOS {
        let mut h = harness();
        (scenario.build)(&mut h);
        let snapshot = h.coord.snapshot(|_| true);
        let expected: Vec<String> = if scenario.present {
            vec![scenario.group.to_owned()]
        } else {
            Vec::new()
        };
        assert_eq!(groups_of(&snapshot), expected, "{}", scenario.group);
        check_round_trip(&h, &snapshot, scenario.at_rest);
    }
}

#[test]
fn all_groups_round_trip_and_the_filter_selects() {
    let mut h = harness();
    for scenario in SCENARIOS.iter().filter(|s| s.at_rest) {
        (scenario.build)(&mut h);
    }
    let snapshot = h.coord.snapshot(|_| true);
    let mut present: Vec<&str> = SCENARIOS
        .iter()
        .filter(|s| s.at_rest && s.present)
        .map(|s| s.group)
        .collect();
    present.sort_unstable();
    assert_eq!(groups_of(&snapshot), present);
    check_round_trip(&h, &snapshot, true);

    // Members and assignments come back.
    let restored = replayed(&snapshot);
    assert_eq!(
        restored.coord.group_state("stable"),
        Some(GroupState::Stable)
    );
    assert_eq!(
        restored.coord.group_state("static"),
        Some(GroupState::Stable)
    );
    assert_eq!(
        restored.coord.group_state("simple"),
        Some(GroupState::Empty)
    );

    // Only the included groups, each with exactly its records of the full snapshot.
    let cases: &[&[&str]] = &[&[], &["stable"], &["simple", "static"], &["deleted"]];
    for included in cases {
        let filtered = h.coord.snapshot(|g| included.contains(&g));
        let expected: Vec<OffsetsRecord> = snapshot
            .iter()
            .filter(|r| included.contains(&r.group_id().unwrap().as_str()))
            .cloned()
            .collect();
        assert_eq!(filtered, expected, "{included:?}");
        let listed = super::admin::list(&replayed(&filtered), 5, &[], &[]);
        let ids: Vec<&str> = listed.iter().map(|(id, ..)| id.as_str()).collect();
        let expected_ids: Vec<&str> = present
            .iter()
            .copied()
            .filter(|g| included.contains(g))
            .collect();
        assert_eq!(ids, expected_ids, "{included:?}");
    }
}

#[test]
fn snapshot_then_later_records_replay_like_the_whole_log() {
    // Compaction: the snapshot replaces everything before it; what follows still
    // applies on top of it.
    let mut h = harness();
    for scenario in SCENARIOS {
        (scenario.build)(&mut h);
    }
    let snapshot = h.coord.snapshot(|_| true);
    let cut = h.log.len();
    // Later: the forming group completes, a commit, an offset deleted, a group deleted.
    h.advance_in_ticks(i64::from(REBALANCE_MS));
    h.commit("simple", "", -1, &[("t", 0, 100, None)], 8);
    offset_delete(&mut h, "simple", "u", 3);
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = vec![s("emptied").into()];
    let (_, records) = h.coord.delete_groups(2, &request);
    h.log.extend(records);

    let compacted: Vec<OffsetsRecord> = snapshot.iter().chain(&h.log[cut..]).cloned().collect();
    assert_eq!(observe(&replayed(&compacted)), observe(&replayed(&h.log)));
    assert_eq!(
        replayed(&compacted).coord.snapshot(|_| true),
        h.coord.snapshot(|_| true)
    );
}
