//! What the log cleaner needs from record batches: each record's offset and key, a
//! batch re-encoded with only some of its records (offsets, producer fields, leader
//! epoch, timestamps and codec kept), and empty batches that keep a cleaned log's
//! offsets dense where whole batches were removed.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

use crate::batch::{compute_crc, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};
use crate::compression::{kp_compressor, kp_decompress, to_kp};
use crate::records::RecordsError;

/// One record as the cleaner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRecord {
    pub offset: i64,
    pub key: Option<Bytes>,
    /// A null value: a tombstone when it has a key.
    pub tombstone: bool,
}

fn decode(batch: &[u8]) -> Result<Vec<kafka_protocol::records::Record>, RecordsError> {
    let mut buf = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(kp_decompress))?;
    Ok(set.records)
}

/// The records of one data batch (decompressed, bounded like every decompression).
pub fn keyed_records(batch: &[u8]) -> Result<Vec<KeyedRecord>, RecordsError> {
    Ok(decode(batch)?
        .into_iter()
        .filter(|r| !r.control)
        .map(|r| KeyedRecord {
            offset: r.offset,
            tombstone: r.value.is_none(),
            key: r.key,
        })
        .collect())
}

/// What [`retain`] made of a batch.
#[derive(Debug)]
pub enum Retained {
    /// Every record stays: keep the batch's bytes as they are.
    All,
    /// No record stays.
    None,
    /// A new batch holding the records that stay, at their offsets (from the first
    /// kept to the last kept), in the original codec.
    Some(BytesMut),
}

/// Re-encodes `batch` with the records `keep` accepts. Offsets, sequence numbers,
/// producer id and epoch, the transactional flag, leader epoch, timestamps and the
/// timestamp type are those of the original; a batch that had no sequence (-1) keeps
/// none.
pub fn retain(
    batch: &[u8],
    mut keep: impl FnMut(&KeyedRecord) -> bool,
) -> Result<Retained, RecordsError> {
    let header = BatchHeader::parse(batch).map_err(|e| RecordsError(anyhow::anyhow!(e)))?;
    let records = decode(batch)?;
    let total = records.len();
    let kept: Vec<_> = records
        .into_iter()
        .filter(|r| {
            keep(&KeyedRecord {
                offset: r.offset,
                key: r.key.clone(),
                tombstone: r.value.is_none(),
            })
        })
        .collect();
    if kept.len() == total {
        return Ok(Retained::All);
    }
    if kept.is_empty() {
        return Ok(Retained::None);
    }
    let options = RecordEncodeOptions {
        version: 2,
        compression: to_kp(header.compression()),
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut out,
        &kept,
        &options,
        Some(kp_compressor(None)),
    )?;
    let encoded = BatchHeader::parse(&out).map_err(|e| RecordsError(anyhow::anyhow!(e)))?;
    if encoded.total_size() != out.len() {
        return Err(RecordsError(anyhow::anyhow!(
            "records of one batch re-encoded into several"
        )));
    }
    // The encoder numbers sequences from the records; a batch without one keeps none.
    if header.base_sequence < 0 {
        out[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    }
    out[12..16].copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Retained::Some(out))
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
                let Retained::Some(out) = retain(&original, |r| r.offset % 2 == 1).unwrap() else {
                    panic!("some records kept")
                };
                verify_crc(&out).unwrap();
                let h = BatchHeader::parse(&out).unwrap();
                let o = BatchHeader::parse(&original).unwrap();
                assert_eq!(h.base_offset, 101);
                assert_eq!(h.last_offset(), 105);
                assert_eq!(h.compression(), codec);
                assert_eq!(h.partition_leader_epoch, 7);
                assert_eq!(h.producer_id, o.producer_id);
                assert_eq!(
                    h.base_sequence,
                    if o.base_sequence < 0 {
                        -1
                    } else {
                        o.base_sequence + 1
                    }
                );
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
            retain(&original, |_| true).unwrap(),
            Retained::All
        ));
        assert!(matches!(
            retain(&original, |_| false).unwrap(),
            Retained::None
        ));
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
