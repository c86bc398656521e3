//! Who calls the admin listener (`admin.authentication`).
//!
//! - `none` (the default): every request runs as `User:ANONYMOUS`, so with an
//!   authorizer the API may do and see only what ACLs grant `User:ANONYMOUS`.
//! - `mtls` (an `https` admin listener with `ssl.client.auth`): every request but
//!   `/health` and `/ready` needs a client certificate and runs as its principal
//!   (`User:` + its subject DN, mapped by `ssl.principal.mapping.rules`), as on a Kafka
//!   SSL listener; without one it gets 401. With `none`, a client certificate sent
//!   anyway names the caller too.
//! - `basic`: every request but `/health` and `/ready` carries HTTP Basic credentials,
//!   checked against the cluster's SCRAM credentials (the users
//!   `kafka-configs --alter --entity-type users --add-config 'SCRAM-SHA-256=[...]'`
//!   creates, who log in on SASL/SCRAM listeners too). The request then runs as
//!   `User:<name>`: its Kafka requests are authorized as that user's, and the lists it
//!   reads show only what the user may DESCRIBE. A request without valid credentials
//!   gets 401 and a `WWW-Authenticate` challenge (a browser asks for them).
//!
//! Checking a password costs the credential's PBKDF2 iterations, so a verified
//! password is remembered (as a digest, with the stored key it matched) until the
//! credential changes; failures are never remembered, and the check runs off the async
//! workers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use brook_meta::{ScramCredentials, ScramMechanism};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::limits::PeerAddr;
use super::AdminState;
pub use crate::config::AdminAuth;
use crate::sasl::scram::credential_from_password;
use crate::session::KafkaPrincipal;

tokio::task_local! {
    /// The principal of the admin request being handled.
    static CALLER: KafkaPrincipal;
}

/// The principal the current admin request runs as (`User:ANONYMOUS` outside one).
pub fn caller() -> KafkaPrincipal {
    CALLER
        .try_with(Clone::clone)
        .unwrap_or_else(|_| KafkaPrincipal::anonymous())
}

/// The most verified passwords remembered at once.
const MAX_REMEMBERED: usize = 1024;

/// Passwords already verified: digest of user and password → the stored key matched.
#[derive(Default)]
pub struct Verified {
    known: Mutex<HashMap<[u8; 32], Vec<u8>>>,
}

impl Verified {
    /// Whether `password` is `user`'s, by any of its SCRAM credentials.
    async fn check(&self, scram: &ScramCredentials, user: &str, password: &str) -> bool {
        let credentials: Vec<_> = [ScramMechanism::Sha512, ScramMechanism::Sha256]
            .into_iter()
            .filter_map(|m| Some((m, scram.get(user, m)?.clone())))
            .collect();
        if credentials.is_empty() {
            return false;
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some(stored) = self.known.lock().get(&digest) {
            if credentials.iter().any(|(_, c)| &c.stored_key == stored) {
                return true;
            }
        }
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            credentials.into_iter().find_map(|(mechanism, c)| {
                let derived = credential_from_password(mechanism, &password, &c.salt, c.iterations);
                bool::from(derived.stored_key.ct_eq(&c.stored_key)).then_some(c.stored_key)
            })
        })
        .await
        .ok()
        .flatten();
        let Some(stored) = matched else {
            return false;
        };
        let mut known = self.known.lock();
        if known.len() >= MAX_REMEMBERED {
            known.clear();
        }
        known.insert(digest, stored);
        true
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), password.to_string()))
}

fn challenge() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"brook\", charset=\"UTF-8\""),
    );
    response
}

/// Middleware: finds the request's principal (see the module's doc) and runs the
/// request as it.
pub async fn authenticate(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/health" || path == "/ready" {
        return CALLER
            .scope(KafkaPrincipal::anonymous(), next.run(request))
            .await;
    }
    // An https client's certificate names it, as on a Kafka SSL listener.
    let certificate = request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .and_then(|info| info.0 .1.clone());
    match (state.auth, certificate) {
        (AdminAuth::None, principal) => {
            let principal = principal.unwrap_or_else(KafkaPrincipal::anonymous);
            return CALLER.scope(principal, next.run(request)).await;
        }
        (AdminAuth::Mtls, Some(principal)) => {
            return CALLER.scope(principal, next.run(request)).await;
        }
        (AdminAuth::Mtls, None) => {
            return (
                StatusCode::UNAUTHORIZED,
                "a client certificate is required\n",
            )
                .into_response();
        }
        (AdminAuth::Basic, _) => {}
    }
    let Some((user, password)) = basic_credentials(request.headers()) else {
        return challenge();
    };
    let image = state.metadata.image();
    if !state.verified.check(&image.scram, &user, &password).await {
        tracing::info!(user, "admin listener: authentication failed");
        return challenge();
    }
    CALLER
        .scope(KafkaPrincipal::user(user), next.run(request))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_parsed_strictly() {
        let mut h = HeaderMap::new();
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        // alice:s3cr:et (a password may hold a colon).
        h.insert(header::AUTHORIZATION, header("Basic YWxpY2U6czNjcjpldA=="));
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".into(), "s3cr:et".into()))
        );
        h.insert(header::AUTHORIZATION, header("Bearer abc"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, header("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
        // ":pw": no user.
        h.insert(header::AUTHORIZATION, header("Basic OnB3"));
        assert_eq!(basic_credentials(&h), None);
        assert_eq!(AdminAuth::parse("BASIC"), Ok(AdminAuth::Basic));
        assert_eq!(AdminAuth::parse("mTLS"), Ok(AdminAuth::Mtls));
        assert!(AdminAuth::parse("digest").is_err());
    }

    #[tokio::test]
    async fn passwords_are_checked_against_scram_credentials() {
        let mut scram = ScramCredentials::default();
        let c = credential_from_password(ScramMechanism::Sha256, "pw", b"salt", 4096);
        scram
            .users
            .entry("alice".into())
            .or_default()
            .insert(ScramMechanism::Sha256, c);
        let v = Verified::default();
        assert!(v.check(&scram, "alice", "pw").await);
        // Remembered, and still checked against the current credential.
        assert!(v.check(&scram, "alice", "pw").await);
        assert!(!v.check(&scram, "alice", "other").await);
        assert!(!v.check(&scram, "bob", "pw").await);
        let changed = credential_from_password(ScramMechanism::Sha256, "new", b"salt", 4096);
        scram
            .users
            .get_mut("alice")
            .unwrap()
            .insert(ScramMechanism::Sha256, changed);
        assert!(!v.check(&scram, "alice", "pw").await);
        assert!(v.check(&scram, "alice", "new").await);
    }
}
