//! The state machine: the [`MetadataImage`] that committed entries are applied to, and its
//! snapshots.
//!
//! The image itself lives in memory only; `snapshot.json` (the image plus the last applied
//! log id and membership) is written atomically and fsynced before openraft is told about
//! it, so purging the log entries a snapshot covers never loses them. On restart the image
//! comes from the snapshot and openraft re-applies the committed entries after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use brook_meta::MetadataImage;
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::fsutil::{read_optional, replace_file};
use crate::log_store::{blocking, io_err, StoreError};
use crate::TypeConfig;

const SNAPSHOT: &str = "snapshot.json";

#[derive(Serialize)]
struct SnapshotFileRef<'a> {
    meta: &'a SnapshotMeta<u64, BasicNode>,
    image: &'a MetadataImage,
}

#[derive(Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    image: MetadataImage,
}

/// The snapshot on disk; writes are serialized and never replace a newer snapshot with an
/// older one (a build can race an install).
pub(crate) struct SnapshotStore {
    dir: PathBuf,
    /// Guards every read and write of the file.
    state: tokio::sync::Mutex<OnDisk>,
    seq: AtomicU64,
}

struct OnDisk {
    /// Last log id of the snapshot on disk.
    last: Option<LogId<u64>>,
    /// Set at shutdown: a build still running afterwards must not write.
    closed: bool,
}

impl SnapshotStore {
    fn load(dir: &Path) -> Result<Option<SnapshotFile>, StoreError> {
        let path = dir.join(SNAPSHOT);
        match read_optional(dir, SNAPSHOT).map_err(io_err("reading", &path))? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path,
                        what: e.to_string(),
                    })
            }
        }
    }

    /// Writes a snapshot unless the one on disk is newer (`force` writes regardless).
    async fn write(
        &self,
        meta: SnapshotMeta<u64, BasicNode>,
        image: Arc<MetadataImage>,
        force: bool,
    ) -> Result<(), StoreError> {
        let mut on_disk = self.state.lock().await;
        if on_disk.closed {
            return Err(StoreError::Closed(self.dir.clone()));
        }
        if !force && on_disk.last >= meta.last_log_id {
            tracing::debug!(built = ?meta.last_log_id, on_disk = ?on_disk.last, "a newer snapshot is already on disk");
            return Ok(());
        }
        let dir = self.dir.clone();
        let last = meta.last_log_id;
        blocking(move || {
            let bytes = serde_json::to_vec(&SnapshotFileRef {
                meta: &meta,
                image: &image,
            })
            .map_err(|source| StoreError::Encode {
                what: "snapshot",
                source,
            })?;
            replace_file(&dir, SNAPSHOT, &bytes, true)
                .map_err(io_err("writing", &dir.join(SNAPSHOT)))
        })
        .await?;
        on_disk.last = last;
        Ok(())
    }

    /// Waits for a write in flight, then refuses any further one.
    pub(crate) async fn close(&self) {
        self.state.lock().await.closed = true;
    }

    async fn read(&self) -> Result<Option<SnapshotFile>, StoreError> {
        let _guard = self.state.lock().await;
        let dir = self.dir.clone();
        blocking(move || Self::load(&dir)).await
    }

    fn next_id(&self, last: Option<&LogId<u64>>) -> String {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        match last {
            Some(id) => format!("{}-{}-{millis}-{seq}", id.leader_id, id.index),
            None => format!("none-{millis}-{seq}"),
        }
    }
}

/// openraft's [`RaftStateMachine`] over a [`MetadataImage`].
pub(crate) struct StateMachine {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    image: Arc<MetadataImage>,
    tx: watch::Sender<Arc<MetadataImage>>,
    snapshots: Arc<SnapshotStore>,
}

/// Builds a snapshot of the state as it was when the builder was taken.
pub(crate) struct SnapshotBuilder {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    image: Arc<MetadataImage>,
    snapshots: Arc<SnapshotStore>,
}

fn sm_err(e: StoreError) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

impl StateMachine {
    pub(crate) fn snapshot_store(&self) -> Arc<SnapshotStore> {
        self.snapshots.clone()
    }

    /// Loads the snapshot in `dir`, if any. Blocking.
    pub(crate) fn open(
        dir: &Path,
    ) -> Result<(StateMachine, watch::Receiver<Arc<MetadataImage>>), StoreError> {
        let loaded = SnapshotStore::load(dir)?;
        let (last_applied, membership, image) = match loaded {
            Some(s) => {
                tracing::info!(dir = %dir.display(), snapshot = %s.meta, "loaded metadata snapshot");
                (s.meta.last_log_id, s.meta.last_membership, s.image)
            }
            None => (None, StoredMembership::default(), MetadataImage::default()),
        };
        let image = Arc::new(image);
        let (tx, rx) = watch::channel(image.clone());
        let sm = StateMachine {
            last_applied,
            membership,
            image,
            tx,
            snapshots: Arc::new(SnapshotStore {
                dir: dir.to_path_buf(),
                state: tokio::sync::Mutex::new(OnDisk {
                    last: last_applied,
                    closed: false,
                }),
                seq: AtomicU64::new(0),
            }),
        };
        Ok((sm, rx))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: self.snapshots.next_id(self.last_applied.as_ref()),
        };
        self.snapshots
            .write(meta.clone(), self.image.clone(), false)
            .await
            .map_err(sm_err)?;
        tracing::info!(snapshot = %meta, "built metadata snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new((*self.image).clone()),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut changed: Option<MetadataImage> = None;
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(records) => {
                    // Cheap: the clone shares every topic the batch does not change.
                    let image = changed.get_or_insert_with(|| (*self.image).clone());
                    for record in &records {
                        image.apply(record);
                    }
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            responses.push(());
        }
        if let Some(image) = changed {
            self.image = Arc::new(image);
            self.tx.send_replace(self.image.clone());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            image: self.image.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<MetadataImage>, StorageError<u64>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<MetadataImage>,
    ) -> Result<(), StorageError<u64>> {
        let image = Arc::new(*snapshot);
        self.snapshots
            .write(meta.clone(), image.clone(), true)
            .await
            .map_err(sm_err)?;
        tracing::info!(snapshot = %meta, "installed metadata snapshot from the leader");
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.image = image;
        self.tx.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let loaded = self.snapshots.read().await.map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(None, AnyError::new(&e)))
        })?;
        Ok(loaded.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(s.image),
        }))
    }
}
