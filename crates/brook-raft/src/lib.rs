//! Brook's cluster-metadata quorum: [`MetadataRecord`]s replicated through Raft
//! ([`openraft`] 0.9) and applied, in commit order, to a [`MetadataImage`] on every voter.
//!
//! One [`Quorum::append`] is one log entry, applied atomically. The broker supplies the
//! network ([`Transport`] on the client side, [`Quorum::handle`] on the server side); this
//! crate owns durability. Everything lives in [`QuorumConfig::dir`]:
//!
//! - `vote.json` — the vote, replaced atomically and fsynced (file, then directory) before
//!   openraft learns it is saved.
//! - `entries.log` — log entries as length + CRC-32C framed JSON, fsynced before openraft's
//!   log-flushed callback, so nothing is acknowledged to a leader before it is on disk. On
//!   open, the first frame that fails its length or CRC check ends the log (a crash's torn
//!   tail is cut, with a warning); a frame that passes its CRC but does not decode, or breaks
//!   index order, refuses to open.
//! - `snapshot.json` — the image plus the last applied log id and membership, written
//!   atomically and fsynced. Snapshots are taken every
//!   [`QuorumTuning::snapshot_every_entries`] applied entries, and only then are older
//!   entries purged.
//! - `committed.json` — the last committed log id, a hint (not fsynced) so that a restarted
//!   node re-applies committed entries without waiting for the next commit.
//!
//! On restart the image is the snapshot's, plus the committed entries after it re-applied.
//! Every length read from disk is checked before it is trusted (entries are capped at
//! 16 MiB); RPC payloads are JSON, parsed without trusting any length in them, so bounding
//! their size is the broker transport's job (an AppendEntries carries up to 300 entries; a
//! snapshot is the whole image). Bad input — a garbage RPC payload, a damaged file — is an
//! error, never a panic.
//!
//! An `append` that fails with [`QuorumError::NotLeader`] after the entry was proposed (the
//! leader stepped down meanwhile) may still commit under the next leader: as with any Raft
//! client, records must be safe to retry or checked against the image.

mod fsutil;
mod log_store;
mod network;
mod state_machine;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_meta::{MetadataImage, MetadataRecord};
use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use tokio::sync::watch;

pub use log_store::StoreError;

use log_store::{LogCloser, LogStore};
use network::Network;
use state_machine::{SnapshotStore, StateMachine};

openraft::declare_raft_types!(
    /// openraft types for the metadata quorum: an entry's data is one append's records.
    pub(crate) TypeConfig:
        D = Vec<MetadataRecord>,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = MetadataImage,
);

/// Largest encoded record batch one [`Quorum::append`] may carry (room is left for the
/// entry's envelope under the 16 MiB frame limit).
pub const MAX_APPEND_BYTES: usize = log_store::MAX_FRAME - 64 * 1024;

/// Where and how one node of the quorum runs.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: u64,
    /// Every voter: id -> address string. Opaque to this crate; handed back to
    /// [`Transport::send`].
    pub voters: BTreeMap<u64, String>,
    /// Directory for durable raft state (vote, log entries, snapshot). Created if missing.
    pub dir: PathBuf,
    /// How often the leader sends heartbeats, e.g. 100.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time in this range starts an election,
    /// e.g. 500..1000. Must be above the heartbeat interval.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

/// Less common knobs; [`Quorum::start`] uses the defaults.
#[derive(Debug, Clone)]
pub struct QuorumTuning {
    /// Build a snapshot after this many entries applied since the last one (default 1000).
    pub snapshot_every_entries: u64,
    /// Entries kept in the log after a snapshot, so lagging followers can catch up without
    /// one (default 1000).
    pub keep_entries_after_snapshot: u64,
}

impl Default for QuorumTuning {
    fn default() -> Self {
        QuorumTuning {
            snapshot_every_entries: 1000,
            keep_entries_after_snapshot: 1000,
        }
    }
}

/// How raft RPCs reach another node; the broker implements it over TCP.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Delivers `payload` to node `target` at `addr`, which passes it to its
    /// [`Quorum::handle`], and returns the bytes that produced. Should give up after a few
    /// seconds at most: openraft times its RPCs out too.
    async fn send(
        &self,
        target: u64,
        addr: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, std::io::Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("this node is not the metadata leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("raft storage: {0}")]
    Store(#[from] StoreError),
    #[error("{context}: {message}")]
    Raft { context: String, message: String },
    #[error("invalid quorum config: {0}")]
    Config(String),
    #[error("{records} records encode to {bytes} bytes, over the {MAX_APPEND_BYTES}-byte limit of one append")]
    TooLarge { records: usize, bytes: usize },
    #[error("the metadata quorum is shutting down")]
    ShuttingDown,
}

impl QuorumError {
    fn raft(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        QuorumError::Raft {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// One running node of the metadata quorum. Cheap to share behind an `Arc`.
pub struct Quorum {
    id: u64,
    raft: Raft<TypeConfig>,
    image: watch::Receiver<Arc<MetadataImage>>,
    leader: watch::Receiver<Option<u64>>,
    stopping: AtomicBool,
    log_closer: LogCloser,
    snapshots: Arc<SnapshotStore>,
}

impl Quorum {
    /// Opens durable state, starts openraft, and if the log is brand new initializes the
    /// cluster membership with all voters (safe on every node: "already initialized" is
    /// ignored).
    pub async fn start(
        config: QuorumConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Quorum, QuorumError> {
        Self::start_with_tuning(config, transport, QuorumTuning::default()).await
    }

    /// [`Quorum::start`] with non-default [`QuorumTuning`].
    pub async fn start_with_tuning(
        config: QuorumConfig,
        transport: Arc<dyn Transport>,
        tuning: QuorumTuning,
    ) -> Result<Quorum, QuorumError> {
        let id = config.node_id;
        if !config.voters.contains_key(&id) {
            return Err(QuorumError::Config(format!(
                "node {id} is not among the voters {:?}",
                config.voters.keys().collect::<Vec<_>>()
            )));
        }
        let raft_config = openraft::Config {
            cluster_name: "brook-metadata".to_string(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every_entries.max(1)),
            max_in_snapshot_log_to_keep: tuning.keep_entries_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;

        let dir = config.dir.clone();
        let (log_store, (state_machine, image)) =
            log_store::blocking(move || Ok((LogStore::open(&dir)?, StateMachine::open(&dir)?)))
                .await?;

        let log_closer = log_store.closer();
        let snapshots = state_machine.snapshot_store();
        let network = Network {
            transport,
            voters: Arc::new(config.voters.clone()),
            backoff: Duration::from_millis(config.heartbeat_interval_ms.saturating_mul(2).max(1)),
            reachable: Default::default(),
        };
        let raft = Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| QuorumError::raft(format!("starting raft node {id}"), e))?;

        let leader = spawn_leader_watch(&raft);
        let quorum = Quorum {
            id,
            raft,
            image,
            leader,
            stopping: AtomicBool::new(false),
            log_closer,
            snapshots,
        };
        if let Err(e) = quorum.initialize(&config.voters).await {
            quorum.shutdown().await;
            return Err(e);
        }
        tracing::info!(node = id, dir = %config.dir.display(), "metadata quorum started");
        Ok(quorum)
    }

    /// Writes the initial membership if the log is brand new.
    async fn initialize(&self, voters: &BTreeMap<u64, String>) -> Result<(), QuorumError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::raft("reading raft state", e))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<u64, BasicNode> = voters
            .iter()
            .map(|(&voter, addr)| (voter, BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(node = self.id, ?voters, "initialized metadata quorum");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                tracing::debug!(node = self.id, error = %e, "metadata quorum already initialized");
                Ok(())
            }
            Err(e) => Err(QuorumError::raft("initializing the metadata quorum", e)),
        }
    }

    /// Server side: answers a payload that another node's [`Transport::send`] produced.
    /// A payload that does not decode gets an encoded rejection, never a panic.
    pub async fn handle(&self, payload: &[u8]) -> Vec<u8> {
        network::serve(&self.raft, self.id, payload).await
    }

    /// Appends records through the quorum as one entry. Returns once the entry is committed
    /// on a majority and applied to this node's image.
    pub async fn append(&self, records: Vec<MetadataRecord>) -> Result<(), QuorumError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(QuorumError::ShuttingDown);
        }
        let bytes = serde_json::to_vec(&records)
            .map_err(|e| QuorumError::raft("encoding metadata records", e))?
            .len();
        if bytes > MAX_APPEND_BYTES {
            return Err(QuorumError::TooLarge {
                records: records.len(),
                bytes,
            });
        }
        let n = records.len();
        match self.raft.client_write(records).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(QuorumError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::Fatal(Fatal::Stopped)) => Err(QuorumError::ShuttingDown),
            Err(e) => Err(QuorumError::raft(
                format!("appending {n} metadata records on node {}", self.id),
                e,
            )),
        }
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// Changes to the applied image: a new `Arc` after each applied batch of entries that
    /// carried records, or an installed snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Leader changes as this node sees them; `None` while there is none (or after shutdown).
    pub fn leader_watch(&self) -> watch::Receiver<Option<u64>> {
        self.leader.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.id
    }

    /// Stops raft on this node and waits for its file I/O to finish: once this returns, the
    /// directory can be opened again (even in the same process). Idempotent; `append`
    /// afterwards fails with `ShuttingDown`. A `Quorum` dropped without it keeps running.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node = self.id, error = %e, "raft task ended badly");
        }
        self.log_closer.close().await;
        self.snapshots.close().await;
        tracing::info!(node = self.id, "metadata quorum stopped");
    }
}

/// Forwards `current_leader` from openraft's metrics into a watch of its own.
fn spawn_leader_watch(raft: &Raft<TypeConfig>) -> watch::Receiver<Option<u64>> {
    let mut metrics = raft.metrics();
    let (tx, rx) = watch::channel(metrics.borrow().current_leader);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        tx.send_replace(None);
                        return;
                    }
                }
                () = tx.closed() => return,
            }
            let leader = metrics.borrow_and_update().current_leader;
            tx.send_if_modified(|current| {
                let modified = *current != leader;
                *current = leader;
                modified
            });
        }
    });
    rx
}
