//! Who calls the admin listener (`admin.authentication`).
//!
//! - `none` (the default): every request runs as `User:ANONYMOUS`, so with an
//!   authorizer the API may do and see only what ACLs grant `User:ANONYMOUS`. A client
//!   certificate sent anyway (an `https` listener with `ssl.client.auth`) names the
//!   caller instead.
//! - Otherwise a comma-separated list of the ways a caller may prove who it is; any one
//!   of them lets it in, and every request but `/health` and `/ready` needs one:
//!   - `mtls`: a client certificate; the request runs as its principal (`User:` + its
//!     subject DN, mapped by `ssl.principal.mapping.rules`), as on a Kafka SSL listener.
//!   - `basic`: HTTP Basic credentials of a SCRAM user (the users
//!     `kafka-configs --alter --entity-type users --add-config 'SCRAM-SHA-256=[...]'`
//!     creates, who log in on SASL/SCRAM listeners too) or of a PLAIN user of the admin
//!     listener's JAAS line (`listener.name.admin.plain.sasl.jaas.config`, else
//!     `sasl.jaas.config`, as a Kafka listener named `admin` reads them).
//!   - `bearer`: `Authorization: Bearer <JWT>`, validated exactly as an OAUTHBEARER
//!     listener named `admin` would (`listener.name.admin.oauthbearer.sasl.oauthbearer.*`,
//!     ..., `sasl.oauthbearer.*`: the JWKS, expected audience and issuer, the subject
//!     claim), so the tokens clients log in with on Kafka listeners work here too.
//!
//!   The request then runs as `User:<name>`: its Kafka requests are authorized as that
//!   user's, and the lists it reads show only what the user may DESCRIBE. A request
//!   without valid credentials gets 401 with a `WWW-Authenticate` challenge per enabled
//!   scheme (a browser asks for Basic credentials).
//!
//! Checking a SCRAM password costs the credential's PBKDF2 iterations, so a verified
//! password is remembered (as a digest, with the stored key it matched) until the
//! credential changes; failures are never remembered, and the check runs off the async
//! workers. Every outcome is counted in `brook_authentications_total{listener="ADMIN"}`
//! (per request) and a failure is logged at INFO.

use std::collections::{BTreeMap, HashMap};
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
use super::{AdminState, ADMIN_LISTENER_NAME};
use crate::clock::now_ms;
pub use crate::config::AdminAuth;
use crate::sasl::oauthbearer::JwtValidator;
use crate::sasl::scram::credential_from_password;
use crate::sasl::{jwt_validator, password_matches, plain_users, SaslConfigError};
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

/// How the admin listener checks its callers: `admin.authentication` and what the
/// enabled schemes check against. Built when the listener binds.
pub struct Login {
    pub auth: AdminAuth,
    /// PLAIN users of the admin listener's JAAS line (for `basic`).
    plain_users: BTreeMap<String, String>,
    /// The OAUTHBEARER validator (for `bearer`).
    jwt: Option<Arc<JwtValidator>>,
    verified: Verified,
}

impl Login {
    /// Reads the admin listener's login settings (a start error when they are bad, as
    /// on a Kafka listener).
    pub fn from_settings(
        auth: AdminAuth,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, SaslConfigError> {
        let listener = ADMIN_LISTENER_NAME.to_ascii_lowercase();
        let plain_users = if auth.basic {
            plain_users(settings, &listener)?
        } else {
            BTreeMap::new()
        };
        let jwt = if auth.bearer {
            Some(Arc::new(jwt_validator(settings, &listener)?))
        } else {
            None
        };
        Ok(Login {
            auth,
            plain_users,
            jwt,
            verified: Verified::default(),
        })
    }

    /// Starts the JWT validator's JWKS fetches (an https JWKS URL), as a Kafka
    /// OAUTHBEARER listener does when it starts.
    pub async fn start(&self) {
        if let Some(jwt) = &self.jwt {
            jwt.start().await;
        }
    }

    /// Whether `password` is `user`'s: a SCRAM user's, or a PLAIN user's.
    async fn password_matches(&self, scram: &ScramCredentials, user: &str, password: &str) -> bool {
        // PLAIN first: a constant-time compare, no key derivation.
        password_matches(&self.plain_users, user, password)
            || self.verified.check(scram, user, password).await
    }
}

/// What an `Authorization` header claims.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

/// The credentials of an `Authorization` header (Basic or Bearer); `None` when absent
/// or malformed.
fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.trim();
        return (!token.is_empty()).then(|| Credentials::Bearer(token.to_string()));
    }
    let (user, password) = basic_credentials(headers)?;
    Some(Credentials::Basic { user, password })
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

/// 401 with a challenge per scheme `auth` enables (RFC 7235; RFC 6750 for Bearer,
/// with `error="invalid_token"` when a token was sent and refused).
fn challenge(auth: AdminAuth, bad_token: bool) -> Response {
    let message = if auth.basic || auth.bearer {
        "authentication required\n"
    } else {
        "a client certificate is required\n"
    };
    let mut response = (StatusCode::UNAUTHORIZED, message).into_response();
    let headers = response.headers_mut();
    if auth.basic {
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"brook\", charset=\"UTF-8\""),
        );
    }
    if auth.bearer {
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(if bad_token {
                "Bearer realm=\"brook\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"brook\""
            }),
        );
    }
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
    let login = &state.login;
    let auth = login.auth;
    if auth.is_none() {
        let principal = certificate.unwrap_or_else(KafkaPrincipal::anonymous);
        return CALLER.scope(principal, next.run(request)).await;
    }
    let metrics = &state.metrics;
    if let (true, Some(principal)) = (auth.mtls, certificate) {
        metrics.authentication(ADMIN_LISTENER_NAME, true);
        return CALLER.scope(principal, next.run(request)).await;
    }
    let outcome = match credentials(request.headers()) {
        Some(Credentials::Basic { user, password }) if auth.basic => {
            let image = state.metadata.image();
            if login.password_matches(&image.scram, &user, &password).await {
                Ok(KafkaPrincipal::user(user))
            } else {
                Err(format!("wrong password for user {user}"))
            }
        }
        Some(Credentials::Bearer(token)) if auth.bearer => {
            let validated = match &login.jwt {
                Some(jwt) => jwt.validate(&token, now_ms()).map_err(|e| e.0),
                None => Err("no JWT validator".into()),
            };
            validated
                .map(|valid| KafkaPrincipal::user(valid.principal))
                .map_err(|reason| format!("invalid token: {reason}"))
        }
        // No credentials (or of a scheme not enabled): challenge, nothing to count.
        _ => return challenge(auth, false),
    };
    match outcome {
        Ok(principal) => {
            metrics.authentication(ADMIN_LISTENER_NAME, true);
            CALLER.scope(principal, next.run(request)).await
        }
        Err(reason) => {
            metrics.authentication(ADMIN_LISTENER_NAME, false);
            let peer = request
                .extensions()
                .get::<ConnectInfo<PeerAddr>>()
                .map(|info| info.0 .0);
            tracing::info!(?peer, "admin listener: authentication failed: {reason}");
            challenge(auth, reason.starts_with("invalid token"))
        }
    }
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
        assert!(AdminAuth::parse("").unwrap().is_none());
        assert!(AdminAuth::parse(" None ").unwrap().is_none());
        let basic = AdminAuth {
            basic: true,
            ..AdminAuth::default()
        };
        assert_eq!(AdminAuth::parse("BASIC"), Ok(basic));
        assert_eq!(
            AdminAuth::parse("mTLS, bearer,basic"),
            Ok(AdminAuth {
                basic: true,
                bearer: true,
                mtls: true
            })
        );
        assert!(AdminAuth::parse("digest").is_err());
        assert!(AdminAuth::parse("basic,none").is_err());
        assert!(AdminAuth::parse("basic,").is_err());
    }

    #[test]
    fn authorization_headers_are_told_apart() {
        let mut h = HeaderMap::new();
        assert_eq!(credentials(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c "),
        );
        assert_eq!(credentials(&h), Some(Credentials::Bearer("a.b.c".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer   "));
        assert_eq!(credentials(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Ym9iOnB3"),
        );
        assert_eq!(
            credentials(&h),
            Some(Credentials::Basic {
                user: "bob".into(),
                password: "pw".into()
            })
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Negotiate abc"),
        );
        assert_eq!(credentials(&h), None);
    }

    #[test]
    fn login_reads_the_admin_listeners_plain_users_and_jwt_settings() {
        let mut settings = BTreeMap::new();
        settings.insert(
            "listener.name.admin.plain.sasl.jaas.config".to_string(),
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_bob="pw";"#
                .to_string(),
        );
        let both = AdminAuth::parse("basic,bearer").unwrap();
        // Bearer without a JWKS is a start error naming the setting.
        let err = Login::from_settings(both, &settings).err().unwrap();
        assert!(err.to_string().contains("jwks.endpoint.url"), "{err}");
        let login = Login::from_settings(AdminAuth::parse("basic").unwrap(), &settings).unwrap();
        assert!(password_matches(&login.plain_users, "bob", "pw"));
        assert!(!password_matches(&login.plain_users, "bob", "px"));
        assert!(login.jwt.is_none());
        settings.insert(
            "listener.name.admin.plain.sasl.jaas.config".to_string(),
            "not a jaas line".to_string(),
        );
        assert!(Login::from_settings(AdminAuth::parse("basic").unwrap(), &settings).is_err());
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
