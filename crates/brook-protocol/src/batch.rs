//! A zero-copy view of a Kafka v2 record batch (magic 2).
//!
//! Layout of the 61-byte header (big-endian):
//!
//! | offset | field                | covered by CRC |
//! |-------:|----------------------|----------------|
//! |      0 | baseOffset i64       | no             |
//! |      8 | batchLength i32      | no             |
//! |     12 | partitionLeaderEpoch | no             |
//! |     16 | magic i8             | no             |
//! |     17 | crc u32 (CRC-32C)    | no             |
//! |     21 | attributes i16       | yes ...        |
//! |     23 | lastOffsetDelta i32  |                |
//! |     27 | baseTimestamp i64    |                |
//! |     35 | maxTimestamp i64     |                |
//! |     43 | producerId i64       |                |
//! |     51 | producerEpoch i16    |                |
//! |     53 | baseSequence i32     |                |
//! |     57 | recordCount i32      | ... to the end |
//!
//! Because base offset and leader epoch sit outside the CRC, the broker assigns offsets
//! by overwriting those bytes and never re-encodes records.

use thiserror::Error;

pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s count starts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;
const CRC_START: usize = 21;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;
/// The base timestamp holds the batch's delete horizon (KIP-534): set by the log
/// cleaner on batches with tombstones or on transaction markers; record timestamps stay
/// deltas from it.
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Producer id meaning "not idempotent".
pub const NO_PRODUCER_ID: i64 = -1;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("record batch length {0} is invalid")]
    BadLength(i32),
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    BadMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error(
        "record batch has invalid record count {count} for last offset delta {last_offset_delta}"
    )]
    BadCount { count: i32, last_offset_delta: i32 },
    #[error("control batch without a readable control record")]
    BadControlRecord,
}

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The parsed fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf`; checks lengths and magic, not the CRC.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                need: BATCH_HEADER_LEN,
                have: buf.len(),
            });
        }
        let batch_length = i32_at(buf, 8);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(batch_length));
        }
        let magic = buf[16] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        let header = BatchHeader {
            base_offset: i64_at(buf, 0),
            batch_length,
            partition_leader_epoch: i32_at(buf, 12),
            magic,
            crc: u32::from_be_bytes(buf[17..21].try_into().expect("4 bytes")),
            attributes: i16_at(buf, 21),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, 35),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16_at(buf, 51),
            base_sequence: i32_at(buf, 53),
            record_count: i32_at(buf, 57),
        };
        if header.record_count < 0 || header.last_offset_delta < 0 {
            return Err(BatchError::BadCount {
                count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    /// Size of the whole batch on the wire / on disk, prefix included.
    pub fn total_size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    /// Sequence number of the batch's last record (wrapping as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
    pub fn compression(&self) -> Compression {
        match self.attributes & ATTR_COMPRESSION_MASK {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => Compression::None,
        }
    }
    pub fn compression_bits_valid(&self) -> bool {
        (self.attributes & ATTR_COMPRESSION_MASK) <= 4
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// When the cleaner may remove this batch's tombstones (or, for a transaction
    /// marker, the marker): set by the first cleaning pass that reached it.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }
}

/// Computes the CRC-32C a v2 batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Checks the batch's stored CRC against its content. `batch` must be one whole batch.
pub fn verify_crc(batch: &[u8]) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let computed = compute_crc(&batch[..header.total_size().min(batch.len())]);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Writes base offset and leader epoch in place (both outside the CRC).
pub fn stamp(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with the broker's clock and refreshes the CRC,
/// as Kafka does for topics with `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16_at(batch, 21) | ATTR_LOG_APPEND_TIME;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The kind of a control batch's record (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
    /// Any other type (leader change markers, snapshot markers): not a transaction marker.
    Other(i16),
}

fn varint_at(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// The type of the (single) record of a control batch: its key is `i16 version, i16
/// type`. `batch` is one whole batch; control batches are never compressed.
pub fn control_type(batch: &[u8]) -> Result<ControlType, BatchError> {
    let malformed = BatchError::BadControlRecord;
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() || header.record_count < 1 || header.compression() != Compression::None
    {
        return Err(malformed);
    }
    let body = &batch[BATCH_HEADER_LEN..header.total_size().min(batch.len())];
    let mut pos = 0;
    let _length = varint_at(body, &mut pos).ok_or(malformed.clone())?;
    pos += 1; // attributes
    let _timestamp_delta = varint_at(body, &mut pos).ok_or(malformed.clone())?;
    let _offset_delta = varint_at(body, &mut pos).ok_or(malformed.clone())?;
    let key_len = varint_at(body, &mut pos).ok_or(malformed.clone())?;
    if key_len < 4 || body.len() < pos + 4 {
        return Err(malformed);
    }
    Ok(match i16_at(body, pos + 2) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    })
}

/// The prefix of `buf` made of whole, well-formed batches: a fetch response may end
/// with a batch the sender cut at its size limit.
pub fn whole_batches(buf: &[u8]) -> &[u8] {
    let mut iter = BatchIter::new(buf);
    while let Some(Ok(_)) = iter.next() {}
    &buf[..iter.position()]
}

/// Iterates over the whole batches in `buf`, yielding `(header, byte range)`.
/// Stops with an error at the first malformed or truncated batch.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }
    /// Bytes consumed by the batches yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, std::ops::Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let size = header.total_size();
        if size > rest.len() {
            return Some(Err(BatchError::Truncated {
                need: size,
                have: rest.len(),
            }));
        }
        let range = self.pos..self.pos + size;
        self.pos += size;
        Some(Ok((header, range)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::records::{encode_batch, Record};

    pub fn sample(n: usize) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                key: Some(format!("k{i}").into_bytes().into()),
                value: Some(format!("value-{i}").into_bytes().into()),
                headers: vec![],
                timestamp_ms: 1_000 + i as i64,
            })
            .collect();
        encode_batch(&records, crate::batch::Compression::None)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn parse_and_verify() {
        let b = sample(3);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.max_timestamp, 1_002);
        verify_crc(&b).unwrap();
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let mut b = sample(2);
        stamp(&mut b, 42, 7);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.last_offset()),
            (42, 7, 43)
        );
        verify_crc(&b).unwrap();
        set_log_append_time(&mut b, 99);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99);
        verify_crc(&b).unwrap();
    }

    #[test]
    fn corruption_detected() {
        let mut b = sample(2);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(verify_crc(&b), Err(BatchError::BadCrc { .. })));
        let mut b = sample(1);
        b[16] = 1;
        assert_eq!(BatchHeader::parse(&b), Err(BatchError::BadMagic(1)));
        assert!(matches!(
            BatchHeader::parse(&b[..10]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn markers_round_trip() {
        for commit in [true, false] {
            let b = crate::records::encode_marker(77, 3, commit, 9, 1_234).unwrap();
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (77, 3, -1)
            );
            assert_eq!(h.record_count, 1);
            verify_crc(&b).unwrap();
            let want = if commit {
                ControlType::Commit
            } else {
                ControlType::Abort
            };
            assert_eq!(control_type(&b), Ok(want));
        }
        // A data batch, and any truncation of a marker, is refused without panicking.
        assert!(control_type(&sample(1)).is_err());
        let b = crate::records::encode_marker(1, 0, true, 0, 0).unwrap();
        for cut in 0..b.len() {
            let _ = control_type(&b[..cut]);
        }
    }

    #[test]
    fn iterates_and_stops_at_torn_tail() {
        let mut buf = sample(2);
        buf.extend(sample(3));
        let full = buf.len();
        buf.extend(&sample(1)[..20]);
        let mut it = BatchIter::new(&buf);
        assert_eq!(it.next().unwrap().unwrap().0.record_count, 2);
        assert_eq!(it.next().unwrap().unwrap().0.record_count, 3);
        assert_eq!(it.position(), full);
        assert!(it.next().unwrap().is_err());
    }
}
