//! Reading request frames: the size prefix, then the body in bounded steps, each step's
//! bytes reserved from the request memory pool as they arrive.

use std::time::Duration;

use brook_protocol::frame::{frame_len, FRAME_PREFIX_LEN};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::RequestMemory;

/// Frame bodies are read in steps of at most this much, so memory grows with the bytes
/// that really arrive, not with the size a client claims.
const FRAME_READ_STEP_BYTES: usize = 1024 * 1024;

/// Once its size has arrived, a frame's body must arrive within this long plus one
/// second per MiB: a client trickling a large frame cannot hold its share of the
/// request memory for longer than a slow but honest one would need.
const FRAME_BODY_BASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a frame could not be read.
pub(super) enum ReadError {
    /// The "frame size" is a TLS record header (`0x16 0x03`): a TLS client.
    TlsHandshake,
    Other(String),
}

impl From<String> for ReadError {
    fn from(reason: String) -> Self {
        ReadError::Other(reason)
    }
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    limit: usize,
    memory: &RequestMemory,
) -> Result<Option<(Bytes, tokio::sync::OwnedSemaphorePermit)>, ReadError> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string().into()),
    }
    let len = match frame_len(prefix, limit) {
        Ok(len) => len,
        // A TLS record (handshake type 0x16, version 0x03xx) read as a length is
        // 369 MB and more: never a frame Brook accepts.
        Err(_) if prefix[..2] == [0x16, 0x03] => return Err(ReadError::TlsHandshake),
        Err(e) => return Err(e.to_string().into()),
    };
    let deadline = FRAME_BODY_BASE_TIMEOUT + Duration::from_secs((len >> 20) as u64);
    tokio::time::timeout(deadline, read_body(reader, len, memory))
        .await
        .map_err(|_| format!("a {len}-byte frame did not arrive within {deadline:?}"))?
        .map(Some)
        .map_err(ReadError::Other)
}

/// Reads a frame body of `len` bytes, reserving request memory as it arrives.
async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    len: usize,
    memory: &RequestMemory,
) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit), String> {
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
    Ok((frame.freeze(), reservation))
}
