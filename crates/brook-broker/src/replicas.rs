//! `Replicas` (Kafka's ReplicaManager): the partition replicas this broker holds, kept
//! matching the metadata image. [`Replicas::apply`] opens the replicas an image gives
//! this broker, hands each its leader, epoch, ISR and config, closes and deletes the
//! ones it no longer holds, and reports what changed as a [`LeadershipDelta`] for the
//! coordinators and fetchers that follow.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brook_meta::{
    BrokerConfigs, MetadataImage, PartitionImage, TopicChange, TopicImage, TopicMap, NO_LEADER,
};
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};

use crate::clock::now_ms;
use crate::config::{BrokerConfig, Dynamic};
use crate::error::ApiError;
use crate::maintenance::{Maintenance, Scheduled};
use crate::names::TopicPartition;
use crate::partition::Partition;

/// One replica's offsets and size, as the admin API shows them (and brokers send
/// each other for it: `peer::PeerNet::figures`).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReplicaFigures {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub size_bytes: u64,
}

/// Asks leaders for their partitions' figures, all at once: each ask is (leader, its
/// partitions, the caller's note on the ask); each answer comes with the leader and the
/// note, the figures in the order asked (`None` where the leader has no such replica),
/// or why there are none.
#[allow(clippy::type_complexity)]
pub async fn ask_leaders<K>(
    peers: &crate::peer::PeerNet,
    asks: Vec<(i32, Vec<(String, i32)>, K)>,
    timeout: std::time::Duration,
) -> Vec<(i32, K, Result<Vec<Option<ReplicaFigures>>, String>)> {
    let asks = asks.into_iter().map(|(node, partitions, note)| async move {
        let answer = peers
            .figures(node, &partitions, timeout)
            .await
            .and_then(|bytes| {
                serde_json::from_slice::<Vec<Option<ReplicaFigures>>>(&bytes)
                    .map_err(|e| format!("bad figures from broker {node}: {e}"))
            });
        (node, note, answer)
    });
    futures_util::future::join_all(asks).await
}

/// What one [`Replicas::apply`] changed on this broker.
#[derive(Debug, Default)]
pub struct LeadershipDelta {
    /// Replicas this broker now follows, with their leader (or [`NO_LEADER`]): new
    /// ones, and ones whose leader or epoch changed.
    pub following: Vec<(TopicPartition, i32)>,
    /// Replicas this broker became the leader of.
    pub leading: Vec<TopicPartition>,
    /// Replicas closed and deleted.
    pub removed: Vec<TopicPartition>,
}

impl LeadershipDelta {
    pub fn is_empty(&self) -> bool {
        self.following.is_empty() && self.leading.is_empty() && self.removed.is_empty()
    }
}

/// How many threads open partitions when an image brings many at once (start-up, a
/// broker catching up, a CreateTopics of many topics), and from how many on. Work is
/// split by topic.
const APPLY_THREADS: usize = 4;
const PARALLEL_APPLY_MIN_PARTITIONS: usize = 64;

pub struct Replicas {
    node_id: i32,
    data_dir: PathBuf,
    config: Arc<BrokerConfig>,
    partitions: RwLock<PartitionMap>,
    stats: ReplicaStats,
    /// When each partition's log next owes periodic work.
    maintenance: Arc<Maintenance<Partition>>,
    /// Each topic as last applied, so an image only costs the topics that changed.
    applied: Mutex<Applied>,
}

/// What this broker's replicas did, for `/metrics` (Kafka's LogFlushRateAndTimeMs,
/// IsrShrinksPerSec, IsrExpandsPerSec).
pub struct ReplicaStats {
    /// Every fsync of a partition log, in seconds.
    pub flush_seconds: Histogram,
    /// ISR changes this broker asked for as a leader and the controller accepted.
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
}

impl Default for ReplicaStats {
    fn default() -> Self {
        ReplicaStats {
            // 50 µs to about 26 s, doubling.
            flush_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 20)),
            isr_shrinks: Counter::default(),
            isr_expands: Counter::default(),
        }
    }
}

#[derive(Default)]
struct Applied {
    /// The topics of the last image applied (shared with it, so keeping it is free).
    topics: TopicMap,
    /// Topics whose last apply failed (a replica did not open): tried again next time.
    retry: HashSet<String>,
    /// Whether the last apply let this broker lead (see `apply`'s `ready`).
    ready: bool,
    /// The dynamic broker configs of the last image applied: when what applies here
    /// changes, every topic's effective config is resolved again.
    broker_configs: BrokerConfigs,
}

impl Replicas {
    /// Moves aside partition directories that `image` does not give this broker, then
    /// holds no replica until the first [`Replicas::apply`].
    pub fn new(config: Arc<BrokerConfig>, data_dir: PathBuf, image: &MetadataImage) -> Self {
        let replicas = Replicas {
            node_id: config.node_id,
            data_dir,
            config,
            partitions: RwLock::new(PartitionMap::default()),
            stats: ReplicaStats::default(),
            maintenance: Arc::default(),
            applied: Mutex::new(Applied::default()),
        };
        replicas.move_stray_dirs(image);
        replicas
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Counters the replicas' own work feeds (read by the metrics at scrape time).
    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    /// The directory holding every partition's log.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions.read().get(topic, index).cloned()
    }

    /// The replicas of `keys` this broker holds, in their order, under one lock.
    pub fn get_many<'a>(
        &self,
        keys: impl Iterator<Item = &'a TopicPartition>,
    ) -> Vec<Arc<Partition>> {
        let map = self.partitions.read();
        keys.filter_map(|(topic, index)| map.get(topic, *index).cloned())
            .collect()
    }

    /// The replicas of partitions `indices` of `topic` this broker holds (None for the
    /// others), in their order: one lock and one topic lookup for all of them.
    pub fn topic_partitions(
        &self,
        topic: &str,
        indices: impl Iterator<Item = i32>,
    ) -> Vec<Option<Arc<Partition>>> {
        let map = self.partitions.read();
        let Some(partitions) = map.topics.get(topic) else {
            return indices.map(|_| None).collect();
        };
        indices.map(|i| partitions.get(&i).cloned()).collect()
    }

    /// The figures of this broker's replica of `topic`-`index`, if it holds one
    /// (takes the replica's lock: call on the blocking pool for many).
    pub fn figures(&self, topic: &str, index: i32) -> Option<ReplicaFigures> {
        let p = self.get(topic, index)?;
        let (log_start_offset, high_watermark) = p.offsets();
        let (size_bytes, log_end_offset) =
            p.with_log(|log| (log.size_bytes(), log.log_end_offset()));
        Some(ReplicaFigures {
            log_start_offset,
            log_end_offset,
            high_watermark,
            last_stable_offset: p.last_stable_offset(),
            size_bytes,
        })
    }

    /// The partitions whose periodic log work is due at `now_ms` (at most `limit`),
    /// taken out of the queue: give each back with [`Replicas::maintained`].
    pub fn maintenance_due(&self, now_ms: i64, limit: usize) -> Vec<Arc<Partition>> {
        self.maintenance.take_due(now_ms, limit)
    }

    /// Queues `partition`'s next periodic work for `next_ms`.
    pub fn maintained(&self, partition: &Partition, next_ms: Option<i64>) {
        self.maintenance
            .schedule(partition.maintenance_slot(), next_ms);
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Makes the replicas match `image`. `ready` is false while a cluster broker has not
    /// caught up with the controller: it then leads and follows nothing. Only topics
    /// that changed since the last apply are visited (all of them when `ready` flips).
    /// Idempotent; a replica that fails to open is retried by the next apply.
    pub fn apply(&self, image: &MetadataImage, ready: bool) -> (LeadershipDelta, Option<ApiError>) {
        let mut applied = self.applied.lock();
        let everything = applied.ready != ready;
        applied.ready = ready;
        let mut delta = LeadershipDelta::default();
        let mut first_error = None;
        let now = now_ms();
        // (topic, whether its configs changed) to bring up to date.
        let mut visit: Vec<(&TopicImage, bool)> = Vec::new();
        let before_topics = std::mem::take(&mut applied.topics);
        if everything {
            let node = self.node_id;
            let gone: Vec<TopicPartition> = self
                .partitions
                .read()
                .keys()
                .filter(|(t, i)| {
                    image
                        .partition(t, *i)
                        .is_none_or(|p| !p.replicas.contains(&node))
                })
                .collect();
            for key in gone {
                self.remove(&key);
                delta.removed.push(key);
            }
            visit.extend(image.topics.values().map(|t| (t.as_ref(), true)));
        } else {
            for change in image.topic_changes(&before_topics) {
                match change {
                    TopicChange::Added(t) => visit.push((t, true)),
                    TopicChange::Changed { before, after } => {
                        self.remove_unassigned(before, Some(after), &mut delta);
                        visit.push((after, before.configs != after.configs));
                    }
                    TopicChange::Removed(t) => self.remove_unassigned(t, None, &mut delta),
                }
            }
            if image
                .broker_configs
                .differ_for(&applied.broker_configs, self.node_id)
            {
                // A dynamic broker config changed: every topic may resolve differently
                // (rare; one pass over the topics).
                visit = image.topics.values().map(|t| (t.as_ref(), true)).collect();
                applied.retry.clear();
            }
            for name in std::mem::take(&mut applied.retry) {
                if let Some(t) = image.topic(&name) {
                    if !visit.iter().any(|(v, _)| v.name == name) {
                        visit.push((t, true));
                    }
                }
            }
        }
        let dynamic = Dynamic::new(&image.broker_configs, self.node_id);
        let apply_all = |topics: &[(&TopicImage, bool)]| {
            let mut delta = LeadershipDelta::default();
            let mut failed = Vec::new();
            for (topic, config_changed) in topics {
                if let Err(e) =
                    self.apply_topic(topic, *config_changed, dynamic, ready, now, &mut delta)
                {
                    failed.push((topic.name.clone(), e));
                }
            }
            (delta, failed)
        };
        // Opening a partition is mostly waiting on the disk (recovery reads, directory
        // fsyncs at creation): many at once go on several threads, so a start-up with
        // 10,000 partitions is not one long queue of them.
        let partitions: usize = visit.iter().map(|(t, _)| t.partitions.len()).sum();
        let outcomes = if visit.len() > 1 && partitions >= PARALLEL_APPLY_MIN_PARTITIONS {
            let chunk = visit.len().div_ceil(APPLY_THREADS);
            std::thread::scope(|scope| {
                let handles: Vec<_> = visit
                    .chunks(chunk)
                    .map(|topics| scope.spawn(move || apply_all(topics)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect::<Vec<_>>()
            })
        } else {
            vec![apply_all(&visit)]
        };
        for (part, failed) in outcomes {
            delta.leading.extend(part.leading);
            delta.following.extend(part.following);
            delta.removed.extend(part.removed);
            for (name, e) in failed {
                applied.retry.insert(name);
                first_error.get_or_insert(e);
            }
        }
        applied.topics = image.topics.clone();
        applied.broker_configs = image.broker_configs.clone();
        (delta, first_error)
    }

    /// Closes and deletes the replicas of `before` this broker holds that `after` (the
    /// same topic in the new image, `None` once it is deleted) no longer gives it.
    fn remove_unassigned(
        &self,
        before: &TopicImage,
        after: Option<&TopicImage>,
        delta: &mut LeadershipDelta,
    ) {
        let node = self.node_id;
        let name: Arc<str> = Arc::from(before.name.as_str());
        for p in &before.partitions {
            let kept = after
                .and_then(|t| t.partitions.get(usize::try_from(p.index).ok()?))
                .is_some_and(|p| p.replicas.contains(&node));
            let key = (name.clone(), p.index);
            if !kept && self.partitions.read().contains_key(&key) {
                self.remove(&key);
                delta.removed.push(key);
            }
        }
    }

    fn apply_topic(
        &self,
        topic: &TopicImage,
        config_changed: bool,
        dynamic: Dynamic<'_>,
        ready: bool,
        now: i64,
        delta: &mut LeadershipDelta,
    ) -> Result<(), ApiError> {
        let node = self.node_id;
        let name: Arc<str> = Arc::from(topic.name.as_str());
        let mut config = None;
        let mut topic_config = || {
            config
                .get_or_insert_with(|| Arc::new(self.config.topic_config(&topic.configs, dynamic)))
                .clone()
        };
        let mut first_error = None;
        for p in topic
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(&node))
        {
            let key = (name.clone(), p.index);
            let existing = self.partitions.read().get(&key.0, key.1).cloned();
            // Not caught up with the controller yet: lead and follow nothing.
            let view = if ready {
                p.clone()
            } else {
                PartitionImage {
                    leader: NO_LEADER,
                    ..p.clone()
                }
            };
            let (partition, before) = match existing {
                Some(partition) => {
                    if config_changed {
                        partition.set_config(topic_config());
                    }
                    let before = partition.leadership();
                    (partition, Some(before))
                }
                None => {
                    let dir = self.partition_dir(&topic.name, p.index);
                    match Partition::open(&dir, name.clone(), p.index, node, topic_config(), now) {
                        Ok(partition) => {
                            partition.observe_flushes(self.stats.flush_seconds.clone());
                            // Take the leadership metadata gives before anyone can see it.
                            partition.apply_leadership(&view, now);
                            let partition = Arc::new(partition);
                            partition.attach_maintenance(self.maintenance.clone());
                            self.partitions
                                .write()
                                .insert(key.clone(), partition.clone());
                            (partition, None)
                        }
                        Err(e) => {
                            let hint = if out_of_file_descriptors(&e) {
                                ": the process is out of file descriptors (each partition keeps its active segment open); raise the open files limit (ulimit -n, systemd LimitNOFILE)"
                            } else {
                                ""
                            };
                            tracing::error!(topic = %topic.name, partition = p.index, error = %e, "cannot open partition log{hint}");
                            first_error.get_or_insert(ApiError::new(
                                ResponseError::KafkaStorageError,
                                e.to_string(),
                            ));
                            continue;
                        }
                    }
                }
            };
            partition.apply_leadership(&view, now);
            let after = partition.leadership();
            if before != Some(after) {
                if after.0 == node {
                    delta.leading.push(key);
                } else {
                    delta.following.push((key, after.0));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    fn remove(&self, key: &TopicPartition) {
        let Some(p) = self.partitions.write().remove(key) else {
            return;
        };
        self.maintenance.forget(&p);
        p.retire();
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

    /// Moves aside partition directories the image does not give this broker (a topic
    /// deleted while the broker was down, or metadata that lost a record to damage):
    /// renamed `<topic>-<partition>.<id>-stray` as Kafka does, never deleted, so an
    /// operator can still recover their data.
    fn move_stray_dirs(&self, image: &MetadataImage) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        let node = self.node_id;
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
                let stray = self
                    .data_dir
                    .join(format!("{name}.{}-stray", uuid::Uuid::new_v4().simple()));
                match std::fs::rename(entry.path(), &stray) {
                    Ok(()) => tracing::warn!(
                        dir = %entry.path().display(),
                        moved_to = %stray.display(),
                        "metadata does not give this broker that partition; moved its directory aside (delete it once it is not needed)"
                    ),
                    Err(e) => tracing::error!(
                        dir = %entry.path().display(),
                        error = %e,
                        "cannot move aside the directory of a partition metadata does not know"
                    ),
                }
            }
        }
    }

    /// Flushes and closes every partition (clean shutdown).
    pub fn close(&self) {
        self.maintenance.clear();
        let partitions: Vec<Arc<Partition>> = self.partitions.write().drain();
        for p in partitions {
            if let Ok(p) = Arc::try_unwrap(p) {
                if let Err(e) = p.close() {
                    tracing::warn!(error = %e, "closing partition");
                }
            }
        }
    }
}

fn has_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".log"))
    })
}

/// The partitions of `topic` this broker leads now, per the replicas it holds.
pub fn led_partitions(
    replicas: &Replicas,
    image: &MetadataImage,
    topic: &str,
) -> std::collections::BTreeSet<i32> {
    image.topic(topic).map_or_else(Default::default, |t| {
        t.partitions
            .iter()
            .filter(|p| replicas.get(topic, p.index).is_some_and(|l| l.is_leader()))
            .map(|p| p.index)
            .collect()
    })
}

/// The partitions this broker holds, by topic then index, so a lookup by `&str`
/// allocates nothing (it runs for every partition of every produce and fetch).
#[derive(Default)]
struct PartitionMap {
    topics: HashMap<Arc<str>, HashMap<i32, Arc<Partition>>>,
}

impl PartitionMap {
    fn get(&self, topic: &str, index: i32) -> Option<&Arc<Partition>> {
        self.topics.get(topic)?.get(&index)
    }

    fn contains_key(&self, key: &TopicPartition) -> bool {
        self.get(&key.0, key.1).is_some()
    }

    fn insert(&mut self, key: TopicPartition, partition: Arc<Partition>) {
        self.topics
            .entry(key.0)
            .or_default()
            .insert(key.1, partition);
    }

    fn remove(&mut self, key: &TopicPartition) -> Option<Arc<Partition>> {
        let partitions = self.topics.get_mut(&*key.0)?;
        let removed = partitions.remove(&key.1);
        if partitions.is_empty() {
            self.topics.remove(&*key.0);
        }
        removed
    }

    fn keys(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.topics
            .iter()
            .flat_map(|(t, ps)| ps.keys().map(move |i| (t.clone(), *i)))
    }

    fn values(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.topics.values().flat_map(HashMap::values)
    }

    fn drain(&mut self) -> Vec<Arc<Partition>> {
        self.topics
            .drain()
            .flat_map(|(_, ps)| ps.into_values())
            .collect()
    }
}

/// Whether opening a log failed because the process has no file descriptor left
/// (EMFILE) or the system none (ENFILE).
fn out_of_file_descriptors(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            let (process, system) = (nix::errno::Errno::EMFILE, nix::errno::Errno::ENFILE);
            if matches!(io.raw_os_error(), Some(n) if n == process as i32 || n == system as i32) {
                return true;
            }
        }
        cause = c.source();
    }
    false
}
