//! What the coordinators' internal topics (`__consumer_offsets`, `__transaction_state`)
//! have in common: keyed records appended in bounded batches, replayed batch by batch,
//! and the set of their partitions this broker leads.

use std::collections::BTreeSet;

use brook_meta::MetadataImage;
use brook_protocol::batch::{BatchHeader, BatchIter, Compression};
use brook_protocol::records::{
    decode_batches, encode_batch_with, ConsumedRecord, ProducerInfo, Record,
};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::partition::{Appended, Partition};
use crate::shared::{now_ms, ApiError, Shared};

/// Records per internal-topic batch are capped well under `max.message.bytes`.
const BATCH_BYTES: usize = 256 * 1024;
/// Bytes read per step while replaying.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

/// One batch met while replaying: its header, and its records (none for control
/// batches, whose bytes come instead).
pub enum Replayed<'a> {
    Control(&'a BatchHeader, &'a [u8]),
    Records(&'a BatchHeader, Vec<ConsumedRecord>),
}

/// Appends `(key, value)` records to `partition` in batches of at most `BATCH_BYTES`,
/// with the producer fields given; returns the offset of the first record and the last
/// append.
pub fn append_keyed(
    partition: &Partition,
    records: &[(Bytes, Option<Bytes>)],
    producer: ProducerInfo,
) -> Result<(i64, Option<Appended>), ApiError> {
    let now = now_ms();
    let mut first_offset = None;
    let mut last = None;
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < records.len() && (end == start || bytes < BATCH_BYTES) {
            bytes += records[end].0.len() + records[end].1.as_ref().map_or(0, |v| v.len());
            end += 1;
        }
        let batch: Vec<Record> = records[start..end]
            .iter()
            .map(|(key, value)| Record {
                key: Some(key.clone()),
                value: value.clone(),
                headers: vec![],
                timestamp_ms: now,
            })
            .collect();
        let encoded: Bytes = encode_batch_with(&batch, Compression::None, producer)
            .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?
            .freeze();
        let appended = partition
            .append(&encoded, now, None)
            .map_err(|e| ApiError {
                code: e.code(),
                message: e.to_string(),
            })?;
        first_offset.get_or_insert(appended.base_offset);
        last = Some(appended);
        start = end;
    }
    Ok((first_offset.unwrap_or_else(|| partition.offsets().1), last))
}

/// Reads `partition` from its log start to its end and calls `visit` for every batch in
/// order (records before the log start offset left out).
pub fn replay(partition: &Partition, mut visit: impl FnMut(Replayed<'_>)) -> Result<(), ApiError> {
    let corrupt =
        |e: &dyn std::fmt::Display| ApiError::new(ResponseError::CorruptMessage, e.to_string());
    let (mut offset, end) = partition.log_offsets();
    while offset < end {
        let slice = partition
            .read(offset, REPLAY_READ_BYTES, true)
            .map_err(storage)?;
        let bytes = slice.read_bytes().map_err(|e| {
            storage(brook_log::LogError::Io {
                context: format!("replaying {}", partition.topic),
                source: e,
            })
        })?;
        if bytes.is_empty() {
            break;
        }
        let mut next = offset;
        for item in BatchIter::new(&bytes) {
            let (header, range) = item.map_err(|e| corrupt(&e))?;
            next = header.next_offset();
            if header.last_offset() < offset {
                continue;
            }
            if header.is_control() {
                visit(Replayed::Control(&header, &bytes[range]));
                continue;
            }
            let mut records = decode_batches(bytes.slice(range)).map_err(|e| corrupt(&e))?;
            records.retain(|r| r.offset >= offset);
            visit(Replayed::Records(&header, records));
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(())
}

/// The partitions of `topic` this broker leads now.
pub fn led_partitions(shared: &Shared, image: &MetadataImage, topic: &str) -> BTreeSet<i32> {
    image.topic(topic).map_or_else(BTreeSet::new, |t| {
        t.partitions
            .iter()
            .filter(|p| {
                shared
                    .partition(topic, p.index)
                    .is_some_and(|local| local.is_leader())
            })
            .map(|p| p.index)
            .collect()
    })
}

/// (lost, gained) between the partitions led before and now.
pub fn leadership_change(before: &BTreeSet<i32>, now: &BTreeSet<i32>) -> (Vec<i32>, Vec<i32>) {
    (
        before.difference(now).copied().collect(),
        now.difference(before).copied().collect(),
    )
}

pub fn storage(e: brook_log::LogError) -> ApiError {
    ApiError::new(ResponseError::KafkaStorageError, e.to_string())
}
