//! Routes a decoded request to its handler family, handing each only the services it
//! uses.

use std::sync::Arc;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::cluster::rpc::InternalRpc;
use crate::config::{BrokerConfig, BrokerSettings};
use crate::controller_client::ControllerClient;
use crate::groups::Groups;
use crate::handlers::{self, configs, RequestContext};
use crate::log_levels::LogLevels;
use crate::markers::MarkerWriter;
use crate::metadata::MetadataView;
use crate::metrics::BrokerMetrics;
use crate::replicas::Replicas;
use crate::txns::Txns;

/// A handler's answer.
pub enum Response {
    /// Encoded by `kafka-protocol`.
    Kind(ResponseKind),
    /// A Fetch response whose records the connection sends from segment files.
    Fetch(handlers::fetch::FetchReply),
}

impl Response {
    /// The response's `throttle_time_ms` (0 for the few without one). Brook has no
    /// client quotas, so its handlers leave it 0; the metric records what is sent.
    pub fn throttle_time_ms(&self) -> i32 {
        /// Each kind's field, by name: the kinds are different types.
        macro_rules! field {
            ($kind:expr; $($variant:ident),*) => {
                match $kind {
                    $(ResponseKind::$variant(r) => r.throttle_time_ms,)*
                    _ => 0,
                }
            };
        }
        match self {
            Response::Fetch(reply) => reply.response.throttle_time_ms,
            Response::Kind(kind) => {
                field!(kind; AddOffsetsToTxn, AddPartitionsToTxn, AlterConfigs, AlterPartitionReassignments, AlterUserScramCredentials, ApiVersions, ConsumerGroupDescribe, ConsumerGroupHeartbeat, CreateAcls, CreatePartitions, CreateTopics, DeleteAcls, DeleteGroups, DeleteRecords, DeleteTopics, DescribeAcls, DescribeClientQuotas, DescribeCluster, DescribeConfigs, DescribeGroups, DescribeLogDirs, DescribeProducers, DescribeTransactions, DescribeUserScramCredentials, ElectLeaders, EndTxn, FindCoordinator, Heartbeat, IncrementalAlterConfigs, InitProducerId, JoinGroup, LeaveGroup, ListGroups, ListOffsets, ListPartitionReassignments, ListTransactions, Metadata, OffsetCommit, OffsetDelete, OffsetFetch, OffsetForLeaderEpoch, Produce, SyncGroup, TxnOffsetCommit)
            }
        }
    }
}

/// The broker's services, wired once at start-up. The router hands each handler only
/// the ones it uses.
pub struct Services {
    /// Counters and histograms the request path records into.
    pub metrics: Arc<BrokerMetrics>,
    pub config: Arc<BrokerConfig>,
    pub settings: Arc<BrokerSettings>,
    pub metadata: MetadataView,
    pub controller: Arc<ControllerClient>,
    pub replicas: Arc<Replicas>,
    pub groups: Arc<Groups>,
    pub txns: Arc<Txns>,
    pub markers: Arc<MarkerWriter>,
    /// Inter-broker RPCs (cluster only).
    pub internal: Option<Arc<InternalRpc>>,
    /// The process's loggers, if their levels may change at run time.
    pub log_levels: Option<Arc<dyn LogLevels>>,
}

impl Services {
    fn configs(&self) -> configs::Configs<'_> {
        configs::Configs {
            controller: &self.controller,
            meta: &self.metadata,
            config: &self.config,
            loggers: self.log_levels.as_deref(),
        }
    }
}

/// Handles one request. `None` means no response is sent (Produce with acks=0).
pub async fn dispatch(
    s: &Services,
    ctx: &RequestContext,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<Response> {
    use handlers::*;
    let v = header.request_api_version;
    let (meta, replicas) = (&s.metadata, &s.replicas);
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::response(0)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(
            metadata::handle(
                meta,
                &s.controller,
                s.settings.auto_create_topics_enable,
                &ctx.session.listener.name,
                r,
                v,
            )
            .await,
        ),
        RequestKind::Produce(r) => {
            return produce::handle(replicas, meta, &s.txns, &s.metrics, r, v)
                .await
                .map(|r| Response::Kind(ResponseKind::Produce(r)))
        }
        RequestKind::Fetch(r) => {
            return Some(Response::Fetch(
                fetch::handle(replicas, meta, &s.metrics, r, v).await,
            ))
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(replicas, r, v))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(list_offsets::leader_epoch(replicas, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(topics::create(&s.controller, meta, &s.config, r, v).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(topics::delete(&s.controller, meta, r, v).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(topics::create_partitions(&s.controller, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(topics::delete_records(replicas, r).await)
        }
        RequestKind::DescribeAcls(_) => ResponseKind::DescribeAcls(acls::describe()),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(r)),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(
            metadata::describe_cluster(meta, &ctx.session.listener.name, r),
        ),
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(&s.configs(), r, v))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter(&s.configs(), r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(&s.configs(), r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(txn::init_producer_id(&s.txns, &s.controller, r, v).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(&s.txns, meta, r, v).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(&s.txns, &s.groups, r, v).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(&s.txns, r, v).await),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(&s.groups, meta, r).await)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(txn::write_txn_markers(&s.markers, r).await)
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe_transactions(&s.txns, r))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(txn::describe_producers(replicas, meta, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn::list_transactions(&s.txns, r, v))
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            coordinator::handle(meta, &s.groups, &s.txns, &ctx.session.listener.name, r, v).await,
        ),
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(group::join(&s.groups, ctx, r, v).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(group::sync(&s.groups, r, v).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group::heartbeat(&s.groups, r, v)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group::leave(&s.groups, r, v).await),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(group::offset_commit(&s.groups, &s.metadata, r, v).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(group::offset_fetch(&s.groups, r, v))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group::heartbeat(&s.groups, meta, ctx, r, v).await,
        ),
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::describe(&s.groups, meta, r, v))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group::list(&s.groups, r, v)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group::describe(&s.groups, r, v))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(group::delete(&s.groups, r, v).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(group::offset_delete(&s.groups, r, v).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(&s.controller, meta, r, v).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            reassignments::alter(&s.controller, r, v).await,
        ),
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(log_dirs::describe(replicas, r, v))
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassignments::list(meta, r, v))
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(scram::describe(meta, r))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram::alter(&s.controller, r).await)
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(quotas::describe(r))
        }
        RequestKind::SaslHandshake(_) => {
            ResponseKind::SaslHandshake(crate::sasl::handshake_not_expected())
        }
        RequestKind::SaslAuthenticate(_) => {
            ResponseKind::SaslAuthenticate(crate::sasl::authenticate_not_expected())
        }
        other => {
            // Unreachable while `accepts` gates dispatch; answer nothing rather than panic.
            tracing::warn!(request = ?std::mem::discriminant(&other), "request reached the router without a handler");
            return None;
        }
    };
    Some(Response::Kind(response))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{FetchResponse, ProduceResponse, SaslHandshakeResponse};

    use super::*;

    #[test]
    fn throttle_time_is_read_from_each_response_that_has_one() {
        let produce = Response::Kind(ResponseKind::Produce(
            ProduceResponse::default().with_throttle_time_ms(5),
        ));
        assert_eq!(produce.throttle_time_ms(), 5);
        let fetch = Response::Fetch(handlers::fetch::FetchReply {
            response: FetchResponse::default().with_throttle_time_ms(9),
            records: Vec::new(),
        });
        assert_eq!(fetch.throttle_time_ms(), 9);
        let sasl = Response::Kind(ResponseKind::SaslHandshake(SaslHandshakeResponse::default()));
        assert_eq!(sasl.throttle_time_ms(), 0);
    }
}
