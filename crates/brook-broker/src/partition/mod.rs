//! One partition as the broker sees it: the log plus the idempotent-producer state,
//! behind one lock so that the sequence check and the append are atomic.
//!
//! The leader's writes are in `append` (checked first by `validate`), replication
//! between leader and followers in `follower`. The replication rules themselves (high
//! watermark, ISR changes) are in `leader`, kept free of the log so they can be tested
//! alone; `epochs` is the leader epoch cache followers truncate by.

mod append;
mod epochs;
mod follower;
mod leader;
mod listeners;
mod validate;

use std::path::Path;
use std::sync::Arc;

use brook_log::{CleanStats, CleanerConfig, Log, LogError, ReadSlice};
use brook_meta::PartitionImage;
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

pub use self::append::{AppendError, Appended};
pub use self::epochs::EpochCache;
pub use self::follower::{FetchedAt, FollowerRead};
use self::leader::{Applied, Leadership};
pub use self::leader::{IsrChange, IsrOutcome};
pub use self::listeners::ChangeInbox;
use crate::traffic::TopicCounters;

/// The checks [`Partition::append`] makes on a produce request's batches, without
/// appending: for a request that is re-encoded first (`compression.type`), so what the
/// client sent is bounded and checked before any work is spent on it. Blocking for
/// compressed batches (they are inflated as a stream).
pub fn check_produced(
    records: &[u8],
    config: &crate::config::TopicConfig,
    now_ms: i64,
) -> Result<(), AppendError> {
    validate::validate(records, config, now_ms).map(|_| ())
}
use crate::config::TopicConfig;
use crate::maintenance::{Maintenance, Scheduled, Slot};
use crate::producer_state::{AbortedTxn, ProducerStates, ProducerSummary};

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

struct Inner {
    log: Log,
    producers: ProducerStates,
    epochs: EpochCache,
    leadership: Leadership,
}

impl Inner {
    /// Offsets below it are committed and in no open transaction.
    fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .map_or(self.leadership.high_watermark, |first| {
                first.min(self.leadership.high_watermark)
            })
    }

    fn advance_high_watermark(&mut self) -> bool {
        let leo = self.log.log_end_offset();
        self.leadership.advance_high_watermark(leo)
    }

    /// The offsets that bound what a fetch of this partition is given: (log start, log
    /// end, high watermark). Parked fetches are woken when they move.
    fn fetchable(&self) -> (i64, i64, i64) {
        (
            self.log.log_start_offset(),
            self.log.log_end_offset(),
            self.leadership.high_watermark,
        )
    }

    /// The log before a write, to tell afterwards whether the write brought its
    /// maintenance deadline forward (see [`crate::maintenance`]).
    fn maintenance_mark(&self) -> MaintenanceMark {
        MaintenanceMark {
            active_base: self.log.active_base_offset(),
            flushed: self.log.log_end_offset() <= self.log.recovery_point(),
        }
    }

    /// Whether the log rolled (a sealed segment wants an fsync) or got its first
    /// unflushed record (a `flush.ms` deadline starts) since `before`.
    fn maintenance_sooner(&self, before: MaintenanceMark) -> bool {
        self.log.active_base_offset() != before.active_base
            || (before.flushed && self.log.log_end_offset() > self.log.recovery_point())
    }

    fn rebuild_producer_state(&mut self) -> Result<(), LogError> {
        let mut producers = ProducerStates::default();
        self.log
            .visit_batches_from(self.log.log_start_offset(), |h, b| producers.record(h, b))?;
        self.producers = producers;
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct MaintenanceMark {
    active_base: i64,
    flushed: bool,
}

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    config: RwLock<Arc<TopicConfig>>,
    inner: Mutex<Inner>,
    /// Bumped whenever the high watermark, leader or ISR changes (acks=all waits on it).
    changed: watch::Sender<u64>,
    /// Bumped whenever what a fetch of this partition could return changes (records,
    /// high watermark, log start, leadership), so a parked fetch waits on its own
    /// partitions rather than on every append in the broker.
    data: watch::Sender<u64>,
    /// Fetch sessions told of the same changes as `data`, each by its own slot number
    /// (see [`ChangeInbox`]).
    listeners: listeners::Listeners,
    /// Set once the broker dropped this replica (deleted, or no longer assigned here):
    /// a session still holding it looks the partition up again.
    retired: std::sync::atomic::AtomicBool,
    /// Held while an fsync runs outside `inner` (see [`Partition::sync_log`]): one at
    /// a time, taken before `inner`, never while holding it.
    syncing: Mutex<()>,
    /// Where fsync durations go (`brook_log_flush_seconds`), once the broker's replica
    /// set has opened this partition.
    flush_seconds: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
    /// Its topic's traffic counters (`brook_topic_*`), kept by the first produce that
    /// found them (see [`Partition::topic_counters`]).
    topic_counters: std::sync::OnceLock<Arc<TopicCounters>>,
    /// This partition's deadline in the broker's maintenance queue, and the queue (set
    /// once the replica set has opened it).
    maintenance_slot: Slot,
    maintenance: std::sync::OnceLock<Arc<Maintenance<Partition>>>,
}

impl Scheduled for Partition {
    fn maintenance_slot(&self) -> &Slot {
        &self.maintenance_slot
    }
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
            config: RwLock::new(config),
            inner: Mutex::new(Inner {
                log,
                producers,
                epochs,
                // Nobody leads until metadata says so (`apply_leadership`).
                leadership: Leadership::new(node_id, high_watermark),
            }),
            changed: watch::channel(0).0,
            data: watch::channel(0).0,
            listeners: listeners::Listeners::default(),
            retired: std::sync::atomic::AtomicBool::new(false),
            syncing: Mutex::new(()),
            flush_seconds: std::sync::OnceLock::new(),
            topic_counters: std::sync::OnceLock::new(),
            maintenance_slot: Slot::default(),
            maintenance: std::sync::OnceLock::new(),
        })
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        self.inner.lock().log.set_config(config.log.clone());
        *self.config.write() = config;
        // flush.ms or segment.ms may have come closer.
        self.wake_maintenance(crate::clock::now_ms());
    }

    /// Puts this partition's periodic log work in `queue`, due at once (the first
    /// visit finds its real deadline).
    pub fn attach_maintenance(self: &Arc<Self>, queue: Arc<Maintenance<Partition>>) {
        if self.maintenance.set(queue.clone()).is_ok() {
            queue.register(self.clone(), Some(crate::clock::now_ms()));
        }
    }

    /// Something brought the log's maintenance deadline forward: have it visited at
    /// `now_ms` (the visit computes the real deadline).
    fn wake_maintenance(&self, now_ms: i64) {
        if let Some(queue) = self.maintenance.get() {
            queue.schedule(&self.maintenance_slot, Some(now_ms));
        }
    }

    /// The log's periodic work due at `now_ms` (fsyncs outside the partition lock
    /// first, so the checkpoint the tick may write includes them); returns when it is
    /// next due. Blocking.
    pub fn maintain(&self, now_ms: i64) -> Result<Option<i64>, LogError> {
        self.sync_log(SyncFor::Tick(now_ms))?;
        self.with_log(|log| log.tick(now_ms))?;
        Ok(self.inner.lock().log.next_maintenance_ms())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn bump_data(&self) {
        self.data.send_modify(|v| *v = v.wrapping_add(1));
        self.listeners.notify();
    }

    /// Marks `slot` in `inbox` at every change [`Partition::data_changes`] reports,
    /// until [`Partition::unlisten`] or the inbox closes. A session's registration.
    pub fn listen(&self, inbox: &Arc<ChangeInbox>, slot: u32) {
        self.listeners.add(inbox, slot);
    }

    pub fn unlisten(&self, inbox: &Arc<ChangeInbox>) {
        self.listeners.remove(inbox);
    }

    /// The broker dropped this replica: whoever still holds it is told (as a change)
    /// and sees [`Partition::is_retired`].
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
        self.bump_data();
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Changes whenever what a fetch of this partition could return may have changed:
    /// records appended, truncated or deleted, the high watermark moved, leadership
    /// changed. A fetch long-poll parks on the receivers of the partitions it reads,
    /// so only their appends wake it. Like any watch, it says something changed, not
    /// what: read the partition again.
    pub fn data_changes(&self) -> watch::Receiver<u64> {
        self.data.subscribe()
    }

    /// Takes the leader, epoch, ISR and replicas metadata gives this partition.
    pub fn apply_leadership(&self, view: &PartitionImage, now_ms: i64) {
        let mut inner = self.inner.lock();
        let leo = inner.log.log_end_offset();
        match inner.leadership.apply(view, leo, now_ms) {
            Applied::Unchanged => return,
            Applied::Changed => {}
            Applied::BecameLeader => {
                inner.epochs.record(view.leader_epoch, leo);
                tracing::info!(topic = %self.topic, partition = self.index, epoch = view.leader_epoch, isr = ?view.isr, "became leader");
            }
        }
        drop(inner);
        self.bump();
        self.bump_data();
    }

    /// (leader, leader epoch) as this broker last heard from metadata.
    pub fn leadership(&self) -> (i32, i32) {
        let inner = self.inner.lock();
        (inner.leadership.leader, inner.leadership.leader_epoch)
    }

    pub fn is_leader(&self) -> bool {
        self.inner.lock().leadership.is_leader()
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
        if !inner.leadership.is_leader() {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        inner.leadership.check_epoch(current_leader_epoch)?;
        let start = inner.log.log_start_offset();
        let hw = inner.leadership.high_watermark;
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

    /// The ISR change this leader should ask the controller for, if any: followers that
    /// have not caught up within `max_lag_ms` leave, caught-up live replicas join.
    pub fn isr_change(
        &self,
        now_ms: i64,
        max_lag_ms: i64,
        is_live: impl Fn(i32) -> bool,
    ) -> Option<IsrChange> {
        let mut inner = self.inner.lock();
        let leo = inner.log.log_end_offset();
        inner
            .leadership
            .isr_change(leo, now_ms, max_lag_ms, is_live)
    }

    /// What became of the ISR change to `isr`. An expansion stays counted for the high
    /// watermark until metadata shows the controller's decision, except when the
    /// controller refused it against the very view it was computed from; an unanswered
    /// one is sent again by the next [`Partition::isr_change`].
    pub fn isr_change_done(&self, isr: &[i32], outcome: IsrOutcome) {
        self.inner.lock().leadership.isr_change_done(isr, outcome);
    }

    /// OffsetForLeaderEpoch: (epoch, end offset) for `epoch`, leader only.
    pub fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: i32,
    ) -> Result<(i32, i64), Refused> {
        let inner = self.inner.lock();
        if !inner.leadership.is_leader() {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        inner.leadership.check_epoch(current_leader_epoch)?;
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
        (
            inner.log.log_start_offset(),
            inner.leadership.high_watermark,
        )
    }

    /// DescribeProducers (leader only): the producers with state in this partition.
    pub fn producers(&self) -> Result<Vec<ProducerSummary>, Refused> {
        let inner = self.inner.lock();
        if !inner.leadership.is_leader() {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        Ok(inner.producers.describe())
    }

    /// The last stable offset: below the high watermark and the first open transaction.
    pub fn last_stable_offset(&self) -> i64 {
        self.inner.lock().last_stable_offset()
    }

    /// (log start offset, log end offset).
    pub fn log_offsets(&self) -> (i64, i64) {
        let inner = self.inner.lock();
        (inner.log.log_start_offset(), inner.log.log_end_offset())
    }

    /// One compaction pass (`cleanup.policy=compact`) if the log is due one. The
    /// partition is locked only to plan the pass (bounded by the last stable offset:
    /// nothing not yet stable is cleaned) and to install it; the pass itself runs
    /// without the lock, so appends and fetches go on. Blocking.
    pub fn clean(
        &self,
        config: &CleanerConfig,
        now_ms: i64,
    ) -> Result<Option<CleanStats>, LogError> {
        let job = {
            let inner = self.inner.lock();
            inner
                .log
                .plan_clean(inner.last_stable_offset(), config, now_ms)
        };
        let Some(job) = job else {
            return Ok(None);
        };
        let cleaned = job.run()?;
        // One segment per hold of the lock: appends and fetches wait for one rename
        // and one segment's reload at most, not for the whole pass.
        let (segments, end) = cleaned.into_steps();
        for segment in segments {
            self.with_log(|log| log.install_cleaned(segment))?;
        }
        self.with_log(|log| log.finish_clean(end)).map(Some)
    }

    /// Direct use of the log (sizes, timestamp lookups, retention, DeleteRecords).
    /// Parked fetches are woken if `f` moved the log's start or end.
    pub fn with_log<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        let mut inner = self.inner.lock();
        let before = inner.fetchable();
        let mark = inner.maintenance_mark();
        let out = f(&mut inner.log);
        let moved = inner.fetchable() != before;
        let sooner = inner.maintenance_sooner(mark);
        drop(inner);
        if moved {
            self.bump_data();
        }
        if sooner {
            self.wake_maintenance(crate::clock::now_ms());
        }
        out
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
        let started = std::time::Instant::now();
        let outcome = job.run();
        if let Some(h) = self.flush_seconds.get() {
            h.observe(started.elapsed().as_secs_f64());
        }
        self.inner.lock().log.finish_sync(job, outcome)
    }

    /// Sends this partition's fsync durations to `histogram` (set once).
    pub fn observe_flushes(&self, histogram: prometheus_client::metrics::histogram::Histogram) {
        let _ = self.flush_seconds.set(histogram);
    }

    /// Its topic's traffic counters: kept here once `find` (the metrics' map, looked
    /// up by name) has them, so the request path looks a topic up once per
    /// partition, not once per request. `find` answers `None` while counting is off
    /// or the topic is not in the metadata; nothing is kept then.
    pub(crate) fn topic_counters(
        &self,
        find: impl FnOnce() -> Option<Arc<TopicCounters>>,
    ) -> Option<&Arc<TopicCounters>> {
        if let Some(counters) = self.topic_counters.get() {
            return Some(counters);
        }
        let found = find()?;
        Some(self.topic_counters.get_or_init(|| found))
    }

    pub fn close(self) -> Result<(), LogError> {
        self.inner.into_inner().log.close()
    }

    pub fn delete(self) -> Result<(), LogError> {
        self.inner.into_inner().log.delete()
    }
}

/// A partition for tests: `topic`-`index` in `dir` on broker `node_id`, with default
/// topic configs, led by `replicas[0]` (epoch 0, every replica in the ISR).
#[cfg(test)]
pub(crate) fn open_for_test(
    dir: &Path,
    (topic, index): (&str, i32),
    node_id: i32,
    replicas: &[i32],
    now_ms: i64,
) -> Arc<Partition> {
    let config = crate::config::BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None)
        .topic_config(&Default::default(), crate::config::Dynamic::none());
    let p = Partition::open(
        dir,
        Arc::from(topic),
        index,
        node_id,
        Arc::new(config),
        now_ms,
    )
    .expect("opening a test partition");
    p.apply_leadership(
        &PartitionImage {
            index,
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            adding_replicas: vec![],
            removing_replicas: vec![],
        },
        now_ms,
    );
    Arc::new(p)
}

#[cfg(test)]
mod tests {
    use brook_protocol::batch::Compression;
    use brook_protocol::records::{encode_batch, Record};
    use bytes::Bytes;

    use super::*;
    use crate::config::BrokerConfig;

    const NOW: i64 = 1_700_000_000_000;

    fn record_batch() -> Bytes {
        let record = Record {
            value: Some(Bytes::from_static(b"v")),
            timestamp_ms: NOW,
            ..Record::default()
        };
        encode_batch(&[record], Compression::None).unwrap().freeze()
    }

    #[test]
    fn appends_and_leadership_changes_wake_parked_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None)
            .topic_config(&Default::default(), crate::config::Dynamic::none());
        let p = Partition::open(dir.path(), Arc::from("t"), 0, 1, Arc::new(config), NOW).unwrap();
        let mut rx = p.data_changes();
        let view = PartitionImage {
            index: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            adding_replicas: vec![],
            removing_replicas: vec![],
        };
        p.apply_leadership(&view, NOW);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        // The same view again changes nothing a fetch sees.
        p.apply_leadership(&view, NOW);
        assert!(!rx.has_changed().unwrap());

        // Follower 2 has not fetched: the high watermark stays, but a follower fetch
        // could now read the records.
        p.append(&record_batch(), NOW, None).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(p.offsets(), (0, 0));
        rx.mark_unchanged();

        // The follower's fetch moves the high watermark: consumers can read more.
        p.follower_fetch(2, 1, -1, 0, 1 << 20, NOW).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(p.offsets(), (0, 1));
        rx.mark_unchanged();
        // Fetching again from the same offset moves nothing.
        p.follower_fetch(2, 1, 0, 0, 1 << 20, NOW).unwrap();
        assert!(!rx.has_changed().unwrap());

        // A read-only look at the log wakes nobody; deleting records does.
        p.with_log(|log| log.size_bytes());
        assert!(!rx.has_changed().unwrap());
        p.with_log(|log| log.delete_records_before(1)).unwrap();
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn keeps_its_topics_counters_once_found() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None)
            .topic_config(&Default::default(), crate::config::Dynamic::none());
        let p = Partition::open(dir.path(), Arc::from("t"), 0, 1, Arc::new(config), NOW).unwrap();
        let asked = &std::cell::Cell::new(0);
        let find = |found: Option<Arc<TopicCounters>>| {
            move || {
                asked.set(asked.get() + 1);
                found
            }
        };
        // Nothing found (counting off, or the topic not in the metadata yet): asked
        // again next time.
        assert!(p.topic_counters(find(None)).is_none());
        let counters = Arc::new(TopicCounters::default());
        let kept = p.topic_counters(find(Some(counters.clone()))).unwrap();
        assert!(Arc::ptr_eq(kept, &counters));
        // Kept: the map is not asked again.
        assert!(Arc::ptr_eq(
            p.topic_counters(find(None)).unwrap(),
            &counters
        ));
        assert_eq!(asked.get(), 2);
    }
}
