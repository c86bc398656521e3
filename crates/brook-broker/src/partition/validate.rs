//! The checks a produce request's batches pass before anything is written, so that a
//! bad batch never reaches the log (followers copy the log without checking it).

use brook_protocol::batch::{self, BatchHeader, BatchIter};
use brook_protocol::record_check::{check_records, RecordRules};

use super::AppendError;
use crate::config::TopicConfig;

/// How far a compressed batch may inflate while its records are checked.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Checks every batch of a produce request before anything is written:
/// framing, magic, CRC-32C, size limit, record count, timestamps, and the records
/// themselves (count, framing, offset deltas, keys on a compacted topic), decompressing
/// compressed batches as a stream (so call it on the blocking pool for those).
pub(super) fn validate(
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
        batch::verify_crc(&records[range.clone()])?;
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
        if h.is_transactional() && !h.has_producer_id() {
            return Err(AppendError::InvalidRecord(
                "transactional batches carry a producer id",
            ));
        }
        let rules = RecordRules {
            require_keys: config.compacted,
            max_decompressed_bytes: MAX_DECOMPRESSED_BATCH_BYTES,
        };
        check_records(&records[range], &h, &rules)?;
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

#[cfg(test)]
mod tests {
    use brook_protocol::batch::Compression;
    use brook_protocol::records::{encode_batch, encode_marker, Record};
    use bytes::Bytes;

    use super::*;
    use crate::config::BrokerConfig;

    const NOW: i64 = 1_700_000_000_000;

    fn config() -> TopicConfig {
        BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None)
            .topic_config(&Default::default(), crate::config::Dynamic::none())
    }

    fn batch(n: usize, timestamp_ms: i64) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|_| Record {
                value: Some(Bytes::from_static(b"v")),
                timestamp_ms,
                ..Record::default()
            })
            .collect();
        encode_batch(&records, Compression::None).unwrap().to_vec()
    }

    #[test]
    fn accepts_well_formed_batches() {
        let mut two = batch(3, NOW);
        two.extend(batch(1, NOW));
        let headers = validate(&two, &config(), NOW).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].record_count, 3);
    }

    #[test]
    fn refuses_what_must_not_reach_the_log() {
        let config = config();
        assert!(matches!(
            validate(&[], &config, NOW),
            Err(AppendError::InvalidRecord(_))
        ));
        let mut corrupt = batch(1, NOW);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            validate(&corrupt, &config, NOW),
            Err(AppendError::Corrupt(_))
        ));
        let marker = encode_marker(7, 0, true, 0, NOW).unwrap();
        assert!(matches!(
            validate(&marker, &config, NOW),
            Err(AppendError::InvalidRecord(_))
        ));
        let small = TopicConfig {
            max_message_bytes: 10,
            ..config.clone()
        };
        assert!(matches!(
            validate(&batch(1, NOW), &small, NOW),
            Err(AppendError::TooLarge { limit: 10, .. })
        ));
    }

    #[test]
    fn timestamps_outside_the_accepted_range() {
        let config = TopicConfig {
            timestamp_before_max_ms: 1_000,
            timestamp_after_max_ms: 1_000,
            ..config()
        };
        assert!(validate(&batch(1, NOW - 1_000), &config, NOW).is_ok());
        assert!(matches!(
            validate(&batch(1, NOW - 1_001), &config, NOW),
            Err(AppendError::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            validate(&batch(1, NOW + 1_001), &config, NOW),
            Err(AppendError::InvalidTimestamp { .. })
        ));
        // Broker time replaces the producer's: nothing to check.
        let append_time = TopicConfig {
            log_append_time: true,
            ..config
        };
        assert!(validate(&batch(1, 0), &append_time, NOW).is_ok());
    }
}
