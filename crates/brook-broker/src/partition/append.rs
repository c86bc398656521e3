//! The leader's writes: a produce request's batches, transaction markers, and the
//! wait for them to be replicated (acks=all).

use std::sync::Arc;

use brook_log::LogError;
use brook_protocol::batch::BatchError;
use brook_protocol::record_check::RecordCheckError;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use thiserror::Error;

use super::validate::validate;
use super::{Partition, SyncFor};
use crate::producer_state::{MarkerCheck, SequenceCheck};

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
    #[error(transparent)]
    Records(#[from] RecordCheckError),
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
    /// A failure of the broker's storage (logged), not of the client's request.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, AppendError::Storage(e) if !matches!(e, LogError::OffsetOverflow { .. }))
    }

    pub fn code(&self) -> i16 {
        match self {
            AppendError::Corrupt(_) => ResponseError::CorruptMessage.code(),
            AppendError::TooLarge { .. } => ResponseError::MessageTooLarge.code(),
            AppendError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp.code(),
            AppendError::InvalidRecord(_) => ResponseError::InvalidRecord.code(),
            AppendError::Records(RecordCheckError::Invalid(_)) => {
                ResponseError::InvalidRecord.code()
            }
            AppendError::Records(RecordCheckError::Codec(_)) => {
                ResponseError::CorruptMessage.code()
            }
            AppendError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
            AppendError::StaleEpoch => ResponseError::InvalidProducerEpoch.code(),
            // More offsets than one append may take: the client's batch, not the disk.
            AppendError::Storage(LogError::OffsetOverflow { .. }) => {
                ResponseError::InvalidRecord.code()
            }
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
    /// `flush.messages` asks for an fsync of these records that has not run yet: an
    /// append never fsyncs on the caller's thread (often an async worker). Finish it
    /// with [`Partition::flush_appended`] (or [`Partition::sync_appended`] on a
    /// blocking thread) before acknowledging the records.
    pub sync_due: bool,
}

impl Partition {
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
        if !inner.leadership.is_leader() {
            return Err(AppendError::NotLeader);
        }
        if let Some(required) = min_insync {
            if inner.leadership.isr.len() < required {
                return Err(AppendError::NotEnoughReplicas {
                    required,
                    in_sync: inner.leadership.isr.len(),
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
                        leader_epoch: inner.leadership.leader_epoch,
                        min_insync,
                        log_append_time_ms: -1,
                        log_start_offset: inner.log.log_start_offset(),
                        sync_due: false,
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
        let epoch = inner.leadership.leader_epoch;
        let mark = inner.maintenance_mark();
        let info = inner.log.append(records, epoch, append_time, now_ms)?;
        inner.epochs.record(epoch, info.base_offset);
        for (h, batch) in brook_log::appended_headers(records, &info, epoch) {
            inner.producers.record(&h, h.is_control().then_some(batch));
        }
        let log_start = inner.log.log_start_offset();
        inner.producers.trim_aborted(log_start);
        let moved = inner.advance_high_watermark();
        let appended = Appended {
            base_offset: info.base_offset,
            next_offset: info.last_offset + 1,
            leader_epoch: epoch,
            min_insync,
            log_append_time_ms: append_time.unwrap_or(-1),
            log_start_offset: inner.log.log_start_offset(),
            sync_due: inner.log.flush_messages_due(),
        };
        let sooner = inner.maintenance_sooner(mark);
        drop(inner);
        if moved {
            self.bump();
        }
        self.bump_data();
        if sooner {
            self.wake_maintenance(now_ms);
        }
        Ok(appended)
    }

    /// Runs the fsync `flush.messages` asked of `appended` (see [`Appended::sync_due`]).
    /// Blocking: call it on the blocking pool.
    pub fn sync_appended(&self, appended: &Appended) -> Result<(), LogError> {
        if !appended.sync_due {
            return Ok(());
        }
        self.sync_log(SyncFor::Append {
            end: appended.next_offset,
            now_ms: crate::clock::now_ms(),
        })
    }

    /// [`Partition::sync_appended`] from async code: the fsync runs on the blocking pool.
    pub async fn flush_appended(self: &Arc<Self>, appended: &Appended) -> Result<(), LogError> {
        if !appended.sync_due {
            return Ok(());
        }
        let (partition, appended) = (self.clone(), *appended);
        tokio::task::spawn_blocking(move || partition.sync_appended(&appended))
            .await
            .unwrap_or_else(|e| {
                Err(LogError::Io {
                    context: "fsync task".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            })
    }

    /// Whether `appended` has reached the in-sync replicas: `Some(Ok)` once its
    /// `next_offset` is below the high watermark, `Some(Err)` when it never will
    /// (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS_AFTER_APPEND), `None` while waiting.
    pub fn replicated_now(&self, appended: &Appended) -> Option<Result<(), i16>> {
        let inner = self.inner.lock();
        if !inner.leadership.is_leader() || inner.leadership.leader_epoch != appended.leader_epoch {
            return Some(Err(ResponseError::NotLeaderOrFollower.code()));
        }
        if inner.leadership.high_watermark < appended.next_offset {
            return None;
        }
        // Kafka's check after the append: the records reached the high watermark, but
        // on fewer in-sync replicas than the topic requires.
        match appended.min_insync {
            Some(required) if inner.leadership.isr.len() < required => {
                Some(Err(ResponseError::NotEnoughReplicasAfterAppend.code()))
            }
            _ => Some(Ok(())),
        }
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
            if let Some(done) = self.replicated_now(appended) {
                return done;
            }
            // Waiting on the followers: the request's remote time.
            let changed = tokio::time::timeout_at(deadline, rx.changed());
            match crate::request_time::waiting_on_others(changed).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(ResponseError::RequestTimedOut.code()),
            }
        }
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
        if !inner.leadership.is_leader() {
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
        let epoch = inner.leadership.leader_epoch;
        let mark = inner.maintenance_mark();
        let info = inner.log.append(&encoded, epoch, None, now_ms)?;
        inner.epochs.record(epoch, info.base_offset);
        for (header, batch) in brook_log::appended_headers(&encoded, &info, epoch) {
            inner.producers.record(&header, Some(batch));
        }
        inner
            .producers
            .marker_written(producer_id, coordinator_epoch);
        let moved = inner.advance_high_watermark();
        let appended = Appended {
            base_offset: info.base_offset,
            next_offset: info.last_offset + 1,
            leader_epoch: epoch,
            min_insync: None,
            log_append_time_ms: -1,
            log_start_offset: inner.log.log_start_offset(),
            sync_due: inner.log.flush_messages_due(),
        };
        let sooner = inner.maintenance_sooner(mark);
        drop(inner);
        if moved {
            self.bump();
        }
        self.bump_data();
        if sooner {
            self.wake_maintenance(now_ms);
        }
        Ok(appended)
    }
}
