//! One transactional id's state (Kafka's `TransactionMetadata`) and the transitions that
//! touch only it.
//!
//! The coordinator decides which transition a request asks for, checks the producer, and
//! writes the record of the result; the rules for the next producer id and epoch, for
//! adding partitions and for ending a transaction live here.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use super::TxnConfig;

/// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub(crate) const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;

/// A topic partition in a transaction.
pub(crate) type TopicPartition = (String, i32);

/// The states of a transactional id, named as Kafka names them on the wire.
///
/// Kafka's two transient states never exist here: `PrepareEpochFence` is applied in the
/// same call that moves on to PrepareAbort, and `Dead` ids are removed at once (their
/// tombstone is in the same effects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction: the producer has an epoch and has not added partitions yet.
    Empty,
    /// Partitions were added: the transaction runs until EndTxn or its timeout.
    Ongoing,
    /// Commit decided and durable; the commit markers are being written.
    PrepareCommit,
    /// Abort decided and durable; the abort markers are being written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
}

/// What ListTransactions accepts as state filters: the six states and Kafka's two
/// transient ones (which match nothing here, but are not "unknown").
pub(crate) const KNOWN_STATE_NAMES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

impl TxnState {
    /// The name Kafka uses in DescribeTransactions and ListTransactions.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state's number in records (Kafka's numbering in its `TransactionLogValue`).
    pub(crate) fn id(self) -> i16 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
        }
    }

    pub(crate) fn from_id(id: i16) -> Option<Self> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ]
        .into_iter()
        .find(|state| state.id() == id)
    }

    /// A decision is durable and its markers are being written.
    pub(crate) fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// No transaction is in flight: a new one may start, and the id may expire (Kafka's
    /// `isExpirationAllowed`).
    pub(crate) fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// Whether a transaction in this state may hold partitions.
    pub(crate) fn holds_partitions(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
        )
    }
}

/// Kafka keeps `i16::MAX` for the coordinator to fence with, so a producer is never given
/// an epoch above `i16::MAX - 1`; one at that epoch gets a new producer id next time.
pub(crate) fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Everything the coordinator knows about one transactional id; its record carries all
/// of it, so replaying the last record restores it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id before the last InitProducerId (the same as `producer_id` unless
    /// that call rotated it): a producer retrying the rotation still holds it (KIP-360).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch a KIP-360 producer had before its last InitProducerId (-1 when that
    /// call did not name one, or after a fence): a retry that names it again gets the
    /// current epoch back instead of PRODUCER_FENCED.
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer's last InitProducerId.
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the transaction in flight (empty when idle).
    pub partitions: BTreeSet<TopicPartition>,
    /// When the transaction in flight (or the last one, once complete) added its first
    /// partition; None after InitProducerId.
    pub txn_start_ms: Option<i64>,
    /// The time of the last change, from which an idle id expires.
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// A new transactional id: the fresh producer id at epoch 0, no transaction.
    pub(crate) fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        debug_assert!(producer_id >= 0, "the broker allocates a producer id");
        TxnMetadata {
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: 0,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            txn_start_ms: None,
            last_update_ms: now_ms,
        }
    }

    /// Whether an InitProducerId naming `expected` (KIP-360) may touch this id: it names
    /// the current producer id, or the one before a rotation with the exhausted epoch it
    /// held then (a retry whose answer was lost). Otherwise the caller is fenced.
    pub(crate) fn accepts_init_from(&self, (producer_id, producer_epoch): (i64, i16)) -> bool {
        producer_id == self.producer_id
            || (producer_id == self.last_producer_id && is_epoch_exhausted(producer_epoch))
    }

    /// The state after a successful InitProducerId on an idle id: Empty, with
    ///
    /// - no producer named: the next epoch, or `fresh_producer_id` at epoch 0 once the
    ///   epoch is exhausted;
    /// - the current producer named (KIP-360, recovering after an error): the same, and
    ///   the named epoch is remembered as the last one;
    /// - the last epoch named: a retry of a call that succeeded, answered the same again;
    /// - any other epoch: PRODUCER_FENCED.
    ///
    /// Kafka also rewrites the previous producer id on a retry; keeping it lets a second
    /// retry of a rotation succeed too.
    pub(crate) fn reinitialized(
        &self,
        expected: Option<(i64, i16)>,
        fresh_producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Result<TxnMetadata, ResponseError> {
        debug_assert!(self.state.is_idle(), "InitProducerId on {:?}", self.state);
        let (producer_id, last_producer_id, producer_epoch, last_producer_epoch) = match expected {
            Some((id, epoch)) if id == self.producer_id && epoch == self.producer_epoch => {
                self.next_producer(fresh_producer_id, self.producer_epoch)
            }
            Some((_, epoch)) if epoch == self.last_producer_epoch => (
                self.producer_id,
                self.last_producer_id,
                self.producer_epoch,
                self.last_producer_epoch,
            ),
            Some(_) => return Err(ResponseError::ProducerFenced),
            None => self.next_producer(fresh_producer_id, NO_PRODUCER_EPOCH),
        };
        Ok(TxnMetadata {
            producer_id,
            last_producer_id,
            producer_epoch,
            last_producer_epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            txn_start_ms: None,
            last_update_ms: now_ms,
        })
    }

    /// (producer id, last producer id, epoch, last epoch) after bumping the epoch, or
    /// rotating to `fresh_producer_id` when the epoch is exhausted.
    fn next_producer(&self, fresh_producer_id: i64, last_epoch: i16) -> (i64, i64, i16, i16) {
        if is_epoch_exhausted(self.producer_epoch) {
            debug_assert!(fresh_producer_id >= 0, "the broker allocates a producer id");
            (fresh_producer_id, self.producer_id, 0, last_epoch)
        } else {
            (
                self.producer_id,
                self.producer_id,
                self.producer_epoch + 1,
                last_epoch,
            )
        }
    }

    /// Adds partitions, starting a transaction if none is in flight. Returns whether
    /// anything changed: adding only partitions already in the transaction (or none)
    /// changes nothing and needs no record.
    pub(crate) fn add_partitions(
        &mut self,
        partitions: &BTreeSet<TopicPartition>,
        now_ms: i64,
    ) -> bool {
        debug_assert!(
            !self.state.is_prepare(),
            "adding partitions in {:?}",
            self.state
        );
        if partitions.is_subset(&self.partitions) {
            return false;
        }
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.txn_start_ms = Some(now_ms);
        }
        self.partitions.extend(partitions.iter().cloned());
        self.last_update_ms = now_ms;
        true
    }

    /// Fences the producer of the transaction in flight: the epoch goes up by one (so
    /// that producer's requests get PRODUCER_FENCED) and no retry may claim the last
    /// epoch. `i16::MAX` is reached only this way, and a fenced id is not fenced again
    /// before its next InitProducerId rotates the producer id.
    pub(crate) fn fence(&mut self) {
        debug_assert!(
            self.state == TxnState::Ongoing,
            "fencing in {:?}",
            self.state
        );
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self.last_producer_epoch = NO_PRODUCER_EPOCH;
    }

    /// Ends the transaction in flight: PrepareCommit or PrepareAbort while its markers
    /// are written, or straight to CompleteCommit or CompleteAbort when it has no
    /// partitions (there is nothing to mark).
    pub(crate) fn end(&mut self, commit: bool, now_ms: i64) {
        debug_assert!(
            self.state == TxnState::Ongoing,
            "ending in {:?}",
            self.state
        );
        self.state = match (commit, self.partitions.is_empty()) {
            (true, false) => TxnState::PrepareCommit,
            (false, false) => TxnState::PrepareAbort,
            (true, true) => TxnState::CompleteCommit,
            (false, true) => TxnState::CompleteAbort,
        };
        self.last_update_ms = now_ms;
    }

    /// Every marker is written: PrepareCommit/PrepareAbort become CompleteCommit/
    /// CompleteAbort and the partitions are forgotten.
    pub(crate) fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => unreachable!("completing a transaction in {other:?}"),
        };
        self.partitions.clear();
        self.last_update_ms = now_ms;
    }

    /// When the coordinator must look at this id again: an ongoing transaction times out
    /// once more than its timeout has passed since it started (Kafka aborts when
    /// `start + timeout < now`); an idle id expires once `transactional.id.expiration.ms`
    /// has passed since its last change. A transaction whose markers are being written
    /// waits for them.
    pub(crate) fn deadline_ms(&self, config: &TxnConfig) -> Option<i64> {
        match self.state {
            TxnState::Ongoing => Some(
                self.txn_start_ms
                    .unwrap_or(self.last_update_ms)
                    .saturating_add(i64::from(self.timeout_ms))
                    .saturating_add(1),
            ),
            TxnState::PrepareCommit | TxnState::PrepareAbort => None,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                Some(self.last_update_ms.saturating_add(config.id_expiration_ms))
            }
        }
    }
}
