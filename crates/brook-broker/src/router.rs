//! Routes a decoded request to its handler family and declares, in one table, which
//! API versions Brook implements. ApiVersions advertises exactly this table.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::handlers;
use crate::shared::Shared;

/// (API, lowest, highest) version Brook implements.
///
/// Produce is advertised from v0 as Kafka 4 does (librdkafka decides which codecs it may
/// use from the advertised minimum), but v0–v2 requests are refused: they predate
/// record batch v2.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::WriteTxnMarkers, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

/// Who sent a request, for handlers that record it (group membership). Built for every
/// request, so it holds what is at hand and formats only when asked.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub client_id: Option<kafka_protocol::protocol::StrBytes>,
    pub peer: std::net::SocketAddr,
}

impl RequestContext {
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }

    /// The client's address as Kafka reports it (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// The versions Brook advertises for every API it implements.
pub fn supported_apis() -> impl Iterator<Item = (ApiKey, i16, i16)> {
    SUPPORTED.iter().copied()
}

/// The advertised range of `api`, if Brook implements it.
pub fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, min, max)| (*min, *max))
}

/// Whether a request of this version can be decoded and answered.
pub fn accepts(api: ApiKey, version: i16) -> bool {
    match advertised(api) {
        Some((min, max)) => version >= min.max(api.valid_versions().min) && version <= max,
        None => false,
    }
}

/// A handler's answer.
pub enum Response {
    /// Encoded by `kafka-protocol`.
    Kind(ResponseKind),
    /// A Fetch response whose records the connection sends from segment files.
    Fetch(handlers::fetch::FetchReply),
}

/// Handles one request. `None` means no response is sent (Produce with acks=0).
pub async fn dispatch(
    shared: &Arc<Shared>,
    ctx: &RequestContext,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<Response> {
    let v = header.request_api_version;
    let response = match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(handlers::api_versions::response(0))
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(handlers::metadata::handle(shared, r, v))
        }
        RequestKind::Produce(r) => {
            return handlers::produce::handle(shared, r, v)
                .await
                .map(|r| Response::Kind(ResponseKind::Produce(r)))
        }
        RequestKind::Fetch(r) => {
            return Some(Response::Fetch(handlers::fetch::handle(shared, r, v).await))
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(handlers::list_offsets::handle(shared, r, v))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(handlers::list_offsets::leader_epoch(shared, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(handlers::topics::create(shared, r, v))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(handlers::topics::delete(shared, r, v))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(handlers::topics::create_partitions(shared, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(handlers::topics::delete_records(shared, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(handlers::metadata::describe_cluster(shared, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(handlers::configs::describe(shared, r, v))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(handlers::configs::alter(shared, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(handlers::configs::incremental_alter(shared, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(handlers::txn::init_producer_id(shared, r, v).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(handlers::txn::add_partitions(shared, r, v).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(handlers::txn::add_offsets(shared, r, v).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(handlers::txn::end_txn(shared, r, v).await),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(handlers::txn::txn_offset_commit(shared, r))
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(handlers::txn::write_txn_markers(shared, r).await)
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(handlers::txn::describe_transactions(shared, r))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(handlers::txn::describe_producers(shared, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(handlers::txn::list_transactions(shared, r, v))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(handlers::coordinator::handle(shared, r, v))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(handlers::group::join(shared, ctx, r, v).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(handlers::group::sync(shared, r, v).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(handlers::group::heartbeat(shared, r, v))
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(handlers::group::leave(shared, r, v))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(handlers::group::offset_commit(shared, r, v))
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(handlers::group::offset_fetch(shared, r, v))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(handlers::group::list(shared, r, v)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(handlers::group::describe(shared, r, v))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(handlers::group::delete(shared, r, v))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(handlers::group::offset_delete(shared, r, v))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(handlers::elect_leaders::handle(shared, r, v))
        }
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(handlers::reassignments::alter(shared, r, v))
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(handlers::log_dirs::describe(shared, r, v))
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(handlers::reassignments::list(shared, r, v))
        }
        other => {
            // Unreachable while `accepts` gates dispatch; answer nothing rather than panic.
            tracing::warn!(request = ?std::mem::discriminant(&other), "request reached the router without a handler");
            return None;
        }
    };
    Some(Response::Kind(response))
}
