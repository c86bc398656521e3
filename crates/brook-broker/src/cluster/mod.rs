//! A broker as one node of a cluster, split by concern:
//! - [`rpc`]: the server side of the inter-broker RPCs;
//! - [`liveness`]: broker heartbeats and readiness, and the controller's fencing of
//!   brokers that went silent;
//! - [`isr`]: the leader's ISR shrink/expand requests;
//! - [`fetcher`]: the replica fetchers that copy leaders' logs.
//!
//! Each decision is a pure function the deterministic simulation
//! (`tests/replication_sim.rs`) calls as the broker does.

pub mod fetcher;
pub mod isr;
pub mod liveness;
pub mod rpc;
