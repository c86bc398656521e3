//! Inter-broker RPCs on the controller listener (`peer::INTERNAL_API_KEY`): answered
//! by [`InternalRpc`], or, for the admin API's Kafka requests another broker sends
//! here (a group this broker coordinates, a partition it leads), by the router as a
//! client's would be, and for the admin API's figures of replicas held here, by
//! `Replicas`. Each is timed as `Internal:<Kind>`, its waits on other brokers
//! and on the quorum counted as remote time.

use std::sync::Arc;

use brook_protocol::request::{decode_request, encode_response, peek_header};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use super::{Outcome, Timed};
use crate::clock::monotonic_ns;
use crate::cluster::rpc::InternalRpc;
use crate::handlers::RequestContext;
use crate::metrics::TimedApi;
use crate::peer::{self, KafkaEnvelope};
use crate::request_time;
use crate::router::{self, Response, Services};
use crate::session::{KafkaPrincipal, ListenerInfo, Session};

/// The Kafka requests another broker may run here for its admin API: reads of
/// groups and offsets, and the group actions the API offers.
const FORWARDED_APIS: [ApiKey; 7] = [
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::OffsetFetch,
    ApiKey::OffsetCommit,
    ApiKey::DeleteGroups,
    ApiKey::ListOffsets,
    ApiKey::DescribeLogDirs,
];

/// Answers one internal RPC (`body`: after the 10-byte request header); `timed` is
/// set when `timing` and the RPC is of a known kind.
pub(super) async fn serve(
    services: &Services,
    rpc: &InternalRpc,
    correlation_id: i32,
    body: &[u8],
    timing: bool,
    timed: &mut Option<Timed>,
) -> Outcome {
    let api = body.first().and_then(|&kind| {
        peer::internal_kind_name(kind).map(|name| TimedApi::Internal { kind, name })
    });
    let started_ns = api.filter(|_| timing).map(|_| monotonic_ns());
    let mut answer = std::pin::pin!(answer(services, rpc, body));
    let (result, remote_ns) = if started_ns.is_some() {
        let mut measured = request_time::measure(answer.as_mut());
        let result = (&mut measured).await;
        (result, measured.remote_ns())
    } else {
        (answer.await, 0)
    };
    if let (Some(api), Some(handler_started_ns)) = (api, started_ns) {
        *timed = Some(Timed {
            api,
            handler_started_ns,
            handled_ns: monotonic_ns(),
            remote_ns,
            throttle_time_ms: 0,
        });
    }
    match result {
        Ok(payload) => {
            let mut out = BytesMut::with_capacity(8 + payload.len());
            out.extend_from_slice(&((payload.len() + 4) as i32).to_be_bytes());
            out.extend_from_slice(&correlation_id.to_be_bytes());
            out.extend_from_slice(&payload);
            Outcome::Reply(out)
        }
        Err(reason) => Outcome::Close(reason),
    }
}

async fn answer(services: &Services, rpc: &InternalRpc, body: &[u8]) -> Result<Vec<u8>, String> {
    match body.split_first() {
        Some((&peer::KIND_KAFKA, payload)) => kafka(services, payload).await,
        Some((&peer::KIND_FIGURES, payload)) => figures(services, payload).await,
        _ => rpc.handle(body).await,
    }
}

/// Most partitions one figures request may name.
const MAX_FIGURES: usize = 100_000;

/// The figures of this broker's replicas of the partitions named (JSON both ways).
async fn figures(services: &Services, payload: &[u8]) -> Result<Vec<u8>, String> {
    let wanted: Vec<(String, i32)> =
        serde_json::from_slice(payload).map_err(|e| format!("bad figures request: {e}"))?;
    if wanted.len() > MAX_FIGURES {
        return Err(format!(
            "{} partitions asked, at most {MAX_FIGURES}",
            wanted.len()
        ));
    }
    let replicas = services.replicas.clone();
    let found = tokio::task::spawn_blocking(move || {
        wanted
            .iter()
            .map(|(t, p)| replicas.figures(t, *p))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| e.to_string())?;
    serde_json::to_vec(&found).map_err(|e| e.to_string())
}

/// Runs a forwarded Kafka request as the principal it names; the answer is the
/// response frame without its size prefix.
async fn kafka(services: &Services, payload: &[u8]) -> Result<Vec<u8>, String> {
    let envelope = KafkaEnvelope::decode(payload)?;
    let peek = peek_header(envelope.frame).map_err(|e| e.to_string())?;
    let api = ApiKey::try_from(peek.api_key)
        .ok()
        .filter(|api| FORWARDED_APIS.contains(api))
        .ok_or_else(|| format!("API key {} is not forwarded", peek.api_key))?;
    if !crate::apis::accepts(api, peek.api_version) {
        return Err(format!(
            "unsupported version {} of {api:?}",
            peek.api_version
        ));
    }
    let (header, request) =
        decode_request(Bytes::copy_from_slice(envelope.frame)).map_err(|e| e.to_string())?;
    let principal = KafkaPrincipal {
        principal_type: envelope.principal_type.to_string(),
        name: envelope.principal_name.to_string(),
    };
    let listener = Arc::new(ListenerInfo {
        name: services.metadata.client_listener(),
        protocol: crate::listeners::SecurityProtocol::Plaintext,
        controller: false,
    });
    let ctx = RequestContext {
        client_id: header.client_id.clone(),
        // The admin API's caller, as the other broker saw it (host-based ACLs).
        peer: envelope
            .caller
            .parse()
            .map_err(|e| format!("bad caller address {:?}: {e}", envelope.caller))?,
        session: Arc::new(Session::new(listener, principal)),
        fetch_sessions: Arc::default(),
    };
    match router::dispatch(services, &ctx, &header, request).await {
        Some(Response::Kind(body)) => {
            let mut frame = encode_response(api, peek.api_version, peek.correlation_id, &body)
                .map_err(|e| e.to_string())?;
            Ok(frame.split_off(4).to_vec())
        }
        _ => Err(format!("{api:?} gave no answer")),
    }
}
