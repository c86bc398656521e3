//! Bounds on the admin listener: how many connections it holds, how long one may sit
//! idle, how large a request body may be, how long a request may take, and how many
//! message-browser reads run at once.
//!
//! hyper (as axum serves it) has no header-read timeout without a timer, and axum no
//! connection limit, so both live here: [`BoundedListener`] takes a permit per
//! connection before accepting it (and runs an `https` listener's TLS handshakes, each
//! bounded in time), and [`LimitedIo`] fails a connection on which nothing was read or
//! written for [`CONNECTION_IDLE`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::api::ApiFailure;
use crate::session::KafkaPrincipal;
use crate::tls::ServerTls;

/// Connections the admin listener holds at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// A connection with no byte read or written for this long is closed (slow or idle
/// clients; a browser reconnects).
pub const CONNECTION_IDLE: Duration = Duration::from_secs(60);
/// Largest request body (the API's JSON bodies are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a request may take before it is answered 503 REQUEST_TIMED_OUT. The Kafka
/// handlers bound their own waits well below this (metadata changes: 3 s, 5 s in a
/// cluster without a controller).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Message-browser reads at once (each reads up to `max_bytes` and may inflate
/// compressed batches); more get 503.
pub const MAX_BROWSE_READS: usize = 4;

/// Applies the body limit and the request timeout to every route.
pub fn bounded(router: Router) -> Router {
    router
        .layer(middleware::from_fn(timeout))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn timeout(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%path, "admin request timed out");
            ApiFailure::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "REQUEST_TIMED_OUT",
                format!("the request took longer than {REQUEST_TIMEOUT:?}"),
            )
            .into_response()
        }
    }
}

/// How long a TLS client has to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin listener's connections, at most [`MAX_CONNECTIONS`] at once. A task
/// accepts them (and runs each TLS handshake on a task of its own, so a slow client
/// holds up no other) and hands them over ready to serve.
pub struct BoundedListener {
    local: io::Result<SocketAddr>,
    ready: mpsc::Receiver<(LimitedIo, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl BoundedListener {
    pub fn new(inner: TcpListener, tls: Option<Arc<ServerTls>>) -> Self {
        let local = inner.local_addr();
        let (tx, ready) = mpsc::channel(MAX_CONNECTIONS);
        let acceptor = tokio::spawn(accept_loop(inner, tls, tx));
        BoundedListener {
            local,
            ready,
            acceptor,
        }
    }
}

impl Drop for BoundedListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    inner: TcpListener,
    tls: Option<Arc<ServerTls>>,
    ready: mpsc::Sender<(LimitedIo, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // The semaphore is never closed, so this cannot fail; if it somehow did, the
        // connection would go unbounded rather than the listener stop.
        let permit = slots.clone().acquire_owned().await.ok();
        let (stream, addr) = match inner.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let io = |stream, principal| LimitedIo {
            stream,
            principal,
            idle: Box::pin(tokio::time::sleep(CONNECTION_IDLE)),
            _permit: permit,
        };
        match &tls {
            None => {
                if ready
                    .send((io(AdminStream::Plain(stream), None), addr))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let (ready, tls) = (ready.clone(), tls.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let principal = match stream.get_ref().1.peer_certificates() {
                                Some(certs) if !certs.is_empty() => {
                                    match tls.principal(Some(certs)) {
                                        Ok(p) => Some(p),
                                        Err(e) => {
                                            tracing::info!(%addr, "admin listener: client certificate refused: {e}");
                                            return;
                                        }
                                    }
                                }
                                _ => None,
                            };
                            let _ = ready
                                .send((io(AdminStream::Tls(Box::new(stream)), principal), addr))
                                .await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "admin listener: TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "admin listener: TLS handshake timed out")
                        }
                    }
                });
            }
        }
    }
}

impl Listener for BoundedListener {
    type Io = LimitedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor only stops when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// An admin connection's stream: plain TCP, or TLS over it.
enum AdminStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for AdminStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AdminStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            AdminStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AdminStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AdminStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            AdminStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AdminStream::Plain(s) => Pin::new(s).poll_flush(cx),
            AdminStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AdminStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            AdminStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The remote address of an admin connection (axum's `ConnectInfo`), and on an https
/// listener the principal of the client's certificate, if it sent one.
#[derive(Debug, Clone)]
pub struct PeerAddr(pub SocketAddr, pub Option<KafkaPrincipal>);

impl Connected<IncomingStream<'_, BoundedListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, BoundedListener>) -> Self {
        PeerAddr(*stream.remote_addr(), stream.io().principal.clone())
    }
}

/// An accepted connection: it holds its listener slot until dropped and fails once
/// idle for [`CONNECTION_IDLE`].
pub struct LimitedIo {
    stream: AdminStream,
    /// The client certificate's principal (https with a client certificate).
    principal: Option<KafkaPrincipal>,
    idle: Pin<Box<Sleep>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl LimitedIo {
    /// After an operation: progress resets the idle deadline; waiting checks it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.idle.as_mut().reset(Instant::now() + CONNECTION_IDLE);
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "admin connection idle",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for LimitedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.watch(cx, polled)
    }
}

impl AsyncWrite for LimitedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
