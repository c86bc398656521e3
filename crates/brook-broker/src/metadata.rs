//! `MetadataView`: what this broker knows of the cluster's metadata, as watches of
//! images: the latest committed one (the metadata log's, single-node file or Raft
//! quorum alike) and the latest one this broker has applied to its replicas and
//! coordinators. Handlers read the applied image, so what they answer matches the
//! partitions they find open; the controller client waits on it for its own changes.

use std::sync::Arc;
use std::time::Duration;

use brook_meta::MetadataImage;
use tokio::sync::watch;

pub type ImageWatch = watch::Receiver<Arc<MetadataImage>>;

#[derive(Clone)]
pub struct MetadataView {
    committed: ImageWatch,
    applied: ImageWatch,
    quorum: Option<Arc<brook_raft::Quorum>>,
    node_id: i32,
    advertised: (String, u16),
}

impl MetadataView {
    pub fn new(
        committed: ImageWatch,
        applied: ImageWatch,
        quorum: Option<Arc<brook_raft::Quorum>>,
        node_id: i32,
        advertised: (String, u16),
    ) -> Self {
        MetadataView {
            committed,
            applied,
            quorum,
            node_id,
            advertised,
        }
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
        let (host, port) = &self.advertised;
        vec![(self.node_id, host.clone(), i32::from(*port))]
    }

    /// `(host, port)` of a live broker, for coordinators and leaders.
    pub fn broker_address(&self, id: i32) -> Option<(String, i32)> {
        if !self.is_cluster() {
            return (id == self.node_id)
                .then(|| (self.advertised.0.clone(), i32::from(self.advertised.1)));
        }
        self.image()
            .brokers
            .get(&id)
            .filter(|b| !b.fenced)
            .map(|b| (b.host.clone(), b.port))
    }

    /// The active controller (quorum leader), -1 if there is none right now.
    pub fn controller_id(&self) -> i32 {
        match &self.quorum {
            None => self.node_id,
            Some(q) => q.leader().map_or(-1, |l| l as i32),
        }
    }
}
