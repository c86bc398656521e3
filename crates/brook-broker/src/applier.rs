//! The one task that applies each new metadata image, in the one direction data flows:
//! replicas first (open, lead, follow, close), then the coordinators hosted on internal
//! topics (replay what this broker now leads), then the replica fetchers. Only then is
//! the image published as applied, which is what handlers read and what the controller
//! client waits for.

use std::sync::Arc;

use brook_meta::MetadataImage;
use tokio::sync::watch;

use crate::cluster::fetcher::Fetchers;
use crate::error::ApiError;
use crate::groups::Groups;
use crate::metadata::ImageWatch;
use crate::replicas::Replicas;
use crate::txns::Txns;

pub struct Applier {
    pub replicas: Arc<Replicas>,
    pub groups: Arc<Groups>,
    pub txns: Arc<Txns>,
    pub fetchers: Option<Arc<Fetchers>>,
    pub applied: watch::Sender<Arc<MetadataImage>>,
}

impl Applier {
    /// Applies `image`; `ready` is false while a cluster broker has not caught up with
    /// the controller. Returns the first replica that failed to open, if any (it is
    /// retried with the next image).
    pub async fn apply(&self, image: Arc<MetadataImage>, ready: bool) -> Option<ApiError> {
        let replicas = self.replicas.clone();
        let groups = self.groups.clone();
        let txns = self.txns.clone();
        let for_disk = image.clone();
        // Opening logs and replaying coordinator partitions read the disk.
        let outcome = tokio::task::spawn_blocking(move || {
            let (delta, error) = replicas.apply(&for_disk, ready);
            groups.follow(&for_disk);
            let jobs = txns.follow(&for_disk);
            (delta, error, jobs)
        })
        .await;
        let (delta, error, jobs) = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "applying metadata failed");
                return None;
            }
        };
        if let Some(fetchers) = &self.fetchers {
            fetchers.update(&delta);
        }
        self.txns.spawn_markers(jobs);
        self.applied.send_replace(image);
        error
    }

    /// Applies every committed image, and everything again when readiness changes.
    pub async fn run(
        self: Arc<Self>,
        mut committed: ImageWatch,
        mut ready: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { break },
                changed = ready.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
            }
            let image = committed.borrow_and_update().clone();
            let is_ready = *ready.borrow_and_update();
            if let Some(e) = self.apply(image, is_ready).await {
                tracing::error!(error = %e, "applying metadata");
            }
        }
        if let Some(fetchers) = &self.fetchers {
            fetchers.stop();
        }
    }
}
