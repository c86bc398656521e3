//! One client connection: read frames, answer them in order, close on bad input.
//!
//! A connection is two halves in one task. The reading half ([`Reading`]) reads and
//! handles one request at a time, in arrival order, as far as its local work goes, and
//! queues its answer; the writing half (`write::write_responses`) writes the answers
//! in the same order, each once it is complete. Only an acks=all Produce is queued
//! before it is complete: its records are appended here first (so appends from one
//! connection land in request order, and an idempotent producer's sequences stay in
//! order), then its wait for the in-sync replicas runs on (`pipeline::replicate`)
//! while the reading half handles the next requests. After any other request nothing
//! more is read until every queued answer is out (Kafka's one request at a time), so a
//! client that does not read its answers gets one handled, not more. At most
//! [`MAX_IN_FLIGHT_REQUESTS`] requests are in the connection at once; with none free,
//! nothing more is read. A throttled answer stops the reading half until it is out and
//! its throttle time over (Kafka's muted channel); an answer that closes the
//! connection stops it at once, the answers queued before it still written.
//!
//! Fetch records go from segment files to the socket with `sendfile(2)`: the response is
//! a list of chunks, encoded bytes written through the buffered writer and file ranges
//! sent after flushing it. A TLS connection cannot use `sendfile` (the bytes must be
//! encrypted): its file ranges are copied through the TLS writer. [`serve`] is generic
//! over the stream's halves, so the plaintext path stays monomorphic (no dynamic
//! dispatch, no branch per write).
//!
//! On a SASL listener the connection carries a [`SaslSession`]: `sasl` answers
//! SaslHandshake/SaslAuthenticate (and raw v0 tokens) and swaps the session's principal
//! when authentication succeeds; until then frames are bounded by
//! `sasl.server.max.receive.size` and only ApiVersions and the SASL requests are taken.

mod internal;
mod pipeline;
mod read;
mod sasl;
mod throttle;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::request::{decode_request, encode_response, peek_header};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::Instrument;

use crate::apis;
use crate::clock::{monotonic_ns, now_ms};
use crate::fetch_encode::{encode_fetch_response, Chunk};
use crate::fetch_session::FetchSessions;
use crate::handlers::api_versions;
use crate::handlers::RequestContext;
use crate::metrics::{BrokerMetrics, RequestTimes, TimedApi};
use crate::peer;
use crate::request_time;
use crate::router::Services;
use crate::router::{self, Response};
use crate::sasl::SaslSession;
use crate::session::{Auth, ConnectionShares, Session};
use pipeline::{Answer, Handled, Queued, Reply, MAX_IN_FLIGHT_REQUESTS};
use read::{read_frame, ReadError};

const SOCKET_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `socket.request.max.bytes`
    pub max_request_size_bytes: usize,
    /// `connections.max.idle.ms`
    pub idle_timeout: Duration,
}

/// Bytes of request frames held in memory across all connections
/// (`queued.max.request.bytes`): a frame's bytes are reserved as its body arrives and
/// released once it has been handled, before its response is written, so a client
/// that does not read its responses holds none of the pool.
pub type RequestMemory = Arc<tokio::sync::Semaphore>;

/// The write half of a connection's stream: a plaintext socket takes file ranges with
/// `sendfile`; any other stream (TLS) gets them copied.
pub trait ResponseSink: AsyncWrite + Unpin + Send {
    /// The socket `sendfile` may write to directly, if any.
    fn sendfile_socket(&self) -> Option<&TcpStream>;
}

impl ResponseSink for OwnedWriteHalf {
    #[inline]
    fn sendfile_socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ResponseSink
    for tokio::io::WriteHalf<tokio_rustls::server::TlsStream<S>>
{
    #[inline]
    fn sendfile_socket(&self) -> Option<&TcpStream> {
        None
    }
}

enum Outcome {
    Reply(BytesMut),
    /// A response in pieces, some of them file ranges (Fetch records).
    Chunked(Vec<Chunk>),
    NoReply,
    Close(String),
    /// A response, then the connection closes (a failed SASL authentication: sent
    /// after [`sasl::FAILED_AUTHENTICATION_DELAY`]).
    ReplyThenClose(BytesMut),
}

/// A dispatched request's clock readings (`clock::monotonic_ns`), kept until its
/// response has been written (with `metrics.request.enable=false` no clock is read
/// and there is none).
struct Timed {
    api: TimedApi,
    /// When its handler started (after the header checks and decoding).
    handler_started_ns: u64,
    /// When its response was encoded.
    handled_ns: u64,
    remote_ns: u64,
    throttle_time_ms: i32,
}

impl Timed {
    /// A request answered at once, started at `handler_started_ns`, that waited on
    /// no one (a SASL exchange).
    fn local(api: TimedApi, handler_started_ns: u64) -> Timed {
        Timed {
            api,
            handler_started_ns,
            handled_ns: monotonic_ns(),
            remote_ns: 0,
            throttle_time_ms: 0,
        }
    }

    /// Records the request, received (its frame's last byte read) at `received_ns`,
    /// whose response has just been flushed.
    fn record(&self, metrics: &BrokerMetrics, received_ns: u64) {
        let times = RequestTimes::split(
            received_ns,
            self.handler_started_ns,
            self.handled_ns,
            monotonic_ns(),
            self.remote_ns,
            self.throttle_time_ms,
        );
        metrics.observe_request(self.api, &times);
    }
}

/// Serves one connection whose transport is established (a TCP socket's halves, or a
/// TLS stream's after its handshake), as `session`; on a SASL listener `sasl`
/// authenticates it first.
#[allow(clippy::too_many_arguments)]
pub async fn serve<R, W>(
    services: Arc<Services>,
    (read_half, write_half): (R, W),
    peer: SocketAddr,
    limits: ConnectionLimits,
    memory: RequestMemory,
    session: Session,
    sasl: Option<SaslSession>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: ResponseSink,
{
    let _open = services.metrics.connection_opened(&session.listener.name);
    let _shares = EndShareSessions(services.clone(), session.shares.clone());
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, read_half);
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, write_half);
    let timing = services.metrics.requests_enabled();
    {
        let slots = Semaphore::new(MAX_IN_FLIGHT_REQUESTS);
        let (queue, queued) = mpsc::channel(MAX_IN_FLIGHT_REQUESTS);
        let reading = Reading {
            services: &services,
            peer,
            limits,
            memory: &memory,
            session: Arc::new(session),
            fetch_sessions: Arc::default(),
            sasl,
            slots: &slots,
            timing,
            pipelined: None,
        };
        let mut read = std::pin::pin!(reading.run(&mut reader, queue));
        let mut write = std::pin::pin!(write::write_responses(
            Some(&services.metrics),
            &mut writer,
            peer,
            limits.idle_timeout,
            queued,
        ));
        // A parked request (fetch long-poll, JoinGroup) or an acks=all wait must not
        // hold up shutdown. The writing half ends first only when the connection must
        // close; when the reading half ends (end of stream, bad input, idle), what it
        // queued is still answered.
        let read_ended = tokio::select! {
            _ = shutdown.changed() => false,
            () = &mut write => false,
            () = &mut read => true,
        };
        if read_ended {
            tokio::select! {
                _ = shutdown.changed() => {}
                () = &mut write => {}
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.flush()).await;
}

/// Ends the share sessions a connection opened once it closes, however it closes.
struct EndShareSessions(Arc<Services>, Arc<ConnectionShares>);

impl Drop for EndShareSessions {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.1.is_empty() {
            let (services, shares) = (self.0.clone(), self.1.clone());
            runtime.spawn(async move {
                crate::handlers::share_fetch::connection_closed(&services.shares, &shares).await;
            });
        }
    }
}

/// The reading half of a connection: it reads and handles one request at a time, in
/// order, and queues each answer for the writing half ([`write::write_responses`]).
struct Reading<'a> {
    services: &'a Services,
    peer: SocketAddr,
    limits: ConnectionLimits,
    memory: &'a RequestMemory,
    session: Arc<Session>,
    /// The replica fetch session a follower may open on this connection.
    fetch_sessions: Arc<FetchSessions>,
    sasl: Option<SaslSession>,
    /// [`MAX_IN_FLIGHT_REQUESTS`] slots: one is taken before a frame is read and given
    /// back once its answer is out.
    slots: &'a Semaphore,
    timing: bool,
    /// `brook_pipelined_requests` of the listener, once the connection has one.
    pipelined: Option<prometheus_client::metrics::counter::Counter>,
}

impl<'a> Reading<'a> {
    /// Reads, handles and queues requests until the stream ends, a frame is bad, the
    /// connection idles out, or an answer closes it.
    async fn run<R: AsyncRead + Unpin>(
        mut self,
        reader: &mut BufReader<R>,
        queue: mpsc::Sender<Queued<'a>>,
    ) {
        let peer = self.peer;
        let services = self.services;
        loop {
            let Ok(slot) = self.slots.acquire().await else {
                return;
            };
            // Before SASL authentication (or during a re-authentication) frames are
            // bounded by sasl.server.max.receive.size.
            let max_frame = match &self.sasl {
                Some(s) if !s.is_authenticated() => s.max_receive_bytes(),
                _ => self.limits.max_request_size_bytes,
            };
            let read = read_frame(reader, max_frame, self.memory);
            let frame = match tokio::time::timeout(self.limits.idle_timeout, read).await {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                    return;
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => return,
                Ok(Err(ReadError::TlsHandshake)) if !self.session.listener.protocol.tls() => {
                    tracing::warn!(
                        "TLS client on plaintext listener {} from {peer}: closing the connection",
                        self.session.listener.name
                    );
                    return;
                }
                Ok(Err(ReadError::TlsHandshake)) => {
                    tracing::warn!(%peer, reason = "invalid frame size (a TLS record header)", "closing connection");
                    return;
                }
                Ok(Err(ReadError::Other(reason))) => {
                    tracing::warn!(%peer, %reason, "closing connection");
                    return;
                }
            };
            let (frame, reservation) = frame;
            let received_ns = self.timing.then(monotonic_ns);
            if self.slots.available_permits() + 1 < MAX_IN_FLIGHT_REQUESTS {
                let listener = &self.session.listener.name;
                self.pipelined
                    .get_or_insert_with(|| services.metrics.pipelined_requests(listener))
                    .inc();
            }
            let handled = match self.sasl.as_mut().filter(|s| s.raw_tokens()) {
                Some(s) => Handled::ready(sasl::raw_token(
                    &services.metrics,
                    s,
                    &mut self.session,
                    peer,
                    &frame,
                    now_ms(),
                )),
                None => {
                    handle_frame(
                        services,
                        peer,
                        frame,
                        (&mut self.session, &self.fetch_sessions),
                        &mut self.sasl,
                        self.timing,
                    )
                    .await
                }
            };
            drop(reservation);
            let closes = handled.closes();
            let throttled = handled.delay_ms > 0 || handled.mute_ms > 0;
            let replicating = matches!(handled.reply, Reply::Replicating(_));
            let queued = Queued {
                handled,
                received_ns,
                slot,
            };
            if queue.send(queued).await.is_err() || closes {
                return;
            }
            if throttled || !replicating {
                // Only an acks=all Produce waiting for its replicas lets the connection
                // read on. After any other request nothing more is read until every
                // queued answer is out (as Kafka mutes a channel with a response
                // pending), so a client that does not read its answers gets one request
                // handled, not more. Kafka mutes a throttled client's channel too, until
                // its response is out and the throttle time over (the writing half holds
                // the request's slot until then).
                let Ok(all) = self.slots.acquire_many(MAX_IN_FLIGHT_REQUESTS as u32).await else {
                    return;
                };
                drop(all);
            }
        }
    }
}

/// Handles one frame.
async fn handle_frame(
    services: &Services,
    peer: SocketAddr,
    frame: Bytes,
    (session, fetch_sessions): (&mut Arc<Session>, &Arc<FetchSessions>),
    sasl: &mut Option<SaslSession>,
    timing: bool,
) -> Handled {
    let frame_bytes = frame.len();
    // Requests that never reach a handler are timed when they are answered as Kafka
    // times them (SASL exchanges, internal RPCs), else not (closed connections,
    // KIP-511 answers).
    let mut early = None;
    let Decoded {
        api,
        version,
        correlation_id,
        header,
        mut request,
    } = match check_frame(services, peer, frame, session, sasl, timing, &mut early).await {
        Ok(decoded) => decoded,
        Err(outcome) => {
            return Handled {
                timed: early,
                ..Handled::ready(outcome)
            }
        }
    };
    let metered = throttle::meter(
        services,
        session,
        header.client_id.as_deref(),
        api,
        &mut request,
    );
    let span = tracing::debug_span!("request", api = ?api, version, correlation_id);
    let wait_span = span.clone();
    let ctx = RequestContext {
        client_id: header.client_id.clone(),
        peer,
        session: session.clone(),
        fetch_sessions: fetch_sessions.clone(),
    };
    // Pinned here and handed on by reference: the handler's future is large (every
    // handler's state), and moving it into `measure` copied kilobytes per request.
    let mut dispatch = std::pin::pin!(
        router::dispatch_pipelined(services, &ctx, &header, request).instrument(span)
    );
    let measured = timing || metered.is_some();
    let handler_started_ns = measured.then(monotonic_ns);
    let mut remote_ns = 0;
    let mut response = if measured {
        let mut measured = request_time::measure(dispatch.as_mut());
        let response = (&mut measured).await;
        remote_ns = measured.remote_ns();
        response
    } else {
        dispatch.await
    };
    let handled = handler_started_ns.map(|started| (started, monotonic_ns()));
    let throttle_ms = match (metered, handled) {
        (Some(metered), Some((started_ns, handled_ns))) => {
            let busy_ns = handled_ns
                .saturating_sub(started_ns)
                .saturating_sub(remote_ns);
            metered.finish(
                frame_bytes,
                Duration::from_nanos(busy_ns),
                &mut response,
                fetch_sessions,
            )
        }
        _ => 0,
    };
    let (delay_ms, mute_ms) = if throttle::client_throttles(api, version) {
        (0, throttle_ms)
    } else {
        (throttle_ms, 0)
    };
    let throttle_time_ms = response.as_ref().map_or(0, Response::throttle_time_ms);
    let reply = match response {
        // The records are appended here: the wait for the replicas runs on while the
        // connection handles the client's next requests.
        Some(Response::Replicating(replicating)) => {
            let answer = Answer {
                api,
                version,
                correlation_id,
            };
            Reply::Replicating(pipeline::replicate(*replicating, answer, timing, wait_span))
        }
        response => Reply::Ready(encode(api, version, correlation_id, response)),
    };
    let timed = handled
        .filter(|_| timing)
        .map(|(handler_started_ns, handled_ns)| Timed {
            api: TimedApi::Kafka(api),
            handler_started_ns,
            handled_ns,
            remote_ns,
            throttle_time_ms,
        });
    Handled {
        reply,
        timed,
        delay_ms,
        mute_ms,
    }
}

/// A decoded request ready for its handler.
struct Decoded {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    header: kafka_protocol::messages::RequestHeader,
    request: kafka_protocol::messages::RequestKind,
}

/// Checks and decodes a frame: `Err` is the outcome of a frame that goes no further
/// (answered here, by the SASL hook or the internal RPC server, or closing the
/// connection), with its clock readings in `timed` when it is timed.
async fn check_frame(
    services: &Services,
    peer: SocketAddr,
    frame: Bytes,
    session: &mut Arc<Session>,
    sasl: &mut Option<SaslSession>,
    timing: bool,
    timed: &mut Option<Timed>,
) -> Result<Decoded, Outcome> {
    let peek = match peek_header(&frame) {
        Ok(p) => p,
        Err(e) => return Err(Outcome::Close(e.to_string())),
    };
    let api = ApiKey::try_from(peek.api_key);
    // The SASL hook: before authentication only its own requests are taken.
    if session.auth != Auth::Done && !api.is_ok_and(|api| session.admits(api)) {
        return Err(Outcome::Close(format!(
            "request with API key {} before SASL authentication",
            peek.api_key
        )));
    }
    if let (Some(s), Ok(api)) = (sasl.as_mut(), api) {
        // Kafka times SaslHandshake and SaslAuthenticate as any request.
        let sasl_api = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        let started_ns = (timing && sasl_api).then(monotonic_ns);
        if let Some(outcome) = sasl::intercept(
            &services.metrics,
            s,
            session,
            peer,
            api,
            &peek,
            &frame,
            now_ms(),
        ) {
            *timed = started_ns.map(|started| Timed::local(TimedApi::Kafka(api), started));
            return Err(outcome);
        }
    }
    let internal = session.listener.controller;
    if let (peer::INTERNAL_API_KEY, true, Some(rpc)) = (peek.api_key, internal, &services.internal)
    {
        // On a SASL controller listener the login must be a node's: with an authorizer,
        // one allowed CLUSTER_ACTION (super users are).
        if session.listener.protocol.sasl() && !cluster_action(services, peer, session) {
            return Err(Outcome::Close(format!(
                "internal request from {} without CLUSTER_ACTION",
                session.principal
            )));
        }
        // api key, version, correlation id, null client id: 10 bytes.
        let Some(body) = frame.get(10..) else {
            return Err(Outcome::Close("truncated internal request".into()));
        };
        let id = peek.correlation_id;
        // Boxed: client requests' futures stay as small as they were (this one holds a
        // router dispatch of its own, for the admin API's forwarded requests).
        let served = Box::pin(internal::serve(services, rpc, id, body, timing, timed));
        return Err(served.await);
    }
    let Ok(api) = api else {
        return Err(Outcome::Close(format!("unknown API key {}", peek.api_key)));
    };
    if !apis::accepts(api, peek.api_version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with a v0 response listing
            // what Brook supports, so the client can pick a version and retry.
            let body = ResponseKind::ApiVersions(api_versions::response(
                ResponseError::UnsupportedVersion.code(),
            ));
            return Err(match encode_response(api, 0, peek.correlation_id, &body) {
                Ok(bytes) => Outcome::Reply(bytes),
                Err(e) => Outcome::Close(e.to_string()),
            });
        }
        return Err(Outcome::Close(format!(
            "unsupported version {} of {:?}",
            peek.api_version, api
        )));
    }
    let (header, request) = match decode_request(frame) {
        Ok(decoded) => decoded,
        Err(e) => return Err(Outcome::Close(e.to_string())),
    };
    Ok(Decoded {
        api,
        version: peek.api_version,
        correlation_id: peek.correlation_id,
        header,
        request,
    })
}

/// Whether the session's principal may CLUSTER_ACTION (everyone, without an
/// authorizer).
fn cluster_action(services: &Services, peer: SocketAddr, session: &Arc<Session>) -> bool {
    if !services.access.enabled() {
        return true;
    }
    let image = services.metadata.image();
    let ctx = RequestContext {
        client_id: None,
        peer,
        session: session.clone(),
        fetch_sessions: Arc::default(),
    };
    services
        .access
        .check(&image, &ctx)
        .is_some_and(|c| c.cluster(crate::access::Op::ClusterAction))
}

/// Encodes a handler's response (an acks=all Produce's once the replicas have its
/// records: `pipeline::replicate` encodes it).
fn encode(api: ApiKey, version: i16, correlation_id: i32, response: Option<Response>) -> Outcome {
    match response {
        Some(Response::Replicating(_)) => Outcome::Close(format!(
            "{api:?} response encoded before its replicas answered"
        )),
        Some(Response::Kind(body)) => match encode_response(api, version, correlation_id, &body) {
            Ok(bytes) => Outcome::Reply(bytes),
            Err(e) => Outcome::Close(e.to_string()),
        },
        Some(Response::Fetch(reply)) => {
            match encode_fetch_response(version, correlation_id, &reply.response, &reply.records) {
                Ok(chunks) => Outcome::Chunked(chunks),
                Err(e) => Outcome::Close(format!("cannot encode Fetch v{version} response: {e}")),
            }
        }
        None => Outcome::NoReply,
    }
}

#[cfg(test)]
mod tests;
