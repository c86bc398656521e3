//! Bounds on the admin listener: how many connections it holds, how long one may sit
//! idle, how large a request body may be, how long a request may take, and how many
//! message-browser reads run at once.
//!
//! hyper (as axum serves it) has no header-read timeout without a timer, and axum no
//! connection limit, so both live here: [`BoundedListener`] takes a permit per
//! connection before accepting it, and [`LimitedIo`] fails a connection on which
//! nothing was read or written for [`CONNECTION_IDLE`].

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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::api::ApiFailure;

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

/// The TCP listener, holding at most [`MAX_CONNECTIONS`] connections.
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
}

impl BoundedListener {
    pub fn new(inner: TcpListener) -> Self {
        BoundedListener {
            inner,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }
}

impl Listener for BoundedListener {
    type Io = LimitedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so this cannot fail; if it somehow did, the
        // connection would go unbounded rather than the listener stop.
        let permit = self.slots.clone().acquire_owned().await.ok();
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    return (
                        LimitedIo {
                            stream,
                            idle: Box::pin(tokio::time::sleep(CONNECTION_IDLE)),
                            _permit: permit,
                        },
                        addr,
                    )
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "admin listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The remote address of an admin connection (axum's `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, BoundedListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, BoundedListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// An accepted connection: it holds its listener slot until dropped and fails once
/// idle for [`CONNECTION_IDLE`].
pub struct LimitedIo {
    stream: TcpStream,
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
