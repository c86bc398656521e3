//! Building and reading whole record batches, for Brook's own client tools and tests.
//! The broker's data path never decodes records; it uses [`crate::batch`].

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thiserror::Error;

use crate::batch::Compression;
use crate::compression::{kp_compressor, kp_decompress, to_kp};

#[derive(Debug, Error)]
#[error("record codec: {0}")]
pub struct RecordsError(#[from] pub anyhow::Error);

/// A record as a producer sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

/// A record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub log_append_time: bool,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Idempotent-producer fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Part of a transaction (the batch's transactional attribute).
    pub transactional: bool,
}

impl ProducerInfo {
    pub const NONE: ProducerInfo = ProducerInfo {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        transactional: false,
    };
}

/// Encodes a transaction marker: a control batch whose one record says COMMIT or ABORT
/// for `producer_id` (Kafka's `EndTransactionMarker`: key `i16 version 0, i16 type`,
/// value `i16 version 0, i32 coordinator epoch`).
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Result<BytesMut, RecordsError> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(i16::from(commit));
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = KpRecord {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: kafka_protocol::records::Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options)?;
    if buf.len() >= crate::batch::BATCH_HEADER_LEN {
        buf[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crate::batch::compute_crc(&buf);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(buf)
}

/// Encodes one v2 batch with base offset 0 and no producer id.
pub fn encode_batch(
    records: &[Record],
    compression: Compression,
) -> Result<BytesMut, RecordsError> {
    encode_batch_with(records, compression, ProducerInfo::NONE)
}

/// Encodes one v2 batch with base offset 0 and the given producer fields.
pub fn encode_batch_with(
    records: &[Record],
    compression: Compression,
    producer: ProducerInfo,
) -> Result<BytesMut, RecordsError> {
    encode_batch_at(records, compression, None, producer)
}

/// [`encode_batch_with`] compressing at `level` (see [`crate::compression::compress_at`]).
pub fn encode_batch_at(
    records: &[Record],
    compression: Compression,
    level: Option<i32>,
    producer: ProducerInfo,
) -> Result<BytesMut, RecordsError> {
    let kp: Vec<KpRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| KpRecord {
            transactional: producer.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder groups records whose offset-minus-sequence is constant.
            sequence: producer.base_sequence.max(0).wrapping_add(i as i32),
            timestamp: r.timestamp_ms,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: to_kp(compression),
    };
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        &kp,
        &options,
        Some(kp_compressor(level)),
    )?;
    if producer.base_sequence < 0 && buf.len() >= crate::batch::BATCH_HEADER_LEN {
        buf[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crate::batch::compute_crc(&buf);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(buf)
}

/// Decodes every whole batch in `data` (a partial batch at the end, as fetch responses
/// may carry, is ignored), skipping control records.
pub fn decode_batches(data: Bytes) -> Result<Vec<ConsumedRecord>, RecordsError> {
    let mut out = Vec::new();
    let mut rest = data;
    for item in crate::batch::BatchIter::new(&rest.clone()) {
        let Ok((_, range)) = item else { break };
        let mut one = rest.slice(range.clone());
        let set =
            RecordBatchDecoder::decode_with_custom_compression(&mut one, Some(kp_decompress))?;
        for r in set.records {
            if r.control {
                continue;
            }
            out.push(ConsumedRecord {
                offset: r.offset,
                timestamp_ms: r.timestamp,
                log_append_time: r.timestamp_type == TimestampType::LogAppend,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_string(), v))
                    .collect(),
            });
        }
    }
    rest.clear();
    Ok(out)
}

/// Re-encodes every batch of a produce request whose codec is not `target` (a topic's
/// `compression.type`), keeping its records, timestamps, headers and producer fields
/// (id, epoch, base sequence, transactional); batches already in `target`, and control
/// batches (which validation refuses), are kept as they are. Decompression is bounded.
pub fn recompress(
    request: &[u8],
    target: Compression,
    level: Option<i32>,
) -> Result<Bytes, RecordsError> {
    let mut out = BytesMut::with_capacity(request.len());
    for item in crate::batch::BatchIter::new(request) {
        let (header, range) = item.map_err(|e| RecordsError(anyhow::anyhow!(e)))?;
        if header.compression() == target || header.is_control() {
            out.extend_from_slice(&request[range]);
            continue;
        }
        let records: Vec<Record> = decode_batches(Bytes::copy_from_slice(&request[range]))?
            .into_iter()
            .map(|r| Record {
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp_ms: r.timestamp_ms,
            })
            .collect();
        let producer = ProducerInfo {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            transactional: header.is_transactional(),
        };
        out.extend_from_slice(&encode_batch_at(&records, target, level, producer)?);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_record_count_is_an_error_not_an_allocation() {
        let record = Record {
            value: Some(Bytes::from_static(b"v")),
            ..Record::default()
        };
        let mut batch = encode_batch(&[record], Compression::None).unwrap();
        batch[57..61].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let crc = crate::batch::compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(decode_batches(batch.freeze()).is_err());
    }

    #[test]
    fn recompress_keeps_records_and_producer_fields() {
        let records: Vec<Record> = (0..20)
            .map(|i| Record {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'x'; i])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
                timestamp_ms: 1_000 + i as i64,
            })
            .collect();
        let producer = ProducerInfo {
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 7,
            transactional: false,
        };
        let mut request = encode_batch_with(&records, Compression::Gzip, producer)
            .unwrap()
            .to_vec();
        request.extend(encode_batch(&records[..2], Compression::Zstd).unwrap());
        let out = recompress(&request, Compression::Zstd, None).unwrap();
        let headers: Vec<_> = crate::batch::BatchIter::new(&out)
            .map(|b| b.unwrap().0)
            .collect();
        assert_eq!(headers.len(), 2);
        assert!(headers.iter().all(|h| h.compression() == Compression::Zstd));
        assert_eq!(
            (
                headers[0].producer_id,
                headers[0].producer_epoch,
                headers[0].base_sequence
            ),
            (42, 3, 7)
        );
        assert_eq!(headers[0].record_count, 20);
        for item in crate::batch::BatchIter::new(&out) {
            let (_, range) = item.unwrap();
            crate::batch::verify_crc(&out[range]).unwrap();
        }
        let back = decode_batches(out).unwrap();
        assert_eq!(back.len(), 22);
        assert_eq!(back[5].key, records[5].key);
        assert_eq!(back[5].timestamp_ms, 1_005);
        assert_eq!(back[5].headers, records[5].headers);
    }

    #[test]
    fn round_trip_each_codec() {
        let records: Vec<Record> = (0..50)
            .map(|i| Record {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'x'; i])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
                timestamp_ms: 5 + i as i64,
            })
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode_batch(&records, c).unwrap().freeze();
            crate::batch::verify_crc(&batch).unwrap();
            let back = decode_batches(batch).unwrap();
            assert_eq!(back.len(), 50);
            assert_eq!(back[7].value, records[7].value);
            assert_eq!(back[7].offset, 7);
            assert_eq!(back[7].headers, records[7].headers);
        }
    }
}
