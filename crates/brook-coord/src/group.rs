//! One classic group: its state, members, protocol choice and committed offsets.
//!
//! This module holds the data and the rules that touch only one group (who may join,
//! which protocol wins, who leads). The coordinator drives the transitions; timers and
//! replies live there.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use brook_protocol::consumer_protocol;
use bytes::Bytes;

use crate::consumer::ConsumerGroup;
use crate::records::{CommittedOffset, OffsetsRecord};
use crate::share::ShareGroup;
use crate::ReplyToken;

/// The protocol type of Kafka consumers, whose subscriptions the coordinator can read.
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The states of a classic group, named as Kafka names them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join: JoinGroup requests are parked.
    PreparingRebalance,
    /// The join phase is over: waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group no longer exists (what DescribeGroups reports for an unknown group).
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    fn valid_previous_states(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// A request whose reply waits for a later event, and the version to shape it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parked {
    pub token: ReplyToken,
    pub version: i16,
}

/// One entry of a member's protocol list: a name and the opaque metadata for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// The parked JoinGroup: present while the member has (re)joined the current
    /// rebalance and waits for it to complete.
    pub awaiting_join: Option<Parked>,
    /// The parked SyncGroup: present while the member waits for the leader's assignment.
    pub awaiting_sync: Option<Parked>,
    /// Joined but not yet through a completed join phase: such a member cannot heartbeat,
    /// so it is timed out by the new-member join timeout instead.
    pub is_new: bool,
}

impl Member {
    pub(crate) fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's most preferred protocol among the candidates.
    fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Same protocols, same order, same metadata.
    pub(crate) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// Whether an expiring session timer should spare the member: a member with a parked
    /// join or sync is alive (it is waiting on the coordinator); a new member is not
    /// spared, since its timer is the new-member join timeout.
    pub(crate) fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// When the group entered its current state (the base of offset expiry once Empty).
    pub state_timestamp_ms: Option<i64>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation_id: i32,
    pub leader_id: Option<String>,
    /// Ordered by member id, so every walk over members is deterministic.
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id, for static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394), not yet rejoined.
    pub pending_members: BTreeSet<String>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub pending_sync_members: BTreeSet<String>,
    /// A member joined during the initial rebalance delay: extend the delay.
    pub new_member_added: bool,
    /// The running initial-rebalance delay: (this delay, time left to extend into).
    pub initial_delay: Option<(i64, i64)>,
    /// Topics the members subscribe to, when the group uses the consumer protocol and
    /// every subscription could be read; None when unknown.
    pub subscribed_topics: Option<BTreeSet<String>>,
    /// topic -> partition -> committed offset.
    pub offsets: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
    /// The group metadata record last written (or replayed) for the group: what replaying
    /// `__consumer_offsets` rebuilds it from. None while none has been written since the
    /// group was created (a group used only for offsets, or one in its first rebalance).
    pub last_metadata_record: Option<OffsetsRecord>,
    /// Present when this is a consumer group of the new protocol (KIP-848): then the
    /// classic fields above stay Empty (classic members of a consumer group live in it,
    /// see `coordinator::migration`), and offsets are shared as in Kafka, where they
    /// live apart from the group's type.
    pub consumer: Option<Box<ConsumerGroup>>,
    /// Present when this is a share group (KIP-932); the classic fields stay Empty.
    pub share: Option<Box<ShareGroup>>,
}

impl Group {
    pub(crate) fn new(id: &str, state_timestamp_ms: Option<i64>) -> Self {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeSet::new(),
            pending_sync_members: BTreeSet::new(),
            new_member_added: false,
            initial_delay: None,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
            last_metadata_record: None,
            consumer: None,
            share: None,
        }
    }

    pub(crate) fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub(crate) fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        assert!(
            state.valid_previous_states().contains(&self.state),
            "group {}: invalid transition {:?} -> {:?}",
            self.id,
            self.state,
            state
        );
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    pub(crate) fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance
            .valid_previous_states()
            .contains(&self.state)
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub(crate) fn has_offsets(&self) -> bool {
        !self.offsets.is_empty()
    }

    pub(crate) fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub(crate) fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The longest rebalance timeout of any member: how long a join phase may last.
    pub(crate) fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<&str> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut candidates: BTreeSet<&str> =
            first.protocols.iter().map(|p| p.name.as_str()).collect();
        for member in members {
            candidates.retain(|name| member.supports(name));
        }
        candidates
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those every
    /// member supports; the most votes wins. Kafka breaks ties arbitrarily (hash order);
    /// Brook picks the smallest name, so the choice is deterministic.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let most = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == most)
            .map(|(name, _)| name.to_owned())
    }

    /// Whether a member with this protocol type and these protocols could join: an Empty
    /// group takes any non-empty type and list; otherwise the type must match and at
    /// least one protocol must be supported by every current member.
    pub(crate) fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    /// Adds a member; the first member sets the group's protocol type and the first
    /// member of a leaderless group leads.
    pub(crate) fn add(&mut self, member: Member) {
        if let Some(instance_id) = &member.group_instance_id {
            let previous = self
                .static_members
                .insert(instance_id.clone(), member.member_id.clone());
            assert!(
                previous.is_none(),
                "group {}: static member {instance_id} added twice",
                self.id
            );
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member (or a pending member). The caller answers any parked request
    /// the removed member still has.
    pub(crate) fn remove(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(instance_id) = removed.as_ref().and_then(|m| m.group_instance_id.as_ref()) {
            self.static_members.remove(instance_id);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        removed
    }

    /// Gives a static member its new member id, keeping everything else (assignment
    /// included). Returns the member's parked requests, which the caller fences.
    pub(crate) fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) -> (Option<Parked>, Option<Parked>) {
        let mut member = self
            .members
            .remove(old_member_id)
            .expect("static member to replace exists");
        let fenced = (member.awaiting_join.take(), member.awaiting_sync.take());
        member.member_id = new_member_id.to_owned();
        self.members.insert(new_member_id.to_owned(), member);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_owned());
        }
        if self.pending_sync_members.remove(old_member_id) {
            self.pending_sync_members.insert(new_member_id.to_owned());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_member_id.to_owned());
        fenced
    }

    /// If the leader did not rejoin, hand leadership to a member that did. False when no
    /// member rejoined (or there is no leader at all).
    pub(crate) fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.as_deref() else {
            return false;
        };
        if self.members[leader].awaiting_join.is_some() {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(joined) => {
                self.leader_id = Some(joined.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Moves to the next generation: CompletingRebalance with a freshly selected protocol,
    /// or Empty when no member is left.
    pub(crate) fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            assert!(
                self.protocol_name.is_some(),
                "group {}: members share no protocol",
                self.id
            );
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync_members.clear();
    }

    pub(crate) fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// When the subscriptions are unknown, a consumer group counts as subscribed to
    /// everything (the safe answer for offset deletion and expiry).
    pub(crate) fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        if let Some(consumer) = &self.consumer {
            return consumer.is_subscribed_to(topic);
        }
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    /// The union of the members' subscribed topics, read from the consumer protocol's
    /// subscription with its version-0 layout (the prefix of every version).
    pub(crate) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.uses_consumer_protocol() {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata = member.metadata(protocol)?;
            topics.extend(consumer_protocol::decode_subscription(metadata)?.topics);
        }
        Some(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|name| Protocol {
                    name: (*name).into(),
                    metadata: Bytes::new(),
                })
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
        }
    }

    #[test]
    fn protocol_selection_by_votes() {
        // (members' preference lists, expected protocol)
        let cases: &[(&[&[&str]], Option<&str>)] = &[
            (&[&["range"]], Some("range")),
            (
                &[&["range", "roundrobin"], &["roundrobin", "range"]],
                Some("range"),
            ),
            (
                &[
                    &["range", "roundrobin"],
                    &["roundrobin", "range"],
                    &["roundrobin"],
                ],
                Some("roundrobin"),
            ),
            // "sticky" has the most first choices but not everyone supports it.
            (
                &[&["sticky", "range"], &["sticky", "range"], &["range"]],
                Some("range"),
            ),
            (&[&["a"], &["b"]], None),
        ];
        for (lists, expected) in cases {
            let mut group = Group::new("g", None);
            for (i, list) in lists.iter().enumerate() {
                group.add(member(&format!("m{i}"), list));
            }
            assert_eq!(group.select_protocol().as_deref(), *expected, "{lists:?}");
        }
    }

    #[test]
    fn supports_protocols_needs_a_protocol_every_member_has() {
        let mut group = Group::new("g", None);
        let p = |name: &str| Protocol {
            name: name.into(),
            metadata: Bytes::new(),
        };
        assert!(!group.supports_protocols("", &[p("range")]));
        assert!(!group.supports_protocols("consumer", &[]));
        assert!(group.supports_protocols("consumer", &[p("range")]));
        group.add(member("a", &["range", "sticky"]));
        group.add(member("b", &["sticky"]));
        group.transition_to(GroupState::PreparingRebalance, 0);
        assert!(group.supports_protocols("consumer", &[p("sticky")]));
        assert!(!group.supports_protocols("consumer", &[p("range")]));
        assert!(!group.supports_protocols("connect", &[p("sticky")]));
    }

    #[test]
    fn removing_the_leader_hands_leadership_on() {
        let mut group = Group::new("g", None);
        group.add(member("b", &["range"]));
        group.add(member("a", &["range"]));
        group.add(member("c", &["range"]));
        assert_eq!(group.leader_id.as_deref(), Some("b"));
        group.remove("b");
        assert_eq!(group.leader_id.as_deref(), Some("a"));
        group.remove("a");
        group.remove("c");
        assert_eq!(group.leader_id, None);
    }

    #[test]
    fn subscribed_topics_come_from_v0_prefix_of_any_version() {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let mut group = Group::new("g", None);
        for (i, (version, topics)) in [(0i16, vec!["a", "b"]), (3, vec!["c"])].iter().enumerate() {
            let mut subscription = ConsumerProtocolSubscription::default();
            subscription.topics = topics
                .iter()
                .map(|t| StrBytes::from_string(t.to_string()))
                .collect();
            let mut buf = bytes::BytesMut::new();
            bytes::BufMut::put_i16(&mut buf, *version);
            subscription.encode(&mut buf, *version).unwrap();
            let mut m = member(&format!("m{i}"), &["range"]);
            m.protocols[0].metadata = buf.freeze();
            group.add(m);
        }
        group.protocol_name = Some("range".into());
        let topics = group.compute_subscribed_topics().unwrap();
        assert_eq!(topics.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);

        let mut garbage = member("z", &["range"]);
        garbage.protocols[0].metadata = Bytes::from_static(&[0, 0, 0, 0, 0, 9]);
        group.add(garbage);
        assert_eq!(group.compute_subscribed_topics(), None);
        assert!(group.is_subscribed_to_topic("anything"));
    }
}
