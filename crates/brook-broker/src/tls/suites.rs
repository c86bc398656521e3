//! Which TLS versions and cipher suites a listener offers: `ssl.enabled.protocols`,
//! `ssl.protocol` and `ssl.cipher.suites`, with Kafka's (JSSE's, i.e. IANA) names.
//!
//! - `ssl.enabled.protocols` (default `TLSv1.2,TLSv1.3`) lists the versions; set to an
//!   empty value it leaves the choice to `ssl.protocol`, as Kafka leaves it to the JVM:
//!   `TLSv1.2` offers TLS 1.2 only, `TLSv1.3` (Kafka's default) and `TLS` both.
//! - `ssl.protocol` is checked either way: `TLS`, `TLSv1.2` or `TLSv1.3`.
//! - `ssl.cipher.suites` (default: all of rustls' suites) lists IANA suite names, e.g.
//!   `TLS_AES_128_GCM_SHA256` (TLS 1.3) or `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`
//!   (TLS 1.2).
//!
//! Names Brook does not know or cannot offer (TLSv1.1, CBC suites...) stop the broker
//! with an error naming the setting, and so does a suite list with no suite for any of
//! the enabled versions, or (checked once the key is read) none for the key's type.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{SignatureAlgorithm, SupportedCipherSuite, SupportedProtocolVersion};

/// The versions and suites a listener offers.
#[derive(Debug, Clone)]
pub struct Offer {
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// `None`: every suite of the provider (no `ssl.cipher.suites`).
    pub suites: Option<Vec<SupportedCipherSuite>>,
}

/// Every suite Brook can offer (rustls on ring), in rustls' order of preference.
fn all_suites() -> &'static [SupportedCipherSuite] {
    rustls::crypto::ring::ALL_CIPHER_SUITES
}

/// A suite's IANA (and Java) name: rustls calls the TLS 1.3 ones `TLS13_...`.
pub fn iana_name(suite: &SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("unknown");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    }
}

fn version_name(v: &SupportedProtocolVersion) -> &'static str {
    if v.version == rustls::ProtocolVersion::TLSv1_3 {
        "TLSv1.3"
    } else {
        "TLSv1.2"
    }
}

/// Splits a Kafka list value (comma-separated, blanks around items ignored).
fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Reads the three settings (each as set, `None` when absent). An error names the
/// setting at fault.
pub fn parse(
    enabled_protocols: Option<&str>,
    protocol: Option<&str>,
    cipher_suites: Option<&str>,
) -> Result<Offer, String> {
    let from_protocol = match protocol.map(str::trim).unwrap_or("TLSv1.3") {
        "TLSv1.3" | "TLS" | "" => vec![&rustls::version::TLS12, &rustls::version::TLS13],
        "TLSv1.2" => vec![&rustls::version::TLS12],
        other => {
            return Err(format!(
                "ssl.protocol={other} is not supported: use TLSv1.3, TLSv1.2 or TLS"
            ))
        }
    };
    let versions = match enabled_protocols {
        Some(list) if items(list).next().is_none() => from_protocol,
        list => {
            let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
            for name in items(list.unwrap_or("TLSv1.2,TLSv1.3")) {
                let v = match name {
                    "TLSv1.2" => &rustls::version::TLS12,
                    "TLSv1.3" => &rustls::version::TLS13,
                    other => {
                        return Err(format!(
                        "ssl.enabled.protocols: {other} is not supported (TLSv1.2 and TLSv1.3 are)"
                    ))
                    }
                };
                if !versions.iter().any(|known| known.version == v.version) {
                    versions.push(v);
                }
            }
            versions
        }
    };
    let suites = match cipher_suites.filter(|list| items(list).next().is_some()) {
        None => None,
        Some(list) => {
            let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
            for name in items(list) {
                let suite = all_suites()
                    .iter()
                    .find(|s| iana_name(s) == name)
                    .ok_or_else(|| {
                        let known: Vec<String> = all_suites().iter().map(iana_name).collect();
                        format!(
                            "ssl.cipher.suites: {name} is not a cipher suite Brook offers (it offers {})",
                            known.join(", ")
                        )
                    })?;
                if !chosen.iter().any(|c| c.suite() == suite.suite()) {
                    chosen.push(*suite);
                }
            }
            let usable = chosen
                .iter()
                .any(|s| versions.iter().any(|v| s.version().version == v.version));
            if !usable {
                let versions: Vec<&str> = versions.iter().map(|v| version_name(v)).collect();
                return Err(format!(
                    "ssl.cipher.suites: none of {} is a {} suite, so no client could connect (TLS 1.3 suites are TLS_AES_*/TLS_CHACHA20_*, TLS 1.2 ones TLS_ECDHE_*)",
                    list.trim(),
                    versions.join(" or ")
                ));
            }
            Some(chosen)
        }
    };
    Ok(Offer { versions, suites })
}

impl Offer {
    /// ring's provider restricted to the chosen suites. rustls deprecates ring for
    /// lacking post-quantum key exchange; its alternative, aws-lc-rs, is a long C build
    /// (see DEPENDENCIES.md): a later choice.
    #[allow(deprecated)]
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(suites) = &self.suites {
            provider.cipher_suites = suites.clone();
        }
        Arc::new(provider)
    }

    /// Whether a server with a key of type `key` can use one of the suites: a TLS 1.3
    /// suite works with any key, a TLS 1.2 one only with the key its name says (RSA or
    /// ECDSA). An error says `ssl.cipher.suites` leaves no usable suite.
    pub fn check_key(&self, key: SignatureAlgorithm) -> Result<(), String> {
        let Some(suites) = &self.suites else {
            return Ok(());
        };
        let fits = suites.iter().any(|s| {
            let enabled = self
                .versions
                .iter()
                .any(|v| v.version == s.version().version);
            enabled && s.usable_for_signature_algorithm(key)
        });
        if fits {
            Ok(())
        } else {
            let names: Vec<String> = suites.iter().map(iana_name).collect();
            Err(format!(
                "ssl.cipher.suites: none of {} can be used with the keystore's {key:?} key on the enabled versions, so no client could connect",
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(offer: &Offer) -> Vec<String> {
        offer
            .suites
            .as_ref()
            .map(|s| s.iter().map(iana_name).collect())
            .unwrap_or_default()
    }

    fn versions(offer: &Offer) -> Vec<&'static str> {
        offer.versions.iter().map(|v| version_name(v)).collect()
    }

    #[test]
    fn defaults_offer_both_versions_and_every_suite() {
        let offer = parse(None, None, None).unwrap();
        assert_eq!(versions(&offer), ["TLSv1.2", "TLSv1.3"]);
        assert!(offer.suites.is_none());
        assert_eq!(offer.provider().cipher_suites.len(), all_suites().len());
        // Blank values are the defaults too.
        let offer = parse(None, Some(" "), Some(" , ")).unwrap();
        assert!(offer.suites.is_none());
    }

    #[test]
    fn iana_names_choose_suites() {
        let offer = parse(
            None,
            None,
            Some("TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256"),
        )
        .unwrap();
        assert_eq!(
            names(&offer),
            [
                "TLS_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            ]
        );
        let provider = offer.provider();
        assert_eq!(provider.cipher_suites.len(), 2);
        // Every suite rustls offers has a name that parses back to it.
        for suite in all_suites() {
            let offer = parse(None, None, Some(&iana_name(suite))).unwrap();
            assert_eq!(offer.suites.unwrap()[0].suite(), suite.suite());
        }
    }

    #[test]
    fn unknown_or_unsupported_names_are_errors_naming_the_setting() {
        let err = parse(None, None, Some("TLS_RSA_WITH_AES_128_CBC_SHA")).unwrap_err();
        assert!(
            err.starts_with("ssl.cipher.suites: TLS_RSA_WITH_AES_128_CBC_SHA"),
            "{err}"
        );
        assert!(err.contains("TLS_AES_256_GCM_SHA384"), "{err}");
        // rustls' own spelling is not Kafka's.
        assert!(parse(None, None, Some("TLS13_AES_128_GCM_SHA256")).is_err());
        let err = parse(Some("TLSv1.2,TLSv1.1"), None, None).unwrap_err();
        assert!(err.starts_with("ssl.enabled.protocols: TLSv1.1"), "{err}");
        let err = parse(None, Some("SSLv3"), None).unwrap_err();
        assert!(err.starts_with("ssl.protocol=SSLv3"), "{err}");
    }

    #[test]
    fn versions_come_from_enabled_protocols_else_from_ssl_protocol() {
        assert_eq!(
            versions(&parse(Some("TLSv1.3"), None, None).unwrap()),
            ["TLSv1.3"]
        );
        assert_eq!(
            versions(&parse(Some("TLSv1.3, TLSv1.2, TLSv1.3"), None, None).unwrap()),
            ["TLSv1.3", "TLSv1.2"]
        );
        // As in Kafka, ssl.enabled.protocols wins over ssl.protocol...
        assert_eq!(
            versions(&parse(Some("TLSv1.3"), Some("TLSv1.2"), None).unwrap()),
            ["TLSv1.3"]
        );
        assert_eq!(
            versions(&parse(None, Some("TLSv1.2"), None).unwrap()),
            ["TLSv1.2", "TLSv1.3"]
        );
        // ...and set empty it leaves the choice to ssl.protocol.
        assert_eq!(
            versions(&parse(Some(""), Some("TLSv1.2"), None).unwrap()),
            ["TLSv1.2"]
        );
        assert_eq!(
            versions(&parse(Some(" "), Some("TLS"), None).unwrap()),
            ["TLSv1.2", "TLSv1.3"]
        );
    }

    #[test]
    fn a_suite_list_leaving_no_usable_suite_is_an_error() {
        let err = parse(
            Some("TLSv1.3"),
            None,
            Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        )
        .unwrap_err();
        assert!(err.contains("no client could connect"), "{err}");
        let err = parse(Some("TLSv1.2"), None, Some("TLS_AES_128_GCM_SHA256")).unwrap_err();
        assert!(err.contains("TLSv1.2 suite"), "{err}");
        // Only ECDSA suites with an RSA key: none usable.
        let ecdsa = parse(
            Some("TLSv1.2"),
            None,
            Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        )
        .unwrap();
        assert!(ecdsa.check_key(SignatureAlgorithm::RSA).is_err());
        assert!(ecdsa.check_key(SignatureAlgorithm::ECDSA).is_ok());
        // A TLS 1.3 suite works with any key.
        let mixed = parse(
            None,
            None,
            Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256"),
        )
        .unwrap();
        assert!(mixed.check_key(SignatureAlgorithm::RSA).is_ok());
    }
}
