//! The broker side of the transaction coordinator: holds the pure state machine from
//! `brook_coord::txn`, writes its records to `__transaction_state` (and answers only once
//! the partition's in-sync replicas have them), writes the transaction markers it decides
//! on (here, or through the partition leader's broker), and replays the topic when this
//! broker starts coordinating a partition of it.
//!
//! A transactional id belongs to partition `hash(id) % partitions` of
//! `__transaction_state` (Java's `String.hashCode`, as Kafka), and is coordinated by that
//! partition's leader; the partition's leader epoch is the coordinator epoch its markers
//! carry, so a partition leader refuses markers from a coordinator that lost the id.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use brook_coord::txn::{MarkerJob, TransactionCoordinator, TxnConfig, TxnEffects, TxnRecord};
use brook_protocol::records::ProducerInfo;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::BrokerConfig;
use crate::groups::{offsets_partition_for, OFFSETS_TOPIC};
use crate::internal_topic::{self, storage, Replayed};
use crate::partition::{Appended, Partition};
use crate::shared::{now_ms, ApiError, Shared};

pub const TXN_TOPIC: &str = "__transaction_state";
/// How long a state change or a marker may wait for the in-sync replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off between attempts to write a marker whose partition is unavailable.
const MARKER_RETRY_MIN: Duration = Duration::from_millis(50);
const MARKER_RETRY_MAX: Duration = Duration::from_secs(1);
/// A partition is compacted once it holds at least this many records...
const COMPACT_MIN_RECORDS: i64 = 10_000;
/// ...and this many times more records than its ids' live state.
const COMPACT_RATIO: i64 = 4;

/// Markers for one producer in some partitions of this broker (the inter-broker form of
/// Kafka's WriteTxnMarkers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkerRequest {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
    pub partitions: Vec<(String, i32)>,
}

pub struct Txns {
    coordinator: Mutex<TransactionCoordinator>,
    /// The `__transaction_state` partitions this broker leads and has replayed.
    led: Mutex<BTreeSet<i32>>,
    /// Marker jobs being written, so a job handed out twice runs once.
    writing: Mutex<HashSet<(String, i64, i16)>>,
    /// Marker jobs waiting for the broker to be up.
    deferred: Mutex<Vec<MarkerJob>>,
    partitions: i32,
    replication_factor: i16,
    min_isr: i64,
}

/// Java's `String.hashCode`, masked positive, modulo the partition count (Kafka's
/// `partitionFor`); the same mapping as groups use for `__consumer_offsets`.
pub fn txn_partition_for(transactional_id: &str, partitions: i32) -> i32 {
    offsets_partition_for(transactional_id, partitions)
}

impl Txns {
    pub fn new(config: &BrokerConfig) -> Self {
        let txn_config = TxnConfig {
            max_timeout_ms: config
                .int("transaction.max.timeout.ms")
                .clamp(1, i32::MAX as i64) as i32,
            id_expiration_ms: config.int("transactional.id.expiration.ms").max(1),
        };
        Txns {
            coordinator: Mutex::new(TransactionCoordinator::new(txn_config)),
            led: Mutex::new(BTreeSet::new()),
            writing: Mutex::new(HashSet::new()),
            deferred: Mutex::new(Vec::new()),
            partitions: config
                .int("transaction.state.log.num.partitions")
                .clamp(1, 1000) as i32,
            replication_factor: config
                .int("transaction.state.log.replication.factor")
                .clamp(1, i16::MAX as i64) as i16,
            min_isr: config.int("transaction.state.log.min.isr").max(1),
        }
    }

    fn topic_configs(&self, replication: i16) -> BTreeMap<String, String> {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("retention.ms".to_string(), "-1".to_string());
        configs.insert("segment.bytes".to_string(), (100 * 1024 * 1024).to_string());
        let min_isr = self.min_isr.min(i64::from(replication));
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
        configs
    }

    /// Creates `__transaction_state` on first use, as Kafka does. In a cluster the
    /// replication factor is `transaction.state.log.replication.factor`, capped by the
    /// brokers there are; a single broker keeps one copy.
    pub fn ensure_topic(&self, shared: &Shared) -> Result<(), ApiError> {
        if shared.image().topic(TXN_TOPIC).is_some() {
            return Ok(());
        }
        let replication = if shared.is_cluster() {
            self.replication_factor
                .min(shared.brokers().len().max(1) as i16)
        } else {
            1
        };
        let created = crate::shared::block_on(shared.create_topic(
            TXN_TOPIC,
            self.partitions,
            replication,
            self.topic_configs(replication),
            Vec::new(),
            false,
        ));
        match created {
            Err(e) if e.code != ResponseError::TopicAlreadyExists.code() => Err(e),
            _ if shared.is_cluster() => Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "__transaction_state is being created",
            )),
            _ => {
                self.load(shared)?;
                Ok(())
            }
        }
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, shared: &Shared, transactional_id: &str) -> i32 {
        txn_partition_for(transactional_id, self.partition_count(shared))
    }

    /// Whether this broker coordinates `transactional_id` now (it leads the id's
    /// partition and has replayed it).
    pub fn owns(&self, shared: &Shared, transactional_id: &str) -> bool {
        if shared.image().topic(TXN_TOPIC).is_none() {
            return false;
        }
        let index = self.partition_of(shared, transactional_id);
        self.led.lock().contains(&index)
    }

    /// Single broker: replays every partition (at start-up, or once the topic exists).
    pub fn load(&self, shared: &Shared) -> Result<usize, ApiError> {
        let Some(topic) = shared.image().topic(TXN_TOPIC).cloned() else {
            return Ok(0);
        };
        let mut replayed = 0;
        let mut jobs = Vec::new();
        {
            let mut coordinator = self.coordinator.lock();
            let mut led = self.led.lock();
            for p in &topic.partitions {
                if led.contains(&p.index) {
                    continue;
                }
                replayed += self.replay_partition(shared, &mut coordinator, p.index)?;
                led.insert(p.index);
            }
            jobs.extend(coordinator.pending_markers(|_| true));
        }
        self.spawn_markers(shared, jobs);
        Ok(replayed)
    }

    /// Cluster mode: replay the partitions this broker now leads (and finish the
    /// transactions left deciding there), forget the ids of those it no longer leads.
    pub fn follow_leadership(&self, shared: &Shared, image: &brook_meta::MetadataImage) {
        let Some(topic) = image.topic(TXN_TOPIC) else {
            return;
        };
        let partitions = topic.partitions.len() as i32;
        let now_led = internal_topic::led_partitions(shared, image, TXN_TOPIC);
        let mut led = self.led.lock();
        let (lost, gained) = internal_topic::leadership_change(&led, &now_led);
        if lost.is_empty() && gained.is_empty() {
            return;
        }
        let mut coordinator = self.coordinator.lock();
        if !lost.is_empty() {
            let n = coordinator.unload(|id| lost.contains(&txn_partition_for(id, partitions)));
            tracing::info!(partitions = ?lost, ids = n, "no longer coordinating transactions of these __transaction_state partitions");
        }
        let mut jobs = Vec::new();
        for index in gained {
            match self.replay_partition(shared, &mut coordinator, index) {
                Ok(n) => tracing::info!(
                    partition = index,
                    records = n,
                    "coordinating transactions of __transaction_state partition"
                ),
                Err(e) => {
                    tracing::error!(partition = index, error = %e, "cannot load __transaction_state partition");
                    continue;
                }
            }
            jobs.extend(
                coordinator.pending_markers(|id| txn_partition_for(id, partitions) == index),
            );
            led.insert(index);
        }
        led.retain(|p| now_led.contains(p));
        drop(coordinator);
        drop(led);
        self.spawn_markers(shared, jobs);
    }

    fn replay_partition(
        &self,
        shared: &Shared,
        coordinator: &mut TransactionCoordinator,
        index: i32,
    ) -> Result<usize, ApiError> {
        let Some(partition) = shared.partition(TXN_TOPIC, index) else {
            return Ok(0);
        };
        let mut replayed = 0;
        internal_topic::replay(&partition, |batch| {
            let Replayed::Records(_, records) = batch else {
                return;
            };
            for r in records {
                let Some(key) = r.key else { continue };
                let record = TxnRecord {
                    key,
                    value: r.value,
                };
                if let Err(e) = coordinator.replay(&record) {
                    tracing::warn!(offset = r.offset, error = %e, "skipping unreadable __transaction_state record");
                }
                replayed += 1;
            }
        })?;
        Ok(replayed)
    }

    /// Read-only access (DescribeTransactions, ListTransactions, InitProducerId's check
    /// whether a fresh producer id is needed).
    pub fn read<T>(&self, f: impl FnOnce(&TransactionCoordinator) -> T) -> T {
        f(&self.coordinator.lock())
    }

    /// Runs `f` on the coordinator, appends the records it returns to the id's
    /// partition, waits until the in-sync replicas have them, then starts writing the
    /// markers it decided on and returns `f`'s value. The coordinator lock is held across
    /// the append so records reach the log in decision order.
    pub async fn apply<T>(
        &self,
        shared: &Arc<Shared>,
        transactional_id: &str,
        f: impl FnOnce(&mut TransactionCoordinator) -> (T, TxnEffects),
    ) -> Result<T, ApiError> {
        let (value, effects, written) = {
            let mut coordinator = self.coordinator.lock();
            let (value, effects) = f(&mut coordinator);
            let written = match self.append(shared, transactional_id, &effects.records) {
                Ok(written) => written,
                Err(e) => {
                    // The state is ahead of the log: rebuild this partition's ids from it.
                    tracing::error!(error = %e, "cannot write __transaction_state; reloading");
                    let index = self.partition_of(shared, transactional_id);
                    let partitions = self.partition_count(shared);
                    coordinator.unload(|id| txn_partition_for(id, partitions) == index);
                    if let Err(e) = self.replay_partition(shared, &mut coordinator, index) {
                        tracing::error!(error = %e, "cannot reload __transaction_state");
                        self.led.lock().remove(&index);
                    }
                    return Err(e);
                }
            };
            // An answer without records (a retry, partitions already added) may rest on
            // a record still on its way to the replicas: wait for the partition's end.
            let written = written.or_else(|| self.log_end(shared, transactional_id));
            (value, effects, written)
        };
        if let Some((partition, appended)) = written {
            let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
            if let Err(code) = partition.wait_replicated(&appended, deadline).await {
                return Err(if code == ResponseError::NotLeaderOrFollower.code() {
                    ApiError::new(
                        ResponseError::NotCoordinator,
                        "this broker no longer leads the transactional id's partition",
                    )
                } else {
                    ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        "the transaction log is not replicated yet",
                    )
                });
            }
        }
        self.spawn_markers(shared, effects.markers);
        Ok(value)
    }

    /// The id's partition and its log end, as an append to wait for.
    fn log_end(
        &self,
        shared: &Shared,
        transactional_id: &str,
    ) -> Option<(Arc<Partition>, Appended)> {
        let partition = shared.partition(TXN_TOPIC, self.partition_of(shared, transactional_id))?;
        let (log_start_offset, end) = partition.log_offsets();
        let appended = Appended {
            base_offset: end,
            next_offset: end,
            leader_epoch: partition.leadership().1,
            min_insync: None,
            log_append_time_ms: -1,
            log_start_offset,
        };
        Some((partition, appended))
    }

    fn partition_count(&self, shared: &Shared) -> i32 {
        shared
            .image()
            .topic(TXN_TOPIC)
            .map_or(self.partitions, |t| t.partitions.len() as i32)
    }

    fn append(
        &self,
        shared: &Shared,
        transactional_id: &str,
        records: &[TxnRecord],
    ) -> Result<Option<(Arc<Partition>, Appended)>, ApiError> {
        if records.is_empty() {
            return Ok(None);
        }
        let index = self.partition_of(shared, transactional_id);
        let partition = shared.partition(TXN_TOPIC, index).ok_or_else(|| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "__transaction_state is not loaded",
            )
        })?;
        let (_, last) = append_records(&partition, records)?;
        Ok(last.map(|a| (partition, a)))
    }

    /// Transaction timeouts and id expiry; about every 100 ms, off the async threads.
    /// The records are appended under the coordinator lock, as for requests; their
    /// markers start once the in-sync replicas have them.
    pub fn tick(&self, shared: &Arc<Shared>) {
        self.spawn_markers(shared, Vec::new());
        let now = now_ms();
        let mut waits = Vec::new();
        let markers = {
            let mut coordinator = self.coordinator.lock();
            if coordinator.next_deadline_ms().is_none_or(|d| d > now) {
                return;
            }
            let effects = coordinator.tick(now);
            // Records of several ids (several partitions): append them id by id.
            let mut by_id: BTreeMap<String, Vec<TxnRecord>> = BTreeMap::new();
            for r in effects.records {
                by_id
                    .entry(r.transactional_id().unwrap_or_default())
                    .or_default()
                    .push(r);
            }
            for (id, records) in by_id {
                match self.append(shared, &id, &records) {
                    Ok(Some(written)) => waits.push(written),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(transactional_id = %id, error = %e, "cannot write a timed-out transaction's state")
                    }
                }
            }
            effects.markers
        };
        if markers.is_empty() {
            return;
        }
        let shared2 = shared.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
            for (partition, appended) in waits {
                if let Err(code) = partition.wait_replicated(&appended, deadline).await {
                    // The markers wait for a coordinator that has the decision durable;
                    // a new one re-sends them after replaying the log.
                    tracing::warn!(code, "timed-out transactions' state not replicated");
                    return;
                }
            }
            shared2.txns.spawn_markers(&shared2, markers);
        });
    }

    /// Compacts `__transaction_state` by snapshot, like `__consumer_offsets`: for each
    /// partition grown well past its ids' live state, append that state and drop
    /// everything before it, under the coordinator lock.
    pub fn compact(&self, shared: &Shared) -> Result<usize, ApiError> {
        let Some(topic) = shared.image().topic(TXN_TOPIC).cloned() else {
            return Ok(0);
        };
        let partitions = topic.partitions.len() as i32;
        let coordinator = self.coordinator.lock();
        let led = self.led.lock().clone();
        let mut compacted = 0;
        for index in led {
            let Some(partition) = shared.partition(TXN_TOPIC, index) else {
                continue;
            };
            let (start, end) = partition.offsets();
            if end - start < COMPACT_MIN_RECORDS {
                continue;
            }
            let live = coordinator.snapshot(|id| txn_partition_for(id, partitions) == index);
            if end - start < COMPACT_RATIO * live.len() as i64 {
                continue;
            }
            let (snapshot_start, _) = append_records(&partition, &live)?;
            partition
                .with_log(|log| log.delete_records_before(snapshot_start))
                .map_err(storage)?;
            tracing::info!(
                partition = index,
                before = end - start,
                live = live.len(),
                "compacted __transaction_state partition"
            );
            compacted += 1;
        }
        Ok(compacted)
    }

    /// Starts writing the markers of `jobs`. Jobs handed out before the broker is fully
    /// up (replay at start-up) wait for the next [`Txns::tick`].
    fn spawn_markers(&self, shared: &Shared, jobs: Vec<MarkerJob>) {
        let mut deferred = self.deferred.lock();
        deferred.extend(jobs);
        if deferred.is_empty() {
            return;
        }
        let (Some(shared), Ok(runtime)) = (shared.arc(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        for job in std::mem::take(&mut *deferred) {
            let key = (
                job.transactional_id.clone(),
                job.producer_id,
                job.producer_epoch,
            );
            if !self.writing.lock().insert(key.clone()) {
                continue;
            }
            let shared = shared.clone();
            runtime.spawn(async move {
                let guard = Writing {
                    shared: shared.clone(),
                    key,
                };
                run_marker_job(&shared, &job, guard).await;
            });
        }
    }
}

/// A marker job being written: its key leaves `Txns::writing` when dropped.
struct Writing {
    shared: Arc<Shared>,
    key: (String, i64, i16),
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.shared.txns.writing.lock().remove(&self.key);
    }
}

/// Writes every marker of `job` (retrying unavailable partitions), then records the
/// transaction complete. Gives up if this broker stops coordinating the id or the
/// transaction moves on. `writing` is released before the transaction completes: the
/// producer's next transaction has the same key, and its job must not be taken for a
/// duplicate of this one.
async fn run_marker_job(shared: &Arc<Shared>, job: &MarkerJob, writing: Writing) {
    let txns = &shared.txns;
    let id = job.transactional_id.as_str();
    let mut remaining: Vec<(String, i32)> = job.partitions.clone();
    let mut backoff = MARKER_RETRY_MIN;
    let started = now_ms();
    loop {
        let still_ours = txns.owns(shared, id)
            && txns.read(|c| c.producer(id)) == Some((job.producer_id, job.producer_epoch));
        if !still_ours {
            tracing::info!(
                transactional_id = id,
                "stopped writing markers: the transaction moved on"
            );
            return;
        }
        let coordinator_epoch = shared
            .partition(TXN_TOPIC, txns.partition_of(shared, id))
            .map_or(-1, |p| p.leadership().1);
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, index) in remaining.drain(..) {
            let leader = shared
                .image()
                .topic(&topic)
                .and_then(|t| t.partitions.get(index as usize).map(|p| p.leader));
            match leader {
                // The topic is gone: nothing to mark.
                None => {}
                Some(leader) => by_leader.entry(leader).or_default().push((topic, index)),
            }
        }
        for (leader, partitions) in by_leader {
            let request = MarkerRequest {
                producer_id: job.producer_id,
                producer_epoch: job.producer_epoch,
                commit: job.commit,
                coordinator_epoch,
                partitions: partitions.clone(),
            };
            let codes = if leader == shared.config.node_id || !shared.is_cluster() {
                write_markers(shared, &request).await
            } else {
                match shared.write_markers_remote(leader, &request).await {
                    Ok(codes) if codes.len() == partitions.len() => codes,
                    Ok(_) | Err(_) => {
                        vec![ResponseError::CoordinatorNotAvailable.code(); partitions.len()]
                    }
                }
            };
            for (tp, code) in partitions.into_iter().zip(codes) {
                match ResponseError::try_from_code(code) {
                    None => {}
                    // A newer epoch already ended it there, or the partition is gone.
                    Some(ResponseError::InvalidProducerEpoch)
                    | Some(ResponseError::UnknownTopicOrPartition) => {
                        tracing::debug!(transactional_id = id, topic = %tp.0, partition = tp.1, code, "marker not needed");
                    }
                    Some(ResponseError::TransactionCoordinatorFenced) => {
                        tracing::info!(
                            transactional_id = id,
                            "a newer coordinator owns the transaction"
                        );
                        return;
                    }
                    Some(_) => remaining.push(tp),
                }
            }
        }
        if remaining.is_empty() {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MARKER_RETRY_MAX);
    }
    drop(writing);
    let result = txns
        .apply(shared, id, |c| {
            (
                (),
                c.markers_written(id, job.producer_id, job.producer_epoch, now_ms()),
            )
        })
        .await;
    match result {
        Ok(()) => tracing::debug!(
            transactional_id = id,
            commit = job.commit,
            partitions = job.partitions.len(),
            ms = now_ms() - started,
            "transaction markers written"
        ),
        Err(e) => {
            tracing::warn!(transactional_id = id, error = %e, "cannot record a completed transaction")
        }
    }
}

/// Writes markers in partitions this broker leads and waits until their in-sync
/// replicas have them. One error code per partition, in order.
pub async fn write_markers(shared: &Arc<Shared>, request: &MarkerRequest) -> Vec<i16> {
    let mut codes = Vec::with_capacity(request.partitions.len());
    let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
    let mut waits = Vec::new();
    for (topic, index) in &request.partitions {
        let Some(partition) = shared.partition(topic, *index) else {
            let exists = shared
                .image()
                .topic(topic)
                .is_some_and(|t| (*index as usize) < t.partitions.len());
            codes.push(if exists {
                ResponseError::NotLeaderOrFollower.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            });
            continue;
        };
        match partition.write_marker(
            request.producer_id,
            request.producer_epoch,
            request.commit,
            request.coordinator_epoch,
            now_ms(),
        ) {
            Ok(appended) => {
                if topic == OFFSETS_TOPIC {
                    shared
                        .groups
                        .complete_txn(*index, request.producer_id, request.commit);
                }
                waits.push((codes.len(), partition, appended));
                codes.push(0);
            }
            Err(e) => codes.push(e.code()),
        }
    }
    // The last stable offset moved: wake read_committed long-polls.
    shared.data_appended.notify_waiters();
    for (i, partition, appended) in waits {
        if let Err(code) = partition.wait_replicated(&appended, deadline).await {
            codes[i] = code;
        }
    }
    codes
}

/// Appends records to one `__transaction_state` partition; returns the offset of the
/// first record and the last append.
fn append_records(
    partition: &Partition,
    records: &[TxnRecord],
) -> Result<(i64, Option<Appended>), ApiError> {
    let keyed: Vec<(Bytes, Option<Bytes>)> = records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    internal_topic::append_keyed(partition, &keyed, ProducerInfo::NONE)
}
