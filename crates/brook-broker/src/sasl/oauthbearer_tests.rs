//! Tests of the JWT validator with ES256 keys made here (ring) and a JWKS built from them.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

const NOW_MS: i64 = 1_800_000_000_000;

struct Signer {
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn signer(kid: &str) -> Signer {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    Signer {
        pkcs8: pkcs8.as_ref().to_vec(),
        jwk,
    }
}

fn sign(s: &Signer, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&s.pkcs8)).unwrap()
}

fn validator(jwks: &Value, extra: &[(&str, &str)]) -> Result<JwtValidator, SaslConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let url = format!("file://{}", path.display());
    let mut settings: Vec<(String, String)> =
        vec![("sasl.oauthbearer.jwks.endpoint.url".into(), url)];
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    JwtValidator::from_settings(&|key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, v)| (k.clone(), v.clone()))
    })
}

fn claims() -> Value {
    json!({
        "sub": "alice", "aud": ["brook", "other"], "iss": "https://idp",
        "iat": NOW_MS / 1000 - 10, "exp": NOW_MS / 1000 + 600, "scope": "read write",
    })
}

#[test]
fn good_and_bad_tokens() {
    let key = signer("k1");
    let other = signer("k1");
    let v = validator(
        &json!({"keys": [key.jwk]}),
        &[
            ("sasl.oauthbearer.expected.audience", "brook, kafka"),
            ("sasl.oauthbearer.expected.issuer", "https://idp"),
        ],
    )
    .unwrap();
    let ok = v.validate(&sign(&key, "k1", &claims()), NOW_MS).unwrap();
    assert_eq!(ok.principal, "alice");
    assert_eq!(ok.expires_at_ms, NOW_MS + 600_000);

    let refused = |claims: &Value| v.validate(&sign(&key, "k1", claims), NOW_MS).unwrap_err();
    // Bad signature (another key with the same kid), unknown kid.
    assert!(v.validate(&sign(&other, "k1", &claims()), NOW_MS).is_err());
    assert!(v.validate(&sign(&key, "k2", &claims()), NOW_MS).is_err());
    let with = |k: &str, val: Value| {
        let mut c = claims();
        c[k] = val;
        c
    };
    let without = |k: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    refused(&with("aud", json!("someone-else")));
    refused(&without("aud"));
    refused(&with("iss", json!("https://evil")));
    refused(&without("exp"));
    refused(&without("iat"));
    refused(&without("sub"));
    refused(&with("sub", json!("  ")));
    refused(&with("scope", json!(["a", "a"])));
    // Expired, beyond and within the 30 s clock skew; not yet valid.
    refused(&with("exp", json!(NOW_MS / 1000 - 31)));
    assert!(v
        .validate(
            &sign(&key, "k1", &with("exp", json!(NOW_MS / 1000 - 20))),
            NOW_MS
        )
        .is_ok());
    refused(&with("nbf", json!(NOW_MS / 1000 + 60)));
    for garbage in [
        "",
        "a.b.c",
        "not a jwt",
        "eyJhbGciOiJub25lIn0.e30.",
        "\u{1}.\u{2}.x",
    ] {
        assert!(v.validate(garbage, NOW_MS).is_err(), "{garbage:?}");
    }
    // alg none / HS256 in the header are refused whatever the keys.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    assert!(v.validate(&hs, NOW_MS).is_err());
}

#[test]
fn sub_claim_name_and_settings_errors() {
    let key = signer("k1");
    let jwks = json!({"keys": [key.jwk]});
    let v = validator(&jwks, &[("sasl.oauthbearer.sub.claim.name", "client_id")]).unwrap();
    let mut c = claims();
    c["client_id"] = json!("svc-1");
    assert_eq!(
        v.validate(&sign(&key, "k1", &c), NOW_MS).unwrap().principal,
        "svc-1"
    );
    assert!(v.validate(&sign(&key, "k1", &claims()), NOW_MS).is_err());

    assert!(validator(&json!({"keys": []}), &[]).is_err());
    assert!(validator(&json!({"nokeys": 1}), &[]).is_err());
    assert!(validator(&jwks, &[("sasl.oauthbearer.clock.skew.seconds", "-1")]).is_err());
    let url = |u: &'static str| {
        JwtValidator::from_settings(&move |k: &str| {
            (k == "sasl.oauthbearer.jwks.endpoint.url").then(|| (k.to_string(), u.to_string()))
        })
    };
    // An https JWKS is fetched when the listener starts, not when the settings are read.
    assert!(url("https://idp.example/jwks").is_ok());
    assert!(url("ftp://idp/jwks")
        .unwrap_err()
        .to_string()
        .contains("https:"));
    assert!(url("https:///jwks").is_err());
    assert!(JwtValidator::from_settings(&|_: &str| None).is_err());
    let handler = "sasl.server.callback.handler.class";
    assert!(validator(
        &jwks,
        &[(
            handler,
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
        )]
    )
    .is_ok());
    assert!(validator(&jwks, &[(handler, "com.example.Custom")]).is_err());
}

#[test]
fn client_first_message() {
    let parse = |m: &[u8]| parse_client_message(m);
    assert_eq!(
        parse(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
        Some((String::new(), "abc.def.ghi".into()))
    );
    assert_eq!(
        parse(b"n,a=alice,\x01auth=Bearer t\x01traceId=123\x01\x01"),
        Some(("alice".into(), "t".into()))
    );
    for bad in [
        &b""[..],
        b"\x01\x01",
        b"n,,\x01auth=Bearer t\x01",
        b"n,,\x01auth=Basic t\x01\x01",
        b"n,,\x01\x01",
        b"p=x,,\x01auth=Bearer t\x01\x01",
        b"n,,\x01auth=Bearer t\x01bad key=1\x01\x01",
        b"n,,\x01auth=Bearer \xff\x01\x01",
        b"\x01",
    ] {
        assert_eq!(parse(bad), None, "{bad:?}");
    }
}

/// The mechanism in a listener's session: success with the token's expiry as the session
/// lifetime (bounded by `connections.max.reauth.ms`), RFC 7628's error exchange.
mod session {
    use super::*;
    use crate::sasl::{AuthStep, SaslServerConfig, SaslSession, ScramCredentialStore};
    use brook_meta::{ScramCredential, ScramMechanism};
    use kafka_protocol::error::ResponseError;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    struct NoScram;
    impl ScramCredentialStore for NoScram {
        fn scram_credential(&self, _: &str, _: ScramMechanism) -> Option<ScramCredential> {
            None
        }
    }

    fn session(key: &Signer, extra: &[(&str, &str)]) -> (SaslSession, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({"keys": [key.jwk]}).to_string()).unwrap();
        let p = "listener.name.sasl_plaintext.";
        let mut settings = BTreeMap::from([
            (format!("{p}sasl.enabled.mechanisms"), "OAUTHBEARER".into()),
            (
                format!("{p}oauthbearer.sasl.oauthbearer.jwks.endpoint.url"),
                format!("file:{}", path.display()),
            ),
            (
                "sasl.oauthbearer.expected.audience".to_string(),
                "brook".to_string(),
            ),
        ]);
        settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = SaslServerConfig::from_settings(&settings, "SASL_PLAINTEXT").unwrap();
        let mut s = SaslSession::new(
            Arc::new(config),
            Arc::new(NoScram),
            "127.0.0.1:1".parse().unwrap(),
        );
        s.handshake(1, "OAUTHBEARER", NOW_MS).unwrap();
        (s, dir)
    }

    fn message(token: &str) -> Vec<u8> {
        format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
    }

    #[test]
    fn lifetime_and_errors() {
        let key = signer("k1");
        let good = message(&sign(&key, "k1", &claims()));
        let (mut s, _d) = session(&key, &[]);
        match s.authenticate(&good, Some(2), NOW_MS) {
            AuthStep::Done {
                principal,
                session_lifetime_ms,
                ..
            } => {
                assert_eq!(principal.to_string(), "User:alice");
                assert_eq!(session_lifetime_ms, 600_000);
            }
            other => panic!("{other:?}"),
        }
        let (mut s, _d) = session(&key, &[("connections.max.reauth.ms", "60000")]);
        assert!(matches!(
            s.authenticate(&good, Some(2), NOW_MS),
            AuthStep::Done {
                session_lifetime_ms: 60_000,
                ..
            }
        ));

        // Accepted within the clock skew, but already expired: the session ends at once
        // (Kafka: the next request closes the connection unless it re-authenticates).
        let mut stale = claims();
        stale["exp"] = json!(NOW_MS / 1000 - 5);
        let (mut s, _d) = session(&key, &[]);
        let m = message(&sign(&key, "k1", &stale));
        assert!(matches!(
            s.authenticate(&m, Some(2), NOW_MS),
            AuthStep::Done {
                session_lifetime_ms: 0,
                ..
            }
        ));
        assert!(s.expired(NOW_MS));

        let mut wrong_aud = claims();
        wrong_aud["aud"] = json!("other");
        let (mut s, _d) = session(&key, &[]);
        let bad = message(&sign(&key, "k1", &wrong_aud));
        assert_eq!(
            s.authenticate(&bad, Some(2), NOW_MS),
            AuthStep::Challenge(INVALID_TOKEN.as_bytes().to_vec().into())
        );
        assert_eq!(
            s.authenticate(b"\x01", Some(2), NOW_MS),
            AuthStep::Failed {
                code: ResponseError::SaslAuthenticationFailed,
                message: INVALID_TOKEN.into(),
                close: true,
            }
        );
        // A malformed message fails at once; so does an authorization id that is not
        // the token's subject.
        for m in [
            b"garbage".to_vec(),
            format!(
                "n,a=bob,\x01auth=Bearer {}\x01\x01",
                sign(&key, "k1", &claims())
            )
            .into_bytes(),
        ] {
            let (mut s, _d) = session(&key, &[]);
            assert!(matches!(
                s.authenticate(&m, Some(2), NOW_MS),
                AuthStep::Failed {
                    code: ResponseError::SaslAuthenticationFailed,
                    ..
                }
            ));
        }
    }
}

/// A one-connection-at-a-time HTTP server answering every GET with `body()`; counts them.
async fn serve_jwks(
    body: std::sync::Arc<parking_lot::Mutex<String>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let b = body.lock().clone();
            let (status, b) = if b.is_empty() {
                ("404 Not Found", String::new())
            } else {
                ("200 OK", b)
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    port
}

#[tokio::test]
async fn an_http_jwks_is_fetched_at_start_and_again_for_an_unknown_key_id() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (k1, k2) = (signer("k1"), signer("k2"));
    let body = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let port = serve_jwks(body.clone(), hits.clone()).await;
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let settings = [
        ("sasl.oauthbearer.jwks.endpoint.url", url.as_str()),
        ("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", "300"),
    ];
    let v = JwtValidator::from_settings(&|key: &str| {
        settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(k, v)| (k.to_string(), v.to_string()))
    })
    .unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let fresh = || {
        let n = now() / 1000;
        json!({"sub": "alice", "iat": n, "exp": n + 600})
    };

    // The provider is down (404) at start: retried, then the listener starts keyless.
    v.start().await;
    assert!(hits.load(Ordering::SeqCst) >= 2, "retried");

    // It comes up: an unknown key id asks for a fetch (the token at hand is refused).
    *body.lock() = json!({"keys": [k1.jwk]}).to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wait_for = |kid: &'static str, signer: &Signer| {
        let token = sign(signer, kid, &fresh());
        let v = &v;
        async move {
            for _ in 0..50 {
                if v.validate(&token, now()).is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(wait_for("k1", &k1).await, "k1 never accepted");

    // A rotation within the expedite interval is not fetched yet; after it, it is.
    *body.lock() = json!({"keys": [k1.jwk, k2.jwk]}).to_string();
    let before = hits.load(Ordering::SeqCst);
    assert!(v.validate(&sign(&k2, "k2", &fresh()), now()).is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hits.load(Ordering::SeqCst), before);
}
