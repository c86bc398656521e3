//! The classic group coordinator: requests and the time in, replies and records out.
//!
//! The coordinator owns every group's state and a table of deadlines. Handlers that can
//! finish at once return their response; JoinGroup and SyncGroup may park, and a parked
//! request's reply comes out of a later call (another member's request, `tick`,
//! `cancel`) in [`Effects::replies`].
//!
//! State changes are applied at once and the matching `__consumer_offsets` records are
//! returned with them. The broker appends the records and only then sends the replies
//! that came with them, so nothing is acknowledged before it is durable. If an append
//! fails, the in-memory state is ahead of the log; the broker should stop serving the
//! coordinator and rebuild it from the log with [`GroupCoordinator::replay`].

mod admin;
mod consumer;
mod consumer_admin;
mod membership;
mod migration;
mod offsets;
mod responses;
mod share;
mod share_admin;
mod share_offsets;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};

use crate::config::{GroupConfig, GroupOverrides};
use crate::consumer::{RackDigests, TopicsView};
use crate::group::{Group, GroupState, Member, Parked, Protocol};
use crate::records::{GroupMetadataValue, OffsetsRecord, RecordError, RecordKey, RecordValue};
use crate::timers::{TimerKey, Timers};

/// The broker's handle for a parked request.
pub type ReplyToken = u64;

/// A reply to a request that the coordinator parked (or answered within the call).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
}

/// What a call produced besides its direct response: replies to parked requests and
/// records to append to `__consumer_offsets`. Append the records before sending the
/// replies.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    pub replies: Vec<(ReplyToken, Reply)>,
    pub records: Vec<OffsetsRecord>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.records.is_empty()
    }
}

pub(crate) type Groups = BTreeMap<String, Group>;

/// A read-only view of one group (see [`GroupCoordinator::visit_groups`]).
pub struct GroupSummary<'a> {
    pub group_id: &'a str,
    pub state: GroupState,
    pub members: usize,
    offsets: &'a BTreeMap<String, BTreeMap<i32, crate::records::CommittedOffset>>,
}

impl GroupSummary<'_> {
    /// Every committed offset: (topic, partition, offset).
    pub fn committed(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.offsets.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(&p, c)| (topic.as_str(), p, c.offset))
        })
    }
}

/// The classic-protocol group coordinator, as a pure state machine.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: Groups,
    timers: Timers,
    /// Every parked request, by token, with its group.
    parked: HashMap<ReplyToken, String>,
    member_ids: MemberIdGenerator,
    /// Groups loaded by `replay` whose members' session timers start at the next tick.
    loaded: BTreeSet<String>,
    /// Share group members removed since the broker last asked (group, member).
    departed_share_members: Vec<(String, String)>,
    /// The subscribed topics' replica-rack digests behind the groups' metadata hashes.
    rack_digests: RackDigests,
}

/// The mutable parts a handler needs besides the group it works on.
pub(crate) struct Ctx<'a> {
    config: &'a GroupConfig,
    timers: &'a mut Timers,
    parked: &'a mut HashMap<ReplyToken, String>,
    member_ids: &'a mut MemberIdGenerator,
    effects: &'a mut Effects,
    departed_share_members: &'a mut Vec<(String, String)>,
    rack_digests: &'a mut RackDigests,
    now_ms: i64,
}

impl Ctx<'_> {
    fn park(&mut self, parked: Parked, group_id: &str) {
        let previous = self.parked.insert(parked.token, group_id.to_owned());
        debug_assert!(previous.is_none(), "token {} parked twice", parked.token);
    }

    fn reply_join(&mut self, parked: Parked, response: JoinGroupResponse) {
        self.parked.remove(&parked.token);
        self.effects
            .replies
            .push((parked.token, Reply::JoinGroup(response)));
    }

    fn reply_sync(&mut self, parked: Parked, response: SyncGroupResponse) {
        self.parked.remove(&parked.token);
        self.effects
            .replies
            .push((parked.token, Reply::SyncGroup(response)));
    }

    fn schedule_heartbeat(&mut self, group_id: &str, member_id: &str, timeout_ms: i32) {
        self.timers.schedule(
            heartbeat_key(group_id, member_id),
            self.now_ms.saturating_add(i64::from(timeout_ms)),
        );
    }

    fn cancel_heartbeat(&mut self, group_id: &str, member_id: &str) {
        self.timers.cancel(&heartbeat_key(group_id, member_id));
    }

    fn schedule_group_timer(&mut self, key: TimerKey, timeout_ms: i64) {
        self.timers
            .schedule(key, self.now_ms.saturating_add(timeout_ms));
    }
}

fn heartbeat_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::Heartbeat {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
    }
}

fn join_key(group_id: &str) -> TimerKey {
    TimerKey::Join {
        group: group_id.to_owned(),
    }
}

fn sync_key(group_id: &str) -> TimerKey {
    TimerKey::Sync {
        group: group_id.to_owned(),
    }
}

impl GroupCoordinator {
    /// A coordinator whose member ids come from a random seed.
    pub fn new(config: GroupConfig) -> Self {
        let seed = uuid::Uuid::new_v4().as_u64_pair();
        Self::with_seed(config, seed.0 ^ seed.1)
    }

    /// A coordinator whose member ids are a function of `seed`, for reproducible tests
    /// and simulations.
    pub fn with_seed(config: GroupConfig, seed: u64) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            timers: Timers::default(),
            parked: HashMap::new(),
            member_ids: MemberIdGenerator { state: seed },
            loaded: BTreeSet::new(),
            departed_share_members: Vec::new(),
            rack_digests: RackDigests::default(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Replaces the groups' own settings (their GROUP configs); a changed timeout or
    /// interval applies from each member's next heartbeat, as in Kafka.
    pub fn set_group_overrides(&mut self, overrides: BTreeMap<String, GroupOverrides>) {
        self.config.group_overrides = overrides;
    }

    /// The state of a group, if it exists.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// Each group's id, state, member count and committed offsets (topic, partition,
    /// offset), in group order: what a metrics scrape reports, read without cloning.
    /// Share groups are left to [`GroupCoordinator::visit_share_groups`].
    pub fn visit_groups(&self, mut f: impl FnMut(GroupSummary<'_>)) {
        for group in self.groups.values().filter(|g| g.share.is_none()) {
            f(GroupSummary {
                group_id: &group.id,
                state: group.state,
                members: group.members.len(),
                offsets: &group.offsets,
            });
        }
    }

    /// The earliest deadline `tick` should be called at (`i64::MIN` when replayed groups
    /// wait for the first tick to start their members' session timers).
    pub fn next_deadline_ms(&self) -> Option<i64> {
        if !self.loaded.is_empty() {
            return Some(i64::MIN);
        }
        self.timers.next_deadline_ms()
    }

    fn parts<'a>(&'a mut self, now_ms: i64, effects: &'a mut Effects) -> (&'a mut Groups, Ctx<'a>) {
        (
            &mut self.groups,
            Ctx {
                config: &self.config,
                timers: &mut self.timers,
                parked: &mut self.parked,
                member_ids: &mut self.member_ids,
                effects,
                departed_share_members: &mut self.departed_share_members,
                rack_digests: &mut self.rack_digests,
                now_ms,
            },
        )
    }

    /// Runs what is due at `now_ms`: session timeouts, the ends of join and sync phases,
    /// the initial rebalance delay, pending-member expiry and offset retention. `topics`
    /// names the partitions a consumer group hands to the classic group it may become.
    pub fn tick(&mut self, now_ms: i64, topics: &dyn TopicsView) -> Effects {
        let mut effects = Effects::default();
        let loaded = std::mem::take(&mut self.loaded);
        if !self.timers.is_scheduled(&TimerKey::OffsetRetention) {
            self.timers.schedule(TimerKey::OffsetRetention, now_ms);
        }
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        for group_id in loaded {
            if let Some(group) = groups.get_mut(&group_id) {
                if group.share.is_some() {
                    share::on_loaded(&mut ctx, group);
                } else if group.consumer.is_some() {
                    consumer::on_loaded(&mut ctx, group);
                } else {
                    membership::on_group_loaded(&mut ctx, group);
                }
            }
        }
        for key in ctx.timers.take_due(now_ms) {
            match key {
                TimerKey::Heartbeat { group, member } => {
                    if let Some(g) = groups.get_mut(&group) {
                        membership::expire_heartbeat(&mut ctx, g, &member);
                    }
                }
                TimerKey::Join { group } => {
                    if let Some(g) = groups.get_mut(&group) {
                        membership::expire_join(&mut ctx, g);
                    }
                }
                TimerKey::Sync { group } => {
                    if let Some(g) = groups.get_mut(&group) {
                        membership::expire_sync(&mut ctx, g);
                    }
                }
                TimerKey::ConsumerSession { group, member } => {
                    if let Some(g) = groups.get_mut(&group) {
                        consumer::expire_session(&mut ctx, g, &member, topics);
                    }
                }
                TimerKey::ConsumerRevocation { group, member } => {
                    if let Some(g) = groups.get_mut(&group) {
                        consumer::expire_revocation(&mut ctx, g, &member, topics);
                    }
                }
                TimerKey::ClassicJoin { group, member } => {
                    if let Some(g) = groups.get_mut(&group) {
                        let why = "the classic member did not rejoin within its rebalance timeout";
                        consumer::fence(&mut ctx, g, &member, why, topics);
                    }
                }
                TimerKey::ClassicSync { group, member } => {
                    if let Some(g) = groups.get_mut(&group) {
                        let why = "the classic member did not sync within its rebalance timeout";
                        consumer::fence(&mut ctx, g, &member, why, topics);
                    }
                }
                TimerKey::ShareSession { group, member } => {
                    if let Some(g) = groups.get_mut(&group) {
                        share::expire_session(&mut ctx, g, &member);
                    }
                }
                TimerKey::OffsetRetention => {
                    offsets::expire_offsets(&mut ctx, groups);
                    let interval = ctx.config.offsets_retention_check_interval_ms;
                    ctx.timers.schedule(
                        TimerKey::OffsetRetention,
                        now_ms.saturating_add(interval.max(1)),
                    );
                }
            }
        }
        effects
    }

    /// The broker dropped a parked request (its connection closed). The request is
    /// withdrawn as if it had never arrived: a member that has been through a join phase
    /// counts as not yet rejoined (the join phase waits for it, or for the rebalance
    /// timeout); a member that only this request had added leaves the group; a withdrawn
    /// SyncGroup leaves the member owing one. Kafka cannot see disconnects and would keep
    /// counting such a member as joined, which can elect a dead leader. Unknown tokens
    /// are ignored.
    pub fn cancel(&mut self, token: ReplyToken, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        let Some(group_id) = self.parked.remove(&token) else {
            return effects;
        };
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        if let Some(group) = groups.get_mut(&group_id) {
            membership::cancel(&mut ctx, group, token);
        }
        effects
    }

    /// Loads one record of `__consumer_offsets`, oldest first, before the coordinator
    /// serves requests. Committed offsets, group metadata and tombstones are applied
    /// last-writer-wins per key, as compaction would leave them. A group comes back
    /// Stable with its members and assignments (or Empty); its members' session timers
    /// start at the next [`tick`](Self::tick).
    pub fn replay(&mut self, record: &OffsetsRecord) -> Result<(), RecordError> {
        let (key, value) = record.decode()?;
        match (key, value) {
            (
                RecordKey::OffsetCommit {
                    group,
                    topic,
                    partition,
                },
                Some(RecordValue::OffsetCommit(offset)),
            ) => {
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, None))
                    .offsets
                    .entry(topic)
                    .or_default()
                    .insert(partition, offset);
            }
            (
                RecordKey::OffsetCommit {
                    group,
                    topic,
                    partition,
                },
                None,
            ) => {
                if let Some(g) = self.groups.get_mut(&group) {
                    if let Some(partitions) = g.offsets.get_mut(&topic) {
                        partitions.remove(&partition);
                        if partitions.is_empty() {
                            g.offsets.remove(&topic);
                        }
                    }
                }
            }
            (RecordKey::GroupMetadata { group }, Some(RecordValue::GroupMetadata(value))) => {
                let offsets = self.forget_group(&group).map(|g| g.offsets);
                let mut loaded = group_from_metadata(&group, value);
                loaded.offsets = offsets.unwrap_or_default();
                loaded.last_metadata_record = Some(record.clone());
                if !loaded.members.is_empty() {
                    self.loaded.insert(group.clone());
                }
                self.groups.insert(group, loaded);
            }
            (RecordKey::GroupMetadata { group }, None) => {
                if let Some(old) = self.forget_group(&group) {
                    if old.has_offsets() {
                        let mut bare = Group::new(&group, None);
                        bare.offsets = old.offsets;
                        self.groups.insert(group, bare);
                    }
                }
            }
            (RecordKey::Consumer(key), value) => {
                let value = match value {
                    None => None,
                    Some(RecordValue::Consumer(v)) => Some(v),
                    Some(other) => unreachable!("decode pairs keys with their values: {other:?}"),
                };
                consumer_admin::replay(&mut self.groups, &mut self.loaded, key, value);
            }
            (RecordKey::Share(key), value) => {
                let value = match value {
                    None => None,
                    Some(RecordValue::Share(v)) => Some(v),
                    Some(other) => unreachable!("decode pairs keys with their values: {other:?}"),
                };
                share_admin::replay(&mut self.groups, &mut self.loaded, key, value);
            }
            (key, value) => unreachable!("decode pairs keys with their values: {key:?} {value:?}"),
        }
        Ok(())
    }

    /// Records that, replayed in order into a fresh coordinator, rebuild the current state
    /// of every group for which `include(group_id)` is true: the group metadata record
    /// (as the last one written for it) and one offset-commit record per live committed
    /// offset (with its commit/expire timestamps and metadata). Groups that are
    /// Dead/deleted produce nothing.
    ///
    /// The broker compacts `__consumer_offsets` with it: under the coordinator's lock it
    /// appends the snapshot of one partition's groups, then deletes everything before it.
    /// Replaying the snapshot gives what replaying the log up to that point gives, so
    /// replaying the log then the snapshot changes nothing.
    ///
    /// Per group, in group id order: the metadata record first, then the offsets by topic
    /// and partition. The metadata record is the one last written, not the group's live
    /// membership: a rebalance in progress is not durable and a restart does not see it.
    /// A group with no metadata record written since it was created (one used only for
    /// offset commits, or one in its first rebalance) has only its offsets, as in the log;
    /// a group with neither produces nothing.
    pub fn snapshot(&self, include: impl Fn(&str) -> bool) -> Vec<OffsetsRecord> {
        let mut records = Vec::new();
        for (group_id, group) in &self.groups {
            if group.is(GroupState::Dead) || !include(group_id) {
                continue;
            }
            records.extend(group.last_metadata_record.iter().cloned());
            if let Some(cg) = &group.consumer {
                records.extend(consumer::group_records(group_id, cg));
            }
            if let Some(sg) = &group.share {
                records.extend(share::group_records(group_id, sg));
            }
            for (topic, partitions) in &group.offsets {
                for (partition, offset) in partitions {
                    records.push(OffsetsRecord::offset_commit(
                        group_id, topic, *partition, offset,
                    ));
                }
            }
        }
        records
    }

    /// Forgets every group `include` selects (their offsets partition is now led by
    /// another broker, which replays it); returns how many.
    pub fn unload(&mut self, include: impl Fn(&str) -> bool) -> usize {
        let selected: Vec<String> = self.groups.keys().filter(|g| include(g)).cloned().collect();
        for group_id in &selected {
            self.forget_group(group_id);
        }
        selected.len()
    }

    /// Removes a group and its timers (replay replaces groups wholesale).
    fn forget_group(&mut self, group_id: &str) -> Option<Group> {
        let group = self.groups.remove(group_id)?;
        self.loaded.remove(group_id);
        self.timers.cancel(&join_key(group_id));
        self.timers.cancel(&sync_key(group_id));
        for member_id in group.members.keys().chain(group.pending_members.iter()) {
            self.timers.cancel(&heartbeat_key(group_id, member_id));
        }
        for member_id in group.share.iter().flat_map(|sg| sg.members.keys()) {
            self.timers.cancel(&share::session_key(group_id, member_id));
        }
        for member_id in group.consumer.iter().flat_map(|cg| cg.members.keys()) {
            self.timers
                .cancel(&consumer::session_key(group_id, member_id));
            self.timers
                .cancel(&consumer::revocation_key(group_id, member_id));
        }
        self.parked.retain(|_, g| g != group_id);
        Some(group)
    }
}

/// A group as its last metadata record describes it: Stable with its members, or Empty.
/// A record that contradicts itself (members without a protocol, a member id or
/// group.instance.id twice, a leader that is not a member) loses the offending parts
/// rather than the coordinator panicking later.
fn group_from_metadata(group_id: &str, value: GroupMetadataValue) -> Group {
    let mut group = Group::new(group_id, value.state_timestamp_ms);
    group.generation_id = value.generation;
    group.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
    group.protocol_name = value.protocol_name;
    let protocol_type = group.protocol_type.clone().unwrap_or_default();
    let can_have_members = !protocol_type.is_empty() && group.protocol_name.is_some();
    for stored in value.members.into_iter().filter(|_| can_have_members) {
        let duplicate = group.members.contains_key(&stored.member_id)
            || stored
                .group_instance_id
                .as_ref()
                .is_some_and(|id| group.static_members.contains_key(id));
        if duplicate {
            continue;
        }
        let protocols = group
            .protocol_name
            .iter()
            .map(|name| Protocol {
                name: name.clone(),
                metadata: stored.subscription.clone(),
            })
            .collect();
        group.add(Member {
            member_id: stored.member_id,
            group_instance_id: stored.group_instance_id,
            client_id: stored.client_id,
            client_host: stored.client_host,
            rebalance_timeout_ms: stored.rebalance_timeout_ms,
            session_timeout_ms: stored.session_timeout_ms,
            protocol_type: protocol_type.clone(),
            protocols,
            assignment: stored.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
        });
    }
    if let Some(leader) = value.leader.filter(|l| group.members.contains_key(l)) {
        group.leader_id = Some(leader);
    }
    let state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    group.state = state;
    group.previous_state = state;
    group.subscribed_topics = group.compute_subscribed_topics();
    group
}

/// Member ids are `<client id or group instance id>-<uuid>`, as Kafka makes them. The
/// uuid comes from a seeded splitmix64 stream so runs can be reproduced.
#[derive(Debug)]
pub(crate) struct MemberIdGenerator {
    state: u64,
}

impl MemberIdGenerator {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A Kafka `Uuid` string (URL-safe base64 of 16 random bytes, no padding), as Kafka
    /// generates ConsumerGroupHeartbeat v0 member ids.
    pub(crate) fn generate_uuid(&mut self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bytes = [0u8; 18];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..16].copy_from_slice(&self.next_u64().to_be_bytes());
        let mut out = String::with_capacity(22);
        for chunk in bytes.chunks(3) {
            let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
            for shift in [18, 12, 6, 0] {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            }
        }
        out.truncate(22);
        out
    }

    pub(crate) fn generate(&mut self, prefix: &str) -> String {
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        random[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        let uuid = uuid::Builder::from_random_bytes(random).into_uuid();
        format!("{prefix}-{uuid}")
    }
}
