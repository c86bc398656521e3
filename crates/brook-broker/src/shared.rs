//! State shared by every connection: metadata, open partitions, coordinators.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use brook_meta::{FileMetadataLog, MetaError, MetadataImage, MetadataRecord, TopicImage};
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::{validate_topic_config, BrokerConfig, ConfigError};
use crate::groups::Groups;
use crate::partition::Partition;

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
/// Producer ids are handed out in blocks; one metadata record per block.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// An error with a Kafka error code and a message for the client.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
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

pub struct Shared {
    pub config: BrokerConfig,
    data_dir: PathBuf,
    meta: Mutex<FileMetadataLog>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Woken on every append, for fetch long-polls.
    pub data_appended: Notify,
    producer_ids: Mutex<(i64, i64)>,
    pub groups: Groups,
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

impl Shared {
    pub fn open(
        config: BrokerConfig,
        data_dir: PathBuf,
        persistent: bool,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(&data_dir).map_err(|e| OpenError::DataDir(data_dir.clone(), e))?;
        let mut meta = if persistent {
            FileMetadataLog::open(&data_dir.join("__metadata.log"), config.node_id)?
        } else {
            FileMetadataLog::in_memory(config.node_id)
        };
        if meta.image().cluster_id.is_empty() {
            let cluster_id = Uuid::new_v4().simple().to_string()[..22].to_string();
            meta.append(&[MetadataRecord::ClusterCreated { cluster_id }])?;
        }
        let next = meta.image().next_producer_id_block;
        let config_for_groups = config.clone();
        let shared = Shared {
            config,
            data_dir,
            meta: Mutex::new(meta),
            partitions: RwLock::new(HashMap::new()),
            data_appended: Notify::new(),
            producer_ids: Mutex::new((next, next)),
            groups: Groups::new(&config_for_groups),
        };
        shared.open_all_partitions().map_err(OpenError::Partition)?;
        let replayed = shared.groups.load(&shared).map_err(OpenError::Partition)?;
        tracing::debug!(replayed, "loaded group coordinator state");
        Ok(shared)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    fn open_all_partitions(&self) -> Result<(), ApiError> {
        let image = self.image();
        for topic in image.topics.values() {
            self.open_partitions(topic, 0)?;
        }
        self.remove_orphan_dirs(&image);
        Ok(())
    }

    /// Removes partition directories of topics deleted while the broker was down or crashing.
    fn remove_orphan_dirs(&self, image: &MetadataImage) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((topic, index)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let known = image
                .topic(topic)
                .is_some_and(|t| index < t.partitions.len());
            if !known && entry.path().is_dir() {
                tracing::warn!(dir = %entry.path().display(), "removing directory of a deleted topic");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    fn open_partitions(&self, topic: &TopicImage, from: usize) -> Result<(), ApiError> {
        let config = Arc::new(self.config.topic_config(&topic.configs));
        let name: Arc<str> = Arc::from(topic.name.as_str());
        for p in &topic.partitions[from..] {
            let dir = self.partition_dir(&topic.name, p.index);
            let partition = Partition::open(&dir, name.clone(), p.index, config.clone(), now_ms()).map_err(|e| {
                tracing::error!(topic = %topic.name, partition = p.index, error = %e, "cannot open partition log");
                ApiError::new(ResponseError::KafkaStorageError, e.to_string())
            })?;
            self.partitions
                .write()
                .insert((name.clone(), p.index), Arc::new(partition));
        }
        Ok(())
    }

    pub fn image(&self) -> MetadataImage {
        self.meta.lock().image().clone()
    }

    pub fn with_image<T>(&self, f: impl FnOnce(&MetadataImage) -> T) -> T {
        f(self.meta.lock().image())
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

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.int("num.partitions") as i32
        } else {
            partitions
        };
        let replication_factor = if replication_factor == -1 {
            self.config.int("default.replication.factor") as i16
        } else {
            replication_factor
        };
        if partitions <= 0 || partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}"),
            ));
        }
        if replication_factor != 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} is larger than the 1 available broker"
                ),
            ));
        }
        for (k, v) in &configs {
            validate_topic_config(k, v)?;
        }
        let mut meta = self.meta.lock();
        if meta.image().topic(name).is_some() {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let record = MetadataRecord::TopicCreated {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
            internal: name.starts_with("__"),
        };
        meta.append(&[record])?;
        let topic = meta.image().topic(name).expect("just created").clone();
        drop(meta);
        tracing::info!(topic = name, partitions, "created topic");
        self.open_partitions(&topic, 0)
    }

    pub fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        let mut meta = self.meta.lock();
        let topic = meta
            .image()
            .topic(name)
            .cloned()
            .ok_or_else(|| unknown_topic(name))?;
        meta.append(&[MetadataRecord::TopicDeleted {
            name: name.to_string(),
        }])?;
        drop(meta);
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            topic
                .partitions
                .iter()
                .filter_map(|p| map.remove(&(Arc::from(name), p.index)))
                .collect()
        };
        for p in removed {
            let dir = self.partition_dir(name, p.index);
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
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.topic_id)
    }

    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let mut meta = self.meta.lock();
        let topic = meta
            .image()
            .topic(name)
            .cloned()
            .ok_or_else(|| unknown_topic(name))?;
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("topic currently has {current} partitions, which is higher than or equal to the requested {total}"),
            ));
        }
        if total > MAX_PARTITIONS_PER_TOPIC {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        meta.append(&[MetadataRecord::PartitionsAdded {
            name: name.to_string(),
            total,
        }])?;
        let topic = meta.image().topic(name).expect("exists").clone();
        drop(meta);
        self.open_partitions(&topic, current as usize)
    }

    /// Applies topic config changes (`None` removes an override) and pushes the new
    /// effective config to the topic's open partitions.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        for (k, v) in &changes {
            match v {
                Some(v) => validate_topic_config(k, v)?,
                None => {
                    if crate::config::topic_config_def(k).is_none() {
                        return Err(ConfigError::Unknown(k.clone()).into());
                    }
                }
            }
        }
        let mut meta = self.meta.lock();
        if meta.image().topic(name).is_none() {
            return Err(unknown_topic(name));
        }
        if validate_only {
            return Ok(());
        }
        let records: Vec<MetadataRecord> = changes
            .into_iter()
            .map(|(key, value)| MetadataRecord::TopicConfigSet {
                name: name.to_string(),
                key,
                value,
            })
            .collect();
        meta.append(&records)?;
        let topic = meta.image().topic(name).expect("exists").clone();
        drop(meta);
        let config = Arc::new(self.config.topic_config(&topic.configs));
        for p in &topic.partitions {
            if let Some(partition) = self.partition(name, p.index) {
                partition.set_config(config.clone());
            }
        }
        Ok(())
    }

    /// Hands out a producer id, persisting a new block of ids when one runs out.
    pub fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let mut meta = self.meta.lock();
            let start = meta.image().next_producer_id_block;
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            meta.append(&[MetadataRecord::ProducerIdsAllocated {
                next_block_start: end,
            }])?;
            *ids = (start, end);
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
