//! One host for the coordinators whose state lives in an internal topic
//! (`__consumer_offsets` for groups, `__transaction_state` for transactions): the
//! coordinator of a key is the leader of the key's partition of the topic. The host
//! replays a partition when this broker starts leading it and unloads its keys when it
//! stops, and appends keyed records in bounded batches. The log cleaner compacts the
//! topics like any other (`cleanup.policy=compact`): replay applies records
//! last-writer-wins per key, so a compacted log replays to the same state. What the
//! records mean is the hosted state's ([`Hosted`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use brook_meta::MetadataImage;
use brook_protocol::batch::{BatchHeader, BatchIter, Compression};
use brook_protocol::records::{
    decode_batches, encode_batch_with, ConsumedRecord, ProducerInfo, Record,
};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, MutexGuard};

use crate::clock::now_ms;
use crate::error::{storage, ApiError};
use crate::names::coordinator_partition_for;
use crate::partition::{Appended, Partition};
use crate::replicas::{led_partitions, Replicas};

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

/// A `(key, value)` record of an internal topic (`None`: a tombstone).
pub type Keyed = (Bytes, Option<Bytes>);

/// The partition a change went to, and its last append (to wait for the ISR).
pub type Written = (Arc<Partition>, Appended);

/// A coordinator's state as the host drives it.
pub trait Hosted: Send {
    /// Forgets every key that maps to one of `lost` (of `partitions`).
    fn unload(&mut self, lost: &BTreeSet<i32>, partitions: i32) -> usize;
    /// Applies one batch of partition `index`; returns the records it used.
    fn replay(&mut self, index: i32, batch: Replayed<'_>) -> usize;
}

pub struct CoordinatorHost<S> {
    topic: &'static str,
    /// The partition count the topic is created with.
    default_partitions: i32,
    replicas: Arc<Replicas>,
    /// Lock order: `state` before `led`.
    state: Mutex<S>,
    /// The partitions this broker leads and has replayed: it coordinates exactly the
    /// keys that map to them.
    led: Mutex<BTreeSet<i32>>,
}

impl<S: Hosted> CoordinatorHost<S> {
    pub fn new(
        topic: &'static str,
        default_partitions: i32,
        replicas: Arc<Replicas>,
        state: S,
    ) -> Self {
        CoordinatorHost {
            topic,
            default_partitions,
            replicas,
            state: Mutex::new(state),
            led: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn default_partitions(&self) -> i32 {
        self.default_partitions
    }

    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock()
    }

    /// Partitions of the topic as it exists (or will be created).
    pub fn partition_count(&self, image: &MetadataImage) -> i32 {
        image
            .topic(self.topic)
            .map_or(self.default_partitions, |t| t.partitions.len() as i32)
    }

    pub fn partition_of(&self, image: &MetadataImage, key: &str) -> i32 {
        coordinator_partition_for(key, self.partition_count(image))
    }

    /// Whether this broker coordinates the keys of partition `index` now.
    pub fn leads(&self, index: i32) -> bool {
        self.led.lock().contains(&index)
    }

    /// Replays the partitions this broker now leads and unloads those it no longer
    /// leads; returns the partitions gained. A partition that fails to replay is not
    /// led, and is tried again on the next call.
    pub fn follow(&self, image: &MetadataImage) -> Vec<i32> {
        let Some(topic) = image.topic(self.topic) else {
            return Vec::new();
        };
        let partitions = topic.partitions.len() as i32;
        let now_led = led_partitions(&self.replicas, image, self.topic);
        let mut state = self.state.lock();
        let mut led = self.led.lock();
        let lost: BTreeSet<i32> = led.difference(&now_led).copied().collect();
        let gained: Vec<i32> = now_led.difference(&led).copied().collect();
        if !lost.is_empty() {
            let n = state.unload(&lost, partitions);
            tracing::info!(topic = self.topic, partitions = ?lost, keys = n, "no longer coordinating these partitions");
            led.retain(|p| !lost.contains(p));
        }
        let mut replayed = Vec::new();
        for index in gained {
            match self.replay_partition(&mut state, index) {
                Ok(n) => {
                    tracing::info!(
                        topic = self.topic,
                        partition = index,
                        records = n,
                        "coordinating partition"
                    );
                    led.insert(index);
                    replayed.push(index);
                }
                Err(e) => {
                    tracing::error!(topic = self.topic, partition = index, error = %e, "cannot load coordinator partition");
                }
            }
        }
        replayed
    }

    /// Rebuilds partition `index` from its log after a failed write left the state
    /// ahead of it; if that fails too the partition is no longer led.
    pub fn reload(&self, state: &mut S, image: &MetadataImage, index: i32) {
        let partitions = self.partition_count(image);
        state.unload(&BTreeSet::from([index]), partitions);
        if let Err(e) = self.replay_partition(state, index) {
            tracing::error!(topic = self.topic, partition = index, error = %e, "cannot reload coordinator partition");
            self.led.lock().remove(&index);
        }
    }

    fn replay_partition(&self, state: &mut S, index: i32) -> Result<usize, ApiError> {
        let Some(partition) = self.replicas.get(self.topic, index) else {
            return Ok(0);
        };
        let mut replayed = 0;
        replay(&partition, |batch| replayed += state.replay(index, batch))?;
        Ok(replayed)
    }

    /// The local replica of partition `index`.
    pub fn partition(&self, index: i32) -> Result<Arc<Partition>, ApiError> {
        self.replicas.get(self.topic, index).ok_or_else(|| {
            ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("{} is not loaded", self.topic),
            )
        })
    }

    /// Appends records to partition `index`; returns the partition and the last append.
    pub fn append(
        &self,
        index: i32,
        records: &[Keyed],
        producer: ProducerInfo,
    ) -> Result<Option<Written>, ApiError> {
        if records.is_empty() {
            return Ok(None);
        }
        let partition = self.partition(index)?;
        let (_, last) = append_keyed(&partition, records, producer)?;
        Ok(last.map(|a| (partition, a)))
    }
}

/// Runs the fsync `flush.messages` asked of a coordinator's append, on the blocking
/// pool, before the append is acknowledged (see [`Appended::sync_due`]).
pub async fn flush_written(written: &Option<Written>) -> Result<(), ApiError> {
    match written {
        Some((partition, appended)) => partition.flush_appended(appended).await.map_err(storage),
        None => Ok(()),
    }
}

/// Appends `(key, value)` records to `partition` in batches of at most `BATCH_BYTES`,
/// with the producer fields given; returns the offset of the first record and the last
/// append.
fn append_keyed(
    partition: &Partition,
    records: &[Keyed],
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
        // One fsync up to the last batch covers every earlier one.
        let sync_due = appended.sync_due || last.is_some_and(|l: Appended| l.sync_due);
        last = Some(Appended {
            sync_due,
            ..appended
        });
        start = end;
    }
    Ok((first_offset.unwrap_or_else(|| partition.offsets().1), last))
}

/// Reads `partition` from its log start to its end and calls `visit` for every batch in
/// order (records before the log start offset left out). A batch whose records do not
/// decode is skipped with an ERROR log, and framing that cannot be walked ends the replay
/// there: a damaged record costs that record, never the coordinator (nor the broker's
/// start).
fn replay(partition: &Partition, mut visit: impl FnMut(Replayed<'_>)) -> Result<(), ApiError> {
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
            let (header, range) = match item {
                Ok(item) => item,
                Err(e) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, offset = next, error = %e, "cannot walk the batches of a coordinator log; replayed up to here");
                    return Ok(());
                }
            };
            next = header.next_offset();
            if header.last_offset() < offset {
                continue;
            }
            if header.is_control() {
                visit(Replayed::Control(&header, &bytes[range]));
                continue;
            }
            let mut records = match decode_batches(bytes.slice(range)) {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, base_offset = header.base_offset, last_offset = header.last_offset(), error = %e, "skipping a coordinator batch that does not decode");
                    continue;
                }
            };
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
