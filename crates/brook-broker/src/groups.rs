//! The broker side of the group coordinator: holds the pure state machine from
//! `brook-coord`, writes its records to `__consumer_offsets`, delivers replies to
//! requests it parked (JoinGroup, SyncGroup), and replays the topic at start-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use brook_coord::{Effects, GroupConfig, GroupCoordinator, OffsetsRecord, Reply, ReplyToken};
use brook_protocol::batch::{control_type, ControlType};
use brook_protocol::records::ProducerInfo;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::config::BrokerConfig;
use crate::internal_topic::{self, storage, Replayed};
use crate::partition::{Appended, Partition};
use crate::shared::{now_ms, ApiError, Shared};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// A partition is compacted once it holds at least this many records...
const COMPACT_MIN_RECORDS: i64 = 10_000;
/// ...and this many times more records than its groups' live state.
const COMPACT_RATIO: i64 = 4;

pub struct Groups {
    coordinator: Mutex<GroupCoordinator>,
    /// Cluster mode: the `__consumer_offsets` partitions this broker leads and has
    /// replayed; it coordinates exactly the groups that map to them.
    led: Mutex<std::collections::BTreeSet<i32>>,
    parked: Mutex<HashMap<ReplyToken, oneshot::Sender<Reply>>>,
    next_token: AtomicU64,
    offsets_partitions: i32,
    /// Transactional offset commits written to `__consumer_offsets` and not decided yet,
    /// by (offsets partition, producer id): applied when the commit marker lands there,
    /// dropped on abort.
    pending_txn: Mutex<HashMap<(i32, i64), Vec<OffsetsRecord>>>,
}

/// Java's `String.hashCode`, which Kafka uses to map a group to its offsets partition.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

pub fn offsets_partition_for(group_id: &str, partitions: i32) -> i32 {
    (java_hash(group_id) & 0x7fff_ffff) % partitions
}

impl Groups {
    pub fn new(config: &BrokerConfig) -> Self {
        let group_config = GroupConfig {
            initial_rebalance_delay_ms: config.int("group.initial.rebalance.delay.ms"),
            min_session_timeout_ms: config.int("group.min.session.timeout.ms") as i32,
            max_session_timeout_ms: config.int("group.max.session.timeout.ms") as i32,
            max_size: config.int("group.max.size").clamp(1, i32::MAX as i64) as usize,
            offsets_retention_ms: config
                .int("offsets.retention.minutes")
                .saturating_mul(60_000),
            offsets_retention_check_interval_ms: config.int("offsets.retention.check.interval.ms"),
            offset_metadata_max_bytes: config.int("offset.metadata.max.bytes").max(0) as usize,
            ..GroupConfig::default()
        };
        Groups {
            coordinator: Mutex::new(GroupCoordinator::new(group_config)),
            led: Mutex::new(std::collections::BTreeSet::new()),
            parked: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            offsets_partitions: config.int("offsets.topic.num.partitions").clamp(1, 1000) as i32,
            pending_txn: Mutex::new(HashMap::new()),
        }
    }

    /// Creates `__consumer_offsets` the first time a group writes, as Kafka does.
    fn ensure_offsets_topic(&self, shared: &Shared) -> Result<(), ApiError> {
        if shared.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        if shared.is_cluster() {
            // FindCoordinator creates it through the controller; clients retry.
            return Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "__consumer_offsets is being created",
            ));
        }
        match crate::shared::block_on(shared.create_topic(
            OFFSETS_TOPIC,
            self.offsets_partitions,
            1,
            Self::offsets_topic_configs(),
            Vec::new(),
            false,
        )) {
            Err(e) if e.code != ResponseError::TopicAlreadyExists.code() => Err(e),
            _ => Ok(()),
        }
    }

    /// The configs `__consumer_offsets` is created with.
    pub fn offsets_topic_configs() -> BTreeMap<String, String> {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("retention.ms".to_string(), "-1".to_string());
        configs.insert("segment.bytes".to_string(), (100 * 1024 * 1024).to_string());
        configs
    }

    pub fn offsets_partitions(&self) -> i32 {
        self.offsets_partitions
    }

    /// Partitions of `__consumer_offsets` as it exists (or will be created).
    pub fn offsets_partition_count(&self, shared: &Shared) -> i32 {
        shared
            .image()
            .topic(OFFSETS_TOPIC)
            .map_or(self.offsets_partitions, |t| t.partitions.len() as i32)
    }

    /// Whether this broker coordinates `group_id` now: always on a single broker; in a
    /// cluster, when it leads the group's `__consumer_offsets` partition.
    pub fn coordinates(&self, shared: &Shared, group_id: &str) -> bool {
        if !shared.is_cluster() {
            return true;
        }
        let Some(partitions) = shared
            .image()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
        else {
            return false;
        };
        self.led
            .lock()
            .contains(&offsets_partition_for(group_id, partitions))
    }

    /// Cluster mode: replay the offsets partitions this broker now leads, forget the
    /// groups of those it no longer leads.
    pub fn follow_leadership(&self, shared: &Shared, image: &brook_meta::MetadataImage) {
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            return;
        };
        let partitions = topic.partitions.len() as i32;
        let now_led = internal_topic::led_partitions(shared, image, OFFSETS_TOPIC);
        let mut led = self.led.lock();
        let (lost, gained) = internal_topic::leadership_change(&led, &now_led);
        if lost.is_empty() && gained.is_empty() {
            return;
        }
        let mut coordinator = self.coordinator.lock();
        if !lost.is_empty() {
            let n = coordinator.unload(|g| lost.contains(&offsets_partition_for(g, partitions)));
            self.pending_txn
                .lock()
                .retain(|(index, _), _| !lost.contains(index));
            tracing::info!(partitions = ?lost, groups = n, "no longer coordinating groups of these __consumer_offsets partitions");
        }
        for index in gained {
            match self.replay_partition(shared, &mut coordinator, index) {
                Ok(n) => tracing::info!(
                    partition = index,
                    records = n,
                    "coordinating groups of __consumer_offsets partition"
                ),
                Err(e) => {
                    tracing::error!(partition = index, error = %e, "cannot load __consumer_offsets partition");
                    continue;
                }
            }
            led.insert(index);
        }
        led.retain(|p| now_led.contains(p));
    }

    /// Replays `__consumer_offsets` (if it exists) into the coordinator.
    pub fn load(&self, shared: &Shared) -> Result<usize, ApiError> {
        let partitions = shared
            .image()
            .topic(OFFSETS_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        let mut replayed = 0;
        let mut coordinator = self.coordinator.lock();
        for index in 0..partitions {
            replayed += self.replay_partition(shared, &mut coordinator, index)?;
        }
        Ok(replayed)
    }

    fn replay_partition(
        &self,
        shared: &Shared,
        coordinator: &mut GroupCoordinator,
        index: i32,
    ) -> Result<usize, ApiError> {
        let Some(partition) = shared.partition(OFFSETS_TOPIC, index) else {
            return Ok(0);
        };
        let mut replayed = 0;
        internal_topic::replay(&partition, |batch| match batch {
            Replayed::Control(header, bytes) => {
                // A transaction marker decides that producer's pending commits.
                let commit = control_type(bytes) == Ok(ControlType::Commit);
                self.decide(coordinator, index, header.producer_id, commit);
            }
            Replayed::Records(header, records) => {
                for r in records {
                    let Some(key) = r.key else { continue };
                    let record = OffsetsRecord {
                        key,
                        value: r.value,
                    };
                    replayed += 1;
                    if header.is_transactional() {
                        self.pending_txn
                            .lock()
                            .entry((index, header.producer_id))
                            .or_default()
                            .push(record);
                    } else if let Err(e) = coordinator.replay(&record) {
                        tracing::warn!(offset = r.offset, error = %e, "skipping unreadable __consumer_offsets record");
                    }
                }
            }
        })?;
        Ok(replayed)
    }

    fn token(&self) -> ReplyToken {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on the coordinator, appends the records it returns, then delivers replies.
    /// The lock is held across the append so records reach the log in decision order.
    pub fn apply<T>(
        &self,
        shared: &Shared,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator) -> (T, Effects),
    ) -> Result<T, ApiError> {
        self.apply_replicated(shared, group_id, f)
            .map(|(value, _)| value)
    }

    /// Like [`Groups::apply`], for OffsetCommit: also returns the `__consumer_offsets`
    /// partition and the last append, so the caller can answer once the ISR has the
    /// records (Kafka writes offset commits with acks=all).
    pub fn apply_replicated<T>(
        &self,
        shared: &Shared,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator) -> (T, Effects),
    ) -> Result<(T, Option<Written>), ApiError> {
        let (value, effects, written) = {
            let mut coordinator = self.coordinator.lock();
            let (value, effects) = f(&mut coordinator);
            let written = self.append(shared, group_id, &effects.records)?;
            (value, effects, written)
        };
        self.deliver(effects.replies);
        Ok((value, written))
    }

    /// Read-only access (OffsetFetch, DescribeGroups, ListGroups).
    pub fn read<T>(&self, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        f(&self.coordinator.lock())
    }

    /// A change that writes no records and parks nothing (Heartbeat), or whose
    /// records the caller appends itself.
    pub fn read_mut<T>(&self, f: impl FnOnce(&mut GroupCoordinator) -> T) -> T {
        f(&mut self.coordinator.lock())
    }

    pub fn append_records(
        &self,
        shared: &Shared,
        records: &[OffsetsRecord],
    ) -> Result<(), ApiError> {
        self.append_all(shared, records)
    }

    /// Parks a request: registers a token, runs `f` with it, and waits for the reply.
    /// If the caller goes away (connection closed) the token is cancelled.
    pub async fn park(
        &self,
        shared: &Arc<Shared>,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator, ReplyToken) -> Effects,
    ) -> Result<Reply, ApiError> {
        let token = self.token();
        let (tx, rx) = oneshot::channel();
        self.parked.lock().insert(token, tx);
        let guard = CancelOnDrop {
            shared: shared.clone(),
            token,
            armed: true,
        };
        self.apply(shared, group_id, |c| ((), f(c, token)))?;
        let reply = rx.await.map_err(|_| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "coordinator dropped the request",
            )
        });
        drop(guard.disarm());
        reply
    }

    fn deliver(&self, replies: Vec<(ReplyToken, Reply)>) {
        let mut parked = self.parked.lock();
        for (token, reply) in replies {
            if let Some(tx) = parked.remove(&token) {
                let _ = tx.send(reply);
            }
        }
    }

    /// Timer-driven work: session and rebalance timeouts, offset expiry.
    pub fn tick(&self, shared: &Shared) {
        let now = now_ms();
        let effects = {
            let mut coordinator = self.coordinator.lock();
            let effects = coordinator.tick(now);
            if let Err(e) = self.append_all(shared, &effects.records) {
                tracing::error!(error = %e, "cannot write group coordinator records");
            }
            effects
        };
        self.deliver(effects.replies);
    }

    /// Compacts `__consumer_offsets` by snapshot: for each partition that has grown well
    /// past its groups' live state, append that state (what `replay` rebuilds the groups
    /// from) and drop every record before it. The coordinator lock is held throughout, so
    /// no commit can land between the snapshot and the cut. A crash in between is safe:
    /// the snapshot only restates the latest state, so replaying old records followed by
    /// a partial snapshot gives the same groups.
    pub fn compact(&self, shared: &Shared) -> Result<usize, ApiError> {
        let Some(topic) = shared.image().topic(OFFSETS_TOPIC).cloned() else {
            return Ok(0);
        };
        let partitions = topic.partitions.len() as i32;
        let coordinator = self.coordinator.lock();
        let mut compacted = 0;
        for index in 0..partitions {
            let Some(partition) = shared.partition(OFFSETS_TOPIC, index) else {
                continue;
            };
            let (start, end) = partition.offsets();
            if end - start < COMPACT_MIN_RECORDS {
                continue;
            }
            if self.pending_txn.lock().keys().any(|(i, _)| *i == index) {
                // The snapshot holds decided state only: cutting now would lose the
                // records of a transaction still open.
                continue;
            }
            let live =
                coordinator.snapshot(|group| offsets_partition_for(group, partitions) == index);
            if end - start < COMPACT_RATIO * live.len() as i64 {
                continue;
            }
            let (snapshot_start, _) = append_records(&partition, &live, ProducerInfo::NONE)?;
            partition
                .with_log(|log| log.delete_records_before(snapshot_start))
                .map_err(storage)?;
            tracing::info!(
                partition = index,
                before = end - start,
                live = live.len(),
                "compacted __consumer_offsets partition"
            );
            compacted += 1;
        }
        Ok(compacted)
    }

    /// TxnOffsetCommit: validates, writes the offsets to the group's partition in the
    /// producer's transaction, and keeps them pending until its marker. Returns the
    /// response with the write to wait for (answered once the ISR has it).
    pub fn txn_offset_commit(
        &self,
        shared: &Shared,
        req: &TxnOffsetCommitRequest,
    ) -> Result<(TxnOffsetCommitResponse, Option<Written>), ApiError> {
        let group_id = req.group_id.as_str();
        let mut coordinator = self.coordinator.lock();
        let (response, records) = coordinator.txn_offset_commit(req, now_ms());
        if records.is_empty() {
            return Ok((response, None));
        }
        let producer = ProducerInfo {
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            base_sequence: -1,
            transactional: true,
        };
        let written = self.append_with(shared, group_id, &records, producer)?;
        if let Some((partition, _)) = &written {
            self.pending_txn
                .lock()
                .entry((partition.index, producer.producer_id))
                .or_default()
                .extend(records);
        }
        Ok((response, written))
    }

    /// A transaction marker was written to `__consumer_offsets` partition `index`:
    /// apply (commit) or drop (abort) the producer's pending offsets.
    pub fn complete_txn(&self, index: i32, producer_id: i64, commit: bool) {
        let mut coordinator = self.coordinator.lock();
        self.decide(&mut coordinator, index, producer_id, commit);
    }

    fn decide(
        &self,
        coordinator: &mut GroupCoordinator,
        index: i32,
        producer_id: i64,
        commit: bool,
    ) {
        let Some(records) = self.pending_txn.lock().remove(&(index, producer_id)) else {
            return;
        };
        if !commit {
            return;
        }
        for record in &records {
            if let Err(e) = coordinator.replay(record) {
                tracing::warn!(error = %e, "skipping unreadable transactional offset commit");
            }
        }
    }

    /// Whether a transaction holds an undecided offset commit for this group and
    /// partition (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn.lock().values().flatten().any(|r| {
            r.offset_key()
                .is_some_and(|(g, t, p)| g == group && t == topic && p == partition)
        })
    }

    fn append(
        &self,
        shared: &Shared,
        group_id: &str,
        records: &[OffsetsRecord],
    ) -> Result<Option<Written>, ApiError> {
        self.append_with(shared, group_id, records, ProducerInfo::NONE)
    }

    fn append_with(
        &self,
        shared: &Shared,
        group_id: &str,
        records: &[OffsetsRecord],
        producer: ProducerInfo,
    ) -> Result<Option<Written>, ApiError> {
        if records.is_empty() {
            return Ok(None);
        }
        self.ensure_offsets_topic(shared)?;
        let index = offsets_partition_for(group_id, self.offsets_partition_count(shared));
        let partition = shared.partition(OFFSETS_TOPIC, index).ok_or_else(|| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "__consumer_offsets is not loaded",
            )
        })?;
        let (_, last) = append_records(&partition, records, producer)?;
        Ok(last.map(|a| (partition, a)))
    }

    /// Appends records whose groups may differ (from `tick`), grouped per group id.
    fn append_all(&self, shared: &Shared, records: &[OffsetsRecord]) -> Result<(), ApiError> {
        let mut by_group: BTreeMap<String, Vec<OffsetsRecord>> = BTreeMap::new();
        for r in records {
            by_group
                .entry(r.group_id().unwrap_or_default().to_string())
                .or_default()
                .push(r.clone());
        }
        for (group, records) in by_group {
            self.append(shared, &group, &records)?;
        }
        Ok(())
    }
}

/// The `__consumer_offsets` partition a change went to, and its last append.
pub type Written = (Arc<Partition>, Appended);

/// Appends records to one `__consumer_offsets` partition; returns the offset of the
/// first record and the last append.
fn append_records(
    partition: &Partition,
    records: &[OffsetsRecord],
    producer: ProducerInfo,
) -> Result<(i64, Option<Appended>), ApiError> {
    let keyed: Vec<(Bytes, Option<Bytes>)> = records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    internal_topic::append_keyed(partition, &keyed, producer)
}

struct CancelOnDrop {
    shared: Arc<Shared>,
    token: ReplyToken,
    armed: bool,
}

impl CancelOnDrop {
    fn disarm(mut self) -> Self {
        self.armed = false;
        self
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let groups = &self.shared.groups;
        groups.parked.lock().remove(&self.token);
        let effects = groups.coordinator.lock().cancel(self.token, now_ms());
        if let Err(e) = groups.append_all(&self.shared, &effects.records) {
            tracing::error!(error = %e, "cannot write group coordinator records");
        }
        groups.deliver(effects.replies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafka() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("ab"), 97 * 31 + 98);
        assert!((0..50).contains(&offsets_partition_for("any-group", 50)));
    }
}
