//! The state machine against real client exchanges: `rsasl`'s PLAIN and SCRAM clients.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_meta::{ScramCredential, ScramMechanism};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rsasl::mechname::Mechname;
use rsasl::prelude::{SASLClient, SASLConfig, Session, State};

use super::scram::{credential_from_password, random_salt};
use super::*;

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#;
const NOW: i64 = 1_000_000;

#[derive(Default)]
struct Store(Mutex<BTreeMap<(String, ScramMechanism), ScramCredential>>);

impl Store {
    fn set(&self, user: &str, m: ScramMechanism, password: &str) {
        let c = credential_from_password(m, password, &random_salt(), 4096);
        self.0.lock().insert((user.to_string(), m), c);
    }
}

impl ScramCredentialStore for Store {
    fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
        self.0.lock().get(&(user.to_string(), m)).cloned()
    }
}

fn config(extra: &[(&str, &str)]) -> Arc<SaslServerConfig> {
    let mut settings: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings.insert(
        "listener.name.sasl_plaintext.plain.sasl.jaas.config".into(),
        JAAS.into(),
    );
    Arc::new(SaslServerConfig::from_settings(&settings, "SASL_PLAINTEXT").unwrap())
}

fn store() -> Arc<Store> {
    let s = Store::default();
    for m in ScramMechanism::ALL {
        s.set("alice", m, "alice-secret");
    }
    Arc::new(s)
}

fn session(config: &Arc<SaslServerConfig>, store: &Arc<Store>) -> SaslSession {
    SaslSession::new(
        config.clone(),
        store.clone(),
        "127.0.0.1:5555".parse().unwrap(),
    )
}

fn client(mechanism: &str, authzid: Option<&str>, user: &str, password: &str) -> Session {
    let config = SASLConfig::with_credentials(
        authzid.map(str::to_string),
        user.to_string(),
        password.to_string(),
    )
    .unwrap();
    SASLClient::new(config)
        .start_suggested(&[Mechname::parse(mechanism.as_bytes()).unwrap()])
        .unwrap()
}

fn client_step(c: &mut Session, input: Option<&[u8]>) -> (State, Vec<u8>) {
    let mut out = Vec::new();
    let state = c.step(input, &mut out).unwrap();
    (state, out)
}

/// Client-first, server-first, client-final: returns the server's answer to the last.
fn scram_exchange(s: &mut SaslSession, m: &str, user: &str, password: &str) -> AuthStep {
    s.handshake(1, m, NOW).unwrap();
    let mut c = client(m, None, user, password);
    let (_, first) = client_step(&mut c, None);
    let AuthStep::Challenge(server_first) = s.authenticate(&first, Some(1), NOW) else {
        panic!("client-first refused");
    };
    let (_, last) = client_step(&mut c, Some(&server_first));
    let step = s.authenticate(&last, Some(1), NOW);
    if let AuthStep::Done { token, .. } = &step {
        // The client checks the server's signature: the server knew the keys.
        let (state, _) = client_step(&mut c, Some(token));
        assert!(state.is_finished());
    }
    step
}

fn failed_message(step: AuthStep) -> (ResponseError, String) {
    match step {
        AuthStep::Failed {
            code,
            message,
            close,
        } => {
            assert!(close);
            (code, message)
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn scram_sha_256_and_512_authenticate_a_real_client() {
    let (config, store) = (config(&[]), store());
    for m in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let mut s = session(&config, &store);
        assert!(!s.is_authenticated());
        match scram_exchange(&mut s, m, "alice", "alice-secret") {
            AuthStep::Done {
                principal,
                session_lifetime_ms,
                ..
            } => {
                assert_eq!(principal.to_string(), "User:alice");
                assert_eq!(session_lifetime_ms, 0);
            }
            other => panic!("{m}: {other:?}"),
        }
        assert!(s.is_authenticated());
        assert_eq!(s.principal().unwrap().name, "alice");
        assert!(!s.expired(i64::MAX));
    }
}

#[test]
fn a_wrong_password_and_an_unknown_user_fail_alike() {
    let (config, store) = (config(&[]), store());
    let expected = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512";
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
        let mut s = session(&config, &store);
        let step = scram_exchange(&mut s, "SCRAM-SHA-512", user, password);
        assert_eq!(
            failed_message(step),
            (
                ResponseError::SaslAuthenticationFailed,
                expected.to_string()
            ),
            "{user}"
        );
        assert!(!s.is_authenticated());
        // Nothing more is accepted on this connection.
        assert!(matches!(
            s.authenticate(b"c=biws,r=x,p=y", Some(1), NOW),
            AuthStep::Failed {
                code: ResponseError::IllegalSaslState,
                ..
            }
        ));
    }
}

/// An unknown user gets a server-first message like a real user's, with the same salt
/// each time (a random one would tell them apart).
#[test]
fn unknown_users_get_a_stable_fake_salt() {
    let (config, store) = (config(&[]), store());
    let server_first = |user: &str| {
        let mut s = session(&config, &store);
        s.handshake(1, "SCRAM-SHA-256", NOW).unwrap();
        let first = format!("n,,n={user},r=clientnonce");
        let AuthStep::Challenge(t) = s.authenticate(first.as_bytes(), Some(1), NOW) else {
            panic!()
        };
        let t = String::from_utf8(t.to_vec()).unwrap();
        let salt = t
            .split(',')
            .find(|p| p.starts_with("s="))
            .unwrap()
            .to_string();
        let iterations = t
            .split(',')
            .find(|p| p.starts_with("i="))
            .unwrap()
            .to_string();
        (salt, iterations)
    };
    assert_eq!(server_first("mallory"), server_first("mallory"));
    assert_ne!(server_first("mallory").0, server_first("trudy").0);
    assert_eq!(server_first("mallory").1, server_first("alice").1);
}

#[test]
fn a_replayed_client_final_is_refused() {
    let (config, store) = (config(&[]), store());
    // A successful exchange, recorded.
    let mut s1 = session(&config, &store);
    s1.handshake(1, "SCRAM-SHA-256", NOW).unwrap();
    let mut c = client("SCRAM-SHA-256", None, "alice", "alice-secret");
    let (_, first) = client_step(&mut c, None);
    let AuthStep::Challenge(server_first) = s1.authenticate(&first, Some(1), NOW) else {
        panic!()
    };
    let (_, last) = client_step(&mut c, Some(&server_first));
    assert!(matches!(
        s1.authenticate(&last, Some(1), NOW),
        AuthStep::Done { .. }
    ));
    // Again on the same connection: the exchange is over.
    assert!(matches!(
        s1.authenticate(&last, Some(1), NOW),
        AuthStep::Failed {
            code: ResponseError::IllegalSaslState,
            close: false,
            ..
        }
    ));
    // On a new connection, after the same client-first: the server's nonce differs.
    let mut s2 = session(&config, &store);
    s2.handshake(1, "SCRAM-SHA-256", NOW).unwrap();
    assert!(matches!(
        s2.authenticate(&first, Some(1), NOW),
        AuthStep::Challenge(_)
    ));
    let (code, _) = failed_message(s2.authenticate(&last, Some(1), NOW));
    assert_eq!(code, ResponseError::SaslAuthenticationFailed);
    // Sent as the first message, it is no client-first at all.
    let mut s3 = session(&config, &store);
    s3.handshake(1, "SCRAM-SHA-256", NOW).unwrap();
    failed_message(s3.authenticate(&last, Some(1), NOW));
}

#[test]
fn truncated_oversized_and_random_tokens_fail_without_panicking() {
    let (config, store) = (config(&[("sasl.server.max.receive.size", "4096")]), store());
    let mut c = client("SCRAM-SHA-512", None, "alice", "alice-secret");
    let (_, first) = client_step(&mut c, None);
    let mut s = session(&config, &store);
    s.handshake(1, "SCRAM-SHA-512", NOW).unwrap();
    let AuthStep::Challenge(server_first) = s.authenticate(&first, Some(1), NOW) else {
        panic!()
    };
    let (_, last) = client_step(&mut c, Some(&server_first));
    for cut in 0..first.len() {
        let mut s = session(&config, &store);
        s.handshake(1, "SCRAM-SHA-512", NOW).unwrap();
        // A cut inside the nonce still leaves a valid client-first.
        let step = s.authenticate(&first[..cut], Some(1), NOW);
        assert!(matches!(
            step,
            AuthStep::Challenge(_) | AuthStep::Failed { .. }
        ));
    }
    for cut in 0..last.len() {
        let mut s = session(&config, &store);
        s.handshake(1, "SCRAM-SHA-512", NOW).unwrap();
        assert!(matches!(
            s.authenticate(&first, Some(1), NOW),
            AuthStep::Challenge(_)
        ));
        failed_message(s.authenticate(&last[..cut], Some(1), NOW));
    }
    let mut s = session(&config, &store);
    s.handshake(1, "PLAIN", NOW).unwrap();
    let (code, message) = failed_message(s.authenticate(&vec![b'a'; 4097], Some(1), NOW));
    assert_eq!(code, ResponseError::SaslAuthenticationFailed);
    assert!(message.contains("invalid receive size"));

    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let alphabet = b"nyrcpa=,_-0123456789ABCxyz\0\xff";
    for round in 0..3000 {
        let len = rng.gen_range(0..40);
        let token: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect();
        for m in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
            let mut s = session(&config, &store);
            s.handshake(1, m, NOW).unwrap();
            if round % 2 == 1 && m != "PLAIN" {
                assert!(matches!(
                    s.authenticate(&first, Some(1), NOW),
                    AuthStep::Challenge(_)
                ));
            }
            let _ = s.authenticate(&token, Some(1), NOW);
        }
    }
}

/// The credential is read once, when the client names the user: a change during an
/// exchange applies from the next authentication (or re-authentication) on.
#[test]
fn a_credential_changed_mid_exchange_applies_from_the_next_one() {
    let (config, store) = (config(&[]), store());
    let mut s = session(&config, &store);
    s.handshake(1, "SCRAM-SHA-256", NOW).unwrap();
    let mut c = client("SCRAM-SHA-256", None, "alice", "alice-secret");
    let (_, first) = client_step(&mut c, None);
    let AuthStep::Challenge(server_first) = s.authenticate(&first, Some(1), NOW) else {
        panic!()
    };
    store.set("alice", ScramMechanism::Sha256, "new-secret");
    let (_, last) = client_step(&mut c, Some(&server_first));
    assert!(matches!(
        s.authenticate(&last, Some(1), NOW),
        AuthStep::Done { .. }
    ));

    let mut s = session(&config, &store);
    failed_message(scram_exchange(
        &mut s,
        "SCRAM-SHA-256",
        "alice",
        "alice-secret",
    ));
    let mut s = session(&config, &store);
    assert!(matches!(
        scram_exchange(&mut s, "SCRAM-SHA-256", "alice", "new-secret"),
        AuthStep::Done { .. }
    ));
    // Removed: refused like an unknown user.
    store.0.lock().clear();
    let mut s = session(&config, &store);
    failed_message(scram_exchange(
        &mut s,
        "SCRAM-SHA-256",
        "alice",
        "new-secret",
    ));
}

#[test]
fn plain_with_kafkas_messages() {
    let (config, store) = (config(&[]), store());
    let plain = |authzid: Option<&str>, user: &str, password: &str| {
        let mut s = session(&config, &store);
        s.handshake(1, "PLAIN", NOW).unwrap();
        let (_, token) = client_step(&mut client("PLAIN", authzid, user, password), None);
        (s.authenticate(&token, Some(1), NOW), s)
    };
    let (step, s) = plain(None, "alice", "alice-secret");
    assert!(
        matches!(step, AuthStep::Done { ref token, .. } if token.is_empty()),
        "{step:?}"
    );
    assert!(s.is_authenticated());
    let (step, _) = plain(Some("alice"), "alice", "alice-secret");
    assert!(matches!(step, AuthStep::Done { .. }));
    for (authzid, user, password, message) in [
        (None, "alice", "wrong", "Authentication failed: Invalid username or password"),
        (None, "bob", "alice-secret", "Authentication failed: Invalid username or password"),
        (
            Some("admin"),
            "alice",
            "alice-secret",
            "Authentication failed: Client requested an authorization id that is different from username",
        ),
    ] {
        let (step, s) = plain(authzid, user, password);
        assert_eq!(
            failed_message(step),
            (ResponseError::SaslAuthenticationFailed, message.to_string())
        );
        assert!(!s.is_authenticated());
    }
}

#[test]
fn handshake_states_and_errors() {
    let (config, store) = (
        config(&[("sasl.enabled.mechanisms", "SCRAM-SHA-512,PLAIN")]),
        store(),
    );
    // Authenticate before any handshake.
    let mut s = session(&config, &store);
    let (code, _) = failed_message(s.authenticate(b"\0alice\0alice-secret", Some(1), NOW));
    assert_eq!(code, ResponseError::IllegalSaslState);
    // An unknown or disabled mechanism: the enabled ones are listed, then close.
    for m in ["GSSAPI", "SCRAM-SHA-256", "plain"] {
        let mut s = session(&config, &store);
        let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(m));
        let (resp, next) = s.handle_handshake(&req, 1, NOW);
        assert_eq!(
            resp.error_code,
            ResponseError::UnsupportedSaslMechanism.code(),
            "{m}"
        );
        assert_eq!(
            resp.mechanisms,
            ["SCRAM-SHA-512", "PLAIN"].map(StrBytes::from_static_str)
        );
        assert_eq!(next, Next::Close);
    }
    // A second handshake while exchanging.
    let mut s = session(&config, &store);
    s.handshake(1, "PLAIN", NOW).unwrap();
    assert_eq!(
        s.handshake(1, "PLAIN", NOW).unwrap_err().code,
        ResponseError::IllegalSaslState
    );
    // v0: raw tokens follow.
    let mut s = session(&config, &store);
    s.handshake(0, "PLAIN", NOW).unwrap();
    assert!(s.raw_tokens());
    assert!(matches!(
        s.authenticate(b"\0alice\0alice-secret", None, NOW),
        AuthStep::Done { .. }
    ));
    assert!(!s.raw_tokens());
    // After authentication, without v1+ SaslAuthenticate there is no re-authentication.
    assert!(!s.may_reauthenticate(NOW + 10_000));
    assert_eq!(
        s.handshake(1, "PLAIN", NOW + 10_000).unwrap_err().code,
        ResponseError::IllegalSaslState
    );
    assert!(s.is_authenticated());
}

#[test]
fn kip_368_session_lifetime_and_reauthentication() {
    let (config, store) = (config(&[("connections.max.reauth.ms", "60000")]), store());
    let mut s = session(&config, &store);
    let AuthStep::Done {
        session_lifetime_ms,
        ..
    } = scram_exchange(&mut s, "SCRAM-SHA-512", "alice", "alice-secret")
    else {
        panic!()
    };
    assert_eq!(session_lifetime_ms, 60_000);
    assert!(!s.expired(NOW + 59_999));
    assert!(s.expired(NOW + 60_000));
    // Too soon after the last authentication.
    assert!(!s.may_reauthenticate(NOW + 500));
    // The same principal again: a new session.
    let later = NOW + 30_000;
    s.handshake(1, "SCRAM-SHA-512", later).unwrap();
    let mut c = client("SCRAM-SHA-512", None, "alice", "alice-secret");
    let (_, first) = client_step(&mut c, None);
    let AuthStep::Challenge(sf) = s.authenticate(&first, Some(1), later) else {
        panic!()
    };
    let (_, last) = client_step(&mut c, Some(&sf));
    assert!(matches!(
        s.authenticate(&last, Some(1), later),
        AuthStep::Done { .. }
    ));
    assert!(!s.expired(NOW + 60_000));
    assert!(s.expired(later + 60_000));
    // Another principal: refused, and the connection closes.
    store.set("bob", ScramMechanism::Sha512, "bob-secret");
    let later = later + 30_000;
    let reauth = |mechanism: &str, user: &str, password: &str| {
        let mut s = session(&config, &store);
        assert!(matches!(
            scram_exchange(&mut s, "SCRAM-SHA-512", "alice", "alice-secret"),
            AuthStep::Done { .. }
        ));
        s.handshake(1, mechanism, later).unwrap();
        let (_, first) = client_step(&mut client(mechanism, None, user, password), None);
        failed_message(s.authenticate(&first, Some(1), later)).1
    };
    // Client-first is only the first message of SCRAM: run the whole exchange as bob.
    let mut s = session(&config, &store);
    assert!(matches!(
        scram_exchange(&mut s, "SCRAM-SHA-512", "alice", "alice-secret"),
        AuthStep::Done { .. }
    ));
    s.handshake(1, "SCRAM-SHA-512", later).unwrap();
    let mut c = client("SCRAM-SHA-512", None, "bob", "bob-secret");
    let (_, first) = client_step(&mut c, None);
    let AuthStep::Challenge(sf) = s.authenticate(&first, Some(1), later) else {
        panic!()
    };
    let (_, last) = client_step(&mut c, Some(&sf));
    assert_eq!(
        failed_message(s.authenticate(&last, Some(1), later)).1,
        "Cannot change principals during re-authentication from User:alice: User:bob"
    );
    // Another mechanism: refused at its first token.
    assert!(reauth("PLAIN", "alice", "alice-secret").contains(
        "SASL mechanism 'PLAIN' requested by client is not supported for re-authentication of mechanism 'SCRAM-SHA-512'"
    ));
}

/// librdkafka 2.0.2's client-final message: `r=<client nonce><server nonce>` (the client
/// nonce twice), signed as sent. Kafka accepts it (the nonce only has to end with the
/// server's); so does Brook, with the right password only.
#[test]
fn scram_client_final_repeating_the_client_nonce_as_librdkafka_2_0_sends_it() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Mac, SimpleHmac};
    use rsasl::mechanisms::scram::tools::hash_password;
    use sha2::{Digest, Sha512};

    fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <SimpleHmac<Sha512> as Mac>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    let config = config(&[]);
    let store = store();
    for (password, ok) in [("alice-secret", true), ("wrong", false)] {
        let mut s = session(&config, &store);
        s.handshake(1, "SCRAM-SHA-512", NOW).unwrap();
        let first_bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
        let AuthStep::Challenge(server_first) =
            s.authenticate(format!("n,,{first_bare}").as_bytes(), Some(1), NOW)
        else {
            panic!("no server-first message");
        };
        let server_first = String::from_utf8(server_first.to_vec()).unwrap();
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|p| p.strip_prefix(k))
                .unwrap()
                .to_string()
        };
        let (nonce, salt, iterations) = (attr("r="), attr("s="), attr("i="));
        let mut salted = Default::default();
        hash_password::<Sha512>(
            password.as_bytes(),
            iterations.parse().unwrap(),
            &STANDARD.decode(salt).unwrap(),
            &mut salted,
        );
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha512::digest(&client_key).to_vec();
        let without_proof = format!("c=biws,r=fyko+d2lbbFgONRv9qkxdawL{nonce}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let last = format!("{without_proof},p={}", STANDARD.encode(proof));
        let step = s.authenticate(last.as_bytes(), Some(1), NOW);
        if ok {
            let AuthStep::Done {
                principal, token, ..
            } = step
            else {
                panic!("not authenticated: {step:?}");
            };
            assert_eq!(principal.name, "alice");
            let server_key = hmac(&salted, b"Server Key");
            let expected = hmac(&server_key, auth_message.as_bytes());
            assert_eq!(
                &token[..],
                format!("v={}", STANDARD.encode(expected)).as_bytes()
            );
        } else {
            assert!(
                matches!(step, AuthStep::Failed { close: true, .. }),
                "{step:?}"
            );
        }
    }
}
