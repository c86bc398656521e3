//! One module per API family, each turning a request into a response.

pub mod acls;
pub mod api_versions;
pub mod configs;
pub mod consumer_group;
pub mod coordinator;
pub mod elect_leaders;
pub mod fetch;
pub mod group;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod produce;
pub mod producer_id;
pub mod quotas;
pub mod reassignments;
pub mod scram;
pub mod session_fetch;
pub mod share_fetch;
pub mod share_group;
pub mod share_offsets;
pub mod topics;
pub mod txn;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// Who sent a request, for handlers that record it (group membership) and answer by
/// listener (Metadata). Built for every request, so it holds what is at hand and
/// formats only when asked.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub client_id: Option<kafka_protocol::protocol::StrBytes>,
    pub peer: std::net::SocketAddr,
    /// The connection's listener and principal (authorization: `access`).
    pub session: std::sync::Arc<crate::session::Session>,
    /// The connection's replica fetch session (KIP-227), if a follower opens one.
    pub fetch_sessions: std::sync::Arc<crate::fetch_session::FetchSessions>,
}

impl RequestContext {
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }

    /// The client's address as Kafka reports it (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Groups per-partition results by topic, topics in the order they first appear.
pub fn by_topic<T>(items: impl IntoIterator<Item = (String, T)>) -> Vec<(String, Vec<T>)> {
    let mut out: Vec<(String, Vec<T>)> = Vec::new();
    for (topic, item) in items {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, v)) => v.push(item),
            None => out.push((topic, vec![item])),
        }
    }
    out
}

/// Authorized-operation bit sets (Kafka's `AclOperation` codes): handlers report every
/// operation a resource supports (what Kafka reports without an authorizer) when a
/// client asks for it, and `i32::MIN` when it does not; with an authorizer the router
/// narrows the set to the principal's (`access`).
pub mod authorized_ops {
    const fn bits(ops: &[u8]) -> i32 {
        let mut v = 0i32;
        let mut i = 0;
        while i < ops.len() {
            v |= 1 << ops[i];
            i += 1;
        }
        v
    }
    const READ: u8 = 3;
    const WRITE: u8 = 4;
    const CREATE: u8 = 5;
    const DELETE: u8 = 6;
    const ALTER: u8 = 7;
    const DESCRIBE: u8 = 8;
    const CLUSTER_ACTION: u8 = 9;
    const DESCRIBE_CONFIGS: u8 = 10;
    const ALTER_CONFIGS: u8 = 11;
    const IDEMPOTENT_WRITE: u8 = 12;

    pub const NOT_REQUESTED: i32 = i32::MIN;
    pub const TOPIC: i32 = bits(&[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ]);
    pub const GROUP: i32 = bits(&[READ, DELETE, DESCRIBE]);
    pub const CLUSTER: i32 = bits(&[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
    ]);

    pub fn if_requested(requested: bool, ops: i32) -> i32 {
        if requested {
            ops
        } else {
            NOT_REQUESTED
        }
    }
}
