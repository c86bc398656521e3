//! The broker side of the group coordinator: the pure state machine from `brook-coord`
//! hosted on `__consumer_offsets` (see [`crate::coordinator_host`]), with the requests
//! it parks (JoinGroup, SyncGroup) and the transactional offset commits it holds until
//! their marker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_coord::{Effects, GroupConfig, GroupCoordinator, OffsetsRecord, Reply, ReplyToken};
use brook_protocol::batch::{control_type, ControlType};
use brook_protocol::records::ProducerInfo;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::config::BrokerSettings;
use crate::controller_client::ControllerClient;
use crate::coordinator_host::{flush_written, CoordinatorHost, Hosted, Keyed, Replayed, Written};
use crate::error::ApiError;
use crate::image_topics::ImageTopics;
use crate::metadata::MetadataView;
use crate::names::{coordinator_partition_for, OFFSETS_TOPIC};
use crate::replicas::Replicas;

/// How long a request that created `__consumer_offsets` waits for this broker to load
/// it before telling the client to retry.
const LOAD_TIMEOUT: Duration = Duration::from_secs(3);

/// The group coordinator and what transactions hold pending, under one lock: a commit
/// marker applies pending offsets under it, so OffsetFetch with `require_stable` sees
/// both at once (KIP-447).
pub struct GroupState {
    pub coordinator: GroupCoordinator,
    /// Transactional offset commits written to `__consumer_offsets` and not decided
    /// yet, by (offsets partition, producer id): applied when the commit marker lands
    /// there, dropped on abort.
    pending_txn: HashMap<(i32, i64), Vec<OffsetsRecord>>,
}

impl GroupState {
    /// Whether a transaction holds an undecided offset commit for this group and
    /// partition (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn.values().flatten().any(|r| {
            r.offset_key()
                .is_some_and(|(g, t, p)| g == group && t == topic && p == partition)
        })
    }

    fn decide(&mut self, index: i32, producer_id: i64, commit: bool) {
        let Some(records) = self.pending_txn.remove(&(index, producer_id)) else {
            return;
        };
        if !commit {
            return;
        }
        for record in &records {
            if let Err(e) = self.coordinator.replay(record) {
                tracing::warn!(error = %e, "skipping unreadable transactional offset commit");
            }
        }
    }
}

impl Hosted for GroupState {
    fn unload(&mut self, lost: &BTreeSet<i32>, partitions: i32) -> usize {
        self.pending_txn
            .retain(|(index, _), _| !lost.contains(index));
        self.coordinator
            .unload(|g| lost.contains(&coordinator_partition_for(g, partitions)))
    }

    fn replay(&mut self, index: i32, batch: Replayed<'_>) -> usize {
        match batch {
            Replayed::Control(header, bytes) => {
                // A transaction marker decides that producer's pending commits.
                let commit = control_type(bytes) == Ok(ControlType::Commit);
                self.decide(index, header.producer_id, commit);
                0
            }
            Replayed::Records(header, records) => {
                let mut replayed = 0;
                for r in records {
                    let Some(key) = r.key else { continue };
                    let record = OffsetsRecord {
                        key,
                        value: r.value,
                    };
                    replayed += 1;
                    if header.is_transactional() {
                        self.pending_txn
                            .entry((index, header.producer_id))
                            .or_default()
                            .push(record);
                    } else if let Err(e) = self.coordinator.replay(&record) {
                        tracing::warn!(offset = r.offset, error = %e, "skipping unreadable __consumer_offsets record");
                    }
                }
                replayed
            }
        }
    }
}

fn keyed(records: &[OffsetsRecord]) -> Vec<Keyed> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect()
}

pub struct Groups {
    host: CoordinatorHost<GroupState>,
    metadata: MetadataView,
    controller: Arc<ControllerClient>,
    parked: Mutex<HashMap<ReplyToken, oneshot::Sender<Reply>>>,
    next_token: AtomicU64,
    commit_timeout: Duration,
    /// `offsets.topic.segment.bytes` (1 MiB at least, like every topic's)
    segment_bytes: i64,
}

impl Groups {
    pub fn new(
        settings: &BrokerSettings,
        replicas: Arc<Replicas>,
        metadata: MetadataView,
        controller: Arc<ControllerClient>,
    ) -> Self {
        let group_config = GroupConfig {
            initial_rebalance_delay_ms: settings.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: settings.group_min_session_timeout_ms as i32,
            max_session_timeout_ms: settings.group_max_session_timeout_ms as i32,
            max_size: settings.group_max_size.clamp(1, i32::MAX as i64) as usize,
            offsets_retention_ms: settings.offsets_retention_minutes.saturating_mul(60_000),
            offsets_retention_check_interval_ms: settings.offsets_retention_check_interval_ms,
            offset_metadata_max_bytes: settings.offset_metadata_max_bytes.max(0) as usize,
            consumer_session_timeout_ms: clamp_i32(settings.group_consumer_session_timeout_ms),
            consumer_heartbeat_interval_ms: clamp_i32(
                settings.group_consumer_heartbeat_interval_ms,
            ),
            consumer_max_size: settings.group_consumer_max_size.clamp(1, i32::MAX as i64) as usize,
            consumer_assignors: consumer_assignors(&settings.group_consumer_assignors),
            consumer_regex_refresh_interval_ms: settings.group_consumer_regex_refresh_interval_ms,
            // Checked when the settings were read.
            consumer_migration_policy: brook_coord::MigrationPolicy::parse(
                &settings.group_consumer_migration_policy,
            )
            .unwrap_or(brook_coord::MigrationPolicy::Bidirectional),
            share_session_timeout_ms: clamp_i32(settings.group_share_session_timeout_ms),
            share_heartbeat_interval_ms: clamp_i32(settings.group_share_heartbeat_interval_ms),
            share_max_size: settings.group_share_max_size.clamp(1, i32::MAX as i64) as usize,
            ..GroupConfig::default()
        };
        let state = GroupState {
            coordinator: GroupCoordinator::new(group_config),
            pending_txn: HashMap::new(),
        };
        Groups {
            host: CoordinatorHost::new(
                OFFSETS_TOPIC,
                settings.offsets_topic_num_partitions.clamp(1, 1000) as i32,
                replicas,
                state,
            ),
            metadata,
            controller,
            parked: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            commit_timeout: Duration::from_millis(settings.offsets_commit_timeout_ms.max(1) as u64),
            segment_bytes: settings
                .offsets_topic_segment_bytes
                .max(i64::from(crate::config::MIN_CLIENT_SEGMENT_BYTES)),
        }
    }

    /// The configs `__consumer_offsets` is created with.
    pub fn offsets_topic_configs(&self) -> BTreeMap<String, String> {
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("retention.ms".to_string(), "-1".to_string());
        configs.insert("segment.bytes".to_string(), self.segment_bytes.to_string());
        configs
    }

    /// Creates `__consumer_offsets` (FindCoordinator in a cluster, the first write on a
    /// single broker), as Kafka does.
    pub async fn create_offsets_topic(&self) -> Result<(), ApiError> {
        let replication = if self.metadata.is_cluster() { -1 } else { 1 };
        match self
            .controller
            .create_topic(
                OFFSETS_TOPIC,
                self.host.default_partitions(),
                replication,
                self.offsets_topic_configs(),
                Vec::new(),
                false,
            )
            .await
        {
            Err(e) if !e.is(ResponseError::TopicAlreadyExists) => Err(e),
            _ => Ok(()),
        }
    }

    /// Before a write on a single broker: `__consumer_offsets` exists. In a cluster
    /// FindCoordinator creates it, and clients retry meanwhile.
    async fn ensure_offsets_topic(&self) -> Result<(), ApiError> {
        if self.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        if self.metadata.is_cluster() {
            return Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "__consumer_offsets is being created",
            ));
        }
        self.create_offsets_topic().await?;
        // A concurrent request may have created it: either way, go on only once this
        // broker has applied the image that holds it (and so replayed its partitions).
        let applied = self
            .metadata
            .wait_applied(LOAD_TIMEOUT, |image| image.topic(OFFSETS_TOPIC).is_some())
            .await;
        if applied {
            Ok(())
        } else {
            Err(ApiError::new(
                ResponseError::CoordinatorLoadInProgress,
                "__consumer_offsets is being created",
            ))
        }
    }

    /// Before any change to `group_id`: `__consumer_offsets` exists and this broker has
    /// replayed the group's partition. A change made to state that is not loaded would
    /// be lost (or clobbered) by the replay, and its records could not be written.
    async fn ensure_loaded(&self, group_id: &str) -> Result<(), ApiError> {
        self.ensure_offsets_topic().await?;
        if self
            .host
            .leads(self.host.partition_of(&self.metadata.image(), group_id))
        {
            Ok(())
        } else {
            Err(ApiError::new(
                ResponseError::CoordinatorLoadInProgress,
                format!("the coordinator of group {group_id} is loading"),
            ))
        }
    }

    /// Partitions of `__consumer_offsets` as it exists (or will be created).
    pub fn offsets_partition_count(&self) -> i32 {
        self.host.partition_count(&self.metadata.image())
    }

    /// Whether this broker coordinates `group_id` now: it leads the group's
    /// `__consumer_offsets` partition (on a single broker, also before the topic exists:
    /// the first write creates it).
    pub fn coordinates(&self, group_id: &str) -> bool {
        let image = self.metadata.image();
        if image.topic(OFFSETS_TOPIC).is_none() {
            return !self.metadata.is_cluster();
        }
        self.host.leads(self.host.partition_of(&image, group_id))
    }

    /// The node leading `group_id`'s `__consumer_offsets` partition, if the topic exists
    /// and the partition has a leader.
    pub fn coordinator_node(&self, group_id: &str) -> Option<i32> {
        let image = self.metadata.image();
        let topic = image.topic(OFFSETS_TOPIC)?;
        let index = self.host.partition_of(&image, group_id);
        let leader = topic.partitions.get(usize::try_from(index).ok()?)?.leader;
        (leader >= 0).then_some(leader)
    }

    /// Follows a new image: replays the offsets partitions this broker now leads.
    pub fn follow(&self, image: &brook_meta::MetadataImage) {
        self.host.follow(image);
        // Groups' own timeouts and intervals (GROUP configs): few groups set any.
        let overrides: BTreeMap<String, brook_coord::GroupOverrides> = image
            .group_configs
            .iter()
            .map(|(group, configs)| {
                let pairs = configs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                (
                    group.clone(),
                    brook_coord::GroupOverrides::from_configs(pairs),
                )
            })
            .filter(|(_, o)| !o.is_empty())
            .collect();
        let mut state = self.host.lock();
        if state.coordinator.config().group_overrides != overrides {
            state.coordinator.set_group_overrides(overrides);
        }
    }

    /// Runs `f` on the coordinator, appends the records it returns, then delivers
    /// replies. The lock is held across the append so records reach the log in
    /// decision order.
    pub async fn apply<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator) -> (T, Effects),
    ) -> Result<T, ApiError> {
        self.apply_written(group_id, f)
            .await
            .map(|(value, _)| value)
    }

    async fn apply_written<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator) -> (T, Effects),
    ) -> Result<(T, Option<Written>), ApiError> {
        self.ensure_loaded(group_id).await?;
        let (value, effects, written) = {
            let mut state = self.host.lock();
            let (value, effects) = f(&mut state.coordinator);
            match self.append(group_id, &effects.records, ProducerInfo::NONE) {
                Ok(written) => (value, effects, written),
                Err(e) => {
                    // Whoever this change answered learns it failed, as Kafka does.
                    let error = group_write_error(e.code);
                    let failed =
                        state
                            .coordinator
                            .write_failed(group_id, effects.replies, error, now_ms());
                    drop(state);
                    self.deliver(failed.replies);
                    return Err(ApiError::new(error, e.message));
                }
            }
        };
        let flushed = flush_written(&written).await;
        self.deliver(effects.replies);
        flushed?;
        Ok((value, written))
    }

    /// Like [`Groups::apply`] for offset commits: answers once the in-sync replicas
    /// have the records (Kafka writes offset commits with acks=all, so a coordinator
    /// failover never loses an acknowledged offset).
    pub async fn apply_replicated<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator) -> (T, Effects),
    ) -> Result<T, ApiError> {
        let (value, written) = self.apply_written(group_id, f).await?;
        self.wait_replicated(written).await?;
        Ok(value)
    }

    async fn wait_replicated(&self, written: Option<Written>) -> Result<(), ApiError> {
        let Some((partition, appended)) = written else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + self.commit_timeout;
        partition
            .wait_replicated(&appended, deadline)
            .await
            .map_err(|code| {
                // Kafka's mapping: the coordinator moved, or the ISR did not keep up in time.
                let error = if code == ResponseError::NotLeaderOrFollower.code() {
                    ResponseError::NotCoordinator
                } else {
                    ResponseError::CoordinatorNotAvailable
                };
                ApiError::new(error, "the offsets were not replicated in time")
            })
    }

    /// Read-only access (OffsetFetch, DescribeGroups, ListGroups).
    pub fn read<T>(&self, f: impl FnOnce(&GroupState) -> T) -> T {
        f(&self.host.lock())
    }

    /// A change that writes no records and parks nothing (Heartbeat).
    pub fn read_mut<T>(&self, f: impl FnOnce(&mut GroupCoordinator) -> T) -> T {
        f(&mut self.host.lock().coordinator)
    }

    /// A change whose records belong to several groups (DeleteGroups).
    pub async fn apply_all<T>(
        &self,
        f: impl FnOnce(&mut GroupCoordinator) -> (T, Vec<OffsetsRecord>),
    ) -> Result<T, ApiError> {
        self.ensure_offsets_topic().await?;
        let (value, written) = {
            let mut state = self.host.lock();
            let (value, records) = f(&mut state.coordinator);
            (value, self.append_all(&records)?)
        };
        for w in written {
            flush_written(&Some(w)).await?;
        }
        Ok(value)
    }

    /// Parks a request: registers a token, runs `f` with it, and waits for the reply.
    /// If the caller goes away (connection closed) the token is cancelled.
    pub async fn park(
        self: &Arc<Self>,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator, ReplyToken) -> Effects,
    ) -> Result<Reply, ApiError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.parked.lock().insert(token, tx);
        let guard = CancelOnDrop {
            groups: self.clone(),
            token,
            armed: true,
        };
        self.apply(group_id, |c| ((), f(c, token))).await?;
        // Waiting on the group's other members: the request's remote time.
        let reply = crate::request_time::waiting_on_others(rx)
            .await
            .map_err(|_| {
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
    pub fn tick(&self) {
        let effects = {
            let mut state = self.host.lock();
            let image = self.metadata.image();
            let effects = state.coordinator.tick(now_ms(), &ImageTopics(&image));
            match self.append_all(&effects.records) {
                // On the blocking pool: the fsync flush.messages asks for runs here.
                Ok(unsynced) => {
                    for (partition, appended) in unsynced {
                        if let Err(e) = partition.sync_appended(&appended) {
                            tracing::error!(error = %e, "cannot flush group coordinator records");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot write group coordinator records"),
            }
            effects
        };
        self.deliver(effects.replies);
    }

    /// TxnOffsetCommit: validates, writes the offsets to the group's partition in the
    /// producer's transaction, keeps them pending until its marker, and answers once the
    /// in-sync replicas have them.
    pub async fn txn_offset_commit(
        &self,
        req: &TxnOffsetCommitRequest,
        topics: &(dyn brook_coord::TopicsView + Sync),
    ) -> Result<TxnOffsetCommitResponse, ApiError> {
        let group_id = req.group_id.as_str();
        self.ensure_loaded(group_id).await?;
        let (response, written) = {
            let mut state = self.host.lock();
            let (response, records) = state.coordinator.txn_offset_commit(req, topics, now_ms());
            let producer = ProducerInfo {
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
                base_sequence: -1,
                transactional: true,
            };
            let written = self.append(group_id, &records, producer)?;
            if let Some((partition, _)) = &written {
                state
                    .pending_txn
                    .entry((partition.index, producer.producer_id))
                    .or_default()
                    .extend(records);
            }
            (response, written)
        };
        flush_written(&written).await?;
        self.wait_replicated(written).await?;
        Ok(response)
    }

    /// A transaction marker was written to `__consumer_offsets` partition `index`:
    /// apply (commit) or drop (abort) the producer's pending offsets.
    pub fn complete_txn(&self, index: i32, producer_id: i64, commit: bool) {
        self.host.lock().decide(index, producer_id, commit);
    }

    fn append(
        &self,
        group_id: &str,
        records: &[OffsetsRecord],
        producer: ProducerInfo,
    ) -> Result<Option<Written>, ApiError> {
        if records.is_empty() {
            return Ok(None);
        }
        let index = self.host.partition_of(&self.metadata.image(), group_id);
        self.host.append(index, &keyed(records), producer)
    }

    /// Appends records whose groups may differ (from `tick`), grouped per group id.
    /// Returns the appends that still owe an fsync ([`flush_written`]).
    fn append_all(&self, records: &[OffsetsRecord]) -> Result<Vec<Written>, ApiError> {
        let mut by_group: BTreeMap<String, Vec<OffsetsRecord>> = BTreeMap::new();
        for r in records {
            by_group
                .entry(r.group_id().unwrap_or_default().to_string())
                .or_default()
                .push(r.clone());
        }
        let mut unsynced = Vec::new();
        for (group, records) in by_group {
            if let Some(w) = self.append(&group, &records, ProducerInfo::NONE)? {
                if w.1.sync_due {
                    unsynced.push(w);
                }
            }
        }
        Ok(unsynced)
    }
}

struct CancelOnDrop {
    groups: Arc<Groups>,
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
        let groups = &self.groups;
        groups.parked.lock().remove(&self.token);
        let effects = {
            let mut state = groups.host.lock();
            let effects = state.coordinator.cancel(self.token, now_ms());
            // Nobody is answered from these records, so an fsync they owe is left to
            // the next flush of the partition (a drop cannot wait for the blocking pool).
            if let Err(e) = groups.append_all(&effects.records) {
                tracing::error!(error = %e, "cannot write group coordinator records");
            }
            effects
        };
        groups.deliver(effects.replies);
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(1, i64::from(i32::MAX)) as i32
}

/// `group.consumer.assignors` as canonical names (Kafka's class names are accepted);
/// unknown names are dropped with a warning, and an empty list means the default.
fn consumer_assignors(configured: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for entry in configured
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match brook_coord::consumer::assignor::canonical_name(entry) {
            Some(name) if !names.iter().any(|n| n == name) => names.push(name.to_owned()),
            Some(_) => {}
            None => tracing::warn!(
                assignor = entry,
                "group.consumer.assignors: unknown assignor ignored"
            ),
        }
    }
    if names.is_empty() {
        names = GroupConfig::default().consumer_assignors;
    }
    names
}

/// The error a group request gets when its records cannot be written (Kafka's mapping
/// in the group metadata manager).
fn group_write_error(code: i16) -> ResponseError {
    match ResponseError::try_from_code(code) {
        Some(
            ResponseError::MessageTooLarge
            | ResponseError::RecordListTooLarge
            | ResponseError::InvalidFetchSize,
        ) => ResponseError::UnknownServerError,
        Some(ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError) => {
            ResponseError::NotCoordinator
        }
        Some(
            ResponseError::UnknownTopicOrPartition
            | ResponseError::NotEnoughReplicas
            | ResponseError::NotEnoughReplicasAfterAppend
            | ResponseError::RequestTimedOut,
        ) => ResponseError::CoordinatorNotAvailable,
        Some(other) => other,
        None => ResponseError::UnknownServerError,
    }
}
