//! A broker as one node of a cluster: the inter-broker network (raft and controller
//! RPCs on the controller listener), broker heartbeats, the controller's liveness
//! checks, ISR maintenance, and the replica fetchers that copy leaders' logs.
//!
//! Peers are reached only through the addresses in this node's `controller.quorum.voters`,
//! so a test can give each node its own (fault-injecting) path to every other node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use brook_meta::{MetadataImage, NO_LEADER};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, RequestKind, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::controller::{ControllerReply, ControllerRequest};
use crate::partition::IsrOutcome;
use crate::shared::{now_ms, ApiError, Shared, TopicPartition};

/// Brook's private API key for inter-broker RPCs on the controller listener (outside
/// Kafka's range, refused on client listeners).
pub const INTERNAL_API_KEY: i16 = 0x7B00;
const KIND_RAFT: u8 = 0;
const KIND_CONTROLLER: u8 = 1;
/// Transaction markers from a transaction coordinator to a partition leader.
const KIND_MARKERS: u8 = 2;
/// Largest inter-broker response accepted (a replica fetch is capped well below).
const MAX_PEER_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RAFT_RPC_TIMEOUT: Duration = Duration::from_millis(2000);
/// Replica fetch sizes (Kafka's `replica.fetch.max.bytes` / `replica.fetch.response.max.bytes`).
const REPLICA_FETCH_PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const REPLICA_FETCH_MAX_BYTES: i32 = 10 * 1024 * 1024;
const REPLICA_FETCH_VERSION: i16 = 12;

/// One connection to a peer, used by one caller at a time.
struct PeerConn {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl PeerConn {
    async fn connect(addr: &str) -> std::io::Result<PeerConn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {addr}"),
                )
            })??;
        stream.set_nodelay(true)?;
        Ok(PeerConn {
            stream,
            next_correlation_id: 1,
        })
    }

    fn correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        id
    }

    /// Writes one framed request and reads the response frame that answers it.
    async fn round_trip(&mut self, frame: &[u8], correlation_id: i32) -> std::io::Result<Bytes> {
        self.stream.write_all(frame).await?;
        let len = self.stream.read_i32().await?;
        if len < 4 || len as usize > MAX_PEER_RESPONSE_BYTES {
            return Err(invalid(format!("invalid response size {len}")));
        }
        let mut buf = BytesMut::zeroed(len as usize);
        self.stream.read_exact(&mut buf).await?;
        let got = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if got != correlation_id {
            return Err(invalid(format!(
                "response to correlation id {got}, expected {correlation_id}"
            )));
        }
        Ok(buf.freeze())
    }

    async fn internal(&mut self, kind: u8, payload: &[u8]) -> std::io::Result<Bytes> {
        let correlation_id = self.correlation_id();
        let mut frame = BytesMut::with_capacity(15 + payload.len());
        frame.put_i32(0);
        frame.put_i16(INTERNAL_API_KEY);
        frame.put_i16(0);
        frame.put_i32(correlation_id);
        frame.put_i16(-1);
        frame.put_u8(kind);
        frame.put_slice(payload);
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let mut response = self.round_trip(&frame, correlation_id).await?;
        Ok(response.split_off(4))
    }

    async fn fetch(&mut self, req: FetchRequest) -> std::io::Result<FetchResponse> {
        let correlation_id = self.correlation_id();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(REPLICA_FETCH_VERSION)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("brook-replica-fetcher")));
        let frame = brook_protocol::request::encode_request(&header, &RequestKind::Fetch(req))
            .map_err(|e| invalid(e.to_string()))?;
        let mut response = self.round_trip(&frame, correlation_id).await?;
        ResponseHeader::decode(
            &mut response,
            ApiKey::Fetch.response_header_version(REPLICA_FETCH_VERSION),
        )
        .map_err(|e| invalid(e.to_string()))?;
        FetchResponse::decode(&mut response, REPLICA_FETCH_VERSION)
            .map_err(|e| invalid(e.to_string()))
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Connections to every peer, one pool per purpose so raft traffic never queues behind
/// a controller request.
pub struct PeerNet {
    node_id: i32,
    voters: BTreeMap<i32, String>,
    raft: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
    controller: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
    markers: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
}

impl PeerNet {
    pub fn new(node_id: i32, voters: BTreeMap<i32, String>) -> Self {
        let pool = || {
            voters
                .keys()
                .filter(|&&id| id != node_id)
                .map(|&id| (id, tokio::sync::Mutex::new(None)))
                .collect()
        };
        PeerNet {
            node_id,
            raft: pool(),
            controller: pool(),
            markers: pool(),
            voters,
        }
    }

    pub fn address(&self, id: i32) -> Option<&str> {
        self.voters.get(&id).map(String::as_str)
    }

    async fn call(
        &self,
        pool: &HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
        target: i32,
        kind: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> std::io::Result<Bytes> {
        let (Some(slot), Some(addr)) = (pool.get(&target), self.voters.get(&target)) else {
            return Err(invalid(format!(
                "node {target} is not a voter known to node {}",
                self.node_id
            )));
        };
        let mut slot = slot.lock().await;
        let attempt = async {
            if slot.is_none() {
                *slot = Some(PeerConn::connect(addr).await?);
            }
            slot.as_mut()
                .expect("just connected")
                .internal(kind, payload)
                .await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => {
                *slot = None;
                Err(e)
            }
            Err(_) => {
                *slot = None;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("node {target} did not answer"),
                ))
            }
        }
    }
}

/// openraft's RPCs travel over the controller listeners.
pub struct RaftTransport(pub Arc<PeerNet>);

#[async_trait::async_trait]
impl brook_raft::Transport for RaftTransport {
    async fn send(
        &self,
        target: u64,
        _addr: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, std::io::Error> {
        let bytes = self
            .0
            .call(
                &self.0.raft,
                target as i32,
                KIND_RAFT,
                &payload,
                RAFT_RPC_TIMEOUT,
            )
            .await?;
        Ok(bytes.to_vec())
    }
}

/// Answers an inter-broker RPC frame (after the 10-byte request header).
pub async fn handle_internal(shared: &Arc<Shared>, body: &[u8]) -> Result<Vec<u8>, String> {
    let (&kind, payload) = body.split_first().ok_or("empty internal request")?;
    let crate::shared::MetaStore::Raft(quorum) = &shared.meta else {
        return Err("internal RPC to a broker that is not in a cluster".into());
    };
    match kind {
        KIND_RAFT => Ok(quorum.handle(payload).await),
        KIND_CONTROLLER => {
            let req: ControllerRequest = serde_json::from_slice(payload)
                .map_err(|e| format!("bad controller request: {e}"))?;
            let reply: Result<ControllerReply, ApiError> = if quorum.is_leader() {
                match shared.controller_on_leader(quorum, &req).await {
                    Ok(r) => r,
                    Err(why) => Err(not_controller(why)),
                }
            } else {
                Err(not_controller(None))
            };
            serde_json::to_vec(&reply).map_err(|e| e.to_string())
        }
        KIND_MARKERS => {
            let req: crate::txns::MarkerRequest =
                serde_json::from_slice(payload).map_err(|e| format!("bad marker request: {e}"))?;
            let codes = crate::txns::write_markers(shared, &req).await;
            serde_json::to_vec(&codes).map_err(|e| e.to_string())
        }
        other => Err(format!("unknown internal request kind {other}")),
    }
}

fn not_controller(why: Option<String>) -> ApiError {
    ApiError::new(
        ResponseError::NotController,
        why.unwrap_or_else(|| "this node is not the active controller".into()),
    )
}

struct Fetcher {
    partitions: Arc<Mutex<BTreeSet<TopicPartition>>>,
    task: JoinHandle<()>,
}

pub struct Cluster {
    pub node_id: i32,
    pub net: Arc<PeerNet>,
    shared: OnceLock<Weak<Shared>>,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
    /// Controller side: when each broker last heartbeated (ms).
    liveness: Mutex<HashMap<i32, i64>>,
    was_controller: AtomicBool,
    /// The broker serves as leader only after its first heartbeat is answered and its
    /// metadata has caught up with the controller's (Kafka brokers start fenced).
    ready: AtomicBool,
    /// Records the controller had applied when it answered our last heartbeat.
    controller_records: AtomicU64,
    /// This process among the broker's lives (Kafka's broker epoch): registered by the
    /// heartbeats, carried by ISR changes so the controller refuses a dead process's.
    pub incarnation: u64,
}

impl Cluster {
    pub fn new(node_id: i32, net: Arc<PeerNet>) -> Self {
        Cluster {
            node_id,
            net,
            shared: OnceLock::new(),
            fetchers: Mutex::new(HashMap::new()),
            liveness: Mutex::new(HashMap::new()),
            was_controller: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            controller_records: AtomicU64::new(0),
            incarnation: rand::random(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Forwards a controller request to node `leader`. `Err` means "try again".
    pub async fn forward(
        &self,
        leader: i32,
        req: &ControllerRequest,
    ) -> Result<Result<ControllerReply, ApiError>, Option<String>> {
        let payload = serde_json::to_vec(req).map_err(|e| Some(e.to_string()))?;
        let bytes = self
            .net
            .call(
                &self.net.controller,
                leader,
                KIND_CONTROLLER,
                &payload,
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| Some(format!("controller {leader}: {e}")))?;
        let reply: Result<ControllerReply, ApiError> = serde_json::from_slice(&bytes)
            .map_err(|e| Some(format!("bad controller reply: {e}")))?;
        match reply {
            Err(e) if e.code == ResponseError::NotController.code() => Err(Some(e.message)),
            other => Ok(other),
        }
    }

    /// Sends transaction markers to the broker leading their partitions; one error code
    /// per partition.
    pub async fn write_markers(
        &self,
        leader: i32,
        req: &crate::txns::MarkerRequest,
    ) -> Result<Vec<i16>, String> {
        let payload = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        let bytes = self
            .net
            .call(
                &self.net.markers,
                leader,
                KIND_MARKERS,
                &payload,
                Duration::from_secs(35),
            )
            .await
            .map_err(|e| format!("broker {leader}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("bad marker reply: {e}"))
    }

    /// Controller side of a heartbeat: remember when it arrived.
    pub fn heard_from(&self, id: i32) {
        self.liveness.lock().insert(id, now_ms());
    }

    /// Starts, stops and retargets replica fetchers to match the image: one fetcher per
    /// leader this broker follows partitions of.
    pub fn update_fetchers(&self, shared: &Shared, image: &MetadataImage) {
        let mut wanted: HashMap<i32, BTreeSet<TopicPartition>> = HashMap::new();
        if self.is_ready() {
            for p in shared.all_partitions() {
                let Some(view) = image.partition(&p.topic, p.index) else {
                    continue;
                };
                if view.leader != self.node_id && view.leader != NO_LEADER {
                    wanted
                        .entry(view.leader)
                        .or_default()
                        .insert((p.topic.clone(), p.index));
                }
            }
        }
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|leader, f| {
            let keep = wanted.contains_key(leader);
            if !keep {
                f.task.abort();
            }
            keep
        });
        for (leader, set) in wanted {
            match fetchers.get(&leader) {
                Some(f) => *f.partitions.lock() = set,
                None => {
                    let Some(weak) = self.shared.get() else {
                        continue;
                    };
                    let partitions = Arc::new(Mutex::new(set));
                    let task = tokio::spawn(fetch_loop(
                        weak.clone(),
                        self.net.clone(),
                        self.node_id,
                        leader,
                        partitions.clone(),
                    ));
                    fetchers.insert(leader, Fetcher { partitions, task });
                }
            }
        }
    }

    pub fn stop_fetchers(&self) {
        for (_, f) in self.fetchers.lock().drain() {
            f.task.abort();
        }
    }
}

/// Starts the cluster's background work once `shared` exists.
pub fn start(
    shared: &Arc<Shared>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let Some(cluster) = &shared.cluster else {
        return Vec::new();
    };
    let _ = cluster.shared.set(Arc::downgrade(shared));
    vec![
        tokio::spawn(apply_metadata_loop(shared.clone(), shutdown.clone())),
        tokio::spawn(heartbeat_loop(shared.clone(), shutdown.clone())),
        tokio::spawn(controller_loop(shared.clone(), shutdown.clone())),
        tokio::spawn(isr_loop(shared.clone(), shutdown)),
    ]
}

/// Applies every new image to the partitions (leaders, followers, deletions).
async fn apply_metadata_loop(
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let crate::shared::MetaStore::Raft(quorum) = &shared.meta else {
        return;
    };
    let mut images = quorum.subscribe();
    loop {
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = s.reconcile() {
                tracing::error!(error = %e, "applying metadata");
            }
        })
        .await;
        tokio::select! {
            changed = images.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    if let Some(c) = &shared.cluster {
        c.stop_fetchers();
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(cluster) = &shared.cluster else {
        return;
    };
    let every =
        Duration::from_millis(shared.config.int("broker.heartbeat.interval.ms").max(10) as u64);
    let (host, port) = shared.config.advertised.clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let req = ControllerRequest::BrokerHeartbeat {
            id: cluster.node_id,
            host: host.clone(),
            port: i32::from(port),
            incarnation: cluster.incarnation,
        };
        match shared.controller(req).await {
            Ok(ControllerReply::Heartbeat { metadata_records }) => {
                cluster
                    .controller_records
                    .store(metadata_records, Ordering::Release);
                if !cluster.is_ready() {
                    // Ready once our image has everything the controller had applied.
                    let image = shared.image();
                    if image.record_count >= metadata_records && image.is_live(cluster.node_id) {
                        tracing::info!(
                            node = cluster.node_id,
                            "caught up with the controller; serving partitions"
                        );
                        cluster.ready.store(true, Ordering::Release);
                        let s = shared.clone();
                        let _ = tokio::task::spawn_blocking(move || s.reconcile()).await;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "heartbeat to the controller failed"),
        }
    }
}

/// On the quorum leader: fence brokers that stopped heartbeating, and move leaderships
/// back to preferred replicas now and then.
async fn controller_loop(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let (Some(cluster), crate::shared::MetaStore::Raft(quorum)) = (&shared.cluster, &shared.meta)
    else {
        return;
    };
    let session_ms = shared.config.int("broker.session.timeout.ms").max(100);
    let rebalance = shared.config.flag("auto.leader.rebalance.enable");
    let rebalance_every_ms = shared
        .config
        .int("leader.imbalance.check.interval.seconds")
        .max(1)
        * 1000;
    let mut last_rebalance = now_ms();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if !quorum.is_leader() {
            cluster.was_controller.store(false, Ordering::Release);
            continue;
        }
        let now = now_ms();
        let image = quorum.image();
        if !cluster.was_controller.swap(true, Ordering::AcqRel) {
            // A new controller gives every broker a full session before fencing it.
            let mut live = cluster.liveness.lock();
            live.clear();
            for &id in image.brokers.keys() {
                live.insert(id, now);
            }
            tracing::info!(node = cluster.node_id, "became the active controller");
        }
        let expired: Vec<i32> = {
            let mut live = cluster.liveness.lock();
            image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter(|b| now - *live.entry(b.id).or_insert(now) > session_ms)
                .map(|b| b.id)
                .collect()
        };
        for id in expired {
            tracing::warn!(
                broker = id,
                session_timeout_ms = session_ms,
                "fencing broker that stopped heartbeating"
            );
            if let Err(e) = shared
                .controller(ControllerRequest::FenceBroker { id })
                .await
            {
                tracing::warn!(broker = id, error = %e, "fencing failed");
            }
        }
        if rebalance && now - last_rebalance >= rebalance_every_ms {
            last_rebalance = now;
            if let Err(e) = shared
                .controller(ControllerRequest::ElectPreferred { partitions: None })
                .await
            {
                tracing::warn!(error = %e, "preferred leader election failed");
            }
        }
    }
}

/// On every broker: ask the controller to shrink or expand the ISR of partitions it leads.
async fn isr_loop(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let max_lag_ms = shared.config.int("replica.lag.time.max.ms").max(1);
    let Some(incarnation) = shared.cluster.as_ref().map(|c| c.incarnation) else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(
        (max_lag_ms / 4).clamp(50, 1000) as u64
    ));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let image = shared.image();
        let now = now_ms();
        for p in shared.all_partitions() {
            let Some(change) = p.isr_change(now, max_lag_ms, |r| image.is_live(r)) else {
                continue;
            };
            let isr = change.isr;
            tracing::info!(topic = %p.topic, partition = p.index, ?isr, "asking the controller to change the ISR");
            let req = ControllerRequest::AlterIsr {
                topic: p.topic.to_string(),
                partition: p.index,
                leader: shared.config.node_id,
                incarnation,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: isr.clone(),
            };
            let shared2 = shared.clone();
            tokio::spawn(async move {
                let outcome = match shared2.controller(req).await {
                    Ok(_) => {
                        // Give metadata a moment to show it, so the next check starts
                        // from the new ISR.
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                        while tokio::time::Instant::now() < deadline
                            && shared2
                                .image()
                                .partition(&p.topic, p.index)
                                .is_some_and(|v| v.isr != isr)
                        {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        let s = shared2.clone();
                        let _ = tokio::task::spawn_blocking(move || s.reconcile()).await;
                        IsrOutcome::Accepted
                    }
                    Err(e) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "ISR change refused");
                        isr_outcome(e.code)
                    }
                };
                p.isr_change_done(&isr, outcome);
            });
        }
    }
}

/// How a leader must treat a refused ISR change (see [`IsrOutcome`]).
fn isr_outcome(code: i16) -> IsrOutcome {
    let is = |e: ResponseError| e.code() == code;
    if is(ResponseError::InvalidUpdateVersion)
        || is(ResponseError::StaleBrokerEpoch)
        || is(ResponseError::FencedLeaderEpoch)
        || is(ResponseError::NotLeaderOrFollower)
    {
        IsrOutcome::Outdated
    } else if is(ResponseError::IneligibleReplica)
        || is(ResponseError::InvalidRequest)
        || is(ResponseError::UnknownTopicOrPartition)
    {
        IsrOutcome::Refused
    } else {
        IsrOutcome::Unknown
    }
}

/// Copies the partitions this broker follows from one leader, as Kafka's replica
/// fetcher does: Fetch with this broker's replica id, from each partition's log end,
/// with the last fetched epoch so the leader can report divergence.
async fn fetch_loop(
    shared: Weak<Shared>,
    net: Arc<PeerNet>,
    node_id: i32,
    leader: i32,
    partitions: Arc<Mutex<BTreeSet<TopicPartition>>>,
) {
    let wait_ms = 500;
    let mut conn: Option<PeerConn> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let wanted: Vec<TopicPartition> = partitions.lock().iter().cloned().collect();
        let mut by_topic: BTreeMap<Arc<str>, Vec<FetchPartition>> = BTreeMap::new();
        // The leader epoch each partition is fetched in: its response applies only if
        // metadata has not moved on meanwhile.
        let mut sent_in: BTreeMap<TopicPartition, i32> = BTreeMap::new();
        for (topic, index) in &wanted {
            let Some(p) = strong.partition(topic, *index) else {
                continue;
            };
            let (fetch_offset, last_epoch, leader_epoch, log_start) = p.follower_position();
            sent_in.insert((topic.clone(), *index), leader_epoch);
            by_topic.entry(topic.clone()).or_default().push(
                FetchPartition::default()
                    .with_partition(*index)
                    .with_current_leader_epoch(leader_epoch)
                    .with_fetch_offset(fetch_offset)
                    .with_last_fetched_epoch(last_epoch)
                    .with_log_start_offset(log_start)
                    .with_partition_max_bytes(REPLICA_FETCH_PARTITION_MAX_BYTES),
            );
        }
        if by_topic.is_empty() {
            drop(strong);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(node_id))
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(REPLICA_FETCH_MAX_BYTES)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, parts)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(parts)
                    })
                    .collect(),
            );
        let Some(addr) = net.address(leader).map(str::to_string) else {
            tracing::error!(
                leader,
                "no address for the leader in controller.quorum.voters"
            );
            return;
        };
        drop(strong);
        let attempt = async {
            if conn.is_none() {
                conn = Some(PeerConn::connect(&addr).await?);
            }
            conn.as_mut().expect("connected").fetch(req).await
        };
        let response = match tokio::time::timeout(
            Duration::from_millis(wait_ms as u64 + 5_000),
            attempt,
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(1000));
                continue;
            }
            Err(_) => {
                conn = None;
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let mut errors = false;
        for topic in response.responses {
            for pd in topic.partitions {
                let Some(p) = strong.partition(&topic.topic.0, pd.partition_index) else {
                    continue;
                };
                let Some(&epoch) = sent_in.get(&(p.topic.clone(), pd.partition_index)) else {
                    continue; // not asked for
                };
                let outcome = apply_fetched(&p, epoch, &pd);
                if let Err(e) = outcome {
                    errors = true;
                    tracing::debug!(topic = %topic.topic.0, partition = pd.partition_index, leader, error = %e, "replica fetch");
                }
            }
        }
        drop(strong);
        if errors {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn apply_fetched(
    p: &crate::partition::Partition,
    fetched_epoch: i32,
    pd: &kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<(), String> {
    let now = now_ms();
    if pd.error_code == ResponseError::OffsetOutOfRange.code() {
        let (_, leo) = p.log_offsets();
        if pd.log_start_offset > leo {
            return p
                .reset_to(fetched_epoch, pd.log_start_offset)
                .map_err(|e| e.to_string());
        }
        return Err(format!(
            "offset out of range (leader log start {})",
            pd.log_start_offset
        ));
    }
    if pd.error_code != 0 {
        return Err(format!("error code {}", pd.error_code));
    }
    if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
        return p
            .truncate_diverging(
                fetched_epoch,
                pd.diverging_epoch.epoch,
                pd.diverging_epoch.end_offset,
            )
            .map_err(|e| e.to_string());
    }
    let records: &[u8] = pd.records.as_deref().unwrap_or(&[]);
    p.append_replicated(
        fetched_epoch,
        brook_protocol::batch::whole_batches(records),
        pd.high_watermark,
        pd.log_start_offset,
        now,
    )
    .map_err(|e| e.to_string())
}
