//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges of its last few batches, to drop duplicates and detect gaps.
//!
//! The state is rebuilt at start-up from the batch headers in the log, so it survives
//! restarts without a snapshot file of its own.

use std::collections::{HashMap, VecDeque};

use brook_protocol::batch::BatchHeader;

/// Kafka keeps the last five batches per producer (`max.in.flight.requests.per.connection` ≤ 5).
pub const BATCHES_KEPT_PER_PRODUCER: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// The outcome of checking a batch's sequence numbers before appending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next expected sequence: append it.
    Append,
    /// Already appended at this base offset: answer success without appending.
    Duplicate { base_offset: i64 },
    /// INVALID_PRODUCER_EPOCH (47): an older epoch than the producer's current one.
    StaleEpoch,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    OutOfOrder { expected: i32, got: i32 },
}

#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        if !h.has_producer_id() {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // No state (new producer, or its state aged out with retention): accept,
            // as Kafka does since KIP-360.
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::StaleEpoch;
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder {
                    expected: 0,
                    got: h.base_sequence,
                }
            };
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if h.base_sequence != expected {
            return SequenceCheck::OutOfOrder {
                expected,
                got: h.base_sequence,
            };
        }
        SequenceCheck::Append
    }

    /// Records a batch that is now in the log (with its assigned offsets).
    pub fn record(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if h.base_sequence < 0 {
            return;
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while entry.batches.len() > BATCHES_KEPT_PER_PRODUCER {
            entry.batches.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStates::default();
        let b0 = header(7, 0, 0, 5, 0);
        assert_eq!(s.check(&b0), SequenceCheck::Append);
        s.record(&b0);
        assert_eq!(
            s.check(&header(7, 0, 0, 5, 99)),
            SequenceCheck::Duplicate { base_offset: 0 }
        );
        assert_eq!(
            s.check(&header(7, 0, 6, 1, 99)),
            SequenceCheck::OutOfOrder {
                expected: 5,
                got: 6
            }
        );
        assert_eq!(s.check(&header(7, 0, 5, 1, 99)), SequenceCheck::Append);
        assert_eq!(s.check(&header(7, 1, 0, 1, 99)), SequenceCheck::Append);
        assert_eq!(
            s.check(&header(7, 1, 3, 1, 99)),
            SequenceCheck::OutOfOrder {
                expected: 0,
                got: 3
            }
        );
        s.record(&header(7, 1, 0, 1, 5));
        assert_eq!(s.check(&header(7, 0, 5, 1, 99)), SequenceCheck::StaleEpoch);
        assert_eq!(s.check(&header(-1, -1, -1, 1, 99)), SequenceCheck::Append);
        assert_eq!(s.check(&header(8, 0, 42, 1, 99)), SequenceCheck::Append);
    }

    #[test]
    fn only_recent_batches_are_deduplicated() {
        let mut s = ProducerStates::default();
        for i in 0..10 {
            s.record(&header(1, 0, i, 1, i as i64));
        }
        assert_eq!(
            s.check(&header(1, 0, 9, 1, 0)),
            SequenceCheck::Duplicate { base_offset: 9 }
        );
        assert!(matches!(
            s.check(&header(1, 0, 2, 1, 0)),
            SequenceCheck::OutOfOrder { .. }
        ));
    }
}
