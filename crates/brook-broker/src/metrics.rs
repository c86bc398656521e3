//! The broker's Prometheus metrics (`/metrics` on the admin listener).
//!
//! Two kinds, so the request path pays almost nothing:
//! - counted as it happens, through handles resolved once: request time per API key
//!   split as Kafka's RequestMetrics (queue, local, remote, response send, total,
//!   throttle; an array indexed by the key), per-topic messages and bytes in and out and
//!   produce/fetch requests (a map read-locked by `&str`, no allocation once a topic
//!   has been seen), open connections per listener;
//! - computed at scrape time from the services' own state ([`StateCollector`]): log
//!   size and offsets per partition, leadership, under-replicated and offline
//!   partitions, consumer groups' committed offsets and lag.
//!
//! Names follow Prometheus conventions: `brook_` prefix, base units in the name,
//! `_total` on counters (added by the encoder). The README maps each to Kafka's JMX name.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::groups::Groups;
use crate::metadata::MetadataView;
use crate::replicas::Replicas;

/// API keys below this get request time histograms (Kafka's keys end in the 90s).
const API_KEY_SLOTS: usize = 128;

/// Where one request's time went (Kafka's RequestMetrics), measured by the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestTimes {
    /// From the frame's last byte read until its handler started (header checks and
    /// decoding: Brook has no request queue, pipelined requests wait in the socket).
    pub queue: Duration,
    /// The handler's own work and the response's encoding.
    pub local: Duration,
    /// Waiting on other parties (`request_time::waiting_on_others`).
    pub remote: Duration,
    /// Writing the response to the socket, flush included (zero without a response).
    pub response_send: Duration,
    /// The response's `throttle_time_ms`.
    pub throttle: Duration,
    /// From the frame's last byte read until its response was flushed.
    pub total: Duration,
}

/// One API's request time histograms.
struct RequestHistograms {
    queue: Histogram,
    local: Histogram,
    remote: Histogram,
    response_send: Histogram,
    throttle: Histogram,
    total: Histogram,
}

type HistogramFamily = Family<ApiLabel, Histogram, fn() -> Histogram>;

/// The families behind [`RequestHistograms`], registered once.
struct RequestFamilies {
    queue: HistogramFamily,
    local: HistogramFamily,
    remote: HistogramFamily,
    response_send: HistogramFamily,
    throttle: HistogramFamily,
    total: HistogramFamily,
}

impl RequestFamilies {
    fn register(registry: &mut Registry) -> Self {
        let mut family = |name: &str, help: &str| {
            let f = HistogramFamily::new_with_constructor(latency_histogram);
            registry.register(name, help, f.clone());
            f
        };
        RequestFamilies {
            queue: family(
                "brook_request_queue_time_seconds",
                "From a request's last byte read until its handler starts (header checks, decoding), by API",
            ),
            local: family(
                "brook_request_local_time_seconds",
                "A request's own work in its handler, response encoding included, by API",
            ),
            remote: family(
                "brook_request_remote_time_seconds",
                "Time a request waits on others: acks=all replication, fetch long-poll, parked JoinGroup/SyncGroup, offset commit replication, by API",
            ),
            response_send: family(
                "brook_request_response_send_time_seconds",
                "Writing a request's response to the socket, by API",
            ),
            throttle: family(
                "brook_request_throttle_time_seconds",
                "The throttle_time_ms of a request's response (Brook has no quotas: always 0), by API",
            ),
            total: family(
                "brook_request_total_time_seconds",
                "From a request's last byte read until its response is flushed, by API (_count: requests answered)",
            ),
        }
    }

    fn for_api(&self, api: ApiKey) -> RequestHistograms {
        let label = ApiLabel {
            api: format!("{api:?}"),
        };
        let get = |family: &HistogramFamily| family.get_or_create(&label).clone();
        RequestHistograms {
            queue: get(&self.queue),
            local: get(&self.local),
            remote: get(&self.remote),
            response_send: get(&self.response_send),
            throttle: get(&self.throttle),
            total: get(&self.total),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

/// Request latency buckets: 100 µs to about 26 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
}

/// Per-topic counters (Kafka's BrokerTopicMetrics), one handle each.
pub struct TopicCounters {
    messages_in: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    produce_requests: Counter,
    failed_produce_requests: Counter,
    fetch_requests: Counter,
    failed_fetch_requests: Counter,
}

/// One topic's traffic counters, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTraffic {
    pub topic: String,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The families behind [`TopicCounters`], kept to create and drop a topic's series.
#[derive(Default, Clone)]
struct TopicFamilies {
    messages_in: Family<TopicLabel, Counter>,
    bytes_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    produce_requests: Family<TopicLabel, Counter>,
    failed_produce_requests: Family<TopicLabel, Counter>,
    fetch_requests: Family<TopicLabel, Counter>,
    failed_fetch_requests: Family<TopicLabel, Counter>,
}

impl TopicFamilies {
    fn all(&self) -> [&Family<TopicLabel, Counter>; 7] {
        [
            &self.messages_in,
            &self.bytes_in,
            &self.bytes_out,
            &self.produce_requests,
            &self.failed_produce_requests,
            &self.fetch_requests,
            &self.failed_fetch_requests,
        ]
    }
}

/// The broker's metrics: recording handles for the request path, and the registry a
/// scrape encodes.
pub struct BrokerMetrics {
    registry: Registry,
    /// `metrics.request.enable`: whether the request path records at all.
    requests_enabled: bool,
    request_families: RequestFamilies,
    /// Resolved on an API's first request, so only APIs in use have series.
    request_times_by_key: Box<[OnceLock<RequestHistograms>]>,
    topic_families: TopicFamilies,
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    connections: [Gauge; 2],
    metadata: MetadataView,
}

/// Which metrics the broker records, from its settings.
#[derive(Debug, Clone, Copy)]
pub struct MetricsSwitches {
    /// `metrics.request.enable`: request times and per-topic traffic counters.
    pub requests: bool,
    /// `metrics.partition.labels.enable`: series labelled by partition.
    pub per_partition: bool,
}

/// One open connection, counted in `brook_active_connections` until dropped.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl BrokerMetrics {
    pub fn new(
        replicas: Arc<Replicas>,
        groups: Arc<Groups>,
        metadata: MetadataView,
        switches: MetricsSwitches,
    ) -> Self {
        let mut registry = Registry::default();
        let request_families = RequestFamilies::register(&mut registry);
        let topic_families = TopicFamilies::default();
        let topic_help = [
            ("brook_topic_messages_in", "Records appended by producers"),
            (
                "brook_topic_bytes_in",
                "Record batch bytes appended by producers",
            ),
            (
                "brook_topic_bytes_out",
                "Record batch bytes sent to consumers (not to followers)",
            ),
            (
                "brook_topic_produce_requests",
                "Produce requests naming the topic",
            ),
            (
                "brook_topic_failed_produce_requests",
                "Produce requests with an error in one of the topic's partitions",
            ),
            (
                "brook_topic_fetch_requests",
                "Consumer fetch requests naming the topic",
            ),
            (
                "brook_topic_failed_fetch_requests",
                "Consumer fetch requests with an error in one of the topic's partitions",
            ),
        ];
        for ((name, help), family) in topic_help.iter().zip(topic_families.all()) {
            registry.register(*name, *help, family.clone());
        }
        let stats = replicas.stats();
        registry.register(
            "brook_log_flush_seconds",
            "Time each fsync of a partition log took (Kafka's LogFlushRateAndTimeMs)",
            stats.flush_seconds.clone(),
        );
        registry.register(
            "brook_isr_shrinks",
            "ISR shrinks this broker asked for as leader and the controller accepted (Kafka's IsrShrinksPerSec)",
            stats.isr_shrinks.clone(),
        );
        registry.register(
            "brook_isr_expands",
            "ISR expansions this broker asked for as leader and the controller accepted (Kafka's IsrExpandsPerSec)",
            stats.isr_expands.clone(),
        );
        let connections_family = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "brook_active_connections",
            "Open Kafka protocol connections, by listener",
            connections_family.clone(),
        );
        let connections = ["client", "controller"].map(|listener| {
            connections_family
                .get_or_create(&ListenerLabel { listener })
                .clone()
        });
        registry.register_collector(Box::new(StateCollector {
            replicas,
            groups,
            metadata: metadata.clone(),
            per_partition: switches.per_partition,
        }));
        BrokerMetrics {
            registry,
            requests_enabled: switches.requests,
            request_families,
            request_times_by_key: (0..API_KEY_SLOTS).map(|_| OnceLock::new()).collect(),
            topic_families,
            topics: RwLock::default(),
            connections,
            metadata,
        }
    }

    /// Whether requests are timed and counted (`metrics.request.enable`): when not,
    /// the connection reads no clocks and the handlers count no per-topic traffic.
    pub fn requests_enabled(&self) -> bool {
        self.requests_enabled
    }

    /// Records where one request's time went.
    pub fn observe_request(&self, api: ApiKey, times: &RequestTimes) {
        let Some(slot) = self.request_times_by_key.get(api as i16 as usize) else {
            return;
        };
        let h = slot.get_or_init(|| self.request_families.for_api(api));
        h.queue.observe(times.queue.as_secs_f64());
        h.local.observe(times.local.as_secs_f64());
        h.remote.observe(times.remote.as_secs_f64());
        h.response_send.observe(times.response_send.as_secs_f64());
        h.throttle.observe(times.throttle.as_secs_f64());
        h.total.observe(times.total.as_secs_f64());
    }

    /// Counts a connection on a client (`internal = false`) or controller listener.
    pub fn connection_opened(&self, internal: bool) -> OpenConnection {
        let gauge = self.connections[usize::from(internal)].clone();
        gauge.inc();
        OpenConnection(gauge)
    }

    /// The counters of `topic`, created on its first use; `None` if no such topic
    /// exists (so names a client makes up never become series) or requests are not
    /// counted (`metrics.request.enable=false`).
    pub fn topic(&self, topic: &str) -> Option<Arc<TopicCounters>> {
        if !self.requests_enabled {
            return None;
        }
        if let Some(counters) = self.topics.read().get(topic) {
            return Some(counters.clone());
        }
        self.metadata.image().topic(topic)?;
        let label = TopicLabel {
            topic: topic.to_string(),
        };
        let f = &self.topic_families;
        let counter = |family: &Family<TopicLabel, Counter>| family.get_or_create(&label).clone();
        let counters = Arc::new(TopicCounters {
            messages_in: counter(&f.messages_in),
            bytes_in: counter(&f.bytes_in),
            bytes_out: counter(&f.bytes_out),
            produce_requests: counter(&f.produce_requests),
            failed_produce_requests: counter(&f.failed_produce_requests),
            fetch_requests: counter(&f.fetch_requests),
            failed_fetch_requests: counter(&f.failed_fetch_requests),
        });
        Some(
            self.topics
                .write()
                .entry(label.topic)
                .or_insert(counters)
                .clone(),
        )
    }

    /// Traffic per topic so far (messages and bytes in, bytes out), for the admin API's
    /// throughput figures. Topics deleted since are gone from the sums.
    pub fn traffic(&self) -> Vec<TopicTraffic> {
        let mut out: Vec<TopicTraffic> = self
            .topics
            .read()
            .iter()
            .map(|(topic, c)| TopicTraffic {
                topic: topic.clone(),
                messages_in: c.messages_in.get(),
                bytes_in: c.bytes_in.get(),
                bytes_out: c.bytes_out.get(),
            })
            .collect();
        out.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        out
    }

    /// Forgets the counters of topics that no longer exist, so deleted topics do not
    /// stay in every scrape.
    fn forget_deleted_topics(&self, exists: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .topics
            .read()
            .keys()
            .filter(|t| !exists(t))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut topics = self.topics.write();
        for topic in gone {
            topics.remove(&topic);
            let label = TopicLabel { topic };
            for family in self.topic_families.all() {
                family.remove(&label);
            }
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric. Reads every
    /// partition's offsets: call it on the blocking pool.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let image = self.metadata.image();
        self.forget_deleted_topics(|t| image.topic(t).is_some());
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl TopicCounters {
    /// A produce of `records` records in `bytes` bytes appended.
    pub fn appended(&self, records: u64, bytes: u64) {
        self.messages_in.inc_by(records);
        self.bytes_in.inc_by(bytes);
    }

    pub fn produce_request(&self, failed: bool) {
        self.produce_requests.inc();
        if failed {
            self.failed_produce_requests.inc();
        }
    }

    pub fn fetch_request(&self, failed: bool) {
        self.fetch_requests.inc();
        if failed {
            self.failed_fetch_requests.inc();
        }
    }

    pub fn sent(&self, bytes: u64) {
        self.bytes_out.inc_by(bytes);
    }
}

/// Gauges read from the broker's state at each scrape.
struct StateCollector {
    replicas: Arc<Replicas>,
    groups: Arc<Groups>,
    metadata: MetadataView,
    per_partition: bool,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector")
            .field("per_partition", &self.per_partition)
            .finish_non_exhaustive()
    }
}

/// One partition replica's figures.
struct PartitionFigures {
    topic: Arc<str>,
    index: i32,
    size_bytes: u64,
    log_start: i64,
    log_end: i64,
    high_watermark: i64,
}

/// A gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A gauge family written straight to the encoder: `rows` are (labels, value).
fn gauge_family<L: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let node_id = self.metadata.node_id();
        let image = self.metadata.image();
        let cluster = self.metadata.is_cluster();
        // Leadership from the applied image (a single broker leads everything it has).
        let (mut leaders, mut under_replicated, mut offline) = (0i64, 0i64, 0i64);
        for topic in image.topics.values() {
            for p in &topic.partitions {
                let leads = !cluster || p.leader == node_id;
                if p.leader < 0 {
                    offline += 1;
                }
                if leads {
                    leaders += 1;
                    if p.isr.len() < p.replicas.len() {
                        under_replicated += 1;
                    }
                }
            }
        }
        gauge(
            &mut encoder,
            "brook_active_controller",
            "1 if this broker is the active controller (Kafka's ActiveControllerCount)",
            i64::from(self.metadata.controller_id() == node_id),
        )?;
        gauge(
            &mut encoder,
            "brook_leader_partitions",
            "Partitions this broker leads (Kafka's LeaderCount)",
            leaders,
        )?;
        gauge(
            &mut encoder,
            "brook_under_replicated_partitions",
            "Partitions led here whose ISR is smaller than their replica set",
            under_replicated,
        )?;
        gauge(
            &mut encoder,
            "brook_offline_partitions",
            "Partitions without a leader, cluster-wide as this broker's metadata shows",
            offline,
        )?;

        let mut partitions: Vec<PartitionFigures> = self
            .replicas
            .all()
            .into_iter()
            .map(|p| {
                let (size_bytes, log_start, log_end) = p.with_log(|log| {
                    (
                        log.size_bytes(),
                        log.log_start_offset(),
                        log.log_end_offset(),
                    )
                });
                PartitionFigures {
                    topic: p.topic.clone(),
                    index: p.index,
                    size_bytes,
                    log_start,
                    log_end,
                    high_watermark: p.offsets().1,
                }
            })
            .collect();
        partitions.sort_unstable_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
        gauge(
            &mut encoder,
            "brook_partitions",
            "Partition replicas on this broker (Kafka's PartitionCount)",
            partitions.len() as i64,
        )?;
        if self.per_partition {
            let labels = |p: &PartitionFigures| {
                [
                    ("topic", p.topic.to_string()),
                    ("partition", p.index.to_string()),
                ]
            };
            gauge_family(
                &mut encoder,
                "brook_partition_log_size_bytes",
                "Bytes of the partition's log segments",
                partitions.iter().map(|p| (labels(p), p.size_bytes)),
            )?;
            gauge_family(
                &mut encoder,
                "brook_partition_log_start_offset",
                "The partition's log start offset",
                partitions.iter().map(|p| (labels(p), p.log_start)),
            )?;
            gauge_family(
                &mut encoder,
                "brook_partition_log_end_offset",
                "The partition's log end offset",
                partitions.iter().map(|p| (labels(p), p.log_end)),
            )?;
            gauge_family(
                &mut encoder,
                "brook_partition_high_watermark",
                "The partition's high watermark",
                partitions.iter().map(|p| (labels(p), p.high_watermark)),
            )?;
        }
        self.encode_groups(&mut encoder, &partitions)
    }
}

/// One committed offset of a group.
struct Committed {
    group: String,
    topic: String,
    partition: i32,
    offset: i64,
}

impl StateCollector {
    /// Committed offsets and lag (high watermark − committed offset) of the groups this
    /// broker coordinates, where it holds the partition.
    fn encode_groups(
        &self,
        encoder: &mut DescriptorEncoder,
        partitions: &[PartitionFigures],
    ) -> Result<(), std::fmt::Error> {
        // Copied out first: the group lock is never held while reading partitions.
        let mut members = Vec::new();
        let mut committed = Vec::new();
        self.groups.read(|state| {
            state.coordinator.visit_groups(|g| {
                members.push((g.group_id.to_string(), g.members, g.state.name()));
                committed.extend(g.committed().map(|(topic, partition, offset)| Committed {
                    group: g.group_id.to_string(),
                    topic: topic.to_string(),
                    partition,
                    offset,
                }));
            })
        });
        let high_watermarks: HashMap<(&str, i32), i64> = partitions
            .iter()
            .map(|p| ((&*p.topic, p.index), p.high_watermark))
            .collect();
        let lag = |c: &Committed| {
            high_watermarks
                .get(&(c.topic.as_str(), c.partition))
                .filter(|_| c.offset >= 0)
                .map(|hw| (hw - c.offset).max(0))
        };
        gauge_family(
            encoder,
            "brook_group_members",
            "Members of a consumer group coordinated here",
            members
                .iter()
                .map(|(g, n, _)| ([("group", g.as_str())], *n as i64)),
        )?;
        gauge_family(
            encoder,
            "brook_group_state",
            "1 for a consumer group's current state (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead)",
            members
                .iter()
                .map(|(g, _, state)| ([("group", g.as_str()), ("state", *state)], 1i64)),
        )?;
        let mut topic_lag: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for c in &committed {
            if let Some(l) = lag(c) {
                *topic_lag.entry((&c.group, &c.topic)).or_default() += l;
            }
        }
        gauge_family(
            encoder,
            "brook_group_topic_lag",
            "Sum over the topic's partitions of a group's lag",
            topic_lag
                .iter()
                .map(|((g, t), l)| ([("group", *g), ("topic", *t)], *l)),
        )?;
        if self.per_partition {
            let labels = |c: &Committed| {
                [
                    ("group", c.group.clone()),
                    ("topic", c.topic.clone()),
                    ("partition", c.partition.to_string()),
                ]
            };
            gauge_family(
                encoder,
                "brook_group_committed_offset",
                "A group's committed offset in a partition",
                committed.iter().map(|c| (labels(c), c.offset)),
            )?;
            gauge_family(
                encoder,
                "brook_group_lag",
                "High watermark minus the group's committed offset",
                committed
                    .iter()
                    .filter_map(|c| lag(c).map(|l| (labels(c), l))),
            )?;
        }
        Ok(())
    }
}
