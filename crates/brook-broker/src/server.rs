//! The embeddable broker: bind, accept, spawn connection tasks, run background log
//! maintenance, shut down gracefully.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use brook_raft::{Quorum, QuorumConfig};

use crate::cluster::{Cluster, PeerNet, RaftTransport};
use crate::config::{BrokerConfig, ConfigError};
use crate::connection::{self, ConnectionLimits};
use crate::partition::SyncFor;
use crate::shared::MetaStore;
use crate::shared::{now_ms, Shared};

/// How often flush.ms and segment.ms deadlines are checked.
const LOG_TICK_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create a temporary data directory for --memory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot open the data directory: {0}")]
    Storage(String),
}

pub struct BrokerBuilder {
    config: BrokerConfig,
    advertised_set: bool,
    memory: bool,
}

impl BrokerBuilder {
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }
    /// Host and port clients should connect to (`advertised.listeners`).
    pub fn advertised(mut self, host: impl Into<String>, port: u16) -> Self {
        self.config.advertised = (host.into(), port);
        self.advertised_set = true;
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
    /// Sets a config by its Kafka name (`num.partitions`, `log.retention.ms`, ...).
    pub fn set(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        self.config.set(name, value)?;
        Ok(self)
    }

    pub async fn start(mut self) -> Result<Broker, StartError> {
        let listener = TcpListener::bind(self.config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.config.listen,
            source,
        })?;
        self.config.listen = local_addr;
        if !self.advertised_set {
            self.config.advertised = (local_addr.ip().to_string(), local_addr.port());
        }
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
        let persistent = temp.is_none();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut controller_listener = None;
        let shared = if self.config.voters.is_empty() {
            let config = self.config.clone();
            tokio::task::spawn_blocking(move || {
                let meta = Shared::open_file_meta(&config, &data_dir, persistent)?;
                Shared::open(config, data_dir, meta, None)
            })
            .await
            .map_err(|e| StartError::Storage(e.to_string()))?
            .map_err(|e| StartError::Storage(e.to_string()))?
        } else {
            let (shared, listener) = self.start_cluster_node(data_dir).await?;
            controller_listener = Some(listener);
            shared
        };
        let shared = Arc::new(shared);
        shared.set_arc();
        if let Some(listener) = controller_listener {
            tasks.push(tokio::spawn(accept_loop(
                shared.clone(),
                listener,
                true,
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(accept_loop(
            shared.clone(),
            listener,
            false,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(maintenance_loop(
            shared.clone(),
            shutdown_rx.clone(),
        )));
        tasks.extend(crate::cluster::start(&shared, shutdown_rx));
        tracing::info!(listen = %local_addr, advertised = ?self.config.advertised, "broker started");
        Ok(Broker {
            shared,
            local_addr,
            shutdown_tx,
            tasks,
            _temp: temp,
        })
    }
}

impl BrokerBuilder {
    /// Binds the controller listener, starts this node's member of the metadata quorum
    /// and opens the broker on top of it.
    async fn start_cluster_node(
        &self,
        data_dir: PathBuf,
    ) -> Result<(Shared, TcpListener), StartError> {
        let config = self.config.clone();
        let node_id = config.node_id;
        if !config.voters.contains_key(&node_id) {
            return Err(StartError::Config(ConfigError::Invalid {
                name: "controller.quorum.voters".into(),
                value: format!("{:?}", config.voters),
                reason: format!("must include this node ({node_id})"),
            }));
        }
        let Some(addr) = config.controller_listen else {
            return Err(StartError::Config(ConfigError::Invalid {
                name: "controller.listener".into(),
                value: String::new(),
                reason: "a cluster node needs a controller listener".into(),
            }));
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            StartError::Storage(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let net = Arc::new(PeerNet::new(node_id, config.voters.clone()));
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
        let cluster = Cluster::new(node_id, net);
        let shared = tokio::task::spawn_blocking(move || {
            Shared::open(
                config,
                data_dir,
                MetaStore::Raft(Arc::new(quorum)),
                Some(cluster),
            )
        })
        .await
        .map_err(|e| StartError::Storage(e.to_string()))?
        .map_err(|e| StartError::Storage(e.to_string()))?;
        Ok((shared, listener))
    }
}

/// A running broker. Dropping it without [`Broker::shutdown`] leaves its tasks running
/// until the runtime stops.
pub struct Broker {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl Broker {
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: BrokerConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 9092)),
                Some(PathBuf::from("brook-data")),
            ),
            advertised_set: false,
            memory: false,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes connections, flushes and closes every log.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let crate::shared::MetaStore::Raft(quorum) = &self.shared.meta {
            quorum.shutdown().await;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.close()).await;
        tracing::info!("broker stopped");
    }
}

/// Accepts connections; `internal` marks the controller listener, the only one that
/// takes inter-broker RPCs.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    internal: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = ConnectionLimits {
        max_request_size_bytes: shared.config.int("socket.request.max.bytes") as usize,
        idle_timeout: Duration::from_millis(shared.config.int("connections.max.idle.ms") as u64),
    };
    let max_connections = shared
        .config
        .int("max.connections")
        .clamp(1, Semaphore::MAX_PERMITS as i64) as usize;
    let permits = Arc::new(Semaphore::new(max_connections));
    let max_per_ip = shared.config.int("max.connections.per.ip").max(1) as usize;
    let per_ip: Arc<parking_lot::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    // A frame up to socket.request.max.bytes must always fit in the pool.
    let memory_bytes = shared
        .config
        .int("queued.max.request.bytes")
        .max(limits.max_request_size_bytes as i64)
        .clamp(1, u32::MAX as i64) as usize;
    let memory = Arc::new(Semaphore::new(memory_bytes));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "refusing connection: max.connections reached");
            continue;
        };
        let Some(ip_slot) = IpSlot::take(&per_ip, peer.ip(), max_per_ip) else {
            tracing::warn!(%peer, max_per_ip, "refusing connection: max.connections.per.ip reached");
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let memory = memory.clone();
        connections.spawn(async move {
            connection::serve(shared, stream, peer, limits, memory, internal, shutdown).await;
            drop(permit);
            drop(ip_slot);
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// One connection's place in the per-IP count, given back on drop.
struct IpSlot {
    counts: Arc<parking_lot::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(
        counts: &Arc<parking_lot::Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        max: usize,
    ) -> Option<IpSlot> {
        let mut map = counts.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Time-based flushes and rolls (`flush.ms`, `segment.ms`) and retention.
async fn maintenance_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let retention_every =
        Duration::from_millis(shared.config.int("log.retention.check.interval.ms").max(1) as u64);
    let mut tick = tokio::time::interval(LOG_TICK_INTERVAL);
    let mut retention = tokio::time::interval(retention_every);
    let mut cleaner = tokio::time::interval(Duration::from_millis(
        shared.config.int("log.cleaner.backoff.ms").max(100) as u64,
    ));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let shared = shared.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    shared.groups.tick(&shared);
                    shared.txns.tick(&shared);
                    for p in shared.all_partitions() {
                        // fsync outside the partition lock first, so the checkpoint
                        // the tick may write includes it.
                        if let Err(e) = p.sync_log(SyncFor::Tick(now_ms())) {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log flush failed");
                        }
                        if let Err(e) = p.with_log(|log| log.tick(now_ms())) {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log maintenance failed");
                        }
                    }
                }).await;
            }
            _ = retention.tick() => {
                let shared = shared.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for p in shared.all_partitions() {
                        match p.with_log(|log| log.enforce_retention(now_ms())) {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments"),
                            Err(e) => tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
                        }
                    }
                }).await;
            }
            _ = cleaner.tick() => {
                let shared = shared.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = shared.groups.compact(&shared) {
                        tracing::error!(error = %e, "compacting __consumer_offsets failed");
                    }
                    if let Err(e) = shared.txns.compact(&shared) {
                        tracing::error!(error = %e, "compacting __transaction_state failed");
                    }
                }).await;
            }
            _ = shutdown.changed() => break,
        }
    }
}
