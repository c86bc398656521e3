//! The classic-protocol group coordinator as a pure state machine.
//!
//! Requests (`kafka_protocol::messages` types, with their API version) and the current
//! time go in; responses, replies to parked requests and records for the internal topic
//! `__consumer_offsets` come out. There is no I/O, no clock and no async here: the
//! broker owns sockets, time and the log, and calls [`GroupCoordinator::tick`] about
//! every 100 ms.
//!
//! - [`coordinator`]: [`GroupCoordinator`], its handlers, [`Effects`] and [`Reply`].
//! - `group`: one group's state, members, protocol vote and offsets.
//! - [`records`]: [`OffsetsRecord`] and its documented binary encoding.
//! - `timers`: deadlines by key (sessions, join and sync phases, offset retention).
//!
//! Behaviour follows Apache Kafka's classic group coordinator (its `GroupMetadataManager`
//! and `ClassicGroup`), including KIP-345 static membership and KIP-394 member ids.
//!
//! Invariants:
//! - Every parked request is answered exactly once, or withdrawn by
//!   [`GroupCoordinator::cancel`]; removing a member answers what it has parked.
//! - A member is awaiting a join only while its group is PreparingRebalance, and awaiting
//!   a sync only while it is CompletingRebalance.
//! - The group metadata record last written for a group is what
//!   [`GroupCoordinator::replay`] rebuilds it from.
//!
//! Absent on purpose: consumer groups of the new protocol (KIP-848), transactional offset
//! commits, topic ids in offset requests (the broker caps OffsetCommit and OffsetFetch at
//! v9), authorization, and COORDINATOR_LOAD_IN_PROGRESS (the broker replays before it
//! serves).

pub mod config;
pub mod coordinator;
mod group;
pub mod records;
mod timers;

pub use config::GroupConfig;
pub use coordinator::{Effects, GroupCoordinator, Reply, ReplyToken};
pub use group::GroupState;
pub use records::{OffsetsRecord, RecordError};
