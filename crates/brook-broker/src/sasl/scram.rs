//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, KIP-84) on top of `rsasl`'s SCRAM server,
//! against the credentials of the metadata image, and the key derivations the
//! credential handlers and the bootstrap credential need (`rsasl`'s PBKDF2 and HMAC,
//! RustCrypto's SHA-2: no cryptography is written here).
//!
//! `rsasl`'s message parser slices attributes without checking their length, so every
//! client message is checked against the grammar here first ([`well_formed_first`],
//! [`well_formed_final`]): a malformed token is a failed authentication, never a panic.

use std::sync::Arc;

use brook_meta::{ScramCredential, ScramMechanism};
use hmac::{Mac, SimpleHmac};
use rand::RngCore;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use rsasl::mechname::Mechname;
use rsasl::prelude::{SASLConfig, SASLServer, Session, SessionError, State, Validation};
use rsasl::property::{AuthId, AuthzId};
use rsasl::validate::{Validate, ValidationError};
use sha2::{Digest, Sha256, Sha512};

/// Iterations Kafka's tools use when none are given (`kafka-configs`, `kafka-storage`).
pub const DEFAULT_ITERATIONS: i32 = 4096;

/// Where a SCRAM exchange finds a user's credential. The broker's is the applied
/// metadata image; it is read once per exchange, when the client names the user.
pub trait ScramCredentialStore: Send + Sync + 'static {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

impl ScramCredentialStore for brook_meta::MetadataImage {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.scram.get(user, mechanism).cloned()
    }
}

impl ScramCredentialStore for crate::metadata::MetadataView {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.image().scram.get(user, mechanism).cloned()
    }
}

/// A fresh random salt (Kafka's are about as long).
pub fn random_salt() -> Vec<u8> {
    let mut salt = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut salt);
    salt
}

/// The stored credential for a salted password (what AlterUserScramCredentials carries:
/// Hi(password, salt, iterations), computed by the client).
pub fn credential_from_salted(
    mechanism: ScramMechanism,
    salt: &[u8],
    salted_password: &[u8],
    iterations: i32,
) -> ScramCredential {
    let (stored_key, server_key) = match mechanism {
        ScramMechanism::Sha256 => {
            let (client_key, server_key) = derive_keys::<Sha256>(salted_password);
            (Sha256::digest(client_key).to_vec(), server_key.to_vec())
        }
        ScramMechanism::Sha512 => {
            let (client_key, server_key) = derive_keys::<Sha512>(salted_password);
            (Sha512::digest(client_key).to_vec(), server_key.to_vec())
        }
    };
    ScramCredential {
        salt: salt.to_vec(),
        stored_key,
        server_key,
        iterations,
    }
}

/// Hi(password, salt, iterations) (PBKDF2 with the mechanism's HMAC), as a client
/// computes it. Kafka uses the password's UTF-8 bytes as they are.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut out = Default::default();
            hash_password::<Sha256>(password.as_bytes(), iterations, salt, &mut out);
            out.to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut out = Default::default();
            hash_password::<Sha512>(password.as_bytes(), iterations, salt, &mut out);
            out.to_vec()
        }
    }
}

/// The stored credential for a password (the bootstrap credential; tests).
pub fn credential_from_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let salted = salted_password(mechanism, password, salt, iterations.max(1) as u32);
    credential_from_salted(mechanism, salt, &salted, iterations)
}

/// A credential to create at start if its user has none for the mechanism yet:
/// `kafka-storage format --add-scram`'s syntax, `SCRAM-SHA-512=[name=admin,password=...]`
/// (optionally `iterations=N`).
#[derive(Clone)]
pub struct ScramBootstrap {
    pub user: String,
    pub mechanism: ScramMechanism,
    password: String,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramBootstrap")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramBootstrap {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (mechanism, rest) = spec
            .split_once('=')
            .ok_or("expected MECHANISM=[name=USER,password=PASSWORD]")?;
        let mechanism = ScramMechanism::from_name(mechanism.trim())
            .ok_or_else(|| format!("unknown SCRAM mechanism '{mechanism}'"))?;
        let body = rest
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or("expected MECHANISM=[name=USER,password=PASSWORD]")?;
        let (mut user, mut password, mut iterations) = (None, None, DEFAULT_ITERATIONS);
        for part in body.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got '{part}'"))?;
            let v = v.trim().trim_matches('"');
            match k.trim() {
                "name" => user = Some(v.to_string()),
                "password" => password = Some(v.to_string()),
                "iterations" => {
                    iterations = v
                        .parse()
                        .ok()
                        .filter(|i| (4096..=brook_meta::MAX_SCRAM_ITERATIONS).contains(i))
                        .ok_or("iterations must be from 4096 to 16384")?;
                }
                other => {
                    return Err(format!(
                        "unsupported key '{other}' (name, password, iterations)"
                    ))
                }
            }
        }
        let user = user.filter(|u| !u.is_empty()).ok_or("name= is required")?;
        let password = password
            .filter(|p| !p.is_empty())
            .ok_or("password= is required")?;
        Ok(ScramBootstrap {
            user,
            mechanism,
            password,
            iterations,
        })
    }

    /// The credential to write, with a fresh salt.
    pub fn upsertion(&self) -> brook_meta::ScramUpsertion {
        brook_meta::ScramUpsertion {
            user: self.user.clone(),
            mechanism: self.mechanism.type_code(),
            credential: credential_from_password(
                self.mechanism,
                &self.password,
                &random_salt(),
                self.iterations,
            ),
        }
    }
}

/// What one client message did to the exchange.
pub(super) enum ScramStep {
    /// The server-first message; the client's final message comes next.
    Challenge(Vec<u8>),
    /// The proof checked out: the authenticated user and the server-final message.
    Done { user: String, server_final: Vec<u8> },
    /// Wrong password, unknown user, malformed message, nonce mismatch: all the same to
    /// the client. `user` is who the client claimed to be, for the audit log.
    Failed { user: Option<String> },
}

/// One SCRAM exchange: client-first, then client-final. Dropped after its end or its
/// first failure (`rsasl` must never be stepped again after either).
pub(super) struct ScramExchange {
    session: Session<AuthenticatedUser>,
    claimed_user: Option<String>,
    awaiting_final: bool,
    mechanism: ScramMechanism,
    store: Arc<dyn ScramCredentialStore>,
    /// The client-first message without its GS2 header, and the server-first message:
    /// for [`ScramExchange::doubled_nonce_final`].
    client_first_bare: String,
    server_first: String,
}

impl ScramExchange {
    pub(super) fn start(
        mechanism: ScramMechanism,
        store: Arc<dyn ScramCredentialStore>,
        fake_key: Arc<[u8; 32]>,
    ) -> Option<Self> {
        let callback = CredentialCallback {
            mechanism,
            store: store.clone(),
            fake_key,
        };
        let config = SASLConfig::builder()
            .with_defaults()
            .with_callback(callback)
            .ok()?;
        let name = Mechname::parse(mechanism.name().as_bytes()).ok()?;
        let session = SASLServer::<AuthenticatedUser>::new(config)
            .start_suggested(name)
            .ok()?;
        Some(ScramExchange {
            session,
            claimed_user: None,
            awaiting_final: false,
            mechanism,
            store,
            client_first_bare: String::new(),
            server_first: String::new(),
        })
    }

    pub(super) fn step(&mut self, token: &[u8]) -> ScramStep {
        let failed = |user: &Option<String>| ScramStep::Failed { user: user.clone() };
        if !self.awaiting_final {
            let Some(user) = well_formed_first(token) else {
                return failed(&None);
            };
            self.claimed_user = Some(user);
            // Checked by well_formed_first: UTF-8 with a two-part GS2 header.
            let text = std::str::from_utf8(token).unwrap_or_default();
            self.client_first_bare = text.splitn(3, ',').nth(2).unwrap_or_default().to_string();
        } else if !well_formed_final(token) {
            return failed(&self.claimed_user);
        } else if let Some(step) = self.doubled_nonce_final(token) {
            return step;
        }
        let mut out = Vec::new();
        match self.session.step(Some(token), &mut out) {
            Ok(State::Running) if !self.awaiting_final => {
                self.awaiting_final = true;
                self.server_first = String::from_utf8_lossy(&out).into_owned();
                ScramStep::Challenge(out)
            }
            Ok(State::Finished(_)) if self.awaiting_final => match self.session.validation() {
                Some(user) => ScramStep::Done {
                    user,
                    server_final: out,
                },
                // rsasl answers a bad proof with a server-final `e=` message and no
                // validation; Kafka sends the client an error instead.
                None => failed(&self.claimed_user),
            },
            Ok(_) | Err(_) => failed(&self.claimed_user),
        }
    }
}

impl ScramExchange {
    /// librdkafka 2.0.2 (kcat 1.7.1's; 2.16 does not) sends the client nonce twice in its client-final message
    /// (`r=<client nonce><server nonce>`, the server nonce already starting with the
    /// client's) and signs that message. Kafka's `ScramSaslServer` only checks that the
    /// nonce ends with the server's, so those clients work with Kafka; `rsasl` wants the
    /// nonce exactly. For such a message the proof is checked here (RFC 5802 §3, over
    /// the messages as sent); `None`: not such a message, `rsasl` takes it.
    fn doubled_nonce_final(&self, token: &[u8]) -> Option<ScramStep> {
        let text = std::str::from_utf8(token).ok()?;
        let attr = |msg: &str, key: &str| -> Option<String> {
            msg.split(',')
                .find_map(|p| p.strip_prefix(key))
                .map(str::to_string)
        };
        let server_nonce = attr(&self.server_first, "r=")?;
        let client_nonce = attr(text, "r=")?;
        if client_nonce == server_nonce || !client_nonce.ends_with(&server_nonce) {
            return None;
        }
        let user = self.claimed_user.clone();
        let failed = || Some(ScramStep::Failed { user: user.clone() });
        let Some(name) = user.as_deref() else {
            return failed();
        };
        // An authorization id (`a=`) must name the user; Kafka's clients send none.
        if !self.client_first_bare.starts_with("n=") {
            return failed();
        }
        let Some(credential) = self.store.scram_credential(name, self.mechanism) else {
            return failed();
        };
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine;
        // The credential the server-first message was built from (not one changed since).
        if attr(&self.server_first, "s=") != Some(STANDARD.encode(&credential.salt))
            || attr(&self.server_first, "i=") != Some(credential.iterations.to_string())
        {
            return failed();
        }
        let (without_proof, proof) = text.rsplit_once(",p=")?;
        let Ok(proof) = STANDARD.decode(proof) else {
            return failed();
        };
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let (client_signature, server_signature) = match self.mechanism {
            ScramMechanism::Sha256 => (
                hmac_of::<Sha256>(&credential.stored_key, &auth_message),
                hmac_of::<Sha256>(&credential.server_key, &auth_message),
            ),
            ScramMechanism::Sha512 => (
                hmac_of::<Sha512>(&credential.stored_key, &auth_message),
                hmac_of::<Sha512>(&credential.server_key, &auth_message),
            ),
        };
        if proof.len() != client_signature.len() {
            return failed();
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        use subtle::ConstantTimeEq;
        let stored_key = match self.mechanism {
            ScramMechanism::Sha256 => Sha256::digest(&client_key).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(&client_key).to_vec(),
        };
        if !bool::from(stored_key.ct_eq(&credential.stored_key)) {
            return failed();
        }
        Some(ScramStep::Done {
            user: name.to_string(),
            server_final: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        })
    }
}

fn hmac_of<D>(key: &[u8], message: &str) -> Vec<u8>
where
    D: Digest + hmac::digest::core_api::BlockSizeUser,
{
    let mut mac =
        <SimpleHmac<D> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The user name of a SCRAM message (`=2C` and `=3D` stand for `,` and `=`).
fn unescape_user(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Checks a client-first message (`gs2-header client-first-bare`) closely enough that
/// `rsasl`'s parser cannot fail on it by slicing: every attribute is `x=...`. Returns the
/// user it names. Channel binding (`p=`) is refused: Kafka offers no `-PLUS` mechanism.
fn well_formed_first(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    let mut parts = text.split(',');
    if !matches!(parts.next()?, "n" | "y") {
        return None;
    }
    let authzid = parts.next()?;
    if !(authzid.is_empty() || (authzid.len() > 2 && authzid.starts_with("a="))) {
        return None;
    }
    let user = parts.next()?.strip_prefix("n=")?;
    let nonce = parts.next()?.strip_prefix("r=")?;
    if nonce.is_empty() || parts.any(|ext| ext.len() < 2 || ext.starts_with("m=")) {
        return None;
    }
    unescape_user(user)
}

/// Checks a client-final message: `c=...,r=...,[extensions,]p=...`, no empty attribute.
fn well_formed_final(token: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(token) else {
        return false;
    };
    let parts: Vec<&str> = text.split(',').collect();
    parts.len() >= 3
        && parts[0].starts_with("c=")
        && parts[1].starts_with("r=")
        && parts
            .last()
            .is_some_and(|p| p.starts_with("p=") && p.len() > 2)
        && parts.iter().all(|p| p.len() >= 2)
}

/// `rsasl`'s validation output: the authenticated user.
struct AuthenticatedUser;
impl Validation for AuthenticatedUser {
    type Value = String;
}

#[derive(Debug, thiserror::Error)]
#[error("authorization id differs from the user name")]
struct AuthzIdMismatch;

/// Answers `rsasl`'s questions: the stored credential of the named user (or a fake one,
/// so an unknown user goes through the same exchange and fails only at the proof, as
/// RFC 5802 §5.1 advises), and, once the proof checks out, who was authenticated.
struct CredentialCallback {
    mechanism: ScramMechanism,
    store: Arc<dyn ScramCredentialStore>,
    /// Per-process secret the fake salts are derived from: the same unknown user sees
    /// the same salt each time, like a real one.
    fake_key: Arc<[u8; 32]>,
}

impl CredentialCallback {
    fn fake_credential(&self, user: &str) -> ScramCredential {
        let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(&self.fake_key[..])
            .expect("HMAC takes keys of any length");
        mac.update(self.mechanism.name().as_bytes());
        mac.update(&[0]);
        mac.update(user.as_bytes());
        let salt = mac.finalize().into_bytes().to_vec();
        // Keys nobody can match: random, of the right sizes.
        let len = match self.mechanism {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        };
        let mut stored_key = vec![0u8; len];
        let mut server_key = vec![0u8; len];
        rand::thread_rng().fill_bytes(&mut stored_key);
        rand::thread_rng().fill_bytes(&mut server_key);
        ScramCredential {
            salt,
            stored_key,
            server_key,
            iterations: DEFAULT_ITERATIONS,
        }
    }
}

impl SessionCallback for CredentialCallback {
    fn callback(
        &self,
        _session: &SessionData,
        context: &Context,
        request: &mut Request,
    ) -> Result<(), SessionError> {
        let Some(user) = context.get_ref::<AuthId>().and_then(unescape_user) else {
            return Ok(());
        };
        let credential = self
            .store
            .scram_credential(&user, self.mechanism)
            .filter(|c| c.iterations > 0)
            .unwrap_or_else(|| self.fake_credential(&user));
        request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
            credential.iterations as u32,
            &credential.salt,
            &credential.stored_key,
            &credential.server_key,
        ))?;
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let user = context
            .get_ref::<AuthId>()
            .and_then(unescape_user)
            .ok_or(ValidationError::MissingRequiredProperty)?;
        // Kafka: the authorization id, if any, must be the user itself.
        if context.get_ref::<AuthzId>().is_some_and(|z| z != user) {
            return Err(ValidationError::Boxed(Box::new(AuthzIdMismatch)));
        }
        validate.with::<AuthenticatedUser, _>(|| Ok(user))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_specs_in_kafka_storages_syntax() {
        let b = ScramBootstrap::parse("SCRAM-SHA-512=[name=admin,password=admin-secret]").unwrap();
        assert_eq!(
            (b.user.as_str(), b.mechanism, b.iterations),
            ("admin", ScramMechanism::Sha512, 4096)
        );
        assert!(!format!("{b:?}").contains("admin-secret"));
        let b = ScramBootstrap::parse(r#"SCRAM-SHA-256=[name="a",password="p",iterations=8192]"#)
            .unwrap();
        assert_eq!((b.user.as_str(), b.iterations), ("a", 8192));
        let u = b.upsertion();
        assert_eq!(u.credential.stored_key.len(), 32);
        for bad in [
            "SCRAM-SHA-1=[name=a,password=p]",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[password=p]",
            "SCRAM-SHA-256=name=a,password=p",
            "SCRAM-SHA-256=[name=a,password=p,iterations=10]",
            "SCRAM-SHA-256=[name=a,password=p,salt=x]",
        ] {
            assert!(ScramBootstrap::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_names_are_unescaped_and_bad_escapes_refused() {
        assert_eq!(unescape_user("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_user("plain").as_deref(), Some("plain"));
        assert_eq!(unescape_user("a=2"), None);
        assert_eq!(unescape_user("a=41"), None);
    }

    #[test]
    fn malformed_messages_are_caught_before_rsasl_sees_them() {
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"n,a,n=u,r=x",
            b"n,,x,r=abc",
            b"n,,n=u,",
            b"n,,n=u,r=",
            b"n,,n=u,r=abc,,",
            b"n,,n=u,r=abc,m=ext",
            b"p=tls-unique,,n=u,r=abc",
            b"n,,n=u\xff,r=abc",
        ] {
            assert_eq!(
                well_formed_first(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            well_formed_first(b"n,,n=alice,r=abc").as_deref(),
            Some("alice")
        );
        assert_eq!(
            well_formed_first(b"y,a=alice,n=alice,r=abc,x=1").as_deref(),
            Some("alice")
        );
        for bad in [
            &b""[..],
            b"c=biws",
            b"c=biws,r=abc",
            b"c=biws,r=abc,p=",
            b"c=biws,r=abc,p=xyz,",
            b"c=biws,,r=abc,p=xyz",
            b"r=abc,c=biws,p=xyz",
        ] {
            assert!(
                !well_formed_final(bad),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(well_formed_final(b"c=biws,r=abc,p=xyz"));
    }

    /// RFC 7677's test vector: user "user", password "pencil", 4096 iterations.
    #[test]
    fn derived_keys_match_the_rfc_7677_vector() {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = credential_from_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
        // ServerSignature in the RFC follows from ServerKey; check ServerKey through it
        // with the same HMAC the server uses.
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(&c.server_key).unwrap();
        mac.update(auth_message.as_bytes());
        assert_eq!(
            STANDARD.encode(mac.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(c.stored_key.len(), 32);
        let c512 = credential_from_password(ScramMechanism::Sha512, "pencil", &salt, 4096);
        assert_eq!((c512.stored_key.len(), c512.server_key.len()), (64, 64));
    }
}
