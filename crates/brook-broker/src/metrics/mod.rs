//! The broker's Prometheus metrics (`/metrics` on the admin listener).
//!
//! Two kinds, so the request path pays almost nothing:
//! - counted as it happens, through handles resolved once: request time per API key
//!   split as Kafka's RequestMetrics (queue, local, remote, response send, total,
//!   throttle; an array indexed by the key, lock-free histograms of atomics), per-topic
//!   messages and bytes in and out and produce/fetch requests (a map read-locked by
//!   `&str` with a cheap hash, no allocation once a topic has been seen), open
//!   connections per listener;
//! - computed at scrape time from the services' own state ([`StateCollector`]): log
//!   size and offsets per partition, leadership, under-replicated and offline
//!   partitions, consumer groups' committed offsets and lag.
//!
//! Names follow Prometheus conventions: `brook_` prefix, base units in the name,
//! `_total` on counters (added by the encoder). The README maps each to Kafka's JMX name.

mod histogram;
mod quotas;
mod requests;
mod state;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use requests::{RequestFamilies, RequestHistograms, REQUEST_SLOTS};
pub use requests::{RequestTimes, TimedApi};
use state::StateCollector;

use crate::client_quotas::ClientQuotaRates;

use crate::groups::Groups;
use crate::metadata::MetadataView;
use crate::replicas::Replicas;
use crate::shares::Shares;
use crate::traffic::TopicCounters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthenticationLabel {
    listener: String,
    result: &'static str,
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
    topics: RwLock<HashMap<String, Arc<TopicCounters>, BuildHasherDefault<TopicHasher>>>,
    /// Open connections by listener name, one gauge per listener of the plan.
    connections: Vec<(String, Gauge)>,
    connections_family: Family<ListenerLabel, Gauge>,
    authentications: Family<AuthenticationLabel, Counter>,
    /// Requests handled while earlier ones of their connection were unanswered.
    pipelined: Family<ListenerLabel, Counter>,
    metadata: MetadataView,
}

/// Which metrics the broker records, from its settings and listeners.
#[derive(Debug, Clone)]
pub struct MetricsSwitches {
    /// The names of the listeners, each counted in `brook_active_connections`.
    pub listeners: Vec<String>,
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
        shares: Arc<Shares>,
        metadata: MetadataView,
        quotas: Arc<ClientQuotaRates>,
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
        let connections = switches
            .listeners
            .iter()
            .map(|name| {
                let label = ListenerLabel {
                    listener: name.clone(),
                };
                (
                    name.clone(),
                    connections_family.get_or_create(&label).clone(),
                )
            })
            .collect();
        let authentications = Family::<AuthenticationLabel, Counter>::default();
        registry.register(
            "brook_authentications",
            "Authentications by listener and result (success, failure): SASL exchanges and TLS handshakes on Kafka listeners, requests on the admin listener (listener ADMIN)",
            authentications.clone(),
        );
        let pipelined = Family::<ListenerLabel, Counter>::default();
        registry.register(
            "brook_pipelined_requests",
            "Requests a connection started handling while earlier requests of its were still unanswered (waiting for the in-sync replicas, or queued behind such a wait), by listener",
            pipelined.clone(),
        );
        registry.register_collector(Box::new(quotas::QuotaCollector { rates: quotas }));
        registry.register_collector(Box::new(StateCollector {
            replicas,
            groups,
            shares,
            metadata: metadata.clone(),
            per_partition: switches.per_partition,
        }));
        BrokerMetrics {
            registry,
            requests_enabled: switches.requests,
            request_families,
            request_times_by_key: (0..REQUEST_SLOTS).map(|_| OnceLock::new()).collect(),
            topic_families,
            topics: RwLock::default(),
            connections,
            connections_family,
            authentications,
            pipelined,
            metadata,
        }
    }

    /// Whether requests are timed and counted (`metrics.request.enable`): when not,
    /// the connection reads no clocks and the handlers count no per-topic traffic.
    pub fn requests_enabled(&self) -> bool {
        self.requests_enabled
    }

    /// Records where one request's time went.
    #[inline]
    pub fn observe_request(&self, api: TimedApi, times: &RequestTimes) {
        let Some(slot) = api.slot().and_then(|i| self.request_times_by_key.get(i)) else {
            return;
        };
        slot.get_or_init(|| self.request_families.for_api(api))
            .observe(times);
    }

    /// Counts a connection on listener `listener` (its name, `PLAINTEXT`).
    pub fn connection_opened(&self, listener: &str) -> OpenConnection {
        let gauge = match self.connections.iter().find(|(name, _)| name == listener) {
            Some((_, gauge)) => gauge.clone(),
            // Not in the plan the metrics were built with (an embedding's own listener).
            None => self
                .connections_family
                .get_or_create(&ListenerLabel {
                    listener: listener.to_string(),
                })
                .clone(),
        };
        gauge.inc();
        OpenConnection(gauge)
    }

    /// The counter of requests handled on listener `listener` while earlier ones of
    /// their connection were unanswered (a connection resolves it once, when it first
    /// has one).
    pub fn pipelined_requests(&self, listener: &str) -> Counter {
        self.pipelined
            .get_or_create(&ListenerLabel {
                listener: listener.to_string(),
            })
            .clone()
    }

    /// Counts an authentication on listener `listener` that succeeded or failed
    /// (Kafka's `successful-authentication-total` / `failed-authentication-total`).
    pub fn authentication(&self, listener: &str, success: bool) {
        self.authentications
            .get_or_create(&AuthenticationLabel {
                listener: listener.to_string(),
                result: if success { "success" } else { "failure" },
            })
            .inc();
    }

    /// The counters of `topic`, created on its first use; `None` if no such topic
    /// exists (so names a client makes up never become series) or requests are not
    /// counted (`metrics.request.enable=false`).
    #[inline]
    pub fn topic(&self, topic: &str) -> Option<Arc<TopicCounters>> {
        if !self.requests_enabled {
            return None;
        }
        self.find_topic(topic)
    }

    fn find_topic(&self, topic: &str) -> Option<Arc<TopicCounters>> {
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

/// The per-topic map's hasher: eight bytes at a time, each mixed in with a folded
/// multiply (the 128-bit product's halves xored, wyhash's and foldhash's step, so a
/// difference in a word's high bytes reaches the low bits the table indexes by; a
/// plain multiply, FxHash's, only carries upward). A topic name hashes in a few
/// instructions, where SipHash cost more than the counting. It resists no collision
/// attack, and needs not: only topics that exist get an entry, and creating topics is
/// an administrator's act.
#[derive(Default)]
struct TopicHasher(u64);

impl TopicHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(Self::K);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for TopicHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail));
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn topic_names_spread_over_the_table() {
        let hasher = BuildHasherDefault::<TopicHasher>::default();
        let hashes: HashSet<u64> = (0..4096)
            .map(|i| hasher.hash_one(format!("orders-{i}").as_str()))
            .collect();
        assert_eq!(hashes.len(), 4096);
        // hashbrown indexes by the low bits and tags by the top seven: 4096 random
        // hashes fill ~2,590 of 4096 slots, and every tag.
        let slots: HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        assert!(slots.len() > 2_400, "{} slots", slots.len());
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128);
    }
}
