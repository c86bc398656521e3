//! The Brook server: listener, connections, request handlers, partition manager.
//!
//! ```text
//! listener ─► connection task (frames, in order) ─► router ─► handlers/<family>.rs
//!                                                              │
//!                                      Shared { metadata, partitions, coordinator }
//! ```
//! Start one with [`Broker::builder`]; the `brook` binary and the tests do exactly that.

mod cluster;
pub mod config;
mod connection;
mod controller;
mod fetch_encode;
mod groups;
mod handlers;
mod internal_topic;
pub mod partition;
pub mod producer_state;
mod router;
mod server;
mod shared;
mod txns;

pub use config::{BrokerConfig, ConfigError};
pub use router::supported_apis;
pub use server::{Broker, BrokerBuilder, StartError};
