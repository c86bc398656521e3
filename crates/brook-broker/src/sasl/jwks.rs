//! The JWKS an OAUTHBEARER validator checks signatures with: read once from a `file:`
//! URL, or fetched from an `http(s):` URL and refreshed, as Kafka's
//! `RefreshingHttpsJwks` does: at start, every `sasl.oauthbearer.jwks.endpoint.refresh.ms`,
//! and sooner when a token names a key id the set does not hold (at most once per
//! [`EXPEDITE_INTERVAL`], so tokens with made-up key ids cannot make the broker hammer the
//! identity provider). A failed fetch keeps the keys it had and is retried with
//! exponential backoff (`...retry.backoff.ms` up to `...retry.backoff.max.ms`).
//!
//! HTTPS trusts the CA certificates of `ssl.truststore.location` /
//! `ssl.truststore.certificates` given as options of the listener's OAUTHBEARER JAAS line
//! (where Kafka's validator reads its SSL client settings), else the system's roots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use rustls::ClientConfig;
use serde_json::Value;

/// The algorithms Brook accepts in a token's header.
pub(super) const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
];

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Time for one fetch: connect, TLS, request and the whole body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest time between two refreshes asked for by unknown key ids.
pub(super) const EXPEDITE_INTERVAL: Duration = Duration::from_secs(10);

/// One verification key of the JWKS.
pub(super) struct Key {
    pub kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    pub alg: Option<Algorithm>,
    pub rsa: bool,
    pub key: DecodingKey,
}

/// Where the keys come from and how often to refresh them.
#[derive(Debug, Clone)]
pub(super) struct Remote {
    pub url: Uri,
    pub tls: Option<Arc<ClientConfig>>,
    pub refresh: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

/// The keys in use, swapped whole by a refresh.
pub(super) struct KeySet {
    keys: RwLock<Arc<Vec<Key>>>,
    remote: Option<Remote>,
    /// A fetch is under way (one at a time).
    fetching: AtomicBool,
    /// When an unknown key id last asked for a refresh.
    last_expedite: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys.read().len())
            .field("url", &self.remote.as_ref().map(|r| r.url.to_string()))
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// A fixed set (a `file:` JWKS).
    pub fn fixed(keys: Vec<Key>) -> Self {
        KeySet {
            keys: RwLock::new(Arc::new(keys)),
            remote: None,
            fetching: AtomicBool::new(false),
            last_expedite: Mutex::new(None),
        }
    }

    /// An empty set filled from `remote` by [`KeySet::start`].
    pub fn remote(remote: Remote) -> Self {
        KeySet {
            keys: RwLock::new(Arc::new(Vec::new())),
            remote: Some(remote),
            fetching: AtomicBool::new(false),
            last_expedite: Mutex::new(None),
        }
    }

    pub fn keys(&self) -> Arc<Vec<Key>> {
        self.keys.read().clone()
    }

    pub fn url(&self) -> Option<&Uri> {
        self.remote.as_ref().map(|r| &r.url)
    }

    /// For a remote set: the first fetch (retried with backoff up to
    /// `retry.backoff.max.ms`; the broker starts without keys if it fails, with a
    /// warning), then a task refreshing every `refresh.ms` until the runtime stops (the
    /// set lives as long as its listener, i.e. the broker).
    pub async fn start(self: &Arc<Self>) {
        let Some(remote) = &self.remote else {
            return;
        };
        if let Err(e) = self.refresh_with_retries().await {
            tracing::warn!(url = %remote.url, "JWKS: cannot fetch the keys ({e}); OAUTHBEARER tokens are refused until a refresh succeeds");
        }
        tokio::spawn(refresh_loop(self.clone(), remote.refresh));
    }

    /// A token named a key id (or algorithm) the set lacks: refresh in the background,
    /// unless one was asked for within [`EXPEDITE_INTERVAL`]. The token at hand is still
    /// refused (as in Kafka); the client's next attempt sees the new keys.
    pub fn expedite(self: &Arc<Self>) {
        if self.remote.is_none() {
            return;
        }
        {
            let mut last = self.last_expedite.lock();
            if last.is_some_and(|t| t.elapsed() < EXPEDITE_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let set = self.clone();
        runtime.spawn(async move {
            if let Err(e) = set.refresh_once().await {
                tracing::warn!("JWKS: refresh for an unknown key id failed: {e}");
            }
        });
    }

    async fn refresh_with_retries(&self) -> Result<(), String> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let started = Instant::now();
        let mut backoff = remote.backoff;
        loop {
            match self.refresh_once().await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() + backoff > remote.backoff_max => return Err(e),
                Err(e) => {
                    tracing::debug!(url = %remote.url, "JWKS fetch failed, retrying in {backoff:?}: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(remote.backoff_max);
                }
            }
        }
    }

    /// One fetch; on success the keys are replaced. Concurrent callers skip.
    async fn refresh_once(&self) -> Result<(), String> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        if self.fetching.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = tokio::time::timeout(FETCH_TIMEOUT, fetch(remote))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {FETCH_TIMEOUT:?}")))
            .and_then(|text| parse_jwks(&text));
        self.fetching.store(false, Ordering::Release);
        let keys = result?;
        tracing::info!(url = %remote.url, keys = keys.len(), "JWKS refreshed");
        *self.keys.write() = Arc::new(keys);
        Ok(())
    }
}

async fn refresh_loop(set: Arc<KeySet>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = set.refresh_with_retries().await {
            if let Some(url) = set.url() {
                tracing::warn!(%url, "JWKS refresh failed, keeping the previous keys: {e}");
            }
        }
    }
}

/// GETs the JWKS document (HTTP/1.1, no redirects, at most [`MAX_JWKS_BYTES`]).
async fn fetch(remote: &Remote) -> Result<String, String> {
    let url = &remote.url;
    let host = url.host().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    if https {
        let tls = remote
            .tls
            .clone()
            .ok_or("no TLS settings for an https URL")?;
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("bad host name {host}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        get(hyper_util::rt::TokioIo::new(stream), url).await
    } else {
        get(hyper_util::rt::TokioIo::new(tcp), url).await
    }
}

async fn get<IO>(io: IO, url: &Uri) -> Result<String, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection ends when `sender` is dropped (or the fetch times out).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "brook")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("HTTP request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("HTTP body: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the JWKS is not UTF-8".to_string())
}

/// The signing keys of a JWKS document; keys of other uses or types are skipped.
pub(super) fn parse_jwks(text: &str) -> Result<Vec<Key>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWKS: no \"keys\" array")?;
    let mut keys = Vec::new();
    for entry in list {
        let jwk: Jwk = match serde_json::from_value(entry.clone()) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::warn!("JWKS: skipping a key that cannot be read: {e}");
                continue;
            }
        };
        if matches!(
            jwk.common.public_key_use,
            Some(ref u) if *u != PublicKeyUse::Signature
        ) {
            continue;
        }
        let rsa = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => true,
            AlgorithmParameters::EllipticCurve(p)
                if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                false
            }
            _ => continue,
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => match a.to_string().parse::<Algorithm>() {
                Ok(a) if ALGORITHMS.contains(&a) => Some(a),
                _ => continue,
            },
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad JWKS key: {e}"))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            rsa,
            key,
        });
    }
    if keys.is_empty() {
        return Err("the JWKS has no RSA or P-256 signing key".into());
    }
    Ok(keys)
}
