//! SASL authentication of one connection, as Kafka's `SaslServerAuthenticator` does it,
//! without I/O: the connection hands in SaslHandshake and SaslAuthenticate requests (or,
//! after a v0 handshake, raw tokens) and sends what comes back.
//!
//! ```text
//!  AwaitingHandshake ──handshake(mech)──► Exchanging ──authenticate(token)*──► Authenticated
//!        │ unknown mechanism                 │ bad credentials, bad token           │
//!        ▼                                    ▼                                      │ handshake (KIP-368
//!      Failed (close after the answer) ◄──────┘                                      │ re-authentication,
//!                                                          Exchanging (same mech) ◄──┘ same principal)
//! ```
//!
//! Mechanisms: PLAIN against the listener's JAAS users (`plain`), SCRAM-SHA-256/512
//! against the metadata image's credentials (`scram`, on `rsasl`), OAUTHBEARER with a JWT
//! checked against a JWKS (`oauthbearer`). Listener settings are in `config`.

mod config;
pub mod jaas;
mod jwks;
pub mod oauthbearer;
mod plain;
pub mod scram;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

pub use config::{
    is_sasl_setting, is_secret_setting, jwt_validator, plain_users, Mechanism, SaslConfigError,
    SaslServerConfig, DEFAULT_MAX_RECEIVE_BYTES,
};
pub(crate) use plain::password_matches;
pub use scram::ScramCredentialStore;

use scram::{ScramExchange, ScramStep};

/// Kafka's `KafkaPrincipal` for a SASL user: `User:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub name: String,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "User:{}", self.name)
    }
}

/// What one token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send `token` back; the client answers with another.
    Challenge(Bytes),
    /// Authenticated: send `token` back (possibly empty) with the session lifetime.
    Done {
        principal: Principal,
        token: Bytes,
        /// KIP-368: how long the session lasts (0: no limit); SaslAuthenticate v1+.
        session_lifetime_ms: i64,
    },
    /// Send the error; the connection closes after it unless `close` is false.
    Failed {
        code: ResponseError,
        message: String,
        close: bool,
    },
}

/// What the connection does after sending a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep reading SASL requests (or, once authenticated, anything).
    Continue,
    /// The client is authenticated (or re-authenticated): serve its requests.
    Authenticated,
    /// Close the connection once the response is written.
    Close,
}

/// The handshake was refused: answer with `code` and the enabled mechanisms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRefused {
    pub code: ResponseError,
}

enum Exchange {
    Plain,
    Scram(Box<ScramExchange>),
    /// `error`: the JSON error sent as a challenge; the client's `\x01` ends the exchange.
    OAuth {
        error: Option<String>,
    },
}

/// Why an OAUTHBEARER message did not authenticate.
enum OAuthFailure {
    /// Send this JSON error as a challenge (RFC 7628 §3.2.2).
    Challenge(String),
    /// Fail now: the claimed user and Kafka's message (`None`: the generic one).
    Fail(Option<String>, Option<String>),
}

enum SessionState {
    AwaitingHandshake,
    Exchanging {
        mechanism: Mechanism,
        exchange: Exchange,
    },
    /// Re-authentication asked for another mechanism: the next token fails (Kafka).
    BadReauthMechanism {
        message: String,
    },
    Authenticated,
    Failed,
}

/// Who authenticated, how, and until when.
#[derive(Debug, Clone)]
struct Session {
    principal: Principal,
    mechanism: Mechanism,
    authenticated_at_ms: i64,
    /// `None`: the session does not expire.
    expires_at_ms: Option<i64>,
}

/// Kafka refuses a re-authentication sooner than this after the last one.
const MIN_REAUTH_INTERVAL_MS: i64 = 1000;

/// One connection's SASL state machine.
pub struct SaslSession {
    config: Arc<SaslServerConfig>,
    store: Arc<dyn ScramCredentialStore>,
    peer: SocketAddr,
    state: SessionState,
    /// Set once authenticated; kept through a re-authentication.
    session: Option<Session>,
    /// Tokens come as raw frames (SaslHandshake v0), not in SaslAuthenticate.
    raw_tokens: bool,
    /// The client sent SaslAuthenticate v1+, so it re-authenticates by itself (KIP-368).
    client_supports_reauth: bool,
}

impl SaslSession {
    pub fn new(
        config: Arc<SaslServerConfig>,
        store: Arc<dyn ScramCredentialStore>,
        peer: SocketAddr,
    ) -> Self {
        SaslSession {
            config,
            store,
            peer,
            state: SessionState::AwaitingHandshake,
            session: None,
            raw_tokens: false,
            client_supports_reauth: false,
        }
    }

    /// The authenticated principal (kept while a re-authentication runs).
    pub fn principal(&self) -> Option<&Principal> {
        self.session.as_ref().map(|s| &s.principal)
    }

    /// Whether requests other than SASL ones may be served now.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, SessionState::Authenticated)
    }

    /// After a SaslHandshake v0, the next tokens arrive as bare size-prefixed frames
    /// and are answered the same way (no Kafka header).
    pub fn raw_tokens(&self) -> bool {
        self.raw_tokens && matches!(self.state, SessionState::Exchanging { .. })
    }

    /// The largest frame the connection may accept while not authenticated.
    pub fn max_receive_bytes(&self) -> usize {
        self.config.max_receive_bytes
    }

    /// Whether the session has expired (`connections.max.reauth.ms`): Kafka closes such
    /// a connection at its next request, unless that request starts a re-authentication.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.expires_at_ms)
            .is_some_and(|t| now_ms >= t)
    }

    /// Whether a SaslHandshake now starts a re-authentication (KIP-368): authenticated,
    /// with a client that uses SaslAuthenticate v1+, at least a second after the last.
    pub fn may_reauthenticate(&self, now_ms: i64) -> bool {
        self.is_authenticated()
            && self.client_supports_reauth
            && self
                .session
                .as_ref()
                .is_some_and(|s| now_ms - s.authenticated_at_ms >= MIN_REAUTH_INTERVAL_MS)
    }

    /// SaslHandshake: choose the mechanism. `version` 0 means raw tokens follow.
    pub fn handshake(
        &mut self,
        version: i16,
        mechanism: &str,
        now_ms: i64,
    ) -> Result<(), HandshakeRefused> {
        let reauth = self.may_reauthenticate(now_ms);
        if !matches!(self.state, SessionState::AwaitingHandshake) && !reauth {
            return Err(HandshakeRefused {
                code: ResponseError::IllegalSaslState,
            });
        }
        let Some(m) = Mechanism::from_name(mechanism).filter(|m| self.config.enabled.contains(m))
        else {
            self.state = SessionState::Failed;
            audit_failure(
                &self.config,
                self.peer,
                mechanism,
                None,
                "unsupported mechanism",
            );
            return Err(HandshakeRefused {
                code: ResponseError::UnsupportedSaslMechanism,
            });
        };
        self.raw_tokens = version == 0;
        if let Some(previous) = self.session.as_ref().filter(|_| reauth) {
            if previous.mechanism != m {
                self.state = SessionState::BadReauthMechanism {
                    message: format!(
                        "SASL mechanism '{}' requested by client is not supported for re-authentication of mechanism '{}' by principal {}",
                        m.name(),
                        previous.mechanism.name(),
                        previous.principal
                    ),
                };
                return Ok(());
            }
        }
        let exchange = match m {
            Mechanism::Plain => Some(Exchange::Plain),
            Mechanism::OAuthBearer => self
                .config
                .oauth
                .is_some()
                .then_some(Exchange::OAuth { error: None }),
            Mechanism::Scram(s) => {
                ScramExchange::start(s, self.store.clone(), self.config.fake_key.clone())
                    .map(|e| Exchange::Scram(Box::new(e)))
            }
        };
        let Some(exchange) = exchange else {
            self.state = SessionState::Failed;
            tracing::warn!(
                mechanism = m.name(),
                "could not start a SASL server session"
            );
            return Err(HandshakeRefused {
                code: ResponseError::UnsupportedSaslMechanism,
            });
        };
        self.state = SessionState::Exchanging {
            mechanism: m,
            exchange,
        };
        Ok(())
    }

    /// One token from the client: the bytes of a SaslAuthenticate request of
    /// `version`, or a raw token (`version: None`) after a v0 handshake.
    pub fn authenticate(&mut self, token: &[u8], version: Option<i16>, now_ms: i64) -> AuthStep {
        if version.is_some_and(|v| v > 0) {
            self.client_supports_reauth = true;
        }
        let state = std::mem::replace(&mut self.state, SessionState::Failed);
        let (mechanism, mut exchange) = match state {
            SessionState::Exchanging {
                mechanism,
                exchange,
            } => (mechanism, exchange),
            SessionState::Authenticated => {
                // KafkaApis' answer; the connection stays open.
                self.state = SessionState::Authenticated;
                return AuthStep::Failed {
                    code: ResponseError::IllegalSaslState,
                    message: "SaslAuthenticate request received after successful authentication"
                        .into(),
                    close: false,
                };
            }
            SessionState::BadReauthMechanism { message } => {
                return self.fail_with(ResponseError::SaslAuthenticationFailed, message);
            }
            SessionState::AwaitingHandshake | SessionState::Failed => {
                return self.fail_with(
                    ResponseError::IllegalSaslState,
                    "Unexpected SaslAuthenticate request before a successful SaslHandshake".into(),
                );
            }
        };
        if token.len() > self.config.max_receive_bytes {
            audit_failure(
                &self.config,
                self.peer,
                mechanism.name(),
                None,
                "token too large",
            );
            return self.fail_with(
                ResponseError::SaslAuthenticationFailed,
                "Failing SASL authentication due to invalid receive size".into(),
            );
        }
        let mut expires_at_ms = None;
        let outcome = match &mut exchange {
            Exchange::Plain => plain::authenticate(&self.config.plain_users, token)
                .map(|user| (user, Bytes::new()))
                .map_err(|f| (f.user, f.message.map(str::to_string))),
            Exchange::OAuth { error: Some(error) } if token == b"\x01" => {
                // RFC 7628 §3.2.3: the client acknowledged our error; Kafka fails with it.
                let error = error.clone();
                return self.fail_with(ResponseError::SaslAuthenticationFailed, error);
            }
            Exchange::OAuth { error } => match self.oauth(token, now_ms) {
                Ok((user, expiry)) => {
                    expires_at_ms = expiry;
                    Ok((user, Bytes::new()))
                }
                Err(OAuthFailure::Challenge(json)) => {
                    *error = Some(json.clone());
                    self.state = SessionState::Exchanging {
                        mechanism,
                        exchange,
                    };
                    return AuthStep::Challenge(Bytes::from(json));
                }
                Err(OAuthFailure::Fail(user, message)) => Err((user, message)),
            },
            Exchange::Scram(scram) => match scram.step(token) {
                ScramStep::Challenge(out) => {
                    self.state = SessionState::Exchanging {
                        mechanism,
                        exchange,
                    };
                    return AuthStep::Challenge(Bytes::from(out));
                }
                ScramStep::Done { user, server_final } => Ok((user, Bytes::from(server_final))),
                ScramStep::Failed { user } => Err((user, None)),
            },
        };
        match outcome {
            Ok((user, token)) => self.succeed(mechanism, user, token, now_ms, expires_at_ms),
            Err((user, message)) => {
                let what = if self.session.is_some() {
                    "re-authentication"
                } else {
                    "authentication"
                };
                audit_failure(
                    &self.config,
                    self.peer,
                    mechanism.name(),
                    user.as_deref(),
                    message.as_deref().unwrap_or("invalid credentials"),
                );
                let message = message.unwrap_or_else(|| {
                    format!(
                        "Authentication failed during {what} due to invalid credentials with SASL mechanism {}",
                        mechanism.name()
                    )
                });
                self.fail_with(ResponseError::SaslAuthenticationFailed, message)
            }
        }
    }

    fn succeed(
        &mut self,
        mechanism: Mechanism,
        user: String,
        token: Bytes,
        now_ms: i64,
        credential_expires_at_ms: Option<i64>,
    ) -> AuthStep {
        let principal = Principal { name: user };
        if let Some(previous) = &self.session {
            if previous.principal != principal {
                let message = format!(
                    "Cannot change principals during re-authentication from {}: {}",
                    previous.principal, principal
                );
                audit_failure(
                    &self.config,
                    self.peer,
                    mechanism.name(),
                    Some(&principal.name),
                    &message,
                );
                return self.fail_with(ResponseError::SaslAuthenticationFailed, message);
            }
        }
        let max_reauth_ms = self
            .config
            .max_reauth_ms
            .get(mechanism.name())
            .copied()
            .unwrap_or(0)
            .max(0);
        // Kafka's SaslServerAuthenticator: a credential's expiry bounds the session.
        let lifetime_ms = match credential_expires_at_ms {
            None => max_reauth_ms,
            Some(exp) if max_reauth_ms == 0 => (exp - now_ms).max(0),
            Some(exp) => (exp - now_ms).min(max_reauth_ms).max(0),
        };
        tracing::debug!(
            listener = %self.config.listener,
            client = %self.peer,
            mechanism = mechanism.name(),
            %principal,
            "authenticated"
        );
        self.session = Some(Session {
            principal: principal.clone(),
            mechanism,
            authenticated_at_ms: now_ms,
            // Kafka: a session with a credential expiry or a reauth limit ends then, even
            // when that is now (a token accepted within the clock skew).
            expires_at_ms: (credential_expires_at_ms.is_some() || max_reauth_ms > 0)
                .then(|| now_ms.saturating_add(lifetime_ms)),
        });
        self.state = SessionState::Authenticated;
        AuthStep::Done {
            principal,
            token,
            session_lifetime_ms: lifetime_ms,
        }
    }

    /// Validates an OAUTHBEARER client message: the user and the token's expiry, or the
    /// JSON error to send as a challenge.
    fn oauth(&self, message: &[u8], now_ms: i64) -> Result<(String, Option<i64>), OAuthFailure> {
        let Some(validator) = &self.config.oauth else {
            return Err(OAuthFailure::Fail(None, None));
        };
        let Some((authzid, token)) = oauthbearer::parse_client_message(message) else {
            audit_failure(
                &self.config,
                self.peer,
                "OAUTHBEARER",
                None,
                "malformed client message",
            );
            return Err(OAuthFailure::Fail(None, None));
        };
        match validator.validate(&token, now_ms) {
            Ok(valid) if authzid.is_empty() || authzid == valid.principal => {
                Ok((valid.principal, Some(valid.expires_at_ms)))
            }
            Ok(valid) => Err(OAuthFailure::Fail(
                Some(valid.principal.clone()),
                Some(format!(
                    "Authentication failed: Client requested an authorization id ({authzid}) that is different from the token's principal name ({})",
                    valid.principal
                )),
            )),
            Err(e) => {
                audit_failure(&self.config, self.peer, "OAUTHBEARER", None, &format!("invalid token: {e}"));
                Err(OAuthFailure::Challenge(oauthbearer::INVALID_TOKEN.to_string()))
            }
        }
    }

    fn fail_with(&mut self, code: ResponseError, message: String) -> AuthStep {
        self.state = SessionState::Failed;
        AuthStep::Failed {
            code,
            message,
            close: true,
        }
    }

    /// Answers a SaslHandshake request.
    pub fn handle_handshake(
        &mut self,
        request: &SaslHandshakeRequest,
        version: i16,
        now_ms: i64,
    ) -> (SaslHandshakeResponse, Next) {
        let mechanisms = self
            .config
            .enabled_mechanisms()
            .map(StrBytes::from_static_str)
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        match self.handshake(version, &request.mechanism, now_ms) {
            Ok(()) => (response, Next::Continue),
            Err(refused) => {
                let next = if refused.code == ResponseError::UnsupportedSaslMechanism {
                    Next::Close
                } else {
                    Next::Continue
                };
                (response.with_error_code(refused.code.code()), next)
            }
        }
    }

    /// Answers a SaslAuthenticate request.
    pub fn handle_authenticate(
        &mut self,
        request: &SaslAuthenticateRequest,
        version: i16,
        now_ms: i64,
    ) -> (SaslAuthenticateResponse, Next) {
        match self.authenticate(&request.auth_bytes, Some(version), now_ms) {
            AuthStep::Challenge(token) => (
                SaslAuthenticateResponse::default().with_auth_bytes(token),
                Next::Continue,
            ),
            AuthStep::Done {
                token,
                session_lifetime_ms,
                ..
            } => (
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(token)
                    .with_session_lifetime_ms(session_lifetime_ms),
                Next::Authenticated,
            ),
            AuthStep::Failed {
                code,
                message,
                close,
            } => (
                SaslAuthenticateResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
                if close { Next::Close } else { Next::Continue },
            ),
        }
    }
}

/// What a listener without SASL (or a connection already authenticated that may not
/// re-authenticate now) answers, as Kafka's `KafkaApis` does.
pub fn handshake_not_expected() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

/// See [`handshake_not_expected`].
pub fn authenticate_not_expected() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_static_str(
            "SaslAuthenticate request received after successful authentication",
        )))
}

/// Authentication failures are logged at INFO, at most `AUDIT_BURST` a second; the
/// rest are counted and the count logged with the next line that gets through.
const AUDIT_BURST: u64 = 10;
static AUDIT_SECOND: AtomicI64 = AtomicI64::new(0);
static AUDIT_IN_SECOND: AtomicU64 = AtomicU64::new(0);
static AUDIT_SUPPRESSED: AtomicU64 = AtomicU64::new(0);

fn audit_failure(
    config: &SaslServerConfig,
    peer: SocketAddr,
    mechanism: &str,
    principal: Option<&str>,
    reason: &str,
) {
    let second = crate::clock::now_ms() / 1000;
    if AUDIT_SECOND.swap(second, Ordering::Relaxed) != second {
        AUDIT_IN_SECOND.store(0, Ordering::Relaxed);
    }
    if AUDIT_IN_SECOND.fetch_add(1, Ordering::Relaxed) >= AUDIT_BURST {
        AUDIT_SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let suppressed = AUDIT_SUPPRESSED.swap(0, Ordering::Relaxed);
    tracing::info!(
        listener = %config.listener,
        client = %peer,
        mechanism,
        principal = principal.map(|p| format!("User:{p}")).as_deref().unwrap_or("-"),
        suppressed,
        "authentication failed: {reason}"
    );
}

/// The SASL/PLAIN login a node uses on its peers' controller listeners.
#[derive(Clone)]
pub struct PeerLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PeerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLogin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The PLAIN login a node uses on its peers' SASL controller listener: the `username`
/// and `password` options of that listener's PLAIN JAAS line
/// (`listener.name.<controller>.plain.sasl.jaas.config`, else `sasl.jaas.config`), as
/// Kafka's controllers take theirs. `sasl.mechanism.controller.protocol`, if set, must
/// be PLAIN.
pub fn peer_login(
    settings: &std::collections::BTreeMap<String, String>,
    listener: &str,
) -> Result<PeerLogin, String> {
    if let Some(m) = settings.get("sasl.mechanism.controller.protocol") {
        if !m.trim().eq_ignore_ascii_case("PLAIN") {
            return Err(format!(
                "sasl.mechanism.controller.protocol={m}: nodes log in to each other with PLAIN"
            ));
        }
    }
    let key = format!(
        "listener.name.{}.plain.sasl.jaas.config",
        listener.to_ascii_lowercase()
    );
    let line = settings
        .get(&key)
        .or_else(|| settings.get("sasl.jaas.config"))
        .ok_or_else(|| format!("a SASL controller listener needs {key} with username and password (this node's login) and user_<name> entries"))?;
    let modules = jaas::parse(line).map_err(|e| format!("{key}: {e}"))?;
    let option = |name: &str| modules.iter().find_map(|m| m.options.get(name).cloned());
    match (option("username"), option("password")) {
        (Some(username), Some(password)) => Ok(PeerLogin { username, password }),
        _ => Err(format!(
            "{key} needs username and password options: this node's login to its peers"
        )),
    }
}
