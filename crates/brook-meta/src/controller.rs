//! The controller's decisions as pure functions of the image: where replicas go, who
//! leads once a broker is fenced or comes back, whether an ISR change is allowed.
//! The broker that leads the metadata quorum calls these and appends the records they
//! return; nothing here does I/O or reads a clock.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::image::NO_LEADER;
use crate::{BrokerEndpoint, MetadataImage, MetadataRecord, PartitionImage};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlacementError {
    #[error("replication factor {requested} is larger than the {live} available brokers")]
    NotEnoughBrokers { requested: usize, live: usize },
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
}

/// Replica lists for partitions `first..first + count`, spread over `live` brokers the
/// way Kafka's rack-unaware assignment does: preferred leaders round-robin from a
/// starting broker, followers shifted so that no two partitions share the same
/// follower pattern when there are enough brokers.
pub fn assign_replicas(
    live: &[i32],
    first: i32,
    count: i32,
    replication_factor: usize,
    seed: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let n = live.len();
    check_replication_factor(replication_factor, n)?;
    let mut brokers = live.to_vec();
    brokers.sort_unstable();
    let start = seed % n;
    let shift_base = (seed / n.max(1)) % n.max(1);
    Ok((first..first + count)
        .map(|p| {
            let p = p as usize;
            let leader = (start + p) % n;
            let shift = if n > 1 {
                (shift_base + p / n) % (n - 1)
            } else {
                0
            };
            let mut replicas = vec![brokers[leader]];
            for k in 0..replication_factor - 1 {
                let idx = (leader + 1 + (shift + k) % (n - 1)) % n;
                replicas.push(brokers[idx]);
            }
            replicas
        })
        .collect())
}

/// A replication factor of at least 1 and at most the live brokers.
fn check_replication_factor(replication_factor: usize, live: usize) -> Result<(), PlacementError> {
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if replication_factor > live {
        return Err(PlacementError::NotEnoughBrokers {
            requested: replication_factor,
            live,
        });
    }
    Ok(())
}

/// [`assign_replicas`], aware of racks (Kafka's rack-aware assignment): when any live
/// broker has a `broker.rack`, the brokers are arranged alternating between racks
/// (brokers without one share a rack of their own), each partition's leader is taken
/// in turn from that list, and its followers are taken from racks that hold none of
/// its replicas yet, while there are such racks; so replicas spread over as many racks
/// as they can and leaders over every broker.
pub fn assign_replicas_by_rack(
    live: &[(i32, Option<&str>)],
    first: i32,
    count: i32,
    replication_factor: usize,
    seed: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if live.iter().all(|(_, rack)| rack.is_none()) {
        let ids: Vec<i32> = live.iter().map(|(id, _)| *id).collect();
        return assign_replicas(&ids, first, count, replication_factor, seed);
    }
    let n = live.len();
    check_replication_factor(replication_factor, n)?;
    // Racks in name order, each with its brokers in id order; then one broker of each
    // rack in turn.
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in live {
        by_rack.entry(rack.unwrap_or("")).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let racks = by_rack.len();
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut arranged: Vec<(i32, &str)> = Vec::with_capacity(n);
    for depth in 0..deepest {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(depth) {
                arranged.push((*id, rack));
            }
        }
    }
    let start = seed % n;
    let shift_base = (seed / n) % n;
    Ok((first..first + count)
        .map(|p| {
            let p = p as usize;
            let leader = (start + p) % n;
            let shift = (shift_base + p / n) * racks;
            let mut replicas = vec![arranged[leader].0];
            let mut used_racks = BTreeSet::from([arranged[leader].1]);
            // Every broker is a candidate once (the leader aside), in Kafka's order.
            for k in 0..n.saturating_sub(1) * 2 {
                if replicas.len() == replication_factor {
                    break;
                }
                let step = 1 + (shift + k) % (n - 1);
                let (id, rack) = arranged[(leader + step) % n];
                let all_racks_used = used_racks.len() == racks;
                // The first pass takes only new racks; the second fills up the rest.
                if replicas.contains(&id)
                    || (k < n - 1 && !all_racks_used && used_racks.contains(rack))
                {
                    continue;
                }
                replicas.push(id);
                used_racks.insert(rack);
            }
            replicas
        })
        .collect())
}

fn change(
    topic: &str,
    p: &PartitionImage,
    leader: i32,
    epoch: i32,
    isr: Vec<i32>,
) -> MetadataRecord {
    MetadataRecord::PartitionChanged {
        topic: topic.to_string(),
        partition: p.index,
        leader,
        leader_epoch: epoch,
        isr,
        replicas: None,
    }
}

/// The broker stopped heartbeating: fence it, take it out of every ISR it is in and move
/// its leaderships to the first live in-sync replica (in assignment order). A partition
/// whose ISR has no other live member goes leaderless and keeps its last ISR member,
/// so it comes back only with a replica that has every acknowledged record.
pub fn fence_broker(image: &MetadataImage, id: i32) -> Vec<MetadataRecord> {
    match image.brokers.get(&id) {
        Some(b) if !b.fenced => {}
        _ => return Vec::new(),
    }
    let live = |b: i32| b != id && image.is_live(b);
    let mut out = vec![MetadataRecord::BrokerFenced { id }];
    for (name, topic) in &image.topics {
        for p in &topic.partitions {
            if p.leader != id && !p.isr.contains(&id) {
                continue;
            }
            let shrunk: Vec<i32> = p.isr.iter().copied().filter(|&b| b != id).collect();
            if p.leader == id {
                let next = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|&r| shrunk.contains(&r) && live(r));
                match next {
                    Some(leader) => out.push(change(name, p, leader, p.leader_epoch + 1, shrunk)),
                    None => {
                        let isr = if shrunk.is_empty() {
                            p.isr.clone()
                        } else {
                            shrunk
                        };
                        out.push(change(name, p, NO_LEADER, p.leader_epoch + 1, isr));
                    }
                }
            } else if !shrunk.is_empty() {
                out.push(change(name, p, p.leader, p.leader_epoch, shrunk));
            }
        }
    }
    out
}

/// A heartbeat from `id`: register it (or its new process or address), unfence it,
/// and give it the leadership of leaderless partitions whose ISR it is in.
pub fn broker_heartbeat(
    image: &MetadataImage,
    id: i32,
    host: &str,
    port: i32,
    incarnation: u64,
    listeners: &[BrokerEndpoint],
    rack: Option<&str>,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    match image.brokers.get(&id) {
        Some(b)
            if b.host == host
                && b.port == port
                && b.incarnation == incarnation
                && b.listeners == listeners
                && b.rack.as_deref() == rack =>
        {
            if !b.fenced {
                return out;
            }
            out.push(MetadataRecord::BrokerUnfenced { id });
        }
        _ => out.push(MetadataRecord::BrokerRegistered {
            id,
            host: host.to_string(),
            port,
            incarnation,
            listeners: listeners.to_vec(),
            rack: rack.map(str::to_string),
        }),
    }
    for (name, topic) in &image.topics {
        for p in &topic.partitions {
            if p.leader == NO_LEADER && p.isr.contains(&id) {
                out.push(change(name, p, id, p.leader_epoch + 1, p.isr.clone()));
            }
        }
    }
    out
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AlterIsrError {
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error("broker {0} is not the leader of this partition")]
    NotLeader(i32),
    #[error("leader epoch {got} is not the current epoch {current}")]
    FencedLeaderEpoch { got: i32, current: i32 },
    #[error("the request comes from an earlier process of broker {0}")]
    StaleBrokerEpoch(i32),
    #[error("the ISR change was computed from partition epoch {got}, not the current {current}")]
    StaleVersion { got: i32, current: i32 },
    #[error("invalid ISR: {0}")]
    InvalidIsr(&'static str),
    #[error("replica {0} is fenced or not a replica and cannot join the ISR")]
    IneligibleReplica(i32),
}

/// What a partition leader asks for in an ISR change (Kafka's AlterPartition).
#[derive(Debug, Clone, Copy)]
pub struct IsrRequest<'a> {
    pub leader: i32,
    /// The leader's process (`BrokerRegistered::incarnation`).
    pub incarnation: u64,
    pub leader_epoch: i32,
    /// The partition epoch of the view the leader computed `isr` from.
    pub partition_epoch: i32,
    /// The whole new ISR.
    pub isr: &'a [i32],
}

/// The leader of a partition asks to change its ISR (Kafka's AlterPartition). A request
/// computed from an older view (another change came first) is refused: applied as the
/// whole new ISR it could re-admit a replica that has fallen behind since.
pub fn alter_isr(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    req: IsrRequest<'_>,
) -> Result<Option<MetadataRecord>, AlterIsrError> {
    let IsrRequest {
        leader,
        incarnation,
        leader_epoch,
        partition_epoch,
        isr: new_isr,
    } = req;
    let p = image
        .partition(topic, partition)
        .ok_or(AlterIsrError::UnknownPartition)?;
    if p.leader != leader {
        return Err(AlterIsrError::NotLeader(leader));
    }
    if image.brokers.get(&leader).map(|b| b.incarnation) != Some(incarnation) {
        return Err(AlterIsrError::StaleBrokerEpoch(leader));
    }
    if p.leader_epoch != leader_epoch {
        return Err(AlterIsrError::FencedLeaderEpoch {
            got: leader_epoch,
            current: p.leader_epoch,
        });
    }
    if p.partition_epoch != partition_epoch {
        return Err(AlterIsrError::StaleVersion {
            got: partition_epoch,
            current: p.partition_epoch,
        });
    }
    if !new_isr.contains(&leader) {
        return Err(AlterIsrError::InvalidIsr("the leader must stay in its ISR"));
    }
    let mut isr: Vec<i32> = Vec::with_capacity(new_isr.len());
    for &r in new_isr {
        if !p.replicas.contains(&r) {
            return Err(AlterIsrError::IneligibleReplica(r));
        }
        if !p.isr.contains(&r) && !image.is_live(r) {
            return Err(AlterIsrError::IneligibleReplica(r));
        }
        if !isr.contains(&r) {
            isr.push(r);
        }
    }
    let mut sorted_old = p.isr.clone();
    sorted_old.sort_unstable();
    let mut sorted_new = isr.clone();
    sorted_new.sort_unstable();
    if sorted_old == sorted_new {
        return Ok(None);
    }
    Ok(Some(change(topic, p, p.leader, p.leader_epoch, isr)))
}

/// The ISR changes a leader asks for in one request (Kafka's AlterPartition with many
/// partitions), decided together: each item as [`alter_isr`] decides it on its own,
/// against the image with the earlier items' accepted changes applied (so an item
/// repeating a partition is judged after the first one). An accepted change that lets
/// a reassignment finish is followed by the record finishing it. Returns the records
/// of all accepted changes, to be appended together, and one outcome per item, in
/// order (`Ok(false)`: the ISR was already so).
pub fn alter_isr_batch<'a>(
    image: &MetadataImage,
    items: impl IntoIterator<Item = (&'a str, i32, IsrRequest<'a>)>,
) -> (Vec<MetadataRecord>, Vec<Result<bool, AlterIsrError>>) {
    let mut work = image.clone();
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for (topic, partition, req) in items {
        let outcome = alter_isr(&work, topic, partition, req).map(|record| {
            let Some(record) = record else {
                return false;
            };
            work.apply(&record);
            records.push(record);
            let done = work
                .partition(topic, partition)
                .and_then(|p| complete_reassignment(&work, topic, p));
            if let Some(done) = done {
                work.apply(&done);
                records.push(done);
            }
            true
        });
        outcomes.push(outcome);
    }
    (records, outcomes)
}

/// Moves leadership back to the preferred (first) replica when it is live and in sync.
pub fn preferred_leader_election(
    image: &MetadataImage,
    topic: &str,
    p: &PartitionImage,
) -> Option<MetadataRecord> {
    let preferred = *p.replicas.first()?;
    if p.leader == preferred || !p.isr.contains(&preferred) || !image.is_live(preferred) {
        return None;
    }
    Some(change(
        topic,
        p,
        preferred,
        p.leader_epoch + 1,
        p.isr.clone(),
    ))
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReassignError {
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error("invalid replica assignment: {0}")]
    InvalidAssignment(String),
    #[error("the replication factor would change from {from} to {to}")]
    ReplicationFactorChange { from: usize, to: usize },
    #[error("no reassignment is in progress for this partition")]
    NoReassignmentInProgress,
}

/// The record that finishes `p`'s reassignment, if every target replica is in sync:
/// the target becomes the replica set, the ISR keeps only target replicas and, if the
/// leader is being removed (or is fenced), the first live target replica leads.
pub fn complete_reassignment(
    image: &MetadataImage,
    topic: &str,
    p: &PartitionImage,
) -> Option<MetadataRecord> {
    if !p.is_reassigning() {
        return None;
    }
    let target = p.target_replicas();
    if target.is_empty() || !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    Some(move_to(image, topic, p, target))
}

/// The members of `p`'s ISR that are among `replicas`.
fn isr_within(p: &PartitionImage, replicas: &[i32]) -> Vec<i32> {
    p.isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect()
}

/// A `PartitionChanged` making `replicas` the replica set and the ISR its in-sync
/// members, keeping the leader if it stays a live member of both, else electing the
/// first live in-sync replica.
fn move_to(
    image: &MetadataImage,
    topic: &str,
    p: &PartitionImage,
    replicas: Vec<i32>,
) -> MetadataRecord {
    let isr = isr_within(p, &replicas);
    let keeps = isr.contains(&p.leader) && image.is_live(p.leader);
    let (leader, epoch) = if keeps {
        (p.leader, p.leader_epoch)
    } else {
        let next = replicas
            .iter()
            .copied()
            .find(|&r| isr.contains(&r) && image.is_live(r))
            .unwrap_or(NO_LEADER);
        (next, p.leader_epoch + 1)
    };
    MetadataRecord::PartitionChanged {
        topic: topic.to_string(),
        partition: p.index,
        leader,
        leader_epoch: epoch,
        isr,
        replicas: Some(replicas),
    }
}

/// AlterPartitionReassignments for one partition: `Some(target)` starts (or replaces)
/// a reassignment to `target`, `None` cancels the one in progress. Returns the records
/// to append; a reassignment whose target is already in sync completes at once.
pub fn reassign(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
) -> Result<Vec<MetadataRecord>, ReassignError> {
    let p = image
        .partition(topic, partition)
        .ok_or(ReassignError::UnknownPartition)?;
    let original = p.original_replicas();
    let Some(target) = target else {
        if !p.is_reassigning() {
            return Err(ReassignError::NoReassignmentInProgress);
        }
        if isr_within(p, &original).is_empty() {
            return Err(ReassignError::InvalidAssignment(
                "cancelling would need an unclean leader election: no original replica is in sync"
                    .into(),
            ));
        }
        return Ok(vec![move_to(image, topic, p, original)]);
    };
    if target.is_empty() {
        return Err(ReassignError::InvalidAssignment(
            "the replica list is empty".into(),
        ));
    }
    for (i, r) in target.iter().enumerate() {
        if target[..i].contains(r) {
            return Err(ReassignError::InvalidAssignment(format!(
                "broker {r} appears twice"
            )));
        }
        if !image.brokers.contains_key(r) {
            return Err(ReassignError::InvalidAssignment(format!(
                "broker {r} is not registered"
            )));
        }
    }
    if !allow_replication_factor_change && target.len() != original.len() {
        return Err(ReassignError::ReplicationFactorChange {
            from: original.len(),
            to: target.len(),
        });
    }
    if !p.is_reassigning() && target == original.as_slice() {
        return Ok(Vec::new());
    }
    let mut replicas = target.to_vec();
    replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    if adding.is_empty() && removing.is_empty() {
        // Only the order changes (or a reassignment back to the original set).
        return Ok(vec![move_to(image, topic, p, target.to_vec())]);
    }
    let mut next = p.clone();
    let started = MetadataRecord::PartitionReassigning {
        topic: topic.to_string(),
        partition,
        replicas: replicas.clone(),
        adding: adding.clone(),
        removing: removing.clone(),
    };
    next.replicas = replicas;
    next.adding_replicas = adding;
    next.removing_replicas = removing;
    let mut out = vec![started];
    out.extend(complete_reassignment(image, topic, &next));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rack_aware_placement_spreads_replicas_over_racks() {
        let live = [
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
        ];
        let rack = |id: i32| live.iter().find(|(b, _)| *b == id).unwrap().1;
        for seed in [0, 1, 7, 12345] {
            for rf in 1..=5 {
                let placed = assign_replicas_by_rack(&live, 0, 20, rf, seed).unwrap();
                let mut leaders = BTreeMap::new();
                for replicas in &placed {
                    assert_eq!(replicas.len(), rf);
                    let distinct: BTreeSet<_> = replicas.iter().collect();
                    assert_eq!(distinct.len(), rf, "{replicas:?}");
                    let racks: BTreeSet<_> = replicas.iter().map(|&b| rack(b)).collect();
                    assert_eq!(racks.len(), rf.min(3), "seed {seed}, rf {rf}: {replicas:?}");
                    *leaders.entry(replicas[0]).or_insert(0) += 1;
                }
                // 20 partitions over 5 brokers: 4 leaderships each.
                assert!(leaders.values().all(|&n| n == 4), "{leaders:?}");
            }
        }
        // Brokers without a rack share one; no racks at all is the plain placement.
        let mixed = [(1, Some("a")), (2, None), (3, None)];
        for replicas in assign_replicas_by_rack(&mixed, 0, 6, 2, 3).unwrap() {
            assert!(replicas.contains(&1), "{replicas:?}");
        }
        let plain = [(1, None), (2, None), (3, None)];
        assert_eq!(
            assign_replicas_by_rack(&plain, 0, 6, 2, 3).unwrap(),
            assign_replicas(&[1, 2, 3], 0, 6, 2, 3).unwrap()
        );
        assert_eq!(
            assign_replicas_by_rack(&live, 0, 1, 6, 0),
            Err(PlacementError::NotEnoughBrokers {
                requested: 6,
                live: 5
            })
        );
    }

    fn cluster(brokers: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::new(brokers[0]);
        for &id in brokers {
            image.apply(&MetadataRecord::BrokerRegistered {
                id,
                host: "127.0.0.1".into(),
                port: 9000 + id,
                incarnation: 0,
                listeners: vec![],
                rack: None,
            });
        }
        image
    }

    fn create(image: &mut MetadataImage, name: &str, assignment: Vec<Vec<i32>>) {
        image.apply(&MetadataRecord::TopicCreated {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
            partitions: assignment.len() as i32,
            replication_factor: assignment[0].len() as i16,
            configs: BTreeMap::new(),
            internal: false,
            assignment,
        });
    }

    /// An ISR change of t-0 computed from the current view.
    fn alter(
        image: &MetadataImage,
        leader: i32,
        leader_epoch: i32,
        isr: &[i32],
    ) -> Result<Option<MetadataRecord>, AlterIsrError> {
        let partition_epoch = image.partition("t", 0).unwrap().partition_epoch;
        alter_isr(
            image,
            "t",
            0,
            IsrRequest {
                leader,
                incarnation: 0,
                leader_epoch,
                partition_epoch,
                isr,
            },
        )
    }

    #[test]
    fn an_isr_change_from_a_stale_view_is_refused() {
        let mut image = cluster(&[1, 2, 3]);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let stale = IsrRequest {
            leader: 1,
            incarnation: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: &[1, 3],
        };
        // Another change lands first: the shrink to [1].
        image.apply(&alter(&image, 1, 0, &[1]).unwrap().unwrap());
        // The request computed before it would re-admit 3 without checking it caught up.
        assert_eq!(
            alter_isr(&image, "t", 0, stale),
            Err(AlterIsrError::StaleVersion { got: 0, current: 1 })
        );
    }

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    #[test]
    fn placement_spreads_leaders_and_never_repeats_a_broker() {
        let a = assign_replicas(&[3, 1, 2], 0, 6, 3, 0).unwrap();
        for replicas in &a {
            let mut r = replicas.clone();
            r.sort();
            assert_eq!(r, vec![1, 2, 3]);
        }
        let leaders: Vec<i32> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        let b = assign_replicas(&[1, 2, 3, 4, 5], 0, 50, 2, 7).unwrap();
        let mut per_broker = BTreeMap::new();
        for r in &b {
            assert_ne!(r[0], r[1]);
            *per_broker.entry(r[0]).or_insert(0) += 1;
        }
        assert!(per_broker.values().all(|&n| n == 10), "{per_broker:?}");
        assert_eq!(
            assign_replicas(&[1, 2], 0, 1, 3, 0),
            Err(PlacementError::NotEnoughBrokers {
                requested: 3,
                live: 2
            })
        );
    }

    #[test]
    fn fencing_moves_leadership_to_the_next_in_sync_replica() {
        let mut image = cluster(&[1, 2, 3]);
        create(&mut image, "t", vec![vec![1, 2, 3], vec![2, 3, 1]]);
        let records = fence_broker(&image, 1);
        apply_all(&mut image, &records);
        let p0 = image.partition("t", 0).unwrap();
        assert_eq!(
            (p0.leader, p0.leader_epoch, p0.isr.clone()),
            (2, 1, vec![2, 3])
        );
        let p1 = image.partition("t", 1).unwrap();
        assert_eq!(
            (p1.leader, p1.leader_epoch, p1.isr.clone()),
            (2, 0, vec![2, 3])
        );
        assert!(image.brokers[&1].fenced);
        assert!(
            fence_broker(&image, 1).is_empty(),
            "fencing twice changes nothing"
        );
    }

    #[test]
    fn last_in_sync_replica_keeps_the_partition_until_it_returns() {
        let mut image = cluster(&[1, 2, 3]);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        for id in [2, 3, 1] {
            let r = fence_broker(&image, id);
            apply_all(&mut image, &r);
        }
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        // Broker 2 is not in the ISR: no unclean election.
        let r = broker_heartbeat(&image, 2, "127.0.0.1", 9002, 0, &[], None);
        apply_all(&mut image, &r);
        assert_eq!(image.partition("t", 0).unwrap().leader, NO_LEADER);
        let r = broker_heartbeat(&image, 1, "127.0.0.1", 9001, 0, &[], None);
        apply_all(&mut image, &r);
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
    }

    #[test]
    fn a_restarted_broker_re_registers_and_its_old_requests_are_refused() {
        let mut image = cluster(&[1, 2, 3]);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let old = IsrRequest {
            leader: 1,
            incarnation: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: &[1, 2],
        };
        let r = broker_heartbeat(&image, 1, "127.0.0.1", 9001, 7, &[], None);
        assert!(matches!(
            r[..],
            [MetadataRecord::BrokerRegistered { incarnation: 7, .. }]
        ));
        apply_all(&mut image, &r);
        assert_eq!(
            alter_isr(&image, "t", 0, old),
            Err(AlterIsrError::StaleBrokerEpoch(1))
        );
        let new = IsrRequest {
            incarnation: 7,
            ..old
        };
        assert!(alter_isr(&image, "t", 0, new).unwrap().is_some());
    }

    #[test]
    fn heartbeat_registers_once_and_unfences() {
        let mut image = MetadataImage::new(1);
        let r = broker_heartbeat(&image, 1, "h", 1, 0, &[], None);
        assert_eq!(r.len(), 1);
        apply_all(&mut image, &r);
        assert!(broker_heartbeat(&image, 1, "h", 1, 0, &[], None).is_empty());
        let r = fence_broker(&image, 1);
        apply_all(&mut image, &r);
        assert_eq!(
            broker_heartbeat(&image, 1, "h", 1, 0, &[], None),
            vec![MetadataRecord::BrokerUnfenced { id: 1 }]
        );
    }

    #[test]
    fn alter_isr_checks_leader_epoch_and_eligibility() {
        let mut image = cluster(&[1, 2, 3]);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        assert_eq!(alter(&image, 2, 0, &[2]), Err(AlterIsrError::NotLeader(2)));
        assert!(matches!(
            alter(&image, 1, 5, &[1]),
            Err(AlterIsrError::FencedLeaderEpoch { .. })
        ));
        let shrink = alter(&image, 1, 0, &[1, 2]).unwrap().unwrap();
        image.apply(&shrink);
        assert_eq!(image.partition("t", 0).unwrap().isr, vec![1, 2]);
        let r = fence_broker(&image, 3);
        apply_all(&mut image, &r);
        assert_eq!(
            alter(&image, 1, 0, &[1, 2, 3]),
            Err(AlterIsrError::IneligibleReplica(3))
        );
        assert_eq!(alter(&image, 1, 0, &[2, 1]), Ok(None));
    }

    #[test]
    fn a_batch_of_isr_changes_is_decided_per_partition() {
        let mut image = cluster(&[1, 2, 3]);
        create(
            &mut image,
            "t",
            vec![vec![1, 2, 3], vec![2, 1, 3], vec![1, 3, 2]],
        );
        let req = |leader_epoch, partition_epoch, isr| IsrRequest {
            leader: 1,
            incarnation: 0,
            leader_epoch,
            partition_epoch,
            isr,
        };
        let (records, outcomes) = alter_isr_batch(
            &image,
            [
                ("t", 0, req(0, 0, &[1, 2][..])),
                // Led by 2: refused, and the others are decided all the same.
                ("t", 1, req(0, 0, &[1, 2, 3][..])),
                ("t", 2, req(0, 0, &[3, 1, 2][..])),
                ("u", 0, req(0, 0, &[1][..])),
                // t-0 again, computed from the view before the first change: stale.
                ("t", 0, req(0, 0, &[1][..])),
                ("t", 2, req(7, 0, &[1][..])),
            ],
        );
        assert_eq!(
            outcomes,
            vec![
                Ok(true),
                Err(AlterIsrError::NotLeader(1)),
                Ok(false),
                Err(AlterIsrError::UnknownPartition),
                Err(AlterIsrError::StaleVersion { got: 0, current: 1 }),
                Err(AlterIsrError::FencedLeaderEpoch { got: 7, current: 0 }),
            ]
        );
        assert_eq!(records.len(), 1);
        apply_all(&mut image, &records);
        assert_eq!(image.partition("t", 0).unwrap().isr, vec![1, 2]);
        assert_eq!(image.partition("t", 1).unwrap().isr, vec![2, 1, 3]);
    }

    #[test]
    fn an_isr_batch_finishes_the_reassignments_it_completes() {
        let mut image = cluster(&[1, 2, 3, 4]);
        create(&mut image, "t", vec![vec![1, 2, 3], vec![1, 2, 3]]);
        for p in 0..2 {
            let r = reassign(&image, "t", p, Some(&[1, 2, 4]), false).unwrap();
            apply_all(&mut image, &r);
        }
        let epoch = |image: &MetadataImage, p| image.partition("t", p).unwrap().partition_epoch;
        let (e0, e1) = (epoch(&image, 0), epoch(&image, 1));
        let (records, outcomes) = alter_isr_batch(
            &image,
            [0, 1].map(|p| {
                let partition_epoch = if p == 0 { e0 } else { e1 };
                (
                    "t",
                    p,
                    IsrRequest {
                        leader: 1,
                        incarnation: 0,
                        leader_epoch: 0,
                        partition_epoch,
                        isr: &[1, 2, 3, 4][..],
                    },
                )
            }),
        );
        assert_eq!(outcomes, vec![Ok(true), Ok(true)]);
        // Each ISR change, then the record moving the partition to its target.
        assert_eq!(records.len(), 4);
        apply_all(&mut image, &records);
        for p in 0..2 {
            let p = image.partition("t", p).unwrap();
            assert_eq!(p.replicas, vec![1, 2, 4]);
            assert!(!p.is_reassigning());
        }
    }

    #[test]
    fn preferred_leader_comes_back_when_in_sync() {
        let mut image = cluster(&[1, 2, 3]);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let r = fence_broker(&image, 1);
        apply_all(&mut image, &r);
        let p = image.partition("t", 0).unwrap().clone();
        assert!(preferred_leader_election(&image, "t", &p).is_none());
        let r = broker_heartbeat(&image, 1, "127.0.0.1", 9001, 0, &[], None);
        apply_all(&mut image, &r);
        let rejoin = alter(&image, 2, 1, &[2, 3, 1]).unwrap().unwrap();
        image.apply(&rejoin);
        let p = image.partition("t", 0).unwrap().clone();
        image.apply(&preferred_leader_election(&image, "t", &p).unwrap());
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
    }
    #[test]
    fn reassignment_adds_first_then_drops_once_in_sync() {
        let mut image = cluster(&[1, 2, 3, 4]);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let r = reassign(&image, "t", 0, Some(&[4, 2, 3]), false).unwrap();
        assert_eq!(r.len(), 1, "4 is not in sync yet: {r:?}");
        apply_all(&mut image, &r);
        let p = image.partition("t", 0).unwrap().clone();
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![4], vec![1])
        );
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
        assert!(complete_reassignment(&image, "t", &p).is_none());
        // 4 caught up: the leader adds it to the ISR, which completes the move.
        let grow = alter(&image, 1, 0, &[1, 2, 3, 4]).unwrap().unwrap();
        image.apply(&grow);
        let p = image.partition("t", 0).unwrap().clone();
        let done = complete_reassignment(&image, "t", &p).unwrap();
        image.apply(&done);
        let p = image.partition("t", 0).unwrap();
        assert_eq!(p.replicas, vec![4, 2, 3]);
        assert!(!p.is_reassigning());
        assert_eq!(p.isr, vec![2, 3, 4]);
        // The leader was removed: the first live in-sync target replica leads.
        assert_eq!((p.leader, p.leader_epoch), (4, 1));
    }

    #[test]
    fn reassignment_is_validated_and_can_be_cancelled() {
        let mut image = cluster(&[1, 2, 3]);
        create(&mut image, "t", vec![vec![1, 2]]);
        assert_eq!(
            reassign(&image, "x", 0, Some(&[1]), true),
            Err(ReassignError::UnknownPartition)
        );
        assert!(matches!(
            reassign(&image, "t", 0, Some(&[1, 9]), true),
            Err(ReassignError::InvalidAssignment(_))
        ));
        assert!(matches!(
            reassign(&image, "t", 0, Some(&[1, 1]), true),
            Err(ReassignError::InvalidAssignment(_))
        ));
        assert_eq!(
            reassign(&image, "t", 0, Some(&[1, 2, 3]), false),
            Err(ReassignError::ReplicationFactorChange { from: 2, to: 3 })
        );
        assert_eq!(
            reassign(&image, "t", 0, None, true),
            Err(ReassignError::NoReassignmentInProgress)
        );
        assert_eq!(
            reassign(&image, "t", 0, Some(&[1, 2]), false),
            Ok(Vec::new())
        );
        // Shrinking to replicas already in sync completes at once.
        let r = reassign(&image, "t", 0, Some(&[2]), true).unwrap();
        assert_eq!(r.len(), 2);
        apply_all(&mut image, &r);
        let p = image.partition("t", 0).unwrap();
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![2], vec![2], 2)
        );
        // Start a move to 3, then cancel it: back to [2], 3 dropped.
        let r = reassign(&image, "t", 0, Some(&[3]), true).unwrap();
        apply_all(&mut image, &r);
        assert_eq!(image.partition("t", 0).unwrap().replicas, vec![3, 2]);
        let r = reassign(&image, "t", 0, None, true).unwrap();
        apply_all(&mut image, &r);
        let p = image.partition("t", 0).unwrap();
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![2], vec![2], 2)
        );
        assert!(!p.is_reassigning());
    }

    #[test]
    fn a_new_reassignment_replaces_the_one_in_progress() {
        let mut image = cluster(&[1, 2, 3, 4]);
        create(&mut image, "t", vec![vec![1, 2]]);
        let r = reassign(&image, "t", 0, Some(&[3, 2]), true).unwrap();
        apply_all(&mut image, &r);
        let r = reassign(&image, "t", 0, Some(&[4, 2]), true).unwrap();
        apply_all(&mut image, &r);
        let p = image.partition("t", 0).unwrap();
        assert_eq!(p.replicas, vec![4, 2, 1]);
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![4], vec![1])
        );
    }
}
