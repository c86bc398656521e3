//! The server side of the inter-broker RPCs that arrive on the controller listener:
//! raft messages, controller requests forwarded by other brokers, transaction markers,
//! KIP-890 verification of transactional produce for partitions led elsewhere, and
//! share-partition state kept for share groups this broker coordinates.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use crate::controller::{ControllerReply, ControllerRequest};
use crate::controller_client::ControllerClient;
use crate::error::ApiError;
use crate::groups::Groups;
use crate::markers::MarkerWriter;
use crate::peer::{
    MarkerRequest, ShareStateRequest, VerifyTxnRequest, KIND_CONTROLLER, KIND_MARKERS, KIND_RAFT,
    KIND_SHARE_STATE, KIND_VERIFY_TXN,
};
use crate::txns::Txns;

pub struct InternalRpc {
    pub quorum: Arc<brook_raft::Quorum>,
    pub controller: Arc<ControllerClient>,
    pub markers: Arc<MarkerWriter>,
    pub txns: Arc<Txns>,
    /// The group coordinator: share-partition state for partition leaders elsewhere.
    pub groups: Arc<Groups>,
    /// Share-partitions' live state, dropped when their record changes.
    pub shares: Arc<crate::shares::Shares>,
    /// The other brokers, for the admin API's requests about what they own.
    pub peers: Arc<crate::peer::PeerNet>,
}

impl InternalRpc {
    /// Answers an inter-broker RPC frame (after the 10-byte request header).
    pub async fn handle(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let (&kind, payload) = body.split_first().ok_or("empty internal request")?;
        match kind {
            KIND_RAFT => Ok(self.quorum.handle(payload).await),
            KIND_CONTROLLER => {
                let req: ControllerRequest = serde_json::from_slice(payload)
                    .map_err(|e| format!("bad controller request: {e}"))?;
                let reply: Result<ControllerReply, ApiError> = if self.quorum.is_leader() {
                    match self.controller.on_leader(&self.quorum, &req).await {
                        Ok(r) => r,
                        Err(why) => Err(not_controller(why)),
                    }
                } else {
                    Err(not_controller(None))
                };
                serde_json::to_vec(&reply).map_err(|e| e.to_string())
            }
            KIND_MARKERS => {
                let req: MarkerRequest = serde_json::from_slice(payload)
                    .map_err(|e| format!("bad marker request: {e}"))?;
                let codes = self.markers.write(&req).await;
                serde_json::to_vec(&codes).map_err(|e| e.to_string())
            }
            KIND_VERIFY_TXN => {
                let r: VerifyTxnRequest = serde_json::from_slice(payload)
                    .map_err(|e| format!("bad verification request: {e}"))?;
                let verdict = self.txns.verify_here(
                    &r.transactional_id,
                    r.producer_id,
                    r.producer_epoch,
                    &r.topic,
                    r.partition,
                );
                let code = verdict.err().map_or(0, |e| e.code());
                serde_json::to_vec(&code).map_err(|e| e.to_string())
            }
            KIND_SHARE_STATE => {
                let r: ShareStateRequest = serde_json::from_slice(payload)
                    .map_err(|e| format!("bad share state request: {e}"))?;
                match r {
                    ShareStateRequest::Read {
                        group,
                        topic,
                        partition,
                    } => {
                        let state =
                            crate::shares::read_local(&self.groups, &group, topic, partition);
                        serde_json::to_vec(&state).map_err(|e| e.to_string())
                    }
                    ShareStateRequest::Write { group, states } => {
                        let code = crate::shares::write_local(&self.groups, &group, states).await;
                        serde_json::to_vec(&code).map_err(|e| e.to_string())
                    }
                    ShareStateRequest::Forget { group, partitions } => {
                        self.shares.forget_partitions(&group, &partitions);
                        serde_json::to_vec(&0i16).map_err(|e| e.to_string())
                    }
                }
            }
            other => Err(format!("unknown internal request kind {other}")),
        }
    }
}

fn not_controller(why: Option<String>) -> ApiError {
    ApiError::new(
        ResponseError::NotController,
        why.unwrap_or_else(|| "this node is not the active controller".into()),
    )
}
