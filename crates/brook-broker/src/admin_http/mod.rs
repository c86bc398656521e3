//! The admin HTTP listener (`admin.listeners`): `/metrics` (Prometheus text format),
//! `/health` (the process serves HTTP), `/ready` (it serves Kafka clients: metadata
//! loaded and, in a cluster, caught up with the controller and not fenced), the admin
//! JSON API under `/api/v1` (`api`) and the web console at `/` (`console`).
//!
//! Who calls it is `auth`'s (`admin.authentication`: none, or any of HTTP Basic,
//! Bearer JWTs and client certificates). Every request is bounded (`limits`): connections, idle time, body size, handling
//! time. The API's actions go through the Kafka handlers (`router::dispatch`), so they
//! are checked exactly as the Kafka APIs check them. Anything else is a 404 (unknown
//! path) or 405 (another method).

mod api;
mod auth;

use auth::AdminAuth;
mod console;
mod limits;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{parse_admin_listener, BrokerConfig, ConfigError};
use crate::metadata::MetadataView;
use crate::metrics::BrokerMetrics;
use crate::router::Services;
use crate::tls::{ServerTls, TlsSettings};

/// The listener name whose `listener.name.<name>.ssl.*` settings an `https` admin
/// listener reads.
pub const ADMIN_LISTENER_NAME: &str = "ADMIN";

/// How long open HTTP connections may finish their request once the broker stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The Prometheus text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the admin endpoints use.
pub struct AdminState {
    pub metrics: Arc<BrokerMetrics>,
    pub metadata: MetadataView,
    /// The broker may lead and follow (see `server::Wired::ready`).
    pub ready: watch::Receiver<bool>,
    /// The API reaches the broker through `router::dispatch`, as a Kafka client would,
    /// and reads partition offsets and sizes from `services.replicas`.
    pub services: Arc<Services>,
    /// Message-browser reads in flight (each may inflate a compressed batch).
    pub browse_slots: Arc<tokio::sync::Semaphore>,
    /// `admin.authentication` and what it checks callers against.
    login: Arc<auth::Login>,
}

impl AdminState {
    pub fn new(
        services: &Arc<Services>,
        ready: watch::Receiver<bool>,
        listener: &AdminListener,
    ) -> Arc<Self> {
        Arc::new(AdminState {
            metrics: services.metrics.clone(),
            metadata: services.metadata.clone(),
            ready,
            services: services.clone(),
            browse_slots: Arc::new(tokio::sync::Semaphore::new(limits::MAX_BROWSE_READS)),
            login: listener.login.clone(),
        })
    }
}

/// Why the admin listener could not start (a start error of the broker).
#[derive(Debug, thiserror::Error)]
pub enum AdminBindError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on admin.listeners {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("admin.listeners https: {0}")]
    Tls(String),
    #[error("admin.authentication: {0}")]
    Login(#[from] crate::sasl::SaslConfigError),
}

/// The bound admin listener: its socket and, for `https`, its TLS configuration.
pub struct AdminListener {
    tcp: TcpListener,
    tls: Option<Arc<ServerTls>>,
    login: Arc<auth::Login>,
}

impl AdminListener {
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    /// `http` or `https`, as the address is logged.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Binds `admin.listeners`, if set; an `https` one loads its keystore (the
/// `listener.name.admin.ssl.*` settings, else `ssl.*`). A bad address, a port in use
/// or a keystore that cannot be read is a start error.
pub async fn bind(config: &BrokerConfig) -> Result<Option<AdminListener>, AdminBindError> {
    let settings = &config.broker_settings();
    let raw = &config.settings;
    let spec =
        parse_admin_listener(&settings.admin_listeners).map_err(|reason| ConfigError::Invalid {
            name: "admin.listeners".into(),
            value: settings.admin_listeners.clone(),
            reason,
        })?;
    let Some(spec) = spec else {
        return Ok(None);
    };
    // Checked when the setting was given.
    let auth = AdminAuth::parse(&settings.admin_authentication).map_err(|reason| {
        ConfigError::Invalid {
            name: "admin.authentication".into(),
            value: settings.admin_authentication.clone(),
            reason,
        }
    })?;
    if !spec.tls && auth.mtls {
        return Err(AdminBindError::Tls(
            "admin.authentication=mtls needs an https:// admin listener".into(),
        ));
    }
    let tls = if spec.tls {
        let tls = TlsSettings::resolve(raw, ADMIN_LISTENER_NAME).map_err(AdminBindError::Tls)?;
        if !tls.has_keystore() {
            return Err(AdminBindError::Tls(
                "set listener.name.admin.ssl.keystore.location (or ssl.keystore.location)".into(),
            ));
        }
        if auth.mtls && tls.client_auth == crate::tls::ClientAuth::None {
            return Err(AdminBindError::Tls(
                "admin.authentication=mtls needs listener.name.admin.ssl.client.auth=required (or requested) and a truststore".into(),
            ));
        }
        Some(Arc::new(ServerTls::new(tls).map_err(AdminBindError::Tls)?))
    } else {
        None
    };
    // `[::1]:9644` binds as is; brackets are only URL syntax for a host name.
    let tcp = TcpListener::bind(spec.addr.as_str())
        .await
        .map_err(|source| AdminBindError::Bind {
            addr: spec.addr,
            source,
        })?;
    let login = auth::Login::from_settings(auth, raw)?;
    login.start().await;
    let listener = AdminListener {
        tcp,
        tls,
        login: Arc::new(login),
    };
    if let Ok(addr) = listener.local_addr() {
        let scheme = listener.scheme();
        tracing::info!("admin listening on {scheme}://{addr} (/metrics, /health, /ready)");
    }
    Ok(Some(listener))
}

/// The admin routes, each request bounded by [`limits::bounded`].
pub fn router(state: Arc<AdminState>) -> Router {
    let plain = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(console::routes())
        .fallback(not_found);
    let authenticated = middleware::from_fn_with_state(state.clone(), auth::authenticate);
    limits::bounded(
        plain
            .nest("/api/v1", api::routes())
            .with_state(state)
            .layer(authenticated),
    )
}

/// Serves the admin routes on `listener` until `shutdown` turns true, then gives open
/// connections [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: AdminListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    let listener = limits::BoundedListener::new(listener.tcp, listener.tls);
    let app = router(state).into_make_service_with_connect_info::<limits::PeerAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    });
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                tracing::error!(error = %e, "admin listener failed");
            }
        }
        _ = async {
            let _ = shutdown.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {}
    }
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<Arc<AdminState>>) -> Response {
    if is_ready(&state) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Metadata is loaded before the listener starts; a cluster broker must also have
/// caught up with the controller and be registered and unfenced in the image.
fn is_ready(state: &AdminState) -> bool {
    if !*state.ready.borrow() {
        return false;
    }
    if !state.metadata.is_cluster() {
        return true;
    }
    let image = state.metadata.image();
    image
        .brokers
        .get(&state.metadata.node_id())
        .is_some_and(|b| !b.fenced)
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    // Reading every partition's offsets takes their locks: not on an async worker.
    let encoded = tokio::task::spawn_blocking(move || state.metrics.encode()).await;
    match encoded {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics task failed\n").into_response()
        }
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}
