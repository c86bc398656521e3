//! Per-partition log settings, named after Kafka's topic configs.

use crate::index::{IndexEntry, OffsetEntry, TimeEntry};

/// Kafka's `segment.bytes` is an `int`; positions in the offset index are `u32`.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;
/// Kafka's "no timestamp" value.
pub const NO_TIMESTAMP: i64 = -1;

const MIB: u32 = 1024 * 1024;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How one partition's log behaves. Every field carries Kafka's topic-config name and
/// default; the broker resolves topic overrides and broker defaults before building it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before an append would grow the active
    /// one past this size. Default 1 GiB; values above `i32::MAX` act as `i32::MAX`.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment once its first append is this old.
    /// Default 7 days.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose largest timestamp is older than this.
    /// Default 7 days; negative means unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger than this.
    /// Default -1 (unlimited).
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of log between two sparse index entries. Default 4096.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: the largest offset (and time) index a segment may have;
    /// the segment rolls when either index is full. Default 10 MiB.
    pub segment_index_bytes: u32,
    /// `flush.messages` / `log.flush.interval.messages`: fsync once this many offsets
    /// are unflushed. Default `u64::MAX` (never: rely on the OS); 1 = fsync every append.
    pub flush_interval_messages: u64,
    /// `flush.ms` / `log.flush.interval.ms`: fsync (from [`crate::Log::tick`]) once the
    /// last flush is this old. Default `i64::MAX` (never).
    pub flush_interval_ms: i64,
    /// `file.delete.delay.ms`: accepted for compatibility. Brook deletes segment files at
    /// once: readers hold an `Arc<File>`, which keeps an unlinked file readable.
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * MIB,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
        }
    }
}

impl LogConfig {
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.min(MAX_SEGMENT_BYTES)
    }

    pub(crate) fn index_policy(&self) -> IndexPolicy {
        let index_bytes = self.segment_index_bytes as usize;
        IndexPolicy {
            interval_bytes: u64::from(self.index_interval_bytes),
            max_offset_entries: (index_bytes / OffsetEntry::SIZE).max(1),
            max_time_entries: (index_bytes / TimeEntry::SIZE).max(1),
        }
    }
}

/// The index settings a segment needs while appending or rebuilding its indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexPolicy {
    pub interval_bytes: u64,
    pub max_offset_entries: usize,
    pub max_time_entries: usize,
}
