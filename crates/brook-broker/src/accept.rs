//! Accept loops, one per listener: connection creation rates
//! (`max.connection.creation.rate` and the IPs' `connection_creation_rate` quotas:
//! `crate::connection_quotas`) and connection limits (`max.connections`,
//! `max.connections.per.ip`), read from the applied image per connection: they are
//! dynamic; then per connection the transport: a plaintext socket goes straight to
//! [`connection::serve`]; on a TLS listener the first bytes must be a TLS handshake
//! (a plaintext client is told apart and logged), the handshake is bounded by
//! [`TLS_HANDSHAKE_TIMEOUT`], and the client certificate gives the principal. On a SASL
//! listener the connection also gets a [`SaslSession`] (the principal comes from SASL).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::client_quotas::QuotaWindows;
use crate::config::Dynamic;
use crate::connection::{self, ConnectionLimits, RequestMemory};
use crate::connection_quotas::ConnectionRates;
use crate::router::Services;
use crate::sasl::{SaslServerConfig, SaslSession};
use crate::session::{KafkaPrincipal, ListenerInfo, Session};
use crate::tls::ServerTls;

/// A TLS client must finish its handshake within this long after connecting (a client
/// that connects and sends nothing holds its connection slot no longer).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Bytes read from a TLS connection's socket at a time. rustls asks for at most 4 KiB
/// per read, so a 16 KiB record took five `read` calls; below rustls a buffer this
/// large serves them from memory, one `read` per 64 KiB.
const TLS_SOCKET_READ_BYTES: usize = 64 * 1024;

/// A TLS connection's stream: rustls over a read-buffered socket (writes go straight
/// through).
pub type TlsConnection = tokio_rustls::server::TlsStream<tokio::io::BufReader<TcpStream>>;

/// A bound listener and what its connections need.
pub struct Bound {
    pub listener: TcpListener,
    pub info: Arc<ListenerInfo>,
    pub tls: Option<Arc<ServerTls>>,
    /// A SASL listener's settings: each connection gets a [`SaslSession`].
    pub sasl: Option<Arc<SaslServerConfig>>,
}

/// The most connections held open at once to be closed later, because their address
/// went over its connection creation rate; past it they are closed at once.
const MAX_HELD_FOR_CLOSING: usize = 1000;

/// What the listeners of one kind (client or controller) share: the open-connection
/// counts behind `max.connections`, the connection creation rates and the request
/// memory pool (`queued.max.request.bytes`).
#[derive(Clone)]
pub struct Shared {
    open: Arc<parking_lot::Mutex<OpenConnections>>,
    rates: Arc<ConnectionRates>,
    memory: RequestMemory,
}

impl Shared {
    pub fn new(services: &Services) -> Shared {
        let settings = &services.settings;
        // A frame up to socket.request.max.bytes must always fit in the pool.
        let memory_bytes = settings
            .queued_max_request_bytes
            .max(settings.socket_request_max_bytes)
            .clamp(1, u32::MAX as i64) as usize;
        Shared {
            open: Arc::default(),
            rates: Arc::new(ConnectionRates::new(QuotaWindows::of(settings))),
            memory: Arc::new(Semaphore::new(memory_bytes)),
        }
    }
}

/// Accepts connections on one listener until shutdown, then waits for them to close.
pub async fn accept_loop(
    services: Arc<Services>,
    bound: Bound,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = &services.settings;
    let limits = ConnectionLimits {
        max_request_size_bytes: settings.socket_request_max_bytes as usize,
        idle_timeout: Duration::from_millis(settings.connections_max_idle_ms as u64),
    };
    let mut connections = tokio::task::JoinSet::new();
    // Connections over their address's creation rate, held until they are closed.
    let mut held = tokio::task::JoinSet::new();
    // This listener's own limits (`listener.name.<l>.max.connections`, `...creation.rate`).
    let prefix = format!("listener.name.{}.", bound.info.name.to_ascii_lowercase());
    let (max_conns_key, max_rate_key) = (
        format!("{prefix}max.connections"),
        format!("{prefix}max.connection.creation.rate"),
    );
    let listener_rate = ConnectionRates::new(QuotaWindows::of(settings));
    let listener_open = Arc::new(AtomicUsize::new(0));
    let mut failures = AcceptFailures::default();
    loop {
        let accepted = tokio::select! {
            accepted = bound.listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: the connection waits in the backlog
                // until one is free. Retried every 10 ms, logged at most once a second.
                failures.note(&e, Instant::now());
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // The limits are dynamic broker configs: read them for each connection.
        let (max_total, max_per_ip, max_listener, max_rate, listener_max_rate, ip_rate) = {
            let image = services.metadata.image();
            let dynamic = Dynamic::new(&image.broker_configs, services.config.node_id);
            let configured = |name: &str, default: i64| {
                let value = services
                    .config
                    .settings
                    .get(name)
                    .and_then(|v| v.parse().ok());
                dynamic.int(name, value.unwrap_or(default))
            };
            let limit = |name: &str, configured: i64| {
                dynamic.int(name, configured).clamp(1, i64::from(u32::MAX)) as usize
            };
            let rate = |r: i64| (r < i64::from(i32::MAX)).then_some(r.max(0) as f64);
            let max_rate = dynamic.int(
                "max.connection.creation.rate",
                settings.max_connection_creation_rate,
            );
            let unlimited = i64::from(i32::MAX);
            (
                limit("max.connections", settings.max_connections),
                limit("max.connections.per.ip", settings.max_connections_per_ip),
                configured(&max_conns_key, unlimited).clamp(1, i64::from(u32::MAX)) as usize,
                rate(max_rate),
                rate(configured(&max_rate_key, unlimited)),
                image.client_quotas.ip_connection_rate(&peer.ip()),
            )
        };
        if !bound.info.controller {
            let rates = &shared.rates;
            // The listener's rate first, then the broker's (as Kafka's ConnectionQuotas).
            let delay = listener_rate.record_broker(listener_max_rate, listener_rate.now_ms());
            let delay = delay.max(rates.record_broker(max_rate, rates.now_ms()));
            if delay > 0 {
                tracing::debug!(%peer, delay_ms = delay, listener = %bound.info.name, "max.connection.creation.rate reached: delaying the connection");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                    _ = shutdown.changed() => break,
                }
            }
            let refused = rates.record_ip(peer.ip(), ip_rate, max_rate.is_some(), rates.now_ms());
            if let Some(close_after) = refused {
                if listener_max_rate.is_some() {
                    listener_rate.forget_one(listener_rate.now_ms());
                }
                tracing::debug!(%peer, close_after_ms = close_after, "connection_creation_rate quota exceeded: closing the connection");
                while held.try_join_next().is_some() {}
                if held.len() < MAX_HELD_FOR_CLOSING {
                    held.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(close_after)).await;
                        drop(stream);
                    });
                }
                continue;
            }
        }
        let slot = match ConnSlot::take(&shared.open, peer.ip(), max_total, max_per_ip) {
            Ok(_) if listener_open.load(Ordering::Acquire) >= max_listener => {
                tracing::warn!(%peer, listener = %bound.info.name, max_connections = max_listener, "refusing connection: the listener's max.connections reached");
                continue;
            }
            Ok(slot) => slot.on_listener(&listener_open),
            Err(Refused::Total) => {
                tracing::warn!(%peer, max_connections = max_total, "refusing connection: max.connections reached");
                continue;
            }
            Err(Refused::PerIp) => {
                tracing::warn!(%peer, max_per_ip, "refusing connection: max.connections.per.ip reached");
                continue;
            }
        };
        let services = services.clone();
        let mut shutdown = shutdown.clone();
        let memory = shared.memory.clone();
        let info = bound.info.clone();
        let tls = bound.tls.clone();
        let sasl = bound
            .sasl
            .clone()
            .map(|config| SaslSession::new(config, Arc::new(services.metadata.clone()), peer));
        connections.spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => {
                    let session = Session::new(info, KafkaPrincipal::anonymous());
                    let halves = stream.into_split();
                    connection::serve(services, halves, peer, limits, memory, session, sasl, shutdown)
                        .await;
                }
                Some(tls) => {
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake(&tls, stream)) => done,
                        _ = shutdown.changed() => return,
                    };
                    // A SASL_SSL connection's authentication is its SASL exchange's.
                    let counted = match &handshake {
                        Ok(Ok(_)) => sasl.is_none().then_some(true),
                        Ok(Err(Refusal::Plaintext | Refusal::Failed(_))) => Some(false),
                        _ => None,
                    };
                    if let Some(success) = counted {
                        services.metrics.authentication(&info.name, success);
                    }
                    match handshake {
                        Ok(Ok((stream, principal))) => {
                            tracing::debug!(listener = %info.name, %peer, %principal, "TLS client authenticated");
                            let session = Session::new(info, principal);
                            let halves = tokio::io::split(stream);
                            connection::serve(services, halves, peer, limits, memory, session, sasl, shutdown)
                                .await;
                        }
                        Ok(Err(Refusal::Plaintext)) => tracing::warn!(
                            "plaintext client on TLS listener {} from {peer}: closing the connection",
                            info.name
                        ),
                        Ok(Err(Refusal::Closed)) => {
                            tracing::debug!(listener = %info.name, %peer, "connection closed before the TLS handshake")
                        }
                        Ok(Err(Refusal::Failed(reason))) => tracing::warn!(
                            "TLS handshake failed on listener {} from {peer}: {reason}",
                            info.name
                        ),
                        Err(_) => tracing::warn!(
                            "TLS handshake on listener {} from {peer} not finished within {TLS_HANDSHAKE_TIMEOUT:?}: closing the connection",
                            info.name
                        ),
                    }
                }
            }
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// Why a TLS connection was not served.
enum Refusal {
    /// The first byte is not a TLS handshake record: a plaintext (Kafka) client.
    Plaintext,
    Closed,
    Failed(String),
}

/// Tells a plaintext client apart, then runs the handshake and finds the principal.
async fn handshake(
    tls: &ServerTls,
    stream: TcpStream,
) -> Result<(TlsConnection, KafkaPrincipal), Refusal> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Err(Refusal::Closed),
        Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => return Err(Refusal::Plaintext),
        Ok(_) => {}
        Err(e) => return Err(Refusal::Failed(e.to_string())),
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    let stream = tokio::io::BufReader::with_capacity(TLS_SOCKET_READ_BYTES, stream);
    let stream = acceptor
        .accept(stream)
        .await
        .map_err(|e| Refusal::Failed(e.to_string()))?;
    let principal = tls
        .principal(stream.get_ref().1.peer_certificates())
        .map_err(Refusal::Failed)?;
    Ok((stream, principal))
}

/// The open connections of the listeners that share them, in total and per client
/// address.
#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
enum Refused {
    Total,
    PerIp,
}

/// One connection's place in the counts, given back on drop.
struct ConnSlot {
    open: Arc<parking_lot::Mutex<OpenConnections>>,
    ip: IpAddr,
    /// The open connections of its listener.
    listener: Option<Arc<AtomicUsize>>,
}

impl ConnSlot {
    fn take(
        open: &Arc<parking_lot::Mutex<OpenConnections>>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<ConnSlot, Refused> {
        let mut counts = open.lock();
        if counts.total >= max_total {
            return Err(Refused::Total);
        }
        let n = counts.per_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return Err(Refused::PerIp);
        }
        *n += 1;
        counts.total += 1;
        Ok(ConnSlot {
            open: open.clone(),
            ip,
            listener: None,
        })
    }

    /// Counts the connection on its listener too.
    fn on_listener(mut self, open: &Arc<AtomicUsize>) -> ConnSlot {
        open.fetch_add(1, Ordering::AcqRel);
        self.listener = Some(open.clone());
        self
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(open) = &self.listener {
            open.fetch_sub(1, Ordering::AcqRel);
        }
        let mut counts = self.open.lock();
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A listener's failed accepts, logged at most once a second with how many there were
/// since the last line (out of descriptors, accept fails again every 10 ms).
#[derive(Default)]
struct AcceptFailures {
    logged_at: Option<Instant>,
    since: u64,
}

impl AcceptFailures {
    /// Counts a failure; logs it (true) unless the last line was under a second ago.
    fn note(&mut self, error: &std::io::Error, now: Instant) -> bool {
        self.since += 1;
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return false;
        }
        tracing::warn!(%error, failures = self.since, "accept failed");
        self.logged_at = Some(now);
        self.since = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_accepts_are_logged_at_most_once_a_second() {
        let mut failures = AcceptFailures::default();
        let e = std::io::Error::from_raw_os_error(24);
        let t0 = Instant::now();
        assert!(failures.note(&e, t0));
        assert!(!failures.note(&e, t0 + Duration::from_millis(10)));
        assert!(!failures.note(&e, t0 + Duration::from_millis(990)));
        assert!(failures.note(&e, t0 + Duration::from_millis(1000)));
        assert_eq!(failures.since, 0);
    }
}
