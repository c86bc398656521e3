//! State shared by every connection: metadata, open partitions, coordinators.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brook_meta::{FileMetadataLog, MetaError, MetadataImage, MetadataRecord};
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::config::{BrokerConfig, ConfigError};
use crate::controller::{decide, ControllerReply, ControllerRequest};
use crate::groups::Groups;
use crate::partition::Partition;
use crate::txns::{MarkerRequest, Txns};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic, so a typo cannot open a million files.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// An error with a Kafka error code and a message for the client.
#[derive(Debug, Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct ApiError {
    pub code: i16,
    pub message: String,
}

impl ApiError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code: error.code(),
            message: message.into(),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::new(ResponseError::InvalidConfig, e.to_string())
    }
}

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        tracing::error!(error = %e, "metadata log write failed");
        ApiError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

#[derive(Debug, Error)]
pub enum OpenError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("cannot open partition: {0}")]
    Partition(ApiError),
}

pub type TopicPartition = (Arc<str>, i32);

/// Where the metadata log lives: one file for a single broker, or the Raft quorum.
pub enum MetaStore {
    File {
        log: Mutex<FileMetadataLog>,
        image: RwLock<Arc<MetadataImage>>,
    },
    Raft(Arc<brook_raft::Quorum>),
}

impl MetaStore {
    pub fn file(log: FileMetadataLog) -> Self {
        let image = log.image_arc();
        MetaStore::File {
            log: Mutex::new(log),
            image: RwLock::new(image),
        }
    }

    fn image(&self) -> Arc<MetadataImage> {
        match self {
            MetaStore::File { image, .. } => image.read().clone(),
            MetaStore::Raft(q) => q.image(),
        }
    }
}

pub struct Shared {
    pub config: BrokerConfig,
    data_dir: PathBuf,
    pub meta: MetaStore,
    /// Controller decisions run one at a time, each against the latest image.
    controller_lock: tokio::sync::Mutex<()>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Topic configs last pushed to open partitions.
    applied_configs: Mutex<HashMap<String, BTreeMap<String, String>>>,
    reconcile_lock: Mutex<()>,
    /// Woken on every append, for fetch long-polls.
    pub data_appended: Notify,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    pub groups: Groups,
    pub txns: Txns,
    pub cluster: Option<Cluster>,
    /// This `Shared` itself, for work it spawns (set once it is in an `Arc`).
    me: std::sync::OnceLock<std::sync::Weak<Shared>>,
}

fn unknown_topic(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!("invalid topic name '{name}': {why}"),
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// How long a request forwarded to the controller may take, retries included.
const CONTROLLER_DEADLINE: Duration = Duration::from_secs(5);

impl Shared {
    /// Opens the single-node metadata file, creating the cluster id on first start.
    pub fn open_file_meta(
        config: &BrokerConfig,
        data_dir: &std::path::Path,
        persistent: bool,
    ) -> Result<MetaStore, OpenError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| OpenError::DataDir(data_dir.to_path_buf(), e))?;
        let mut meta = if persistent {
            FileMetadataLog::open(&data_dir.join("__metadata.log"), config.node_id)?
        } else {
            FileMetadataLog::in_memory(config.node_id)
        };
        if meta.image().cluster_id.is_empty() {
            meta.append(&[MetadataRecord::ClusterCreated {
                cluster_id: new_cluster_id(),
            }])?;
        }
        Ok(MetaStore::file(meta))
    }

    pub fn open(
        config: BrokerConfig,
        data_dir: PathBuf,
        meta: MetaStore,
        cluster: Option<Cluster>,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(&data_dir).map_err(|e| OpenError::DataDir(data_dir.clone(), e))?;
        let config_for_groups = config.clone();
        let shared = Shared {
            config,
            data_dir,
            meta,
            controller_lock: tokio::sync::Mutex::new(()),
            partitions: RwLock::new(HashMap::new()),
            applied_configs: Mutex::new(HashMap::new()),
            reconcile_lock: Mutex::new(()),
            data_appended: Notify::new(),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            groups: Groups::new(&config_for_groups),
            txns: Txns::new(&config_for_groups),
            cluster,
            me: std::sync::OnceLock::new(),
        };
        shared.remove_orphan_dirs(&shared.image());
        shared.reconcile().map_err(OpenError::Partition)?;
        if shared.cluster.is_none() {
            let replayed = shared.groups.load(&shared).map_err(OpenError::Partition)?;
            tracing::debug!(replayed, "loaded group coordinator state");
            let replayed = shared.txns.load(&shared).map_err(OpenError::Partition)?;
            tracing::debug!(replayed, "loaded transaction coordinator state");
        }
        Ok(shared)
    }

    /// Records the `Arc` this `Shared` lives in (the server does, right after creating it).
    pub fn set_arc(self: &Arc<Self>) {
        let _ = self.me.set(Arc::downgrade(self));
    }

    /// This `Shared` as an `Arc`, once [`Shared::set_arc`] has run.
    pub fn arc(&self) -> Option<Arc<Shared>> {
        self.me.get().and_then(std::sync::Weak::upgrade)
    }

    /// The directory holding every partition's log.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.meta, MetaStore::Raft(_))
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    /// Removes partition directories of topics deleted while the broker was down or crashing.
    fn remove_orphan_dirs(&self, image: &MetadataImage) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        let node = self.config.node_id;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((topic, index)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(index) = index.parse::<i32>() else {
                continue;
            };
            let known = image
                .partition(topic, index)
                .is_some_and(|p| p.replicas.contains(&node));
            if !known && entry.path().is_dir() && has_segments(&entry.path()) {
                tracing::warn!(dir = %entry.path().display(), "removing directory of a deleted topic");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Makes the open partitions match the image: opens the ones this broker holds a
    /// replica of, applies leaders, ISRs and configs, closes and deletes the rest,
    /// moves group coordination and follower fetchers along. Idempotent.
    pub fn reconcile(&self) -> Result<(), ApiError> {
        let _guard = self.reconcile_lock.lock();
        let image = self.image();
        let node = self.config.node_id;
        let now = now_ms();
        let ready = self.cluster.as_ref().is_none_or(|c| c.is_ready());
        let gone: Vec<TopicPartition> = self
            .partitions
            .read()
            .keys()
            .filter(|(t, i)| {
                image
                    .partition(t, *i)
                    .is_none_or(|p| !p.replicas.contains(&node))
            })
            .cloned()
            .collect();
        for key in gone {
            self.remove_partition(&key);
        }
        let mut first_error = None;
        for topic in image.topics.values() {
            let config_changed =
                self.applied_configs.lock().get(&topic.name) != Some(&topic.configs);
            let config = Arc::new(self.config.topic_config(&topic.configs));
            let name: Arc<str> = Arc::from(topic.name.as_str());
            for p in topic
                .partitions
                .iter()
                .filter(|p| p.replicas.contains(&node))
            {
                let existing = self
                    .partitions
                    .read()
                    .get(&(name.clone(), p.index))
                    .cloned();
                let partition = match existing {
                    Some(partition) => {
                        if config_changed {
                            partition.set_config(config.clone());
                        }
                        partition
                    }
                    None => {
                        let dir = self.partition_dir(&topic.name, p.index);
                        match Partition::open(
                            &dir,
                            name.clone(),
                            p.index,
                            node,
                            config.clone(),
                            now,
                        ) {
                            Ok(partition) => {
                                // Take the leadership metadata gives before anyone can see it.
                                let mut view = p.clone();
                                if !ready {
                                    view.leader = brook_meta::NO_LEADER;
                                }
                                partition.apply_leadership(&view, now);
                                let partition = Arc::new(partition);
                                self.partitions
                                    .write()
                                    .insert((name.clone(), p.index), partition.clone());
                                partition
                            }
                            Err(e) => {
                                tracing::error!(topic = %topic.name, partition = p.index, error = %e, "cannot open partition log");
                                first_error.get_or_insert(ApiError::new(
                                    ResponseError::KafkaStorageError,
                                    e.to_string(),
                                ));
                                continue;
                            }
                        }
                    }
                };
                if ready {
                    partition.apply_leadership(p, now);
                } else {
                    // Not caught up with the controller yet: lead and follow nothing.
                    let mut fenced = p.clone();
                    fenced.leader = brook_meta::NO_LEADER;
                    partition.apply_leadership(&fenced, now);
                }
            }
            self.applied_configs
                .lock()
                .insert(topic.name.clone(), topic.configs.clone());
        }
        self.applied_configs
            .lock()
            .retain(|name, _| image.topics.contains_key(name));
        if let Some(cluster) = &self.cluster {
            self.groups.follow_leadership(self, &image);
            self.txns.follow_leadership(self, &image);
            cluster.update_fetchers(self, &image);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn remove_partition(&self, key: &TopicPartition) {
        let Some(p) = self.partitions.write().remove(key) else {
            return;
        };
        let dir = self.partition_dir(&key.0, key.1);
        // Another task may still hold the partition for a moment; the directory goes either way.
        match Arc::try_unwrap(p) {
            Ok(p) => {
                if let Err(e) = p.delete() {
                    tracing::warn!(error = %e, "deleting partition log");
                }
            }
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        tracing::info!(topic = %key.0, partition = key.1, "removed partition replica");
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.meta.image()
    }

    pub fn with_image<T>(&self, f: impl FnOnce(&MetadataImage) -> T) -> T {
        f(&self.image())
    }

    /// Brokers clients may connect to: `(id, host, port)`. A single broker lists itself;
    /// a cluster lists every registered broker that is not fenced.
    pub fn brokers(&self) -> Vec<(i32, String, i32)> {
        if self.is_cluster() {
            return self
                .image()
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .map(|b| (b.id, b.host.clone(), b.port))
                .collect();
        }
        let (host, port) = &self.config.advertised;
        vec![(self.config.node_id, host.clone(), i32::from(*port))]
    }

    /// The active controller (quorum leader), -1 if there is none right now.
    pub fn controller_id(&self) -> i32 {
        match &self.meta {
            MetaStore::File { .. } => self.config.node_id,
            MetaStore::Raft(q) => q.leader().map_or(-1, |l| l as i32),
        }
    }

    /// `(host, port)` of a broker, for coordinators and leaders.
    pub fn broker_address(&self, id: i32) -> Option<(String, i32)> {
        self.brokers()
            .into_iter()
            .find(|(b, _, _)| *b == id)
            .map(|(_, h, p)| (h, p))
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(Arc::from(topic), index))
            .cloned()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Runs a controller request: in place for a single broker or on the quorum leader,
    /// forwarded to the quorum leader otherwise (retrying while there is none).
    pub async fn controller(&self, req: ControllerRequest) -> Result<ControllerReply, ApiError> {
        let quorum = match &self.meta {
            MetaStore::File { .. } => {
                return tokio::task::block_in_place(|| self.controller_file(&req));
            }
            MetaStore::Raft(q) => q.clone(),
        };
        let deadline = tokio::time::Instant::now() + CONTROLLER_DEADLINE;
        loop {
            let attempt = if quorum.is_leader() {
                self.controller_on_leader(&quorum, &req).await
            } else if let (Some(leader), Some(cluster)) = (quorum.leader(), &self.cluster) {
                cluster.forward(leader as i32, &req).await
            } else {
                Err(None)
            };
            match attempt {
                Ok(reply) => return reply,
                Err(why) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ApiError::new(
                            ResponseError::RequestTimedOut,
                            format!(
                                "no controller answered within {} s{}",
                                CONTROLLER_DEADLINE.as_secs(),
                                why.map(|w| format!(": {w}")).unwrap_or_default()
                            ),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn controller_file(&self, req: &ControllerRequest) -> Result<ControllerReply, ApiError> {
        let MetaStore::File { log, image } = &self.meta else {
            unreachable!("called for the file store only");
        };
        let reply = {
            let mut log = log.lock();
            let (records, reply) = decide(&self.config, log.image(), false, req)?;
            if !records.is_empty() {
                log.append(&records)?;
                *image.write() = log.image_arc();
            }
            reply
        };
        self.reconcile()?;
        Ok(reply)
    }

    /// `Err` means "try again" (not the leader any more, or the quorum failed), with why.
    pub(crate) async fn controller_on_leader(
        &self,
        quorum: &brook_raft::Quorum,
        req: &ControllerRequest,
    ) -> Result<Result<ControllerReply, ApiError>, Option<String>> {
        if let (ControllerRequest::BrokerHeartbeat { id, .. }, Some(cluster)) = (req, &self.cluster)
        {
            cluster.heard_from(*id);
        }
        let _turn = self.controller_lock.lock().await;
        let image = quorum.image();
        let (records, reply) = match decide(&self.config, &image, true, req) {
            Ok(decided) => decided,
            Err(e) => return Ok(Err(e)),
        };
        if !records.is_empty() {
            // A leader cut off from the quorum waits forever in openraft 0.9: bound it.
            match tokio::time::timeout(Duration::from_secs(3), quorum.append(records)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Some(e.to_string())),
                Err(_) => return Err(Some("the metadata quorum did not commit within 3 s".into())),
            }
        }
        Ok(Ok(reply))
    }

    /// After a controller change made elsewhere, waits (briefly) until this broker's
    /// image shows it, then opens what it needs.
    async fn settle(&self, done: impl Fn(&MetadataImage) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while !done(&self.image()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = tokio::task::block_in_place(|| self.reconcile()) {
            tracing::warn!(error = %e, "applying metadata");
        }
    }

    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let reply = self
            .controller(ControllerRequest::CreateTopic {
                name: name.to_string(),
                partitions,
                replication_factor,
                configs,
                assignment,
                validate_only,
            })
            .await?;
        if let ControllerReply::TopicId(id) = reply {
            tracing::info!(topic = name, "created topic");
            self.settle(|i| i.topic_by_id(&id).is_some()).await;
        }
        Ok(())
    }

    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        let reply = self
            .controller(ControllerRequest::DeleteTopic {
                name: name.to_string(),
            })
            .await?;
        let ControllerReply::TopicId(id) = reply else {
            return Err(unknown_topic(name));
        };
        tracing::info!(topic = name, "deleted topic");
        self.settle(|i| i.topic_by_id(&id).is_none()).await;
        Ok(id)
    }

    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.controller(ControllerRequest::CreatePartitions {
            name: name.to_string(),
            total,
            validate_only,
        })
        .await?;
        if !validate_only {
            self.settle(|i| {
                i.topic(name)
                    .is_some_and(|t| t.partitions.len() as i32 >= total)
            })
            .await;
        }
        Ok(())
    }

    /// Applies topic config changes (`None` removes an override); open partitions take
    /// the new effective config when the change is applied.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let expected = changes.clone();
        self.controller(ControllerRequest::AlterTopicConfigs {
            name: name.to_string(),
            changes,
            validate_only,
        })
        .await?;
        if !validate_only {
            self.settle(|i| {
                i.topic(name)
                    .is_none_or(|t| expected.iter().all(|(k, v)| t.configs.get(k) == v.as_ref()))
            })
            .await;
        }
        Ok(())
    }

    /// Asks broker `leader` to write transaction markers in partitions it leads.
    pub async fn write_markers_remote(
        &self,
        leader: i32,
        request: &MarkerRequest,
    ) -> Result<Vec<i16>, String> {
        let cluster = self.cluster.as_ref().ok_or("not in a cluster")?;
        cluster.write_markers(leader, request).await
    }

    /// Hands out a producer id, taking a new block of ids from the controller when one
    /// runs out.
    pub async fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            match self
                .controller(ControllerRequest::AllocateProducerIds)
                .await?
            {
                ControllerReply::ProducerIds { start, end } => *ids = (start, end),
                other => {
                    return Err(ApiError::new(
                        ResponseError::UnknownServerError,
                        format!("unexpected controller reply {other:?}"),
                    ))
                }
            }
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Flushes and closes every partition (clean shutdown).
    pub fn close(&self) {
        let partitions: Vec<Arc<Partition>> =
            self.partitions.write().drain().map(|(_, p)| p).collect();
        for p in partitions {
            if let Ok(p) = Arc::try_unwrap(p) {
                if let Err(e) = p.close() {
                    tracing::warn!(error = %e, "closing partition");
                }
            }
        }
    }
}

fn has_segments(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".log"))
    })
}

/// Runs an async metadata operation from synchronous handler code (admin requests,
/// rare and short). Needs the multi-threaded runtime, which the broker always uses.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

pub fn new_cluster_id() -> String {
    Uuid::new_v4().simple().to_string()[..22].to_string()
}
