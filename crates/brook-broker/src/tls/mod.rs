//! TLS for listeners (rustls on ring): PEM keystores and truststores as Kafka 4 reads
//! them (`ssl.keystore.location` with key and certificate chain in one file, or inline
//! `ssl.keystore.certificate.chain` / `ssl.keystore.key`; `ssl.truststore.location` or
//! inline `ssl.truststore.certificates`), `ssl.client.auth`, the client principal
//! (`principal`), and certificate reload: the files are checked for changes at most
//! once per [`RELOAD_CHECK_INTERVAL`] when a connection arrives, so new connections get
//! the new certificate and open ones keep theirs.
//!
//! An encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`, PBES2) is opened with
//! `ssl.key.password`. Not supported (refused with a clear error at start): JKS/PKCS12
//! stores, OpenSSL's legacy encrypted keys (as in Kafka).

mod legacy;
pub mod principal;
pub mod suites;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::listeners::ssl_value;
use crate::session::KafkaPrincipal;
use principal::PrincipalMapper;
use suites::Offer;

/// How often, at most, a listener checks whether its keystore or truststore files
/// changed (on a new connection).
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The most bytes read from one keystore or truststore file.
const MAX_STORE_FILE_BYTES: u64 = 1 << 20;

/// `ssl.client.auth`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A secret setting's value, kept out of `Debug` output.
#[derive(Clone)]
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Where PEM text comes from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Inline(String),
}

/// The TLS settings of one listener, resolved from `listener.name.<l>.ssl.*` and
/// `ssl.*`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    listener: String,
    /// Key and chain: one file, or the inline chain and key.
    keystore: Option<(Source, Source)>,
    /// `ssl.key.password`: opens an encrypted PKCS#8 key.
    key_password: Option<Password>,
    truststore: Option<Source>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`, `ssl.protocol`, `ssl.cipher.suites`.
    offer: Offer,
    mapper: PrincipalMapper,
    /// `ssl.endpoint.identification.algorithm=https` (Kafka's default): a client checks
    /// the server certificate names the host it connected to.
    check_peer_host: bool,
}

impl TlsSettings {
    /// Whether a keystore (the server's certificate and key) is configured.
    pub fn has_keystore(&self) -> bool {
        self.keystore.is_some()
    }

    /// Reads listener `listener`'s TLS settings; an error names the setting at fault.
    pub fn resolve(settings: &BTreeMap<String, String>, listener: &str) -> Result<Self, String> {
        let get = |name: &str| ssl_value(settings, listener, name).filter(|v| !v.trim().is_empty());
        for (name, what) in [
            ("ssl.keystore.type", "keystores"),
            ("ssl.truststore.type", "truststores"),
        ] {
            if let Some(t) = get(name).filter(|t| !t.trim().eq_ignore_ascii_case("PEM")) {
                return Err(format!("{name}={t}: Brook reads PEM {what} only"));
            }
        }
        if get("ssl.keystore.password").is_some() {
            return Err("ssl.keystore.password cannot be used with PEM keystores (as in Kafka); only ssl.key.password may be set".into());
        }
        let key_password = get("ssl.key.password").map(|p| Password(p.to_string()));
        let keystore = match (
            get("ssl.keystore.location"),
            get("ssl.keystore.certificate.chain"),
            get("ssl.keystore.key"),
        ) {
            (Some(path), None, None) => {
                let file = Source::File(PathBuf::from(path.trim()));
                Some((file.clone(), file))
            }
            (None, Some(chain), Some(key)) => Some((
                Source::Inline(chain.to_string()),
                Source::Inline(key.to_string()),
            )),
            (None, None, None) => None,
            (Some(_), _, _) => {
                return Err("set either ssl.keystore.location or ssl.keystore.certificate.chain with ssl.keystore.key, not both".into())
            }
            _ => {
                return Err(
                    "ssl.keystore.certificate.chain and ssl.keystore.key go together".into(),
                )
            }
        };
        let truststore = match (
            get("ssl.truststore.location"),
            get("ssl.truststore.certificates"),
        ) {
            (Some(path), None) => Some(Source::File(PathBuf::from(path.trim()))),
            (None, Some(pem)) => Some(Source::Inline(pem.to_string())),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(
                    "set either ssl.truststore.location or ssl.truststore.certificates".into(),
                )
            }
        };
        let client_auth = match get("ssl.client.auth")
            .unwrap_or("none")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "required" => ClientAuth::Required,
            "requested" => ClientAuth::Requested,
            _ => ClientAuth::None,
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(
                "ssl.client.auth needs a truststore (ssl.truststore.location or ssl.truststore.certificates) to check client certificates".into(),
            );
        }
        // Blank values count here: Kafka reads an empty ssl.enabled.protocols as "the
        // JVM's choice" (ssl.protocol's), and an empty ssl.cipher.suites as the default.
        let offer = suites::parse(
            ssl_value(settings, listener, "ssl.enabled.protocols"),
            get("ssl.protocol"),
            get("ssl.cipher.suites"),
        )?;
        let mapper =
            PrincipalMapper::parse(get("ssl.principal.mapping.rules").unwrap_or("DEFAULT"))
                .map_err(|e| format!("ssl.principal.mapping.rules: {e}"))?;
        let check_peer_host =
            ssl_value(settings, listener, "ssl.endpoint.identification.algorithm")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        Ok(TlsSettings {
            check_peer_host,
            listener: listener.to_string(),
            keystore,
            key_password,
            truststore,
            client_auth,
            offer,
            mapper,
        })
    }

    /// The files whose changes trigger a reload.
    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some((Source::File(p), _)) = &self.keystore {
            files.push(p.clone());
        }
        if let Some(Source::File(p)) = &self.truststore {
            files.push(p.clone());
        }
        files
    }
}

fn read_source(source: &Source, what: &str) -> Result<String, String> {
    match source {
        Source::Inline(text) => Ok(normalize_inline_pem(text)),
        Source::File(path) => {
            read_bounded(path).map_err(|e| format!("{what} {}: {e}", path.display()))
        }
    }
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_STORE_FILE_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Inline PEM in a config value may be on one line (a properties file has no
/// newlines): put the markers and the body on lines of their own.
fn normalize_inline_pem(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let Some(label_end) = rest[start + 11..].find("-----").map(|i| start + 11 + i + 5) else {
            break;
        };
        out.push_str(&rest[start..label_end]);
        out.push('\n');
        let Some(end) = rest[label_end..].find("-----END ").map(|i| label_end + i) else {
            break;
        };
        out.extend(rest[label_end..end].chars().filter(|c| !c.is_whitespace()));
        out.push('\n');
        let Some(end_marker) = rest[end + 9..].find("-----").map(|i| end + 9 + i + 5) else {
            break;
        };
        out.push_str(&rest[end..end_marker]);
        out.push('\n');
        rest = &rest[end_marker..];
    }
    out
}

/// The certificates in PEM text.
fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate found"));
    }
    Ok(certs)
}

/// The keystore's key: unencrypted (PKCS#8, PKCS#1 or SEC1), or an encrypted PKCS#8 key
/// (`ENCRYPTED PRIVATE KEY`, PBES2) opened with `ssl.key.password`, as Kafka's PEM
/// keystores take them.
fn private_key(
    pem: &str,
    password: Option<&str>,
    what: &str,
) -> Result<PrivateKeyDer<'static>, String> {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let password = password.ok_or_else(|| {
            format!("{what}: the key is encrypted: set ssl.key.password to its password")
        })?;
        let block = encrypted_block(pem);
        let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| format!("{what}: bad PEM: {e}"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| format!("{what}: not an encrypted PKCS#8 key: {e}"))?;
        let plain = info.decrypt(password).map_err(|e| {
            format!("{what}: cannot decrypt the key with ssl.key.password (wrong password, or not PBES2 with PBKDF2/scrypt and AES-CBC): {e}")
        })?;
        return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
    }
    if pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!("{what}: an OpenSSL-encrypted legacy key (Proc-Type: 4,ENCRYPTED) is not supported, as in Kafka: convert it to encrypted PKCS#8 (openssl pkcs8 -topk8 -v2 aes-256-cbc)"));
    }
    let mut keys = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes())
        .filter(|item| !matches!(item, Ok((SectionKind::Certificate, _))));
    match keys.next() {
        None => Err(format!("{what}: no private key found")),
        Some(Err(e)) => Err(format!("{what}: bad PEM: {e}")),
        Some(Ok((kind, der))) => PrivateKeyDer::from_pem(kind, der)
            .ok_or_else(|| format!("{what}: expected a PRIVATE KEY section, found {kind:?}")),
    }
}

/// The `ENCRYPTED PRIVATE KEY` block of a PEM text (which may hold certificates too).
fn encrypted_block(pem: &str) -> String {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    match (pem.find(BEGIN), pem.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}\n", &pem[b..e + END.len()]),
        _ => String::new(),
    }
}

/// The keystore's chain and key, and the truststore's roots, read now.
struct Material {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Option<Arc<RootCertStore>>,
    /// The truststore's CA certificates (v1 client certificates are checked against them).
    cas: Vec<CertificateDer<'static>>,
}

fn load_keystore(
    settings: &TlsSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    let Some((chain_source, key_source)) = &settings.keystore else {
        return Ok(None);
    };
    let chain_pem = read_source(chain_source, "keystore")?;
    let key_pem = match key_source {
        Source::File(_) => chain_pem.clone(),
        inline => read_source(inline, "keystore")?,
    };
    let chain = certificates(&chain_pem, "keystore certificate chain")?;
    let password = settings.key_password.as_ref().map(|p| p.0.as_str());
    let key = private_key(&key_pem, password, "keystore key")?;
    Ok(Some((chain, key)))
}

fn load_truststore(settings: &TlsSettings) -> Result<Option<Arc<RootCertStore>>, String> {
    Ok(load_cas(settings)?.map(|(roots, _)| roots))
}

/// The truststore as roots, and its CA certificates.
#[allow(clippy::type_complexity)]
fn load_cas(
    settings: &TlsSettings,
) -> Result<Option<(Arc<RootCertStore>, Vec<CertificateDer<'static>>)>, String> {
    let Some(source) = &settings.truststore else {
        return Ok(None);
    };
    let pem = read_source(source, "truststore")?;
    let mut roots = RootCertStore::empty();
    let cas = certificates(&pem, "truststore")?;
    for cert in &cas {
        roots
            .add(cert.clone())
            .map_err(|e| format!("truststore: unusable CA certificate: {e}"))?;
    }
    Ok(Some((Arc::new(roots), cas)))
}

fn load(settings: &TlsSettings) -> Result<Material, String> {
    let (chain, key) = load_keystore(settings)?.ok_or(
        "a TLS listener needs a keystore: ssl.keystore.location, or ssl.keystore.certificate.chain and ssl.keystore.key",
    )?;
    let (roots, cas) = match load_cas(settings)? {
        Some((roots, cas)) => (Some(roots), cas),
        None => (None, Vec::new()),
    };
    Ok(Material {
        chain,
        key,
        roots,
        cas,
    })
}

fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, String> {
    let material = load(settings)?;
    let provider = settings.offer.provider();
    let key_type = provider
        .key_provider
        .load_private_key(material.key.clone_key())
        .map_err(|e| format!("keystore key: {e}"))?
        .algorithm();
    settings.offer.check_key(key_type)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.offer.versions)
        .map_err(|e| e.to_string())?;
    let builder = match (settings.client_auth, material.roots) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(roots)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let webpki = verifier.build().map_err(|e| format!("truststore: {e}"))?;
            builder.with_client_cert_verifier(Arc::new(legacy::ClientVerifier::new(
                webpki,
                &material.cas,
                provider.signature_verification_algorithms,
            )))
        }
    };
    let config = builder
        .with_single_cert(material.chain, material.key)
        .map_err(|e| format!("keystore: the key does not fit the certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// A file's identity for change detection.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            (p.clone(), modified, meta.map_or(0, |m| m.len()))
        })
        .collect()
}

struct Current {
    config: Arc<ServerConfig>,
    stamp: Stamp,
    checked: Instant,
}

/// One TLS listener's server side: its current `ServerConfig` (reloaded when the
/// files change) and its principal mapping.
pub struct ServerTls {
    settings: TlsSettings,
    files: Vec<PathBuf>,
    current: parking_lot::Mutex<Current>,
}

impl ServerTls {
    /// Loads the keystore and truststore now: an error stops the broker from starting.
    pub fn new(settings: TlsSettings) -> Result<ServerTls, String> {
        let files = settings.files();
        let stamp = stamp(&files);
        let config = server_config(&settings)?;
        Ok(ServerTls {
            settings,
            files,
            current: parking_lot::Mutex::new(Current {
                config,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The config for a new connection, re-read first if a file changed. A store that
    /// cannot be read keeps the previous config (and says so).
    pub fn config(&self) -> Arc<ServerConfig> {
        let mut current = self.current.lock();
        if self.files.is_empty() || current.checked.elapsed() < RELOAD_CHECK_INTERVAL {
            return current.config.clone();
        }
        current.checked = Instant::now();
        let now = stamp(&self.files);
        if now != current.stamp {
            // A later write changes the stamp again, so a half-written file is retried.
            current.stamp = now;
            match server_config(&self.settings) {
                Ok(config) => {
                    tracing::info!(listener = %self.settings.listener, "TLS keystore/truststore reloaded");
                    current.config = config;
                }
                Err(e) => {
                    tracing::warn!(listener = %self.settings.listener, error = %e, "TLS reload failed; keeping the previous certificates")
                }
            }
        }
        current.config.clone()
    }

    /// The principal of a client that completed the handshake: `User:ANONYMOUS`
    /// without a certificate, else its subject DN mapped by
    /// `ssl.principal.mapping.rules`.
    pub fn principal(&self, peer: Option<&[CertificateDer<'_>]>) -> Result<KafkaPrincipal, String> {
        let Some(cert) = peer.and_then(|c| c.first()) else {
            return Ok(KafkaPrincipal::anonymous());
        };
        let dn = principal::subject_dn(cert)?;
        self.settings
            .mapper
            .name(&dn)
            .map(KafkaPrincipal::user)
            .ok_or_else(|| format!("no ssl.principal.mapping.rules rule applies to {dn}"))
    }
}

/// The client side for connections to peers' TLS controller listeners: the truststore
/// checks the peer (and its host name), the keystore is presented as client
/// certificate.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    if !settings.check_peer_host {
        return Err("TLS between brokers always checks the peer's host name: ssl.endpoint.identification.algorithm other than https is not supported yet (give each broker a certificate naming its host in controller.quorum.voters)".into());
    }
    let roots = load_truststore(settings)?.ok_or(
        "TLS between brokers needs a truststore (ssl.truststore.location or ssl.truststore.certificates)",
    )?;
    let builder = ClientConfig::builder_with_provider(settings.offer.provider())
        .with_protocol_versions(&settings.offer.versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match load_keystore(settings)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("keystore: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The client side of an HTTPS fetch (the OAUTHBEARER JWKS): the truststore's CAs, or
/// the system's when none is set.
pub fn https_client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    let roots = match load_truststore(settings)? {
        Some(roots) => roots,
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no truststore is set and no system CA certificates were found ({:?})",
                    found.errors.first()
                ));
            }
            Arc::new(roots)
        }
    };
    let config = ClientConfig::builder_with_provider(settings.offer.provider())
        .with_protocol_versions(&settings.offer.versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_inline_pem_is_split_into_lines() {
        let one_line = "-----BEGIN CERTIFICATE----- QUJD REVG -----END CERTIFICATE----- -----BEGIN CERTIFICATE-----R0hJ-----END CERTIFICATE-----";
        assert_eq!(
            normalize_inline_pem(one_line),
            "-----BEGIN CERTIFICATE-----\nQUJDREVG\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nR0hJ\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(normalize_inline_pem("garbage"), "");
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_their_name() {
        let s = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let err = |pairs: &[(&str, &str)]| TlsSettings::resolve(&s(pairs), "SSL").unwrap_err();
        assert!(err(&[("ssl.keystore.type", "JKS")]).contains("PEM"));
        assert!(err(&[("ssl.client.auth", "required")]).contains("truststore"));
        assert!(err(&[("ssl.enabled.protocols", "TLSv1.1")]).contains("TLSv1.2"));
        assert!(err(&[("ssl.keystore.key", "k")]).contains("go together"));
        let no_keystore = TlsSettings::resolve(&s(&[]), "SSL").unwrap();
        assert!(ServerTls::new(no_keystore)
            .err()
            .unwrap()
            .contains("needs a keystore"));
        let no_host_check =
            TlsSettings::resolve(&s(&[("ssl.endpoint.identification.algorithm", "")]), "C")
                .unwrap();
        assert!(client_config(&no_host_check)
            .unwrap_err()
            .contains("identification"));
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(private_key(encrypted, None, "k")
            .unwrap_err()
            .contains("set ssl.key.password"));
        assert!(private_key(encrypted, Some("pw"), "k").is_err());
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n-----END RSA PRIVATE KEY-----\n";
        assert!(private_key(legacy, Some("pw"), "k")
            .unwrap_err()
            .contains("not supported"));
    }
}
