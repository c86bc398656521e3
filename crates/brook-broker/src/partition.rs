//! One partition as the broker sees it: the log plus the idempotent-producer state,
//! behind one lock so that the sequence check and the append are atomic.

use std::path::Path;
use std::sync::Arc;

use brook_log::{Log, LogError, ReadSlice};
use brook_protocol::batch::{self, BatchError, BatchHeader, BatchIter};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use thiserror::Error;

use crate::config::TopicConfig;
use crate::producer_state::{ProducerStates, SequenceCheck};

/// Leader epoch of every partition on a single broker (it never changes leaders).
pub const LEADER_EPOCH: i32 = 0;

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
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

struct Inner {
    log: Log,
    producers: ProducerStates,
}

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    config: RwLock<Arc<TopicConfig>>,
    inner: Mutex<Inner>,
}

impl Partition {
    /// Opens (recovering if needed) the partition's log and rebuilds producer state.
    pub fn open(
        dir: &Path,
        topic: Arc<str>,
        index: i32,
        config: Arc<TopicConfig>,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let log = Log::open(dir, config.log.clone(), now_ms)?;
        let mut producers = ProducerStates::default();
        for h in log.batch_headers_from(log.log_start_offset())? {
            producers.record(&h);
        }
        Ok(Partition {
            topic,
            index,
            config: RwLock::new(config),
            inner: Mutex::new(Inner { log, producers }),
        })
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: Arc<TopicConfig>) {
        self.inner.lock().log.set_config(config.log.clone());
        *self.config.write() = config;
    }

    /// Validates and appends the batches of one produce request for this partition.
    pub fn append(&self, records: &Bytes, now_ms: i64) -> Result<Appended, AppendError> {
        let config = self.config();
        let headers = validate(records, &config, now_ms)?;
        let mut buf = BytesMut::from(&records[..]);
        let mut inner = self.inner.lock();
        if let [only] = headers[..] {
            match inner.producers.check(&only) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate { base_offset } => {
                    return Ok(Appended {
                        base_offset,
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
        let info = inner
            .log
            .append(&mut buf, LEADER_EPOCH, append_time, now_ms)?;
        for item in BatchIter::new(&buf) {
            let (h, _) = item.expect("batches validated before append");
            inner.producers.record(&h);
        }
        Ok(Appended {
            base_offset: info.base_offset,
            log_append_time_ms: append_time.unwrap_or(-1),
            log_start_offset: inner.log.log_start_offset(),
        })
    }

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

    /// (log start offset, high watermark). A single broker's high watermark is its log end.
    pub fn offsets(&self) -> (i64, i64) {
        let inner = self.inner.lock();
        (inner.log.log_start_offset(), inner.log.log_end_offset())
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.inner.lock().log)
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
