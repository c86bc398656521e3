//! Routes a decoded request to its handler family, handing each only the services it
//! uses.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::access::{self, Access, Check, Op};
use crate::client_quotas::ClientQuotaRates;
use crate::cluster::rpc::InternalRpc;
use crate::config::{BrokerConfig, BrokerSettings};
use crate::controller_client::ControllerClient;
use crate::groups::Groups;
use crate::handlers::{self, configs, RequestContext};
use crate::log_levels::LogLevels;
use crate::markers::MarkerWriter;
use crate::metadata::MetadataView;
use crate::metrics::BrokerMetrics;
use crate::mutation_quotas::MutationQuota;
use crate::replicas::Replicas;
use crate::shares::Shares;
use crate::txns::Txns;

/// A handler's answer.
pub enum Response {
    /// Encoded by `kafka-protocol`.
    Kind(ResponseKind),
    /// A Fetch response whose records the connection sends from segment files.
    Fetch(handlers::fetch::FetchReply),
    /// An acks=all Produce appended here and waiting for the in-sync replicas: only
    /// [`dispatch_pipelined`] returns one ([`dispatch`] waits for it).
    Replicating(Box<handlers::produce::Replicating>),
}

/// Calls `$m!` with every response kind that carries a `throttle_time_ms`.
macro_rules! throttled_kinds {
    ($m:ident, $($arg:tt)*) => {
        $m!($($arg)*; AddOffsetsToTxn, AddPartitionsToTxn, AlterClientQuotas, AlterConfigs, AlterPartitionReassignments, AlterShareGroupOffsets, AlterUserScramCredentials, ApiVersions, ConsumerGroupDescribe, ConsumerGroupHeartbeat, CreateAcls, CreatePartitions, CreateTopics, DeleteAcls, DeleteGroups, DeleteRecords, DeleteShareGroupOffsets, DeleteTopics, DescribeAcls, DescribeClientQuotas, DescribeCluster, DescribeConfigs, DescribeGroups, DescribeLogDirs, DescribeProducers, DescribeShareGroupOffsets, DescribeTransactions, DescribeUserScramCredentials, ElectLeaders, EndTxn, FindCoordinator, Heartbeat, IncrementalAlterConfigs, InitProducerId, JoinGroup, LeaveGroup, ListGroups, ListOffsets, ListPartitionReassignments, ListTransactions, Metadata, OffsetCommit, OffsetDelete, OffsetFetch, OffsetForLeaderEpoch, Produce, ShareAcknowledge, ShareFetch, ShareGroupDescribe, ShareGroupHeartbeat, SyncGroup, TxnOffsetCommit)
    };
}

impl Response {
    /// The response's `throttle_time_ms` (0 for the few without one).
    pub fn throttle_time_ms(&self) -> i32 {
        macro_rules! get {
            ($kind:expr; $($variant:ident),*) => {
                match $kind {
                    $(ResponseKind::$variant(r) => r.throttle_time_ms,)*
                    _ => 0,
                }
            };
        }
        match self {
            Response::Fetch(reply) => reply.response.throttle_time_ms,
            Response::Kind(kind) => throttled_kinds!(get, kind),
            Response::Replicating(r) => r.throttle_time_ms(),
        }
    }

    /// Sets the response's `throttle_time_ms` (client quotas), where it has one.
    pub fn set_throttle_time_ms(&mut self, ms: i32) {
        macro_rules! set {
            ($kind:expr; $($variant:ident),*) => {
                match $kind {
                    $(ResponseKind::$variant(r) => r.throttle_time_ms = ms,)*
                    _ => {}
                }
            };
        }
        match self {
            Response::Fetch(reply) => reply.response.throttle_time_ms = ms,
            Response::Kind(kind) => throttled_kinds!(set, kind),
            Response::Replicating(r) => r.set_throttle_time_ms(ms),
        }
    }
}

/// The broker's services, wired once at start-up. The router hands each handler only
/// the ones it uses.
pub struct Services {
    /// The authorizer (`authorizer.class.name`), or none: everything allowed.
    pub access: Arc<Access>,
    /// The rates client quotas are enforced on.
    pub quotas: Arc<ClientQuotaRates>,
    /// Counters and histograms the request path records into.
    pub metrics: Arc<BrokerMetrics>,
    pub config: Arc<BrokerConfig>,
    pub settings: Arc<BrokerSettings>,
    pub metadata: MetadataView,
    pub controller: Arc<ControllerClient>,
    pub replicas: Arc<Replicas>,
    pub groups: Arc<Groups>,
    /// Share groups' share-partitions and share sessions (KIP-932).
    pub shares: Arc<Shares>,
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

/// Handles one request. `None` means no response is sent (Produce with acks=0). An
/// acks=all Produce is answered once its records reached the in-sync replicas.
pub async fn dispatch(
    s: &Services,
    ctx: &RequestContext,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<Response> {
    // Boxed: callers (the admin API, forwarded requests) nest this in futures of their
    // own, and one more level of the handlers' state overflows rustc's layout depth.
    match Box::pin(dispatch_pipelined(s, ctx, header, request)).await {
        Some(Response::Replicating(r)) => {
            Some(Response::Kind(ResponseKind::Produce(r.replicated().await)))
        }
        other => other,
    }
}

/// Handles one request as [`dispatch`] does, except that an acks=all Produce comes
/// back as [`Response::Replicating`] once its records are appended here: the caller
/// waits for the replicas (the connection, while it handles the client's next
/// requests).
///
/// With an authorizer, the request first passes Kafka's checks (`access`): what the
/// principal may not touch is taken out of the request and answered with Kafka's
/// error, and a request refused as a whole never reaches its handler.
pub async fn dispatch_pipelined(
    s: &Services,
    ctx: &RequestContext,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<Response> {
    let image = s.access.enabled().then(|| s.metadata.image());
    let check = image.as_deref().and_then(|i| s.access.check(i, ctx));
    if let Some(c) = &check {
        if let Some(refused) = refuse_whole(c, header.request_api_version, &request) {
            return Some(Response::Kind(refused));
        }
    }
    let image = image.as_deref();
    dispatch_checked(s, ctx, header, request, check.as_ref(), image).await
}

/// Requests the principal may not make at all, answered with Kafka's error (the
/// APIs whose check is one resource: a group, a transactional id, the cluster).
fn refuse_whole(c: &Check<'_>, v: i16, request: &RequestKind) -> Option<ResponseKind> {
    use kafka_protocol::messages::*;
    const GROUP: i16 = access::GROUP_DENIED;
    let cluster = ResponseError::ClusterAuthorizationFailed.code();
    let txn = ResponseError::TransactionalIdAuthorizationFailed.code();
    Some(match request {
        RequestKind::JoinGroup(r) if !access::may_read_group(c, &r.group_id) => {
            ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(GROUP)
                    .with_generation_id(-1)
                    .with_protocol_name((v >= 7).then(StrBytes::default)),
            )
        }
        RequestKind::SyncGroup(r) if !access::may_read_group(c, &r.group_id) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(GROUP))
        }
        RequestKind::Heartbeat(r) if !access::may_read_group(c, &r.group_id) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(GROUP))
        }
        RequestKind::LeaveGroup(r) if !access::may_read_group(c, &r.group_id) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(GROUP))
        }
        RequestKind::OffsetDelete(r) if !c.group(Op::Delete, &r.group_id) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(GROUP))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let code = access::consumer_group_heartbeat(c, r)?;
            ResponseKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(code)
                    .with_member_epoch(-1),
            )
        }
        RequestKind::ShareGroupHeartbeat(r) => {
            let code = access::share_group_heartbeat(c, r)?;
            ResponseKind::ShareGroupHeartbeat(
                ShareGroupHeartbeatResponse::default()
                    .with_error_code(code)
                    .with_member_epoch(-1),
            )
        }
        RequestKind::ShareFetch(r)
            if !access::share_group_read(c, r.group_id.as_ref().map(|g| g.as_str())) =>
        {
            ResponseKind::ShareFetch(ShareFetchResponse::default().with_error_code(GROUP))
        }
        RequestKind::ShareAcknowledge(r)
            if !access::share_group_read(c, r.group_id.as_ref().map(|g| g.as_str())) =>
        {
            ResponseKind::ShareAcknowledge(ShareAcknowledgeResponse::default().with_error_code(GROUP))
        }
        RequestKind::InitProducerId(r) => {
            let allowed = match &r.transactional_id {
                Some(id) => c.txn(Op::Write, id),
                None => {
                    c.cluster(Op::IdempotentWrite)
                        || c.any(Op::Write, brook_meta::ResourceType::Topic)
                }
            };
            if allowed {
                return None;
            }
            let code = if r.transactional_id.is_some() { txn } else { cluster };
            ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            )
        }
        RequestKind::AddOffsetsToTxn(r) => {
            let code = if !c.txn(Op::Write, &r.transactional_id) {
                txn
            } else if !c.group(Op::Read, &r.group_id) {
                GROUP
            } else {
                return None;
            };
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
        }
        RequestKind::EndTxn(r) if !c.txn(Op::Write, &r.transactional_id) => ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(txn)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ),
        RequestKind::DescribeCluster(_) if !c.cluster(Op::Describe) => {
            ResponseKind::DescribeCluster(
                DescribeClusterResponse::default()
                    .with_error_code(cluster)
                    .with_controller_id((-1).into()),
            )
        }
        RequestKind::ElectLeaders(_) if !c.cluster(Op::Alter) => {
            ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(cluster))
        }
        RequestKind::AlterPartitionReassignments(_) if !c.cluster(Op::Alter) => {
            ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default().with_error_code(cluster),
            )
        }
        RequestKind::ListPartitionReassignments(_) if !c.cluster(Op::Describe) => {
            ResponseKind::ListPartitionReassignments(
                ListPartitionReassignmentsResponse::default().with_error_code(cluster),
            )
        }
        RequestKind::DescribeLogDirs(_) if !c.cluster(Op::Describe) => {
            ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_error_code(cluster))
        }
        RequestKind::DescribeUserScramCredentials(_) if !c.cluster(Op::Describe) => {
            ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default().with_error_code(cluster),
            )
        }
        RequestKind::AlterUserScramCredentials(r) if !c.cluster(Op::Alter) => {
            let users = r.deletions.iter().map(|d| &d.name).chain(r.upsertions.iter().map(|u| &u.name));
            ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(
                    users
                        .map(|u| {
                            alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                                .with_user(u.clone())
                                .with_error_code(cluster)
                        })
                        .collect(),
                ),
            )
        }
        RequestKind::DescribeClientQuotas(_) if !c.cluster(Op::DescribeConfigs) => {
            ResponseKind::DescribeClientQuotas(
                DescribeClientQuotasResponse::default().with_error_code(cluster),
            )
        }
        RequestKind::AlterClientQuotas(r) if !c.cluster(Op::AlterConfigs) => {
            ResponseKind::AlterClientQuotas(handlers::quotas::refuse_all(r, cluster, None))
        }
        RequestKind::WriteTxnMarkers(r) if !c.cluster(Op::ClusterAction) => {
            ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(
                r.markers
                    .iter()
                    .map(|m| {
                        write_txn_markers_response::WritableTxnMarkerResult::default()
                            .with_producer_id(m.producer_id)
                            .with_topics(
                                m.topics
                                    .iter()
                                    .map(|t| {
                                        write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                                            .with_name(t.name.clone())
                                            .with_partitions(
                                                t.partition_indexes
                                                    .iter()
                                                    .map(|p| {
                                                        write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                                                            .with_partition_index(*p)
                                                            .with_error_code(cluster)
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
        }
        _ => return None,
    })
}

/// Whom a topic mutation is charged to (KIP-599).
fn mutation_quota(ctx: &RequestContext, version: i16, strict_since: i16) -> MutationQuota {
    let user = &ctx.session.principal.name;
    MutationQuota::of(user, ctx.client_id(), version, strict_since)
}

async fn dispatch_checked(
    s: &Services,
    ctx: &RequestContext,
    header: &RequestHeader,
    request: RequestKind,
    check: Option<&Check<'_>>,
    image: Option<&brook_meta::MetadataImage>,
) -> Option<Response> {
    use handlers::*;
    let v = header.request_api_version;
    let (meta, replicas) = (&s.metadata, &s.replicas);
    // Runs a gate when there is an authorizer: `gate!(access::produce(c, &mut r))`.
    macro_rules! gate {
        ($c:ident => $e:expr) => {
            match check {
                Some($c) => $e,
                None => Default::default(),
            }
        };
    }
    let acl_refusal = |op| match check {
        None => Some(acls::Refusal::NoAuthorizer),
        Some(c) if !c.cluster(op) => Some(acls::Refusal::ClusterAuthorization),
        Some(_) => None,
    };
    let (may_group, may_topic) = (
        |op, name: &str| check.is_none_or(|c| c.group(op, name)),
        |op, name: &str| check.is_none_or(|c| c.topic(op, name)),
    );
    let share_acl = share_offsets::Acl {
        group: &may_group,
        topic: &may_topic,
    };
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::response(0)),
        RequestKind::Metadata(mut r) => {
            let auto_create = s.settings.auto_create_topics_enable;
            // Metadata v0 asks for all topics with an empty list.
            let all_topics = r.topics.as_ref().is_none_or(|t| v == 0 && t.is_empty());
            let refused = gate!(c => access::metadata(c, image?, auto_create, &mut r));
            let mut resp = metadata::handle(
                meta,
                &s.controller,
                auto_create,
                &ctx.session.listener.name,
                r,
                v,
            )
            .await;
            if let Some(c) = check {
                access::metadata_answer(c, all_topics, refused, &mut resp);
            }
            ResponseKind::Metadata(resp)
        }
        RequestKind::Produce(mut r) => {
            let refused = match check {
                Some(c) => match access::produce(c, image?, &mut r) {
                    Ok(refused) => refused,
                    Err(whole) => return Some(Response::Kind(ResponseKind::Produce(whole))),
                },
                None => Vec::new(),
            };
            return match produce::handle(replicas, meta, &s.txns, &s.metrics, r, v).await {
                produce::Produced::Done(r) => r.map(|mut r| {
                    r.responses.extend(refused);
                    Response::Kind(ResponseKind::Produce(r))
                }),
                produce::Produced::Replicating(mut r) => {
                    r.extend(refused);
                    Some(Response::Replicating(Box::new(r)))
                }
            };
        }
        RequestKind::Fetch(mut r) => {
            // A consumer's session is authorized per topic of the session at each fetch
            // (the request names only some of them); any other fetch before it is read.
            // Decided once: the sessionless path relies on the check below.
            let in_session = fetch::in_session(&r, v);
            let consumer_session = in_session && fetch::replica_of(&r).is_none();
            let may_read = |name: &str| may_topic(Op::Read, name);
            let authorize: session_fetch::Authorize<'_> =
                (consumer_session && check.is_some()).then_some(&may_read);
            let refused = match consumer_session {
                true => Vec::new(),
                false => gate!(c => access::fetch(c, image?, &mut r)),
            };
            let sessions = &*ctx.fetch_sessions;
            let mut reply = fetch::handle(
                (replicas, meta),
                &s.metrics,
                (r, sessions),
                v,
                (in_session, authorize),
            )
            .await;
            reply.response.responses.extend(refused);
            return Some(Response::Fetch(reply));
        }
        RequestKind::ListOffsets(mut r) => {
            let refused = gate!(c => access::list_offsets(c, &mut r));
            let mut resp = list_offsets::handle(replicas, r, v);
            resp.topics.extend(refused);
            ResponseKind::ListOffsets(resp)
        }
        RequestKind::OffsetForLeaderEpoch(mut r) => {
            let refused = gate!(c => access::offset_for_leader_epoch(c, &mut r));
            let mut resp = list_offsets::leader_epoch(replicas, r);
            resp.topics.extend(refused);
            ResponseKind::OffsetForLeaderEpoch(resp)
        }
        RequestKind::CreateTopics(mut r) => {
            let refused = gate!(c => access::create_topics(c, &mut r));
            let quota = mutation_quota(ctx, v, topics::STRICT_MUTATION_QUOTA_SINCE.0);
            let shows_configs = |name: &str| {
                check.is_none_or(|c| {
                    c.allowed_quietly(Op::DescribeConfigs, brook_meta::ResourceType::Topic, name)
                })
            };
            let mut resp =
                topics::create(&s.controller, meta, &s.config, r, v, quota, shows_configs).await;
            resp.topics.extend(refused);
            ResponseKind::CreateTopics(resp)
        }
        RequestKind::DeleteTopics(mut r) => {
            let refused = gate!(c => access::delete_topics(c, image?, &mut r));
            let quota = mutation_quota(ctx, v, topics::STRICT_MUTATION_QUOTA_SINCE.1);
            let mut resp = topics::delete(&s.controller, meta, r, v, quota).await;
            resp.responses.extend(refused);
            ResponseKind::DeleteTopics(resp)
        }
        RequestKind::CreatePartitions(mut r) => {
            let refused = gate!(c => access::create_partitions(c, &mut r));
            let quota = mutation_quota(ctx, v, topics::STRICT_MUTATION_QUOTA_SINCE.2);
            let mut resp = topics::create_partitions(&s.controller, r, quota).await;
            resp.results.extend(refused);
            ResponseKind::CreatePartitions(resp)
        }
        RequestKind::DeleteRecords(mut r) => {
            let refused = gate!(c => access::delete_records(c, &mut r));
            let mut resp = topics::delete_records(replicas, r).await;
            resp.topics.extend(refused);
            ResponseKind::DeleteRecords(resp)
        }
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(
            image.unwrap_or(&meta.image()),
            acl_refusal(Op::Describe),
            r,
        )),
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(acls::create(&s.controller, acl_refusal(Op::Alter), r).await)
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(acls::delete(&s.controller, acl_refusal(Op::Alter), r).await)
        }
        RequestKind::DescribeCluster(r) => {
            let mut resp = metadata::describe_cluster(meta, &ctx.session.listener.name, r);
            if let Some(c) = check {
                resp.cluster_authorized_operations = c.authorized_ops(
                    resp.cluster_authorized_operations,
                    brook_meta::ResourceType::Cluster,
                    access::CLUSTER_NAME,
                );
            }
            ResponseKind::DescribeCluster(resp)
        }
        RequestKind::DescribeConfigs(mut r) => {
            let refused = gate!(c => access::describe_configs(c, &mut r));
            let mut resp = configs::describe(&s.configs(), r, v);
            resp.results.extend(refused);
            ResponseKind::DescribeConfigs(resp)
        }
        RequestKind::AlterConfigs(mut r) => {
            let refused = gate!(c => access::alter_configs(c, &mut r));
            let mut resp = configs::alter(&s.configs(), r).await;
            resp.responses.extend(refused);
            ResponseKind::AlterConfigs(resp)
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let refused = gate!(c => access::incremental_alter_configs(c, &mut r));
            let mut resp = configs::incremental_alter(&s.configs(), r).await;
            resp.responses.extend(refused);
            ResponseKind::IncrementalAlterConfigs(resp)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(txn::init_producer_id(&s.txns, &s.controller, r, v).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            if let Some(whole) = check.and_then(|c| access::add_partitions_to_txn(c, &r, v)) {
                return Some(Response::Kind(ResponseKind::AddPartitionsToTxn(whole)));
            }
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(&s.txns, meta, r, v).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(&s.txns, &s.groups, r, v).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(&s.txns, r, v).await),
        RequestKind::TxnOffsetCommit(mut r) => {
            let refused = gate!(c => access::txn_offset_commit(c, &mut r));
            let mut resp = txn::txn_offset_commit(&s.groups, meta, r).await;
            resp.topics.extend(refused);
            ResponseKind::TxnOffsetCommit(resp)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(txn::write_txn_markers(&s.markers, r).await)
        }
        RequestKind::DescribeTransactions(r) => {
            let mut resp = txn::describe_transactions(&s.txns, r);
            if let Some(c) = check {
                access::describe_transactions(c, &mut resp);
            }
            ResponseKind::DescribeTransactions(resp)
        }
        RequestKind::DescribeProducers(r) => {
            let mut resp = txn::describe_producers(replicas, meta, r);
            if let Some(c) = check {
                access::describe_producers(c, &mut resp);
            }
            ResponseKind::DescribeProducers(resp)
        }
        RequestKind::ListTransactions(r) => {
            let mut resp = txn::list_transactions(&s.txns, r, v);
            if let Some(c) = check {
                access::list_transactions(c, &mut resp);
            }
            ResponseKind::ListTransactions(resp)
        }
        RequestKind::FindCoordinator(mut r) => {
            let refused = match check.map(|c| access::find_coordinator(c, &mut r, v)) {
                Some(Err(whole)) => {
                    return Some(Response::Kind(ResponseKind::FindCoordinator(*whole)))
                }
                Some(Ok(refused)) => refused,
                None => Vec::new(),
            };
            let mut resp =
                coordinator::handle(meta, &s.groups, &s.txns, &ctx.session.listener.name, r, v)
                    .await;
            resp.coordinators.extend(refused);
            ResponseKind::FindCoordinator(resp)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(group::join(&s.groups, &s.metadata, ctx, r, v).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(group::sync(&s.groups, &s.metadata, r, v).await)
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group::heartbeat(&s.groups, r, v)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group::leave(&s.groups, r, v).await),
        RequestKind::OffsetCommit(mut r) => {
            let refused = gate!(c => access::offset_commit(c, &mut r));
            let mut resp = group::offset_commit(&s.groups, &s.metadata, r, v).await;
            resp.topics.extend(refused);
            ResponseKind::OffsetCommit(resp)
        }
        RequestKind::OffsetFetch(mut r) => {
            let refused = check.map(|c| (c, access::offset_fetch(c, &mut r)));
            if let Some(whole) = refused
                .as_ref()
                .and_then(|(_, r)| access::offset_fetch_refused(r))
            {
                return Some(Response::Kind(ResponseKind::OffsetFetch(whole)));
            }
            let mut resp = group::offset_fetch(&s.groups, r, v);
            if let Some((c, refused)) = refused {
                access::offset_fetch_answer(c, refused, &mut resp);
            }
            ResponseKind::OffsetFetch(resp)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            // A regular expression resolves to the topics the member may DESCRIBE.
            let may_describe = |topic: &str| {
                check.is_none_or(|c| {
                    c.allowed_quietly(Op::Describe, brook_meta::ResourceType::Topic, topic)
                })
            };
            ResponseKind::ConsumerGroupHeartbeat(
                consumer_group::heartbeat(&s.groups, meta, ctx, r, v, &may_describe).await,
            )
        }
        RequestKind::ConsumerGroupDescribe(mut r) => {
            let refused = gate!(c => access::consumer_group_describe(c, &mut r));
            let mut resp = consumer_group::describe(&s.groups, meta, r, v);
            if let Some(c) = check {
                for g in &mut resp.groups {
                    g.authorized_operations =
                        access::group_ops(c, g.authorized_operations, &g.group_id);
                }
            }
            resp.groups.extend(refused);
            ResponseKind::ConsumerGroupDescribe(resp)
        }
        RequestKind::ShareGroupHeartbeat(r) => ResponseKind::ShareGroupHeartbeat(
            share_group::heartbeat(&s.groups, &s.shares, meta, ctx, r).await,
        ),
        RequestKind::ShareGroupDescribe(mut r) => {
            let refused = gate!(c => access::share_group_describe(c, &mut r));
            let mut resp = share_group::describe(&s.groups, meta, r);
            if let Some(c) = check {
                for g in &mut resp.groups {
                    g.authorized_operations =
                        access::group_ops(c, g.authorized_operations, &g.group_id);
                }
            }
            resp.groups.extend(refused);
            ResponseKind::ShareGroupDescribe(resp)
        }
        RequestKind::ShareFetch(mut r) => {
            if let Some(c) = check {
                // Topics the principal may not READ are left out of the request.
                let image = image?;
                for t in &mut r.topics {
                    let readable = image
                        .topic_by_id(&t.topic_id)
                        .is_some_and(|topic| c.topic(Op::Read, &topic.name));
                    if !readable {
                        t.partitions.clear();
                    }
                }
            }
            ResponseKind::ShareFetch(
                share_fetch::fetch((&s.shares, &ctx.session.shares), meta, r, v).await,
            )
        }
        RequestKind::ShareAcknowledge(r) => ResponseKind::ShareAcknowledge(
            share_fetch::acknowledge_request(&s.shares, meta, r, v).await,
        ),
        RequestKind::DescribeShareGroupOffsets(r) => ResponseKind::DescribeShareGroupOffsets(
            share_offsets::describe(
                &s.groups,
                meta,
                (replicas, s.internal.as_ref().map(|i| &*i.peers)),
                &share_acl,
                r,
            )
            .await,
        ),
        RequestKind::AlterShareGroupOffsets(r) => ResponseKind::AlterShareGroupOffsets(
            share_offsets::alter(&s.groups, &s.shares, meta, &share_acl, r).await,
        ),
        RequestKind::DeleteShareGroupOffsets(r) => ResponseKind::DeleteShareGroupOffsets(
            share_offsets::delete(&s.groups, &s.shares, meta, &share_acl, r).await,
        ),
        RequestKind::ListGroups(r) => {
            let mut resp = group::list(&s.groups, r, v);
            if let Some(c) = check {
                access::list_groups(c, &mut resp);
            }
            ResponseKind::ListGroups(resp)
        }
        RequestKind::DescribeGroups(mut r) => {
            let refused = gate!(c => access::describe_groups(c, &mut r));
            let mut resp = group::describe(&s.groups, r, v);
            if let Some(c) = check {
                for g in &mut resp.groups {
                    g.authorized_operations =
                        access::group_ops(c, g.authorized_operations, &g.group_id);
                }
            }
            resp.groups.extend(refused);
            ResponseKind::DescribeGroups(resp)
        }
        RequestKind::DeleteGroups(mut r) => {
            let refused = gate!(c => access::delete_groups(c, &mut r));
            let mut resp = group::delete(&s.groups, r, v).await;
            for deleted in resp.results.iter().filter(|r| r.error_code == 0) {
                s.shares.forget_group(&deleted.group_id);
            }
            resp.results.extend(refused);
            ResponseKind::DeleteGroups(resp)
        }
        RequestKind::OffsetDelete(mut r) => {
            let refused = gate!(c => access::offset_delete(c, &mut r));
            let mut resp = group::offset_delete(&s.groups, r, v).await;
            resp.topics.extend(refused);
            ResponseKind::OffsetDelete(resp)
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
            ResponseKind::DescribeClientQuotas(quotas::describe(&meta.image(), r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(quotas::alter(&s.controller, r).await)
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
