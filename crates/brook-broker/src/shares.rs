//! `Shares`: the broker side of KIP-932 share groups — the delivery state of every
//! share-partition this broker leads (`brook_coord::share::partition`, one per group and
//! partition), the share sessions of its share consumers, and the writes that make the
//! state durable.
//!
//! Durability: a share-partition's state (its start offset and the records in flight
//! with their state and delivery count) is written as one record (Brook's key type 100)
//! to the group's `__consumer_offsets` partition, through the group coordinator, before
//! an acknowledgement is answered, when a share-partition is first initialised (so the
//! `latest` start point survives a restart), and when lock expiry or a departed member
//! changed it. The coordinator replays these records like the group's others, and a
//! share-partition first used after a restart starts from its record. Acquisitions are
//! not written: after a restart, records that were acquired are delivered again (with
//! the delivery count last written), never records that were acknowledged. The record
//! is keyed by (group, topic id, partition), so compaction keeps only the newest.
//!
//! Where the group's coordinator is another broker (a cluster where this broker leads
//! the partition but not the group's offsets partition), the state is in memory only.
//!
//! Locks: the map's lock is never held while a share-partition's is taken for long;
//! a persist takes the coordinator's lock and then the share-partition's (never the
//! other way round).

use std::collections::HashMap;
use std::sync::Arc;

use brook_coord::share::partition::{
    AckError, AcquireMode, Acquired, LogBatch, SharePartition, SharePartitionConfig, ACK_RENEW,
};
use brook_coord::share::session::{
    SessionError, SessionPartition, SessionUse, ShareSessions, INITIAL_EPOCH,
};
use brook_coord::share::{StoredBatch, StoredPartitionState};
use brook_coord::Effects;
use brook_protocol::batch::BatchIter;
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::config::BrokerSettings;
use crate::groups::Groups;
use crate::metadata::MetadataView;
use crate::partition::Partition;
use crate::peer::{PeerNet, ShareStateRequest, WireShareState};
use crate::replicas::Replicas;

/// The most share-partitions (group × partition) this broker keeps state for: a bound
/// on what clients can make it hold (Brook's limit).
pub const MAX_SHARE_PARTITIONS: usize = 100_000;

/// The group config that says where a new share-partition starts.
const AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
const LOCK_DURATION: &str = "share.record.lock.duration.ms";

/// A share-partition: (group, topic id, partition).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShareKey {
    pub group: String,
    pub topic: Uuid,
    pub partition: i32,
}

type Shared = Arc<Mutex<SharePartition>>;

/// A share-partition's state and the leader epoch it was loaded in: state from an
/// earlier leadership of this broker is stale (another leader may have moved on) and is
/// loaded again from its record.
struct Loaded {
    leader_epoch: i32,
    state: Shared,
}

/// What one partition of a ShareFetch got.
#[derive(Debug, Default)]
pub struct PartitionFetch {
    pub error: i16,
    pub records: Option<Bytes>,
    pub acquired: Vec<Acquired>,
    /// (leader id, leader epoch).
    pub leader: (i32, i32),
    /// When the next acquisition lock of this share-partition expires.
    pub next_deadline_ms: Option<i64>,
}

pub struct Shares {
    replicas: Arc<Replicas>,
    metadata: MetadataView,
    groups: Arc<Groups>,
    config: SharePartitionConfig,
    partitions: Mutex<HashMap<ShareKey, Loaded>>,
    sessions: Mutex<ShareSessions>,
    /// Other brokers (a cluster): the coordinator of a group may be one of them.
    peers: Option<Arc<PeerNet>>,
    /// Writes to a remote coordinator go one at a time, so they land in the order of
    /// their snapshots.
    remote_writes: tokio::sync::Mutex<()>,
}

impl Shares {
    pub fn new(
        settings: &BrokerSettings,
        replicas: Arc<Replicas>,
        metadata: MetadataView,
        groups: Arc<Groups>,
        peers: Option<Arc<PeerNet>>,
    ) -> Self {
        let config = SharePartitionConfig {
            lock_duration_ms: settings.group_share_record_lock_duration_ms.max(1),
            delivery_count_limit: settings
                .group_share_delivery_count_limit
                .clamp(2, i16::MAX.into()) as i16,
            max_in_flight: settings
                .group_share_partition_max_record_locks
                .clamp(1, 1_000_000),
        };
        let sessions = ShareSessions::new(
            settings.group_share_max_share_sessions.clamp(1, 1_000_000) as usize,
            settings.group_share_session_timeout_ms.max(1),
        );
        Shares {
            replicas,
            metadata,
            groups,
            config,
            partitions: Mutex::new(HashMap::new()),
            sessions: Mutex::new(sessions),
            peers,
            remote_writes: tokio::sync::Mutex::new(()),
        }
    }

    /// How long `group`'s records stay acquired, as ShareFetch reports it: the group's
    /// `share.record.lock.duration.ms`, else `group.share.record.lock.duration.ms`.
    pub fn lock_duration_ms(&self, group: &str) -> i32 {
        i32::try_from(self.config_for(group).lock_duration_ms).unwrap_or(i32::MAX)
    }

    /// The share-partition settings for `group`: the broker's, with the group's own
    /// lock duration if it set one.
    fn config_for(&self, group: &str) -> SharePartitionConfig {
        let image = self.metadata.image();
        let own = image
            .group_configs
            .get(group)
            .and_then(|c| c.get(LOCK_DURATION))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|ms| *ms > 0);
        SharePartitionConfig {
            lock_duration_ms: own.unwrap_or(self.config.lock_duration_ms),
            ..self.config
        }
    }

    /// Brings a share-partition's settings up to its group's (a GROUP config changed):
    /// records acquired from now on get the new lock duration.
    fn refresh(&self, group: &str, sp: &mut SharePartition) {
        let config = self.config_for(group);
        if *sp.config() != config {
            sp.set_config(config);
        }
    }

    /// Whether `member` may use a share session of `group`: false when this broker
    /// coordinates the group and the member is not in it (it never joined, left, or was
    /// fenced). Where another broker coordinates the group the membership is not known
    /// here, and the session epochs alone decide.
    pub fn may_use_session(&self, group: &str, member: &str) -> bool {
        !self.groups.coordinates(group)
            || self
                .groups
                .read(|g| g.coordinator.is_share_member(group, member))
    }

    /// Applies a request's session epoch (see `brook_coord::share::session`); a session
    /// opened (epoch 0) belongs to connection `connection`.
    #[allow(clippy::too_many_arguments)]
    pub fn session(
        &self,
        group_member: (&str, &str),
        epoch: i32,
        kind: SessionUse,
        add: &[SessionPartition],
        forget: &[SessionPartition],
        now_ms: i64,
        connection: u64,
    ) -> Result<Vec<SessionPartition>, SessionError> {
        let mut sessions = self.sessions.lock();
        let partitions = sessions.request(group_member, epoch, kind, add, forget, now_ms)?;
        if epoch == INITIAL_EPOCH {
            sessions.set_owner(group_member.0, group_member.1, connection);
        }
        Ok(partitions)
    }

    /// Connection `connection` closed: the member's session ends if that connection
    /// opened it, and what the member holds in its partitions is released. Returns the
    /// share-partitions to persist.
    pub fn connection_closed(&self, group: &str, member: &str, connection: u64) -> Vec<ShareKey> {
        let partitions = self.sessions.lock().close_owned(group, member, connection);
        match partitions {
            Some(partitions) => self.release(group, member, &partitions),
            None => Vec::new(),
        }
    }

    /// The share-partition's state, created on first use: from its stored record, or
    /// where the group's `share.auto.offset.reset` says: the partition's high watermark
    /// (`latest`, the default) or its log start (`earliest`). The bool says whether it
    /// is new and not yet written. Where another broker coordinates the group, only
    /// [`Shares::preload`] creates it (its record is read over the network); until then
    /// the partition answers COORDINATOR_NOT_AVAILABLE rather than start afresh.
    fn partition(&self, key: &ShareKey, replica: &Partition) -> Result<(Shared, bool), i16> {
        if let Some(shared) = self.loaded(key, replica) {
            return Ok((shared, false));
        }
        if self.peers.is_some() && !self.groups.coordinates(&key.group) {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
        let stored = self.groups.read(|g| {
            g.coordinator
                .share_partition_state(&key.group, &key.topic, key.partition)
        });
        self.create(key, replica, stored)
    }

    /// The state loaded in the partition's current leader epoch, if any.
    fn loaded(&self, key: &ShareKey, replica: &Partition) -> Option<Shared> {
        let leader_epoch = replica.leadership().1;
        self.partitions
            .lock()
            .get(key)
            .filter(|l| l.leader_epoch == leader_epoch)
            .map(|l| l.state.clone())
    }

    fn create(
        &self,
        key: &ShareKey,
        replica: &Partition,
        stored: Option<StoredPartitionState>,
    ) -> Result<(Shared, bool), i16> {
        let leader_epoch = replica.leadership().1;
        let fresh = stored.is_none();
        let sp = match stored {
            Some(s) => SharePartition::from_stored(self.config_for(&key.group), &s),
            None => {
                let (log_start, hw) = replica.offsets();
                let earliest = self
                    .metadata
                    .image()
                    .group_configs
                    .get(&key.group)
                    .is_some_and(|c| c.get(AUTO_OFFSET_RESET).is_some_and(|v| v == "earliest"));
                SharePartition::new(
                    self.config_for(&key.group),
                    if earliest { log_start } else { hw },
                )
            }
        };
        let mut map = self.partitions.lock();
        if let Some(l) = map.get(key).filter(|l| l.leader_epoch == leader_epoch) {
            return Ok((l.state.clone(), false));
        }
        if map.len() >= MAX_SHARE_PARTITIONS {
            tracing::warn!(limit = MAX_SHARE_PARTITIONS, "too many share-partitions");
            return Err(ResponseError::UnknownServerError.code());
        }
        let shared = Arc::new(Mutex::new(sp));
        map.insert(
            key.clone(),
            Loaded {
                leader_epoch,
                state: shared.clone(),
            },
        );
        tracing::debug!(group = %key.group, topic = %key.topic, partition = key.partition, fresh, "share-partition initialised");
        Ok((shared, fresh))
    }

    /// Loads the share-partitions (topic id, name, index) this broker leads for a group
    /// another broker coordinates, reading their records from that coordinator. Returns
    /// the ones created afresh, to be written. Nothing to do on the coordinator itself or
    /// on a single broker.
    pub async fn preload(
        &self,
        group: &str,
        partitions: &[(Uuid, Option<String>, i32)],
    ) -> Vec<ShareKey> {
        let mut fresh = Vec::new();
        let Some(peers) = &self.peers else {
            return fresh;
        };
        if self.groups.coordinates(group) {
            return fresh;
        }
        let Some(node) = self.groups.coordinator_node(group) else {
            return fresh;
        };
        for (topic, name, index) in partitions {
            let Ok(replica) = self.leader(name.as_deref(), *index) else {
                continue;
            };
            let key = ShareKey {
                group: group.to_owned(),
                topic: *topic,
                partition: *index,
            };
            if self.loaded(&key, &replica).is_some() {
                continue;
            }
            let read = ShareStateRequest::Read {
                group: group.to_owned(),
                topic: *topic,
                partition: *index,
            };
            let stored = match peers.share_state(node, &read).await.and_then(|bytes| {
                serde_json::from_slice::<Option<WireShareState>>(&bytes).map_err(|e| e.to_string())
            }) {
                Ok(stored) => stored.map(from_wire),
                Err(e) => {
                    tracing::warn!(group, node, error = %e, "cannot read share-partition state");
                    continue;
                }
            };
            if let Ok((_, true)) = self.create(&key, &replica, stored) {
                fresh.push(key);
            }
        }
        fresh
    }

    /// The partition this broker leads, or the error a share fetch gets.
    fn leader(&self, topic: Option<&str>, partition: i32) -> Result<Arc<Partition>, i16> {
        let Some(name) = topic else {
            return Err(ResponseError::UnknownTopicId.code());
        };
        let replica = self
            .replicas
            .get(name, partition)
            .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
        if !replica.is_leader() {
            return Err(ResponseError::NotLeaderOrFollower.code());
        }
        Ok(replica)
    }

    /// The data-change watch of a partition this broker leads (a share fetch waits on it).
    pub fn changes(
        &self,
        topic: Option<&str>,
        partition: i32,
    ) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.leader(topic, partition).ok().map(|p| p.data_changes())
    }

    /// Applies a member's acknowledgements to one share-partition: Ok with the
    /// share-partition to persist, or the partition's acknowledge error code. RENEW
    /// (KIP-1222) only where `renew` says the request's version has it (v2).
    #[allow(clippy::too_many_arguments)]
    pub fn acknowledge(
        &self,
        group: &str,
        member: &str,
        topic: (Uuid, Option<&str>),
        partition: i32,
        batches: &[(i64, i64, &[i8])],
        renew: bool,
        now_ms: i64,
    ) -> Result<ShareKey, i16> {
        if !renew
            && batches
                .iter()
                .any(|(_, _, types)| types.contains(&ACK_RENEW))
        {
            // RENEW arrives with ShareFetch/ShareAcknowledge v2; v1's types are 0-3.
            return Err(ResponseError::InvalidRequest.code());
        }
        let replica = self.leader(topic.1, partition)?;
        let key = ShareKey {
            group: group.to_owned(),
            topic: topic.0,
            partition,
        };
        let (sp, _) = self.partition(&key, &replica)?;
        let mut sp = sp.lock();
        self.refresh(group, &mut sp);
        sp.expire_locks(now_ms);
        let mut result = Ok(());
        for (first, last, types) in batches {
            if let Err(e) = sp.acknowledge(member, *first, *last, types, now_ms) {
                tracing::debug!(group, member, %e, "acknowledgement refused");
                result = Err(match e {
                    AckError::InvalidRecordState(_) => ResponseError::InvalidRecordState.code(),
                    AckError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
                });
            }
        }
        result.map(|()| key)
    }

    /// Releases what a member holds in the given share-partitions (its session closed).
    pub fn release(
        &self,
        group: &str,
        member: &str,
        partitions: &[SessionPartition],
    ) -> Vec<ShareKey> {
        let mut changed = Vec::new();
        for (topic, partition) in partitions {
            let key = ShareKey {
                group: group.to_owned(),
                topic: *topic,
                partition: *partition,
            };
            let sp = self.partitions.lock().get(&key).map(|l| l.state.clone());
            if sp.is_some_and(|sp| sp.lock().release_member(member)) {
                changed.push(key);
            }
        }
        changed
    }

    /// A deleted group's share-partitions and sessions are forgotten (its records are
    /// tombstoned by the coordinator), so a group created again under its id starts
    /// afresh.
    pub fn forget_group(&self, group: &str) {
        self.partitions.lock().retain(|k, _| k.group != group);
        self.sessions.lock().remove_group(group);
    }

    /// Drops the live state of these share-partitions of `group` (their record was
    /// altered or deleted): their next use loads the record again.
    pub fn forget_partitions(&self, group: &str, partitions: &[(Uuid, i32)]) {
        let mut map = self.partitions.lock();
        for (topic, partition) in partitions {
            map.remove(&ShareKey {
                group: group.to_owned(),
                topic: *topic,
                partition: *partition,
            });
        }
    }

    /// [`Shares::forget_partitions`] here and on every other broker (any of them may
    /// lead one of the partitions).
    pub async fn forget_everywhere(&self, group: &str, partitions: Vec<(Uuid, i32)>) {
        if partitions.is_empty() {
            return;
        }
        self.forget_partitions(group, &partitions);
        let Some(peers) = &self.peers else {
            return;
        };
        let forget = ShareStateRequest::Forget {
            group: group.to_owned(),
            partitions,
        };
        for node in peers.others() {
            if let Err(e) = peers.share_state(node, &forget).await {
                tracing::warn!(group, node, error = %e, "cannot drop share-partition state elsewhere");
            }
        }
    }

    /// Each share-partition this broker holds state for, as of its current leadership:
    /// (group, topic id, partition, acquired records, records in flight). For metrics.
    pub fn figures(&self) -> Vec<(String, Uuid, i32, usize, usize)> {
        let all: Vec<(ShareKey, Shared)> = self
            .partitions
            .lock()
            .iter()
            .map(|(k, l)| (k.clone(), l.state.clone()))
            .collect();
        all.into_iter()
            .map(|(k, sp)| {
                let (acquired, in_flight) = sp.lock().counts();
                (k.group, k.topic, k.partition, acquired, in_flight)
            })
            .collect()
    }

    /// Members that left their share group: what they hold is released and their share
    /// sessions closed. Returns the share-partitions to persist.
    pub fn members_departed(&self, departed: &[(String, String)]) -> Vec<ShareKey> {
        if departed.is_empty() {
            return Vec::new();
        }
        let all: Vec<(ShareKey, Shared)> = self
            .partitions
            .lock()
            .iter()
            .map(|(k, l)| (k.clone(), l.state.clone()))
            .collect();
        let mut changed = Vec::new();
        for (group, member) in departed {
            self.sessions.lock().remove(group, member);
            for (key, sp) in all.iter().filter(|(k, _)| &k.group == group) {
                if sp.lock().release_member(member) {
                    changed.push(key.clone());
                }
            }
        }
        changed
    }

    /// One pass of a share fetch over `partitions` (topic id, its name, index): for each,
    /// reads from the first available record and acquires what it can for `member`, at
    /// most `max_records` in all (in `mode`: `batch_optimized` finishes the log batch
    /// the limit falls in). Blocking (reads segment files): run on the blocking pool.
    /// Returns the per-partition outcome and the share-partitions to persist.
    pub fn fetch_pass(
        &self,
        group: &str,
        member: &str,
        partitions: &[(Uuid, Option<String>, i32)],
        (max_records, max_bytes, mode): (usize, usize, AcquireMode),
        now_ms: i64,
    ) -> (Vec<PartitionFetch>, Vec<ShareKey>) {
        let mut out = Vec::with_capacity(partitions.len());
        let mut dirty = Vec::new();
        let (mut records_left, mut bytes_left) = (max_records, max_bytes);
        for (topic, name, index) in partitions {
            let key = ShareKey {
                group: group.to_owned(),
                topic: *topic,
                partition: *index,
            };
            let mut fetch = PartitionFetch::default();
            match self.fetch_one(
                &key,
                name.as_deref(),
                member,
                (records_left, bytes_left, mode),
                now_ms,
                &mut fetch,
            ) {
                Ok(changed) => {
                    if changed {
                        dirty.push(key);
                    }
                }
                Err(code) => fetch.error = code,
            }
            let got: i64 = fetch
                .acquired
                .iter()
                .map(|a| a.last_offset - a.first_offset + 1)
                .sum();
            records_left = records_left.saturating_sub(usize::try_from(got).unwrap_or(usize::MAX));
            bytes_left = bytes_left.saturating_sub(fetch.records.as_ref().map_or(0, Bytes::len));
            out.push(fetch);
        }
        (out, dirty)
    }

    /// One partition of [`Shares::fetch_pass`]; the budget is (records, bytes) left and
    /// the acquire mode.
    fn fetch_one(
        &self,
        key: &ShareKey,
        name: Option<&str>,
        member: &str,
        (max_records, max_bytes, mode): (usize, usize, AcquireMode),
        now_ms: i64,
        fetch: &mut PartitionFetch,
    ) -> Result<bool, i16> {
        let replica = self.leader(name, key.partition)?;
        fetch.leader = replica.leadership();
        let (sp, fresh) = self.partition(key, &replica)?;
        let (log_start, hw) = replica.offsets();
        let (offset, mut changed) = {
            let mut sp = sp.lock();
            self.refresh(&key.group, &mut sp);
            let moved = sp.follow_log_start(log_start);
            let expired = sp.expire_locks(now_ms);
            fetch.next_deadline_ms = sp.next_deadline_ms();
            (sp.fetch_offset(), fresh || moved || expired)
        };
        let Some(offset) = offset.filter(|o| *o < hw && max_records > 0 && max_bytes > 0) else {
            return Ok(changed);
        };
        let read = replica
            .read_committed(offset, max_bytes, true, -1, false)
            .map_err(|r| r.0)?;
        let Some(slice) = read.slice else {
            return Ok(changed);
        };
        let bytes = slice.read_bytes().map_err(|e| {
            tracing::error!(topic = ?name, partition = key.partition, error = %e, "share fetch read failed");
            ResponseError::KafkaStorageError.code()
        })?;
        let mut batches = Vec::new();
        let mut ranges = Vec::new();
        for item in BatchIter::new(&bytes) {
            let Ok((header, range)) = item else { break };
            if header.base_offset >= hw {
                break;
            }
            batches.push(LogBatch {
                first_offset: header.base_offset,
                last_offset: header.last_offset().min(hw - 1),
                control: header.is_control(),
            });
            ranges.push(range);
        }
        let acquired = {
            let mut sp = sp.lock();
            let end_before = sp.end_offset();
            let acquired = sp.acquire_in_mode(member, &batches, max_records, mode, now_ms);
            // Control batches passed move the start: worth writing.
            changed |= sp.end_offset() != end_before && acquired.is_empty();
            fetch.next_deadline_ms = sp.next_deadline_ms();
            acquired
        };
        if !acquired.is_empty() {
            fetch.records = Some(keep_batches(&bytes, &batches, &ranges, &acquired));
        }
        fetch.acquired = acquired;
        Ok(changed)
    }

    /// Writes the state of these share-partitions to their group's `__consumer_offsets`
    /// partition (one append): through the local coordinator (the state is read under
    /// its lock, so concurrent writes land in the order of their snapshots), or through
    /// the coordinator's broker (one write at a time from here).
    pub async fn persist(&self, group: &str, keys: Vec<ShareKey>) -> Result<(), i16> {
        if keys.is_empty() {
            return Ok(());
        }
        let shared: Vec<(ShareKey, Shared)> = {
            let map = self.partitions.lock();
            keys.into_iter()
                .filter_map(|k| map.get(&k).map(|l| (k, l.state.clone())))
                .collect()
        };
        if self.groups.coordinates(group) {
            let snapshot = || {
                shared
                    .iter()
                    .map(|(k, sp)| (k.topic, k.partition, sp.lock().stored()))
                    .collect()
            };
            return write_states(&self.groups, group, snapshot).await;
        }
        let (Some(peers), Some(node)) = (&self.peers, self.groups.coordinator_node(group)) else {
            return Ok(());
        };
        let _one_at_a_time = self.remote_writes.lock().await;
        let states = shared
            .iter()
            .map(|(k, sp)| (k.topic, k.partition, to_wire(&sp.lock().stored())))
            .collect();
        let write = ShareStateRequest::Write {
            group: group.to_owned(),
            states,
        };
        let code = peers
            .share_state(node, &write)
            .await
            .and_then(|bytes| serde_json::from_slice::<i16>(&bytes).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| {
                tracing::warn!(group, node, error = %e, "cannot write share-partition state");
                ResponseError::CoordinatorNotAvailable.code()
            });
        if code == 0 {
            Ok(())
        } else {
            Err(code)
        }
    }
}

/// Appends share-partition state records through the local group coordinator; the
/// states are taken by `snapshot` under the coordinator's lock.
async fn write_states(
    groups: &Groups,
    group: &str,
    snapshot: impl FnOnce() -> Vec<(Uuid, i32, StoredPartitionState)>,
) -> Result<(), i16> {
    // Answered once the in-sync replicas have it, as offset commits are: a coordinator
    // failover never loses an acknowledgement.
    groups
        .apply_replicated(group, |c| {
            let records = snapshot()
                .into_iter()
                .filter_map(|(topic, partition, state)| {
                    c.write_share_partition_state(group, topic, partition, state)
                })
                .collect();
            (
                (),
                Effects {
                    replies: vec![],
                    records,
                },
            )
        })
        .await
        .map_err(|e| {
            tracing::warn!(group, error = %e.message, "cannot write share-partition state");
            e.code
        })
}

/// The coordinator's answer to a partition leader elsewhere: the stored state.
pub fn read_local(
    groups: &Groups,
    group: &str,
    topic: Uuid,
    partition: i32,
) -> Option<WireShareState> {
    groups
        .read(|g| {
            g.coordinator
                .share_partition_state(group, &topic, partition)
        })
        .map(|s| to_wire(&s))
}

/// The coordinator's side of a remote write: an error code (NOT_COORDINATOR when the
/// group moved).
pub async fn write_local(
    groups: &Groups,
    group: &str,
    states: Vec<(Uuid, i32, WireShareState)>,
) -> i16 {
    if !groups.coordinates(group) {
        return ResponseError::NotCoordinator.code();
    }
    let snapshot = move || {
        states
            .into_iter()
            .map(|(topic, partition, state)| (topic, partition, from_wire(state)))
            .collect()
    };
    match write_states(groups, group, snapshot).await {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn to_wire(s: &StoredPartitionState) -> WireShareState {
    (
        s.start_offset,
        s.batches
            .iter()
            .map(|b| (b.first_offset, b.last_offset, b.state, b.delivery_count))
            .collect(),
    )
}

fn from_wire((start_offset, batches): WireShareState) -> StoredPartitionState {
    StoredPartitionState {
        start_offset,
        batches: batches
            .into_iter()
            .map(
                |(first_offset, last_offset, state, delivery_count)| StoredBatch {
                    first_offset,
                    last_offset,
                    state,
                    delivery_count,
                },
            )
            .collect(),
    }
}

/// The batches of `bytes` that hold an acquired record, concatenated (the client reads
/// only the acquired records of what it gets; the rest need not travel).
fn keep_batches(
    bytes: &Bytes,
    batches: &[LogBatch],
    ranges: &[std::ops::Range<usize>],
    acquired: &[Acquired],
) -> Bytes {
    let overlaps = |b: &LogBatch| {
        acquired
            .iter()
            .any(|a| a.first_offset <= b.last_offset && a.last_offset >= b.first_offset)
    };
    let kept: Vec<&std::ops::Range<usize>> = batches
        .iter()
        .zip(ranges)
        .filter(|(b, _)| overlaps(b))
        .map(|(_, r)| r)
        .collect();
    // Contiguous kept batches are one slice of the read, without a copy.
    if let (Some(first), Some(last)) = (kept.first(), kept.last()) {
        if kept.windows(2).all(|w| w[0].end == w[1].start) {
            return bytes.slice(first.start..last.end);
        }
    }
    let mut out = BytesMut::new();
    for r in kept {
        out.extend_from_slice(&bytes[r.clone()]);
    }
    out.freeze()
}
