//! How the CLI tools reach a secured listener: Kafka's client settings, given as
//! `-X name=value` (kcat's flag) or in a `--command-config` file (Java properties, as
//! Kafka's own tools take them):
//! - `security.protocol`: `PLAINTEXT` (the default), `SSL`, `SASL_PLAINTEXT`,
//!   `SASL_SSL`;
//! - TLS: the broker's CA from `ssl.truststore.location` (PEM) or librdkafka's
//!   `ssl.ca.location`; a client certificate from `ssl.keystore.location` (PEM: key
//!   and chain) or librdkafka's `ssl.certificate.location` with `ssl.key.location`;
//! - SASL: `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`) with
//!   `sasl.username` and `sasl.password`, or a `sasl.jaas.config` naming them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

/// The transport and the login a connection uses.
#[derive(Default)]
pub struct Security {
    /// TLS, with the broker's CA (and a client certificate, if given).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

/// A SASL login.
pub struct SaslLogin {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The client settings the CLI knows; anything else is refused, so a misspelt name
/// does not go unnoticed.
const KNOWN: &[&str] = &[
    "security.protocol",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.ca.location",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
    // Settings of Kafka's tools that say nothing about the connection.
    "client.id",
    "request.timeout.ms",
];

impl Security {
    /// Reads the settings (see the module's doc).
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Self> {
        if let Some(unknown) = settings.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            bail!(
                "unknown client setting '{unknown}' (known: {})",
                KNOWN.join(", ")
            );
        }
        let get = |name: &str| {
            settings
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let protocol = get("security.protocol")
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => bail!(
                "security.protocol={other}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ),
        };
        Ok(Security {
            tls: if tls {
                Some(tls_config(settings)?)
            } else {
                None
            },
            sasl: if sasl {
                Some(sasl_login(settings)?)
            } else {
                None
            },
        })
    }
}

/// The TLS client config, through the broker's own PEM loading (Kafka's names).
fn tls_config(settings: &BTreeMap<String, String>) -> Result<Arc<rustls::ClientConfig>> {
    let mut java: BTreeMap<String, String> = BTreeMap::new();
    let get = |name: &str| settings.get(name).map(|v| v.trim().to_string());
    match (get("ssl.truststore.location"), get("ssl.ca.location")) {
        (Some(path), _) | (None, Some(path)) => {
            java.insert("ssl.truststore.location".into(), path);
        }
        (None, None) => {
            bail!("TLS needs the broker's CA: set ssl.truststore.location (PEM) or ssl.ca.location")
        }
    }
    match (
        get("ssl.keystore.location"),
        get("ssl.certificate.location"),
        get("ssl.key.location"),
    ) {
        (Some(path), None, None) => {
            java.insert("ssl.keystore.location".into(), path);
        }
        (None, Some(cert), Some(key)) => {
            let read = |p: &str| {
                std::fs::read_to_string(p).with_context(|| format!("cannot read {p}"))
            };
            java.insert("ssl.keystore.certificate.chain".into(), read(&cert)?);
            java.insert("ssl.keystore.key".into(), read(&key)?);
        }
        (None, None, None) => {}
        _ => bail!(
            "a client certificate is ssl.keystore.location, or ssl.certificate.location with ssl.key.location"
        ),
    }
    for name in [
        "ssl.endpoint.identification.algorithm",
        "ssl.truststore.type",
        "ssl.keystore.type",
    ] {
        if let Some(v) = settings.get(name) {
            java.insert(name.into(), v.clone());
        }
    }
    let tls = brook_broker::TlsSettings::resolve(&java, "CLIENT").map_err(|e| anyhow!(e))?;
    brook_broker::tls_client_config(&tls)
        .map_err(|e| anyhow!(e.replace("TLS between brokers", "TLS")))
}

fn sasl_login(settings: &BTreeMap<String, String>) -> Result<SaslLogin> {
    let get = |name: &str| {
        settings
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let mechanism = get("sasl.mechanism")
        .or_else(|| get("sasl.mechanisms"))
        .ok_or_else(|| {
            anyhow!("SASL needs sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
        })?
        .to_ascii_uppercase();
    if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
        bail!("sasl.mechanism={mechanism}: the CLI logs in with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
    }
    let (username, password) = match (get("sasl.username"), get("sasl.password")) {
        (Some(u), Some(p)) => (u.to_string(), p.to_string()),
        _ => get("sasl.jaas.config")
            .and_then(jaas_credentials)
            .ok_or_else(|| anyhow!("SASL needs sasl.username and sasl.password, or a sasl.jaas.config with username and password"))?,
    };
    Ok(SaslLogin {
        mechanism,
        username,
        password,
    })
}

/// `username="..."` and `password="..."` of a JAAS login module line.
fn jaas_credentials(jaas: &str) -> Option<(String, String)> {
    let option = |name: &str| {
        let at = jaas.find(&format!("{name}=\""))? + name.len() + 2;
        let end = jaas[at..].find('"')?;
        Some(jaas[at..at + end].to_string())
    };
    Some((option("username")?, option("password")?))
}

/// Reads a Java properties file: `name=value` or `name: value` lines, `#` and `!`
/// comments, a trailing backslash continuing a line.
pub fn read_properties(path: &Path) -> Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(parse_properties(&text))
}

fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']);
        if let Some(at) = split {
            let (name, value) = (entry[..at].trim(), entry[at + 1..].trim());
            if !name.is_empty() {
                out.insert(name.to_string(), value.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_and_jaas_are_read_as_kafka_writes_them() {
        let props = parse_properties(
            "# comment\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism: SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  \
             username=\"alice\" password=\"a=b;c\";\n",
        );
        assert_eq!(props["security.protocol"], "SASL_PLAINTEXT");
        assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
        let s = Security::from_settings(&props).unwrap();
        let login = s.sasl.unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "a=b;c")
        );
        assert!(s.tls.is_none());
        let bad = BTreeMap::from([("sasl.mechansim".to_string(), "PLAIN".to_string())]);
        assert!(Security::from_settings(&bad).is_err());
        let no_ca = BTreeMap::from([("security.protocol".to_string(), "SSL".to_string())]);
        assert!(Security::from_settings(&no_ca).is_err());
    }
}
