//! The connection's writing half: answers in request order, each once it is complete
//! (an acks=all Produce once its records reached the in-sync replicas), throttled
//! ones held back or followed by a pause as client quotas say; and the socket writing
//! itself, Fetch records with `sendfile(2)`.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter, Interest};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{sasl, Handled, Outcome, Queued, Reply, ResponseSink};
use crate::fetch_encode::{Chunk, FileRegion};
use crate::metrics::BrokerMetrics;

/// Writes the answers the reading half queues, in order, until the queue ends (the
/// reading half stopped and everything it queued is answered) or the connection must
/// close (a write failed, an outcome that closes it). Timed requests are recorded in
/// `metrics` once their answer is flushed.
pub(super) async fn write_responses<W: ResponseSink>(
    metrics: Option<&BrokerMetrics>,
    writer: &mut BufWriter<W>,
    peer: SocketAddr,
    idle_timeout: Duration,
    mut queue: mpsc::Receiver<Queued<'_>>,
) {
    while let Some(queued) = queue.recv().await {
        let Queued {
            handled:
                Handled {
                    reply,
                    mut timed,
                    delay_ms,
                    mute_ms,
                },
            received_ns,
            slot,
        } = queued;
        let outcome = match reply {
            Reply::Ready(outcome) => outcome,
            Reply::Replicating(wait) => match wait.await {
                Ok(done) => {
                    if let Some(timed) = timed.as_mut() {
                        timed.handled_ns = done.handled_ns;
                        timed.remote_ns += done.remote_ns;
                    }
                    done.outcome
                }
                Err(e) => Outcome::Close(format!("acks=all produce wait failed: {e}")),
            },
        };
        if delay_ms > 0 {
            // A client that does not throttle itself: its response waits instead
            // (the reading half waits for it too, reading nothing meanwhile).
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        // A client that stops reading its responses is disconnected after the idle
        // timeout rather than holding this task (and the response) forever.
        let written = tokio::time::timeout(idle_timeout, async {
            let after = write_outcome(writer, outcome).await?;
            // Flush every response: holding it back for a later request that parks (a
            // fetch long-poll, a JoinGroup) would delay it by that wait.
            writer.flush().await.map_err(|e| (false, e.to_string()))?;
            Ok(after)
        })
        .await;
        if let (Ok(Ok(_)), Some(timed), Some(received_ns), Some(metrics)) =
            (&written, timed, received_ns, metrics)
        {
            timed.record(metrics, received_ns);
        }
        match written {
            Ok(Ok(Sent::Close(reason))) => {
                tracing::debug!(%peer, %reason, "closing connection");
                return;
            }
            Ok(Ok(Sent::Continue)) => {
                if mute_ms > 0 {
                    // Kafka mutes a throttled client's channel once its response is
                    // out: the reading half waits for this slot, so nothing more is
                    // read from the client until the throttle time ends.
                    tokio::time::sleep(Duration::from_millis(mute_ms)).await;
                }
            }
            Ok(Err((loud, reason))) => {
                if loud {
                    tracing::warn!(%peer, %reason, "closing connection");
                } else {
                    tracing::debug!(%peer, %reason, "closing connection");
                }
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, "closing connection: the client did not read its response within connections.max.idle.ms");
                return;
            }
        }
        drop(slot);
    }
}

/// The most one `sendfile` call is asked to send (Linux sends at most 0x7ffff000).
const SENDFILE_STEP_BYTES: usize = 1 << 30;
/// File ranges shorter than this are copied into the write buffer (one `pread`) rather
/// than sent with a flush and a `sendfile` of their own, so a fetch of many partitions
/// with little data each still goes out in few writes.
pub(super) const SENDFILE_MIN_BYTES: usize = 16 * 1024;

/// File ranges copied through a TLS writer go in steps of this many bytes.
const COPY_STEP_BYTES: usize = 64 * 1024;

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
pub(super) async fn write_chunks<W: ResponseSink>(
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
