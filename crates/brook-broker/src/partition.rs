//! One partition as the broker sees it: the log plus the idempotent-producer state,
//! behind one lock so that the sequence check and the append are atomic.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use brook_log::{Log, LogError, ReadSlice};
use brook_meta::PartitionImage;
use brook_protocol::batch::{self, BatchError, BatchHeader, BatchIter};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::sync::watch;

use crate::config::TopicConfig;
use crate::producer_state::{
    AbortedTxn, MarkerCheck, ProducerStates, ProducerSummary, SequenceCheck,
};

#[derive(Debug, Error)]
pub enum AppendError {
    #[error("corrupt record batch: {0}")]
    Corrupt(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("batch timestamp {timestamp} is out of the accepted range")]
    InvalidTimestamp { timestamp: i64 },
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrder { expected: i32, got: i32 },
    #[error("producer epoch is older than the current one")]
    StaleEpoch,
    #[error("storage error: {0}")]
    Storage(#[from] LogError),
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    #[error("min.insync.replicas={required} but only {in_sync} replicas are in sync")]
    NotEnoughReplicas { required: usize, in_sync: usize },
    #[error("a newer transaction coordinator has written markers for this producer")]
    CoordinatorFenced,
}

impl AppendError {
    pub fn code(&self) -> i16 {
        match self {
            AppendError::Corrupt(_) => ResponseError::CorruptMessage.code(),
            AppendError::TooLarge { .. } => ResponseError::MessageTooLarge.code(),
            AppendError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp.code(),
            AppendError::InvalidRecord(_) => ResponseError::InvalidRecord.code(),
            AppendError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
            AppendError::StaleEpoch => ResponseError::InvalidProducerEpoch.code(),
            AppendError::Storage(_) => ResponseError::KafkaStorageError.code(),
            AppendError::NotLeader => ResponseError::NotLeaderOrFollower.code(),
            AppendError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
            AppendError::CoordinatorFenced => ResponseError::TransactionCoordinatorFenced.code(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    /// The offset after the last one appended: acks=all waits for the high watermark
    /// to reach it.
    pub next_offset: i64,
    /// The leader epoch the records were written in.
    pub leader_epoch: i32,
    /// min.insync.replicas checked before the append (acks=all), checked again once the
    /// high watermark passes the records.
    pub min_insync: Option<usize>,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// An ISR change a leader asks the controller for (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    /// The partition epoch the change was computed from.
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// An ISR expansion asked of the controller and not yet seen in metadata (Kafka's
/// pending ISR state): its new members count for the high watermark meanwhile.
#[derive(Debug, Clone)]
struct PendingIsr {
    isr: Vec<i32>,
    /// The partition epoch it was computed from (sent again with the same one).
    from_epoch: i32,
    /// Sent and not answered yet.
    in_flight: bool,
}

/// The controller's answer to an ISR change, as the leader must treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrOutcome {
    /// Applied (or already so): metadata will show it.
    Accepted,
    /// Refused because metadata has moved on (stale partition or leader epoch, not the
    /// leader): the newer metadata settles it, and it may hold this very change.
    Outdated,
    /// Refused against the view it was computed from: the ISR stays as it is.
    Refused,
    /// No answer (time-out, no controller): send it again.
    Unknown,
}

/// A consumer's read of one partition.
#[derive(Debug)]
pub struct ConsumerRead {
    pub slice: Option<ReadSlice>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// `read_committed` only: aborted transactions with records in the read.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// Why a read or leader-only request is refused, as a Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub i16);

/// What a leader tracks of one follower (Kafka's replica state).
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The follower's log end offset (its last fetch offset); -1 until it fetches.
    leo: i64,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    leader_leo_at_last_fetch: i64,
}

impl Progress {
    /// A follower not heard from yet, counted as caught up as of `now_ms`.
    fn fresh(now_ms: i64) -> Self {
        Progress {
            leo: -1,
            last_caught_up_ms: now_ms,
            last_fetch_ms: now_ms,
            leader_leo_at_last_fetch: -1,
        }
    }
}

/// `(epoch, start offset)` of every leader epoch in the log, oldest first.
#[derive(Debug, Default, Clone)]
pub struct EpochCache(Vec<(i32, i64)>);

impl EpochCache {
    fn record(&mut self, epoch: i32, start_offset: i64) {
        match self.0.last() {
            Some(&(last, _)) if last >= epoch => {}
            _ => self.0.push((epoch, start_offset)),
        }
    }

    fn truncate_from(&mut self, offset: i64) {
        self.0.retain(|&(_, start)| start < offset);
    }

    pub fn latest(&self) -> Option<i32> {
        self.0.last().map(|&(e, _)| e)
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` and the offset where it
    /// ends (the next epoch's start, or the log end for the latest epoch);
    /// `(-1, -1)` if every epoch in the log is newer.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        match self.0.iter().rposition(|&(e, _)| e <= requested) {
            None => (-1, -1),
            Some(i) if i + 1 == self.0.len() => (self.0[i].0, log_end),
            Some(i) => (self.0[i].0, self.0[i + 1].1),
        }
    }
}

struct Inner {
    log: Log,
    producers: ProducerStates,
    epochs: EpochCache,
    /// The partition's leader as last applied from metadata (-1: none).
    leader: i32,
    leader_epoch: i32,
    isr: Vec<i32>,
    replicas: Vec<i32>,
    /// An ISR expansion sent to the controller and not yet in metadata; counted for the
    /// high watermark meanwhile (Kafka's "maximal ISR").
    pending_isr: Option<PendingIsr>,
    /// The metadata version of leader/ISR/replicas this broker last applied; ISR change
    /// requests carry it so the controller refuses one computed from a stale view.
    partition_epoch: i32,
    /// Offsets below it are on every in-sync replica; consumers read only those.
    high_watermark: i64,
    followers: HashMap<i32, Progress>,
}

impl Inner {
    fn is_leader(&self, node_id: i32) -> bool {
        self.leader == node_id
    }

    fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), Refused> {
        if current_leader_epoch < 0 || current_leader_epoch == self.leader_epoch {
            Ok(())
        } else if current_leader_epoch < self.leader_epoch {
            Err(Refused(ResponseError::FencedLeaderEpoch.code()))
        } else {
            Err(Refused(ResponseError::UnknownLeaderEpoch.code()))
        }
    }

    /// Offsets below it are committed and in no open transaction.
    fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .map_or(self.high_watermark, |first| first.min(self.high_watermark))
    }

    /// Moves the high watermark to the smallest log end offset among in-sync replicas.
    /// Returns whether it moved.
    fn advance_high_watermark(&mut self, node_id: i32) -> bool {
        let leo = self.log.log_end_offset();
        let mut candidate = leo;
        let members = self
            .isr
            .iter()
            .chain(self.pending_isr.iter().flat_map(|p| p.isr.iter()));
        for &r in members {
            if r == node_id {
                continue;
            }
            match self.followers.get(&r) {
                Some(p) if p.leo >= 0 => candidate = candidate.min(p.leo),
                _ => return false,
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }

    fn rebuild_producer_state(&mut self) -> Result<(), LogError> {
        let mut producers = ProducerStates::default();
        self.log
            .visit_batches_from(self.log.log_start_offset(), |h, b| producers.record(h, b))?;
        self.producers = producers;
        Ok(())
    }
}

/// A follower fetch as the leader answers it.
pub enum FollowerRead {
    /// The follower's log diverges from the leader's: it must truncate to
    /// `end_offset` of `epoch` (Kafka's DivergingEpoch) and fetch again.
    Diverging {
        epoch: i32,
        end_offset: i64,
    },
    Records(ReadSlice),
}

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    node_id: i32,
    config: RwLock<Arc<TopicConfig>>,
    inner: Mutex<Inner>,
    /// Bumped whenever the high watermark, leader or ISR changes (acks=all waits on it).
    changed: watch::Sender<u64>,
    /// Held while an fsync runs outside `inner` (see [`Partition::sync_log`]): one at
    /// a time, taken before `inner`, never while holding it.
    syncing: Mutex<()>,
}

/// Why [`Partition::sync_log`] is called.
#[derive(Debug, Clone, Copy)]
pub enum SyncFor {
    /// An append that ends before `end` is to be acknowledged: fsync if
    /// `flush.messages` asks for it, unless another fsync already covered it.
    Append { end: i64, now_ms: i64 },
    /// Periodic maintenance: whatever `flush.ms` and newly sealed segments ask for.
    Tick(i64),
}

impl Partition {
    /// Opens (recovering if needed) the partition's log and rebuilds producer state and
    /// the leader epoch cache from its batch headers. It leads nothing until
    /// [`Partition::apply_leadership`] applies what metadata says.
    pub fn open(
        dir: &Path,
        topic: Arc<str>,
        index: i32,
        node_id: i32,
        config: Arc<TopicConfig>,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let log = Log::open(dir, config.log.clone(), now_ms)?;
        let mut producers = ProducerStates::default();
        let mut epochs = EpochCache::default();
        log.visit_batches_from(log.log_start_offset(), |h, b| {
            producers.record(h, b);
            epochs.record(h.partition_leader_epoch, h.base_offset);
        })?;
        let high_watermark = log.log_end_offset();
        Ok(Partition {
            topic,
            index,
            node_id,
            config: RwLock::new(config),
            inner: Mutex::new(Inner {
                log,
                producers,
                epochs,
                // Nobody leads until metadata says so (`apply_leadership`).
                leader: brook_meta::NO_LEADER,
                leader_epoch: -1,
                isr: Vec::new(),
                replicas: Vec::new(),
                pending_isr: None,
                partition_epoch: -1,
                high_watermark,
                followers: HashMap::new(),
            }),
            changed: watch::channel(0).0,
            syncing: Mutex::new(()),
        })
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        self.inner.lock().log.set_config(config.log.clone());
        *self.config.write() = config;
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Takes the leader, epoch, ISR and replicas metadata gives this partition.
    pub fn apply_leadership(&self, view: &PartitionImage, now_ms: i64) {
        let mut inner = self.inner.lock();
        let becomes_leader = view.leader == self.node_id
            && (inner.leader != self.node_id || inner.leader_epoch != view.leader_epoch);
        let changed = inner.leader != view.leader
            || inner.leader_epoch != view.leader_epoch
            || inner.isr != view.isr
            || inner.replicas != view.replicas;
        inner.partition_epoch = view.partition_epoch;
        if !changed {
            return;
        }
        inner.leader = view.leader;
        inner.leader_epoch = view.leader_epoch;
        inner.replicas = view.replicas.clone();
        inner.isr = view.isr.clone();
        inner.pending_isr = None;
        if view.leader == self.node_id {
            if becomes_leader {
                let leo = inner.log.log_end_offset();
                inner.epochs.record(view.leader_epoch, leo);
                inner.followers = view
                    .replicas
                    .iter()
                    .filter(|&&r| r != self.node_id)
                    .map(|&r| (r, Progress::fresh(now_ms)))
                    .collect();
                tracing::info!(topic = %self.topic, partition = self.index, epoch = view.leader_epoch, isr = ?view.isr, "became leader");
            } else {
                // Still leading; a reassignment may have added or dropped replicas.
                inner.followers.retain(|r, _| view.replicas.contains(r));
                for &r in &view.replicas {
                    if r != self.node_id {
                        inner.followers.entry(r).or_insert(Progress::fresh(now_ms));
                    }
                }
            }
            inner.advance_high_watermark(self.node_id);
        } else {
            inner.followers.clear();
        }
        drop(inner);
        self.bump();
    }

    /// (leader, leader epoch) as this broker last heard from metadata.
    pub fn leadership(&self) -> (i32, i32) {
        let inner = self.inner.lock();
        (inner.leader, inner.leader_epoch)
    }

    pub fn is_leader(&self) -> bool {
        self.inner.lock().is_leader(self.node_id)
    }

    /// Validates and appends the batches of one produce request for this partition
    /// (leader only). `min_insync` is checked before anything is written (acks=all).
    pub fn append(
        &self,
        records: &Bytes,
        now_ms: i64,
        min_insync: Option<usize>,
    ) -> Result<Appended, AppendError> {
        let config = self.config();
        let headers = validate(records, &config, now_ms)?;
        let mut inner = self.inner.lock();
        if !inner.is_leader(self.node_id) {
            return Err(AppendError::NotLeader);
        }
        if let Some(required) = min_insync {
            if inner.isr.len() < required {
                return Err(AppendError::NotEnoughReplicas {
                    required,
                    in_sync: inner.isr.len(),
                });
            }
        }
        if let [only] = headers[..] {
            match inner.producers.check(&only) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate { base_offset } => {
                    let next_offset = base_offset + i64::from(only.last_offset_delta) + 1;
                    return Ok(Appended {
                        base_offset,
                        next_offset,
                        leader_epoch: inner.leader_epoch,
                        min_insync,
                        log_append_time_ms: -1,
                        log_start_offset: inner.log.log_start_offset(),
                    });
                }
                SequenceCheck::StaleEpoch => return Err(AppendError::StaleEpoch),
                SequenceCheck::OutOfOrder { expected, got } => {
                    return Err(AppendError::OutOfOrder { expected, got })
                }
            }
        } else if headers.iter().any(|h| h.has_producer_id()) {
            return Err(AppendError::InvalidRecord(
                "idempotent produce requests carry exactly one batch per partition",
            ));
        }
        let append_time = config.log_append_time.then_some(now_ms);
        let epoch = inner.leader_epoch;
        let info = inner.log.append(records, epoch, append_time, now_ms)?;
        inner.epochs.record(epoch, info.base_offset);
        for (h, batch) in brook_log::appended_headers(records, &info, epoch) {
            inner.producers.record(&h, h.is_control().then_some(batch));
        }
        let log_start = inner.log.log_start_offset();
        inner.producers.trim_aborted(log_start);
        let moved = inner.advance_high_watermark(self.node_id);
        let appended = Appended {
            base_offset: info.base_offset,
            next_offset: info.last_offset + 1,
            leader_epoch: epoch,
            min_insync,
            log_append_time_ms: append_time.unwrap_or(-1),
            log_start_offset: inner.log.log_start_offset(),
        };
        let sync_due = inner.log.flush_messages_due();
        drop(inner);
        if moved {
            self.bump();
        }
        if sync_due {
            self.sync_log(SyncFor::Append {
                end: appended.next_offset,
                now_ms,
            })?;
        }
        Ok(appended)
    }

    /// Waits until `next_offset` is below the high watermark (acks=all), the leader
    /// changes (NOT_LEADER_OR_FOLLOWER) or `deadline` passes (REQUEST_TIMED_OUT).
    pub async fn wait_replicated(
        &self,
        appended: &Appended,
        deadline: tokio::time::Instant,
    ) -> Result<(), i16> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let inner = self.inner.lock();
                if !inner.is_leader(self.node_id) || inner.leader_epoch != appended.leader_epoch {
                    return Err(ResponseError::NotLeaderOrFollower.code());
                }
                if inner.high_watermark >= appended.next_offset {
                    // Kafka's check after the append: the records reached the high
                    // watermark, but on fewer in-sync replicas than the topic requires.
                    if let Some(required) = appended.min_insync {
                        if inner.isr.len() < required {
                            return Err(ResponseError::NotEnoughReplicasAfterAppend.code());
                        }
                    }
                    return Ok(());
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(ResponseError::RequestTimedOut.code()),
            }
        }
    }

    /// A consumer read (leader only): whole batches from `offset`, never past the high
    /// watermark, nor past the last stable offset for `read_committed` consumers (who
    /// also get the aborted transactions the read may hold).
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_message: bool,
        current_leader_epoch: i32,
        read_committed: bool,
    ) -> Result<ConsumerRead, Refused> {
        let inner = self.inner.lock();
        if !inner.is_leader(self.node_id) {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        inner.check_epoch(current_leader_epoch)?;
        let start = inner.log.log_start_offset();
        let hw = inner.high_watermark;
        let lso = inner.last_stable_offset();
        if offset < start || offset > inner.log.log_end_offset() {
            return Err(Refused(ResponseError::OffsetOutOfRange.code()));
        }
        let upper = if read_committed { lso } else { hw };
        let mut read = ConsumerRead {
            slice: None,
            log_start_offset: start,
            high_watermark: hw,
            last_stable_offset: lso,
            aborted: read_committed.then(Vec::new),
        };
        if offset >= upper {
            return Ok(read);
        }
        match inner
            .log
            .read(offset, max_bytes, Some(upper), min_one_message)
        {
            Ok(slice) => {
                if read_committed {
                    read.aborted = Some(inner.producers.aborted_between(offset, upper));
                }
                read.slice = Some(slice);
                Ok(read)
            }
            Err(LogError::OffsetOutOfRange { .. }) => {
                Err(Refused(ResponseError::OffsetOutOfRange.code()))
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "read failed");
                Err(Refused(ResponseError::KafkaStorageError.code()))
            }
        }
    }

    /// The leader's side of a follower fetch: records the follower's progress (which can
    /// move the high watermark), checks for divergence, reads up to the log end.
    /// Returns the read with (log start offset, high watermark).
    pub fn follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        current_leader_epoch: i32,
        max_bytes: usize,
        now_ms: i64,
    ) -> Result<(FollowerRead, i64, i64, bool), Refused> {
        let mut inner = self.inner.lock();
        if !inner.is_leader(self.node_id) {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        inner.check_epoch(current_leader_epoch)?;
        if !inner.replicas.contains(&replica) {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        let leo = inner.log.log_end_offset();
        let start = inner.log.log_start_offset();
        if last_fetched_epoch >= 0 {
            let (epoch, end) = inner.epochs.end_offset_for(last_fetched_epoch, leo);
            if epoch != last_fetched_epoch || end < fetch_offset {
                let hw = inner.high_watermark;
                return Ok((
                    FollowerRead::Diverging {
                        epoch,
                        end_offset: if epoch < 0 { start } else { end },
                    },
                    start,
                    hw,
                    false,
                ));
            }
        } else if fetch_offset > leo {
            let hw = inner.high_watermark;
            let epoch = inner.epochs.latest().unwrap_or(-1);
            return Ok((
                FollowerRead::Diverging {
                    epoch,
                    end_offset: leo,
                },
                start,
                hw,
                false,
            ));
        }
        if fetch_offset < start || fetch_offset > leo {
            return Err(Refused(ResponseError::OffsetOutOfRange.code()));
        }
        let progress = inner
            .followers
            .entry(replica)
            .or_insert(Progress::fresh(now_ms));
        if fetch_offset >= leo {
            progress.last_caught_up_ms = now_ms;
        } else if progress.leader_leo_at_last_fetch >= 0
            && fetch_offset >= progress.leader_leo_at_last_fetch
        {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.leader_leo_at_last_fetch = leo;
        progress.last_fetch_ms = now_ms;
        progress.leo = fetch_offset;
        let moved = inner.advance_high_watermark(self.node_id);
        let hw = inner.high_watermark;
        let read = inner.log.read(fetch_offset, max_bytes, None, true);
        drop(inner);
        if moved {
            self.bump();
        }
        match read {
            Ok(slice) => Ok((FollowerRead::Records(slice), start, hw, moved)),
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "replica read failed");
                Err(Refused(ResponseError::KafkaStorageError.code()))
            }
        }
    }

    /// What a follower sends in its fetch: (fetch offset = log end, last fetched epoch,
    /// current leader epoch, log start offset).
    pub fn follower_position(&self) -> (i64, i32, i32, i64) {
        let inner = self.inner.lock();
        (
            inner.log.log_end_offset(),
            inner.epochs.latest().unwrap_or(-1),
            inner.leader_epoch,
            inner.log.log_start_offset(),
        )
    }

    /// A follower appends what the leader sent and takes the leader's high watermark.
    /// `fetched_epoch` is the leader epoch the fetch was sent in: a response that arrives
    /// after leadership moved on is dropped (as are [`Partition::truncate_diverging`]'s
    /// and [`Partition::reset_to`]'s).
    pub fn append_replicated(
        &self,
        fetched_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        if self.stale_fetch(&inner, fetched_epoch) {
            return Ok(());
        }
        if !records.is_empty() {
            inner.log.append_replicated(records, now_ms)?;
            for item in BatchIter::new(records) {
                let (h, range) = item.map_err(LogError::from)?;
                inner
                    .producers
                    .record(&h, h.is_control().then(|| &records[range]));
                inner.epochs.record(h.partition_leader_epoch, h.base_offset);
            }
        }
        let leo = inner.log.log_end_offset();
        inner.high_watermark = leader_high_watermark.min(leo).max(0);
        if leader_log_start > inner.log.log_start_offset() && leader_log_start <= leo {
            inner.log.delete_records_before(leader_log_start)?;
        }
        let sync_due = inner.log.flush_messages_due();
        drop(inner);
        if sync_due {
            self.sync_log(SyncFor::Append { end: leo, now_ms })?;
        }
        Ok(())
    }

    /// The leader says our log diverges after `end_offset` of `epoch`: truncate to where
    /// both logs agree (Kafka's truncation by leader epoch).
    pub fn truncate_diverging(
        &self,
        fetched_epoch: i32,
        epoch: i32,
        end_offset: i64,
    ) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        if self.stale_fetch(&inner, fetched_epoch) {
            return Ok(());
        }
        let leo = inner.log.log_end_offset();
        let (own_epoch, own_end) = inner.epochs.end_offset_for(epoch, leo);
        let mut target = end_offset.min(leo);
        if own_epoch >= 0 && epoch >= 0 {
            target = target.min(own_end);
        }
        if epoch < 0 {
            target = end_offset.max(0).min(leo);
        }
        if target >= leo {
            // Nothing to cut from the log, but an epoch this replica began without
            // writing in it (it led and wrote nothing) must go from the cache, or the
            // next fetch would send the same last epoch and get this answer forever.
            inner.epochs.truncate_from(leo);
            return Ok(());
        }
        tracing::warn!(topic = %self.topic, partition = self.index, from = leo, to = target, leader_epoch = epoch, "truncating diverging records");
        inner.log.truncate_to(target)?;
        let new_end = inner.log.log_end_offset();
        inner.epochs.truncate_from(new_end);
        inner.high_watermark = inner.high_watermark.min(new_end);
        inner.rebuild_producer_state()
    }

    /// The follower is behind the leader's log start: empty the log and restart there.
    pub fn reset_to(&self, fetched_epoch: i32, offset: i64) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        if self.stale_fetch(&inner, fetched_epoch) {
            return Ok(());
        }
        tracing::warn!(topic = %self.topic, partition = self.index, offset, "follower log restarts at the leader's log start offset");
        inner.log.reset_to(offset)?;
        inner.epochs = EpochCache::default();
        inner.high_watermark = offset;
        inner.producers = ProducerStates::default();
        Ok(())
    }

    /// A fetch sent in `fetched_epoch` whose response must not be applied: this broker
    /// leads now, or metadata has moved to another leader epoch since.
    fn stale_fetch(&self, inner: &Inner, fetched_epoch: i32) -> bool {
        let stale = inner.leader == self.node_id || inner.leader_epoch != fetched_epoch;
        if stale {
            tracing::debug!(topic = %self.topic, partition = self.index, fetched_epoch, epoch = inner.leader_epoch, "dropping a replica fetch response from an earlier leadership");
        }
        stale
    }

    /// The ISR change this leader should ask the controller for, if any: followers that
    /// have not caught up within `max_lag_ms` leave, caught-up live replicas join.
    pub fn isr_change(
        &self,
        now_ms: i64,
        max_lag_ms: i64,
        is_live: impl Fn(i32) -> bool,
    ) -> Option<IsrChange> {
        let mut inner = self.inner.lock();
        if !inner.is_leader(self.node_id) {
            return None;
        }
        let leader_epoch = inner.leader_epoch;
        if let Some(pending) = &mut inner.pending_isr {
            // One expansion at a time; one whose answer never came is sent again as it
            // was (the controller tells a repeat from a stale view by the epoch).
            if pending.in_flight {
                return None;
            }
            pending.in_flight = true;
            return Some(IsrChange {
                leader_epoch,
                partition_epoch: pending.from_epoch,
                isr: pending.isr.clone(),
            });
        }
        let hw = inner.high_watermark;
        let leo = inner.log.log_end_offset();
        let node = self.node_id;
        let mut isr: Vec<i32> = inner
            .isr
            .iter()
            .copied()
            .filter(|&r| {
                r == node
                    || inner
                        .followers
                        .get(&r)
                        .is_some_and(|p| now_ms - p.last_caught_up_ms <= max_lag_ms)
            })
            .collect();
        let shrank = isr.len() < inner.isr.len();
        let mut grew = false;
        for &r in &inner.replicas {
            if isr.contains(&r) || inner.isr.contains(&r) || !is_live(r) {
                continue;
            }
            if let Some(p) = inner.followers.get(&r) {
                if p.leo >= hw
                    && p.leo >= 0
                    && (p.leo >= leo || now_ms - p.last_caught_up_ms <= max_lag_ms)
                {
                    isr.push(r);
                    grew = true;
                }
            }
        }
        if !shrank && !grew {
            return None;
        }
        if grew {
            inner.pending_isr = Some(PendingIsr {
                isr: isr.clone(),
                from_epoch: inner.partition_epoch,
                in_flight: true,
            });
        }
        Some(IsrChange {
            leader_epoch: inner.leader_epoch,
            partition_epoch: inner.partition_epoch,
            isr,
        })
    }

    /// What became of the ISR change to `isr`. An expansion stays counted for the high
    /// watermark until metadata shows the controller's decision, except when the
    /// controller refused it against the very view it was computed from; an unanswered
    /// one is sent again by the next [`Partition::isr_change`].
    pub fn isr_change_done(&self, isr: &[i32], outcome: IsrOutcome) {
        let mut inner = self.inner.lock();
        let Some(pending) = &mut inner.pending_isr else {
            return;
        };
        if pending.isr != isr {
            return;
        }
        match outcome {
            // Metadata with the new ISR (or a newer view) is on its way and clears it.
            IsrOutcome::Accepted => pending.in_flight = false,
            IsrOutcome::Outdated => {}
            IsrOutcome::Refused => inner.pending_isr = None,
            IsrOutcome::Unknown => pending.in_flight = false,
        }
    }

    /// OffsetForLeaderEpoch: (epoch, end offset) for `epoch`, leader only.
    pub fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: i32,
    ) -> Result<(i32, i64), Refused> {
        let inner = self.inner.lock();
        if !inner.is_leader(self.node_id) {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        inner.check_epoch(current_leader_epoch)?;
        Ok(inner
            .epochs
            .end_offset_for(epoch, inner.log.log_end_offset()))
    }

    /// Reads for the broker itself (replaying `__consumer_offsets`), up to the log end.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_message: bool,
    ) -> Result<ReadSlice, LogError> {
        self.inner
            .lock()
            .log
            .read(offset, max_bytes, None, min_one_message)
    }

    /// (log start offset, high watermark).
    pub fn offsets(&self) -> (i64, i64) {
        let inner = self.inner.lock();
        (inner.log.log_start_offset(), inner.high_watermark)
    }

    /// DescribeProducers (leader only): the producers with state in this partition.
    pub fn producers(&self) -> Result<Vec<ProducerSummary>, Refused> {
        let inner = self.inner.lock();
        if !inner.is_leader(self.node_id) {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        Ok(inner.producers.describe())
    }

    /// The last stable offset: below the high watermark and the first open transaction.
    pub fn last_stable_offset(&self) -> i64 {
        self.inner.lock().last_stable_offset()
    }

    /// Writes a transaction marker (a control batch) for `producer_id` (leader only),
    /// ending its open transaction here. The caller waits for replication like acks=all.
    pub fn write_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let encoded = brook_protocol::records::encode_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        )
        .map_err(|_| AppendError::InvalidRecord("cannot encode a transaction marker"))?;
        let mut inner = self.inner.lock();
        if !inner.is_leader(self.node_id) {
            return Err(AppendError::NotLeader);
        }
        match inner
            .producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)
        {
            MarkerCheck::Ok => {}
            MarkerCheck::StaleEpoch => return Err(AppendError::StaleEpoch),
            MarkerCheck::CoordinatorFenced => return Err(AppendError::CoordinatorFenced),
        }
        let epoch = inner.leader_epoch;
        let info = inner.log.append(&encoded, epoch, None, now_ms)?;
        inner.epochs.record(epoch, info.base_offset);
        for (header, batch) in brook_log::appended_headers(&encoded, &info, epoch) {
            inner.producers.record(&header, Some(batch));
        }
        inner
            .producers
            .marker_written(producer_id, coordinator_epoch);
        let moved = inner.advance_high_watermark(self.node_id);
        let appended = Appended {
            base_offset: info.base_offset,
            next_offset: info.last_offset + 1,
            leader_epoch: epoch,
            min_insync: None,
            log_append_time_ms: -1,
            log_start_offset: inner.log.log_start_offset(),
        };
        let sync_due = inner.log.flush_messages_due();
        drop(inner);
        if moved {
            self.bump();
        }
        if sync_due {
            self.sync_log(SyncFor::Append {
                end: appended.next_offset,
                now_ms,
            })?;
        }
        Ok(appended)
    }

    /// (log start offset, log end offset).
    pub fn log_offsets(&self) -> (i64, i64) {
        let inner = self.inner.lock();
        (inner.log.log_start_offset(), inner.log.log_end_offset())
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.inner.lock().log)
    }

    /// Runs the fsyncs the flush policy asks for without holding the partition lock,
    /// so appends and fetches go on meanwhile (a sealed 1 GiB segment takes seconds to
    /// sync). Jobs run one at a time, and each covers every append made before it was
    /// taken: appenders waiting with `flush.messages=1` share one fsync (group commit).
    /// Blocking: call from a blocking context.
    /// Appenders call it only when [`Log::flush_messages_due`] said so under the lock
    /// they appended with, so the common append never waits on a sync in progress.
    pub fn sync_log(&self, why: SyncFor) -> Result<(), LogError> {
        let _one_at_a_time = self.syncing.lock();
        let job = {
            let mut inner = self.inner.lock();
            let log = &mut inner.log;
            let (all, now_ms) = match why {
                SyncFor::Append { end, .. } if log.recovery_point() >= end => return Ok(()),
                SyncFor::Append { now_ms, .. } if log.flush_messages_due() => (true, now_ms),
                SyncFor::Append { .. } => return Ok(()),
                SyncFor::Tick(now_ms) => match log.sync_wanted(now_ms) {
                    Some(all) => (all, now_ms),
                    None => return Ok(()),
                },
            };
            log.take_sync(all, now_ms)?
        };
        let outcome = job.run();
        self.inner.lock().log.finish_sync(job, outcome)
    }

    pub fn close(self) -> Result<(), LogError> {
        self.inner.into_inner().log.close()
    }

    pub fn delete(self) -> Result<(), LogError> {
        self.inner.into_inner().log.delete()
    }
}

/// Checks every batch of a produce request before anything is written:
/// framing, magic, CRC-32C, size limit, record count, timestamps.
fn validate(
    records: &[u8],
    config: &TopicConfig,
    now_ms: i64,
) -> Result<Vec<BatchHeader>, AppendError> {
    let mut headers = Vec::new();
    let mut iter = BatchIter::new(records);
    for item in &mut iter {
        let (h, range) = item?;
        if h.total_size() > config.max_message_bytes {
            return Err(AppendError::TooLarge {
                size: h.total_size(),
                limit: config.max_message_bytes,
            });
        }
        batch::verify_crc(&records[range])?;
        if !h.compression_bits_valid() {
            return Err(AppendError::InvalidRecord("unknown compression codec"));
        }
        if h.record_count == 0 || h.record_count - 1 != h.last_offset_delta {
            return Err(AppendError::InvalidRecord(
                "record count does not match last offset delta",
            ));
        }
        if h.is_control() {
            return Err(AppendError::InvalidRecord(
                "clients may not write control batches",
            ));
        }
        if h.is_transactional() && !h.has_producer_id() {
            return Err(AppendError::InvalidRecord(
                "transactional batches carry a producer id",
            ));
        }
        if !config.log_append_time {
            let too_old = now_ms.saturating_sub(h.max_timestamp) > config.timestamp_before_max_ms;
            let too_new = h.max_timestamp.saturating_sub(now_ms) > config.timestamp_after_max_ms;
            if h.max_timestamp >= 0 && (too_old || too_new) {
                return Err(AppendError::InvalidTimestamp {
                    timestamp: h.max_timestamp,
                });
            }
        }
        headers.push(h);
    }
    if headers.is_empty() {
        return Err(AppendError::InvalidRecord(
            "produce request without a record batch",
        ));
    }
    Ok(headers)
}
