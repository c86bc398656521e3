//! A SASL listener's settings, from Kafka's property names:
//!
//! - `sasl.enabled.mechanisms` (or `listener.name.<l>.sasl.enabled.mechanisms`): any of
//!   `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`. Kafka's default, `GSSAPI`,
//!   is not supported, so when the setting is absent Brook enables both SCRAM mechanisms,
//!   and PLAIN when the listener has a PLAIN JAAS line. Naming an unsupported mechanism
//!   (`GSSAPI`) is a start error, as is enabling PLAIN without users.
//! - OAUTHBEARER: the `sasl.oauthbearer.*` settings of `oauthbearer`, under
//!   `listener.name.<l>.oauthbearer.` (Kafka's prefix), `listener.name.<l>.`, or global.
//! - PLAIN users: `user_<name>="<password>"` options of
//!   `listener.name.<l>.plain.sasl.jaas.config` (Kafka's), or else of
//!   `sasl.jaas.config` (a Brook convenience; Kafka's broker reads only the former or a
//!   JAAS file).
//! - `connections.max.reauth.ms` (or `listener.name.<l>.[<mechanism>.]connections.max.reauth.ms`):
//!   the session lifetime (KIP-368); 0, the default, means sessions never expire.
//! - `sasl.server.max.receive.size`: the largest frame a client may send before it is
//!   authenticated (Kafka's default, 512 KiB), and so the largest SASL token.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_meta::ScramMechanism;
use rand::RngCore;

use super::jaas;
use super::oauthbearer::JwtValidator;

/// Kafka's `sasl.server.max.receive.size` default.
pub const DEFAULT_MAX_RECEIVE_BYTES: usize = 524_288;

/// A SASL mechanism Brook serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Scram(ScramMechanism::Sha512),
        Mechanism::OAuthBearer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslConfigError {
    #[error("{key}: SASL mechanism {mechanism} is not supported by Brook (supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)")]
    Unsupported { key: String, mechanism: String },
    #[error("{key}: no SASL mechanism is enabled")]
    NoneEnabled { key: String },
    #[error("PLAIN is enabled on listener {listener} but it has no users: set listener.name.{listener}.plain.sasl.jaas.config to a PlainLoginModule line with user_<name>=\"<password>\" options")]
    NoPlainUsers { listener: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// The SASL side of one listener, built once when the listener starts and shared by
/// its connections.
pub struct SaslServerConfig {
    pub(super) listener: String,
    pub(super) enabled: Vec<Mechanism>,
    pub(super) plain_users: BTreeMap<String, String>,
    /// Session lifetime per mechanism, ms; 0: no expiry.
    pub(super) max_reauth_ms: BTreeMap<&'static str, i64>,
    pub(super) max_receive_bytes: usize,
    /// Secret the salts of unknown SCRAM users are derived from (see `scram`).
    pub(super) fake_key: Arc<[u8; 32]>,
    /// The JWT validator, when OAUTHBEARER is enabled.
    pub(super) oauth: Option<Arc<JwtValidator>>,
}

impl std::fmt::Debug for SaslServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslServerConfig")
            .field("listener", &self.listener)
            .field("enabled", &self.enabled)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .field("max_reauth_ms", &self.max_reauth_ms)
            .field("max_receive_bytes", &self.max_receive_bytes)
            .finish_non_exhaustive()
    }
}

impl SaslServerConfig {
    /// Reads listener `listener`'s SASL settings (Kafka names, as given to the broker).
    pub fn from_settings(
        settings: &BTreeMap<String, String>,
        listener: &str,
    ) -> Result<Self, SaslConfigError> {
        let listener = listener.to_ascii_lowercase();
        let prefix = format!("listener.name.{listener}.");
        let lookup = |key: &str| -> Option<(String, &str)> {
            let scoped = format!("{prefix}{key}");
            match settings.get(&scoped) {
                Some(v) => Some((scoped, v.as_str())),
                None => settings.get(key).map(|v| (key.to_string(), v.as_str())),
            }
        };
        let plain_users = plain_users(settings, &listener)?;
        let enabled = match lookup("sasl.enabled.mechanisms").filter(|(_, v)| !v.trim().is_empty())
        {
            Some((key, list)) => parse_mechanisms(&key, list)?,
            None => {
                let mut default = vec![
                    Mechanism::Scram(ScramMechanism::Sha256),
                    Mechanism::Scram(ScramMechanism::Sha512),
                ];
                if !plain_users.is_empty() {
                    default.insert(0, Mechanism::Plain);
                }
                default
            }
        };
        if enabled.contains(&Mechanism::Plain) && plain_users.is_empty() {
            return Err(SaslConfigError::NoPlainUsers { listener });
        }
        let mut max_reauth_ms = BTreeMap::new();
        for m in &enabled {
            let mech_key = format!(
                "{}.connections.max.reauth.ms",
                m.name().to_ascii_lowercase()
            );
            let found = settings
                .get(&format!("{prefix}{mech_key}"))
                .map(|v| (format!("{prefix}{mech_key}"), v.as_str()))
                .or_else(|| lookup("connections.max.reauth.ms"));
            let ms = match found {
                Some((key, v)) => parse_int(&key, v, 0)?,
                None => 0,
            };
            max_reauth_ms.insert(m.name(), ms);
        }
        let max_receive_bytes = match lookup("sasl.server.max.receive.size") {
            Some((key, v)) => usize::try_from(parse_int(&key, v, 1)?).unwrap_or(usize::MAX),
            None => DEFAULT_MAX_RECEIVE_BYTES,
        };
        let mut fake_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut fake_key);
        let oauth = if enabled.contains(&Mechanism::OAuthBearer) {
            Some(Arc::new(jwt_validator(settings, &listener)?))
        } else {
            None
        };
        Ok(SaslServerConfig {
            oauth,
            listener,
            enabled,
            plain_users,
            max_reauth_ms,
            max_receive_bytes,
            fake_key: Arc::new(fake_key),
        })
    }

    /// Starts what runs beside the listener: the OAUTHBEARER validator's JWKS fetches
    /// (for an http(s) JWKS URL).
    pub async fn start(&self) {
        if let Some(validator) = &self.oauth {
            validator.start().await;
        }
    }

    /// The mechanisms this listener offers, in the order SaslHandshake lists them.
    pub fn enabled_mechanisms(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.enabled.iter().map(|m| m.name())
    }

    /// The largest frame to accept from a client that is not authenticated yet.
    pub fn max_receive_bytes(&self) -> usize {
        self.max_receive_bytes
    }

    /// The listener's name, lower case (as in `listener.name.<l>.`).
    pub fn listener(&self) -> &str {
        &self.listener
    }
}

/// The PLAIN users of listener `listener` (lower case): the `user_<name>="<password>"`
/// options of `listener.name.<l>.plain.sasl.jaas.config`, else of `sasl.jaas.config`.
pub fn plain_users(
    settings: &BTreeMap<String, String>,
    listener: &str,
) -> Result<BTreeMap<String, String>, SaslConfigError> {
    let jaas_key = format!("listener.name.{listener}.plain.sasl.jaas.config");
    let plain_jaas = settings
        .get(&jaas_key)
        .map(|v| (jaas_key.clone(), v))
        .or_else(|| {
            settings
                .get("sasl.jaas.config")
                .map(|v| ("sasl.jaas.config".to_string(), v))
        });
    match plain_jaas {
        Some((key, line)) => {
            jaas::plain_users(line).map_err(|reason| SaslConfigError::Invalid { key, reason })
        }
        None => Ok(BTreeMap::new()),
    }
}

/// The OAUTHBEARER JWT validator of listener `listener` (lower case), from the
/// `sasl.oauthbearer.*` settings as Kafka's `ConfigurationUtils` finds them: under
/// `listener.name.<l>.oauthbearer.`, `oauthbearer.`, `listener.name.<l>.`, then global.
pub fn jwt_validator(
    settings: &BTreeMap<String, String>,
    listener: &str,
) -> Result<JwtValidator, SaslConfigError> {
    let prefix = format!("listener.name.{listener}.");
    let lookup = |key: &str| -> Option<(String, String)> {
        [
            format!("{prefix}oauthbearer.{key}"),
            format!("oauthbearer.{key}"),
            format!("{prefix}{key}"),
            key.to_string(),
        ]
        .into_iter()
        .find_map(|k| settings.get(&k).map(|v| (k, v.clone())))
    };
    JwtValidator::from_settings(&lookup)
}

/// Whether `name` is one of the SASL settings [`SaslServerConfig::from_settings`]
/// reads (so the broker accepts it; values are checked when the listener starts).
pub fn is_sasl_setting(name: &str) -> bool {
    const GLOBAL: &[&str] = &[
        "sasl.enabled.mechanisms",
        "sasl.jaas.config",
        "sasl.server.max.receive.size",
        "connections.max.reauth.ms",
    ];
    if GLOBAL.contains(&name)
        || name == "sasl.mechanism.controller.protocol"
        || is_oauth_setting(name.strip_prefix("oauthbearer.").unwrap_or(name))
    {
        return true;
    }
    name.strip_prefix("listener.name.").is_some_and(|rest| {
        rest.split_once('.').is_some_and(|(listener, key)| {
            !listener.is_empty()
                && (GLOBAL.contains(&key)
                    || is_oauth_setting(key.strip_prefix("oauthbearer.").unwrap_or(key))
                    || key.strip_suffix(".sasl.jaas.config").is_some()
                    || key.strip_suffix(".connections.max.reauth.ms").is_some())
        })
    })
}

/// The `sasl.oauthbearer.*` settings the JWT validator reads.
fn is_oauth_setting(name: &str) -> bool {
    const OAUTH: &[&str] = &[
        "sasl.oauthbearer.jwks.endpoint.url",
        "sasl.oauthbearer.expected.audience",
        "sasl.oauthbearer.expected.issuer",
        "sasl.oauthbearer.sub.claim.name",
        "sasl.oauthbearer.scope.claim.name",
        "sasl.oauthbearer.clock.skew.seconds",
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        // Kafka's broker needs it set to OAuthBearerValidatorCallbackHandler; checked.
        "sasl.server.callback.handler.class",
    ];
    OAUTH.contains(&name)
}

/// Whether a setting's value must stay out of logs and config listings (JAAS lines
/// hold passwords).
pub fn is_secret_setting(name: &str) -> bool {
    name.ends_with("sasl.jaas.config") || name.contains("password")
}

fn parse_mechanisms(key: &str, list: &str) -> Result<Vec<Mechanism>, SaslConfigError> {
    let mut enabled = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = Mechanism::from_name(name).ok_or_else(|| SaslConfigError::Unsupported {
            key: key.to_string(),
            mechanism: name.to_string(),
        })?;
        if !enabled.contains(&m) {
            enabled.push(m);
        }
    }
    if enabled.is_empty() {
        return Err(SaslConfigError::NoneEnabled {
            key: key.to_string(),
        });
    }
    Ok(enabled)
}

fn parse_int(key: &str, value: &str, min: i64) -> Result<i64, SaslConfigError> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(SaslConfigError::Invalid {
            key: key.to_string(),
            reason: format!("expected an integer of at least {min}, got '{value}'"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#;

    #[test]
    fn defaults_listener_overrides_and_errors() {
        let c = SaslServerConfig::from_settings(&settings(&[]), "SASL_PLAINTEXT").unwrap();
        assert_eq!(
            c.enabled_mechanisms().collect::<Vec<_>>(),
            ["SCRAM-SHA-256", "SCRAM-SHA-512"]
        );
        assert_eq!(c.max_receive_bytes(), DEFAULT_MAX_RECEIVE_BYTES);
        assert_eq!(c.max_reauth_ms["SCRAM-SHA-256"], 0);

        let c = SaslServerConfig::from_settings(
            &settings(&[
                ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
                ("connections.max.reauth.ms", "60000"),
                (
                    "listener.name.sasl_plaintext.scram-sha-512.connections.max.reauth.ms",
                    "5000",
                ),
            ]),
            "SASL_PLAINTEXT",
        )
        .unwrap();
        assert_eq!(
            c.enabled_mechanisms().collect::<Vec<_>>(),
            ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        );
        assert_eq!(c.plain_users["alice"], "alice-secret");
        assert_eq!(c.max_reauth_ms["PLAIN"], 60000);
        assert_eq!(c.max_reauth_ms["SCRAM-SHA-512"], 5000);
        assert!(!format!("{c:?}").contains("alice-secret"));

        let c = SaslServerConfig::from_settings(
            &settings(&[
                ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
                (
                    "listener.name.external.sasl.enabled.mechanisms",
                    "PLAIN, SCRAM-SHA-256",
                ),
                ("sasl.jaas.config", JAAS),
            ]),
            "EXTERNAL",
        )
        .unwrap();
        assert_eq!(
            c.enabled_mechanisms().collect::<Vec<_>>(),
            ["PLAIN", "SCRAM-SHA-256"]
        );

        let err = |pairs: &[(&str, &str)]| {
            SaslServerConfig::from_settings(&settings(pairs), "sasl_ssl").unwrap_err()
        };
        assert!(matches!(
            err(&[("sasl.enabled.mechanisms", "GSSAPI")]),
            SaslConfigError::Unsupported { .. }
        ));
        // OAUTHBEARER needs a JWKS (no unsecured tokens).
        assert!(matches!(
            err(&[("sasl.enabled.mechanisms", "OAUTHBEARER")]),
            SaslConfigError::Invalid { .. }
        ));
        assert!(matches!(
            err(&[("sasl.enabled.mechanisms", "PLAIN")]),
            SaslConfigError::NoPlainUsers { .. }
        ));
        assert!(matches!(
            err(&[("connections.max.reauth.ms", "-1")]),
            SaslConfigError::Invalid { .. }
        ));
        assert!(matches!(
            err(&[("sasl.server.max.receive.size", "0")]),
            SaslConfigError::Invalid { .. }
        ));
        assert!(matches!(
            err(&[("sasl.jaas.config", "PlainLoginModule required user_a=\"x\"")]),
            SaslConfigError::Invalid { .. }
        ));
    }

    #[test]
    fn sasl_setting_names() {
        for name in [
            "sasl.enabled.mechanisms",
            "sasl.jaas.config",
            "connections.max.reauth.ms",
            "listener.name.sasl_ssl.plain.sasl.jaas.config",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms",
            "listener.name.sasl_ssl.scram-sha-512.connections.max.reauth.ms",
            "sasl.oauthbearer.expected.audience",
            "oauthbearer.sasl.oauthbearer.expected.issuer",
            "listener.name.sasl_ssl.sasl.oauthbearer.jwks.endpoint.url",
            "listener.name.sasl_ssl.oauthbearer.sasl.oauthbearer.sub.claim.name",
            "listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class",
        ] {
            assert!(is_sasl_setting(name), "{name}");
        }
        for name in [
            "sasl.mechanism",
            "listener.name..sasl.jaas.config",
            "listener.name.x",
            "sasl.oauthbearer.token.endpoint.url",
        ] {
            assert!(!is_sasl_setting(name), "{name}");
        }
        assert!(is_secret_setting("listener.name.x.plain.sasl.jaas.config"));
    }
}
