//! Log-level tests. Records carry their own offset in their value (`value-{offset}`),
//! so any read can be checked without a separate model.

mod append_read;
mod clean;
mod damage;
mod recovery;
mod replicated;
mod retention;
mod timestamps;
mod truncate;

use std::path::{Path, PathBuf};

use brook_protocol::batch::Compression;
use brook_protocol::records::{decode_batches, encode_batch, ConsumedRecord, Record};
use bytes::Bytes;

use crate::segment::{segment_path, LOG_SUFFIX};
use crate::{AppendInfo, Log, LogConfig};

/// A fixed "now" for tests that do not care about time.
pub(crate) const NOW_MS: i64 = 1_700_000_000_000;

/// One batch of `records` records, timestamps `first_timestamp_ms + i`, values of
/// `value_bytes` bytes.
pub(crate) fn batch_bytes(records: usize, first_timestamp_ms: i64, value_bytes: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_bytes])),
            headers: vec![],
            timestamp_ms: first_timestamp_ms + i as i64,
        })
        .collect();
    encode_batch(&records, Compression::None).unwrap().to_vec()
}

pub(crate) fn value_for(offset: i64) -> Bytes {
    Bytes::from(format!("value-{offset}"))
}

/// One batch whose records will land at `first_offset..`, one per timestamp.
pub(crate) fn batch_at(
    first_offset: i64,
    timestamps_ms: &[i64],
    compression: Compression,
) -> Vec<u8> {
    let records: Vec<Record> = timestamps_ms
        .iter()
        .enumerate()
        .map(|(i, &timestamp_ms)| Record {
            key: None,
            value: Some(value_for(first_offset + i as i64)),
            headers: vec![],
            timestamp_ms,
        })
        .collect();
    encode_batch(&records, compression).unwrap().to_vec()
}

/// Appends one batch with the given record timestamps.
pub(crate) fn append(log: &mut Log, timestamps_ms: &[i64]) -> AppendInfo {
    let batch = batch_at(log.log_end_offset(), timestamps_ms, Compression::None);
    log.append(&batch, 0, None, NOW_MS).unwrap()
}

/// Appends `batches` batches of `records_per_batch` records, timestamps = offset.
pub(crate) fn append_many(log: &mut Log, batches: usize, records_per_batch: usize) {
    for _ in 0..batches {
        let first = log.log_end_offset();
        let timestamps: Vec<i64> = (first..first + records_per_batch as i64).collect();
        append(log, &timestamps);
    }
}

/// Every record from `from` to the log end, read slice by slice. A slice may start
/// past the offset asked for where recovery left a gap between segments.
pub(crate) fn read_records(log: &Log, from: i64) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let slice = log.read(offset, 4096, None, true).unwrap();
        if slice.is_empty() {
            return out;
        }
        assert!(offset < slice.next_offset_hint);
        let records = decode_batches(slice.read_bytes().unwrap()).unwrap();
        out.extend(records.into_iter().filter(|r| r.offset >= offset));
        offset = slice.next_offset_hint;
    }
}

/// Asserts the log holds exactly offsets `from..to`, each with its own value.
pub(crate) fn assert_contents(log: &Log, from: i64, to: i64) {
    let records = read_records(log, from);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (from..to).collect::<Vec<_>>());
    for r in &records {
        assert_eq!(
            r.value.as_ref(),
            Some(&value_for(r.offset)),
            "offset {}",
            r.offset
        );
    }
}

/// Small segments and a dense index so a few hundred records exercise everything.
pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 200,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

pub(crate) fn log_file(dir: &Path, base_offset: i64) -> PathBuf {
    segment_path(dir, base_offset, LOG_SUFFIX)
}

pub(crate) fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, NOW_MS).unwrap()
}
