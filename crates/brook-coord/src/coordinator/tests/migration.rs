//! Groups moving between the classic and the consumer protocol
//! (`group.consumer.migration.policy`), and classic members inside a consumer group.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ConsumerProtocolAssignment,
    GroupId, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::replay::replayed;
use super::{code, s, Harness, JoinSpec, Joined, NONE};
use crate::config::{GroupConfig, MigrationPolicy};
use crate::consumer::testing::Topics;
use crate::group::GroupState;

const G: &str = "g";

fn harness(policy: MigrationPolicy) -> Harness {
    let mut h = Harness::with_config(GroupConfig {
        initial_rebalance_delay_ms: 100,
        consumer_migration_policy: policy,
        ..GroupConfig::default()
    });
    h.topics = Topics::with(&[("orders", 4)]);
    h
}

/// A consumer-protocol assignment (version 1) of `orders` partitions.
fn assignment(partitions: &[i32]) -> Vec<u8> {
    let mut value = ConsumerProtocolAssignment::default();
    let mut tp = TopicPartition::default();
    tp.topic = TopicName(s("orders"));
    tp.partitions = partitions.to_vec();
    value.assigned_partitions.push(tp);
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    value.encode(&mut buf, 1).unwrap();
    buf.to_vec()
}

fn assigned_partitions(bytes: &Bytes) -> Vec<i32> {
    let mut buf = bytes.slice(2..);
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).unwrap();
    a.assigned_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect()
}

/// A Stable classic group of two consumers, `orders` 0-1 and 2-3.
fn classic_group(h: &mut Harness) -> Vec<Joined> {
    let specs = [JoinSpec::new(G, "a"), JoinSpec::new(G, "b")];
    let members = h.joined_group_of(&specs);
    let leader = members.iter().find(|m| m.is_leader()).unwrap();
    let follower = members.iter().find(|m| !m.is_leader()).unwrap();
    let (la, fa) = (assignment(&[0, 1]), assignment(&[2, 3]));
    let ft = h.send_sync(follower, &[], 5);
    let lt = h.send_sync(
        leader,
        &[
            (leader.member_id.as_str(), la.as_slice()),
            (follower.member_id.as_str(), fa.as_slice()),
        ],
        5,
    );
    assert_eq!(h.expect_sync(ft).error_code, NONE);
    assert_eq!(h.expect_sync(lt).error_code, NONE);
    assert_eq!(h.coord.group_state(G), Some(GroupState::Stable));
    members
}

fn cg_heartbeat(h: &mut Harness, member_id: &str, epoch: i32) -> ConsumerGroupHeartbeatResponse {
    cg_heartbeat_as(h, member_id, epoch, None)
}

/// A static consumer-protocol member (`group.instance.id` = `instance`) joins.
fn static_cg_join(
    h: &mut Harness,
    member_id: &str,
    instance: &str,
) -> ConsumerGroupHeartbeatResponse {
    cg_heartbeat_as(h, member_id, 0, Some(instance))
}

fn cg_heartbeat_as(
    h: &mut Harness,
    member_id: &str,
    epoch: i32,
    instance: Option<&str>,
) -> ConsumerGroupHeartbeatResponse {
    let mut r = ConsumerGroupHeartbeatRequest::default();
    r.group_id = GroupId(s(G));
    r.member_id = s(member_id);
    r.member_epoch = epoch;
    r.instance_id = instance.map(s);
    if epoch == 0 {
        r.rebalance_timeout_ms = 30_000;
        r.subscribed_topic_names = Some(vec![TopicName(s("orders"))]);
        r.topic_partitions = Some(Vec::new());
    }
    let (response, records) =
        h.coord
            .consumer_group_heartbeat(1, &r, "c", "/127.0.0.1", &h.topics, h.now);
    h.log.extend(records);
    response
}

fn is_consumer_group(h: &Harness) -> bool {
    h.coord.groups.get(G).is_some_and(|g| g.consumer.is_some())
}

#[test]
fn a_consumer_member_upgrades_a_live_classic_group_whose_members_stay() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    let members = classic_group(&mut h);
    let generation = members[0].generation;
    let r = cg_heartbeat(&mut h, "new-member-id-0000000", 0);
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    assert!(is_consumer_group(&h));
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    assert_eq!(cg.members.len(), 3);
    for m in &members {
        let member = &cg.members[&m.member_id];
        assert!(member.classic.is_some());
        assert_eq!(member.member_epoch, generation);
    }
    // The new member gets nothing until the classic members give partitions up.
    assert!(r.member_epoch > generation);
    cg.check_invariants();

    // Each classic member learns of the rebalance from its heartbeat and rejoins;
    // the join is answered at once, with the member epoch as generation.
    let mut held = Vec::new();
    for m in &members {
        assert_eq!(h.heartbeat(m), code(ResponseError::RebalanceInProgress));
        let token = h.send_join(&JoinSpec::new(G, "x").member(&m.member_id));
        let rejoined = h.joined(&JoinSpec::new(G, "x"), token);
        assert_eq!(rejoined.member_id, m.member_id);
        assert_eq!(rejoined.leader, "");
        let st = h.send_sync(&rejoined, &[], 5);
        let sync = h.expect_sync(st);
        assert_eq!(sync.error_code, NONE);
        held.extend(assigned_partitions(&sync.assignment));
    }
    held.sort_unstable();
    let n = held.len();
    held.dedup();
    assert_eq!(held.len(), n, "a partition given to two classic members");

    // A few rounds of heartbeats (the classic members rejoin when told to, owning
    // nothing as eager consumers do) and the group settles: every partition owned
    // once, the new member among the owners.
    let mut new_epoch = r.member_epoch;
    for _ in 0..5 {
        for m in &members {
            let epoch =
                h.coord.groups[G].consumer.as_ref().unwrap().members[&m.member_id].member_epoch;
            if h.heartbeat_as(G, &m.member_id, None, epoch) != NONE {
                let token = h.send_join(&JoinSpec::new(G, "x").member(&m.member_id));
                let rejoined = h.joined(&JoinSpec::new(G, "x"), token);
                let st = h.send_sync(&rejoined, &[], 5);
                assert_eq!(h.expect_sync(st).error_code, NONE);
            }
        }
        let r = cg_heartbeat(&mut h, "new-member-id-0000000", new_epoch);
        assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
        new_epoch = r.member_epoch;
    }
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    cg.check_invariants();
    let owned: usize = cg
        .members
        .values()
        .map(|m| m.assigned.values().map(|ps| ps.len()).sum::<usize>())
        .sum();
    assert_eq!(owned, 4);
    assert!(!cg.members["new-member-id-0000000"].assigned.is_empty());
    assert!(cg
        .members
        .values()
        .all(|m| m.member_epoch == cg.group_epoch));

    // The records rebuild the same consumer group.
    let restarted = replayed(&h.log);
    let cg2 = restarted.coord.groups[G].consumer.as_ref().unwrap();
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    assert_eq!(cg2.members, cg.members);
    assert_eq!(cg2.group_epoch, cg.group_epoch);
}

#[test]
fn upgrade_refused_when_the_policy_says_so() {
    for policy in [MigrationPolicy::Disabled, MigrationPolicy::Downgrade] {
        let mut h = harness(policy);
        classic_group(&mut h);
        let r = cg_heartbeat(&mut h, "new-member-id-0000000", 0);
        assert_eq!(r.error_code, code(ResponseError::GroupIdNotFound));
        assert!(!is_consumer_group(&h));
    }
}

#[test]
fn empty_groups_convert_both_ways_whatever_the_policy() {
    let mut h = harness(MigrationPolicy::Disabled);
    let members = h.stable_group(G, &["a"]);
    h.leave(G, &[(&members[0].member_id, None)], 3);
    assert_eq!(h.coord.group_state(G), Some(GroupState::Empty));
    let r = cg_heartbeat(&mut h, "new-member-id-0000000", 0);
    assert_eq!(r.error_code, NONE);
    assert!(is_consumer_group(&h));
    let r = cg_heartbeat(&mut h, "new-member-id-0000000", -1);
    assert_eq!(r.error_code, NONE);
    let token = h.send_join(&JoinSpec::new(G, "a").version(3));
    h.advance_until_answered(&[token]);
    assert_eq!(h.expect_join(token).error_code, NONE);
    assert!(!is_consumer_group(&h));
}

#[test]
fn the_last_consumer_member_leaving_downgrades_the_group() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    let members = classic_group(&mut h);
    let r = cg_heartbeat(&mut h, "new-member-id-0000000", 0);
    assert_eq!(r.error_code, NONE);
    let epoch = h.coord.groups[G].consumer.as_ref().unwrap().group_epoch;
    let r = cg_heartbeat(&mut h, "new-member-id-0000000", -1);
    assert_eq!(r.error_code, NONE);
    assert!(!is_consumer_group(&h));
    let group = &h.coord.groups[G];
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert_eq!(group.members.len(), 2);
    assert_eq!(group.generation_id, epoch);
    // Each keeps the partitions it held as its classic assignment until the rebalance.
    let cg_held: Vec<i32> = classic_assignments(&h).into_values().flatten().collect();
    assert!(!cg_held.is_empty());
    // The classic members rejoin the classic group as usual.
    for m in &members {
        assert_eq!(
            h.heartbeat_as(G, &m.member_id, None, epoch),
            code(ResponseError::RebalanceInProgress)
        );
    }
    let tokens: Vec<_> = members
        .iter()
        .map(|m| h.send_join(&JoinSpec::new(G, "x").member(&m.member_id)))
        .collect();
    h.advance_until_answered(&tokens);
    for t in tokens {
        let r = h.expect_join(t);
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.generation_id, epoch + 1);
    }
    // The log replays to a classic group.
    let restarted = replayed(&h.log);
    assert!(restarted.coord.groups[G].consumer.is_none());
}

#[test]
fn no_downgrade_when_the_policy_allows_only_upgrades() {
    let mut h = harness(MigrationPolicy::Upgrade);
    classic_group(&mut h);
    assert_eq!(
        cg_heartbeat(&mut h, "new-member-id-0000000", 0).error_code,
        NONE
    );
    assert_eq!(
        cg_heartbeat(&mut h, "new-member-id-0000000", -1).error_code,
        NONE
    );
    assert!(is_consumer_group(&h));
    assert_eq!(
        h.coord.groups[G].consumer.as_ref().unwrap().members.len(),
        2
    );
}

#[test]
fn classic_members_of_a_consumer_group_commit_with_their_generation() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    let members = classic_group(&mut h);
    assert_eq!(
        cg_heartbeat(&mut h, "new-member-id-0000000", 0).error_code,
        NONE
    );
    let m = &members[0];
    let ok = h.commit(G, &m.member_id, m.generation, &[("orders", 0, 5, None)], 8);
    assert_eq!(ok.topics[0].partitions[0].error_code, NONE);
    let stale = h.commit(
        G,
        &m.member_id,
        m.generation - 1,
        &[("orders", 0, 6, None)],
        8,
    );
    assert_eq!(
        stale.topics[0].partitions[0].error_code,
        code(ResponseError::IllegalGeneration)
    );
    // A LeaveGroup removes a classic member from the consumer group.
    let left = h.leave(G, &[(&m.member_id, None)], 3);
    assert_eq!(left.members[0].error_code, NONE);
    assert_eq!(
        h.coord.groups[G].consumer.as_ref().unwrap().members.len(),
        2
    );
}

#[test]
fn an_upgrade_answers_the_parked_joins_of_a_rebalancing_classic_group() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    let members = classic_group(&mut h);
    // One member rejoins: the group is PreparingRebalance, its join parked.
    let token = h.send_join(&JoinSpec::new(G, "a").member(&members[0].member_id));
    assert!(!h.is_answered(token));
    let mut r = ConsumerGroupHeartbeatRequest::default();
    r.group_id = GroupId(s(G));
    r.member_id = s("new-member-id-0000000");
    r.rebalance_timeout_ms = 30_000;
    r.subscribed_topic_names = Some(vec![TopicName(s("orders"))]);
    r.topic_partitions = Some(Vec::new());
    let (response, effects) =
        h.coord
            .consumer_group_heartbeat_effects(1, &r, "c", "/127.0.0.1", &h.topics, h.now);
    assert_eq!(response.error_code, NONE);
    h.absorb(effects);
    assert_eq!(
        h.expect_join(token).error_code,
        code(ResponseError::RebalanceInProgress)
    );
    assert!(is_consumer_group(&h));
    assert_eq!(
        h.coord.groups[G].consumer.as_ref().unwrap().members.len(),
        3
    );
}

/// Kafka's join and sync timeouts for classic members of a consumer group: told to
/// rejoin, a member has its rebalance timeout to send JoinGroup; after JoinGroup, the
/// same to send SyncGroup. Heartbeats alone do not keep it in the group.
#[test]
fn classic_members_that_do_not_rejoin_or_sync_in_time_are_removed() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    let members = classic_group(&mut h);
    let (lazy, syncless) = (&members[0].member_id, &members[1].member_id);
    let r = cg_heartbeat(&mut h, "new-member-id-0000000", 0);
    assert_eq!(r.error_code, NONE);
    let epoch_of = |h: &Harness, id: &str| {
        h.coord.groups[G].consumer.as_ref().unwrap().members[id].member_epoch
    };
    // `lazy` is told to rejoin and never does; `syncless` rejoins and never syncs.
    let lazy_epoch = epoch_of(&h, lazy);
    assert_eq!(
        h.heartbeat_as(G, lazy, None, lazy_epoch),
        code(ResponseError::RebalanceInProgress)
    );
    let token = h.send_join(&JoinSpec::new(G, "x").member(syncless));
    let rejoined = h.joined(&JoinSpec::new(G, "x"), token);
    let mut new_epoch = r.member_epoch;
    let mut waited = 0;
    while waited < super::REBALANCE_MS as i64 - 5_000 {
        h.advance(5_000);
        waited += 5_000;
        // Both keep their sessions alive; the consumer member too.
        h.heartbeat_as(G, lazy, None, lazy_epoch);
        h.heartbeat_as(G, syncless, None, rejoined.generation);
        new_epoch = cg_heartbeat(&mut h, "new-member-id-0000000", new_epoch).member_epoch;
    }
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    assert!(cg.members.contains_key(lazy) && cg.members.contains_key(syncless));
    h.advance(6_000);
    cg_heartbeat(&mut h, "new-member-id-0000000", new_epoch);
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    assert!(
        !cg.members.contains_key(lazy),
        "did not rejoin, yet still a member"
    );
    assert!(
        !cg.members.contains_key(syncless),
        "did not sync, yet still a member"
    );
    assert!(cg.members.contains_key("new-member-id-0000000"));
    assert_eq!(
        h.heartbeat_as(G, lazy, None, lazy_epoch),
        code(ResponseError::UnknownMemberId)
    );
}

/// A classic member that rejoins when told to and syncs stays, however long it runs.
#[test]
fn classic_members_that_rejoin_and_sync_stay() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    let members = classic_group(&mut h);
    let r = cg_heartbeat(&mut h, "new-member-id-0000000", 0);
    let mut new_epoch = r.member_epoch;
    for _ in 0..20 {
        for m in &members {
            let epoch =
                h.coord.groups[G].consumer.as_ref().unwrap().members[&m.member_id].member_epoch;
            if h.heartbeat_as(G, &m.member_id, None, epoch) != NONE {
                let token = h.send_join(&JoinSpec::new(G, "x").member(&m.member_id));
                let rejoined = h.joined(&JoinSpec::new(G, "x"), token);
                let st = h.send_sync(&rejoined, &[], 5);
                assert_eq!(h.expect_sync(st).error_code, NONE);
            }
        }
        new_epoch = cg_heartbeat(&mut h, "new-member-id-0000000", new_epoch).member_epoch;
        h.advance(5_000);
    }
    assert_eq!(
        h.coord.groups[G].consumer.as_ref().unwrap().members.len(),
        3
    );
}

/// A few rounds of heartbeats after a consumer-protocol member joined the classic
/// group of [`classic_group`]: the classic members rejoin when told to, and the group
/// settles with every partition owned once. Returns the consumer member's last epoch.
fn settle(h: &mut Harness, members: &[Joined], consumer_member: &str, mut epoch: i32) -> i32 {
    for _ in 0..5 {
        for m in members {
            let cg = h.coord.groups[G].consumer.as_ref().unwrap();
            let Some(member) = cg.members.get(&m.member_id) else {
                continue;
            };
            let (epoch, instance) = (member.member_epoch, member.instance_id.clone());
            if h.heartbeat_as(G, &m.member_id, instance.as_deref(), epoch) != NONE {
                let token = h.send_join(&JoinSpec::new(G, "x").member(&m.member_id));
                let rejoined = h.joined(&JoinSpec::new(G, "x"), token);
                let st = h.send_sync(&rejoined, &[], 5);
                assert_eq!(h.expect_sync(st).error_code, NONE);
            }
        }
        let r = cg_heartbeat_as(h, consumer_member, epoch, Some("i1"));
        assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
        epoch = r.member_epoch;
    }
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    cg.check_invariants();
    assert!(cg
        .members
        .values()
        .all(|m| m.member_epoch == cg.group_epoch));
    epoch
}

/// Each member's classic assignment, as the group keeps it (what DescribeGroups shows).
fn classic_assignments(h: &Harness) -> std::collections::BTreeMap<String, Vec<i32>> {
    h.coord.groups[G]
        .members
        .iter()
        .map(|(id, m)| (id.clone(), assigned_partitions(&m.assignment)))
        .collect()
}

#[test]
fn a_static_classic_member_replacing_the_last_consumer_member_downgrades_the_group() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    let members = classic_group(&mut h);
    let r = static_cg_join(&mut h, "static-consumer-member0", "i1");
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    assert!(is_consumer_group(&h));
    settle(&mut h, &members, "static-consumer-member0", r.member_epoch);
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    let epoch = cg.group_epoch;
    let held: std::collections::BTreeMap<String, Vec<i32>> = cg
        .members
        .iter()
        .map(|(id, m)| (id.clone(), m.assigned.values().flatten().copied().collect()))
        .collect();
    let replaced_held = held["static-consumer-member0"].clone();
    assert!(!replaced_held.is_empty());

    // The instance restarts with the classic protocol (no member id, same instance and
    // subscription): the group becomes classic at once, without a rebalance.
    let spec = JoinSpec::new(G, "x").instance("i1");
    let token = h.send_join(&spec);
    let joined = h.joined(&spec, token);
    assert!(!is_consumer_group(&h), "the group became classic");
    assert_ne!(joined.member_id, "static-consumer-member0");
    assert_eq!(joined.generation, epoch);
    let group = &h.coord.groups[G];
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.generation_id, epoch);
    assert_eq!(group.members.len(), 3);
    assert!(!group.members.contains_key("static-consumer-member0"));

    // Everyone keeps what they held: the new instance the replaced member's partitions.
    let mut expected = held.clone();
    expected.remove("static-consumer-member0");
    expected.insert(joined.member_id.clone(), replaced_held.clone());
    assert_eq!(classic_assignments(&h), expected);
    let st = h.send_sync(&joined, &[], 5);
    let sync = h.expect_sync(st);
    assert_eq!(sync.error_code, NONE);
    assert_eq!(assigned_partitions(&sync.assignment), replaced_held);
    for m in &members {
        assert_eq!(h.heartbeat_as(G, &m.member_id, None, epoch), NONE);
    }
    assert_eq!(h.heartbeat(&joined), NONE);

    // The log replays to the same classic group.
    let restarted = replayed(&h.log);
    let group = &restarted.coord.groups[G];
    assert!(group.consumer.is_none());
    assert_eq!(group.generation_id, epoch);
    let replayed_assignments: std::collections::BTreeMap<String, Vec<i32>> = group
        .members
        .iter()
        .map(|(id, m)| (id.clone(), assigned_partitions(&m.assignment)))
        .collect();
    assert_eq!(replayed_assignments, expected);
}

#[test]
fn a_static_classic_replacement_with_another_subscription_downgrades_and_rebalances() {
    let mut h = harness(MigrationPolicy::Bidirectional);
    h.topics = Topics::with(&[("orders", 4), ("payments", 2)]);
    let members = classic_group(&mut h);
    let r = static_cg_join(&mut h, "static-consumer-member0", "i1");
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    settle(&mut h, &members, "static-consumer-member0", r.member_epoch);
    let spec = JoinSpec::new(G, "x")
        .instance("i1")
        .protocols(&[("range", super::subscription(&["orders", "payments"]))]);
    let token = h.send_join(&spec);
    let joined = h.joined(&spec, token);
    assert!(!is_consumer_group(&h));
    assert_eq!(h.coord.groups[G].state, GroupState::PreparingRebalance);
    let st = h.send_sync(&joined, &[], 5);
    assert_eq!(
        h.expect_sync(st).error_code,
        code(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn a_static_classic_replacement_stays_in_the_consumer_group_without_downgrades() {
    let mut h = harness(MigrationPolicy::Upgrade);
    classic_group(&mut h);
    let r = static_cg_join(&mut h, "static-consumer-member0", "i1");
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    let token = h.send_join(&JoinSpec::new(G, "x").instance("i1"));
    h.advance_until_answered(&[token]);
    assert_eq!(h.expect_join(token).error_code, NONE);
    assert!(is_consumer_group(&h));
    let cg = h.coord.groups[G].consumer.as_ref().unwrap();
    assert_eq!(cg.members.len(), 3);
    assert!(cg.members.values().all(|m| m.classic.is_some()));
}
