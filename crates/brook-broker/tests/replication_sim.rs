//! A deterministic, seeded simulation of Brook's partition replication and controller.
//!
//! # What is simulated
//!
//! Three brokers (ids 1, 2, 3) each hold a replica of partition 0 of topic `t`
//! (replication factor 3, `min.insync.replicas=2`), each in its own temporary
//! directory. A simulated clock (no real time), one seeded [`StdRng`] and a random
//! schedule drive, step by step: `acks=all` produce requests, replica fetches, ISR
//! checks and AlterIsr requests, metadata propagation, heartbeats and session expiry,
//! crashes (`kill -9` or clean shutdown) and restarts, network partitions that cut one
//! broker off from every other node and from the controller, controller outages (the
//! metadata quorum electing a new leader), preferred leader elections, and clock
//! advances. At most one of these faults is in effect at a time, so a majority
//! always remains. Timeouts are drawn per seed (replica lag 0.3-3 s, session 0.6-3 s).
//!
//! # What is real code
//!
//! - [`Partition`] (and through it `brook_log::Log` on real files): `open`,
//!   `apply_leadership`, `append`, `wait_replicated` (polled once after every step to
//!   learn whether the client has its acknowledgement), `follower_position`,
//!   `follower_fetch`, `append_replicated`, `truncate_diverging`, `reset_to`,
//!   `isr_change`, `isr_change_done`, `read`, `close`.
//! - The broker's decisions, from `brook_broker::decisions` (the functions its loops and
//!   handlers call; nothing here re-implements them):
//!   - the controller: `decide` (what `ControllerClient` runs on the quorum leader for
//!     `BrokerHeartbeat`, `FenceBroker`, `AlterIsr` and `ElectPreferred`, with the
//!     error codes it answers), whose records are applied with `MetadataImage::apply`
//!     to the controller's image, the single source of truth; `expired_brokers`
//!     (session expiry), `reset_liveness` (a new controller), `CONTROLLER_DEADLINE`;
//!   - liveness: `caught_up` (readiness);
//!   - the replica fetcher: `fetch_target` (whom to fetch from), `fetch_request` (what
//!     to ask for, and the epoch the answer applies in), `apply_fetched` (append,
//!     truncate or reset);
//!   - the ISR loop: `check_interval_ms`, `isr_outcome` (refusals and timeouts).
//! - Record batches from `brook_protocol::records::encode_batch`.
//!
//! # What is modelled (after the code named)
//!
//! - Metadata propagation (`applier.rs`, `Replicas::apply`): each broker has its own copy of
//!   the image; one that can hear the quorum catches up at a random point before the
//!   clock next moves; one cut off gets nothing. A broker that has not caught up with
//!   the controller since it (re)started applies its view with `leader = NO_LEADER`.
//! - Heartbeats and readiness (`cluster/liveness.rs`): a broker that can reach the
//!   controller heartbeats every session/4 (its timing is the model's); the controller
//!   notes it and answers with `decide`; the broker becomes ready when `caught_up`
//!   says so; the controller checks `expired_brokers` whenever the clock moves.
//! - The replica fetcher (`cluster/fetcher.rs` `fetch_loop`: the request from
//!   `fetch_request`, the answer through `apply_fetched`, then the owed fsync) and the
//!   leader's side (`handlers/fetch.rs` `read_partition` for a replica: the same
//!   `follower_fetch` call and `PartitionData` fields). A response may stay in flight; its
//!   bytes are read from the leader's segment file when it is answered or when it is
//!   delivered (as `sendfile(2)` would). When the follower's metadata moves its fetcher
//!   to another leader, an in-flight response is dropped, or one time in ten applied
//!   right after `apply_leadership` (the task abort races with `apply_fetched`).
//! - The ISR loop (`cluster/isr.rs`): every `decisions::check_interval_ms` ms the
//!   leader calls `isr_change` and sends what it returns. Requests from one broker
//!   reach the controller in order, before the clock next moves, unless the sender is
//!   cut off or the controller is down: then they wait, and the sender gives up after
//!   `CONTROLLER_DEADLINE` (against the default `broker.session.timeout.ms`, scaled
//!   with the session timeout) and reports what `isr_outcome` makes of
//!   REQUEST_TIMED_OUT (the request is sent again). After a successful answer the
//!   sender's image catches up (the task waits up to 3 s for it); every answer is
//!   reported with `isr_change_done`, a refusal through `isr_outcome`. A request
//!   carries its sender's process incarnation.
//! - The produce handler: `min.insync.replicas` from the topic config; a request times
//!   out after 30 s; a client of a broker that crashes gets no acknowledgement.
//! - A crash is `kill -9`: the `Partition` is dropped without `close()`. Brook's log
//!   writes each batch with `pwrite(2)` before `append` returns and keeps no
//!   user-space buffer (no `Drop` impl flushes or writes anything), so what a killed
//!   process wrote is in the page cache and survives it; dropping the object (closing
//!   the files, writing no index, checkpoint or clean-shutdown marker) is what the
//!   kernel does when the process dies. OS crashes and power loss, which can lose the
//!   unflushed tail, are not simulated; that is also why the logs go to `/dev/shm`
//!   when it exists (fsync costs time and buys nothing here).
//!
//! # Invariants
//!
//! After every step:
//! - every acknowledged record is at its offset, with its value, in the log of the
//!   controller's leader and of every replica in the controller's ISR;
//! - no offset is acknowledged with two values, no value at two offsets;
//! - a leader's high watermark never goes back while it leads in the same epoch; every
//!   replica's high watermark is within its log; the leader is live and in the ISR;
//!   the ISR is non-empty, without duplicates and within the replicas; the leader
//!   epoch never goes back.
//!
//! At the end of each seed everything is healed and restarted, replication must
//! converge (full ISR, every log at the leader's high watermark, within 300 rounds of
//! up to 150 ms), and the three logs must be identical and hold every acknowledged
//! record; then every broker is killed or shut down, restarted, and the same is checked
//! again.
//!
//! # Running and replaying
//!
//! ```text
//! cargo test --release -p brook-broker --test replication_sim
//! BROOK_SIM_SEEDS=5000 cargo test --release -p brook-broker --test replication_sim
//! BROOK_SIM_SEED=17 cargo test --release -p brook-broker --test replication_sim -- --nocapture
//! ```
//!
//! - `BROOK_SIM_SEEDS=n` runs seeds `0..n` (default 1000), `BROOK_SIM_SEED=s` only `s`;
//! - `BROOK_SIM_STEPS` random steps per seed (default 600); a seed's first `k` steps
//!   are the same whatever the total, so a smaller value shortens a failing schedule;
//! - `BROOK_SIM_TRACE_STEPS` how many steps a failure report shows (default 30);
//! - `BROOK_SIM_KEEP_GOING=1` runs every seed and lists every failure;
//! - `BROOK_SIM_DIGEST=1` prints, for every passing seed, its stats and a hash of its
//!   whole trace (every step's events), to check that a refactoring changed nothing;
//! - `BROOK_SIM_THREADS` worker threads (default: available parallelism);
//! - `BROOK_SIM_DIR` where the logs go (default `/dev/shm` if present, else `$TMPDIR`);
//! - `BROOK_SIM_LEADER_ONLY=1` checks acknowledged records on the leader only, so a
//!   failure means an acknowledged record is really gone, not just missing from an
//!   ISR member that could be elected;
//! - `BROOK_SIM_STRICT_MIN_ISR=1` also fails when a record is acknowledged while fewer
//!   than `min.insync.replicas` logs hold it (Kafka answers
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND then); by default that is only counted;
//! - `BROOK_SIM_REORDER_ISR=1` lets one broker's AlterIsr requests reach the
//!   controller in any order (retries racing each other).
//!
//! A failure names the seed, the invariant, the state of every broker and the last
//! steps; the lowest failing seed is reported.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use brook_broker::config::{BrokerConfig, BrokerSettings, TopicConfig};
use brook_broker::decisions::{self, ControllerReply, ControllerRequest, Fetched, IsrItem};
use brook_broker::partition::{
    AppendError, Appended, FollowerRead, IsrChange, IsrOutcome, Partition,
};
use brook_log::ReadSlice;
use brook_meta::{MetadataImage, MetadataRecord, PartitionImage, NO_LEADER};
use brook_protocol::batch::Compression;
use brook_protocol::records::{decode_batches, encode_batch, Record};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::PartitionData;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOPIC: &str = "t";
const PARTITION: i32 = 0;
const BROKER_IDS: [i32; 3] = [1, 2, 3];
const MIN_INSYNC_REPLICAS: &str = "2";
const HOST: &str = "127.0.0.1";
const SIM_START_MS: i64 = 1_700_000_000_000;
/// How long a producer waits for an acks=all answer.
const PRODUCE_TIMEOUT_MS: i64 = 30_000;
/// Bytes per read when the simulation reads a whole log back.
const READ_CHUNK_BYTES: usize = 1024 * 1024;

const DEFAULT_SEEDS: u64 = 1000;
const DEFAULT_STEPS: usize = 600;
/// Steps shown when an invariant fails (`BROOK_SIM_TRACE_STEPS` overrides it).
const TRACE_STEPS: usize = 30;
/// Rounds the end-of-seed phases get to converge.
const CONVERGE_ROUNDS: usize = 300;
/// Every this many steps the cached copies of the logs are compared with a full read.
const FULL_VERIFY_EVERY: usize = 50;

#[derive(Debug, Clone, Copy)]
enum Action {
    Produce,
    Replicate,
    IsrCheck,
    DeliverIsr,
    SyncMetadata,
    AdvanceClock,
    Crash,
    Restart,
    Isolate,
    Heal,
    PreferredElection,
    ControllerOutage,
    ControllerRecovery,
}

/// Relative weights of the random steps.
const ACTIONS: &[(Action, u32)] = &[
    (Action::Produce, 200),
    (Action::Replicate, 300),
    (Action::IsrCheck, 80),
    (Action::DeliverIsr, 50),
    (Action::SyncMetadata, 80),
    (Action::AdvanceClock, 200),
    (Action::Crash, 10),
    (Action::Restart, 15),
    (Action::Isolate, 10),
    (Action::Heal, 15),
    (Action::PreferredElection, 5),
    (Action::ControllerOutage, 6),
    (Action::ControllerRecovery, 15),
];

/// Timeouts drawn per seed, so that seeds explore different ratios.
#[derive(Debug, Clone, Copy)]
struct Timing {
    replica_lag_max_ms: i64,
    session_timeout_ms: i64,
    heartbeat_interval_ms: i64,
    /// How long a broker retries a controller request (`controller_client.rs` CONTROLLER_DEADLINE,
    /// 5 s against a 9 s session timeout by default: scaled the same way).
    controller_deadline_ms: i64,
    /// `isr_loop`'s tick: `replica.lag.time.max.ms / 4`, clamped to 50..=1000 ms.
    isr_check_interval_ms: i64,
}

/// One broker process (or its directory, while it is down).
struct Broker {
    id: i32,
    dir: PathBuf,
    /// `None` while the process is down (an `Arc` as in `Replicas`, which the real
    /// `fetch_request` takes).
    partition: Option<Arc<Partition>>,
    /// Bumped on every restart: replies addressed to an earlier process are lost.
    incarnation: u32,
    /// `Cluster::ready`: heartbeated and caught up with the controller since it started.
    ready: bool,
    /// The metadata this broker has applied (its copy of the quorum's image).
    image: MetadataImage,
    /// Cut off from every other broker and from the controller.
    isolated: bool,
    next_heartbeat_ms: i64,
    /// `isr_loop` runs once per `isr_check_interval_ms`.
    next_isr_check_ms: i64,
    /// The record values of its log by offset, as last read back (also while it is
    /// down: then it is what its directory holds).
    mirror: Vec<Bytes>,
    /// The log may have changed other than by appending: read it all again.
    mirror_stale: bool,
}

impl Broker {
    fn is_up(&self) -> bool {
        self.partition.is_some()
    }

    fn reachable(&self) -> bool {
        self.partition.is_some() && !self.isolated
    }

    fn partition(&self) -> &Partition {
        self.partition
            .as_ref()
            .expect("the caller checked that the broker is up")
    }

    fn view(&self) -> Option<&PartitionImage> {
        self.image.partition(TOPIC, PARTITION)
    }
}

/// What the active controller keeps beside the image.
struct Controller {
    /// False while no node is the active controller (the metadata quorum is electing
    /// a leader): heartbeats, AlterIsr requests and session expiry all wait.
    up: bool,
    image: MetadataImage,
    /// When each broker last heartbeated (`ControllerClient`'s liveness map).
    last_heard: HashMap<i32, i64>,
    /// The broker settings `decide` reads (the defaults).
    settings: BrokerSettings,
}

/// A controller refusal: the error code and message of the broker's `ApiError`.
type Refusal = (i16, String);

impl Controller {
    /// The controller's real decision (`decisions::decide`, as `ControllerClient` runs
    /// it on the quorum leader) on `req` against its image: the records to append and
    /// the reply.
    fn decide(
        &self,
        req: &ControllerRequest,
    ) -> Result<(Vec<MetadataRecord>, ControllerReply), Refusal> {
        decisions::decide(&self.settings, &self.image, true, req).map_err(|e| (e.code, e.message))
    }
}

/// An acks=all produce request waiting for the high watermark.
struct PendingAck {
    broker: i32,
    incarnation: u32,
    sent_ms: i64,
    appended: Appended,
    values: Vec<Bytes>,
}

/// The records of a replica fetch response.
enum FetchedRecords {
    Empty,
    /// Read when the leader answered.
    Read(Bytes),
    /// Read when the response is delivered (the file range goes out with sendfile).
    Unread(ReadSlice),
}

/// One partition of a replica fetch response: the `PartitionData` as
/// `handlers/fetch.rs` fills it for a replica, with its records still apart (as the
/// connection sends them after the rest of the response).
struct FetchedPartition {
    data: PartitionData,
    records: FetchedRecords,
}

impl FetchedPartition {
    fn summary(&self) -> String {
        let d = &self.data;
        if d.error_code != 0 {
            format!("error {}", d.error_code)
        } else if d.diverging_epoch.epoch >= 0 || d.diverging_epoch.end_offset >= 0 {
            format!(
                "diverging epoch {} end {}",
                d.diverging_epoch.epoch, d.diverging_epoch.end_offset
            )
        } else {
            format!("records, hw {}", d.high_watermark)
        }
    }

    /// The `PartitionData` as it reaches the follower, with its records (a file range
    /// is read now).
    fn receive(mut self) -> std::io::Result<PartitionData> {
        match self.records {
            FetchedRecords::Empty => {}
            FetchedRecords::Read(bytes) => self.data.records = Some(bytes),
            FetchedRecords::Unread(slice) => self.data.records = Some(slice.read_bytes()?),
        }
        Ok(self.data)
    }
}

/// A replica fetch answered by the leader and not yet applied by the follower.
struct InFlightFetch {
    follower: i32,
    incarnation: u32,
    leader: i32,
    /// The follower's leader epoch when it sent the fetch.
    fetched_epoch: i32,
    response: FetchedPartition,
}

/// An AlterIsr request on its way to (or being retried against) the controller.
struct InFlightIsr {
    sender: i32,
    incarnation: u32,
    sent_ms: i64,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
}

/// The controller's answer to an AlterIsr request, on its way back.
struct IsrReply {
    sender: i32,
    incarnation: u32,
    /// When the request was sent: the sender gives up at the controller deadline.
    sent_ms: i64,
    /// The controller's answer, as `decisions::isr_outcome` maps it.
    outcome: IsrOutcome,
    /// The ISR asked for: the sender forgets only that pending expansion.
    isr: Vec<i32>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    steps: usize,
    produced: usize,
    acked: usize,
    failed: usize,
    acked_below_min_isr: usize,
    fetches: usize,
    truncations: usize,
    crashes: usize,
    restarts: usize,
    isolations: usize,
    fences: usize,
    leader_changes: usize,
    isr_changes: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.produced += o.produced;
        self.acked += o.acked;
        self.failed += o.failed;
        self.acked_below_min_isr += o.acked_below_min_isr;
        self.fetches += o.fetches;
        self.truncations += o.truncations;
        self.crashes += o.crashes;
        self.restarts += o.restarts;
        self.isolations += o.isolations;
        self.fences += o.fences;
        self.leader_changes += o.leader_changes;
        self.isr_changes += o.isr_changes;
    }
}

type SimResult<T = ()> = Result<T, String>;

/// Knobs read from the environment once per run (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Options {
    steps: usize,
    trace_steps: usize,
    /// Fail when a record is acknowledged while fewer than `min.insync.replicas` logs
    /// hold it (otherwise only counted).
    strict_min_isr: bool,
    /// Let AlterIsr requests from one broker reach the controller in any order.
    reorder_isr: bool,
    /// Check acknowledged records only on the leader: an ISR member missing one is
    /// then reported only once it leads, i.e. once the record is lost.
    leader_only: bool,
}

impl Options {
    fn from_env() -> Options {
        Options {
            steps: env_number("BROOK_SIM_STEPS").unwrap_or(DEFAULT_STEPS),
            trace_steps: env_number("BROOK_SIM_TRACE_STEPS").unwrap_or(TRACE_STEPS),
            strict_min_isr: env_flag("BROOK_SIM_STRICT_MIN_ISR"),
            reorder_isr: env_flag("BROOK_SIM_REORDER_ISR"),
            leader_only: env_flag("BROOK_SIM_LEADER_ONLY"),
        }
    }
}

struct Sim {
    seed: u64,
    rng: StdRng,
    now: i64,
    timing: Timing,
    options: Options,
    config: Arc<TopicConfig>,
    brokers: Vec<Broker>,
    controller: Controller,
    pending: Vec<PendingAck>,
    fetches: Vec<InFlightFetch>,
    isr_requests: Vec<InFlightIsr>,
    isr_replies: Vec<IsrReply>,
    /// Acknowledged records: offset -> value, and value -> offset.
    acked: BTreeMap<i64, Bytes>,
    acked_offsets: BTreeMap<Bytes, i64>,
    /// For each broker leading: (incarnation, leader epoch, highest high watermark seen).
    leader_hw: BTreeMap<i32, (u32, i32, i64)>,
    last_leader_epoch: i32,
    next_value: u64,
    step: usize,
    events: Vec<String>,
    trace: VecDeque<String>,
    stats: Stats,
    /// A hash of every step's trace line (`BROOK_SIM_DIGEST=1` prints it per seed).
    digest: u64,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "min.insync.replicas".to_string(),
        MIN_INSYNC_REPLICAS.to_string(),
    )])
}

/// Every broker's config: the defaults.
fn broker_config() -> BrokerConfig {
    BrokerConfig::new(
        "127.0.0.1:9092".parse().expect("a valid socket address"),
        None,
    )
}

/// The topic's effective config, resolved as `reconcile` does.
fn topic_config() -> Arc<TopicConfig> {
    Arc::new(broker_config().topic_config(&topic_configs(), brook_broker::config::Dynamic::none()))
}

/// The controller's first image: a cluster, three brokers, the topic with `replicas`.
fn initial_image(seed: u64, replicas: Vec<i32>) -> MetadataImage {
    let mut image = MetadataImage::new(BROKER_IDS[0]);
    image.apply(&MetadataRecord::ClusterCreated {
        cluster_id: format!("sim-{seed}"),
    });
    for id in BROKER_IDS {
        image.apply(&MetadataRecord::BrokerRegistered {
            id,
            host: HOST.to_string(),
            port: port(id),
            incarnation: 0,
            listeners: vec![],
            rack: None,
        });
    }
    image.apply(&MetadataRecord::TopicCreated {
        name: TOPIC.to_string(),
        topic_id: uuid::Uuid::from_u128(u128::from(seed) + 1),
        partitions: 1,
        replication_factor: replicas.len() as i16,
        configs: topic_configs(),
        internal: false,
        assignment: vec![replicas],
    });
    image
}

/// An acks=all batch of one record per value, timestamped `now_ms`.
fn batch_of(values: &[Bytes], now_ms: i64) -> SimResult<Bytes> {
    let records: Vec<Record> = values
        .iter()
        .map(|v| Record {
            key: None,
            value: Some(v.clone()),
            headers: vec![],
            timestamp_ms: now_ms,
        })
        .collect();
    encode_batch(&records, Compression::None)
        .map(|b| b.freeze())
        .map_err(|e| format!("encoding a batch: {e}"))
}

/// A fresh directory for one seed's three brokers: under `BROOK_SIM_DIR` if set, else
/// in `/dev/shm` where it exists (the simulated crashes never lose what was written, so
/// fsync buys nothing here and costs most of the run time on a real disk), else in the
/// system's temporary directory.
fn sim_temp_dir() -> SimResult<tempfile::TempDir> {
    let base = match std::env::var_os("BROOK_SIM_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(PathBuf::from("/dev/shm")).filter(|d| d.is_dir()),
    };
    let dir = match base {
        Some(base) => tempfile::Builder::new()
            .prefix("brook-replication-sim-")
            .tempdir_in(&base),
        None => tempfile::Builder::new()
            .prefix("brook-replication-sim-")
            .tempdir(),
    };
    dir.map_err(|e| format!("creating a temporary directory: {e}"))
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future once inside the runtime: `Some` if it is ready now, `None` if it
/// would wait. The simulation's clock is not tokio's, so nothing ever waits for real.
fn poll_once<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> Option<F::Output> {
    let _context = runtime.enter();
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(NoopWaker));
    match future.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// A deadline that never passes during a poll.
fn far_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

fn port(id: i32) -> i32 {
    9000 + id
}

fn describe_record(r: &MetadataRecord) -> String {
    match r {
        MetadataRecord::PartitionChanged {
            leader,
            leader_epoch,
            isr,
            ..
        } => format!("meta: leader={leader} epoch={leader_epoch} isr={isr:?}"),
        MetadataRecord::BrokerFenced { id } => format!("meta: broker {id} fenced"),
        MetadataRecord::BrokerUnfenced { id } => format!("meta: broker {id} unfenced"),
        other => format!("meta: {other:?}"),
    }
}

/// Reads the record values at offsets `from..to` of a partition's log.
fn read_values(p: &Partition, from: i64, to: i64) -> SimResult<Vec<Bytes>> {
    let mut out: Vec<Bytes> = Vec::new();
    let mut offset = from;
    while offset < to {
        let slice = p
            .read(offset, READ_CHUNK_BYTES, true)
            .map_err(|e| format!("reading the log at offset {offset}: {e}"))?;
        if slice.is_empty() {
            break;
        }
        let bytes = slice
            .read_bytes()
            .map_err(|e| format!("reading a slice at offset {offset}: {e}"))?;
        let records =
            decode_batches(bytes).map_err(|e| format!("decoding at offset {offset}: {e}"))?;
        for r in records {
            if r.offset < offset || r.offset >= to {
                continue;
            }
            let expected = from + out.len() as i64;
            if r.offset != expected {
                return Err(format!(
                    "the log has offset {} where {expected} was expected",
                    r.offset
                ));
            }
            out.push(r.value.unwrap_or_default());
        }
        offset = slice.next_offset_hint.max(offset + 1);
    }
    if from + out.len() as i64 != to {
        return Err(format!(
            "read {} records from offset {from}, the log ends at {to}",
            out.len()
        ));
    }
    Ok(out)
}

/// The whole log of a partition (its log start must be 0: nothing here deletes records).
fn read_log(p: &Partition) -> SimResult<Vec<Bytes>> {
    let (start, end) = p.log_offsets();
    if start != 0 {
        return Err(format!("the log start offset moved to {start}"));
    }
    read_values(p, 0, end)
}

/// The replica fetch `fetch_loop` sends for the follower's partition, built by the real
/// `fetch_request`: the partition's part of the request, the request's size limit, and
/// the leader epoch its answer is applied in.
fn replica_fetch(follower: i32, p: &Arc<Partition>) -> (FetchPartition, usize, i32) {
    // A full fetch of this one partition, outside any session.
    let position = p.follower_position();
    let request = decisions::fetch_request(
        follower,
        std::slice::from_ref(p),
        &[0],
        &[Some(position)],
        (0, -1),
        &[],
    );
    let asked = request.topics[0].partitions[0].clone();
    let fetched_epoch = position.2;
    (asked, request.max_bytes.max(0) as usize, fetched_epoch)
}

/// The leader's answer to a follower's replica fetch, as `handlers/fetch.rs`
/// `read_partition` builds it for a replica (from `max_bytes`, the response's budget);
/// the records stay a range of the segment file.
fn answer_fetch(
    leader: &Partition,
    follower: i32,
    asked: &FetchPartition,
    max_bytes: usize,
    now: i64,
) -> FetchedPartition {
    let base = PartitionData::default()
        .with_partition_index(asked.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1);
    let limit = (asked.partition_max_bytes.max(0) as usize).min(max_bytes);
    let fetched = leader.follower_fetch(
        follower,
        asked.fetch_offset,
        asked.last_fetched_epoch,
        asked.current_leader_epoch,
        limit,
        now,
    );
    let (data, records) = match fetched {
        Err(refused) => (base.with_error_code(refused.0), FetchedRecords::Empty),
        Ok((read, log_start, hw, _moved)) => {
            let mut data = base
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log_start)
                .with_records(Some(Bytes::new()));
            match read {
                FollowerRead::Diverging { epoch, end_offset } => {
                    data.diverging_epoch.epoch = epoch;
                    data.diverging_epoch.end_offset = end_offset;
                    (data, FetchedRecords::Empty)
                }
                FollowerRead::Records(slice) => (data, FetchedRecords::Unread(slice)),
            }
        }
    };
    FetchedPartition { data, records }
}

/// The follower's real `apply_fetched` (`brook_broker::decisions`) on the response as
/// it arrives, then the fsync `fetch_loop` owes before its next fetch. Returns whether
/// the log was reset or cut back.
fn apply_fetched(
    p: &Partition,
    fetched_epoch: i32,
    pd: &PartitionData,
    now: i64,
) -> Result<bool, String> {
    let before = p.log_offsets().1;
    match decisions::apply_fetched(p, fetched_epoch, pd, now)? {
        Fetched::Appended(owed) => {
            if let Some(end) = owed {
                p.sync_replicated(end).map_err(|e| e.to_string())?;
            }
            Ok(false)
        }
        Fetched::Diverged => Ok(p.log_offsets().1 < before),
        Fetched::Reset => Ok(true),
    }
}

impl Sim {
    fn new(seed: u64, options: Options) -> SimResult<Sim> {
        let mut rng = StdRng::seed_from_u64(seed);
        let session_timeout_ms = rng.gen_range(600..=3000);
        let replica_lag_max_ms = rng.gen_range(300..=3000);
        let settings = broker_config().broker_settings();
        let timing = Timing {
            replica_lag_max_ms,
            isr_check_interval_ms: decisions::check_interval_ms(replica_lag_max_ms),
            session_timeout_ms,
            heartbeat_interval_ms: (session_timeout_ms / 4).max(50),
            controller_deadline_ms: session_timeout_ms
                * decisions::CONTROLLER_DEADLINE.as_millis() as i64
                / settings.broker_session_timeout_ms,
        };
        let dir = sim_temp_dir()?;
        let config = topic_config();
        // The preferred leader (first replica) differs between seeds.
        let mut replicas = BROKER_IDS.to_vec();
        let rotation = rng.gen_range(0..replicas.len());
        replicas.rotate_left(rotation);
        if rng.gen_bool(0.5) {
            replicas.swap(1, 2);
        }
        let image = initial_image(seed, replicas);

        let now = SIM_START_MS;
        let mut brokers = Vec::new();
        for id in BROKER_IDS {
            let broker_dir = dir.path().join(format!("broker-{id}")).join("t-0");
            let partition = Partition::open(
                &broker_dir,
                Arc::from(TOPIC),
                PARTITION,
                id,
                config.clone(),
                now,
            )
            .map_err(|e| format!("opening the partition of broker {id}: {e}"))?;
            brokers.push(Broker {
                id,
                dir: broker_dir,
                partition: Some(Arc::new(partition)),
                incarnation: 0,
                ready: true,
                image: image.clone(),
                isolated: false,
                next_heartbeat_ms: now + rng.gen_range(0..timing.heartbeat_interval_ms),
                next_isr_check_ms: now + rng.gen_range(0..timing.isr_check_interval_ms),
                mirror: Vec::new(),
                mirror_stale: false,
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| format!("building a tokio runtime: {e}"))?;
        let mut sim = Sim {
            seed,
            rng,
            now,
            timing,
            options,
            config,
            brokers,
            controller: Controller {
                up: true,
                image,
                last_heard: BROKER_IDS.iter().map(|&id| (id, now)).collect(),
                settings,
            },
            pending: Vec::new(),
            fetches: Vec::new(),
            isr_requests: Vec::new(),
            isr_replies: Vec::new(),
            acked: BTreeMap::new(),
            acked_offsets: BTreeMap::new(),
            leader_hw: BTreeMap::new(),
            last_leader_epoch: 0,
            next_value: 0,
            step: 0,
            events: Vec::new(),
            trace: VecDeque::new(),
            stats: Stats::default(),
            digest: 0,
            runtime,
            _dir: dir,
        };
        for id in BROKER_IDS {
            sim.reconcile(id);
        }
        sim.event(format!("start: {timing:?}"));
        sim.end_step()?;
        Ok(sim)
    }

    // ---- small helpers ----

    fn broker(&self, id: i32) -> &Broker {
        &self.brokers[(id - 1) as usize]
    }

    fn broker_mut(&mut self, id: i32) -> &mut Broker {
        &mut self.brokers[(id - 1) as usize]
    }

    fn event(&mut self, msg: impl Into<String>) {
        self.events.push(msg.into());
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.rng.gen_range(0..items.len())])
        }
    }

    fn ids_where(&self, f: impl Fn(&Broker) -> bool) -> Vec<i32> {
        self.brokers.iter().filter(|b| f(b)).map(|b| b.id).collect()
    }

    /// Brokers down or cut off, plus the controller if it is down.
    fn faulty_count(&self) -> usize {
        let brokers = self
            .brokers
            .iter()
            .filter(|b| !b.is_up() || b.isolated)
            .count();
        brokers + usize::from(!self.controller.up)
    }

    fn controller_view(&self) -> &PartitionImage {
        self.controller
            .image
            .partition(TOPIC, PARTITION)
            .expect("the topic exists for the whole simulation")
    }

    /// Brokers that believe they lead the partition.
    fn self_declared_leaders(&self) -> Vec<i32> {
        self.ids_where(|b| b.partition.as_ref().is_some_and(|p| p.is_leader()))
    }

    // ---- metadata ----

    /// The controller appends `records`; brokers that can hear it usually apply the
    /// new image right away, the others later.
    fn commit(&mut self, records: Vec<MetadataRecord>) {
        if records.is_empty() {
            return;
        }
        let before = self.controller_view().clone();
        for r in &records {
            self.controller.image.apply(r);
            match r {
                MetadataRecord::BrokerFenced { .. } => self.stats.fences += 1,
                MetadataRecord::PartitionChanged { .. } => self.stats.isr_changes += 1,
                _ => {}
            }
            let msg = describe_record(r);
            self.event(msg);
        }
        if self.controller_view().leader != before.leader {
            self.stats.leader_changes += 1;
        }
        for id in BROKER_IDS {
            if self.broker(id).reachable() && self.rng.gen_bool(0.75) {
                self.sync_metadata(id);
            }
        }
    }

    /// The controller decides `req` and appends what it decided (a refusal changes
    /// nothing).
    fn controller_request(&mut self, req: &ControllerRequest) {
        if let Ok((records, _)) = self.controller.decide(req) {
            self.commit(records);
        }
    }

    /// The broker's image catches up with the controller's.
    ///
    /// When that moves the broker's fetcher to another leader, `update_fetchers` aborts
    /// the old fetcher task; a response the task had already received can still be
    /// applied (`apply_fetched` runs between two awaits, `apply_leadership` on another
    /// thread), so an in-flight response is applied right after the change one time in
    /// ten, and dropped otherwise.
    fn sync_metadata(&mut self, id: i32) {
        let target_before = self.fetcher_target(id);
        let image = self.controller.image.clone();
        self.broker_mut(id).image = image;
        self.reconcile(id);
        if self.fetcher_target(id) == target_before {
            return;
        }
        while let Some(i) = self.fetches.iter().position(|f| f.follower == id) {
            let fetch = self.fetches.remove(i);
            if self.rng.gen_bool(0.1) && !self.broker(id).isolated {
                self.event(format!(
                    "fetch response {id}<-{} applied as the fetcher is being stopped",
                    fetch.leader
                ));
                self.apply_fetch_response(fetch);
            } else {
                self.event(format!(
                    "fetch response {id}<-{} dropped: fetcher stopped",
                    fetch.leader
                ));
            }
        }
    }

    /// `Shared::reconcile` for our one partition.
    fn reconcile(&mut self, id: i32) {
        let now = self.now;
        let b = self.broker(id);
        let (Some(p), Some(view)) = (&b.partition, b.view()) else {
            return;
        };
        let mut view = view.clone();
        if !b.ready {
            view.leader = NO_LEADER;
        }
        p.apply_leadership(&view, now);
    }

    /// A heartbeat from `id` reaches the controller and is answered.
    fn heartbeat(&mut self, id: i32) {
        let interval = self.timing.heartbeat_interval_ms;
        let jitter = self.rng.gen_range(0..=interval / 5);
        let now = self.now;
        self.broker_mut(id).next_heartbeat_ms = now + interval - interval / 10 + jitter;
        if !self.controller.up {
            return;
        }
        // `ControllerClient::on_leader` notes the heartbeat, then `decide` answers it.
        self.controller.last_heard.insert(id, now);
        let request = ControllerRequest::BrokerHeartbeat {
            id,
            host: HOST.to_string(),
            port: port(id),
            incarnation: u64::from(self.broker(id).incarnation),
            listeners: vec![],
            rack: None,
        };
        let Ok((records, ControllerReply::Heartbeat { metadata_records })) =
            self.controller.decide(&request)
        else {
            unreachable!("the controller answers every heartbeat with its record count");
        };
        self.commit(records);
        let b = self.broker(id);
        if !b.ready && decisions::caught_up(&b.image, metadata_records, id) {
            self.broker_mut(id).ready = true;
            self.event(format!("broker {id} caught up with the controller: ready"));
            self.reconcile(id);
        }
    }

    /// What happens as time passes: requests and answers that can get through do,
    /// brokers that can hear the quorum catch up with its image, heartbeats, the
    /// controller's session expiry, request timeouts.
    fn timers(&mut self) {
        self.deliver_pending_isr();
        for id in BROKER_IDS {
            let b = self.broker(id);
            if b.reachable() && b.image.record_count < self.controller.image.record_count {
                self.sync_metadata(id);
            }
        }
        for id in BROKER_IDS {
            let b = self.broker(id);
            if b.reachable() && self.now >= b.next_heartbeat_ms {
                self.heartbeat(id);
            }
        }
        if self.controller.up {
            // The controller's own decision of whose session expired.
            let expired = decisions::expired_brokers(
                &self.controller.image,
                &mut self.controller.last_heard,
                self.now,
                self.timing.session_timeout_ms,
            );
            for id in expired {
                self.event(format!("broker {id}: session expired"));
                self.controller_request(&ControllerRequest::FenceBroker { id });
            }
        }
        let now = self.now;
        let (expired, live): (Vec<InFlightIsr>, Vec<InFlightIsr>) =
            std::mem::take(&mut self.isr_requests)
                .into_iter()
                .partition(|r| now - r.sent_ms > self.timing.controller_deadline_ms);
        self.isr_requests = live;
        let (expired_replies, live): (Vec<IsrReply>, Vec<IsrReply>) =
            std::mem::take(&mut self.isr_replies)
                .into_iter()
                .partition(|r| now - r.sent_ms > self.timing.controller_deadline_ms);
        self.isr_replies = live;
        let timed_out = expired
            .iter()
            .map(|r| (r.sender, r.incarnation, r.isr.clone()))
            .chain(
                expired_replies
                    .iter()
                    .map(|r| (r.sender, r.incarnation, r.isr.clone())),
            );
        // `ControllerClient::request` gives up with REQUEST_TIMED_OUT.
        let outcome = decisions::isr_outcome(ResponseError::RequestTimedOut.code());
        for (sender, incarnation, isr) in timed_out.collect::<Vec<_>>() {
            self.event(format!("AlterIsr from {sender} timed out: answer unknown"));
            let b = self.broker(sender);
            if b.incarnation == incarnation {
                if let Some(p) = &b.partition {
                    p.isr_change_done(&isr, outcome);
                }
            }
        }
    }

    // ---- actions ----

    fn produce(&mut self) -> SimResult {
        let leaders = self.self_declared_leaders();
        let Some(id) = self.pick(&leaders) else {
            self.event("produce: no broker leads");
            return Ok(());
        };
        let count = self.rng.gen_range(1..=3);
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            self.next_value += 1;
            values.push(Bytes::from(format!("s{}-{}", self.seed, self.next_value)));
        }
        let batch = batch_of(&values, self.now)?;
        let min_insync = Some(self.config.min_insync_replicas.max(1) as usize);
        let b = self.broker(id);
        let incarnation = b.incarnation;
        let result = b.partition().append(&batch, self.now, min_insync);
        match result {
            Ok(appended) => {
                self.stats.produced += count;
                self.event(format!(
                    "produce to {id}: offsets {}..{} epoch {}",
                    appended.base_offset, appended.next_offset, appended.leader_epoch
                ));
                self.pending.push(PendingAck {
                    broker: id,
                    incarnation,
                    sent_ms: self.now,
                    appended,
                    values,
                });
            }
            Err(AppendError::Storage(e)) => {
                return Err(format!(
                    "append on broker {id} failed with a storage error: {e}"
                ))
            }
            Err(e) => self.event(format!("produce to {id} refused: {e}")),
        }
        Ok(())
    }

    /// The leader a broker's replica fetcher targets: `Fetchers::update` follows the
    /// leader its `Partition` took from metadata (none while not ready, see
    /// `reconcile`), as the real `fetch_target` decides.
    fn fetcher_target(&self, id: i32) -> Option<i32> {
        let (leader, _) = self.broker(id).partition.as_ref()?.leadership();
        decisions::fetch_target(id, leader)
    }

    fn replicate(&mut self) -> SimResult {
        let followers = self.ids_where(|b| {
            self.fetcher_target(b.id).is_some() || self.fetches.iter().any(|f| f.follower == b.id)
        });
        let Some(follower) = self.pick(&followers) else {
            self.event("replicate: nobody follows");
            return Ok(());
        };
        if let Some(i) = self.fetches.iter().position(|f| f.follower == follower) {
            let fetch = self.fetches.remove(i);
            self.deliver_fetch(fetch);
            return Ok(());
        }
        let Some(leader) = self.fetcher_target(follower) else {
            return Ok(());
        };
        if let Some(fetch) = self.issue_fetch(follower, leader) {
            if self.rng.gen_bool(0.7) {
                self.deliver_fetch(fetch);
            } else {
                self.fetches.push(fetch);
            }
        }
        Ok(())
    }

    /// The follower sends a replica fetch and the leader answers it
    /// (`fetch_loop` + `handlers/fetch.rs` `read_partition`).
    fn issue_fetch(&mut self, follower: i32, leader: i32) -> Option<InFlightFetch> {
        if self.broker(follower).isolated || !self.broker(leader).reachable() {
            self.event(format!("fetch {follower}<-{leader}: cannot connect"));
            return None;
        }
        self.stats.fetches += 1;
        let read_now = self.rng.gen_bool(0.5);
        let f = self.broker(follower);
        let (asked, max_bytes, fetched_epoch) =
            replica_fetch(follower, f.partition.as_ref().expect("a follower is up"));
        let incarnation = f.incarnation;
        let l = self.broker(leader).partition();
        let mut response = answer_fetch(l, follower, &asked, max_bytes, self.now);
        if read_now {
            if let FetchedRecords::Unread(slice) = &response.records {
                match slice.read_bytes() {
                    Ok(bytes) => response.records = FetchedRecords::Read(bytes),
                    Err(e) => {
                        self.event(format!("fetch {follower}<-{leader}: read failed: {e}"));
                        return None;
                    }
                }
            }
        }
        self.event(format!(
            "fetch {follower}<-{leader} offset {} last epoch {} leader epoch {}: {}",
            asked.fetch_offset,
            asked.last_fetched_epoch,
            asked.current_leader_epoch,
            response.summary()
        ));
        Some(InFlightFetch {
            follower,
            incarnation,
            leader,
            fetched_epoch,
            response,
        })
    }

    /// The follower applies a fetch response (`apply_fetched`). Only a fetcher that is
    /// still running applies what it receives; see `sync_metadata` for the race.
    fn deliver_fetch(&mut self, fetch: InFlightFetch) {
        let follower = fetch.follower;
        let b = self.broker(follower);
        if !b.is_up() || b.incarnation != fetch.incarnation || b.isolated {
            self.event(format!("fetch response {follower}<-{} lost", fetch.leader));
            return;
        }
        if self.fetcher_target(follower) != Some(fetch.leader) {
            self.event(format!(
                "fetch response {follower}<-{} dropped: fetcher stopped",
                fetch.leader
            ));
            return;
        }
        self.apply_fetch_response(fetch);
    }

    fn apply_fetch_response(&mut self, fetch: InFlightFetch) {
        let follower = fetch.follower;
        let data = match fetch.response.receive() {
            Ok(data) => data,
            Err(e) => {
                self.event(format!(
                    "fetch response {follower}<-{}: sending the records failed: {e}",
                    fetch.leader
                ));
                return;
            }
        };
        let now = self.now;
        let p = self.broker(follower).partition();
        let before = p.log_offsets().1;
        let outcome = apply_fetched(p, fetch.fetched_epoch, &data, now);
        let after = p.log_offsets().1;
        match outcome {
            Ok(truncated) => {
                if truncated {
                    self.stats.truncations += 1;
                    self.broker_mut(follower).mirror_stale = true;
                }
                self.event(format!(
                    "applied at {follower} from {}: log end {before} -> {after}",
                    fetch.leader
                ));
            }
            Err(e) => {
                self.broker_mut(follower).mirror_stale = true;
                self.event(format!(
                    "applying at {follower} from {} failed: {e}",
                    fetch.leader
                ));
            }
        }
    }

    /// A leader's ISR check (`isr_loop`).
    fn isr_check(&mut self) {
        let now = self.now;
        let due: Vec<i32> = self
            .self_declared_leaders()
            .into_iter()
            .filter(|&id| now >= self.broker(id).next_isr_check_ms)
            .collect();
        let Some(id) = self.pick(&due) else {
            self.event("isr check: none due");
            return;
        };
        let interval = self.timing.isr_check_interval_ms;
        self.broker_mut(id).next_isr_check_ms = now + interval;
        let b = self.broker(id);
        let (incarnation, isolated) = (b.incarnation, b.isolated);
        let image = &b.image;
        let change = b
            .partition()
            .isr_change(self.now, self.timing.replica_lag_max_ms, |r| {
                image.is_live(r)
            });
        let Some(IsrChange {
            leader_epoch,
            partition_epoch,
            isr,
        }) = change
        else {
            self.event(format!("isr check on {id}: no change"));
            return;
        };
        self.event(format!(
            "isr check on {id}: asks for {isr:?} in epoch {leader_epoch}"
        ));
        let request = InFlightIsr {
            sender: id,
            incarnation,
            sent_ms: self.now,
            leader_epoch,
            partition_epoch,
            isr,
        };
        let queued = self.isr_requests.iter().any(|r| r.sender == id);
        self.isr_requests.push(request);
        let can_go = self.controller.up && !isolated && (!queued || self.options.reorder_isr);
        if can_go && self.rng.gen_bool(0.6) {
            self.deliver_isr_at(self.isr_requests.len() - 1);
        }
    }

    /// Whether the sender of request `i` is cut off from the controller (it keeps
    /// retrying until the controller deadline, see `timers`).
    fn isr_sender_cut_off(&self, i: usize) -> bool {
        let request = &self.isr_requests[i];
        let sender = self.broker(request.sender);
        sender.is_up() && sender.incarnation == request.incarnation && sender.isolated
    }

    /// Everything that can reach the controller does, and every answer that can reach
    /// its sender does.
    fn deliver_pending_isr(&mut self) {
        loop {
            let next = self
                .deliverable_isr_requests()
                .into_iter()
                .find(|&i| !self.isr_sender_cut_off(i));
            let Some(i) = next else {
                break;
            };
            let request = self.isr_requests.remove(i);
            self.deliver_isr(request);
        }
        for reply in std::mem::take(&mut self.isr_replies) {
            self.deliver_isr_reply(reply);
        }
    }

    /// Requests that may reach the controller next: each sender's oldest (one
    /// connection per peer, taken in turn), or any with `BROOK_SIM_REORDER_ISR=1`.
    fn deliverable_isr_requests(&self) -> Vec<usize> {
        if !self.controller.up {
            return Vec::new();
        }
        (0..self.isr_requests.len())
            .filter(|&i| {
                self.options.reorder_isr
                    || !self.isr_requests[..i]
                        .iter()
                        .any(|r| r.sender == self.isr_requests[i].sender)
            })
            .collect()
    }

    fn deliver_some_isr(&mut self) {
        let requests = self.deliverable_isr_requests();
        let total = requests.len() + self.isr_replies.len();
        if total == 0 {
            self.event("deliver AlterIsr: none in flight");
            return;
        }
        let i = self.rng.gen_range(0..total);
        if i < requests.len() {
            self.deliver_isr_at(requests[i]);
        } else {
            let reply = self.isr_replies.remove(i - requests.len());
            self.deliver_isr_reply(reply);
        }
    }

    /// The sender of request `i` tries to reach the controller with it.
    fn deliver_isr_at(&mut self, i: usize) {
        if self.isr_sender_cut_off(i) {
            let request = &self.isr_requests[i];
            let msg = format!(
                "AlterIsr from {} {:?}: controller unreachable, retrying",
                request.sender, request.isr
            );
            self.event(msg);
            return;
        }
        let request = self.isr_requests.remove(i);
        self.deliver_isr(request);
    }

    /// An AlterIsr request reaches the controller; the answer goes back to the sender.
    fn deliver_isr(&mut self, request: InFlightIsr) {
        let sender = self.broker(request.sender);
        let same_process = sender.is_up() && sender.incarnation == request.incarnation;
        if !same_process && self.rng.gen_bool(0.5) {
            self.event(format!(
                "AlterIsr from {}: lost with its process",
                request.sender
            ));
            return;
        }
        let decided = self.controller.decide(&ControllerRequest::AlterIsr {
            leader: request.sender,
            incarnation: u64::from(request.incarnation),
            partitions: vec![IsrItem {
                topic: TOPIC.to_string(),
                partition: PARTITION,
                leader_epoch: request.leader_epoch,
                partition_epoch: request.partition_epoch,
                isr: request.isr.clone(),
            }],
        });
        // The one partition's answer in the reply, as `isr_loop` reads it.
        let decided = match decided {
            Ok((records, ControllerReply::IsrAltered { results, .. })) => match &results[..] {
                [(0, _)] => Ok((records, ())),
                [(code, message)] => Err((*code, message.clone().unwrap_or_default())),
                other => panic!("{} answers for one partition", other.len()),
            },
            Ok((_, reply)) => panic!("unexpected reply {reply:?}"),
            Err(refusal) => Err(refusal),
        };
        let outcome = match decided {
            Ok((records, _)) if records.is_empty() => {
                self.event(format!("AlterIsr from {}: no change", request.sender));
                IsrOutcome::Accepted
            }
            Ok((records, _)) => {
                self.event(format!(
                    "AlterIsr from {} {:?} accepted",
                    request.sender, request.isr
                ));
                self.commit(records);
                IsrOutcome::Accepted
            }
            Err((code, message)) => {
                self.event(format!(
                    "AlterIsr from {} refused: {message}",
                    request.sender
                ));
                decisions::isr_outcome(code)
            }
        };
        if same_process {
            let reply = IsrReply {
                sender: request.sender,
                incarnation: request.incarnation,
                sent_ms: request.sent_ms,
                outcome,
                isr: request.isr.clone(),
            };
            if !self.broker(request.sender).isolated && self.rng.gen_bool(0.8) {
                self.deliver_isr_reply(reply);
            } else {
                self.isr_replies.push(reply);
            }
        }
    }

    /// The controller's answer reaches the sender's `isr_loop` task: after a success it
    /// waits (up to 3 s) for its image to show the ISR, then forgets the pending ISR.
    fn deliver_isr_reply(&mut self, reply: IsrReply) {
        let b = self.broker(reply.sender);
        if !b.is_up() || b.incarnation != reply.incarnation {
            return;
        }
        if b.isolated {
            self.event(format!("AlterIsr reply to {}: lost", reply.sender));
            self.isr_replies.push(reply);
            return;
        }
        if reply.outcome == IsrOutcome::Accepted {
            self.sync_metadata(reply.sender);
        }
        self.event(format!(
            "AlterIsr reply reaches {}: {:?}",
            reply.sender, reply.outcome
        ));
        self.broker(reply.sender)
            .partition()
            .isr_change_done(&reply.isr, reply.outcome);
    }

    fn sync_some_metadata(&mut self) {
        let record_count = self.controller.image.record_count;
        let behind = self.ids_where(|b| b.reachable() && b.image.record_count < record_count);
        match self.pick(&behind) {
            Some(id) => {
                self.event(format!("broker {id} applies the latest metadata"));
                self.sync_metadata(id);
            }
            None => self.event("metadata: everyone reachable is up to date"),
        }
    }

    fn advance_clock(&mut self, max_ms: i64) {
        let ms = self.rng.gen_range(1..=max_ms);
        self.now += ms;
        self.event(format!("clock +{ms} ms"));
        self.timers();
    }

    /// Kills (or cleanly shuts down) broker `id`.
    fn crash(&mut self, id: i32, clean: bool) -> SimResult {
        let b = self.broker_mut(id);
        let Some(p) = b.partition.take() else {
            return Ok(());
        };
        b.ready = false;
        b.isolated = false;
        if clean {
            Arc::into_inner(p)
                .ok_or_else(|| format!("broker {id}: its partition is still shared"))?
                .close()
                .map_err(|e| format!("closing the partition of broker {id}: {e}"))?;
        } else {
            // kill -9: see the module docs.
            drop(p);
        }
        self.fetches.retain(|f| f.follower != id);
        self.leader_hw.remove(&id);
        self.stats.crashes += 1;
        self.event(format!(
            "broker {id} {}",
            if clean { "shut down cleanly" } else { "killed" }
        ));
        Ok(())
    }

    fn restart(&mut self, id: i32) -> SimResult {
        let now = self.now;
        let config = self.config.clone();
        let b = self.broker_mut(id);
        if b.is_up() {
            return Ok(());
        }
        let partition = Partition::open(&b.dir, Arc::from(TOPIC), PARTITION, id, config, now)
            .map_err(|e| format!("reopening the partition of broker {id}: {e}"))?;
        b.partition = Some(Arc::new(partition));
        b.incarnation += 1;
        b.ready = false;
        b.isolated = false;
        b.next_heartbeat_ms = now;
        b.mirror_stale = true;
        self.stats.restarts += 1;
        self.event(format!("broker {id} restarted"));
        self.reconcile(id);
        if self.rng.gen_bool(0.5) {
            self.heartbeat(id);
        }
        Ok(())
    }

    fn random_crash(&mut self) -> SimResult {
        let candidates = if self.faulty_count() == 0 {
            self.ids_where(Broker::is_up)
        } else {
            self.ids_where(|b| b.is_up() && b.isolated)
        };
        let Some(id) = self.pick(&candidates) else {
            self.event("crash: not now");
            return Ok(());
        };
        let clean = self.rng.gen_bool(0.25);
        self.crash(id, clean)
    }

    fn random_restart(&mut self) -> SimResult {
        let down = self.ids_where(|b| !b.is_up());
        match self.pick(&down) {
            Some(id) => self.restart(id),
            None => {
                self.event("restart: nobody is down");
                Ok(())
            }
        }
    }

    fn isolate(&mut self) {
        if self.faulty_count() > 0 {
            self.event("isolate: not now");
            return;
        }
        let leader = self.controller_view().leader;
        let id = if leader != NO_LEADER && self.rng.gen_bool(0.5) {
            leader
        } else {
            let up = self.ids_where(Broker::is_up);
            match self.pick(&up) {
                Some(id) => id,
                None => return,
            }
        };
        self.broker_mut(id).isolated = true;
        self.stats.isolations += 1;
        self.event(format!("broker {id} cut off from the others"));
    }

    fn heal(&mut self) {
        let isolated = self.ids_where(|b| b.isolated);
        match self.pick(&isolated) {
            Some(id) => {
                self.broker_mut(id).isolated = false;
                self.event(format!("broker {id} reconnected"));
            }
            None => self.event("heal: nobody is cut off"),
        }
    }

    fn preferred_election(&mut self) {
        if !self.controller.up {
            self.event("preferred leader election: no controller");
            return;
        }
        let request = ControllerRequest::ElectPreferred { partitions: None };
        let records = self
            .controller
            .decide(&request)
            .map(|(records, _)| records)
            .unwrap_or_default();
        if records.is_empty() {
            self.event("preferred leader election: nothing to do");
        } else {
            self.event("preferred leader election");
            self.commit(records);
        }
    }

    fn controller_outage(&mut self) {
        if self.faulty_count() > 0 {
            self.event("controller outage: not now");
            return;
        }
        self.controller.up = false;
        self.event("the controller is down (quorum election)");
    }

    /// A new controller takes over; like `controller_loop` it gives every broker a
    /// full session before fencing it.
    fn controller_recovery(&mut self) {
        if self.controller.up {
            self.event("controller recovery: it is up");
            return;
        }
        self.controller.up = true;
        decisions::reset_liveness(
            &self.controller.image,
            &mut self.controller.last_heard,
            self.now,
        );
        self.event("a new controller is active");
        self.deliver_pending_isr();
    }

    // ---- acknowledgements ----

    /// Polls every acks=all request: `wait_replicated` with a deadline already passed
    /// answers at once whether the client would have its acknowledgement now.
    fn collect_acks(&mut self) -> SimResult {
        let pending = std::mem::take(&mut self.pending);
        for pa in pending {
            let b = self.broker(pa.broker);
            let p = match &b.partition {
                Some(p) if b.incarnation == pa.incarnation => p,
                _ => {
                    self.stats.failed += pa.values.len();
                    self.event(format!(
                        "produce {}..{} on {}: connection lost",
                        pa.appended.base_offset, pa.appended.next_offset, pa.broker
                    ));
                    continue;
                }
            };
            match poll_once(
                &self.runtime,
                p.wait_replicated(&pa.appended, far_deadline()),
            ) {
                Some(Ok(())) => self.acknowledge(&pa)?,
                Some(Err(c)) => {
                    self.stats.failed += pa.values.len();
                    self.event(format!(
                        "produce {}..{} on {}: failed with error code {c}",
                        pa.appended.base_offset, pa.appended.next_offset, pa.broker
                    ));
                }
                None if self.now - pa.sent_ms > PRODUCE_TIMEOUT_MS => {
                    self.stats.failed += pa.values.len();
                    self.event(format!(
                        "produce {}..{} on {}: timed out",
                        pa.appended.base_offset, pa.appended.next_offset, pa.broker
                    ));
                }
                None => self.pending.push(pa),
            }
        }
        Ok(())
    }

    fn acknowledge(&mut self, pa: &PendingAck) -> SimResult {
        for (i, value) in pa.values.iter().enumerate() {
            let offset = pa.appended.base_offset + i as i64;
            if let Some(previous) = self.acked.get(&offset) {
                if previous != value {
                    return Err(format!(
                        "offset {offset} acknowledged twice: {previous:?} and then {value:?}"
                    ));
                }
            }
            if let Some(&other) = self.acked_offsets.get(value) {
                if other != offset {
                    return Err(format!(
                        "{value:?} acknowledged at offset {other} and at offset {offset}"
                    ));
                }
            }
            self.acked.insert(offset, value.clone());
            self.acked_offsets.insert(value.clone(), offset);
            let copies = self
                .brokers
                .iter()
                .filter(|b| b.mirror.get(offset as usize) == Some(value))
                .count();
            if copies < self.config.min_insync_replicas.max(1) as usize {
                self.stats.acked_below_min_isr += 1;
                self.event(format!(
                    "offset {offset} acknowledged with {copies} cop{} (min.insync.replicas={})",
                    if copies == 1 { "y" } else { "ies" },
                    self.config.min_insync_replicas
                ));
                if self.options.strict_min_isr {
                    return Err(format!(
                        "offset {offset} ({value:?}) acknowledged while only {copies} log(s) \
                         held it, min.insync.replicas={}",
                        self.config.min_insync_replicas
                    ));
                }
            }
        }
        self.stats.acked += pa.values.len();
        self.event(format!(
            "ACK {}..{} from {} (epoch {})",
            pa.appended.base_offset, pa.appended.next_offset, pa.broker, pa.appended.leader_epoch
        ));
        Ok(())
    }

    // ---- checking ----

    /// Brings every broker's copy of its log up to date with the log.
    fn refresh_mirrors(&mut self, full: bool) -> SimResult {
        for b in &mut self.brokers {
            let Some(p) = &b.partition else {
                continue;
            };
            let (start, end) = p.log_offsets();
            if start != 0 {
                return Err(format!(
                    "broker {}: log start offset moved to {start}",
                    b.id
                ));
            }
            let cached = b.mirror.len() as i64;
            if b.mirror_stale || end < cached {
                b.mirror = read_log(p).map_err(|e| format!("broker {}: {e}", b.id))?;
            } else if end > cached {
                let more =
                    read_values(p, cached, end).map_err(|e| format!("broker {}: {e}", b.id))?;
                b.mirror.extend(more);
            }
            b.mirror_stale = false;
            if full {
                let values = read_log(p).map_err(|e| format!("broker {}: {e}", b.id))?;
                if values != b.mirror {
                    return Err(format!(
                        "broker {}: its log changed without the simulation noticing",
                        b.id
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_invariants(&mut self) -> SimResult {
        let view = self.controller_view().clone();
        let image = &self.controller.image;
        if view.isr.is_empty() {
            return Err("the ISR is empty".into());
        }
        let distinct: BTreeSet<i32> = view.isr.iter().copied().collect();
        if distinct.len() != view.isr.len() {
            return Err(format!("the ISR {:?} has duplicates", view.isr));
        }
        if let Some(r) = view.isr.iter().find(|r| !view.replicas.contains(r)) {
            return Err(format!(
                "ISR member {r} is not a replica ({:?})",
                view.replicas
            ));
        }
        if view.leader != NO_LEADER {
            if !view.isr.contains(&view.leader) {
                return Err(format!(
                    "leader {} is not in the ISR {:?}",
                    view.leader, view.isr
                ));
            }
            if !image.is_live(view.leader) {
                return Err(format!("leader {} is fenced", view.leader));
            }
        }
        if view.leader_epoch < self.last_leader_epoch {
            return Err(format!(
                "the leader epoch went back from {} to {}",
                self.last_leader_epoch, view.leader_epoch
            ));
        }
        self.last_leader_epoch = view.leader_epoch;

        for b in &self.brokers {
            let Some(p) = &b.partition else {
                continue;
            };
            let (_, hw) = p.offsets();
            let (_, leo) = p.log_offsets();
            if hw < 0 || hw > leo {
                return Err(format!(
                    "broker {}: high watermark {hw} outside its log (end {leo})",
                    b.id
                ));
            }
            let (leader, epoch) = p.leadership();
            if leader == b.id {
                if let Some(&(incarnation, e, seen)) = self.leader_hw.get(&b.id) {
                    if incarnation == b.incarnation && e == epoch && hw < seen {
                        return Err(format!(
                            "broker {} leading epoch {epoch}: high watermark went back from \
                             {seen} to {hw}",
                            b.id
                        ));
                    }
                }
                self.leader_hw.insert(b.id, (b.incarnation, epoch, hw));
            } else {
                self.leader_hw.remove(&b.id);
            }
        }

        let mut holders: Vec<(i32, &str)> = if self.options.leader_only {
            Vec::new()
        } else {
            view.isr.iter().map(|&r| (r, "ISR member")).collect()
        };
        if view.leader != NO_LEADER {
            holders.push((view.leader, "leader"));
        }
        for (id, role) in holders {
            let mirror = &self.broker(id).mirror;
            for (&offset, value) in &self.acked {
                let found = mirror.get(offset as usize);
                if found != Some(value) {
                    return Err(format!(
                        "acknowledged record {value:?} at offset {offset} is missing from \
                         {role} {id} (it has {found:?} there, log end {})",
                        mirror.len()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Runs after every step: refresh the cached logs, collect acknowledgements, check.
    fn end_step(&mut self) -> SimResult {
        let full = self.step.is_multiple_of(FULL_VERIFY_EVERY);
        self.refresh_mirrors(full)?;
        self.collect_acks()?;
        self.check_invariants()?;
        let line = format!(
            "#{} t+{}ms: {}",
            self.step,
            self.now - SIM_START_MS,
            self.events.join("; ")
        );
        self.events.clear();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.digest, &line).hash(&mut hasher);
        self.digest = hasher.finish();
        self.trace.push_back(line);
        while self.trace.len() > self.options.trace_steps {
            self.trace.pop_front();
        }
        Ok(())
    }

    fn random_step(&mut self) -> SimResult {
        self.step += 1;
        self.stats.steps += 1;
        let total: u32 = ACTIONS.iter().map(|&(_, w)| w).sum();
        let mut roll = self.rng.gen_range(0..total);
        let mut action = ACTIONS[0].0;
        for &(a, w) in ACTIONS {
            if roll < w {
                action = a;
                break;
            }
            roll -= w;
        }
        match action {
            Action::Produce => self.produce()?,
            Action::Replicate => self.replicate()?,
            Action::IsrCheck => self.isr_check(),
            Action::DeliverIsr => self.deliver_some_isr(),
            Action::SyncMetadata => self.sync_some_metadata(),
            Action::AdvanceClock => self.advance_clock(300),
            Action::Crash => self.random_crash()?,
            Action::Restart => self.random_restart()?,
            Action::Isolate => self.isolate(),
            Action::Heal => self.heal(),
            Action::PreferredElection => self.preferred_election(),
            Action::ControllerOutage => self.controller_outage(),
            Action::ControllerRecovery => self.controller_recovery(),
        }
        self.end_step()
    }

    // ---- the end of a seed ----

    /// One round of a healthy cluster: time passes, metadata spreads, requests land,
    /// every follower fetches, leaders check their ISR.
    fn settle_round(&mut self) -> SimResult {
        self.step += 1;
        self.advance_clock(150);
        for _ in 0..2 {
            for follower in BROKER_IDS {
                if let Some(i) = self.fetches.iter().position(|f| f.follower == follower) {
                    let fetch = self.fetches.remove(i);
                    self.deliver_fetch(fetch);
                }
                if let Some(leader) = self.fetcher_target(follower) {
                    if let Some(fetch) = self.issue_fetch(follower, leader) {
                        self.deliver_fetch(fetch);
                    }
                }
            }
        }
        self.isr_check();
        self.end_step()
    }

    /// Every broker up, reachable and ready, the ISR full, every log at the leader's
    /// high watermark.
    fn converged(&self) -> bool {
        let view = self.controller_view();
        if view.leader == NO_LEADER || view.isr.len() != view.replicas.len() {
            return false;
        }
        let Some(leader) = self.broker(view.leader).partition.as_ref() else {
            return false;
        };
        let (_, hw) = leader.offsets();
        self.brokers.iter().all(|b| {
            b.reachable()
                && b.ready
                && b.image.record_count == self.controller.image.record_count
                && b.partition().log_offsets().1 == hw
                && b.partition().leadership() == (view.leader, view.leader_epoch)
        })
    }

    fn converge(&mut self, phase: &str) -> SimResult {
        for _ in 0..CONVERGE_ROUNDS {
            self.settle_round()?;
            if self.converged() {
                self.event(format!("converged {phase}"));
                return Ok(());
            }
        }
        Err(format!(
            "replication did not converge {phase} within {CONVERGE_ROUNDS} rounds"
        ))
    }

    /// The three logs are identical and hold every acknowledged record.
    fn check_final_logs(&mut self, phase: &str) -> SimResult {
        let mut logs = Vec::new();
        for b in &self.brokers {
            let log = read_log(b.partition()).map_err(|e| format!("broker {}: {e}", b.id))?;
            logs.push((b.id, log));
        }
        let (first_id, first) = &logs[0];
        for (id, log) in &logs[1..] {
            if log != first {
                let at = first
                    .iter()
                    .zip(log.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(first.len().min(log.len()));
                return Err(format!(
                    "{phase}: the logs of brokers {first_id} and {id} differ at offset {at} \
                     (ends {} and {})",
                    first.len(),
                    log.len()
                ));
            }
        }
        for (&offset, value) in &self.acked {
            if first.get(offset as usize) != Some(value) {
                return Err(format!(
                    "{phase}: acknowledged record {value:?} at offset {offset} is not in the \
                     final logs"
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> SimResult {
        self.event("END: heal everything, restart whoever is down");
        self.controller_recovery();
        for id in BROKER_IDS {
            self.broker_mut(id).isolated = false;
            if !self.broker(id).is_up() {
                self.restart(id)?;
            }
        }
        self.converge("after healing")?;
        self.check_final_logs("after healing")?;

        self.event("END: kill or shut down every broker, restart them all");
        for id in BROKER_IDS {
            let clean = self.rng.gen_bool(0.5);
            self.crash(id, clean)?;
        }
        for id in BROKER_IDS {
            self.restart(id)?;
        }
        self.converge("after restarting every broker")?;
        self.refresh_mirrors(true)?;
        self.check_final_logs("after restarting every broker")
    }

    // ---- reporting ----

    fn state_dump(&self) -> String {
        let mut out = String::new();
        let v = self.controller_view();
        let _ = writeln!(
            out,
            "controller: leader={} epoch={} isr={:?} replicas={:?} live={:?} records={}",
            v.leader,
            v.leader_epoch,
            v.isr,
            v.replicas,
            self.controller.image.live_brokers(),
            self.controller.image.record_count
        );
        for b in &self.brokers {
            let seen = b
                .view()
                .map(|v| {
                    format!(
                        "leader={} epoch={} isr={:?}",
                        v.leader, v.leader_epoch, v.isr
                    )
                })
                .unwrap_or_default();
            let _ = write!(
                out,
                "broker {}: {}{}{} incarnation={} image(records={} {seen})",
                b.id,
                if b.is_up() { "up" } else { "DOWN" },
                if b.isolated { " ISOLATED" } else { "" },
                if b.ready { " ready" } else { " not-ready" },
                b.incarnation,
                b.image.record_count,
            );
            if let Some(p) = &b.partition {
                let (fetch_offset, last_epoch, epoch, _) = p.follower_position();
                let _ = write!(
                    out,
                    " leadership={:?} log_end={fetch_offset} latest_epoch={last_epoch} \
                     applied_epoch={epoch} hw={}",
                    p.leadership(),
                    p.offsets().1
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "acknowledged offsets: {} (last {:?}); pending produce requests: {}; \
             fetches in flight: {}; AlterIsr in flight: {}",
            self.acked.len(),
            self.acked.keys().next_back(),
            self.pending.len(),
            self.fetches.len(),
            self.isr_requests.len()
        );
        out
    }

    fn report(&mut self, error: &str) -> String {
        if !self.events.is_empty() {
            let line = format!(
                "#{} t+{}ms (failing step): {}",
                self.step,
                self.now - SIM_START_MS,
                self.events.join("; ")
            );
            self.trace.push_back(line);
        }
        let mut out = format!(
            "seed {seed}: {error}\nreplay: BROOK_SIM_SEED={seed} cargo test --release -p \
             brook-broker --test replication_sim -- --nocapture\ntiming: {:?}\n",
            self.timing,
            seed = self.seed
        );
        out.push_str(&self.state_dump());
        let _ = writeln!(out, "last steps:");
        for line in &self.trace {
            let _ = writeln!(out, "  {line}");
        }
        out
    }
}

/// Runs one seed; `Err` is a full report.
fn run_seed(seed: u64, options: Options) -> Result<(Stats, u64), String> {
    let mut sim = Sim::new(seed, options).map_err(|e| format!("seed {seed}: {e}"))?;
    let mut outcome = Ok(());
    for _ in 0..options.steps {
        outcome = sim.random_step();
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome = sim.finish();
    }
    match outcome {
        Ok(()) => Ok((sim.stats, sim.digest)),
        Err(e) => Err(sim.report(&e)),
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

#[test]
fn replication_keeps_every_acknowledged_record() {
    let options = Options::from_env();
    let seeds: Vec<u64> = match env_number::<u64>("BROOK_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_number("BROOK_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let keep_going = env_flag("BROOK_SIM_KEEP_GOING");
    let threads = env_number("BROOK_SIM_THREADS")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, seeds.len().max(1));
    let started = Instant::now();
    let failed = AtomicBool::new(false);
    let seeds_run = AtomicUsize::new(0);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let totals: Mutex<Stats> = Mutex::new(Stats::default());
    std::thread::scope(|s| {
        for worker in 0..threads {
            let seeds = &seeds;
            let (failed, seeds_run, failures, totals) = (&failed, &seeds_run, &failures, &totals);
            s.spawn(move || {
                for &seed in seeds.iter().skip(worker).step_by(threads) {
                    if failed.load(Ordering::Relaxed) && !keep_going {
                        return;
                    }
                    seeds_run.fetch_add(1, Ordering::Relaxed);
                    match run_seed(seed, options) {
                        Ok((stats, digest)) => {
                            if env_flag("BROOK_SIM_DIGEST") {
                                println!("seed {seed}: digest {digest:016x} {stats:?}");
                            }
                            totals.lock().expect("stats lock").add(&stats)
                        }
                        Err(report) => {
                            failed.store(true, Ordering::Relaxed);
                            failures.lock().expect("failures lock").push((seed, report));
                        }
                    }
                }
            });
        }
    });
    let seeds_run = seeds_run.into_inner();
    let totals = totals.into_inner().expect("stats lock");
    println!(
        "replication simulation: {seeds_run} seeds x {} steps in {:.1?} ({threads} threads); \
         totals of the passing seeds: {totals:?}",
        options.steps,
        started.elapsed()
    );
    let mut failures = failures.into_inner().expect("failures lock");
    failures.sort_by_key(|(seed, _)| *seed);
    if let Some((_, report)) = failures.first() {
        if keep_going {
            for (_, report) in &failures {
                println!("{}", report.lines().next().unwrap_or_default());
            }
        }
        panic!(
            "replication simulation: {} of the {seeds_run} seeds run failed; the lowest:\n{report}",
            failures.len()
        );
    }
}

// ---- hand-written schedules, minimised from failing seeds ----

/// Three replicas of `t`-0 driven step by step: the controller's image, each live
/// broker's partition (every broker is ready and applies what it is sent), a clock.
struct Script {
    _dir: tempfile::TempDir,
    config: Arc<TopicConfig>,
    settings: BrokerSettings,
    image: MetadataImage,
    partitions: BTreeMap<i32, Arc<Partition>>,
    now: i64,
    runtime: tokio::runtime::Runtime,
}

impl Script {
    /// Broker 1 leads epoch 0, the ISR is [1, 2, 3].
    fn new() -> Script {
        Script::with_replicas(BROKER_IDS.to_vec())
    }

    /// The first of `replicas` leads epoch 0, every replica is in the ISR.
    fn with_replicas(replicas: Vec<i32>) -> Script {
        let dir = sim_temp_dir().expect("a temporary directory");
        let config = topic_config();
        let now = SIM_START_MS;
        let mut partitions = BTreeMap::new();
        for id in BROKER_IDS {
            let path = dir.path().join(format!("broker-{id}")).join("t-0");
            let p = Partition::open(&path, Arc::from(TOPIC), PARTITION, id, config.clone(), now)
                .expect("opening a partition");
            partitions.insert(id, Arc::new(p));
        }
        let script = Script {
            _dir: dir,
            config,
            settings: broker_config().broker_settings(),
            image: initial_image(0, replicas),
            partitions,
            now,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio runtime"),
        };
        for id in BROKER_IDS {
            script.apply(id);
        }
        script
    }

    fn p(&self, id: i32) -> &Partition {
        self.partitions.get(&id).expect("a live broker")
    }

    fn view(&self) -> &PartitionImage {
        self.image.partition(TOPIC, PARTITION).expect("the topic")
    }

    /// Broker `id` applies the controller's current image.
    fn apply(&self, id: i32) {
        self.p(id).apply_leadership(self.view(), self.now);
    }

    /// The controller decides `req` (the real `decide`) and appends what it decided; the
    /// brokers in `to` apply the new image. Returns whether it appended anything.
    fn request(&mut self, req: ControllerRequest, to: &[i32]) -> bool {
        match decisions::decide(&self.settings, &self.image, true, &req) {
            Ok((records, _)) if !records.is_empty() => {
                self.commit(records, to);
                true
            }
            Ok(_) | Err(_) => false,
        }
    }

    /// The controller appends `records`; the brokers in `to` apply the new image.
    fn commit(&mut self, records: Vec<MetadataRecord>, to: &[i32]) {
        assert!(!records.is_empty(), "the controller decided nothing");
        for r in &records {
            self.image.apply(r);
        }
        for &id in to {
            self.apply(id);
        }
    }

    /// The leader's ISR check (`isr_loop`), which must ask for a change.
    fn isr_change(&self, leader: i32, lag_ms: i64) -> IsrChange {
        self.p(leader)
            .isr_change(self.now, lag_ms, |r| self.image.is_live(r))
            .expect("the leader asks for an ISR change")
    }

    /// The controller decides an AlterIsr request and applies what it accepts; every
    /// broker in `to` applies the result. Returns whether the ISR changed.
    fn alter_isr(&mut self, leader: i32, change: &IsrChange, to: &[i32]) -> bool {
        let request = ControllerRequest::AlterIsr {
            leader,
            incarnation: 0,
            partitions: vec![IsrItem {
                topic: TOPIC.to_string(),
                partition: PARTITION,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: change.isr.clone(),
            }],
        };
        self.request(request, to)
    }

    /// Broker `id`'s session expires: the controller fences it; the brokers in `to`
    /// apply the result.
    fn fence(&mut self, id: i32, to: &[i32]) {
        let fenced = self.request(ControllerRequest::FenceBroker { id }, to);
        assert!(fenced, "the controller decided nothing");
    }

    /// A heartbeat from broker `id` (incarnation 0) reaches the controller; the brokers
    /// in `to` apply the result.
    fn heartbeat(&mut self, id: i32, to: &[i32]) {
        let request = ControllerRequest::BrokerHeartbeat {
            id,
            host: HOST.to_string(),
            port: port(id),
            incarnation: 0,
            listeners: vec![],
            rack: None,
        };
        let changed = self.request(request, to);
        assert!(changed, "the controller decided nothing");
    }

    /// After a failover: if someone leads, its log holds every acknowledged value.
    fn assert_leader_has(&self, acknowledged: &[&str]) {
        let leader = self.view().leader;
        if leader == NO_LEADER {
            return;
        }
        let log = self.values(leader);
        for value in acknowledged {
            assert!(
                log.iter().any(|v| v == value),
                "the acknowledged record {value} is lost: the new leader {leader} has {log:?}"
            );
        }
    }

    fn produce(&self, leader: i32, value: &str) -> Appended {
        let batch = batch_of(&[Bytes::from(value.to_string())], self.now).expect("a batch");
        let min_insync = Some(self.config.min_insync_replicas.max(1) as usize);
        self.p(leader)
            .append(&batch, self.now, min_insync)
            .expect("the leader appends")
    }

    /// One replica fetch, answered and applied at once. Returns the answer's summary.
    fn fetch(&self, follower: i32, leader: i32) -> String {
        let f = &self.partitions[&follower];
        let (asked, max_bytes, fetched_epoch) = replica_fetch(follower, f);
        let response = answer_fetch(self.p(leader), follower, &asked, max_bytes, self.now);
        let summary = response.summary();
        let data = response.receive().expect("reading the records");
        apply_fetched(f, fetched_epoch, &data, self.now).expect("applying the fetch");
        summary
    }

    /// Whether the acks=all producer of `appended` has its acknowledgement.
    fn acknowledged(&self, leader: i32, appended: &Appended) -> bool {
        let waiting = self.p(leader).wait_replicated(appended, far_deadline());
        matches!(poll_once(&self.runtime, waiting), Some(Ok(())))
    }

    fn values(&self, id: i32) -> Vec<String> {
        read_log(self.p(id))
            .expect("reading a log")
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// Minimised from seeds 41 and 4463: with the controller down (a quorum election),
/// the leader asks to shrink the ISR to itself, then, once broker 3 has caught up,
/// for [1, 3]: a shrink too as it sees it, computed against ISR [1, 2, 3]. The new
/// controller applies both in order. The first makes the leader count only itself,
/// so it acknowledges `b` alone; the second used to be accepted (`alter_isr` checked
/// only the leader epoch) and put 3 back in the ISR without `b`: the leader died, 3
/// took over, and the acknowledged `b` was gone. Now it is refused as stale (its
/// partition epoch is older), and `b` waits for min.insync.replicas.
#[test]
fn a_delayed_alter_isr_does_not_lose_acknowledged_records() {
    let lag_ms = 1000;
    let mut s = Script::new();
    s.fetch(2, 1);
    s.fetch(3, 1);
    let a = s.produce(1, "a");
    for _ in 0..2 {
        s.fetch(2, 1);
        s.fetch(3, 1);
    }
    assert!(s.acknowledged(1, &a));

    // The controller is down. x is written and nobody fetches it for longer than the
    // lag (a follower at the log end would count as caught up, as in Kafka): the
    // leader asks for ISR [1] (the request waits for a controller).
    let x = s.produce(1, "x");
    s.now += lag_ms + 500;
    let shrink = s.isr_change(1, lag_ms);
    assert_eq!(shrink.isr, vec![1]);
    // Broker 3 catches up (x, then the log end); the next ISR check asks for [1, 3]
    // (2 still lags).
    s.fetch(3, 1);
    s.fetch(3, 1);
    s.now += 250;
    let readd = s.isr_change(1, lag_ms);
    assert_eq!(readd.isr, vec![1, 3]);
    // Meanwhile a producer writes b (the leader still sees ISR [1, 2, 3]).
    let b = s.produce(1, "b");

    // A new controller applies both requests, in the order they were sent. With ISR
    // [1] the leader acknowledges b on its own; the second request puts 3 back.
    assert!(s.alter_isr(1, &shrink, &BROKER_IDS));
    let x_acknowledged = s.acknowledged(1, &x);
    let b_acknowledged = s.acknowledged(1, &b);
    s.alter_isr(1, &readd, &BROKER_IDS);

    // Broker 1 dies; its session expires and the first live ISR member leads.
    s.partitions.remove(&1);
    s.fence(1, &[2, 3]);
    let mut acknowledged = vec!["a"];
    acknowledged.extend(x_acknowledged.then_some("x"));
    acknowledged.extend(b_acknowledged.then_some("b"));
    s.assert_leader_has(&acknowledged);
}

/// Minimised from seed 10784: broker 1 leads epoch 0 and is cut off before anything
/// is produced; it is fenced and 2 leads epoch 1. Back, 1 sends fetches with its latest
/// epoch, 0, which it led without writing; the leader has no epoch 0 and answers
/// "diverging at 0", `truncate_diverging` finds nothing to cut (the log ends at 0); it
/// used to keep the epoch, so the same exchange repeated forever. Now it trims the
/// epoch cache even when the log is not truncated, as Kafka does.
#[test]
fn a_former_leader_that_wrote_nothing_catches_up() {
    let mut s = Script::new();
    s.fence(1, &[2, 3]);
    assert_eq!(s.view().leader, 2);
    let a = s.produce(2, "a");
    s.fetch(3, 2);
    s.fetch(3, 2);
    assert!(s.acknowledged(2, &a));

    // Broker 1 is reachable again: it heartbeats, is unfenced and follows 2.
    s.heartbeat(1, &BROKER_IDS);
    let mut last = String::new();
    for _ in 0..20 {
        last = s.fetch(1, 2);
    }
    assert_eq!(
        s.values(1),
        s.values(2),
        "broker 1 never catches up; every fetch is answered: {last}"
    );
}

/// Minimised from seed 3927 (a bug this simulation found, fixed since): ISR [1, 2],
/// replicas [1, 3, 2]. With the controller down, the leader's request to shrink the ISR
/// to [1] waits; broker 3 catches up and the leader asks to add it (ISR [1, 2, 3],
/// counted as pending). The shrink request's task gives up; it used to drop the
/// *other* request's pending ISR, so the leader acknowledged `b` without 3, the new
/// controller accepted the expansion, the leader died, 3 took over and `b` was gone.
#[test]
fn a_pending_isr_expansion_is_counted_until_the_controller_decides() {
    let lag_ms = 1000;
    let mut s = Script::with_replicas(vec![1, 3, 2]);
    s.fetch(2, 1);
    s.fetch(3, 1);
    let a = s.produce(1, "a");
    s.fetch(2, 1);
    s.now += lag_ms + 500;
    s.fetch(2, 1);
    // 3 lags: ISR [1, 2].
    let shrink = s.isr_change(1, lag_ms);
    assert_eq!(shrink.isr, vec![1, 2]);
    assert!(s.alter_isr(1, &shrink, &BROKER_IDS));
    assert!(s.acknowledged(1, &a));

    // The controller is down. x is written and nobody fetches for a while: the leader
    // asks for ISR [1] (the request waits for a controller).
    let x = s.produce(1, "x");
    s.now += lag_ms + 500;
    let waiting = s.isr_change(1, lag_ms);
    assert_eq!(waiting.isr, vec![1]);
    // 2 and 3 catch up; the next check asks to add 3 (pending: the leader counts 3).
    s.fetch(2, 1);
    s.fetch(2, 1);
    s.fetch(3, 1);
    s.fetch(3, 1);
    s.now += 250;
    let expand = s.isr_change(1, lag_ms);
    assert_eq!(expand.isr, vec![1, 2, 3]);
    let b = s.produce(1, "b");
    s.fetch(2, 1);
    s.fetch(2, 1);
    assert!(!s.acknowledged(1, &b), "3 is pending: b waits for it");

    // The shrink request's task gives up (controller deadline); it forgets only its own
    // change, so the leader keeps counting 3 for b.
    s.p(1).isr_change_done(&waiting.isr, IsrOutcome::Unknown);
    s.fetch(2, 1);
    let b_acknowledged = s.acknowledged(1, &b);

    // A new controller accepts the expansion; then broker 1 dies and the first live
    // ISR member in replica order (3) leads.
    s.alter_isr(1, &expand, &BROKER_IDS);
    let x_acknowledged = s.acknowledged(1, &x);
    s.partitions.remove(&1);
    s.fence(1, &[2, 3]);
    let mut acknowledged = vec!["a"];
    acknowledged.extend(x_acknowledged.then_some("x"));
    acknowledged.extend(b_acknowledged.then_some("b"));
    s.assert_leader_has(&acknowledged);
}

/// One AlterIsr request carries the changes of many partitions: the controller decides
/// each on its own, answers each with Kafka's error code (which `isr_outcome` maps as
/// for a request of its own), and commits the accepted ones together.
#[test]
fn a_batched_alter_isr_is_answered_per_partition() {
    let mut image = initial_image(0, BROKER_IDS.to_vec());
    image.apply(&MetadataRecord::TopicCreated {
        name: "u".to_string(),
        topic_id: uuid::Uuid::from_u128(99),
        partitions: 2,
        replication_factor: 3,
        configs: topic_configs(),
        internal: false,
        assignment: vec![vec![1, 2, 3], vec![2, 3, 1]],
    });
    let item = |topic: &str, partition, leader_epoch, isr: &[i32]| IsrItem {
        topic: topic.to_string(),
        partition,
        leader_epoch,
        partition_epoch: 0,
        isr: isr.to_vec(),
    };
    let request = ControllerRequest::AlterIsr {
        leader: 1,
        incarnation: 0,
        partitions: vec![
            item(TOPIC, PARTITION, 0, &[1, 3]),
            item("u", 0, 0, &[1]),
            // Led by 2.
            item("u", 1, 0, &[1, 2]),
            item("u", 7, 0, &[1]),
            item(TOPIC, PARTITION, 3, &[1]),
        ],
    };
    let settings = broker_config().broker_settings();
    let (records, reply) =
        decisions::decide(&settings, &image, true, &request).expect("a decision");
    let ControllerReply::IsrAltered {
        results,
        metadata_records,
    } = reply
    else {
        panic!("unexpected reply {reply:?}");
    };
    let codes: Vec<i16> = results.iter().map(|(code, _)| *code).collect();
    assert_eq!(
        codes,
        vec![
            0,
            0,
            ResponseError::NotLeaderOrFollower.code(),
            ResponseError::UnknownTopicOrPartition.code(),
            ResponseError::FencedLeaderEpoch.code(),
        ]
    );
    let outcomes: Vec<IsrOutcome> = codes[2..]
        .iter()
        .map(|&c| decisions::isr_outcome(c))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            IsrOutcome::Outdated,
            IsrOutcome::Refused,
            IsrOutcome::Outdated
        ]
    );
    // The two accepted changes, appended together; the reply says where the log ends.
    assert_eq!(records.len(), 2);
    assert_eq!(metadata_records, image.record_count + 2);
    for r in &records {
        image.apply(r);
    }
    assert_eq!(image.partition(TOPIC, PARTITION).unwrap().isr, vec![1, 3]);
    assert_eq!(image.partition("u", 0).unwrap().isr, vec![1]);
    assert_eq!(image.partition("u", 1).unwrap().isr, vec![2, 3, 1]);
}
