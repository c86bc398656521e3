//! Who is on the other end of a connection: the listener it arrived on, its principal
//! (Kafka's `KafkaPrincipal`), and where SASL authentication stands.
//!
//! The SASL hook: on a `SASL_PLAINTEXT`/`SASL_SSL` listener a session starts
//! [`Auth::SaslPending`]; until authentication completes only ApiVersions,
//! SaslHandshake and SaslAuthenticate are admitted (Kafka's `SaslServerAuthenticator`),
//! and any other request closes the connection. The connection's `SaslSession`
//! (`connection::sasl`) replaces the session with [`Session::authenticated`] when a
//! mechanism succeeds.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use brook_meta::{AclOperation, ResourceType};
use kafka_protocol::messages::ApiKey;

use crate::listeners::SecurityProtocol;

/// A principal as Kafka's authorizer sees it: a type and a name (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    pub const USER_TYPE: &'static str = "User";

    pub fn user(name: impl Into<String>) -> Self {
        KafkaPrincipal {
            principal_type: Self::USER_TYPE.into(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`: a plaintext connection, or TLS without a client certificate.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// The listener a connection arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// Upper case (`PLAINTEXT`, `EXTERNAL`); Metadata answers with the brokers'
    /// endpoints of this listener.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// The controller listener: the only one that takes inter-broker RPCs.
    pub controller: bool,
}

/// Where authentication stands on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Authenticated (by the transport: plaintext, TLS with or without a client
    /// certificate, or by SASL).
    Done,
    /// A SASL listener before SaslAuthenticate succeeded.
    SaslPending,
}

/// One connection's identity, shared with each request's context.
#[derive(Debug, Clone)]
pub struct Session {
    pub listener: Arc<ListenerInfo>,
    /// `User:ANONYMOUS` until something better is known.
    pub principal: KafkaPrincipal,
    pub auth: Auth,
    /// Authorization decisions made for this principal, so the data path asks the
    /// ACLs once per resource and operation (new with every session: a re-authenticated
    /// connection may carry another principal).
    pub decisions: Arc<DecisionCache>,
    /// The share sessions this connection opened (kept across re-authentication).
    pub shares: Arc<ConnectionShares>,
}

/// The most share sessions one connection tracks for release when it closes; past it,
/// what the others hold comes back when its acquisition lock times out.
const MAX_TRACKED_SHARE_SESSIONS: usize = 64;

/// A connection's id, and the (group, member) share sessions it opened: when the
/// connection closes, those sessions end and what their members hold is released, as
/// Kafka does when a share consumer's connection drops.
#[derive(Debug)]
pub struct ConnectionShares {
    pub id: u64,
    members: parking_lot::Mutex<Vec<(String, String)>>,
}

impl Default for ConnectionShares {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        ConnectionShares {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            members: parking_lot::Mutex::default(),
        }
    }
}

impl ConnectionShares {
    /// Notes a share session opened on this connection.
    pub fn opened(&self, group: &str, member: &str) {
        let mut m = self.members.lock();
        if m.len() < MAX_TRACKED_SHARE_SESSIONS
            && !m.iter().any(|(g, id)| g == group && id == member)
        {
            m.push((group.to_owned(), member.to_owned()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.lock().is_empty()
    }

    /// The sessions to end now that the connection is closing.
    pub fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.members.lock())
    }
}

/// The most decisions a connection keeps; past it the cache starts over.
const MAX_CACHED_DECISIONS: usize = 4096;

/// One connection's authorization decisions, valid for one version of the ACLs
/// (`Acls::changed_at`): a change to the ACLs empties it.
#[derive(Debug, Default)]
pub struct DecisionCache {
    inner: parking_lot::Mutex<Decisions>,
}

#[derive(Debug, Default)]
struct Decisions {
    acls_version: u64,
    count: usize,
    by_action: HashMap<(AclOperation, ResourceType), HashMap<String, bool>>,
}

impl DecisionCache {
    /// The decision for `op` on the resource, from the cache if it was made under
    /// `acls_version`, else from `decide` (and remembered).
    pub fn get_or(
        &self,
        acls_version: u64,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
        decide: impl FnOnce() -> bool,
    ) -> bool {
        let mut d = self.inner.lock();
        if d.acls_version != acls_version || d.count >= MAX_CACHED_DECISIONS {
            d.by_action.clear();
            d.count = 0;
            d.acls_version = acls_version;
        }
        if let Some(known) = d
            .by_action
            .get(&(op, resource_type))
            .and_then(|m| m.get(name))
        {
            return *known;
        }
        let allowed = decide();
        d.count += 1;
        d.by_action
            .entry((op, resource_type))
            .or_default()
            .insert(name.to_string(), allowed);
        allowed
    }
}

impl Session {
    /// A new connection's session, given what the transport established.
    pub fn new(listener: Arc<ListenerInfo>, principal: KafkaPrincipal) -> Session {
        let auth = if listener.protocol.sasl() {
            Auth::SaslPending
        } else {
            Auth::Done
        };
        Session {
            listener,
            principal,
            auth,
            decisions: Arc::default(),
            shares: Arc::default(),
        }
    }

    /// The session after SASL authenticated `principal`.
    pub fn authenticated(&self, principal: KafkaPrincipal) -> Session {
        Session {
            listener: self.listener.clone(),
            principal,
            auth: Auth::Done,
            decisions: Arc::default(),
            shares: self.shares.clone(),
        }
    }

    /// Whether a request of `api` may be handled now.
    pub fn admits(&self, api: ApiKey) -> bool {
        match self.auth {
            Auth::Done => true,
            Auth::SaslPending => matches!(
                api,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(protocol: SecurityProtocol) -> Arc<ListenerInfo> {
        Arc::new(ListenerInfo {
            name: protocol.name().into(),
            protocol,
            controller: false,
        })
    }

    #[test]
    fn before_sasl_authentication_only_the_handshake_apis_are_admitted() {
        let s = Session::new(
            listener(SecurityProtocol::SaslSsl),
            KafkaPrincipal::anonymous(),
        );
        assert_eq!(s.auth, Auth::SaslPending);
        for api in [
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
        ] {
            assert!(s.admits(api));
        }
        for api in [ApiKey::Metadata, ApiKey::Produce, ApiKey::Fetch] {
            assert!(!s.admits(api));
        }
        let done = s.authenticated(KafkaPrincipal::user("alice"));
        assert!(done.admits(ApiKey::Produce));
        assert_eq!(done.principal.to_string(), "User:alice");
        let tls = Session::new(
            listener(SecurityProtocol::Ssl),
            KafkaPrincipal::user("CN=x"),
        );
        assert!(tls.admits(ApiKey::Fetch));
    }

    #[test]
    fn cached_decisions_last_until_the_acls_change() {
        let cache = DecisionCache::default();
        let ask = |version, answer| {
            cache.get_or(
                version,
                AclOperation::Read,
                ResourceType::Topic,
                "t",
                || answer,
            )
        };
        assert!(ask(1, true));
        assert!(ask(1, false), "cached");
        assert!(!ask(2, false), "the ACLs changed");
        assert!(!cache.get_or(2, AclOperation::Write, ResourceType::Topic, "t", || false));
    }
}
