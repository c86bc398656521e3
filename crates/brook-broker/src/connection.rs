//! One client connection: read frames, answer them in order, close on bad input.
//!
//! Requests are handled one at a time per connection, as Kafka does, so responses go out
//! in correlation-id order; pipelined requests wait in the socket buffer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::frame::{frame_len, FRAME_PREFIX_LEN};
use brook_protocol::request::{decode_request, encode_response, peek_header};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use crate::cluster;
use crate::handlers::api_versions;
use crate::router::{self, RequestContext};
use crate::shared::Shared;

const SOCKET_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `socket.request.max.bytes`
    pub max_request_size_bytes: usize,
    /// `connections.max.idle.ms`
    pub idle_timeout: Duration,
}

/// Bytes of request frames held in memory across all connections
/// (`queued.max.request.bytes`): a frame's bytes are reserved before its body is read
/// and released once its response is written.
pub type RequestMemory = Arc<tokio::sync::Semaphore>;

/// Frame bodies are read in steps of at most this much, so memory grows with the bytes
/// that really arrive, not with the size a client claims.
const FRAME_READ_STEP_BYTES: usize = 1024 * 1024;

enum Outcome {
    Reply(BytesMut),
    NoReply,
    Close(String),
}

pub async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: ConnectionLimits,
    memory: RequestMemory,
    internal: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, read_half);
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, write_half);
    loop {
        let frame = tokio::select! {
            frame = tokio::time::timeout(limits.idle_timeout, read_frame(&mut reader, limits.max_request_size_bytes, &memory)) => frame,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break,
            Ok(Err(reason)) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        };
        let (frame, _reservation) = frame;
        // A parked request (fetch long-poll, JoinGroup) must not hold up shutdown.
        let outcome = tokio::select! {
            outcome = handle_frame(&shared, peer, frame, internal) => outcome,
            _ = shutdown.changed() => break,
        };
        match outcome {
            Outcome::Reply(bytes) => {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Outcome::NoReply => {}
            Outcome::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
        // Flush every response: holding it back for a pipelined request that parks (a
        // fetch long-poll, a JoinGroup) would delay it by that request's wait.
        if writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
async fn read_frame(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    limit: usize,
    memory: &RequestMemory,
) -> Result<Option<(Bytes, tokio::sync::OwnedSemaphorePermit)>, String> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = frame_len(prefix, limit).map_err(|e| e.to_string())?;
    // Memory is reserved step by step as bytes arrive, so a client that claims a huge
    // frame and sends it slowly holds only what it has really sent.
    let mut reservation: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut frame = BytesMut::new();
    while frame.len() < len {
        let step = (len - frame.len()).min(FRAME_READ_STEP_BYTES);
        let permit = memory
            .clone()
            .acquire_many_owned(step as u32)
            .await
            .map_err(|_| "request memory pool closed".to_string())?;
        match &mut reservation {
            Some(held) => held.merge(permit),
            None => reservation = Some(permit),
        }
        frame.reserve(step);
        let target = frame.len() + step;
        while frame.len() < target {
            let n = (&mut *reader)
                .take((target - frame.len()) as u64)
                .read_buf(&mut frame)
                .await
                .map_err(|e| format!("reading a {len}-byte frame: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "connection closed after {} of {len} frame bytes",
                    frame.len()
                ));
            }
        }
    }
    let reservation = reservation.expect("frames are at least one byte long");
    Ok(Some((frame.freeze(), reservation)))
}

async fn handle_frame(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    frame: Bytes,
    internal: bool,
) -> Outcome {
    let peek = match peek_header(&frame) {
        Ok(p) => p,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    if peek.api_key == cluster::INTERNAL_API_KEY && internal {
        // api key, version, correlation id, null client id: 10 bytes.
        let Some(body) = frame.get(10..) else {
            return Outcome::Close("truncated internal request".into());
        };
        return match cluster::handle_internal(shared, body).await {
            Ok(payload) => {
                let mut out = BytesMut::with_capacity(8 + payload.len());
                out.extend_from_slice(&((payload.len() + 4) as i32).to_be_bytes());
                out.extend_from_slice(&peek.correlation_id.to_be_bytes());
                out.extend_from_slice(&payload);
                Outcome::Reply(out)
            }
            Err(reason) => Outcome::Close(reason),
        };
    }
    let Ok(api) = ApiKey::try_from(peek.api_key) else {
        return Outcome::Close(format!("unknown API key {}", peek.api_key));
    };
    if !router::accepts(api, peek.api_version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with a v0 response listing
            // what Brook supports, so the client can pick a version and retry.
            let body = ResponseKind::ApiVersions(api_versions::response(
                ResponseError::UnsupportedVersion.code(),
            ));
            return match encode_response(api, 0, peek.correlation_id, &body) {
                Ok(bytes) => Outcome::Reply(bytes),
                Err(e) => Outcome::Close(e.to_string()),
            };
        }
        return Outcome::Close(format!(
            "unsupported version {} of {:?}",
            peek.api_version, api
        ));
    }
    let (header, request) = match decode_request(frame) {
        Ok(decoded) => decoded,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let span = tracing::debug_span!("request", api = ?api, version = peek.api_version, correlation_id = peek.correlation_id);
    let ctx = RequestContext {
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
    };
    match router::dispatch(shared, &ctx, &header, request)
        .instrument(span)
        .await
    {
        Some(body) => match encode_response(api, peek.api_version, peek.correlation_id, &body) {
            Ok(bytes) => Outcome::Reply(bytes),
            Err(e) => Outcome::Close(e.to_string()),
        },
        None => Outcome::NoReply,
    }
}
