//! The broker side of the transaction coordinator: the pure state machine from
//! `brook_coord::txn` hosted on `__transaction_state` (see [`crate::coordinator_host`]).
//! State changes are answered only once the partition's in-sync replicas have them; the
//! markers it decides on are written here or through the partition leader's broker.
//!
//! A transactional id belongs to partition `hash(id) % partitions` of
//! `__transaction_state` (Java's `String.hashCode`, as Kafka), and is coordinated by that
//! partition's leader; the partition's leader epoch is the coordinator epoch its markers
//! carry, so a partition leader refuses markers from a coordinator that lost the id.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use brook_coord::txn::{MarkerJob, TransactionCoordinator, TxnConfig, TxnEffects, TxnRecord};
use brook_meta::{MetadataImage, NO_LEADER};
use brook_protocol::records::ProducerInfo;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use crate::clock::now_ms;
use crate::config::BrokerSettings;
use crate::controller_client::ControllerClient;
use crate::coordinator_host::{flush_written, CoordinatorHost, Hosted, Keyed, Replayed, Written};
use crate::error::ApiError;
use crate::markers::{MarkerWriter, REPLICATION_TIMEOUT};
use crate::metadata::MetadataView;
use crate::names::{coordinator_partition_for, TXN_TOPIC};
use crate::partition::Appended;
use crate::peer::{MarkerRequest, PeerNet, VerifyTxnRequest};
use crate::replicas::Replicas;

/// Back-off between attempts to write a marker whose partition is unavailable.
const MARKER_RETRY_MIN: Duration = Duration::from_millis(50);
const MARKER_RETRY_MAX: Duration = Duration::from_secs(1);

impl Hosted for TransactionCoordinator {
    fn unload(&mut self, lost: &BTreeSet<i32>, partitions: i32) -> usize {
        TransactionCoordinator::unload(self, |id| {
            lost.contains(&coordinator_partition_for(id, partitions))
        })
    }

    fn replay(&mut self, _index: i32, batch: Replayed<'_>) -> usize {
        let Replayed::Records(_, records) = batch else {
            return 0;
        };
        let mut replayed = 0;
        for r in records {
            let Some(key) = r.key else { continue };
            let record = TxnRecord {
                key,
                value: r.value,
            };
            if let Err(e) = TransactionCoordinator::replay(self, &record) {
                tracing::warn!(offset = r.offset, error = %e, "skipping unreadable __transaction_state record");
            }
            replayed += 1;
        }
        replayed
    }
}

fn keyed(records: &[TxnRecord]) -> Vec<Keyed> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect()
}

/// A tick's records on their way to the replicas, and the markers to write after.
pub struct TickOutcome {
    waits: Vec<Written>,
    markers: Vec<MarkerJob>,
}

pub struct Txns {
    host: CoordinatorHost<TransactionCoordinator>,
    metadata: MetadataView,
    controller: Arc<ControllerClient>,
    markers: Arc<MarkerWriter>,
    /// Reaches the leaders of partitions on other brokers (cluster only).
    peers: Option<Arc<PeerNet>>,
    /// Marker jobs being written, so a job handed out twice runs once.
    writing: Mutex<HashSet<(String, i64, i16)>>,
    replication_factor: i16,
    min_isr: i64,
    /// `transaction.state.log.segment.bytes`
    segment_bytes: i64,
}

impl Txns {
    pub fn new(
        settings: &BrokerSettings,
        replicas: Arc<Replicas>,
        metadata: MetadataView,
        controller: Arc<ControllerClient>,
        markers: Arc<MarkerWriter>,
        peers: Option<Arc<PeerNet>>,
    ) -> Self {
        let txn_config = TxnConfig {
            max_timeout_ms: settings
                .transaction_max_timeout_ms
                .clamp(1, i32::MAX as i64) as i32,
            id_expiration_ms: settings.transactional_id_expiration_ms.max(1),
        };
        Txns {
            host: CoordinatorHost::new(
                TXN_TOPIC,
                settings.transaction_state_log_num_partitions.clamp(1, 1000) as i32,
                replicas,
                TransactionCoordinator::new(txn_config),
            ),
            metadata,
            controller,
            markers,
            peers,
            writing: Mutex::new(HashSet::new()),
            replication_factor: settings
                .transaction_state_log_replication_factor
                .clamp(1, i16::MAX as i64) as i16,
            min_isr: settings.transaction_state_log_min_isr.max(1),
            segment_bytes: settings
                .transaction_state_log_segment_bytes
                .max(i64::from(crate::config::MIN_CLIENT_SEGMENT_BYTES)),
        }
    }

    fn topic_configs(&self, replication: i16) -> BTreeMap<String, String> {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("retention.ms".to_string(), "-1".to_string());
        configs.insert("segment.bytes".to_string(), self.segment_bytes.to_string());
        let min_isr = self.min_isr.min(i64::from(replication));
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
        configs
    }

    /// Creates `__transaction_state` on first use, as Kafka does. In a cluster the
    /// replication factor is `transaction.state.log.replication.factor`, capped by the
    /// brokers there are, and clients retry while it is being created; a single broker
    /// keeps one copy and coordinates as soon as it exists.
    pub async fn ensure_topic(&self) -> Result<(), ApiError> {
        if self.metadata.image().topic(TXN_TOPIC).is_some() {
            return Ok(());
        }
        let cluster = self.metadata.is_cluster();
        let replication = if cluster {
            self.replication_factor
                .min(self.metadata.live_brokers().max(1) as i16)
        } else {
            1
        };
        let created = self
            .controller
            .create_topic(
                TXN_TOPIC,
                self.host.default_partitions(),
                replication,
                self.topic_configs(replication),
                Vec::new(),
                false,
            )
            .await;
        match created {
            Err(e) if !e.is(ResponseError::TopicAlreadyExists) => Err(e),
            _ if cluster => Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "__transaction_state is being created",
            )),
            _ => Ok(()),
        }
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        self.host
            .partition_of(&self.metadata.image(), transactional_id)
    }

    /// Whether this broker coordinates `transactional_id` now (it leads the id's
    /// partition and has replayed it).
    pub fn owns(&self, transactional_id: &str) -> bool {
        self.metadata.image().topic(TXN_TOPIC).is_some()
            && self.host.leads(self.partition_of(transactional_id))
    }

    /// KIP-890 (part 1): may `producer_id` at `producer_epoch` write transactional
    /// records to `topic`/`partition` now? Only if the coordinator has that partition in
    /// the id's ongoing transaction, so a producer id never issued (or a stale one)
    /// cannot open a transaction no coordinator will ever end, which would hold every
    /// read_committed consumer of the partition back forever. In a cluster, the
    /// coordinator of an id on another broker is asked over the inter-broker
    /// transport (Kafka's AddPartitionsToTxn with verifyOnly); while it cannot be
    /// reached the answer is a retriable error, never a yes.
    pub async fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let image = self.metadata.image();
        if image.topic(TXN_TOPIC).is_none() {
            // No transaction was ever started on this cluster.
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        let (Some(peers), false) = (&self.peers, self.owns(transactional_id)) else {
            return self.verify_here(
                transactional_id,
                producer_id,
                producer_epoch,
                topic,
                partition,
            );
        };
        let coordinator = image
            .partition(TXN_TOPIC, self.partition_of(transactional_id))
            .map_or(NO_LEADER, |p| p.leader);
        if coordinator == NO_LEADER || coordinator == self.metadata.node_id() {
            // Moving or loading: the client retries.
            return Err(ResponseError::NotEnoughReplicas);
        }
        let req = VerifyTxnRequest {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch,
            topic: topic.to_string(),
            partition,
        };
        match peers.verify_txn(coordinator, &req).await {
            Ok(0) => Ok(()),
            Ok(code) => {
                Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
            }
            Err(e) => {
                tracing::debug!(transactional_id, coordinator, error = %e, "transaction verification failed");
                Err(ResponseError::NotEnoughReplicas)
            }
        }
    }

    /// [`Txns::verify`] answered by this broker's coordinator; an id it does not
    /// coordinate (yet) gets a retriable error.
    pub fn verify_here(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        if self.metadata.image().topic(TXN_TOPIC).is_none() {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if !self.owns(transactional_id) {
            return Err(ResponseError::NotEnoughReplicas);
        }
        self.read(|c| {
            c.verify_partition(
                transactional_id,
                producer_id,
                producer_epoch,
                topic,
                partition,
            )
        })
    }

    /// Follows a new image: replays the partitions this broker now leads and returns the
    /// markers of the transactions left deciding there (to [`Txns::spawn_markers`]).
    pub fn follow(&self, image: &MetadataImage) -> Vec<MarkerJob> {
        let gained = self.host.follow(image);
        if gained.is_empty() {
            return Vec::new();
        }
        let partitions = self.host.partition_count(image);
        self.host
            .lock()
            .pending_markers(|id| gained.contains(&coordinator_partition_for(id, partitions)))
    }

    /// Read-only access (DescribeTransactions, ListTransactions, InitProducerId's check
    /// whether a fresh producer id is needed).
    pub fn read<T>(&self, f: impl FnOnce(&TransactionCoordinator) -> T) -> T {
        f(&self.host.lock())
    }

    /// Runs `f` on the coordinator, appends the records it returns to the id's
    /// partition, waits until the in-sync replicas have them, then starts writing the
    /// markers it decided on and returns `f`'s value. The coordinator lock is held across
    /// the append so records reach the log in decision order.
    pub async fn apply<T>(
        self: &Arc<Self>,
        transactional_id: &str,
        f: impl FnOnce(&mut TransactionCoordinator) -> (T, TxnEffects),
    ) -> Result<T, ApiError> {
        let image = self.metadata.image();
        let index = self.host.partition_of(&image, transactional_id);
        let (value, effects, written) = {
            let mut coordinator = self.host.lock();
            let (value, effects) = f(&mut coordinator);
            let written =
                match self
                    .host
                    .append(index, &keyed(&effects.records), ProducerInfo::NONE)
                {
                    Ok(written) => written,
                    Err(e) => {
                        // The state is ahead of the log: rebuild this partition's ids from it.
                        tracing::error!(error = %e, "cannot write __transaction_state; reloading");
                        self.host.reload(&mut coordinator, &image, index);
                        return Err(e);
                    }
                };
            // An answer without records (a retry, partitions already added) may rest on
            // a record still on its way to the replicas: wait for the partition's end.
            let written = written.or_else(|| self.log_end(index));
            (value, effects, written)
        };
        flush_written(&written).await?;
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
        self.spawn_markers(effects.markers);
        Ok(value)
    }

    /// Partition `index` and its log end, as an append to wait for.
    fn log_end(&self, index: i32) -> Option<Written> {
        let partition = self.host.partition(index).ok()?;
        let (log_start_offset, end) = partition.log_offsets();
        let appended = Appended {
            base_offset: end,
            next_offset: end,
            leader_epoch: partition.leadership().1,
            min_insync: None,
            log_append_time_ms: -1,
            log_start_offset,
            sync_due: false,
        };
        Some((partition, appended))
    }

    /// Transaction timeouts and id expiry; about every 100 ms, on the blocking pool.
    /// The records are appended under the coordinator lock, as for requests; their
    /// markers start once the in-sync replicas have them ([`Txns::after_tick`]).
    pub fn tick(&self) -> Option<TickOutcome> {
        let now = now_ms();
        let image = self.metadata.image();
        let mut coordinator = self.host.lock();
        if coordinator.next_deadline_ms().is_none_or(|d| d > now) {
            return None;
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
        let mut waits = Vec::new();
        for (id, records) in by_id {
            let index = self.host.partition_of(&image, &id);
            match self
                .host
                .append(index, &keyed(&records), ProducerInfo::NONE)
            {
                Ok(Some(written)) => {
                    // On the blocking pool: the fsync flush.messages asks for runs here.
                    if let Err(e) = written.0.sync_appended(&written.1) {
                        tracing::error!(transactional_id = %id, error = %e, "cannot flush __transaction_state");
                    }
                    waits.push(written)
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(transactional_id = %id, error = %e, "cannot write a timed-out transaction's state")
                }
            }
        }
        (!effects.markers.is_empty()).then_some(TickOutcome {
            waits,
            markers: effects.markers,
        })
    }

    /// Starts a tick's markers once its records are on the in-sync replicas.
    pub async fn after_tick(self: Arc<Self>, outcome: TickOutcome) {
        let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
        for (partition, appended) in outcome.waits {
            if let Err(code) = partition.wait_replicated(&appended, deadline).await {
                // The markers wait for a coordinator that has the decision durable;
                // a new one re-sends them after replaying the log.
                tracing::warn!(code, "timed-out transactions' state not replicated");
                return;
            }
        }
        self.spawn_markers(outcome.markers);
    }

    /// Starts writing the markers of `jobs`, each once.
    pub fn spawn_markers(self: &Arc<Self>, jobs: Vec<MarkerJob>) {
        for job in jobs {
            let key = (
                job.transactional_id.clone(),
                job.producer_id,
                job.producer_epoch,
            );
            if !self.writing.lock().insert(key.clone()) {
                continue;
            }
            let guard = Writing {
                txns: self.clone(),
                key,
            };
            tokio::spawn(self.clone().run_marker_job(job, guard));
        }
    }

    /// Writes every marker of `job` (retrying unavailable partitions), then records the
    /// transaction complete. Gives up if this broker stops coordinating the id or the
    /// transaction moves on. `writing` is released before the transaction completes: the
    /// producer's next transaction has the same key, and its job must not be taken for a
    /// duplicate of this one.
    async fn run_marker_job(self: Arc<Self>, job: MarkerJob, writing: Writing) {
        let id = job.transactional_id.as_str();
        let mut remaining: Vec<(String, i32)> = job.partitions.clone();
        let mut backoff = MARKER_RETRY_MIN;
        let started = now_ms();
        loop {
            let still_ours = self.owns(id)
                && self.read(|c| c.producer(id)) == Some((job.producer_id, job.producer_epoch));
            if !still_ours {
                tracing::info!(
                    transactional_id = id,
                    "stopped writing markers: the transaction moved on"
                );
                return;
            }
            let coordinator_epoch = self
                .host
                .partition(self.partition_of(id))
                .map_or(-1, |p| p.leadership().1);
            let image = self.metadata.image();
            let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
            for (topic, index) in remaining.drain(..) {
                let leader = image
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
                let codes = self.write_markers_at(leader, &request).await;
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
        let result = self
            .apply(id, |c| {
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

    /// Writes markers on broker `leader`: here, or through the inter-broker channel.
    async fn write_markers_at(&self, leader: i32, request: &MarkerRequest) -> Vec<i16> {
        match &self.peers {
            Some(peers) if leader != self.metadata.node_id() => {
                match peers.write_markers(leader, request).await {
                    Ok(codes) if codes.len() == request.partitions.len() => codes,
                    Ok(_) | Err(_) => {
                        vec![
                            ResponseError::CoordinatorNotAvailable.code();
                            request.partitions.len()
                        ]
                    }
                }
            }
            _ => self.markers.write(request).await,
        }
    }
}

/// A marker job being written: its key leaves `Txns::writing` when dropped.
struct Writing {
    txns: Arc<Txns>,
    key: (String, i64, i16),
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.txns.writing.lock().remove(&self.key);
    }
}
