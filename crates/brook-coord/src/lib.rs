//! Brook's coordinators as pure state machines: the group coordinator (classic groups,
//! KIP-848 consumer groups and KIP-932 share groups) and the transaction coordinator.
//!
//! Requests (`kafka_protocol::messages` types, with their API version) and the current
//! time go in; responses, replies to parked requests, records for the internal topics
//! (`__consumer_offsets`, `__transaction_state`) and transaction marker jobs come out.
//! There is no I/O, no clock and no async here: the broker owns sockets, time and the
//! log, and calls each coordinator's `tick` about every 100 ms.
//!
//! - [`coordinator`]: [`GroupCoordinator`], its handlers, [`Effects`] and [`Reply`].
//! - `group`: one group's state, members, protocol vote and offsets.
//! - `coordinator::migration`: groups moving between the classic and the consumer
//!   protocol (`group.consumer.migration.policy`), classic members in consumer groups.
//! - [`consumer`]: KIP-848 consumer groups: the group and who owns which partition, the
//!   `uniform` and `range` assignors, one reconciliation step (Kafka's
//!   CurrentAssignmentBuilder), regular-expression subscriptions, and their records in
//!   Kafka 4's format.
//! - [`share`]: KIP-932 share groups: membership and the `simple` assignor, a
//!   share-partition's delivery state (acquire, acknowledge, lock expiry, delivery
//!   limit), share sessions, and their records (Kafka 4's group records; Brook's own
//!   share-partition state record).
//! - [`records`]: [`OffsetsRecord`] and its documented binary encoding.
//! - [`txn`]: [`TransactionCoordinator`] (InitProducerId, AddPartitionsToTxn,
//!   AddOffsetsToTxn, EndTxn, DescribeTransactions, ListTransactions), [`TxnEffects`],
//!   [`MarkerJob`] and [`TxnRecord`] with its encoding.
//! - `timers`: deadlines by key (sessions, join and sync phases, offset retention,
//!   transaction timeouts and transactional id expiry).
//!
//! Behaviour follows Apache Kafka's classic group coordinator (its `GroupMetadataManager`
//! and `ClassicGroup`), including KIP-345 static membership and KIP-394 member ids, and
//! its transaction coordinator (`TransactionCoordinator`, `TransactionMetadata`) for
//! transactions of version 1, including KIP-360 producer recovery.
//!
//! Invariants:
//! - Every parked request is answered exactly once, or withdrawn by
//!   [`GroupCoordinator::cancel`]; removing a member answers what it has parked.
//! - A member is awaiting a join only while its group is PreparingRebalance, and awaiting
//!   a sync only while it is CompletingRebalance.
//! - The group metadata record last written for a group is what
//!   [`GroupCoordinator::replay`] rebuilds it from; the record last written for a
//!   transactional id is its whole state, which [`TransactionCoordinator::replay`]
//!   restores.
//!
//! Absent on purpose: rack-aware assignment, transactional offset
//! commits in the group coordinator (the broker handles TxnOffsetCommit, checking the
//! transaction with [`TransactionCoordinator::verify_partition`]), transactions version
//! 2 (KIP-890 part 2), topic ids in offset requests (the broker caps OffsetCommit and
//! OffsetFetch at v9), authorization, and COORDINATOR_LOAD_IN_PROGRESS (the broker
//! replays before it serves).

pub mod config;
pub mod consumer;
pub mod coordinator;
mod group;
pub mod records;
pub mod share;
mod timers;
pub mod txn;

pub use config::{GroupConfig, GroupOverrides, MigrationPolicy};
pub use consumer::{ConsumerGroupState, TopicsView};
pub use coordinator::{Effects, GroupCoordinator, GroupSummary, Reply, ReplyToken};
pub use group::GroupState;
pub use records::{OffsetsRecord, RecordError};
pub use txn::{
    MarkerJob, TransactionCoordinator, TxnConfig, TxnEffects, TxnRecord, TxnRecordError, TxnState,
};
