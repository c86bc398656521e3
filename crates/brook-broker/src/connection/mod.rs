//! One client connection: read frames, answer them in order, close on bad input.
//!
//! Requests are handled one at a time per connection, as Kafka does, so responses go out
//! in correlation-id order; pipelined requests wait in the socket buffer.
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
mod read;
mod sasl;
mod throttle;

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::request::{decode_request, encode_response, peek_header};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use crate::apis;
use crate::clock::{monotonic_ns, now_ms};
use crate::fetch_encode::{encode_fetch_response, Chunk, FileRegion};
use crate::handlers::api_versions;
use crate::handlers::RequestContext;
use crate::metrics::{BrokerMetrics, RequestTimes, TimedApi};
use crate::peer;
use crate::request_time;
use crate::router::Services;
use crate::router::{self, Response};
use crate::sasl::SaslSession;
use crate::session::{Auth, ConnectionShares, Session};
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

/// The most one `sendfile` call is asked to send (Linux sends at most 0x7ffff000).
const SENDFILE_STEP_BYTES: usize = 1 << 30;
/// File ranges shorter than this are copied into the write buffer (one `pread`) rather
/// than sent with a flush and a `sendfile` of their own, so a fetch of many partitions
/// with little data each still goes out in few writes.
const SENDFILE_MIN_BYTES: usize = 16 * 1024;

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

/// File ranges copied through a TLS writer go in steps of this many bytes.
const COPY_STEP_BYTES: usize = 64 * 1024;

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
    mut sasl: Option<SaslSession>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: ResponseSink,
{
    let mut session = Arc::new(session);
    let _open = services.metrics.connection_opened(&session.listener.name);
    let _shares = EndShareSessions(services.clone(), session.shares.clone());
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, read_half);
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, write_half);
    let timing = services.metrics.requests_enabled();
    loop {
        // Before SASL authentication (or during a re-authentication) frames are bounded
        // by sasl.server.max.receive.size.
        let max_frame = match &sasl {
            Some(s) if !s.is_authenticated() => s.max_receive_bytes(),
            _ => limits.max_request_size_bytes,
        };
        let frame = tokio::select! {
            frame = tokio::time::timeout(limits.idle_timeout, read_frame(&mut reader, max_frame, &memory)) => frame,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break,
            Ok(Err(ReadError::TlsHandshake)) if !session.listener.protocol.tls() => {
                tracing::warn!(
                    "TLS client on plaintext listener {} from {peer}: closing the connection",
                    session.listener.name
                );
                break;
            }
            Ok(Err(ReadError::TlsHandshake)) => {
                tracing::warn!(%peer, reason = "invalid frame size (a TLS record header)", "closing connection");
                break;
            }
            Ok(Err(ReadError::Other(reason))) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        };
        let (frame, reservation) = frame;
        let received_ns = timing.then(monotonic_ns);
        // A parked request (fetch long-poll, JoinGroup) must not hold up shutdown.
        let Handled {
            outcome,
            timed,
            delay_ms,
            mute_ms,
        } = match sasl.as_mut().filter(|s| s.raw_tokens()) {
            Some(s) => Handled {
                outcome: sasl::raw_token(
                    &services.metrics,
                    s,
                    &mut session,
                    peer,
                    &frame,
                    now_ms(),
                ),
                timed: None,
                delay_ms: 0,
                mute_ms: 0,
            },
            None => tokio::select! {
                handled = handle_frame(&services, peer, frame, &mut session, &mut sasl, timing) => handled,
                _ = shutdown.changed() => break,
            },
        };
        drop(reservation);
        if delay_ms > 0 {
            // A client that does not throttle itself: its response waits instead
            // (nothing is read from it meanwhile either).
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                _ = shutdown.changed() => break,
            }
        }
        // A client that stops reading its responses is disconnected after the idle
        // timeout rather than holding this task (and the response) forever.
        let write = tokio::time::timeout(limits.idle_timeout, async {
            let after = write_outcome(&mut writer, outcome).await?;
            // Flush every response: holding it back for a pipelined request that
            // parks (a fetch long-poll, a JoinGroup) would delay it by that wait.
            writer.flush().await.map_err(|e| (false, e.to_string()))?;
            Ok(after)
        });
        let written = tokio::select! {
            written = write => written,
            _ = shutdown.changed() => break,
        };
        if let (Ok(Ok(_)), Some(timed), Some(received_ns)) = (&written, timed, received_ns) {
            timed.record(&services.metrics, received_ns);
        }
        match written {
            Ok(Ok(Sent::Close(reason))) => {
                tracing::debug!(%peer, %reason, "closing connection");
                break;
            }
            Ok(Ok(Sent::Continue)) => {
                if mute_ms > 0 {
                    // Kafka mutes a throttled client's channel once its response is
                    // out: nothing more is read from it until the throttle time ends.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(mute_ms)) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            }
            Ok(Err((loud, reason))) => {
                if loud {
                    tracing::warn!(%peer, %reason, "closing connection");
                } else {
                    tracing::debug!(%peer, %reason, "closing connection");
                }
                break;
            }
            Err(_) => {
                tracing::warn!(%peer, "closing connection: the client did not read its response within connections.max.idle.ms");
                break;
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

/// What the connection does once a response is out.
enum Sent {
    Continue,
    /// The response was a refusal the connection closes after (a failed SASL
    /// authentication): it was sent, and is timed, but nothing more is read.
    Close(String),
}

/// Writes one handler outcome. `Err((loud, reason))` closes the connection; `loud`
/// says whether that deserves a warning (a broker-side problem or a protocol
/// violation) rather than a debug line (the client went away).
async fn write_outcome<W: ResponseSink>(
    writer: &mut BufWriter<W>,
    outcome: Outcome,
) -> Result<Sent, (bool, String)> {
    match outcome {
        Outcome::Reply(bytes) => writer
            .write_all(&bytes)
            .await
            .map(|()| Sent::Continue)
            .map_err(|e| (false, e.to_string())),
        Outcome::Chunked(chunks) => {
            write_chunks(writer, chunks)
                .await
                .map(|()| Sent::Continue)
                .map_err(|e| {
                    // The frame length is already on the wire: the response cannot be
                    // finished, so the connection is closed.
                    (e.kind() == io::ErrorKind::UnexpectedEof, e.to_string())
                })
        }
        Outcome::NoReply => Ok(Sent::Continue),
        Outcome::Close(reason) => Err((true, reason)),
        Outcome::ReplyThenClose(bytes) => {
            tokio::time::sleep(sasl::FAILED_AUTHENTICATION_DELAY).await;
            writer
                .write_all(&bytes)
                .await
                .map_err(|e| (false, e.to_string()))?;
            Ok(Sent::Close("SASL authentication failed".into()))
        }
    }
}

/// Writes a chunked response: bytes through the buffer, file ranges with `sendfile`
/// straight to the socket once what is buffered before them has been flushed (small
/// ranges are copied into the buffer instead). A file shorter than a range is an
/// `UnexpectedEof` error.
///
/// Around the file ranges the socket is corked (`TCP_CORK`), so the bytes flushed
/// before each range leave in the same segments as the file's data instead of as small
/// packets of their own; the response's last bytes are flushed before it is uncorked.
async fn write_chunks<W: ResponseSink>(
    writer: &mut BufWriter<W>,
    chunks: Vec<Chunk>,
) -> io::Result<()> {
    let mut corked = false;
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => writer.write_all(&bytes).await?,
            Chunk::File(region) if region.len < SENDFILE_MIN_BYTES => {
                let mut buf = vec![0; region.len];
                region.file.read_exact_at(&mut buf, region.position)?;
                writer.write_all(&buf).await?;
            }
            Chunk::File(region) => {
                if writer.get_ref().sendfile_socket().is_none() {
                    copy_region(writer, &region).await?;
                    continue;
                }
                if !corked {
                    set_cork(writer.get_ref().sendfile_socket(), true)?;
                    corked = true;
                }
                writer.flush().await?;
                if let Some(socket) = writer.get_ref().sendfile_socket() {
                    send_file(socket, &region).await?;
                }
            }
        }
    }
    if corked {
        writer.flush().await?;
        set_cork(writer.get_ref().sendfile_socket(), false)?;
    }
    Ok(())
}

fn set_cork(socket: Option<&TcpStream>, cork: bool) -> io::Result<()> {
    match socket {
        Some(stream) => socket2::SockRef::from(stream).set_tcp_cork(cork),
        None => Ok(()),
    }
}

/// Copies `region` of its file through the writer (TLS), in bounded steps. A file
/// shorter than the region is an `UnexpectedEof` error.
async fn copy_region<W: ResponseSink>(
    writer: &mut BufWriter<W>,
    region: &FileRegion,
) -> io::Result<()> {
    let mut buf = vec![0; region.len.min(COPY_STEP_BYTES)];
    let mut done = 0;
    while done < region.len {
        let step = (region.len - done).min(buf.len());
        let position = region.position + done as u64;
        region
            .file
            .read_exact_at(&mut buf[..step], position)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "segment file ended before the {} bytes fetched from {} (truncated under the read)",
                            region.len, region.position
                        ),
                    )
                } else {
                    e
                }
            })?;
        writer.write_all(&buf[..step]).await?;
        done += step;
    }
    Ok(())
}

/// Sends `region` of its file to the socket. A file shorter than the region (truncated
/// by replication after the read) is an `UnexpectedEof` error, never a wait.
async fn send_file(stream: &TcpStream, region: &FileRegion) -> io::Result<()> {
    let too_far = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file region beyond i64 offsets",
        )
    };
    let mut offset = i64::try_from(region.position).map_err(|_| too_far())?;
    let end = i64::try_from(region.len)
        .ok()
        .and_then(|len| offset.checked_add(len))
        .ok_or_else(too_far)?;
    while offset < end {
        let count = ((end - offset) as usize).min(SENDFILE_STEP_BYTES);
        stream.writable().await?;
        // `try_io` clears the socket's write readiness when sendfile would block, so the
        // next `writable()` waits for the socket to drain.
        let sent = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(stream, &*region.file, Some(&mut offset), count)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "segment file ended at {offset}, before the {} bytes fetched from {} \
                         (truncated under the read)",
                        region.len, region.position
                    ),
                ))
            }
            // The kernel advanced `offset` past what it sent.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What became of one frame.
struct Handled {
    outcome: Outcome,
    /// A request that reached its handler, with its clock readings (when `timing`).
    timed: Option<Timed>,
    /// How long the response is held back (ms): the throttle time client quotas gave
    /// the request, for a client that does not throttle itself.
    delay_ms: u64,
    /// How long the connection reads nothing more once the response is out: the
    /// throttle time, for a client that throttles itself too (KIP-219).
    mute_ms: u64,
}

/// Handles one frame.
async fn handle_frame(
    services: &Services,
    peer: SocketAddr,
    frame: Bytes,
    session: &mut Arc<Session>,
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
                outcome,
                timed: early,
                delay_ms: 0,
                mute_ms: 0,
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
    let ctx = RequestContext {
        client_id: header.client_id.clone(),
        peer,
        session: session.clone(),
    };
    // Pinned here and handed on by reference: the handler's future is large (every
    // handler's state), and moving it into `measure` copied kilobytes per request.
    let mut dispatch =
        std::pin::pin!(router::dispatch(services, &ctx, &header, request).instrument(span));
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
            metered.finish(frame_bytes, Duration::from_nanos(busy_ns), &mut response)
        }
        _ => 0,
    };
    let (delay_ms, mute_ms) = if throttle::client_throttles(api, version) {
        (0, throttle_ms)
    } else {
        (throttle_ms, 0)
    };
    let throttle_time_ms = response.as_ref().map_or(0, Response::throttle_time_ms);
    let outcome = encode(api, version, correlation_id, response);
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
        outcome,
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
    };
    services
        .access
        .check(&image, &ctx)
        .is_some_and(|c| c.cluster(crate::access::Op::ClusterAction))
}

/// Encodes a handler's response.
fn encode(api: ApiKey, version: i16, correlation_id: i32, response: Option<Response>) -> Outcome {
    match response {
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
