//! What the log cleaner needs from record batches: each record's offset and key, a
//! batch re-encoded with only some of its records, and empty batches that keep a
//! cleaned log's offsets dense where whole batches were removed.
//!
//! Records are walked as raw bytes: a kept record's key, value and headers are copied
//! exactly as they were (duplicate header keys included); only its timestamp and
//! offset deltas are written again, relative to the new batch's base.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{
    compute_crc, BatchHeader, ATTR_COMPRESSION_MASK, ATTR_DELETE_HORIZON, BATCH_HEADER_LEN,
    LOG_OVERHEAD, MAGIC_V2,
};
use crate::compression::{compress, decompress};
use crate::records::RecordsError;

/// One record as the cleaner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRecord {
    pub offset: i64,
    pub key: Option<Bytes>,
    /// A null value: a tombstone when it has a key.
    pub tombstone: bool,
}

fn error(message: impl std::fmt::Display) -> RecordsError {
    RecordsError(anyhow::anyhow!("{message}"))
}

/// One record of a batch, as bytes.
struct RawRecord<'a> {
    offset: i64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    tombstone: bool,
    /// From the key's length to the end of the record (key, value, headers).
    tail: &'a [u8],
}

/// Reads a zigzag varint (Kafka's varint and varlong share the encoding).
fn varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordsError> {
    let mut z: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| error("record truncated"))?;
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err(error("varint longer than 10 bytes"))
}

/// Skips a length-prefixed field; returns it (`None` for length -1).
fn field<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, RecordsError> {
    let len = varlong(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| error("record field longer than its record"))?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(Some(bytes))
}

/// The decompressed records section of `batch` (bounded like every decompression).
fn records_section(batch: &[u8], header: &BatchHeader) -> Result<Vec<u8>, RecordsError> {
    let body = batch
        .get(BATCH_HEADER_LEN..header.total_size())
        .ok_or_else(|| error("batch shorter than its length"))?;
    decompress(header.compression(), body).map_err(error)
}

/// Splits a records section into records (exactly `header.record_count` of them).
fn raw_records<'a>(
    section: &'a [u8],
    header: &BatchHeader,
) -> Result<Vec<RawRecord<'a>>, RecordsError> {
    let count = usize::try_from(header.record_count).unwrap_or(0);
    // Each record takes at least 7 bytes: never trust the count for an allocation.
    let mut out = Vec::with_capacity(count.min(section.len() / 7));
    let mut pos = 0;
    for _ in 0..count {
        let len = varlong(section, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= section.len())
            .ok_or_else(|| error("record longer than its batch"))?;
        let record = &section[pos..end];
        pos = end;
        let mut at = 1; // attributes (unused)
        let timestamp_delta = varlong(record, &mut at)?;
        let offset_delta = varlong(record, &mut at)?;
        let tail_start = at;
        let key = field(record, &mut at)?;
        let value = field(record, &mut at)?;
        out.push(RawRecord {
            offset: header.base_offset + offset_delta,
            timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
            key,
            tombstone: value.is_none(),
            tail: &record[tail_start..],
        });
    }
    if pos != section.len() {
        return Err(error("bytes after the batch's last record"));
    }
    Ok(out)
}

/// The records of one data batch (decompressed, bounded like every decompression).
pub fn keyed_records(batch: &[u8]) -> Result<Vec<KeyedRecord>, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(error)?;
    if header.is_control() {
        return Ok(Vec::new());
    }
    let section = records_section(batch, &header)?;
    Ok(raw_records(&section, &header)?
        .into_iter()
        .map(|r| KeyedRecord {
            offset: r.offset,
            key: r.key.map(Bytes::copy_from_slice),
            tombstone: r.tombstone,
        })
        .collect())
}

/// What [`retain`] made of a batch.
#[derive(Debug)]
pub enum Retained {
    /// Every record stays and the header needs no change: keep the batch's bytes.
    All,
    /// No record stays.
    None,
    /// A new batch holding the records that stay, at their offsets, in the original
    /// codec, spanning the original's offsets.
    Some(BytesMut),
}

/// Re-encodes `batch` with the records `keep` accepts. The new batch spans the same
/// offsets as the original (its base offset and last offset delta: the records kept
/// keep their offsets, with gaps between them, as in Kafka's compacted batches); base
/// sequence, producer id and epoch, the transactional and control flags, leader epoch,
/// record timestamps, the timestamp type and each record's key, value and headers are
/// those of the original.
///
/// `delete_horizon`: when the batch has no delete horizon yet and keeps a tombstone
/// (or is a control batch), the new batch gets this one (KIP-534: its base timestamp
/// becomes the horizon and record timestamps are written as deltas from it), even if
/// every record stays. A horizon the batch already has is kept.
pub fn retain(
    batch: &[u8],
    mut keep: impl FnMut(&KeyedRecord) -> bool,
    delete_horizon: Option<i64>,
) -> Result<Retained, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(error)?;
    let section = records_section(batch, &header)?;
    let records = raw_records(&section, &header)?;
    let total = records.len();
    let kept: Vec<RawRecord<'_>> = records
        .into_iter()
        .filter(|r| {
            header.is_control()
                || keep(&KeyedRecord {
                    offset: r.offset,
                    key: r.key.map(Bytes::copy_from_slice),
                    tombstone: r.tombstone,
                })
        })
        .collect();
    if kept.is_empty() {
        return Ok(Retained::None);
    }
    let needs_horizon = header.is_control() || kept.iter().any(|r| r.tombstone && r.key.is_some());
    let horizon = header
        .delete_horizon()
        .or(delete_horizon.filter(|_| needs_horizon));
    if kept.len() == total && horizon == header.delete_horizon() {
        return Ok(Retained::All);
    }
    encode_kept(&header, &kept, horizon).map(Retained::Some)
}

/// Encodes `kept` (records of the batch `header` describes, in offset order) as one
/// batch with that header's fields.
fn encode_kept(
    header: &BatchHeader,
    kept: &[RawRecord<'_>],
    horizon: Option<i64>,
) -> Result<BytesMut, RecordsError> {
    let min_timestamp = kept.iter().map(|r| r.timestamp).min().unwrap_or(-1);
    let max_timestamp = if header.is_log_append_time() {
        header.max_timestamp
    } else {
        kept.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    };
    let base_timestamp = horizon.unwrap_or(min_timestamp);
    let mut raw = BytesMut::new();
    let mut body = BytesMut::new();
    for r in kept {
        body.clear();
        body.put_i8(0);
        put_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
        put_varlong(&mut body, r.offset - header.base_offset);
        body.put_slice(r.tail);
        put_varlong(&mut raw, body.len() as i64);
        raw.put_slice(&body);
    }
    let mut attributes = header.attributes & !ATTR_DELETE_HORIZON;
    if horizon.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    let fields = Fields {
        attributes,
        base_timestamp,
        max_timestamp,
        record_count: kept.len() as i32,
    };
    let mut out = start_batch(header, &fields, raw.len());
    compress(header.compression(), &raw, &mut out).map_err(error)?;
    finish_batch(out)
}

/// What differs from the original header in a rewritten batch.
struct Fields {
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    record_count: i32,
}

/// The 61-byte header of a batch spanning the same offsets as `original` (base
/// offset, last offset delta, producer fields and base sequence kept, as Kafka's
/// cleaner keeps them: a producer's sequence state is read from them).
fn start_batch(original: &BatchHeader, fields: &Fields, body_bytes: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + body_bytes);
    out.put_i64(original.base_offset);
    out.put_i32(0); // batch length, below
    out.put_i32(original.partition_leader_epoch);
    out.put_i8(MAGIC_V2);
    out.put_u32(0); // CRC, below
    out.put_i16(fields.attributes);
    out.put_i32(original.last_offset_delta);
    out.put_i64(fields.base_timestamp);
    out.put_i64(fields.max_timestamp);
    out.put_i64(original.producer_id);
    out.put_i16(original.producer_epoch);
    out.put_i32(original.base_sequence);
    out.put_i32(fields.record_count);
    out
}

fn finish_batch(mut out: BytesMut) -> Result<BytesMut, RecordsError> {
    let length =
        i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| error("re-encoded batch too large"))?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// A batch with the header of `original` and no records: what the cleaner keeps of a
/// producer's last batch when none of its records stay (Kafka's `RETAIN_EMPTY`), so
/// the producer's epoch and sequence survive a restart. Uncompressed.
pub fn emptied(original: &BatchHeader) -> BytesMut {
    let fields = Fields {
        attributes: original.attributes & !(ATTR_COMPRESSION_MASK | ATTR_DELETE_HORIZON),
        base_timestamp: original.max_timestamp,
        max_timestamp: original.max_timestamp,
        record_count: 0,
    };
    finish_batch(start_batch(original, &fields, 0)).expect("a header fits")
}

fn put_varlong(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// A batch with no records covering offsets `base..=last`: where the cleaner removed
/// whole batches, so the offsets of a cleaned segment stay dense (as Kafka's empty
/// batches do; consumers skip them). No producer, no timestamp.
pub fn empty_batch(base: i64, last: i64, leader_epoch: i32) -> BytesMut {
    let mut b = BytesMut::with_capacity(BATCH_HEADER_LEN);
    b.put_i64(base);
    b.put_i32((BATCH_HEADER_LEN - LOG_OVERHEAD) as i32);
    b.put_i32(leader_epoch);
    b.put_i8(MAGIC_V2);
    b.put_u32(0); // CRC, below
    b.put_i16(0); // attributes: uncompressed, create time, not transactional
    b.put_i32(i32::try_from(last - base).unwrap_or(i32::MAX));
    b.put_i64(-1); // base timestamp
    b.put_i64(-1); // max timestamp
    b.put_i64(-1); // producer id
    b.put_i16(-1); // producer epoch
    b.put_i32(-1); // base sequence
    b.put_i32(0); // record count
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{verify_crc, Compression};
    use crate::records::{decode_batches, encode_batch_with, ProducerInfo, Record};

    fn batch(codec: Compression, producer: ProducerInfo) -> BytesMut {
        let records: Vec<Record> = (0..6)
            .map(|i| Record {
                key: Some(Bytes::from(format!("k{}", i % 3))),
                value: (i != 4).then(|| Bytes::from(format!("v{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp_ms: 1_000 + i,
            })
            .collect();
        let mut b = encode_batch_with(&records, codec, producer).unwrap();
        crate::batch::stamp(&mut b, 100, 7);
        b
    }

    #[test]
    fn retain_keeps_offsets_producer_fields_and_codec() {
        for codec in [Compression::None, Compression::Zstd, Compression::Gzip] {
            for producer in [
                ProducerInfo::NONE,
                ProducerInfo {
                    producer_id: 9,
                    producer_epoch: 2,
                    base_sequence: 40,
                    transactional: false,
                },
            ] {
                let original = batch(codec, producer);
                let Retained::Some(out) = retain(&original, |r| r.offset % 2 == 1, None).unwrap()
                else {
                    panic!("some records kept")
                };
                verify_crc(&out).unwrap();
                let h = BatchHeader::parse(&out).unwrap();
                let o = BatchHeader::parse(&original).unwrap();
                assert_eq!(h.base_offset, 100, "the original's span");
                assert_eq!(h.last_offset(), 105);
                assert_eq!(h.record_count, 3);
                assert_eq!(h.compression(), codec);
                assert_eq!(h.partition_leader_epoch, 7);
                assert_eq!(h.producer_id, o.producer_id);
                assert_eq!(h.base_sequence, o.base_sequence);
                assert_eq!(h.last_sequence(), o.last_sequence());
                let got = decode_batches(out.freeze()).unwrap();
                assert_eq!(
                    got.iter().map(|r| r.offset).collect::<Vec<_>>(),
                    vec![101, 103, 105]
                );
                assert_eq!(got[0].timestamp_ms, 1_001);
                assert_eq!(got[0].headers.len(), 1);
            }
        }
        let original = batch(Compression::None, ProducerInfo::NONE);
        assert!(matches!(
            retain(&original, |_| true, None).unwrap(),
            Retained::All
        ));
        assert!(matches!(
            retain(&original, |_| false, None).unwrap(),
            Retained::None
        ));
    }

    #[test]
    fn a_delete_horizon_keeps_record_timestamps_and_contents() {
        for codec in [Compression::None, Compression::Snappy, Compression::Lz4] {
            let original = batch(codec, ProducerInfo::NONE);
            let Retained::Some(out) = retain(&original, |_| true, Some(5_000_000)).unwrap() else {
                panic!("a horizon is a change")
            };
            verify_crc(&out).unwrap();
            let h = BatchHeader::parse(&out).unwrap();
            assert_eq!(h.delete_horizon(), Some(5_000_000));
            assert_eq!(h.max_timestamp, 1_005);
            assert_eq!(
                decode_batches(out.clone().freeze()).unwrap(),
                decode_batches(original.freeze()).unwrap()
            );
            // A horizon already there stays, whatever the pass asks for.
            assert!(matches!(
                retain(&out, |_| true, Some(9)).unwrap(),
                Retained::All
            ));
            let Retained::Some(fewer) = retain(&out, |r| r.offset > 102, Some(9)).unwrap() else {
                panic!("some kept")
            };
            let f = BatchHeader::parse(&fewer).unwrap();
            assert_eq!((f.base_offset, f.delete_horizon()), (100, Some(5_000_000)));
            let got = decode_batches(fewer.freeze()).unwrap();
            assert_eq!(got[0].timestamp_ms, 1_003);
        }
    }

    #[test]
    fn records_are_copied_as_bytes_duplicate_headers_included() {
        // One uncompressed record with two headers named "h".
        let mut record = BytesMut::new();
        record.put_i8(0);
        put_varlong(&mut record, 0); // timestamp delta
        put_varlong(&mut record, 0); // offset delta
        put_varlong(&mut record, 1);
        record.put_slice(b"k");
        put_varlong(&mut record, -1); // a tombstone: the horizon makes it re-encoded
        put_varlong(&mut record, 2);
        for value in [&b"1"[..], b"2"] {
            put_varlong(&mut record, 1);
            record.put_slice(b"h");
            put_varlong(&mut record, 1);
            record.put_slice(value);
        }
        let mut b = BytesMut::new();
        b.put_i64(0);
        b.put_i32(0);
        b.put_i32(0);
        b.put_i8(MAGIC_V2);
        b.put_u32(0);
        b.put_i16(0);
        b.put_i32(0);
        b.put_i64(10);
        b.put_i64(10);
        b.put_i64(-1);
        b.put_i16(-1);
        b.put_i32(-1);
        b.put_i32(1);
        put_varlong(&mut b, record.len() as i64);
        b.put_slice(&record);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let Retained::Some(out) = retain(&b, |_| true, Some(99)).unwrap() else {
            panic!("a horizon is a change")
        };
        assert!(out.ends_with(&record[3..]), "key and both headers copied");
        assert!(matches!(retain(&b, |_| true, None).unwrap(), Retained::All));
        // Garbage in a record is an error, not a panic.
        let mut bad = b.clone();
        bad[BATCH_HEADER_LEN] = 0x7e; // the record's length: 63 bytes, more than there are
        assert!(retain(&bad, |_| true, None).is_err());
        assert!(keyed_records(&bad).is_err());
    }

    #[test]
    fn an_emptied_batch_keeps_the_producer_fields() {
        let producer = ProducerInfo {
            producer_id: 9,
            producer_epoch: 2,
            base_sequence: 40,
            transactional: true,
        };
        let original = batch(Compression::Zstd, producer);
        let o = BatchHeader::parse(&original).unwrap();
        let e = emptied(&o);
        verify_crc(&e).unwrap();
        let h = BatchHeader::parse(&e).unwrap();
        assert_eq!(h.total_size(), BATCH_HEADER_LEN);
        assert_eq!(
            (h.base_offset, h.last_offset()),
            (o.base_offset, o.last_offset())
        );
        assert_eq!((h.producer_id, h.producer_epoch), (9, 2));
        assert_eq!(h.last_sequence(), o.last_sequence());
        assert!(h.is_transactional());
        assert_eq!((h.record_count, h.compression()), (0, Compression::None));
        assert!(decode_batches(e.freeze()).unwrap().is_empty());
    }

    #[test]
    fn keyed_records_see_tombstones() {
        let original = batch(Compression::Lz4, ProducerInfo::NONE);
        let records = keyed_records(&original).unwrap();
        assert_eq!(records.len(), 6);
        assert_eq!(records[4].offset, 104);
        assert!(records[4].tombstone);
        assert_eq!(records[4].key.as_deref(), Some(&b"k1"[..]));
    }

    #[test]
    fn an_empty_batch_is_a_valid_batch_spanning_its_offsets() {
        let b = empty_batch(10, 19, 3);
        verify_crc(&b).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.next_offset(), h.record_count),
            (10, 20, 0)
        );
        assert_eq!(h.total_size(), BATCH_HEADER_LEN);
        assert!(decode_batches(b.freeze()).unwrap().is_empty());
    }
}
