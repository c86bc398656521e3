//! Replication between a leader and its followers: the leader's answer to a follower
//! fetch, and the follower applying what it got (records, divergence, a log that must
//! restart at the leader's log start).

use brook_log::{LogError, ReadSlice};
use brook_protocol::batch::BatchIter;
use kafka_protocol::error::ResponseError;

use super::{EpochCache, Inner, Partition, Refused, SyncFor};
use crate::producer_state::ProducerStates;

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

/// When a follower fetch is answered: now, and for a partition held in a fetch session
/// that the follower did not list this time, since when it has been fetching without a
/// break (its previous request; see `Leadership::follower_fetched`).
#[derive(Debug, Clone, Copy)]
pub struct FetchedAt {
    pub now_ms: i64,
    pub fetching_since_ms: Option<i64>,
}

impl From<i64> for FetchedAt {
    fn from(now_ms: i64) -> Self {
        FetchedAt {
            now_ms,
            fetching_since_ms: None,
        }
    }
}

impl Partition {
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
        at: impl Into<FetchedAt>,
    ) -> Result<(FollowerRead, i64, i64, bool), Refused> {
        let FetchedAt {
            now_ms,
            fetching_since_ms,
        } = at.into();
        let mut inner = self.inner.lock();
        if !inner.leadership.is_leader() {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        inner.leadership.check_epoch(current_leader_epoch)?;
        if !inner.leadership.replicas.contains(&replica) {
            return Err(Refused(ResponseError::NotLeaderOrFollower.code()));
        }
        let leo = inner.log.log_end_offset();
        let start = inner.log.log_start_offset();
        if last_fetched_epoch >= 0 {
            let (epoch, end) = inner.epochs.end_offset_for(last_fetched_epoch, leo);
            if epoch != last_fetched_epoch || end < fetch_offset {
                let hw = inner.leadership.high_watermark;
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
            let hw = inner.leadership.high_watermark;
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
        inner
            .leadership
            .follower_fetched(replica, fetch_offset, leo, now_ms, fetching_since_ms);
        let moved = inner.leadership.advance_high_watermark(leo);
        let hw = inner.leadership.high_watermark;
        let read = inner.log.read(fetch_offset, max_bytes, None, true);
        drop(inner);
        if moved {
            self.bump();
            self.bump_data();
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
            inner.leadership.leader_epoch,
            inner.log.log_start_offset(),
        )
    }

    /// A follower appends what the leader sent and takes the leader's high watermark.
    /// `fetched_epoch` is the leader epoch the fetch was sent in: a response that arrives
    /// after leadership moved on is dropped (as are [`Partition::truncate_diverging`]'s
    /// and [`Partition::reset_to`]'s). Returns the offset up to which `flush.messages`
    /// asks for an fsync, never run here (the caller may be an async worker): finish it
    /// with [`Partition::sync_replicated`] on the blocking pool before fetching on.
    pub fn append_replicated(
        &self,
        fetched_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<Option<i64>, LogError> {
        let mut inner = self.inner.lock();
        if self.stale_fetch(&inner, fetched_epoch) {
            return Ok(None);
        }
        let before = inner.fetchable();
        let mark = inner.maintenance_mark();
        let appended =
            inner.append_replicated(records, leader_high_watermark, leader_log_start, now_ms);
        let changed = inner.fetchable() != before;
        let sync_due = inner.log.flush_messages_due();
        let sooner = inner.maintenance_sooner(mark);
        drop(inner);
        if changed {
            self.bump_data();
        }
        if sooner {
            self.wake_maintenance(now_ms);
        }
        let leo = appended?;
        Ok(sync_due.then_some(leo))
    }

    /// The fsync [`Partition::append_replicated`] left owed, up to `end`. Blocking.
    pub fn sync_replicated(&self, end: i64) -> Result<(), LogError> {
        self.sync_log(SyncFor::Append {
            end,
            now_ms: crate::clock::now_ms(),
        })
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
        let truncated = inner.truncate_to(target);
        drop(inner);
        self.bump_data();
        truncated
    }

    /// The follower is behind the leader's log start: empty the log and restart there.
    pub fn reset_to(&self, fetched_epoch: i32, offset: i64) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        if self.stale_fetch(&inner, fetched_epoch) {
            return Ok(());
        }
        tracing::warn!(topic = %self.topic, partition = self.index, offset, "follower log restarts at the leader's log start offset");
        let reset = inner.reset_to(offset);
        drop(inner);
        self.bump_data();
        reset
    }

    /// A fetch sent in `fetched_epoch` whose response must not be applied: this broker
    /// leads now, or metadata has moved to another leader epoch since.
    fn stale_fetch(&self, inner: &Inner, fetched_epoch: i32) -> bool {
        let stale = inner.leadership.is_leader() || inner.leadership.leader_epoch != fetched_epoch;
        if stale {
            tracing::debug!(topic = %self.topic, partition = self.index, fetched_epoch, epoch = inner.leadership.leader_epoch, "dropping a replica fetch response from an earlier leadership");
        }
        stale
    }
}

impl Inner {
    /// Appends records copied from the leader and takes the leader's high watermark and
    /// log start. Returns the new log end offset.
    fn append_replicated(
        &mut self,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<i64, LogError> {
        if !records.is_empty() {
            self.log.append_replicated(records, now_ms)?;
            for item in BatchIter::new(records) {
                let (h, range) = item.map_err(LogError::from)?;
                self.producers
                    .record(&h, h.is_control().then(|| &records[range]));
                self.epochs.record(h.partition_leader_epoch, h.base_offset);
            }
        }
        let leo = self.log.log_end_offset();
        self.leadership.high_watermark = leader_high_watermark.min(leo).max(0);
        if leader_log_start > self.log.log_start_offset() && leader_log_start <= leo {
            self.log.delete_records_before(leader_log_start)?;
        }
        Ok(leo)
    }

    fn truncate_to(&mut self, target: i64) -> Result<(), LogError> {
        self.log.truncate_to(target)?;
        let new_end = self.log.log_end_offset();
        self.epochs.truncate_from(new_end);
        self.leadership.high_watermark = self.leadership.high_watermark.min(new_end);
        self.rebuild_producer_state()
    }

    fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.log.reset_to(offset)?;
        self.epochs = EpochCache::default();
        self.leadership.high_watermark = offset;
        self.producers = ProducerStates::default();
        Ok(())
    }
}
