//! `GET /cluster` (brokers, controller, partition health, from the applied metadata
//! image) and `GET /stats` (traffic counters for the console's throughput chart).

use axum::extract::{ConnectInfo, State as Extract};
use axum::response::Response;
use brook_meta::{MetadataImage, ResourceType};
use serde::Serialize;

use super::{ok, ApiFailure, Kafka, State};
use crate::access::Op;
use crate::admin_http::limits::PeerAddr;
use crate::clock::now_ms;

#[derive(Debug, Serialize, PartialEq)]
pub struct Cluster {
    pub cluster_id: String,
    /// The broker answering.
    pub node_id: i32,
    /// -1 when there is none (a cluster between elections).
    pub controller_id: i32,
    /// `single` (one broker, metadata in a file) or `cluster` (a Raft quorum).
    pub mode: &'static str,
    pub version: &'static str,
    pub brokers: Vec<Broker>,
    pub topics: usize,
    pub partitions: usize,
    /// Cluster-wide, as this broker's metadata shows: ISR smaller than the replicas.
    pub under_replicated_partitions: usize,
    /// Cluster-wide: no leader.
    pub offline_partitions: usize,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    /// Its `broker.rack`; null when unset, as Kafka reports it.
    pub rack: Option<String>,
    pub fenced: bool,
}

pub async fn describe(Extract(state): Extract<State>) -> Result<Response, ApiFailure> {
    let meta = &state.metadata;
    let image = meta.image();
    let brokers = meta
        .brokers(&meta.client_listener())
        .into_iter()
        .map(|b| Broker {
            fenced: image.brokers.get(&b.id).is_some_and(|i| i.fenced),
            id: b.id,
            host: b.host,
            port: b.port,
            rack: b.rack,
        })
        .collect();
    ok(&cluster(
        &image,
        meta.node_id(),
        meta.controller_id(),
        meta.is_cluster(),
        brokers,
    ))
}

fn cluster(
    image: &MetadataImage,
    node_id: i32,
    controller_id: i32,
    is_cluster: bool,
    brokers: Vec<Broker>,
) -> Cluster {
    let (mut partitions, mut under_replicated, mut offline) = (0, 0, 0);
    for topic in image.topics.values() {
        for p in &topic.partitions {
            partitions += 1;
            if p.leader < 0 {
                offline += 1;
            }
            if p.isr.len() < p.replicas.len() {
                under_replicated += 1;
            }
        }
    }
    Cluster {
        cluster_id: image.cluster_id.clone(),
        node_id,
        controller_id,
        mode: if is_cluster { "cluster" } else { "single" },
        version: env!("CARGO_PKG_VERSION"),
        brokers,
        topics: image.topics.len(),
        partitions,
        under_replicated_partitions: under_replicated,
        offline_partitions: offline,
    }
}

/// Counters since the broker started (they only grow, except that a deleted topic's
/// leave the sums); the console samples them and plots the differences.
#[derive(Debug, Serialize)]
struct Stats {
    time_ms: i64,
    messages_in: u64,
    bytes_in: u64,
    bytes_out: u64,
    topics: Vec<TopicStats>,
}

#[derive(Debug, Serialize)]
struct TopicStats {
    topic: String,
    messages_in: u64,
    bytes_in: u64,
    bytes_out: u64,
}

pub async fn stats(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
) -> Result<Response, ApiFailure> {
    let image = state.metadata.image();
    let k = Kafka::new(&state, peer);
    // The totals and topics the caller may DESCRIBE.
    let traffic: Vec<_> = state
        .metrics
        .traffic()
        .into_iter()
        .filter(|t| k.may(&image, Op::Describe, ResourceType::Topic, &t.topic))
        .collect();
    let stats = Stats {
        time_ms: now_ms(),
        messages_in: traffic.iter().map(|t| t.messages_in).sum(),
        bytes_in: traffic.iter().map(|t| t.bytes_in).sum(),
        bytes_out: traffic.iter().map(|t| t.bytes_out).sum(),
        topics: traffic
            .into_iter()
            .map(|t| TopicStats {
                topic: t.topic,
                messages_in: t.messages_in,
                bytes_in: t.bytes_in,
                bytes_out: t.bytes_out,
            })
            .collect(),
    };
    ok(&stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_cluster_has_the_json_shape_the_console_reads() {
        let image = MetadataImage::default();
        let c = cluster(&image, 1, 1, false, vec![]);
        let v = serde_json::to_value(&c).unwrap();
        for key in [
            "cluster_id",
            "node_id",
            "controller_id",
            "mode",
            "version",
            "brokers",
            "topics",
            "partitions",
            "under_replicated_partitions",
            "offline_partitions",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["mode"], "single");
        let b = Broker {
            id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
            fenced: false,
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"id": 1, "host": "h", "port": 9092, "rack": null, "fenced": false})
        );
    }
}
