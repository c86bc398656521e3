//! Consumer groups of the new rebalance protocol (KIP-848): the group, its members and
//! the pure pieces the coordinator drives them with.
//!
//! A consumer group has a *group epoch* (bumped whenever its members or what they
//! subscribe to change), a *target assignment* computed by a server-side assignor for
//! one group epoch (its *assignment epoch*), and members that converge on their target
//! one heartbeat at a time ([`reconcile`]): a member first gives up the partitions it
//! must lose, and a partition is handed to its new owner only once its previous owner no
//! longer holds it. The partition owners (with the epoch they hold it in) are kept here,
//! so the rule "at most one owner per partition" is checked where it is changed.
//!
//! - [`assignor`]: the `uniform` and `range` assignors.
//! - [`reconcile`]: Kafka's CurrentAssignmentBuilder (member states STABLE,
//!   UNREVOKED_PARTITIONS, UNRELEASED_PARTITIONS).
//! - [`records`]: the group's `__consumer_offsets` records, in Kafka 4's format.
//! - [`topic_regex`]: regular-expression subscriptions: checking a pattern, resolving
//!   a group's patterns to topic names.

pub mod assignor;
pub(crate) mod reconcile;
pub(crate) mod records;
pub(crate) mod topic_regex;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use topic_regex::ResolvedRegex;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The member epoch of a static member that left for a while (it keeps its partitions
/// until its session expires).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// The member epoch of a member leaving for good.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;

/// What the coordinator needs to know of the cluster's topics; the broker implements it
/// over its metadata image.
pub trait TopicsView {
    /// The id and partition count of a topic, if it exists.
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// The name of a topic id, if it exists.
    fn topic_name(&self, id: &Uuid) -> Option<String>;
    /// Calls `each` with every topic's name and whether it is internal
    /// (`__consumer_offsets`, `__transaction_state`): what regular expressions are
    /// matched against.
    fn each_topic(&self, each: &mut dyn FnMut(&str, bool));
    /// A number that grows whenever the set of topics changes (it may grow more often):
    /// the metadata version a regular expression's resolution is stamped with.
    fn topics_version(&self) -> i64;
    /// Whether the principal of the request at hand may DESCRIBE the topic: a regular
    /// expression resolves only to those, as Kafka filters a resolution with the
    /// principal of the heartbeat that triggered it. Everything, without an authorizer.
    fn may_describe(&self, _name: &str) -> bool {
        true
    }
    /// The distinct racks of the brokers that hold a replica of partition `partition`
    /// of topic `name`, sorted (Kafka's `racksForPartition`): during a reassignment,
    /// the replicas being added and removed count too. Empty when the topic or the
    /// partition does not exist or no replica's broker has a `broker.rack`.
    fn partition_racks(&self, _name: &str, _partition: i32) -> Vec<String> {
        Vec::new()
    }
}

/// Each subscribed topic's digest of its partitions' replica racks, for one metadata
/// version ([`TopicsView::topics_version`]): the group metadata hash covers the racks
/// (KIP-1101), and this keeps a heartbeat's share of that work to one lookup per
/// subscribed topic. A new version empties it; only topics some group subscribes to
/// are computed, each once per version. One per coordinator, shared by its groups.
#[derive(Debug, Default)]
pub(crate) struct RackDigests {
    version: Option<i64>,
    by_topic: HashMap<Uuid, u64>,
}

impl RackDigests {
    /// The topic's digest: 0 when no replica of any of its partitions is on a broker
    /// with a rack, otherwise a hash of each partition's index and sorted racks.
    fn digest(&mut self, topics: &dyn TopicsView, name: &str, id: Uuid, partitions: i32) -> u64 {
        let version = topics.topics_version();
        if self.version != Some(version) {
            self.by_topic.clear();
            self.version = Some(version);
        }
        *self.by_topic.entry(id).or_insert_with(|| {
            let mut hash = Fnv::new();
            let mut any = false;
            for p in 0..partitions.max(0) {
                let racks = topics.partition_racks(name, p);
                if racks.is_empty() {
                    continue;
                }
                any = true;
                hash.feed(&p.to_be_bytes());
                for rack in &racks {
                    hash.feed(rack.as_bytes());
                    hash.feed(&[0]);
                }
                hash.feed(&[0xff]);
            }
            if any {
                hash.0.max(1)
            } else {
                0
            }
        })
    }
}

/// FNV-1a, 64 bits: stable across processes and versions (the hashes are stored).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Where a member is in its reconciliation (Kafka's MemberState, with its codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// The member has its target assignment for its epoch.
    Stable,
    /// The member must first give up `pending_revocation`.
    UnrevokedPartitions,
    /// The member waits for partitions still held by others.
    UnreleasedPartitions,
}

impl MemberState {
    pub(crate) fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    pub(crate) fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(MemberState::Stable),
            1 => Some(MemberState::UnrevokedPartitions),
            2 => Some(MemberState::UnreleasedPartitions),
            _ => None,
        }
    }
}

/// The state of a consumer group as ListGroups and ConsumerGroupDescribe name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch moved past the target assignment's.
    Assigning,
    /// Some member has not reached its target yet.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// What a member that speaks the classic protocol (JoinGroup, SyncGroup, Heartbeat)
/// in a consumer group brings besides its subscription: Kafka's ClassicMemberMetadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassicMeta {
    pub session_timeout_ms: i32,
    /// The JoinGroup protocols in the member's order: (name, ConsumerProtocolSubscription).
    pub protocols: Vec<(String, bytes::Bytes)>,
}

/// One member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Sorted, without duplicates.
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub state: MemberState,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// What the member owns and may use.
    pub assigned: Assignment,
    /// What the member owns and must give up.
    pub pending_revocation: Assignment,
    /// Present for a member of the classic protocol (kept through an upgrade, or
    /// joined with JoinGroup after it).
    pub classic: Option<ClassicMeta>,
}

impl ConsumerMember {
    pub(crate) fn new(member_id: &str) -> Self {
        ConsumerMember {
            member_id: member_id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            state: MemberState::Stable,
            member_epoch: 0,
            previous_member_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            classic: None,
        }
    }

    /// What the member subscribes to: topic names and regular expression.
    pub(crate) fn subscription(&self) -> (Vec<String>, Option<String>) {
        (
            self.subscribed_topic_names.clone(),
            self.subscribed_topic_regex.clone(),
        )
    }

    /// The metadata part (what ConsumerGroupMemberMetadata holds) equals `other`'s.
    pub(crate) fn same_metadata(&self, other: &ConsumerMember) -> bool {
        self.instance_id == other.instance_id
            && self.rack_id == other.rack_id
            && self.client_id == other.client_id
            && self.client_host == other.client_host
            && self.subscribed_topic_names == other.subscribed_topic_names
            && self.subscribed_topic_regex == other.subscribed_topic_regex
            && self.rebalance_timeout_ms == other.rebalance_timeout_ms
            && self.server_assignor == other.server_assignor
            && self.classic == other.classic
    }

    /// The assignment part (what ConsumerGroupCurrentMemberAssignment holds) equals
    /// `other`'s.
    pub(crate) fn same_assignment(&self, other: &ConsumerMember) -> bool {
        self.state == other.state
            && self.member_epoch == other.member_epoch
            && self.previous_member_epoch == other.previous_member_epoch
            && self.assigned == other.assigned
            && self.pending_revocation == other.pending_revocation
    }

    /// Every partition the member holds: assigned or pending revocation.
    pub(crate) fn owned(&self) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }
}

/// A consumer group: epochs, members, the target assignment and who owns what.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// Brook's hash of the subscribed topics' ids, partition counts and replica racks,
    /// stored with the group epoch (Kafka's MetadataHash field, with a hash of Brook's
    /// own): when it changes (partitions added, a topic created or deleted, a replica
    /// moved to another rack), the epoch is bumped.
    pub metadata_hash: i64,
    pub creation_time_ms: i64,
    /// When the group last became empty (the base of its offsets' expiry).
    pub empty_since_ms: i64,
    pub members: BTreeMap<String, ConsumerMember>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member id -> target assignment (for `assignment_epoch`).
    pub target: BTreeMap<String, Assignment>,
    /// Subscribed topic name -> how many members subscribe to it.
    subscribers: BTreeMap<String, usize>,
    /// Subscribed regular expression -> how many members subscribe with it.
    regex_subscribers: BTreeMap<String, usize>,
    /// The group's regular expressions as last resolved (Kafka keeps them per group,
    /// each in a ConsumerGroupRegularExpression record). One without subscribers is
    /// dropped, with its tombstone, by the coordinator.
    pub regexes: BTreeMap<String, ResolvedRegex>,
    /// Partition -> (owner, the epoch at which the owner was given it: its *assignment
    /// epoch*, KIP-1251). A member keeps a partition's assignment epoch while its own
    /// epoch moves on, so a commit sent with an epoch the member has since left still
    /// proves ownership of the partitions it held then.
    owners: HashMap<(Uuid, i32), (String, i32)>,
}

impl ConsumerGroup {
    pub(crate) fn new(now_ms: i64) -> Self {
        ConsumerGroup {
            creation_time_ms: now_ms,
            empty_since_ms: now_ms,
            ..ConsumerGroup::default()
        }
    }

    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch != self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub(crate) fn partition_owner(&self, topic: Uuid, partition: i32) -> Option<&str> {
        self.owners
            .get(&(topic, partition))
            .map(|(owner, _)| owner.as_str())
    }

    /// The epoch at which `member_id` was given the partition, if it holds it.
    pub(crate) fn assignment_epoch(
        &self,
        member_id: &str,
        topic: Uuid,
        partition: i32,
    ) -> Option<i32> {
        self.owners
            .get(&(topic, partition))
            .filter(|(owner, _)| owner == member_id)
            .map(|(_, epoch)| *epoch)
    }

    /// The topics some member subscribes to by name.
    pub(crate) fn subscribed_topic_names(&self) -> impl Iterator<Item = &str> {
        self.subscribers.keys().map(String::as_str)
    }

    /// The topics some member subscribes to, by name or through a resolved regular
    /// expression.
    pub(crate) fn subscribed_topics(&self) -> BTreeSet<&str> {
        let mut topics: BTreeSet<&str> = self.subscribed_topic_names().collect();
        for (pattern, resolved) in &self.regexes {
            if self.regex_subscribers.contains_key(pattern) {
                topics.extend(resolved.topics.iter().map(String::as_str));
            }
        }
        topics
    }

    /// The topics one member subscribes to: its names and what its regular expression
    /// resolved to.
    pub(crate) fn member_topics<'a>(&'a self, m: &'a ConsumerMember) -> BTreeSet<&'a str> {
        let mut topics: BTreeSet<&str> = m
            .subscribed_topic_names
            .iter()
            .map(String::as_str)
            .collect();
        if let Some(resolved) = m
            .subscribed_topic_regex
            .as_ref()
            .and_then(|p| self.regexes.get(p))
        {
            topics.extend(resolved.topics.iter().map(String::as_str));
        }
        topics
    }

    /// The regular expressions some member subscribes with.
    pub(crate) fn subscribed_regexes(&self) -> impl Iterator<Item = &str> {
        self.regex_subscribers.keys().map(String::as_str)
    }

    pub(crate) fn has_regex_subscriber(&self, pattern: &str) -> bool {
        self.regex_subscribers.contains_key(pattern)
    }

    pub(crate) fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribers.contains_key(topic)
            || self.regexes.iter().any(|(pattern, resolved)| {
                self.regex_subscribers.contains_key(pattern) && resolved.topics.contains(topic)
            })
    }

    /// Adds or replaces a member, keeping the owners, subscriber counts and static
    /// member index in step. A partition the member holds that the index says another
    /// member holds is taken over (replay of a damaged log; never the coordinator's own
    /// decisions, which the tests check with [`ConsumerGroup::check_invariants`]).
    pub(crate) fn upsert_member(&mut self, member: ConsumerMember) {
        // What the member already held keeps the epoch it was given at.
        let held_since: HashMap<(Uuid, i32), i32> = self
            .members
            .get(&member.member_id)
            .map(|old| {
                old.owned()
                    .filter_map(|key| {
                        self.owners
                            .get(&key)
                            .filter(|(o, _)| *o == member.member_id)
                            .map(|(_, e)| (key, *e))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.detach(&member.member_id);
        for topic in &member.subscribed_topic_names {
            *self.subscribers.entry(topic.clone()).or_default() += 1;
        }
        if let Some(pattern) = &member.subscribed_topic_regex {
            *self.regex_subscribers.entry(pattern.clone()).or_default() += 1;
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        for key in member.owned().collect::<Vec<_>>() {
            let since = held_since
                .get(&key)
                .map_or(member.member_epoch, |e| (*e).min(member.member_epoch));
            let previous = self.owners.insert(key, (member.member_id.clone(), since));
            if let Some((other, _)) = previous.filter(|(o, _)| *o != member.member_id) {
                tracing::warn!(member = %member.member_id, other = %other, "partition held by two members; the later one keeps it");
                if let Some(o) = self.members.get_mut(&other) {
                    for a in [&mut o.assigned, &mut o.pending_revocation] {
                        if let Some(ps) = a.get_mut(&key.0) {
                            ps.remove(&key.1);
                            if ps.is_empty() {
                                a.remove(&key.0);
                            }
                        }
                    }
                }
            }
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member and its target assignment; what it held becomes free.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        self.detach(member_id);
        self.target.remove(member_id);
        self.members.remove(member_id)
    }

    /// Takes the member's entries out of the indexes (not out of `members`).
    fn detach(&mut self, member_id: &str) {
        let Some(old) = self.members.get(member_id) else {
            return;
        };
        for topic in &old.subscribed_topic_names {
            if let Some(n) = self.subscribers.get_mut(topic) {
                *n -= 1;
                if *n == 0 {
                    self.subscribers.remove(topic);
                }
            }
        }
        if let Some(pattern) = &old.subscribed_topic_regex {
            if let Some(n) = self.regex_subscribers.get_mut(pattern) {
                *n -= 1;
                if *n == 0 {
                    self.regex_subscribers.remove(pattern);
                }
            }
        }
        if let Some(instance) = &old.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        for key in old.owned().collect::<Vec<_>>() {
            if self.owners.get(&key).is_some_and(|(o, _)| o == member_id) {
                self.owners.remove(&key);
            }
        }
    }

    /// The assignor the group uses: the one most members ask for (ties and no choice at
    /// all go to the earliest in `configured`), as Kafka picks it.
    pub(crate) fn preferred_assignor<'a>(&self, configured: &'a [String]) -> &'a str {
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        configured
            .iter()
            .find(|name| best > 0 && votes.get(name.as_str()) == Some(&best))
            .or_else(|| configured.first())
            .map_or(assignor::UNIFORM, String::as_str)
    }

    /// Checks what the indexes promise: every owned partition has one owner, recorded
    /// with an assignment epoch no later than the owner's epoch; counts and static ids
    /// match the members. For tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut seen: HashMap<(Uuid, i32), &str> = HashMap::new();
        for m in self.members.values() {
            for key in m.owned() {
                if let Some(other) = seen.insert(key, &m.member_id) {
                    panic!("{key:?} owned by {other} and {}", m.member_id);
                }
                let (owner, since) = self.owners.get(&key).expect("owner index entry");
                assert_eq!(owner, &m.member_id, "owner index of {key:?}");
                assert!(*since <= m.member_epoch, "assignment epoch of {key:?}");
            }
        }
        assert_eq!(seen.len(), self.owners.len(), "stale owner entries");
        let mut subscribers: BTreeMap<String, usize> = BTreeMap::new();
        for m in self.members.values() {
            for t in &m.subscribed_topic_names {
                *subscribers.entry(t.clone()).or_default() += 1;
            }
        }
        assert_eq!(subscribers, self.subscribers);
        let mut regexes: BTreeMap<String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(p) = &m.subscribed_topic_regex {
                *regexes.entry(p.clone()).or_default() += 1;
            }
        }
        assert_eq!(regexes, self.regex_subscribers);
    }
}

/// A stable 64-bit hash of the subscribed topics as they exist now: name, id and
/// partition count of each, and the racks of each partition's replicas when brokers
/// have racks (FNV-1a; Brook's own, not Kafka's MetadataHash function). As with
/// KIP-1101, a change of replica racks (a reassignment across racks, a broker
/// registering with another `broker.rack`) changes the hash, and so bumps the group
/// epoch; without racks the hash is what it was before racks counted.
pub(crate) fn metadata_hash<'a>(
    topics: &dyn TopicsView,
    names: impl Iterator<Item = &'a str>,
    racks: &mut RackDigests,
) -> i64 {
    let mut hash = Fnv::new();
    for name in names {
        if let Some((id, partitions)) = topics.topic(name) {
            hash.feed(name.as_bytes());
            hash.feed(&[0]);
            hash.feed(id.as_bytes());
            hash.feed(&partitions.to_be_bytes());
            let digest = racks.digest(topics, name, id, partitions);
            if digest != 0 {
                hash.feed(&[0xfe]);
                hash.feed(&digest.to_be_bytes());
            }
        }
    }
    hash.0 as i64
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Topics for tests: name -> (id, partitions), the version, and the racks of some
    /// partitions' replicas: (name, partition) -> sorted racks.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Topics(
        pub BTreeMap<String, (Uuid, i32)>,
        pub i64,
        pub BTreeMap<(String, i32), Vec<String>>,
    );

    impl Topics {
        pub(crate) fn with(topics: &[(&str, i32)]) -> Self {
            let mut t = Topics::default();
            for (name, partitions) in topics {
                t.set(name, *partitions);
            }
            t
        }

        pub(crate) fn set(&mut self, name: &str, partitions: i32) {
            let id = self
                .0
                .get(name)
                .map(|(id, _)| *id)
                .unwrap_or_else(|| Uuid::from_u64_pair(0xb400_c000, self.1 as u64 + 1));
            self.0.insert(name.to_owned(), (id, partitions));
            self.1 += 1;
        }

        pub(crate) fn remove(&mut self, name: &str) {
            self.0.remove(name);
            self.1 += 1;
        }

        /// Sets the racks of a partition's replicas (a new metadata version).
        pub(crate) fn set_racks(&mut self, name: &str, partition: i32, racks: &[&str]) {
            let mut racks: Vec<String> = racks.iter().map(|r| (*r).to_owned()).collect();
            racks.sort_unstable();
            racks.dedup();
            self.2.insert((name.to_owned(), partition), racks);
            self.1 += 1;
        }
    }

    impl TopicsView for Topics {
        fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.get(name).copied()
        }

        fn topic_name(&self, id: &Uuid) -> Option<String> {
            self.0
                .iter()
                .find(|(_, (i, _))| i == id)
                .map(|(n, _)| n.clone())
        }

        fn each_topic(&self, each: &mut dyn FnMut(&str, bool)) {
            for name in self.0.keys() {
                each(
                    name,
                    name == "__consumer_offsets" || name == "__transaction_state",
                );
            }
        }

        fn topics_version(&self) -> i64 {
            self.1
        }

        fn partition_racks(&self, name: &str, partition: i32) -> Vec<String> {
            self.2
                .get(&(name.to_owned(), partition))
                .cloned()
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::testing::Topics;
    use super::*;

    /// Counts the partition-rack lookups of the topics it wraps.
    struct Counting(Topics, Cell<usize>);

    impl TopicsView for Counting {
        fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.topic(name)
        }
        fn topic_name(&self, id: &Uuid) -> Option<String> {
            self.0.topic_name(id)
        }
        fn each_topic(&self, each: &mut dyn FnMut(&str, bool)) {
            self.0.each_topic(each)
        }
        fn topics_version(&self) -> i64 {
            self.0.topics_version()
        }
        fn partition_racks(&self, name: &str, partition: i32) -> Vec<String> {
            self.1.set(self.1.get() + 1);
            self.0.partition_racks(name, partition)
        }
    }

    #[test]
    fn the_hash_covers_replica_racks_and_looks_them_up_once_per_version() {
        let mut topics = Topics::with(&[("a", 4), ("b", 100)]);
        let no_racks = {
            let view = Counting(topics.clone(), Cell::new(0));
            metadata_hash(&view, ["a"].into_iter(), &mut RackDigests::default())
        };
        topics.set_racks("a", 1, &["r1", "r2"]);
        let view = Counting(topics.clone(), Cell::new(0));
        let mut digests = RackDigests::default();
        let with_racks = metadata_hash(&view, ["a"].into_iter(), &mut digests);
        assert_ne!(no_racks, with_racks);
        assert_eq!(
            view.1.get(),
            4,
            "each partition of the subscribed topic once"
        );
        for _ in 0..10 {
            assert_eq!(
                metadata_hash(&view, ["a"].into_iter(), &mut digests),
                with_racks
            );
        }
        assert_eq!(
            view.1.get(),
            4,
            "later heartbeats of the version look up nothing"
        );
        // Another rack set for the partition: another hash; the rack order is not
        // part of it.
        let mut other = topics.clone();
        other.set_racks("a", 1, &["r2", "r3"]);
        let other_hash = metadata_hash(&other, ["a"].into_iter(), &mut digests);
        assert_ne!(other_hash, with_racks);
        let mut reordered = topics.clone();
        reordered.set_racks("a", 1, &["r2", "r1"]);
        reordered.1 += 100; // a version of its own, as every image has
        assert_eq!(
            metadata_hash(&reordered, ["a"].into_iter(), &mut digests),
            with_racks
        );
        // Without any rack the hash is the one of names, ids and partition counts.
        let mut plain = Topics::with(&[("a", 4), ("b", 100)]);
        plain.1 += 200;
        assert_eq!(
            metadata_hash(&plain, ["a"].into_iter(), &mut digests),
            no_racks
        );
    }
}
