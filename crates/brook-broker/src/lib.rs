//! The Brook server: listener, connections, request handlers, and the services they
//! use, wired once at start-up. Data flows one way: metadata → replicas → coordinators
//! and fetchers.
//!
//! ```text
//! listener ─► connection task (frames, in order) ─► router ─► handlers/<family>.rs
//!                                                               │ (only what each uses)
//!   MetadataView ◄── applier ──► Replicas ──► Groups / Txns (CoordinatorHost) ──► Fetchers
//!        ▲                                         │
//!   ControllerClient (file store or Raft quorum) ◄─┘
//! ```
//! Start one with [`Broker::builder`]; the `brook` binary and the tests do exactly that.

mod accept;
mod access;
mod admin_http;
mod apis;
mod applier;
mod background;
mod cleaner;
mod client_quotas;
mod clock;
mod cluster;
pub mod config;
mod connection;
mod connection_quotas;
mod controller;
mod controller_client;
mod coordinator_host;
mod error;
mod fetch_encode;
pub mod fetch_session;
mod groups;
mod handlers;
mod image_topics;
pub mod listeners;
pub mod log_levels;
pub mod maintenance;
mod markers;
mod metadata;
mod metrics;
mod mutation_quotas;
mod names;
pub mod partition;
mod peer;
pub mod producer_state;
mod replicas;
mod request_time;
mod router;
pub mod sasl;
mod server;
pub mod session;
mod shares;
mod tls;
mod traffic;
mod txns;

pub use apis::supported_apis;
pub use config::{BrokerConfig, ConfigError};
pub use server::{Broker, BrokerBuilder, StartError, DATA_DIR_LOCK};
pub use tls::{client_config as tls_client_config, TlsSettings};

/// The cluster's decisions as pure functions, for the deterministic simulation
/// (`tests/replication_sim.rs`) to call exactly as the broker does.
pub mod decisions {
    pub use crate::cluster::fetcher::{apply_fetched, fetch_request, fetch_target, Fetched};
    pub use crate::cluster::isr::{check_interval_ms, isr_outcome};
    pub use crate::cluster::liveness::caught_up;
    pub use crate::controller::{
        alter_isr_error_code, decide, ControllerReply, ControllerRequest, IsrItem,
    };
    pub use crate::controller_client::{expired_brokers, reset_liveness, CONTROLLER_DEADLINE};
}
