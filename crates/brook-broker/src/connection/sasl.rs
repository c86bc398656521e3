//! A SASL listener's connection: SaslHandshake and SaslAuthenticate go to the
//! connection's [`SaslSession`] (Kafka's `SaslServerAuthenticator`), raw tokens after a
//! v0 handshake too; the session's principal changes when a mechanism succeeds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::request::{decode_request, encode_response, HeaderPeek};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use super::Outcome;
use crate::apis;
use crate::metrics::BrokerMetrics;
use crate::sasl::{AuthStep, Next, Principal, SaslSession};
use crate::session::{KafkaPrincipal, Session};

/// Kafka's `connection.failed.authentication.delay.ms` default: a failed
/// authentication's answer (and the close after it) waits this long, so a client
/// guessing passwords cannot go faster than this per connection.
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// What the connection does with a request of `api` on a SASL listener, before the
/// router sees it: `Some` answers (or closes) here, `None` lets the request through.
#[allow(clippy::too_many_arguments)]
pub(super) fn intercept(
    metrics: &BrokerMetrics,
    sasl: &mut SaslSession,
    session: &mut Arc<Session>,
    peer: SocketAddr,
    api: ApiKey,
    peek: &HeaderPeek,
    frame: &Bytes,
    now_ms: i64,
) -> Option<Outcome> {
    let sasl_api = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
    if sasl.is_authenticated() {
        // KIP-368: an expired session is closed at its next request unless that
        // request starts a re-authentication.
        let reauth = api == ApiKey::SaslHandshake && sasl.may_reauthenticate(now_ms);
        if sasl.expired(now_ms) && !reauth {
            return Some(Outcome::Close(format!(
                "SASL session of {} expired (connections.max.reauth.ms)",
                principal_name(sasl.principal())
            )));
        }
    } else if !sasl_api && api != ApiKey::ApiVersions {
        // Before authentication, or during a re-authentication.
        return Some(Outcome::Close(format!(
            "{api:?} request during SASL authentication"
        )));
    }
    if !sasl_api {
        return None;
    }
    if !apis::accepts(api, peek.api_version) {
        return Some(Outcome::Close(format!(
            "unsupported version {} of {api:?}",
            peek.api_version
        )));
    }
    let request = match decode_request(frame.clone()) {
        Ok((_, request)) => request,
        Err(e) => return Some(Outcome::Close(e.to_string())),
    };
    let (body, next) = match request {
        RequestKind::SaslHandshake(r) => {
            let (response, next) = sasl.handle_handshake(&r, peek.api_version, now_ms);
            (ResponseKind::SaslHandshake(response), next)
        }
        RequestKind::SaslAuthenticate(r) => {
            let (response, next) = sasl.handle_authenticate(&r, peek.api_version, now_ms);
            (ResponseKind::SaslAuthenticate(response), next)
        }
        _ => return Some(Outcome::Close("SASL request of another type".into())),
    };
    let bytes = match encode_response(api, peek.api_version, peek.correlation_id, &body) {
        Ok(bytes) => bytes,
        Err(e) => return Some(Outcome::Close(e.to_string())),
    };
    Some(after(metrics, sasl, session, peer, next, bytes))
}

/// A raw token (the frame after a SaslHandshake v0): answered with a bare
/// size-prefixed token; a failure closes the connection without an answer, as Kafka.
pub(super) fn raw_token(
    metrics: &BrokerMetrics,
    sasl: &mut SaslSession,
    session: &mut Arc<Session>,
    peer: SocketAddr,
    frame: &Bytes,
    now_ms: i64,
) -> Outcome {
    let (token, next) = match sasl.authenticate(frame, None, now_ms) {
        AuthStep::Challenge(token) => (token, Next::Continue),
        AuthStep::Done { token, .. } => (token, Next::Authenticated),
        AuthStep::Failed { message, .. } => {
            metrics.authentication(&session.listener.name, false);
            return Outcome::Close(format!("SASL authentication failed: {message}"));
        }
    };
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.extend_from_slice(&(token.len() as i32).to_be_bytes());
    out.extend_from_slice(&token);
    after(metrics, sasl, session, peer, next, out)
}

/// Counts the exchange's outcome once it has one: authenticated, or refused (the
/// connection closes after the answer).
fn after(
    metrics: &BrokerMetrics,
    sasl: &SaslSession,
    session: &mut Arc<Session>,
    peer: SocketAddr,
    next: Next,
    reply: BytesMut,
) -> Outcome {
    match next {
        Next::Continue => Outcome::Reply(reply),
        Next::Close => {
            metrics.authentication(&session.listener.name, false);
            Outcome::ReplyThenClose(reply)
        }
        Next::Authenticated => {
            metrics.authentication(&session.listener.name, true);
            if let Some(principal) = sasl.principal() {
                tracing::debug!(listener = %session.listener.name, %peer, %principal, "SASL client authenticated");
                *session =
                    Arc::new(session.authenticated(KafkaPrincipal::user(principal.name.clone())));
            }
            Outcome::Reply(reply)
        }
    }
}

fn principal_name(principal: Option<&Principal>) -> String {
    principal.map_or_else(|| "?".into(), |p| p.to_string())
}
