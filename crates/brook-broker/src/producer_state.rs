//! Producer state of one partition: for each producer id, its epoch and the sequence
//! ranges of its last few batches, to drop duplicates and detect gaps; and the
//! transactions in it: those still open (their first offsets bound the last stable
//! offset) and those aborted (what a `read_committed` consumer must skip).
//!
//! The state is rebuilt at start-up from the batch headers in the log (and the bytes of
//! the control batches, a few dozen each), so it survives restarts without a snapshot
//! file of its own.

use std::collections::{BTreeMap, HashMap, VecDeque};

use brook_protocol::batch::{control_type, BatchHeader, ControlType};

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
    /// First offset of the producer's open transaction in this partition.
    txn_first_offset: Option<i64>,
    /// Highest coordinator epoch of a marker written for this producer (-1: none seen
    /// since this broker started).
    coordinator_epoch: i32,
    /// Largest timestamp of its batches.
    last_timestamp: i64,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of its open transaction here; -1 if none.
    pub current_txn_start_offset: i64,
}

/// A transaction aborted in this partition: its records lie in
/// `first_offset..=last_offset` (the last is the abort marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Why a transaction marker may not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerCheck {
    Ok,
    /// INVALID_PRODUCER_EPOCH: the producer has moved to a newer epoch.
    StaleEpoch,
    /// TRANSACTION_COORDINATOR_FENCED: a newer coordinator already wrote for it.
    CoordinatorFenced,
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
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (so by `last_offset`).
    aborted: VecDeque<AbortedTxn>,
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
        if h.base_sequence < 0 {
            // No sequence (the broker's own transactional offset commits): only the
            // epoch is checked.
            return SequenceCheck::Append;
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

    /// Whether a marker for `producer_id` at `producer_epoch` from a coordinator of
    /// `coordinator_epoch` may be written.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> MarkerCheck {
        match self.producers.get(&producer_id) {
            Some(entry) if producer_epoch < entry.epoch => MarkerCheck::StaleEpoch,
            Some(entry) if coordinator_epoch < entry.coordinator_epoch => {
                MarkerCheck::CoordinatorFenced
            }
            _ => MarkerCheck::Ok,
        }
    }

    /// Notes the coordinator epoch of a marker that was just written.
    pub fn marker_written(&mut self, producer_id: i64, coordinator_epoch: i32) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.coordinator_epoch = entry.coordinator_epoch.max(coordinator_epoch);
        }
    }

    /// The first offset of the oldest open transaction: consumers reading committed
    /// records stop before it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Aborted transactions with records in `from..to`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .range(start..)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Every producer with state here, by producer id.
    pub fn describe(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerSummary {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Forgets aborted transactions wholly below the log start offset.
    pub fn trim_aborted(&mut self, log_start_offset: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.last_offset < log_start_offset)
        {
            self.aborted.pop_front();
        }
    }

    /// Records a batch that is now in the log (with its assigned offsets). `batch` is
    /// the whole batch when it is a control batch (a transaction marker), else `None`.
    pub fn record(&mut self, h: &BatchHeader, batch: Option<&[u8]>) {
        if !h.has_producer_id() {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert(ProducerEntry {
                coordinator_epoch: -1,
                last_timestamp: -1,
                ..ProducerEntry::default()
            });
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
        if h.producer_epoch > entry.epoch || (h.producer_epoch != entry.epoch && !h.is_control()) {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if h.is_control() {
            let kind = match batch.map(control_type) {
                Some(Ok(kind)) => kind,
                // A marker that cannot be read still ends the transaction; count it as
                // a commit rather than hide records.
                _ => {
                    tracing::warn!(
                        producer_id = h.producer_id,
                        offset = h.base_offset,
                        "unreadable control batch"
                    );
                    ControlType::Commit
                }
            };
            if let ControlType::Other(_) = kind {
                return;
            }
            if let Some(first_offset) = entry.txn_first_offset.take() {
                self.ongoing.remove(&first_offset);
                if kind == ControlType::Abort {
                    self.aborted.push_back(AbortedTxn {
                        producer_id: h.producer_id,
                        first_offset,
                        last_offset: h.base_offset,
                    });
                }
            }
            return;
        }
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
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
        s.record(&b0, None);
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
        s.record(&header(7, 1, 0, 1, 5), None);
        assert_eq!(s.check(&header(7, 0, 5, 1, 99)), SequenceCheck::StaleEpoch);
        assert_eq!(s.check(&header(-1, -1, -1, 1, 99)), SequenceCheck::Append);
        assert_eq!(s.check(&header(8, 0, 42, 1, 99)), SequenceCheck::Append);
    }

    #[test]
    fn only_recent_batches_are_deduplicated() {
        let mut s = ProducerStates::default();
        for i in 0..10 {
            s.record(&header(1, 0, i, 1, i as i64), None);
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

    fn marker(pid: i64, epoch: i16, commit: bool, offset: i64) -> (BatchHeader, Vec<u8>) {
        let mut b = brook_protocol::records::encode_marker(pid, epoch, commit, 0, 0)
            .unwrap()
            .to_vec();
        brook_protocol::batch::stamp(&mut b, offset, 0);
        (BatchHeader::parse(&b).unwrap(), b)
    }

    fn txn(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        let mut h = header(pid, epoch, seq, count, base_offset);
        h.attributes |= brook_protocol::batch::ATTR_TRANSACTIONAL;
        h
    }

    #[test]
    fn transactions_bound_the_stable_offset_and_aborts_are_remembered() {
        let mut s = ProducerStates::default();
        s.record(&txn(1, 0, 0, 2, 10), None);
        s.record(&txn(2, 0, 0, 1, 12), None);
        s.record(&txn(1, 0, 2, 1, 13), None);
        assert_eq!(s.first_unstable_offset(), Some(10));
        let (h, b) = marker(1, 0, false, 14);
        s.record(&h, Some(&b));
        assert_eq!(s.first_unstable_offset(), Some(12));
        let (h, b) = marker(2, 0, true, 15);
        s.record(&h, Some(&b));
        assert_eq!(s.first_unstable_offset(), None);
        let aborted = AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 14,
        };
        assert_eq!(s.aborted_between(0, 100), vec![aborted]);
        assert_eq!(s.aborted_between(14, 100), vec![aborted]);
        assert!(s.aborted_between(15, 100).is_empty());
        assert!(s.aborted_between(0, 10).is_empty());
        // The next transaction of producer 1 starts where its first batch lands.
        s.record(&txn(1, 0, 3, 1, 16), None);
        assert_eq!(s.first_unstable_offset(), Some(16));
        s.trim_aborted(15);
        assert!(s.aborted_between(0, 100).is_empty());
    }

    #[test]
    fn markers_fence_older_epochs_and_coordinators() {
        let mut s = ProducerStates::default();
        s.record(&txn(1, 0, 0, 1, 0), None);
        // The coordinator bumped the epoch to abort (a fenced zombie): the marker carries it.
        let (h, b) = marker(1, 1, false, 1);
        assert_eq!(s.check_marker(1, 1, 5), MarkerCheck::Ok);
        s.record(&h, Some(&b));
        s.marker_written(1, 5);
        assert_eq!(s.check(&txn(1, 0, 1, 1, 2)), SequenceCheck::StaleEpoch);
        assert_eq!(s.check_marker(1, 0, 5), MarkerCheck::StaleEpoch);
        assert_eq!(s.check_marker(1, 1, 4), MarkerCheck::CoordinatorFenced);
        // The new epoch starts its sequence at 0.
        assert_eq!(s.check(&txn(1, 1, 0, 1, 2)), SequenceCheck::Append);
    }
}
