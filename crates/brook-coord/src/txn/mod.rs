//! The transaction coordinator: requests and the time in, responses, records for
//! `__transaction_state` and marker jobs out.
//!
//! Behaviour follows Apache Kafka's `TransactionCoordinator`, `TransactionStateManager`
//! and `TransactionMetadata` for transactions of version 1 (no KIP-890 part 2: the epoch
//! is bumped by InitProducerId and by fencing, not by every EndTxn), with KIP-360
//! producer recovery and KIP-664's DescribeTransactions and ListTransactions.
//!
//! Each transactional id has a producer id and epoch and at most one transaction in
//! flight. InitProducerId gives the producer a new epoch (fencing older instances);
//! AddPartitionsToTxn and AddOffsetsToTxn add partitions (Empty → Ongoing); EndTxn
//! decides (PrepareCommit or PrepareAbort) and hands the broker a [`MarkerJob`]; the
//! broker writes a commit or abort control batch in each partition and calls
//! [`TransactionCoordinator::markers_written`] (→ CompleteCommit or CompleteAbort). A
//! transaction older than its timeout is aborted by [`TransactionCoordinator::tick`]
//! after bumping the epoch, so the producer that let it time out is fenced.
//!
//! State changes are applied at once and the matching records come out with them, each
//! carrying the whole state of its id. The broker appends the records, and only once they
//! are durable sends the response and starts writing the markers of the same call: a
//! marker must never exist for a decision that a restart could forget. If an append
//! fails, the in-memory state is ahead of the log; the broker should stop serving the
//! coordinator and rebuild it from the log with [`TransactionCoordinator::replay`], then
//! write the markers [`TransactionCoordinator::pending_markers`] lists.
//!
//! Invariants:
//! - The record last written for an id is its whole current state: replaying it into
//!   a fresh coordinator restores the id exactly (deadlines are derived from the state).
//! - An id holds partitions only while a transaction is in flight (Ongoing,
//!   PrepareCommit, PrepareAbort); every id in PrepareCommit or PrepareAbort has had a
//!   marker job handed out, and moves on only through `markers_written`.
//! - A producer is never handed epoch `i16::MAX`: it is kept for fencing.
//!
//! Absent on purpose: transactions version 2 (KIP-890 part 2: EndTxn v5,
//! AddPartitionsToTxn v5 from clients), broker-to-broker AddPartitionsToTxn (v4+,
//! verify-only batches: [`TransactionCoordinator::verify_partition`] answers the same
//! question in process), two-phase commit (KIP-939, InitProducerId v6), the
//! ListTransactions v2 id pattern, authorization, and COORDINATOR_LOAD_IN_PROGRESS (the
//! broker replays before it serves).

mod admin;
mod handlers;
mod metadata;
mod records;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use tracing::info;

use crate::timers::Timers;
use metadata::TxnMetadata;
pub use metadata::TxnState;
pub use records::{TxnRecord, TxnRecordError};

/// `transaction.max.timeout.ms` default (15 minutes).
pub const DEFAULT_MAX_TIMEOUT_MS: i32 = 900_000;
/// `transactional.id.expiration.ms` default (7 days).
pub const DEFAULT_ID_EXPIRATION_MS: i64 = 604_800_000;

/// Settings of the transaction coordinator, each with Kafka's config name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask
    /// for; longer ones get INVALID_TRANSACTION_TIMEOUT.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: how long an id with no transaction in flight is
    /// kept after its last change before it is forgotten (tombstoned).
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: DEFAULT_MAX_TIMEOUT_MS,
            id_expiration_ms: DEFAULT_ID_EXPIRATION_MS,
        }
    }
}

/// Markers the broker must write: one control batch (commit or abort) for
/// `producer_id`/`producer_epoch` in each partition, after the records that came with the
/// job are durable. Once every partition has its marker, the broker calls
/// [`TransactionCoordinator::markers_written`] with the job's id, producer id and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Commit markers when true, abort markers when false.
    pub commit: bool,
    /// In topic name and partition order, each once.
    pub partitions: Vec<(String, i32)>,
}

impl MarkerJob {
    fn for_txn(transactional_id: &str, meta: &TxnMetadata) -> Self {
        MarkerJob {
            transactional_id: transactional_id.to_owned(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            commit: meta.state == TxnState::PrepareCommit,
            partitions: meta.partitions.iter().cloned().collect(),
        }
    }
}

/// What a call produced besides its direct response: records to append to
/// `__transaction_state`, then markers to write. Append the records (and wait until they
/// are durable) before sending the response or writing the markers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TxnEffects {
    pub records: Vec<TxnRecord>,
    pub markers: Vec<MarkerJob>,
}

impl TxnEffects {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.markers.is_empty()
    }
}

/// The transaction coordinator, as a pure state machine.
#[derive(Debug)]
pub struct TransactionCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMetadata>,
    /// One deadline per id: its transaction timeout while Ongoing, its expiration while
    /// idle, none while its markers are being written.
    timers: Timers<String>,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TransactionCoordinator {
            config,
            txns: BTreeMap::new(),
            timers: Timers::default(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The state of a transactional id, if it exists.
    pub fn txn_state(&self, transactional_id: &str) -> Option<TxnState> {
        self.txns.get(transactional_id).map(|m| m.state)
    }

    /// The producer id and epoch a transactional id holds, if it exists.
    pub fn producer(&self, transactional_id: &str) -> Option<(i64, i16)> {
        self.txns
            .get(transactional_id)
            .map(|m| (m.producer_id, m.producer_epoch))
    }

    /// The earliest deadline `tick` should be called at.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.next_deadline_ms()
    }

    /// The broker wrote every marker of a job: PrepareCommit/PrepareAbort become
    /// CompleteCommit/CompleteAbort (a record) and the partitions are forgotten. Ignored
    /// (no effects) when the id is gone or has moved on: another producer id or epoch,
    /// or no longer waiting for markers.
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    ) -> TxnEffects {
        let mut effects = TxnEffects::default();
        let Some(meta) = self.txns.get_mut(transactional_id) else {
            return effects;
        };
        if meta.producer_id != producer_id
            || meta.producer_epoch != producer_epoch
            || !meta.state.is_prepare()
        {
            return effects;
        }
        meta.complete(now_ms);
        self.persist(transactional_id, &mut effects);
        effects
    }

    /// Runs what is due at `now_ms`: aborts Ongoing transactions older than their timeout
    /// (fencing their producer first, as Kafka does: the epoch goes up by one and the
    /// abort markers carry the new epoch), and forgets idle ids unchanged for
    /// `transactional.id.expiration.ms` (a tombstone each).
    pub fn tick(&mut self, now_ms: i64) -> TxnEffects {
        let mut effects = TxnEffects::default();
        for id in self.timers.take_due(now_ms) {
            let Some(meta) = self.txns.get(&id) else {
                continue;
            };
            match meta.state {
                TxnState::Ongoing => {
                    info!(
                        transactional_id = %id,
                        producer_id = meta.producer_id,
                        producer_epoch = meta.producer_epoch,
                        timeout_ms = meta.timeout_ms,
                        "aborting transaction that timed out"
                    );
                    self.fence_and_abort(&id, now_ms, &mut effects);
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    info!(transactional_id = %id, "transactional id expired");
                    self.txns.remove(&id);
                    effects.records.push(TxnRecord::tombstone(&id));
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    debug_assert!(false, "no deadline while waiting for markers");
                }
            }
        }
        effects
    }

    /// Loads one record of `__transaction_state`, oldest first, before the coordinator
    /// serves requests: last writer wins per id, a tombstone removes it. Deadlines follow
    /// from the loaded state (an Ongoing transaction past its timeout is aborted at the
    /// next tick). After replaying a partition, write the markers that
    /// [`pending_markers`](Self::pending_markers) lists.
    pub fn replay(&mut self, record: &TxnRecord) -> Result<(), TxnRecordError> {
        let (id, value) = record.decode()?;
        match value {
            Some(meta) => {
                self.txns.insert(id.clone(), meta);
                self.schedule(&id);
            }
            None => {
                self.txns.remove(&id);
                self.timers.cancel(&id);
            }
        }
        Ok(())
    }

    /// A marker job for every transaction `include` selects that is waiting for its
    /// markers (PrepareCommit or PrepareAbort): after a replay nobody is writing them.
    pub fn pending_markers(&self, include: impl Fn(&str) -> bool) -> Vec<MarkerJob> {
        self.txns
            .iter()
            .filter(|(id, meta)| meta.state.is_prepare() && include(id))
            .map(|(id, meta)| MarkerJob::for_txn(id, meta))
            .collect()
    }

    /// Forgets every id `include` selects (their `__transaction_state` partition is now
    /// led by another broker, which replays it); returns how many. Markers the broker is
    /// still writing for them are the new coordinator's business: `markers_written`
    /// ignores unknown ids.
    pub fn unload(&mut self, include: impl Fn(&str) -> bool) -> usize {
        let selected: Vec<String> = self.txns.keys().filter(|id| include(id)).cloned().collect();
        for id in &selected {
            self.txns.remove(id);
            self.timers.cancel(id);
        }
        selected.len()
    }

    /// Records that, replayed into a fresh coordinator, rebuild the current state of every
    /// id `include` selects: one per id (its whole state, as last written), in id order.
    ///
    /// The broker compacts `__transaction_state` with it, as it does `__consumer_offsets`
    /// with `GroupCoordinator::snapshot`: under the coordinator's lock it appends the
    /// snapshot of one partition's ids, then deletes everything before it.
    pub fn snapshot(&self, include: impl Fn(&str) -> bool) -> Vec<TxnRecord> {
        self.txns
            .iter()
            .filter(|(id, _)| include(id))
            .map(|(id, meta)| TxnRecord::state(id, meta))
            .collect()
    }

    /// Fences the producer of `id`'s ongoing transaction and aborts the transaction with
    /// the new epoch (Kafka's PrepareEpochFence, then PrepareAbort).
    fn fence_and_abort(&mut self, id: &str, now_ms: i64, effects: &mut TxnEffects) {
        let meta = self.txns.get_mut(id).expect("the caller found the id");
        meta.fence();
        self.end(id, false, now_ms, effects);
    }

    /// Ends `id`'s ongoing transaction: the decision's record, and the marker job unless
    /// the transaction has no partitions (then it is complete at once).
    fn end(&mut self, id: &str, commit: bool, now_ms: i64, effects: &mut TxnEffects) {
        let meta = self.txns.get_mut(id).expect("the caller found the id");
        meta.end(commit, now_ms);
        if meta.state.is_prepare() {
            effects.markers.push(MarkerJob::for_txn(id, meta));
        }
        self.persist(id, effects);
    }

    /// Writes the record of `id`'s current state and reschedules its deadline.
    fn persist(&mut self, id: &str, effects: &mut TxnEffects) {
        let meta = self.txns.get(id).expect("persisting a known id");
        debug_assert!(
            meta.state.holds_partitions() || meta.partitions.is_empty(),
            "{id}: partitions in {:?}",
            meta.state
        );
        effects.records.push(TxnRecord::state(id, meta));
        self.schedule(id);
    }

    fn schedule(&mut self, id: &str) {
        let deadline = self
            .txns
            .get(id)
            .and_then(|meta| meta.deadline_ms(&self.config));
        match deadline {
            Some(deadline_ms) => self.timers.schedule(id.to_owned(), deadline_ms),
            None => self.timers.cancel(&id.to_owned()),
        }
    }
}
