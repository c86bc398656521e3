//! Raft RPCs over the broker's [`Transport`]: JSON envelopes that name the RPC and carry its
//! result back.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_meta::MetadataImage;
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, OptionalSend, Raft, RaftNetwork, RaftNetworkFactory, Snapshot, SnapshotMeta, Vote,
};
use serde::{Deserialize, Serialize};

use crate::{Transport, TypeConfig};

/// What one node sends another.
#[derive(Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The node this is meant for: a misrouted RPC is refused rather than obeyed.
    to: u64,
    rpc: Request,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    /// A whole snapshot in one message (metadata images are small).
    Snapshot {
        vote: Vote<u64>,
        meta: SnapshotMeta<u64, BasicNode>,
        image: Box<MetadataImage>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Response {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
    /// The payload could not be decoded or was not for this node.
    Rejected(String),
}

fn encode_response(resp: &Response) -> Vec<u8> {
    serde_json::to_vec(resp).unwrap_or_else(|e| {
        tracing::error!(error = %e, "encoding a raft rpc response");
        let fallback = Response::Rejected(format!("encoding the response failed: {e}"));
        // A string-only enum always encodes.
        serde_json::to_vec(&fallback).unwrap_or_default()
    })
}

/// Server side: decodes one RPC, runs it on `raft`, encodes the result. Never panics on bad
/// input: it answers with an encoded rejection.
pub(crate) async fn serve(raft: &Raft<TypeConfig>, me: u64, payload: &[u8]) -> Vec<u8> {
    let resp = match serde_json::from_slice::<Envelope>(payload) {
        Err(e) => {
            tracing::warn!(bytes = payload.len(), error = %e, "undecodable raft rpc");
            Response::Rejected(format!(
                "undecodable raft rpc ({} bytes): {e}",
                payload.len()
            ))
        }
        Ok(env) if env.to != me => {
            tracing::warn!(to = env.to, me, "raft rpc for another node");
            Response::Rejected(format!("raft rpc for node {} reached node {me}", env.to))
        }
        Ok(env) => match env.rpc {
            Request::AppendEntries(rpc) => Response::AppendEntries(raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::Snapshot { vote, meta, image } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: image,
                };
                Response::Snapshot(raft.install_full_snapshot(vote, snapshot).await)
            }
        },
    };
    encode_response(&resp)
}

/// Creates a [`Peer`] per target for openraft.
pub(crate) struct Network {
    pub(crate) transport: Arc<dyn Transport>,
    /// Addresses from the broker's configuration; they win over those stored in the membership.
    pub(crate) voters: Arc<BTreeMap<u64, String>>,
    pub(crate) backoff: Duration,
    /// Whether the last RPC to each node got through, so that losing and regaining a
    /// peer is logged once each (openraft itself reports every failed RPC).
    pub(crate) reachable: Arc<std::sync::Mutex<BTreeMap<u64, Arc<AtomicBool>>>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        let addr = self
            .voters
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.addr.clone());
        let reachable = self
            .reachable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(target)
            .or_insert_with(|| Arc::new(AtomicBool::new(true)))
            .clone();
        Peer {
            target,
            addr,
            transport: self.transport.clone(),
            backoff: self.backoff,
            reachable,
        }
    }
}

/// The client side of RPCs to one node.
pub(crate) struct Peer {
    target: u64,
    addr: String,
    transport: Arc<dyn Transport>,
    backoff: Duration,
    reachable: Arc<AtomicBool>,
}

/// Why a call did not produce a response from the remote raft.
enum CallError {
    /// Transport failure, or the remote refused the payload: back off.
    Unreachable(Unreachable),
    /// The response did not decode or did not match the request.
    Network(NetworkError),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl Peer {
    async fn call(&self, rpc: Request) -> Result<Response, CallError> {
        let env = Envelope {
            to: self.target,
            rpc,
        };
        let payload =
            serde_json::to_vec(&env).map_err(|e| CallError::Network(NetworkError::new(&e)))?;
        let bytes = self
            .transport
            .send(self.target, &self.addr, payload)
            .await
            .map_err(|e| {
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(peer = self.target, addr = %self.addr, error = %e, "metadata quorum peer unreachable");
                } else {
                    tracing::debug!(peer = self.target, addr = %self.addr, error = %e, "raft rpc failed");
                }
                CallError::Unreachable(Unreachable::new(&e))
            })?;
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::info!(peer = self.target, addr = %self.addr, "metadata quorum peer reachable again");
        }
        match serde_json::from_slice::<Response>(&bytes) {
            Ok(Response::Rejected(why)) => {
                Err(CallError::Unreachable(Unreachable::new(&Message(format!(
                    "node {} at {} rejected the rpc: {why}",
                    self.target, self.addr
                )))))
            }
            Ok(resp) => Ok(resp),
            Err(e) => Err(CallError::Network(NetworkError::new(&Message(format!(
                "undecodable response from node {} at {}: {e}",
                self.target, self.addr
            ))))),
        }
    }

    fn mismatch(&self, want: &str) -> NetworkError {
        NetworkError::new(&Message(format!(
            "node {} answered a {want} rpc with another kind of response",
            self.target
        )))
    }
}

type RpcResult<T> = Result<T, RPCError<u64, BasicNode, RaftError<u64>>>;

fn rpc_err(e: CallError) -> RPCError<u64, BasicNode, RaftError<u64>> {
    match e {
        CallError::Unreachable(u) => RPCError::Unreachable(u),
        CallError::Network(n) => RPCError::Network(n),
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        match self
            .call(Request::AppendEntries(rpc))
            .await
            .map_err(rpc_err)?
        {
            Response::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(RPCError::Network(self.mismatch("append_entries"))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        match self.call(Request::Vote(rpc)).await.map_err(rpc_err)? {
            Response::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(RPCError::Network(self.mismatch("vote"))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let rpc = Request::Snapshot {
            vote,
            meta: snapshot.meta,
            image: snapshot.snapshot,
        };
        let ttl = option.hard_ttl();
        let resp = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = tokio::time::timeout(ttl, self.call(rpc)) => r,
        };
        let resp = match resp {
            Err(_elapsed) => {
                return Err(StreamingError::Unreachable(Unreachable::new(&Message(
                    format!(
                        "sending a snapshot to node {} timed out after {ttl:?}",
                        self.target
                    ),
                ))))
            }
            Ok(Err(CallError::Unreachable(u))) => return Err(StreamingError::Unreachable(u)),
            Ok(Err(CallError::Network(n))) => return Err(StreamingError::Network(n)),
            Ok(Ok(resp)) => resp,
        };
        match resp {
            Response::Snapshot(r) => {
                r.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(StreamingError::Network(self.mismatch("snapshot"))),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
