//! Records of the internal compacted topic `__transaction_state`: one key per
//! transactional id, whose value is the id's whole state (as Kafka's
//! `TransactionLogValue`), so the last record of an id is all a restart needs.
//!
//! The encoding is Brook's own (not Kafka's), versioned so it can evolve, and built from
//! the same primitives as `__consumer_offsets` records. Everything is big-endian.
//!
//! ```text
//! string   = i32 length, UTF-8 bytes
//!
//! key      = i16 key type (3 = transaction state; 1 and 2 are the key types of
//!            __consumer_offsets, so a record in the wrong topic is rejected),
//!            string transactional id
//!
//! value    = i16 value version (0),
//!            i64 producer id, i64 last producer id (-1 = none),
//!            i16 producer epoch, i16 last producer epoch (-1 = none),
//!            i32 transaction timeout ms,
//!            i16 state (0 Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort,
//!                       4 CompleteCommit, 5 CompleteAbort),
//!            i64 transaction start ms (-1 = none), i64 last update ms,
//!            i32 topic count, and per topic (in name order, each once):
//!              string topic, i32 partition count, i32 partition... (ascending)
//!
//! A missing value (None) is a tombstone: the id expired, compaction removes the key.
//! ```
//!
//! Keys are canonical (compaction compares their bytes), so a key with trailing bytes is
//! rejected. A value may carry trailing bytes, which this version ignores: a later
//! version may append fields without breaking older readers. A value that contradicts
//! itself (a negative producer id or epoch, partitions in a state without a transaction
//! in flight) is rejected rather than loaded.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::metadata::{TxnMetadata, TxnState};
use crate::records::{len_i32, put_string, Reader, RecordError};

const TRANSACTION_KEY: i16 = 3;
const VALUE_VERSION: i16 = 0;
const NO_TIMESTAMP: i64 = -1;

/// A record for `__transaction_state`: key bytes and value bytes (None = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Why a `__transaction_state` record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    #[error(transparent)]
    Malformed(#[from] RecordError),
    #[error("unknown transaction state {0}")]
    UnknownState(i16),
    #[error("inconsistent transaction state: {0}")]
    Inconsistent(&'static str),
}

impl TxnRecord {
    /// The whole current state of `transactional_id`.
    pub(crate) fn state(transactional_id: &str, meta: &TxnMetadata) -> Self {
        TxnRecord {
            key: key(transactional_id),
            value: Some(encode_value(meta)),
        }
    }

    /// `transactional_id` expired.
    pub(crate) fn tombstone(transactional_id: &str) -> Self {
        TxnRecord {
            key: key(transactional_id),
            value: None,
        }
    }

    /// The transactional id the record belongs to: what the broker partitions
    /// `__transaction_state` by (Kafka maps an id to partition `hash(id) % partitions`).
    /// None when the key cannot be read.
    pub fn transactional_id(&self) -> Option<String> {
        decode_key(&self.key).ok()
    }

    /// Decodes the key and, unless this is a tombstone, the value.
    pub(crate) fn decode(&self) -> Result<(String, Option<TxnMetadata>), TxnRecordError> {
        let id = decode_key(&self.key)?;
        let value = match &self.value {
            None => None,
            Some(bytes) => Some(decode_value(bytes)?),
        };
        Ok((id, value))
    }
}

fn key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + 4 + transactional_id.len());
    buf.put_i16(TRANSACTION_KEY);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

fn encode_value(meta: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VALUE_VERSION);
    buf.put_i64(meta.producer_id);
    buf.put_i64(meta.last_producer_id);
    buf.put_i16(meta.producer_epoch);
    buf.put_i16(meta.last_producer_epoch);
    buf.put_i32(meta.timeout_ms);
    buf.put_i16(meta.state.id());
    buf.put_i64(meta.txn_start_ms.unwrap_or(NO_TIMESTAMP));
    buf.put_i64(meta.last_update_ms);
    let topics = by_topic(&meta.partitions);
    buf.put_i32(len_i32(topics.len()));
    for (topic, partitions) in topics {
        put_string(&mut buf, topic);
        buf.put_i32(len_i32(partitions.len()));
        for partition in partitions {
            buf.put_i32(partition);
        }
    }
    buf.freeze()
}

/// The partitions grouped by topic, topics and partitions in ascending order (the order
/// of the set).
pub(crate) fn by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some((last, indexes)) if *last == topic.as_str() => indexes.push(*partition),
            _ => topics.push((topic.as_str(), vec![*partition])),
        }
    }
    topics
}

fn decode_key(bytes: &[u8]) -> Result<String, RecordError> {
    let mut reader = Reader::new(bytes);
    let id = match reader.i16()? {
        TRANSACTION_KEY => reader.string()?,
        other => return Err(RecordError::UnknownKeyType(other)),
    };
    match reader.remaining() {
        0 => Ok(id),
        n => Err(RecordError::TrailingKeyBytes(n)),
    }
}

fn decode_value(bytes: &[u8]) -> Result<TxnMetadata, TxnRecordError> {
    let mut reader = Reader::new(bytes);
    match reader.i16()? {
        VALUE_VERSION => {}
        other => return Err(RecordError::UnknownValueVersion(other).into()),
    }
    let producer_id = reader.i64()?;
    let last_producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let last_producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let state_id = reader.i16()?;
    let state = TxnState::from_id(state_id).ok_or(TxnRecordError::UnknownState(state_id))?;
    let txn_start_ms = reader.i64()?;
    let last_update_ms = reader.i64()?;
    let topic_count = reader.length()?;
    // No pre-allocation from an untrusted count: the loops fail on truncation first.
    let mut partitions = BTreeSet::new();
    for _ in 0..topic_count {
        let topic = reader.string()?;
        let partition_count = reader.length()?;
        for _ in 0..partition_count {
            let partition = reader.i32()?;
            if partition < 0 {
                return Err(TxnRecordError::Inconsistent("negative partition"));
            }
            partitions.insert((topic.clone(), partition));
        }
    }
    if producer_id < 0 || producer_epoch < 0 {
        return Err(TxnRecordError::Inconsistent(
            "negative producer id or epoch",
        ));
    }
    if !partitions.is_empty() && !state.holds_partitions() {
        return Err(TxnRecordError::Inconsistent(
            "partitions without a transaction in flight",
        ));
    }
    Ok(TxnMetadata {
        producer_id,
        last_producer_id,
        producer_epoch,
        last_producer_epoch,
        timeout_ms,
        state,
        partitions,
        txn_start_ms: (txn_start_ms >= 0).then_some(txn_start_ms),
        last_update_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: TxnState, partitions: &[(&str, i32)]) -> TxnMetadata {
        TxnMetadata {
            producer_id: 4_000,
            last_producer_id: 3_999,
            producer_epoch: 7,
            last_producer_epoch: 6,
            timeout_ms: 60_000,
            state,
            partitions: partitions
                .iter()
                .map(|(t, p)| ((*t).to_owned(), *p))
                .collect(),
            txn_start_ms: Some(1_000),
            last_update_ms: 2_000,
        }
    }

    #[test]
    fn every_state_round_trips() {
        let cases = [
            meta(TxnState::Empty, &[]),
            TxnMetadata {
                txn_start_ms: None,
                last_producer_id: -1,
                last_producer_epoch: -1,
                ..meta(TxnState::Empty, &[])
            },
            meta(TxnState::Ongoing, &[("b", 1), ("a", 2), ("a", 0), ("é", 9)]),
            meta(TxnState::PrepareCommit, &[("t", 0)]),
            meta(TxnState::PrepareAbort, &[("t", 0), ("u", 3)]),
            meta(TxnState::CompleteCommit, &[]),
            meta(TxnState::CompleteAbort, &[]),
            TxnMetadata {
                producer_epoch: i16::MAX,
                ..meta(TxnState::PrepareAbort, &[("t", i32::MAX)])
            },
        ];
        for value in cases {
            let record = TxnRecord::state("my-txn", &value);
            assert_eq!(record.decode(), Ok(("my-txn".to_owned(), Some(value))));
            assert_eq!(record.transactional_id().as_deref(), Some("my-txn"));
        }
        let tombstone = TxnRecord::tombstone("");
        assert_eq!(tombstone.decode(), Ok((String::new(), None)));
        assert_eq!(tombstone.transactional_id().as_deref(), Some(""));
    }

    #[test]
    fn the_same_id_has_the_same_key() {
        let a = TxnRecord::tombstone("id");
        let b = TxnRecord::state("id", &meta(TxnState::Empty, &[]));
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, TxnRecord::tombstone("id2").key);
    }

    #[test]
    fn partitions_are_grouped_by_topic() {
        let value = meta(TxnState::Ongoing, &[("b", 1), ("a", 2), ("a", 0)]);
        assert_eq!(
            by_topic(&value.partitions),
            vec![("a", vec![0, 2]), ("b", vec![1])]
        );
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let good = TxnRecord::state("txn", &meta(TxnState::Ongoing, &[("t", 0), ("u", 1)]));
        let value = good.value.clone().unwrap();
        // Every truncation of the key and of the value fails cleanly.
        for cut in 0..good.key.len() {
            let record = TxnRecord {
                key: good.key.slice(..cut),
                value: None,
            };
            assert!(record.decode().is_err(), "key cut at {cut}");
            assert_eq!(record.transactional_id(), None);
        }
        for cut in 0..value.len() {
            let record = TxnRecord {
                key: good.key.clone(),
                value: Some(value.slice(..cut)),
            };
            assert!(record.decode().is_err(), "value cut at {cut}");
        }
        // Flipping any single byte never panics (it may still decode).
        for at in 0..value.len() {
            let mut bytes = value.to_vec();
            bytes[at] ^= 0xff;
            let _ = TxnRecord {
                key: good.key.clone(),
                value: Some(Bytes::from(bytes)),
            }
            .decode();
        }
    }

    #[test]
    fn garbage_is_rejected_with_the_reason() {
        let value_of = |m: &TxnMetadata| encode_value(m).to_vec();
        let with_state = |state_id: i16| {
            let mut bytes = value_of(&meta(TxnState::Empty, &[]));
            // version (2) + ids (16) + epochs (4) + timeout (4) = 26: the state.
            bytes[26..28].copy_from_slice(&state_id.to_be_bytes());
            bytes
        };
        let key = key("t").to_vec();
        type Case = (Vec<u8>, Option<Vec<u8>>, TxnRecordError);
        let cases: Vec<Case> = vec![
            (
                vec![0, 1, 0, 0, 0, 0],
                None,
                RecordError::UnknownKeyType(1).into(),
            ),
            (
                [key.clone(), vec![0]].concat(),
                None,
                RecordError::TrailingKeyBytes(1).into(),
            ),
            (
                vec![0, 3, 0xff, 0xff, 0xff, 0xff],
                None,
                RecordError::InvalidLength { at: 2, length: -1 }.into(),
            ),
            (
                vec![0, 3, 0, 0, 0, 1, 0xff],
                None,
                RecordError::InvalidUtf8 { at: 6 }.into(),
            ),
            (
                key.clone(),
                Some(vec![0, 1]),
                RecordError::UnknownValueVersion(1).into(),
            ),
            (
                key.clone(),
                Some(with_state(6)),
                TxnRecordError::UnknownState(6),
            ),
            (
                key.clone(),
                Some(with_state(-1)),
                TxnRecordError::UnknownState(-1),
            ),
            (
                key.clone(),
                Some(value_of(&TxnMetadata {
                    producer_id: -1,
                    ..meta(TxnState::Empty, &[])
                })),
                TxnRecordError::Inconsistent("negative producer id or epoch"),
            ),
            (
                key.clone(),
                Some(value_of(&TxnMetadata {
                    producer_epoch: -1,
                    ..meta(TxnState::Empty, &[])
                })),
                TxnRecordError::Inconsistent("negative producer id or epoch"),
            ),
            (
                key.clone(),
                Some(value_of(&meta(TxnState::CompleteCommit, &[("t", 0)]))),
                TxnRecordError::Inconsistent("partitions without a transaction in flight"),
            ),
            (
                key.clone(),
                Some(value_of(&meta(TxnState::Ongoing, &[("t", -3)]))),
                TxnRecordError::Inconsistent("negative partition"),
            ),
        ];
        for (key, value, error) in cases {
            let record = TxnRecord {
                key: Bytes::from(key),
                value: value.map(Bytes::from),
            };
            assert_eq!(record.decode(), Err(error));
        }
    }

    #[test]
    fn values_may_grow_at_the_end() {
        let good = TxnRecord::state("txn", &meta(TxnState::PrepareCommit, &[("t", 4)]));
        let mut longer = BytesMut::from(&good.value.clone().unwrap()[..]);
        longer.put_slice(b"future field");
        let record = TxnRecord {
            key: good.key.clone(),
            value: Some(longer.freeze()),
        };
        assert_eq!(record.decode(), good.decode());
    }

    #[test]
    fn offsets_records_are_not_transaction_records() {
        let offsets = crate::records::OffsetsRecord {
            key: Bytes::from_static(&[0, 2, 0, 0, 0, 1, b'g']),
            value: None,
        };
        let record = TxnRecord {
            key: offsets.key,
            value: None,
        };
        assert_eq!(record.decode(), Err(RecordError::UnknownKeyType(2).into()));
    }
}
