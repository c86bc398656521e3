//! SASL/OAUTHBEARER (RFC 7628) as a Kafka 4 broker with `OAuthBearerValidatorCallbackHandler`
//! (KIP-768) does it: the client's first message carries a JWT, whose signature is checked
//! against the keys of a JWKS and whose claims are checked as Kafka's
//! `ValidatorAccessTokenValidator` does (`exp` and `iat` required, `nbf`, `aud`, `iss`
//! with the allowed clock skew, a non-empty subject claim, a scope claim without
//! duplicates). The subject is the principal (`User:<sub>`).
//!
//! Settings (Kafka's names, under `listener.name.<l>.oauthbearer.` or global):
//! `sasl.oauthbearer.jwks.endpoint.url` (a `file:` URL read at start, or an `https:` /
//! `http:` URL fetched and refreshed: see [`super::jwks`]), `...jwks.endpoint.refresh.ms`,
//! `...jwks.endpoint.retry.backoff.ms`, `...jwks.endpoint.retry.backoff.max.ms`,
//! `sasl.oauthbearer.expected.audience`, `sasl.oauthbearer.expected.issuer`,
//! `sasl.oauthbearer.sub.claim.name`, `sasl.oauthbearer.scope.claim.name`,
//! `sasl.oauthbearer.clock.skew.seconds`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::config::SaslConfigError;
use super::jwks::{parse_jwks, KeySet, Remote, ALGORITHMS};

/// The JSON error a failed validation answers with (RFC 7628 §3.2.2).
pub(super) const INVALID_TOKEN: &str = r#"{"status":"invalid_token"}"#;

/// Kafka's broker-side JWT validator, built once per listener.
pub struct JwtValidator {
    keys: Arc<KeySet>,
    audiences: BTreeSet<String>,
    issuer: Option<String>,
    sub_claim: String,
    scope_claim: String,
    clock_skew_s: i64,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("keys", &self.keys)
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("sub_claim", &self.sub_claim)
            .finish_non_exhaustive()
    }
}

/// A token that passed: who, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    pub principal: String,
    pub expires_at_ms: i64,
    pub scopes: BTreeSet<String>,
}

/// Why a token was refused (logged; the client only sees [`INVALID_TOKEN`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidToken(pub String);

fn invalid(reason: impl Into<String>) -> InvalidToken {
    InvalidToken(reason.into())
}

impl JwtValidator {
    /// Reads the settings through `lookup` (which applies the listener prefixes and
    /// returns the key it found a value under).
    pub fn from_settings(
        lookup: &dyn Fn(&str) -> Option<(String, String)>,
    ) -> Result<Self, SaslConfigError> {
        let bad = |key: &str, reason: String| SaslConfigError::Invalid {
            key: key.to_string(),
            reason,
        };
        if let Some((key, class)) = lookup("sasl.server.callback.handler.class") {
            if !class
                .trim()
                .ends_with(".OAuthBearerValidatorCallbackHandler")
            {
                return Err(bad(
                    &key,
                    format!("only Kafka's OAuthBearerValidatorCallbackHandler is supported, got '{class}'"),
                ));
            }
        }
        let Some((url_key, url)) = lookup("sasl.oauthbearer.jwks.endpoint.url") else {
            return Err(bad(
                "sasl.oauthbearer.jwks.endpoint.url",
                "OAUTHBEARER is enabled but no JWKS is configured (Brook does not accept unsecured tokens)".into(),
            ));
        };
        let url = url.trim();
        let keys = if let Some(path) = url.strip_prefix("file:") {
            // file:///a/b and file:/a/b both name /a/b.
            let path = path.strip_prefix("//").unwrap_or(path);
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(&url_key, format!("cannot read {path}: {e}")))?;
            KeySet::fixed(parse_jwks(&text).map_err(|reason| bad(&url_key, reason))?)
        } else if url.starts_with("https://") || url.starts_with("http://") {
            KeySet::remote(remote(lookup, &url_key, url)?)
        } else {
            return Err(bad(
                &url_key,
                format!("expected a file:, https: or http: URL, got '{url}'"),
            ));
        };
        let audiences = lookup("sasl.oauthbearer.expected.audience")
            .map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let issuer = lookup("sasl.oauthbearer.expected.issuer")
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let claim_name = |key: &str, default: &str| match lookup(key) {
            Some((k, v)) if v.trim().is_empty() => Err(bad(&k, "must not be empty".into())),
            Some((_, v)) => Ok(v.trim().to_string()),
            None => Ok(default.to_string()),
        };
        let sub_claim = claim_name("sasl.oauthbearer.sub.claim.name", "sub")?;
        let scope_claim = claim_name("sasl.oauthbearer.scope.claim.name", "scope")?;
        let clock_skew_s = match lookup("sasl.oauthbearer.clock.skew.seconds") {
            Some((k, v)) => match v.trim().parse::<i64>() {
                Ok(s) if s >= 0 => s,
                _ => return Err(bad(&k, format!("expected seconds >= 0, got '{v}'"))),
            },
            None => 30,
        };
        tracing::info!(jwks = %url, ?audiences, ?issuer, "OAUTHBEARER validator ready");
        Ok(JwtValidator {
            keys: Arc::new(keys),
            audiences,
            issuer,
            sub_claim,
            scope_claim,
            clock_skew_s,
        })
    }

    /// Fetches a remote JWKS for the first time and starts refreshing it (nothing for a
    /// file).
    pub async fn start(&self) {
        self.keys.start().await;
    }

    /// Validates a JWT at `now_ms`.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, InvalidToken> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("malformed token: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let claims = self.verify(token, &header)?;
        let skew_ms = self.clock_skew_s.saturating_mul(1000);
        let exp = numeric_date(&claims, "exp")?.ok_or_else(|| invalid("no exp claim"))?;
        if exp < 0 {
            return Err(invalid("exp is negative"));
        }
        if now_ms > exp.saturating_add(skew_ms) {
            return Err(invalid(format!("token expired at {exp} ms")));
        }
        match numeric_date(&claims, "iat")? {
            None => return Err(invalid("no iat claim")),
            Some(iat) if iat < 0 => return Err(invalid("iat is negative")),
            Some(_) => {}
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")? {
            if now_ms.saturating_add(skew_ms) < nbf {
                return Err(invalid(format!("token not valid before {nbf} ms")));
            }
        }
        if !self.audiences.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => self.audiences.contains(a),
                Some(Value::Array(list)) => list
                    .iter()
                    .any(|a| a.as_str().is_some_and(|a| self.audiences.contains(a))),
                _ => false,
            };
            if !ok {
                return Err(invalid("aud is not an expected audience"));
            }
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(invalid("iss is not the expected issuer"));
            }
        }
        let principal = match claims.get(&self.sub_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(invalid(format!(
                    "claim '{}' is missing or not a non-empty string",
                    self.sub_claim
                )))
            }
        };
        let scopes = self.scopes(&claims)?;
        Ok(ValidToken {
            principal,
            expires_at_ms: exp,
            scopes,
        })
    }

    /// Checks the signature with the JWKS keys the header may mean; returns the claims.
    fn verify(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<Map<String, Value>, InvalidToken> {
        let rsa = header.alg != Algorithm::ES256;
        let mut validation = Validation::new(header.alg);
        // Claims are checked by `validate` (with its own clock and Kafka's rules).
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let keys = self.keys.keys();
        let mut candidates = keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .filter(|k| k.rsa == rsa && k.alg.is_none_or(|a| a == header.alg))
            .peekable();
        if candidates.peek().is_none() {
            // Maybe the provider rotated its keys: fetch them again for the next try.
            self.keys.expedite();
            return Err(invalid(format!(
                "no JWKS key for kid {:?} and algorithm {:?}",
                header.kid, header.alg
            )));
        }
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = Some(e),
            }
        }
        Err(invalid(format!(
            "signature check failed: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    fn scopes(&self, claims: &Map<String, Value>) -> Result<BTreeSet<String>, InvalidToken> {
        let raw: Vec<&str> = match claims.get(&self.scope_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().ok_or_else(|| invalid("scope is not a string")))
                .collect::<Result<_, _>>()?,
            Some(_) => Vec::new(),
        };
        let mut scopes = BTreeSet::new();
        for scope in raw {
            let scope = scope.trim();
            if scope.is_empty() {
                return Err(invalid("empty scope"));
            }
            if !scopes.insert(scope.to_string()) {
                return Err(invalid(format!("duplicate scope {scope}")));
            }
        }
        Ok(scopes)
    }
}

/// A NumericDate claim (seconds, maybe fractional) in ms; `None` when absent.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, InvalidToken> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && s.abs() < 1e14)
            .map(|s| Some((s * 1000.0) as i64))
            .ok_or_else(|| invalid(format!("{name} is not a number"))),
    }
}

/// The remote JWKS settings: refresh and retry periods, and for https the CA
/// certificates to trust, from the `ssl.truststore.*` options of the listener's
/// OAuthBearerLoginModule JAAS line (where Kafka's validator reads its SSL client
/// settings), else the system's.
fn remote(
    lookup: &dyn Fn(&str) -> Option<(String, String)>,
    url_key: &str,
    url: &str,
) -> Result<Remote, SaslConfigError> {
    let bad = |key: &str, reason: String| SaslConfigError::Invalid {
        key: key.to_string(),
        reason,
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| bad(url_key, format!("not a URL: {e}")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad(url_key, format!("no host in '{url}'")));
    }
    let ms = |key: &str, default: u64| -> Result<Duration, SaslConfigError> {
        match lookup(key) {
            Some((k, v)) => match v.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                _ => Err(bad(&k, format!("expected milliseconds > 0, got '{v}'"))),
            },
            None => Ok(Duration::from_millis(default)),
        }
    };
    let tls = if uri.scheme_str() == Some("https") {
        let mut ssl = BTreeMap::new();
        if let Some((key, line)) = lookup("sasl.jaas.config") {
            let modules = super::jaas::parse(&line).map_err(|e| bad(&key, e))?;
            for module in modules
                .into_iter()
                .filter(|m| m.class.ends_with(".OAuthBearerLoginModule"))
            {
                ssl.extend(
                    module
                        .options
                        .into_iter()
                        .filter(|(k, _)| k.starts_with("ssl.truststore.")),
                );
            }
        }
        let settings = crate::tls::TlsSettings::resolve(&ssl, "oauthbearer")
            .map_err(|e| bad(url_key, format!("TLS for the JWKS: {e}")))?;
        Some(
            crate::tls::https_client_config(&settings)
                .map_err(|e| bad(url_key, format!("TLS for the JWKS: {e}")))?,
        )
    } else {
        None
    };
    Ok(Remote {
        url: uri,
        tls,
        refresh: ms("sasl.oauthbearer.jwks.endpoint.refresh.ms", 3_600_000)?,
        backoff: ms("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", 100)?,
        backoff_max: ms(
            "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
            10_000,
        )?,
    })
}

/// The token of an RFC 7628 client first message
/// (`gs2-header \x01 auth=Bearer <token> \x01 [key=value \x01]* \x01`), and its
/// authorization id (may be empty). Extensions are read and ignored, as Kafka's
/// validator (which validates none) does.
pub(super) fn parse_client_message(message: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(message).ok()?;
    let (gs2, rest) = text.split_once('\x01')?;
    let mut gs2 = gs2.split(',');
    let (Some(flag), Some(authzid), Some(""), None) =
        (gs2.next(), gs2.next(), gs2.next(), gs2.next())
    else {
        return None;
    };
    if flag != "n" && flag != "y" {
        return None;
    }
    let authzid = match authzid {
        "" => String::new(),
        a => a
            .strip_prefix("a=")?
            .replace("=2C", ",")
            .replace("=3D", "="),
    };
    let body = rest.strip_suffix("\x01\x01")?;
    let mut token = None;
    for kv in body.split('\x01') {
        let (key, value) = kv.split_once('=')?;
        if key == "auth" {
            let (scheme, value) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.is_some() {
                return None;
            }
            token = Some(value.trim().to_string());
        } else if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
    }
    token.filter(|t| !t.is_empty()).map(|t| (authzid, t))
}

#[cfg(test)]
#[path = "oauthbearer_tests.rs"]
mod tests;
