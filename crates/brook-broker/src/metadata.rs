//! `MetadataView`: what this broker knows of the cluster's metadata, as watches of
//! images: the latest committed one (the metadata log's, single-node file or Raft
//! quorum alike) and the latest one this broker has applied to its replicas and
//! coordinators. Handlers read the applied image, so what they answer matches the
//! partitions they find open; the controller client waits on it for its own changes.

use std::sync::Arc;
use std::time::Duration;

use brook_meta::{BrokerEndpoint, MetadataImage};
use tokio::sync::watch;

pub type ImageWatch = watch::Receiver<Arc<MetadataImage>>;

#[derive(Clone)]
pub struct MetadataView {
    committed: ImageWatch,
    applied: ImageWatch,
    quorum: Option<Arc<brook_raft::Quorum>>,
    node_id: i32,
    /// This broker's client listeners' advertised endpoints, the first one the default.
    endpoints: Arc<Vec<BrokerEndpoint>>,
    /// This broker's `broker.rack` (a cluster's brokers report theirs in the image).
    rack: Option<String>,
}

/// A broker as Metadata and DescribeCluster describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl MetadataView {
    pub fn new(
        committed: ImageWatch,
        applied: ImageWatch,
        quorum: Option<Arc<brook_raft::Quorum>>,
        node_id: i32,
        endpoints: Vec<BrokerEndpoint>,
    ) -> Self {
        MetadataView {
            committed,
            applied,
            quorum,
            node_id,
            endpoints: Arc::new(endpoints),
            rack: None,
        }
    }

    /// This broker's `broker.rack`.
    pub fn with_rack(mut self, rack: Option<String>) -> Self {
        self.rack = rack;
        self
    }

    /// The image this broker's replicas and coordinators reflect.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.borrow().clone()
    }

    /// The newest image the metadata log holds (it may not be applied yet).
    pub fn committed(&self) -> Arc<MetadataImage> {
        self.committed.borrow().clone()
    }

    /// A watch of committed images (the applier follows it).
    pub fn subscribe_committed(&self) -> ImageWatch {
        self.committed.clone()
    }

    /// Waits until an applied image satisfies `done`, at most `timeout`; returns whether
    /// one did.
    pub async fn wait_applied(
        &self,
        timeout: Duration,
        done: impl FnMut(&Arc<MetadataImage>) -> bool,
    ) -> bool {
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout(timeout, applied.wait_for(done)).await;
        matches!(waited, Ok(Ok(_)))
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn is_cluster(&self) -> bool {
        self.quorum.is_some()
    }

    /// Brokers clients of listener `listener` may connect to: `(id, host, port)`, each
    /// broker's endpoint on that listener (Kafka: a client sees the addresses of the
    /// listener it connected to). A single broker lists itself; a cluster lists every
    /// registered broker that is not fenced and has that listener.
    /// The live brokers' endpoints on `listener`: id, host, port and rack.
    pub fn brokers(&self, listener: &str) -> Vec<BrokerAddress> {
        if self.is_cluster() {
            return self
                .image()
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter_map(|b| {
                    let (host, port) = b.endpoint(listener)?;
                    Some(BrokerAddress {
                        id: b.id,
                        host: host.to_string(),
                        port,
                        rack: b.rack.clone(),
                    })
                })
                .collect();
        }
        let (host, port) = self.own_endpoint(listener);
        vec![BrokerAddress {
            id: self.node_id,
            host,
            port,
            rack: self.rack.clone(),
        }]
    }

    /// How many brokers are live (unfenced; this one on a single broker).
    pub fn live_brokers(&self) -> usize {
        if !self.is_cluster() {
            return 1;
        }
        self.image().brokers.values().filter(|b| !b.fenced).count()
    }

    /// The first client listener's name: what the admin API answers as.
    pub fn client_listener(&self) -> String {
        self.endpoints
            .first()
            .map(|e| e.listener.clone())
            .unwrap_or_else(|| "PLAINTEXT".to_string())
    }

    /// This broker's endpoint on `listener`; a request on a listener that is not
    /// advertised (the controller listener) gets the first client listener's.
    fn own_endpoint(&self, listener: &str) -> (String, i32) {
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .or(self.endpoints.first())
            .map(|e| (e.host.clone(), e.port))
            .unwrap_or_default()
    }

    /// `(host, port)` of a live broker on `listener`, for coordinators and leaders.
    pub fn broker_address(&self, id: i32, listener: &str) -> Option<(String, i32)> {
        if !self.is_cluster() {
            return (id == self.node_id).then(|| self.own_endpoint(listener));
        }
        self.image()
            .brokers
            .get(&id)
            .filter(|b| !b.fenced)
            .and_then(|b| b.endpoint(listener))
            .map(|(host, port)| (host.to_string(), port))
    }

    /// The active controller (quorum leader), -1 if there is none right now.
    pub fn controller_id(&self) -> i32 {
        match &self.quorum {
            None => self.node_id,
            Some(q) => q.leader().map_or(-1, |l| l as i32),
        }
    }

    /// The controller Metadata names to clients: the active controller, or while this
    /// node knows of none (an election), this broker, which takes admin requests and
    /// hands them to the quorum once it has a leader. With -1, librdkafka's admin
    /// client waits for a controller until its request times out, though any broker
    /// would serve it (Kafka's KRaft brokers name a live broker here too).
    pub fn controller_id_for_clients(&self) -> i32 {
        match self.controller_id() {
            -1 => self.node_id,
            id => id,
        }
    }
}
