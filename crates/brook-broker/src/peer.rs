//! The inter-broker transport: framed requests to peers on their controller listeners,
//! one connection pool per purpose (raft, controller requests, broker heartbeats,
//! transaction markers) so raft traffic and heartbeats never queue behind the others.
//!
//! Peers are reached only through the addresses in this node's `controller.quorum.voters`,
//! so a test can give each node its own (fault-injecting) path to every other node.
//! When this node's controller listener uses TLS, so do its connections to peers'
//! (the truststore checks the peer and its host name; the keystore is the client
//! certificate). When it uses SASL, each connection logs in with SASL/PLAIN as the
//! `username`/`password` of the listener's PLAIN JAAS line, as Kafka's controllers do
//! (SCRAM credentials live in the very metadata the quorum has to agree on first).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, RequestKind, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::controller::{ControllerReply, ControllerRequest};
use crate::error::ApiError;
pub use crate::sasl::PeerLogin;

/// Markers for one producer in some partitions of this broker (the inter-broker form of
/// Kafka's WriteTxnMarkers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkerRequest {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
    pub partitions: Vec<(String, i32)>,
}

/// KIP-890 verification asked of the transaction coordinator of `transactional_id` by
/// the leader of a partition that received transactional records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyTxnRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub topic: String,
    pub partition: i32,
}

/// A share-partition's stored state as it travels between brokers: the start offset
/// and (first, last, state, delivery count) ranges (see `brook_coord::share::records`).
pub type WireShareState = (i64, Vec<(i64, i64, i8, i16)>);

/// Share-partition state kept by the group's coordinator, asked or written by the
/// broker leading the partition when that is another broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShareStateRequest {
    /// The stored state of (group, topic id, partition), if any.
    Read {
        group: String,
        topic: uuid::Uuid,
        partition: i32,
    },
    /// Store these states of the group's share-partitions; the answer is an error code.
    Write {
        group: String,
        states: Vec<(uuid::Uuid, i32, WireShareState)>,
    },
    /// Drop the live state of these share-partitions (their record was altered or
    /// deleted), so the next fetch loads it again; the answer is an error code.
    Forget {
        group: String,
        partitions: Vec<(uuid::Uuid, i32)>,
    },
}

/// Brook's private API key for inter-broker RPCs on the controller listener (outside
/// Kafka's range, refused on client listeners).
pub const INTERNAL_API_KEY: i16 = 0x7B00;
pub(super) const KIND_RAFT: u8 = 0;
pub(super) const KIND_CONTROLLER: u8 = 1;
/// Transaction markers from a transaction coordinator to a partition leader.
pub(super) const KIND_MARKERS: u8 = 2;
/// KIP-890 verification from a partition leader to a transaction coordinator.
pub(super) const KIND_VERIFY_TXN: u8 = 3;
/// Share-partition state read from or written to the group's coordinator.
pub(super) const KIND_SHARE_STATE: u8 = 4;
/// A Kafka request of the admin API run by the broker that owns what it asks about
/// (a group's coordinator, a partition's leader): see `connection::internal`.
pub(super) const KIND_KAFKA: u8 = 5;
/// The admin API's figures (offsets, size) of replicas another broker holds.
pub(super) const KIND_FIGURES: u8 = 6;

/// A Kafka request run for the admin API by another broker: the principal it runs
/// as (type and name) and the caller's address (for host-based ACLs), each a `u16`
/// length then UTF-8, then the request frame (header and body, no size prefix). The sender is a node (on a SASL controller listener one
/// allowed CLUSTER_ACTION), trusted to name the admin API's caller as it found it.
#[derive(Debug, PartialEq, Eq)]
pub struct KafkaEnvelope<'a> {
    pub principal_type: &'a str,
    pub principal_name: &'a str,
    /// The admin API caller's `ip:port`.
    pub caller: &'a str,
    pub frame: &'a [u8],
}

impl<'a> KafkaEnvelope<'a> {
    pub fn encode(
        (principal_type, principal_name): (&str, &str),
        caller: &str,
        frame: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            6 + principal_type.len() + principal_name.len() + caller.len() + frame.len(),
        );
        for part in [principal_type, principal_name, caller] {
            // Principal names are short; a longer one is cut rather than mis-framed.
            let bytes = &part.as_bytes()[..part.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(frame);
        out
    }

    pub fn decode(payload: &'a [u8]) -> Result<Self, String> {
        fn part<'b>(rest: &mut &'b [u8]) -> Result<&'b str, String> {
            let (len, tail) = rest.split_first_chunk::<2>().ok_or("truncated principal")?;
            let len = u16::from_be_bytes(*len) as usize;
            let (text, tail) = tail.split_at_checked(len).ok_or("truncated principal")?;
            *rest = tail;
            std::str::from_utf8(text).map_err(|e| format!("principal not UTF-8: {e}"))
        }
        let mut rest = payload;
        let principal_type = part(&mut rest)?;
        let principal_name = part(&mut rest)?;
        let caller = part(&mut rest)?;
        Ok(KafkaEnvelope {
            principal_type,
            principal_name,
            caller,
            frame: rest,
        })
    }
}

/// An internal RPC kind's name, as its request time metrics label it
/// (`Internal:<name>`); `None` for a kind Brook does not have.
pub fn internal_kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        KIND_RAFT => "Raft",
        KIND_CONTROLLER => "Controller",
        KIND_MARKERS => "Markers",
        KIND_VERIFY_TXN => "VerifyTxn",
        KIND_SHARE_STATE => "ShareState",
        KIND_KAFKA => "Kafka",
        KIND_FIGURES => "Figures",
        _ => return None,
    })
}
/// Largest inter-broker response accepted (a replica fetch is capped well below).
const MAX_PEER_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RAFT_RPC_TIMEOUT: Duration = Duration::from_millis(2000);
const REPLICA_FETCH_VERSION: i16 = 12;

/// A peer connection's byte stream: TCP, or TLS over it.
trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerStream for T {}

/// How this node reaches peers' controller listeners: TLS and a SASL login, if they
/// use them.
#[derive(Clone, Default)]
pub struct PeerSecurity {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub login: Option<PeerLogin>,
}

impl PeerSecurity {
    /// What this node's controller listener `listener` asks of connections to its
    /// peers': the same TLS (its truststore checks them, its keystore is the client
    /// certificate) and, on SASL, a PLAIN login (`sasl::peer_login`).
    pub fn for_listener(
        settings: &BTreeMap<String, String>,
        listener: &crate::listeners::ListenerSpec,
    ) -> Result<Self, String> {
        let tls = if listener.protocol.tls() {
            let tls = crate::tls::TlsSettings::resolve(settings, &listener.name)?;
            Some(crate::tls::client_config(&tls)?)
        } else {
            None
        };
        let login = if listener.protocol.sasl() {
            Some(crate::sasl::peer_login(settings, &listener.name)?)
        } else {
            None
        };
        Ok(PeerSecurity { tls, login })
    }
}

/// One connection to a peer, used by one caller at a time.
pub(super) struct PeerConn {
    stream: Box<dyn PeerStream>,
    next_correlation_id: i32,
}

impl PeerConn {
    async fn connect(addr: &str, security: &PeerSecurity) -> std::io::Result<PeerConn> {
        let tls = security.tls.as_ref();
        let timed_out = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {addr}"),
            )
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())??;
        stream.set_nodelay(true)?;
        let stream: Box<dyn PeerStream> = match tls {
            None => Box::new(stream),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let name = rustls::pki_types::ServerName::try_from(
                    host.trim_matches(['[', ']']).to_string(),
                )
                .map_err(|e| invalid(format!("peer address {addr}: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("TLS to peer {addr}: {e}"))
                    })?;
                Box::new(tls)
            }
        };
        let mut conn = PeerConn {
            stream,
            next_correlation_id: 1,
        };
        if let Some(login) = &security.login {
            tokio::time::timeout(CONNECT_TIMEOUT, conn.login(login))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("SASL login to peer {addr}: {e}"))
                })?;
        }
        Ok(conn)
    }

    /// SaslHandshake (PLAIN), then SaslAuthenticate with `\0user\0password`.
    async fn login(&mut self, login: &PeerLogin) -> std::io::Result<()> {
        let handshake: SaslHandshakeResponse = self
            .request(
                1,
                RequestKind::SaslHandshake(
                    SaslHandshakeRequest::default()
                        .with_mechanism(StrBytes::from_static_str("PLAIN")),
                ),
            )
            .await?;
        if handshake.error_code != 0 {
            return Err(invalid(
                "the peer's controller listener does not take PLAIN".into(),
            ));
        }
        let mut token = Vec::with_capacity(2 + login.username.len() + login.password.len());
        token.push(0);
        token.extend_from_slice(login.username.as_bytes());
        token.push(0);
        token.extend_from_slice(login.password.as_bytes());
        let answer: SaslAuthenticateResponse = self
            .request(
                2,
                RequestKind::SaslAuthenticate(
                    SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
                ),
            )
            .await?;
        if answer.error_code != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                answer
                    .error_message
                    .map_or("authentication failed".to_string(), |m| m.to_string()),
            ));
        }
        Ok(())
    }

    /// One Kafka request and its decoded response.
    async fn request<R: Decodable>(
        &mut self,
        version: i16,
        body: RequestKind,
    ) -> std::io::Result<R> {
        let api = request_api(&body);
        let correlation_id = self.correlation_id();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("brook-peer")));
        let frame = brook_protocol::request::encode_request(&header, &body)
            .map_err(|e| invalid(e.to_string()))?;
        let mut response = self.round_trip(&frame, correlation_id).await?;
        ResponseHeader::decode(&mut response, api.response_header_version(version))
            .map_err(|e| invalid(e.to_string()))?;
        R::decode(&mut response, version).map_err(|e| invalid(e.to_string()))
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

    pub(super) async fn fetch(&mut self, req: FetchRequest) -> std::io::Result<FetchResponse> {
        self.request(REPLICA_FETCH_VERSION, RequestKind::Fetch(req))
            .await
    }
}

/// The API key of the requests a peer connection sends.
fn request_api(body: &RequestKind) -> ApiKey {
    match body {
        RequestKind::SaslHandshake(_) => ApiKey::SaslHandshake,
        RequestKind::SaslAuthenticate(_) => ApiKey::SaslAuthenticate,
        _ => ApiKey::Fetch,
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
    /// TLS and SASL to peers' controller listeners, if this node's uses them.
    security: PeerSecurity,
    raft: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
    controller: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
    /// Broker heartbeats, so they never queue behind other controller requests (as
    /// Kafka's broker heartbeats have their own channel to the controller): a
    /// heartbeat late behind a busy controller gets a live broker fenced.
    heartbeats: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
    markers: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
    /// The admin API's questions, so they never queue behind markers.
    admin: HashMap<i32, tokio::sync::Mutex<Option<PeerConn>>>,
}

impl PeerNet {
    pub fn new(node_id: i32, voters: BTreeMap<i32, String>, security: PeerSecurity) -> Self {
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
            heartbeats: pool(),
            markers: pool(),
            admin: pool(),
            voters,
            security,
        }
    }

    /// The ids of the other brokers.
    pub fn others(&self) -> Vec<i32> {
        self.voters
            .keys()
            .copied()
            .filter(|id| *id != self.node_id)
            .collect()
    }

    /// A new connection to the peer at `addr` (one of the voters' addresses).
    pub(super) async fn connect(&self, addr: &str) -> std::io::Result<PeerConn> {
        PeerConn::connect(addr, &self.security).await
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
        // Time on another broker (and queued for its connection) is the current
        // request's remote time.
        crate::request_time::waiting_on_others(
            self.call_on(slot, addr, target, kind, payload, timeout),
        )
        .await
    }

    async fn call_on(
        &self,
        slot: &tokio::sync::Mutex<Option<PeerConn>>,
        addr: &str,
        target: i32,
        kind: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> std::io::Result<Bytes> {
        let mut slot = slot.lock().await;
        // The connection is out of its slot while a request is on it, and goes back only
        // once the response has been read: a call abandoned half-way (its own timeout, or
        // the caller's, as openraft's on heartbeats) drops the connection with the
        // unread response, instead of leaving it to answer the next request.
        let attempt = async {
            let mut conn = match slot.take() {
                Some(conn) => conn,
                None => PeerConn::connect(addr, &self.security).await?,
            };
            let bytes = conn.internal(kind, payload).await?;
            *slot = Some(conn);
            Ok(bytes)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("node {target} did not answer"),
            )),
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

impl PeerNet {
    /// Forwards a controller request to node `leader`. `Err` means "try again".
    pub async fn forward(
        &self,
        leader: i32,
        req: &ControllerRequest,
    ) -> Result<Result<ControllerReply, ApiError>, Option<String>> {
        let payload = serde_json::to_vec(req).map_err(|e| Some(e.to_string()))?;
        let pool = match req {
            ControllerRequest::BrokerHeartbeat { .. } => &self.heartbeats,
            _ => &self.controller,
        };
        let bytes = self
            .call(
                pool,
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
            Err(e) if e.is(ResponseError::NotController) => Err(Some(e.message)),
            other => Ok(other),
        }
    }

    /// Asks the transaction coordinator `coordinator` whether a transactional produce may
    /// go ahead; its answer is an error code (0: yes).
    pub async fn verify_txn(
        &self,
        coordinator: i32,
        req: &VerifyTxnRequest,
    ) -> Result<i16, String> {
        let payload = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        let bytes = self
            .call(
                &self.markers,
                coordinator,
                KIND_VERIFY_TXN,
                &payload,
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| format!("broker {coordinator}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("bad verification reply: {e}"))
    }

    /// Sends transaction markers to the broker leading their partitions; one error code
    /// per partition.
    pub async fn write_markers(
        &self,
        leader: i32,
        req: &MarkerRequest,
    ) -> Result<Vec<i16>, String> {
        let payload = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        let bytes = self
            .call(
                &self.markers,
                leader,
                KIND_MARKERS,
                &payload,
                Duration::from_secs(35),
            )
            .await
            .map_err(|e| format!("broker {leader}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("bad marker reply: {e}"))
    }

    /// Reads or writes share-partition state on the group's coordinator `node`. The
    /// answer is JSON: the state (`Option<WireShareState>`) for a read, an error code
    /// for a write.
    pub async fn share_state(&self, node: i32, req: &ShareStateRequest) -> Result<Bytes, String> {
        let payload = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        self.call(
            &self.markers,
            node,
            KIND_SHARE_STATE,
            &payload,
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| format!("broker {node}: {e}"))
    }
    /// The figures of broker `node`'s replicas of `partitions` (JSON, one
    /// `Option<ReplicaFigures>` each, in order).
    pub async fn figures(
        &self,
        node: i32,
        partitions: &[(String, i32)],
        timeout: Duration,
    ) -> Result<Bytes, String> {
        let payload = serde_json::to_vec(partitions).map_err(|e| e.to_string())?;
        self.admin_call(node, KIND_FIGURES, &payload, timeout).await
    }

    /// Runs a Kafka request of the admin API on broker `node`, as `principal` (see
    /// [`KafkaEnvelope`]); the answer is the response frame (header and body).
    pub async fn kafka(
        &self,
        node: i32,
        principal: (&str, &str),
        caller: std::net::SocketAddr,
        request_frame: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, String> {
        let payload = KafkaEnvelope::encode(principal, &caller.to_string(), request_frame);
        self.admin_call(node, KIND_KAFKA, &payload, timeout).await
    }

    /// An admin API call, bounded by `timeout` as a whole (waiting for the pool's
    /// connection to `node` included: concurrent calls take turns on it).
    async fn admin_call(
        &self,
        node: i32,
        kind: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, String> {
        let call = self.call(&self.admin, node, kind, payload, timeout);
        match tokio::time::timeout(timeout, call).await {
            Ok(answer) => answer.map_err(|e| format!("broker {node}: {e}")),
            Err(_) => Err(format!("broker {node} did not answer within {timeout:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_envelopes_round_trip_and_refuse_truncation() {
        let payload = KafkaEnvelope::encode(("User", "alice"), "10.0.0.7:5123", b"\x00\x0f frame");
        let e = KafkaEnvelope::decode(&payload).unwrap();
        assert_eq!(
            e,
            KafkaEnvelope {
                principal_type: "User",
                principal_name: "alice",
                caller: "10.0.0.7:5123",
                frame: b"\x00\x0f frame",
            }
        );
        assert!(KafkaEnvelope::decode(&payload[..5]).is_err());
        assert!(KafkaEnvelope::decode(&[0, 9, b'U']).is_err());
        assert!(KafkaEnvelope::decode(&[]).is_err());
    }

    /// A peer that answers its first request only after `slow`, and every later one at
    /// once, echoing the payload after the correlation id.
    async fn slow_first_peer(slow: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
            while let Ok((mut s, _)) = listener.accept().await {
                let first = first.clone();
                tokio::spawn(async move {
                    while let Ok(len) = s.read_i32().await {
                        let mut frame = vec![0; len as usize];
                        if s.read_exact(&mut frame).await.is_err() {
                            return;
                        }
                        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                            tokio::time::sleep(slow).await;
                        }
                        // api key, version, correlation id, client id (-1), kind, payload
                        let mut out = BytesMut::new();
                        out.put_i32(4 + frame.len() as i32 - 11);
                        out.put_slice(&frame[4..8]);
                        out.put_slice(&frame[11..]);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_abandoned_call_does_not_leave_its_answer_to_the_next() {
        let addr = slow_first_peer(Duration::from_millis(300)).await;
        let net = PeerNet::new(
            1,
            BTreeMap::from([(1, "127.0.0.1:1".to_string()), (2, addr)]),
            PeerSecurity::default(),
        );
        let long = Duration::from_secs(5);
        // The caller gives up (as openraft does on a heartbeat), not the call itself.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(100),
            net.call(&net.raft, 2, KIND_RAFT, b"first", long),
        )
        .await;
        assert!(abandoned.is_err());
        let answer = net.call(&net.raft, 2, KIND_RAFT, b"second", long).await;
        assert_eq!(answer.unwrap(), &b"second"[..]);
    }

    #[test]
    fn every_kind_has_a_name_and_others_none() {
        for kind in 0..=KIND_FIGURES {
            assert!(internal_kind_name(kind).is_some(), "kind {kind}");
        }
        assert_eq!(internal_kind_name(KIND_RAFT), Some("Raft"));
        assert_eq!(internal_kind_name(200), None);
    }
}
