//! KIP-932 share groups: the group's members and their assignment (the `simple`
//! assignor), each share-partition's delivery state ([`partition`]), share sessions
//! ([`session`]) and their records ([`records`]).
//!
//! A share group gives a partition to any number of members: the records of a
//! partition are shared out by acquisition (see [`partition`]), not by ownership, so
//! the assignment needs no revocation and a member takes its target assignment at
//! once.

pub mod partition;
pub mod records;
pub mod session;

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::consumer::{Assignment, TopicsView};
pub use records::{StoredBatch, StoredPartitionState};

/// The assignor's name, as ShareGroupDescribe reports it.
pub const ASSIGNOR_NAME: &str = "simple";

/// A share group's state as ListGroups and ShareGroupDescribe name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareGroupState {
    Empty,
    Stable,
}

impl ShareGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ShareGroupState::Empty => "Empty",
            ShareGroupState::Stable => "Stable",
        }
    }
}

/// One member of a share group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ShareMember {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
}

/// A share group's membership.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ShareGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// A hash of the subscribed topics' ids, partition counts and replica racks (Brook's
    /// function, KIP-1101): when it changes the group epoch is bumped and the assignment
    /// recomputed.
    pub metadata_hash: i64,
    pub members: BTreeMap<String, ShareMember>,
    /// The target assignment of each member.
    pub target: BTreeMap<String, Assignment>,
    /// The durable state of each share-partition the group consumes, as last written
    /// (the broker holds the live state; this is what it starts from after a restart).
    pub partition_states: BTreeMap<(Uuid, i32), records::StoredPartitionState>,
}

impl ShareGroup {
    pub(crate) fn state(&self) -> ShareGroupState {
        if self.members.is_empty() {
            ShareGroupState::Empty
        } else {
            ShareGroupState::Stable
        }
    }

    /// Every topic some member subscribes to.
    pub(crate) fn subscribed_topics(&self) -> BTreeSet<&str> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().map(String::as_str))
            .collect()
    }

    /// Whether a member is assigned `partition` of topic `topic`.
    pub(crate) fn is_assigned(&self, member: &str, topic: &Uuid, partition: i32) -> bool {
        self.members
            .get(member)
            .and_then(|m| m.assigned.get(topic))
            .is_some_and(|p| p.contains(&partition))
    }
}

/// Java's `String.hashCode` (the assignor spreads members over partitions with it).
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The simple assignor of KIP-932, after Kafka's `SimpleAssignor`: every member keeps
/// what it had of the topics it still subscribes to; each member is also given the
/// partition its id hashes to among its subscribed partitions; partitions nobody has
/// then are dealt round-robin among the members subscribed to their topic. Several
/// members may share a partition; with fewer partitions than members every partition
/// has a member.
pub(crate) fn assign(group: &ShareGroup, topics: &dyn TopicsView) -> BTreeMap<String, Assignment> {
    // Each member's subscribed partitions, in topic-name then partition order.
    let mut subscribed: BTreeMap<&str, Vec<(Uuid, i32)>> = BTreeMap::new();
    let mut members_of_topic: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    let mut all: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    for (id, m) in &group.members {
        let names: BTreeSet<&str> = m
            .subscribed_topic_names
            .iter()
            .map(String::as_str)
            .collect();
        let mut partitions = Vec::new();
        for name in names {
            if let Some((topic, count)) = topics.topic(name) {
                partitions.extend((0..count.max(0)).map(|p| (topic, p)));
                members_of_topic.entry(topic).or_default().push(id);
            }
        }
        all.extend(partitions.iter().copied());
        subscribed.insert(id, partitions);
    }
    let mut result: BTreeMap<String, Assignment> = group
        .members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    // What members had and may keep.
    for (id, m) in &group.members {
        let allowed = &subscribed[id.as_str()];
        for (topic, partitions) in &m.assigned {
            for p in partitions {
                if allowed.contains(&(*topic, *p)) {
                    if let Some(a) = result.get_mut(id) {
                        a.entry(*topic).or_default().insert(*p);
                    }
                    taken.insert((*topic, *p));
                }
            }
        }
    }
    // Each member's hashed partition.
    for (id, partitions) in &subscribed {
        if partitions.is_empty() {
            continue;
        }
        let n = partitions.len() as i64;
        let index = (i64::from(java_hash(id)) % n).unsigned_abs() as usize;
        let (topic, p) = partitions[index];
        if let Some(a) = result.get_mut(*id) {
            a.entry(topic).or_default().insert(p);
        }
        taken.insert((topic, p));
    }
    // Round-robin over the partitions nobody has, per topic.
    let mut cursor: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (topic, p) in all.difference(&taken) {
        let Some(members) = members_of_topic.get(topic) else {
            continue;
        };
        let i = cursor.entry(*topic).or_default();
        let member = members[*i % members.len()];
        *i += 1;
        if let Some(a) = result.get_mut(member) {
            a.entry(*topic).or_default().insert(*p);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::testing::Topics;

    fn member(id: &str, topics: &[&str]) -> ShareMember {
        ShareMember {
            member_id: id.into(),
            subscribed_topic_names: topics.iter().map(|t| t.to_string()).collect(),
            ..ShareMember::default()
        }
    }

    fn group(members: &[ShareMember]) -> ShareGroup {
        ShareGroup {
            members: members
                .iter()
                .map(|m| (m.member_id.clone(), m.clone()))
                .collect(),
            ..ShareGroup::default()
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn one_partition_goes_to_every_member() {
        let topics = Topics::with(&[("t", 1)]);
        let g = group(&[
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
        ]);
        let result = assign(&g, &topics);
        for a in result.values() {
            assert_eq!(count(a), 1);
        }
    }

    #[test]
    fn every_partition_has_a_member_and_kept_partitions_stay() {
        let topics = Topics::with(&[("t", 8), ("u", 3)]);
        let mut g = group(&[member("a", &["t", "u"]), member("b", &["t"])]);
        let first = assign(&g, &topics);
        let mut covered: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        for a in first.values() {
            for (t, ps) in a {
                covered.extend(ps.iter().map(|p| (*t, *p)));
            }
        }
        assert_eq!(covered.len(), 11);
        let (u, _) = topics.topic("u").unwrap();
        assert!(!first["b"].contains_key(&u), "b does not subscribe to u");
        for (id, a) in &first {
            g.members.get_mut(id).unwrap().assigned = a.clone();
        }
        assert_eq!(assign(&g, &topics), first, "stable when nothing changed");
    }

    #[test]
    fn java_hash_matches_java() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
    }
}
