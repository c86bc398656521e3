//! Listeners by Kafka's names: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, `controller.listener.names`,
//! `inter.broker.listener.name` / `security.inter.broker.protocol`, and the per-listener
//! `listener.name.<name>.ssl.*` overrides of the `ssl.*` settings.
//!
//! The settings are kept as strings in `BrokerConfig::settings` (checked for syntax
//! when set); [`plan`] turns them into the listeners to bind, checked against each
//! other, when the broker starts.

use std::collections::BTreeMap;
use std::fmt;

/// A listener or TLS setting that cannot work (it becomes `InvalidSetting::Invalid`; this
/// module stays below `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are wrapped in TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before any other request.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's default `listener.security.protocol.map`: each protocol's name maps to itself.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// The controller listener's name when `controller.listener.names` is not set (the name
/// Kafka's examples use).
pub const DEFAULT_CONTROLLER_LISTENER: &str = "CONTROLLER";

/// One `NAME://host:port` entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Upper case, as Kafka normalizes listener names.
    pub name: String,
    /// Empty: every interface (bind) or this machine's address (advertise).
    pub host: String,
    pub port: u16,
}

/// A listener to bind, with everything the accept loop needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where to bind (`host` empty: `0.0.0.0`).
    pub bind: Endpoint,
    /// What clients are told (`advertised.listeners`); `None`: the bound address.
    pub advertised: Option<(String, u16)>,
    /// A controller listener (`controller.listener.names`): inter-broker traffic, not
    /// advertised to clients.
    pub controller: bool,
}

/// Every listener of a broker and which one carries what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPlan {
    /// Client listeners first, in `listeners` order, then the controller listener.
    pub listeners: Vec<ListenerSpec>,
    /// The client listener whose endpoint the broker registers as its main address
    /// (`inter.broker.listener.name`).
    pub inter_broker: String,
}

impl ListenerPlan {
    pub fn controller(&self) -> Option<&ListenerSpec> {
        self.listeners.iter().find(|l| l.controller)
    }
}

/// Parses `NAME://host:port[,NAME://host:port...]`; a bare `host:port` is a
/// `PLAINTEXT` listener (Brook's `--listen` shorthand).
pub fn parse_endpoints(setting: &str, value: &str) -> Result<Vec<Endpoint>, InvalidSetting> {
    let bad = |reason: String| InvalidSetting {
        name: setting.into(),
        value: value.into(),
        reason,
    };
    let mut out: Vec<Endpoint> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = match entry.split_once("://") {
            Some((name, rest)) => (name.trim().to_ascii_uppercase(), rest),
            None => ("PLAINTEXT".to_string(), entry),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad(format!("bad listener name in '{entry}'")));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad(format!("'{entry}' must be NAME://host:port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(format!("bad port in '{entry}'")))?;
        let host = host.trim_matches(['[', ']']).to_string();
        if out.iter().any(|e| e.name == name) {
            return Err(bad(format!("listener name {name} appears twice")));
        }
        out.push(Endpoint { name, host, port });
    }
    if out.is_empty() && setting == "listeners" {
        return Err(bad("at least one listener is needed".into()));
    }
    Ok(out)
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
pub fn parse_protocol_map(
    value: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, InvalidSetting> {
    let bad = |reason: String| InvalidSetting {
        name: "listener.security.protocol.map".into(),
        value: value.into(),
        reason,
    };
    let mut map = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| bad(format!("'{entry}' must be NAME:PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            bad(format!(
                "unknown security protocol '{}' (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)",
                protocol.trim()
            ))
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

/// The `ssl.*` settings Brook reads, with Kafka's defaults (`None`: no default).
pub const SSL_SETTINGS: &[(&str, Option<&str>)] = &[
    ("ssl.keystore.type", Some("PEM")),
    ("ssl.keystore.location", None),
    ("ssl.keystore.password", None),
    ("ssl.key.password", None),
    ("ssl.keystore.certificate.chain", None),
    ("ssl.keystore.key", None),
    ("ssl.truststore.type", Some("PEM")),
    ("ssl.truststore.location", None),
    ("ssl.truststore.password", None),
    ("ssl.truststore.certificates", None),
    ("ssl.client.auth", Some("none")),
    ("ssl.principal.mapping.rules", Some("DEFAULT")),
    ("ssl.enabled.protocols", Some("TLSv1.2,TLSv1.3")),
    ("ssl.protocol", Some("TLSv1.3")),
    ("ssl.endpoint.identification.algorithm", Some("https")),
    ("ssl.cipher.suites", None),
];

/// The listener-level settings (not per listener).
const LISTENER_SETTINGS: &[&str] = &[
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "inter.broker.listener.name",
    "security.inter.broker.protocol",
];

/// Whether `name` is a listener or TLS setting (`listener.name.<l>.ssl.*` included).
pub fn is_listener_setting(name: &str) -> bool {
    LISTENER_SETTINGS.contains(&name) || ssl_setting_name(name).is_some()
}

/// `ssl.x` for `ssl.x` or `listener.name.<l>.ssl.x`, if Brook reads `ssl.x`.
fn ssl_setting_name(name: &str) -> Option<&str> {
    let base = match name.strip_prefix("listener.name.") {
        Some(rest) => &rest[rest.find(".ssl.")? + 1..],
        None => name,
    };
    SSL_SETTINGS.iter().any(|(n, _)| *n == base).then_some(base)
}

/// Settings whose values are secrets (Kafka's PASSWORD type): never logged.
pub fn is_sensitive(name: &str) -> bool {
    name.ends_with(".password") || name.ends_with("ssl.keystore.key") || name.contains("jaas")
}

/// Checks a listener or TLS setting's syntax when it is set.
pub fn validate(name: &str, value: &str) -> Result<(), InvalidSetting> {
    let invalid = |reason: &str| InvalidSetting {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    };
    match name {
        "listeners" | "advertised.listeners" => parse_endpoints(name, value).map(|_| ()),
        "listener.security.protocol.map" => parse_protocol_map(value).map(|_| ()),
        "security.inter.broker.protocol" => SecurityProtocol::parse(value)
            .map(|_| ())
            .ok_or_else(|| invalid("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")),
        _ => match ssl_setting_name(name) {
            Some("ssl.client.auth") => match value.trim().to_ascii_lowercase().as_str() {
                "required" | "requested" | "none" => Ok(()),
                _ => Err(invalid("expected required, requested or none")),
            },
            Some("ssl.keystore.type" | "ssl.truststore.type") => {
                if value.trim().eq_ignore_ascii_case("PEM") {
                    Ok(())
                } else {
                    Err(invalid(
                        "Brook reads PEM keystores and truststores only (convert JKS/PKCS12 with keytool/openssl)",
                    ))
                }
            }
            _ => Ok(()),
        },
    }
}

/// The value of `ssl.<x>` for listener `listener`: `listener.name.<listener>.ssl.<x>`
/// (the name in lower case, as Kafka writes it, or as given), else `ssl.<x>`, else
/// Kafka's default.
pub fn ssl_value<'a>(
    settings: &'a BTreeMap<String, String>,
    listener: &str,
    name: &str,
) -> Option<&'a str> {
    let lower = format!("listener.name.{}.{name}", listener.to_ascii_lowercase());
    let exact = format!("listener.name.{listener}.{name}");
    settings
        .get(&lower)
        .or_else(|| settings.get(&exact))
        .or_else(|| settings.get(name))
        .map(String::as_str)
        .or_else(|| {
            SSL_SETTINGS
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, d)| *d)
        })
}

/// Turns the listener settings into the listeners to bind. `controller_listen` is the
/// `--controller-listen` address of a cluster node (a listener named by
/// `controller.listener.names`, `CONTROLLER` by default).
pub fn plan(
    settings: &BTreeMap<String, String>,
    controller_listen: Option<(String, u16)>,
) -> Result<ListenerPlan, InvalidSetting> {
    let get = |name: &str| settings.get(name).map(String::as_str);
    let invalid = |name: &str, value: &str, reason: String| InvalidSetting {
        name: name.into(),
        value: value.into(),
        reason,
    };
    let listeners_value = get("listeners").unwrap_or("PLAINTEXT://127.0.0.1:9092");
    let mut endpoints = parse_endpoints("listeners", listeners_value)?;
    let advertised = parse_endpoints(
        "advertised.listeners",
        get("advertised.listeners").unwrap_or(""),
    )?;
    let map_value = get("listener.security.protocol.map").unwrap_or(DEFAULT_PROTOCOL_MAP);
    let map = parse_protocol_map(map_value)?;
    let controller_names: Vec<String> = get("controller.listener.names")
        .unwrap_or(DEFAULT_CONTROLLER_LISTENER)
        .split(',')
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some((host, port)) = controller_listen {
        let name = controller_names
            .first()
            .cloned()
            .unwrap_or_else(|| DEFAULT_CONTROLLER_LISTENER.into());
        endpoints.retain(|e| e.name != name);
        endpoints.push(Endpoint { name, host, port });
    }
    let mut listeners = Vec::new();
    for e in &endpoints {
        let controller = controller_names.contains(&e.name);
        let protocol = match map.get(&e.name) {
            Some(p) => *p,
            // A controller listener Brook's own flags made needs no map entry.
            None if controller && e.name == DEFAULT_CONTROLLER_LISTENER => {
                SecurityProtocol::Plaintext
            }
            None => {
                return Err(invalid(
                    "listener.security.protocol.map",
                    map_value,
                    format!("no security protocol for listener {}", e.name),
                ))
            }
        };
        let adv = advertised
            .iter()
            .find(|a| a.name == e.name)
            .map(|a| (a.host.clone(), a.port));
        listeners.push(ListenerSpec {
            name: e.name.clone(),
            protocol,
            bind: e.clone(),
            advertised: adv,
            controller,
        });
    }
    if let Some(a) = advertised
        .iter()
        .find(|a| !listeners.iter().any(|l| l.name == a.name))
    {
        return Err(invalid(
            "advertised.listeners",
            get("advertised.listeners").unwrap_or(""),
            format!("listener {} is not in listeners", a.name),
        ));
    }
    if listeners.iter().filter(|l| l.controller).count() > 1 {
        return Err(invalid(
            "controller.listener.names",
            get("controller.listener.names").unwrap_or(""),
            "Brook runs one controller listener".into(),
        ));
    }
    listeners.sort_by_key(|l| l.controller);
    if listeners.iter().all(|l| l.controller) {
        return Err(invalid(
            "listeners",
            listeners_value,
            "at least one listener must be a client (non-controller) listener".into(),
        ));
    }
    let inter_broker = inter_broker_listener(settings, &listeners)?;
    Ok(ListenerPlan {
        listeners,
        inter_broker,
    })
}

/// `inter.broker.listener.name`, or the listener named after
/// `security.inter.broker.protocol` (Kafka: they exclude each other). Left unset, the
/// `PLAINTEXT` listener if there is one, else the first client listener.
fn inter_broker_listener(
    settings: &BTreeMap<String, String>,
    listeners: &[ListenerSpec],
) -> Result<String, InvalidSetting> {
    let by_name = settings.get("inter.broker.listener.name");
    let by_protocol = settings.get("security.inter.broker.protocol");
    let client = |name: &str| listeners.iter().any(|l| !l.controller && l.name == name);
    match (by_name, by_protocol) {
        (Some(_), Some(_)) => Err(InvalidSetting {
            name: "inter.broker.listener.name".into(),
            value: by_name.cloned().unwrap_or_default(),
            reason: "set only one of inter.broker.listener.name and security.inter.broker.protocol"
                .into(),
        }),
        (Some(name), None) | (None, Some(name)) => {
            let upper = name.trim().to_ascii_uppercase();
            if client(&upper) {
                Ok(upper)
            } else {
                Err(InvalidSetting {
                    name: if by_name.is_some() {
                        "inter.broker.listener.name".into()
                    } else {
                        "security.inter.broker.protocol".into()
                    },
                    value: name.clone(),
                    reason: format!("no client listener named {upper} in listeners"),
                })
            }
        }
        (None, None) => Ok(if client("PLAINTEXT") {
            "PLAINTEXT".into()
        } else {
            listeners
                .iter()
                .find(|l| !l.controller)
                .map(|l| l.name.clone())
                .unwrap_or_default()
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

    #[test]
    fn the_default_is_one_plaintext_listener_on_localhost_9092() {
        let plan = plan(&BTreeMap::new(), None).unwrap();
        assert_eq!(plan.listeners.len(), 1);
        let l = &plan.listeners[0];
        assert_eq!(
            (l.name.as_str(), l.protocol),
            ("PLAINTEXT", SecurityProtocol::Plaintext)
        );
        assert_eq!((l.bind.host.as_str(), l.bind.port), ("127.0.0.1", 9092));
        assert_eq!(plan.inter_broker, "PLAINTEXT");
    }

    #[test]
    fn named_listeners_take_their_protocol_from_the_map() {
        let s = settings(&[
            (
                "listeners",
                "INTERNAL://:9092,EXTERNAL://0.0.0.0:9093,CONTROLLER://:9094",
            ),
            (
                "advertised.listeners",
                "EXTERNAL://broker.example:19093,INTERNAL://b1:9092",
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:SSL,CONTROLLER:SSL",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "internal"),
        ]);
        let plan = plan(&s, None).unwrap();
        let names: Vec<_> = plan
            .listeners
            .iter()
            .map(|l| (l.name.as_str(), l.protocol, l.controller))
            .collect();
        assert_eq!(
            names,
            [
                ("INTERNAL", SecurityProtocol::Plaintext, false),
                ("EXTERNAL", SecurityProtocol::Ssl, false),
                ("CONTROLLER", SecurityProtocol::Ssl, true),
            ]
        );
        assert_eq!(
            plan.listeners[1].advertised,
            Some(("broker.example".into(), 19093))
        );
        assert_eq!(plan.inter_broker, "INTERNAL");
        assert_eq!(plan.controller().unwrap().bind.port, 9094);
    }

    #[test]
    fn the_controller_flag_adds_a_controller_listener() {
        let plan = plan(
            &settings(&[("listeners", "PLAINTEXT://127.0.0.1:9092")]),
            Some(("127.0.0.1".into(), 9093)),
        )
        .unwrap();
        let c = plan.controller().unwrap();
        assert_eq!(
            (c.name.as_str(), c.protocol),
            ("CONTROLLER", SecurityProtocol::Plaintext)
        );
        let ssl = plan_with_map("PLAINTEXT:PLAINTEXT,CONTROLLER:SSL");
        assert_eq!(ssl.controller().unwrap().protocol, SecurityProtocol::Ssl);
    }

    fn plan_with_map(map: &str) -> ListenerPlan {
        plan(
            &settings(&[("listener.security.protocol.map", map)]),
            Some(("127.0.0.1".into(), 9093)),
        )
        .unwrap()
    }

    #[test]
    fn bad_listener_settings_are_refused() {
        let cases: &[&[(&str, &str)]] = &[
            &[("listeners", "FOO://:1")],
            &[("listeners", "PLAINTEXT://:1,PLAINTEXT://:2")],
            &[("listeners", "PLAINTEXT://:x")],
            &[("listeners", "")],
            &[("advertised.listeners", "SSL://h:1")],
            &[("inter.broker.listener.name", "SSL")],
            &[
                ("inter.broker.listener.name", "PLAINTEXT"),
                ("security.inter.broker.protocol", "PLAINTEXT"),
            ],
            &[("listener.security.protocol.map", "PLAINTEXT:TLS")],
            &[
                ("listeners", "CONTROLLER://:1"),
                ("controller.listener.names", "CONTROLLER"),
            ],
        ];
        for case in cases {
            assert!(plan(&settings(case), None).is_err(), "{case:?}");
        }
    }

    #[test]
    fn per_listener_ssl_settings_override_the_broker_wide_ones() {
        let s = settings(&[
            ("ssl.client.auth", "requested"),
            ("listener.name.external.ssl.client.auth", "required"),
        ]);
        assert_eq!(
            ssl_value(&s, "EXTERNAL", "ssl.client.auth"),
            Some("required")
        );
        assert_eq!(ssl_value(&s, "SSL", "ssl.client.auth"), Some("requested"));
        assert_eq!(ssl_value(&s, "SSL", "ssl.keystore.type"), Some("PEM"));
        assert_eq!(ssl_value(&s, "SSL", "ssl.keystore.location"), None);
        assert!(is_listener_setting(
            "listener.name.external.ssl.keystore.location"
        ));
        assert!(is_listener_setting("ssl.truststore.certificates"));
        assert!(!is_listener_setting("listener.name.external.ssl.bogus"));
        assert!(!is_listener_setting("ssl.bogus"));
        assert!(is_sensitive("listener.name.x.ssl.key.password"));
        assert!(is_sensitive("ssl.keystore.key"));
        assert!(!is_sensitive("ssl.keystore.location"));
        assert!(validate("ssl.client.auth", "sometimes").is_err());
        assert!(validate("ssl.keystore.type", "JKS").is_err());
    }
}
