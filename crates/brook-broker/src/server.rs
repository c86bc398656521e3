//! The embeddable broker: bind, accept, spawn connection tasks, run background log
//! maintenance, shut down gracefully.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use brook_meta::BrokerEndpoint;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use brook_raft::{Quorum, QuorumConfig};

use crate::accept::{self, Bound, Shared};
use crate::applier::Applier;
use crate::client_quotas::{ClientQuotaRates, QuotaWindows};
use crate::cluster::fetcher::Fetchers;
use crate::cluster::liveness::{self, Registration};
use crate::cluster::{isr, rpc::InternalRpc};
use crate::config::{BrokerConfig, ConfigError};
use crate::controller_client::{ControllerClient, MetaStore};
use crate::groups::Groups;
use crate::listeners::{self, ListenerPlan};
use crate::log_levels::LogLevels;
use crate::markers::MarkerWriter;
use crate::metadata::MetadataView;
use crate::metrics::{BrokerMetrics, MetricsSwitches};
use crate::peer::{PeerNet, RaftTransport};
use crate::replicas::Replicas;
use crate::router::Services;
use crate::sasl::SaslServerConfig;
use crate::session::ListenerInfo;
use crate::shares::Shares;
use crate::tls::{ServerTls, TlsSettings};
use crate::txns::Txns;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("listener {listener}: {reason}")]
    Listener { listener: String, reason: String },
    #[error(transparent)]
    Admin(#[from] crate::admin_http::AdminBindError),
    #[error("cannot create a temporary data directory for --memory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot open the data directory: {0}")]
    Storage(String),
}

pub struct BrokerBuilder {
    config: BrokerConfig,
    /// Overrides the first client listener's advertised endpoint.
    advertised: Option<(String, u16)>,
    memory: bool,
    log_levels: Option<Arc<dyn LogLevels>>,
    /// SCRAM credentials to create at start (`--add-scram`).
    bootstrap_scram: Vec<crate::sasl::scram::ScramBootstrap>,
}

impl BrokerBuilder {
    /// A SCRAM credential to create at start unless its user already has one for that
    /// mechanism: `SCRAM-SHA-512=[name=admin,password=admin-secret]`, as
    /// `kafka-storage format --add-scram` takes it.
    pub fn add_scram(mut self, spec: &str) -> Result<Self, ConfigError> {
        let credential = crate::sasl::scram::ScramBootstrap::parse(spec).map_err(|reason| {
            ConfigError::Invalid {
                name: "--add-scram".into(),
                value: spec.split('[').next().unwrap_or("").into(),
                reason,
            }
        })?;
        self.bootstrap_scram.push(credential);
        Ok(self)
    }

    /// Lets clients change this process's log levels (Kafka's BROKER_LOGGER configs).
    pub fn log_levels(mut self, levels: Arc<dyn LogLevels>) -> Self {
        self.log_levels = Some(levels);
        self
    }

    /// One PLAINTEXT listener on `addr` (`listeners=PLAINTEXT://addr`); several
    /// listeners are set with `set("listeners", ...)`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config
            .settings
            .insert("listeners".into(), format!("PLAINTEXT://{addr}"));
        self
    }
    /// Host and port clients of the first client listener should connect to
    /// (`advertised.listeners`).
    pub fn advertised(mut self, host: impl Into<String>, port: u16) -> Self {
        self.advertised = Some((host.into(), port));
        self
    }
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }
    /// Keeps data in a temporary directory removed at shutdown, never fsynced.
    pub fn memory(mut self, memory: bool) -> Self {
        self.memory = memory;
        self
    }
    pub fn node_id(mut self, id: i32) -> Self {
        self.config.node_id = id;
        self
    }
    /// Makes this broker a node of a cluster: `voters` is `controller.quorum.voters`
    /// (every node, `id -> host:port`, this one included) and `listen` is where the other
    /// nodes reach this one.
    pub fn cluster(
        mut self,
        listen: SocketAddr,
        voters: std::collections::BTreeMap<i32, String>,
    ) -> Self {
        self.config.controller_listen = Some(listen);
        self.config.voters = voters;
        self
    }
    /// Makes this broker a node of a cluster whose controller listener is in
    /// `listeners` (named by `controller.listener.names`).
    pub fn voters(mut self, voters: std::collections::BTreeMap<i32, String>) -> Self {
        self.config.voters = voters;
        self
    }
    /// Sets a config by its Kafka name (`num.partitions`, `log.retention.ms`, ...).
    pub fn set(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        self.config.set(name, value)?;
        Ok(self)
    }

    pub async fn start(mut self) -> Result<Broker, StartError> {
        let controller_listen = self
            .config
            .controller_listen
            .map(|a| (a.ip().to_string(), a.port()));
        let plan =
            listeners::plan(&self.config.settings, controller_listen).map_err(ConfigError::from)?;
        // The admin listener's settings (its TLS, who may call it) are checked, and it
        // binds, before any Kafka listener opens.
        let admin_listener = crate::admin_http::bind(&self.config).await?;
        let mut bound = bind_listeners(&self.config.settings, &plan).await?;
        let endpoints = self.endpoints(&plan, &bound);
        let listener_addrs: Vec<String> = bound
            .iter()
            .map(|b| {
                b.listener
                    .local_addr()
                    .map_or_else(|e| e.to_string(), |a| a.to_string())
            })
            .collect();
        let local_addr = bound[0]
            .listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: bound[0].info.name.clone(),
                source,
            })?;
        let controller_bound = bound
            .iter()
            .position(|b| b.info.controller)
            .map(|i| bound.remove(i));
        let (temp, data_dir) = if self.memory || self.config.data_dir.is_none() {
            let temp = tempfile::Builder::new()
                .prefix("brook-memory-")
                .tempdir()
                .map_err(StartError::TempDir)?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        } else {
            (None, self.config.data_dir.clone().expect("checked above"))
        };
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(StartError::Storage(format!(
                "the data directory {} is a file, not a directory",
                data_dir.display()
            )));
        }
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            StartError::Storage(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let lock = lock_data_dir(&data_dir)?;
        let persistent = temp.is_none();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (store, peers) = if self.config.voters.is_empty() {
            let (dir, node_id) = (data_dir.clone(), self.config.node_id);
            let store = tokio::task::spawn_blocking(move || {
                MetaStore::open_file(&dir, node_id, persistent)
            })
            .await
            .map_err(|e| StartError::Storage(e.to_string()))?
            .map_err(|e| StartError::Storage(e.to_string()))?;
            (store, None)
        } else {
            let (quorum, peers) = self.start_quorum(&data_dir, &plan).await?;
            (MetaStore::Raft(quorum), Some(peers))
        };
        let data_dir_shown = data_dir.display().to_string();
        let wired = wire(
            self.config.clone(),
            data_dir,
            store,
            peers,
            endpoints.clone(),
            plan.listeners.iter().map(|l| l.name.clone()).collect(),
            self.log_levels.take(),
        )
        .await?;
        let services = wired.services.clone();
        // Logged before any connection is served: a client (or a test) that got an
        // answer can count on these lines being there.
        let (host, port) = endpoints
            .first()
            .map(|e| (e.host.as_str(), e.port))
            .unwrap_or_default();
        tracing::info!(
            "Brook {} started: node {}, listening on {local_addr}, advertised as {host}:{port}, data in {}",
            env!("CARGO_PKG_VERSION"),
            self.config.node_id,
            if persistent { data_dir_shown.as_str() } else { "memory (deleted at exit)" },
        );
        for (l, e) in plan.listeners.iter().zip(&listener_addrs) {
            tracing::info!(
                "listener {} ({}) on {e}{}",
                l.name,
                l.protocol,
                if l.controller { ", controller" } else { "" }
            );
        }
        for (name, value) in &self.config.settings {
            let shown = if listeners::is_sensitive(name) || crate::sasl::is_secret_setting(name) {
                "[hidden]"
            } else {
                value.as_str()
            };
            tracing::info!("setting {name} = {shown}");
        }
        let mut tasks = Vec::new();
        // The applier first: --add-scram below waits until its credentials are applied.
        tasks.push(tokio::spawn(wired.applier.clone().run(
            services.metadata.subscribe_committed(),
            wired.ready.subscribe(),
            shutdown_rx.clone(),
        )));
        // Bootstrap credentials exist before any client is served (a cluster's, once
        // its quorum has a leader).
        let scram = std::mem::take(&mut self.bootstrap_scram);
        let cluster = services.metadata.is_cluster();
        tasks.extend(
            crate::handlers::scram::bootstrap(services.controller.clone(), cluster, scram)
                .await
                .map_err(|e| StartError::Storage(format!("--add-scram: {e}")))?,
        );
        if let Some(controller) = controller_bound {
            tasks.push(tokio::spawn(accept::accept_loop(
                services.clone(),
                controller,
                Shared::new(&services),
                shutdown_rx.clone(),
            )));
        }
        // The client listeners share max.connections and the request memory pool.
        let shared = Shared::new(&services);
        for listener in bound {
            tasks.push(tokio::spawn(accept::accept_loop(
                services.clone(),
                listener,
                shared.clone(),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(crate::background::maintenance_loop(
            services.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::cleaner::run(
            services.replicas.clone(),
            services.settings.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::background::coordinator_timers(
            services.clone(),
            shutdown_rx.clone(),
        )));
        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(listener) = admin_listener {
            let state =
                crate::admin_http::AdminState::new(&services, wired.ready.subscribe(), &listener);
            tasks.push(tokio::spawn(crate::admin_http::serve(
                listener,
                state,
                shutdown_rx.clone(),
            )));
        }
        if services.metadata.is_cluster() {
            tasks.extend(cluster_tasks(
                &services,
                &wired.ready,
                &endpoints,
                &plan.inter_broker,
                shutdown_rx,
            ));
        }
        Ok(Broker {
            services,
            local_addr,
            admin_addr,
            shutdown_tx,
            tasks,
            _ready: wired.ready,
            _lock: lock,
            _temp: temp,
        })
    }

    /// The advertised endpoint of each client listener: `advertised.listeners`, else
    /// the address it bound.
    fn endpoints(&self, plan: &ListenerPlan, bound: &[Bound]) -> Vec<BrokerEndpoint> {
        let mut out = Vec::new();
        for (spec, b) in plan.listeners.iter().zip(bound) {
            if spec.controller {
                continue;
            }
            let local = b.listener.local_addr().ok();
            let advertised = if out.is_empty() {
                self.advertised.as_ref().or(spec.advertised.as_ref())
            } else {
                spec.advertised.as_ref()
            };
            let (host, port) = match (advertised, local) {
                (Some((h, p)), _) => (h.clone(), *p),
                (None, Some(a)) => (a.ip().to_string(), a.port()),
                (None, None) => (spec.bind.host.clone(), spec.bind.port),
            };
            out.push(BrokerEndpoint {
                listener: spec.name.clone(),
                host,
                port: i32::from(port),
            });
        }
        out
    }

    /// Starts this node's member of the metadata quorum; peers are reached on their
    /// controller listeners, over TLS when this node's controller listener uses it.
    async fn start_quorum(
        &self,
        data_dir: &std::path::Path,
        plan: &ListenerPlan,
    ) -> Result<(Arc<Quorum>, Arc<PeerNet>), StartError> {
        let config = &self.config;
        let node_id = config.node_id;
        if !config.voters.contains_key(&node_id) {
            return Err(StartError::Config(ConfigError::Invalid {
                name: "controller.quorum.voters".into(),
                value: format!("{:?}", config.voters),
                reason: format!("must include this node ({node_id})"),
            }));
        }
        let Some(controller) = plan.controller() else {
            return Err(StartError::Config(ConfigError::Invalid {
                name: "controller.listener.names".into(),
                value: String::new(),
                reason: "a cluster node needs a controller listener (--controller-listen, or a listener in listeners named by controller.listener.names)".into(),
            }));
        };
        let security = crate::peer::PeerSecurity::for_listener(&config.settings, controller)
            .map_err(|reason| StartError::Listener {
                listener: controller.name.clone(),
                reason,
            })?;
        let net = Arc::new(PeerNet::new(node_id, config.voters.clone(), security));
        let quorum_config = QuorumConfig {
            node_id: node_id as u64,
            voters: config
                .voters
                .iter()
                .map(|(&id, a)| (id as u64, a.clone()))
                .collect(),
            dir: data_dir.join("__raft"),
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 1200,
        };
        let quorum = Quorum::start(quorum_config, Arc::new(RaftTransport(net.clone())))
            .await
            .map_err(|e| StartError::Storage(format!("metadata quorum: {e}")))?;
        Ok((Arc::new(quorum), net))
    }
}

/// Binds every listener of the plan, in its order, with its TLS context loaded (a TLS
/// listener whose stores cannot be read, or a SASL listener whose settings are wrong, is
/// a start error). Every listener's settings are checked before the first port opens,
/// so a broker that will not start never accepts a connection.
async fn bind_listeners(
    settings: &BTreeMap<String, String>,
    plan: &ListenerPlan,
) -> Result<Vec<Bound>, StartError> {
    let mut prepared = Vec::new();
    for spec in &plan.listeners {
        let refuse = |reason: String| StartError::Listener {
            listener: spec.name.clone(),
            reason,
        };
        let sasl = if spec.protocol.sasl() {
            let config = SaslServerConfig::from_settings(settings, &spec.name)
                .map_err(|e| refuse(e.to_string()))?;
            config.start().await;
            // Peers log in to a controller listener with PLAIN (see `peer`).
            if spec.controller && !config.enabled_mechanisms().any(|m| m == "PLAIN") {
                return Err(refuse(
                    "a SASL controller listener needs PLAIN among its sasl.enabled.mechanisms, with users in its plain.sasl.jaas.config (nodes log in to each other with PLAIN)".into(),
                ));
            }
            Some(Arc::new(config))
        } else {
            None
        };
        let tls = if spec.protocol.tls() {
            let tls = TlsSettings::resolve(settings, &spec.name)
                .and_then(ServerTls::new)
                .map_err(refuse)?;
            Some(Arc::new(tls))
        } else {
            None
        };
        prepared.push((spec, tls, sasl));
    }
    let mut bound = Vec::new();
    for (spec, tls, sasl) in prepared {
        let host = if spec.bind.host.is_empty() {
            "0.0.0.0"
        } else {
            spec.bind.host.as_str()
        };
        let listener = TcpListener::bind((host, spec.bind.port))
            .await
            .map_err(|source| StartError::Bind {
                addr: format!("{host}:{} (listener {})", spec.bind.port, spec.name),
                source,
            })?;
        bound.push(Bound {
            listener,
            info: Arc::new(ListenerInfo {
                name: spec.name.clone(),
                protocol: spec.protocol,
                controller: spec.controller,
            }),
            tls,
            sasl,
        });
    }
    Ok(bound)
}

/// The services, wired once, in the order data flows: metadata → replicas →
/// coordinators → fetchers.
struct Wired {
    services: Arc<Services>,
    applier: Arc<Applier>,
    /// Whether this broker may lead and follow (a cluster broker once caught up with
    /// the controller; a single broker always).
    ready: watch::Sender<bool>,
}

async fn wire(
    config: BrokerConfig,
    data_dir: PathBuf,
    store: MetaStore,
    peers: Option<Arc<PeerNet>>,
    endpoints: Vec<BrokerEndpoint>,
    listener_names: Vec<String>,
    log_levels: Option<Arc<dyn LogLevels>>,
) -> Result<Wired, StartError> {
    let config = Arc::new(config);
    let settings = Arc::new(config.broker_settings());
    let node_id = config.node_id;
    let committed = store.subscribe();
    let initial = committed.borrow().clone();
    let quorum = store.quorum().cloned();
    let (applied_tx, applied_rx) = watch::channel(initial.clone());
    let metadata = MetadataView::new(committed, applied_rx, quorum.clone(), node_id, endpoints)
        .with_rack(settings.rack());
    let controller = Arc::new(ControllerClient::new(
        settings.clone(),
        store,
        metadata.clone(),
        peers.clone(),
    ));
    let replicas = {
        let (config, image) = (config.clone(), initial.clone());
        Arc::new(
            tokio::task::spawn_blocking(move || Replicas::new(config, data_dir, &image))
                .await
                .map_err(|e| StartError::Storage(e.to_string()))?,
        )
    };
    let groups = Arc::new(Groups::new(
        &settings,
        replicas.clone(),
        metadata.clone(),
        controller.clone(),
    ));
    let shares = Arc::new(Shares::new(
        &settings,
        replicas.clone(),
        metadata.clone(),
        groups.clone(),
        peers.clone(),
    ));
    let markers = Arc::new(MarkerWriter {
        replicas: replicas.clone(),
        groups: groups.clone(),
        metadata: metadata.clone(),
    });
    let txns = Arc::new(Txns::new(
        &settings,
        replicas.clone(),
        metadata.clone(),
        controller.clone(),
        markers.clone(),
        peers.clone(),
    ));
    let fetchers = peers
        .as_ref()
        .map(|net| Arc::new(Fetchers::new(node_id, net.clone(), replicas.clone())));
    let applier = Arc::new(Applier {
        replicas: replicas.clone(),
        groups: groups.clone(),
        txns: txns.clone(),
        fetchers,
        applied: applied_tx,
    });
    let ready = quorum.is_none();
    // Everything the image holds is open (and coordinators replayed) before serving.
    if let Some(e) = applier.apply(initial, ready).await {
        return Err(StartError::Storage(format!("cannot open partition: {e}")));
    }
    let internal = quorum.zip(peers).map(|(quorum, peers)| {
        Arc::new(InternalRpc {
            quorum,
            controller: controller.clone(),
            markers: markers.clone(),
            txns: txns.clone(),
            groups: groups.clone(),
            shares: shares.clone(),
            peers,
        })
    });
    let quotas = Arc::new(ClientQuotaRates::new(QuotaWindows::of(&settings)));
    let metrics = Arc::new(BrokerMetrics::new(
        replicas.clone(),
        groups.clone(),
        shares.clone(),
        metadata.clone(),
        quotas.clone(),
        MetricsSwitches {
            listeners: listener_names,
            requests: settings.metrics_request_enable,
            per_partition: settings.metrics_partition_labels_enable,
        },
    ));
    let access = Arc::new(crate::access::Access::new(&settings));
    if access.enabled() {
        tracing::info!("authorizer: StandardAuthorizer (ACLs in the metadata log)");
    }
    let services = Arc::new(Services {
        access,
        quotas,
        metrics,
        config,
        settings,
        metadata,
        controller,
        replicas,
        groups,
        shares,
        txns,
        markers,
        internal,
        log_levels,
    });
    Ok(Wired {
        services,
        applier,
        ready: watch::channel(ready).0,
    })
}

/// A cluster node's background work: heartbeats, the controller's liveness checks, ISR
/// maintenance.
fn cluster_tasks(
    services: &Arc<Services>,
    ready: &watch::Sender<bool>,
    endpoints: &[BrokerEndpoint],
    inter_broker: &str,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let node_id = services.config.node_id;
    // The main address is the inter-broker listener's (`inter.broker.listener.name`).
    let main = endpoints
        .iter()
        .find(|e| e.listener == inter_broker)
        .or(endpoints.first());
    let me = Registration {
        node_id,
        host: main.map(|e| e.host.clone()).unwrap_or_default(),
        port: main.map_or(0, |e| e.port),
        listeners: endpoints.to_vec(),
        incarnation: rand::random(),
        rack: services.settings.rack(),
    };
    vec![
        tokio::spawn(liveness::heartbeat_loop(
            services.controller.clone(),
            services.metadata.clone(),
            me.clone(),
            services.settings.clone(),
            ready.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(liveness::controller_loop(
            services.controller.clone(),
            node_id,
            services.settings.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(isr::isr_loop(
            services.replicas.clone(),
            services.controller.clone(),
            services.metadata.clone(),
            services.settings.replica_lag_time_max_ms,
            me.incarnation,
            shutdown,
        )),
    ]
}

/// A running broker. Dropping it without [`Broker::shutdown`] leaves its tasks running
/// until the runtime stops.
pub struct Broker {
    services: Arc<Services>,
    local_addr: SocketAddr,
    /// Where `admin.listeners` bound, if set.
    admin_addr: Option<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _ready: watch::Sender<bool>,
    /// Held while the broker runs: a second process on the same directory fails to start.
    _lock: std::fs::File,
    _temp: Option<tempfile::TempDir>,
}

impl Broker {
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: BrokerConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 9092)),
                Some(PathBuf::from("brook-data")),
            ),
            advertised: None,
            memory: false,
            log_levels: None,
            bootstrap_scram: Vec::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin HTTP listener's address (`admin.listeners`), if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Stops accepting, closes connections, flushes and closes every log.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(quorum) = self.services.controller.quorum() {
            // With a peer down, openraft's shutdown can wait on vote rounds for many
            // seconds; the metadata log is durable, so stop waiting after a bound.
            if tokio::time::timeout(QUORUM_SHUTDOWN_TIMEOUT, quorum.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("the metadata quorum did not stop within {QUORUM_SHUTDOWN_TIMEOUT:?}; stopping anyway");
            }
        }
        let replicas = self.services.replicas.clone();
        let _ = tokio::task::spawn_blocking(move || replicas.close()).await;
        tracing::info!("broker stopped");
    }
}

/// How long shutdown waits for the metadata quorum to stop.
const QUORUM_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The file a running broker holds an exclusive lock on (as Kafka's `.lock`).
pub const DATA_DIR_LOCK: &str = ".lock";

/// Takes the data directory's lock, or says which directory is already in use.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let path = dir.join(DATA_DIR_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StartError::Storage(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Storage(format!(
            "data directory {} is in use by another broker (it holds {}); stop it or choose another --data-dir",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError::Storage(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}
