//! The group APIs' checks (FindCoordinator, the classic and consumer group protocols,
//! offsets, and the group admin APIs), as Kafka's `KafkaApis` makes them.

use brook_meta::ResourceType;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    consumer_group_describe_response, offset_delete_response, ConsumerGroupDescribeRequest,
    ConsumerGroupHeartbeatRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, FindCoordinatorResponse, ListGroupsResponse, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Check, Op, CLUSTER_NAME};

pub const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const TXN_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();

/// FindCoordinator: DESCRIBE on the group (key type 0) or transactional id (1). Before
/// v4 (one key) a refusal is the whole answer (`Err`); from v4 refused keys are taken
/// out of the request and their answers returned.
pub fn find_coordinator(
    c: &Check<'_>,
    req: &mut FindCoordinatorRequest,
    version: i16,
) -> Result<Vec<Coordinator>, Box<FindCoordinatorResponse>> {
    let refused = |key: &str| match req.key_type {
        0 if !c.group(Op::Describe, key) => Some(GROUP_DENIED),
        1 if !c.txn(Op::Describe, key) => Some(TXN_DENIED),
        _ => None,
    };
    if version < 4 {
        return match refused(&req.key) {
            Some(code) => Err(Box::new(
                FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_error_message(Some(denied_message(code)))
                    .with_node_id((-1).into())
                    .with_port(-1),
            )),
            None => Ok(Vec::new()),
        };
    }
    let mut answers = Vec::new();
    let keys = std::mem::take(&mut req.coordinator_keys);
    for key in keys {
        match refused(&key) {
            Some(code) => answers.push(
                Coordinator::default()
                    .with_key(key)
                    .with_error_code(code)
                    .with_error_message(Some(denied_message(code)))
                    .with_node_id((-1).into())
                    .with_port(-1),
            ),
            None => req.coordinator_keys.push(key),
        }
    }
    Ok(answers)
}

/// The message Kafka sends with a refused FindCoordinator (its `Errors` message): clients
/// print it (librdkafka's "FindCoordinator response error: <message>"), and an empty one
/// leaves them no way to tell what was refused.
fn denied_message(code: i16) -> StrBytes {
    StrBytes::from_static_str(if code == GROUP_DENIED {
        "Group authorization failed."
    } else {
        "Transactional Id authorization failed."
    })
}

/// JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ConsumerGroupHeartbeat: READ on the
/// group, or the whole request fails with GROUP_AUTHORIZATION_FAILED.
pub fn may_read_group(c: &Check<'_>, group: &str) -> bool {
    c.group(Op::Read, group)
}

/// ConsumerGroupHeartbeat also needs DESCRIBE on every topic subscribed by name
/// (TOPIC_AUTHORIZATION_FAILED otherwise). `Some(code)` refuses the request.
pub fn consumer_group_heartbeat(c: &Check<'_>, req: &ConsumerGroupHeartbeatRequest) -> Option<i16> {
    if !c.group(Op::Read, &req.group_id) {
        return Some(GROUP_DENIED);
    }
    let topics = req.subscribed_topic_names.iter().flatten();
    for t in topics {
        if !c.topic(Op::Describe, t) {
            return Some(TOPIC_DENIED);
        }
    }
    None
}

/// OffsetCommit: READ on the group (else every partition answers
/// GROUP_AUTHORIZATION_FAILED), then READ on each topic.
pub fn offset_commit(
    c: &Check<'_>,
    req: &mut OffsetCommitRequest,
) -> Vec<OffsetCommitResponseTopic> {
    let group_ok = c.group(Op::Read, &req.group_id);
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| group_ok && c.topic(Op::Read, &t.name));
    req.topics = allowed;
    let code = if group_ok { TOPIC_DENIED } else { GROUP_DENIED };
    refused
        .into_iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// What OffsetFetch refused, to add to the handler's answer.
#[derive(Default)]
pub struct OffsetFetchRefusals {
    /// Before v8: the group itself (the whole answer is GROUP_AUTHORIZATION_FAILED).
    group: bool,
    topics: Vec<OffsetFetchResponseTopic>,
    /// From v8, per group: refused groups, and topics refused in allowed groups.
    groups: Vec<OffsetFetchResponseGroup>,
    topics_by_group: Vec<(String, Vec<OffsetFetchResponseTopics>)>,
    /// Groups asking for all their topics: the answer lists only describable topics.
    all_topics: bool,
}

/// OffsetFetch: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED), DESCRIBE on each
/// topic named (TOPIC_AUTHORIZATION_FAILED); asked for all topics, the answer leaves
/// out those the principal may not DESCRIBE.
pub fn offset_fetch(c: &Check<'_>, req: &mut OffsetFetchRequest) -> OffsetFetchRefusals {
    let mut out = OffsetFetchRefusals::default();
    if req.groups.is_empty() {
        if !c.group(Op::Describe, &req.group_id) {
            out.group = true;
            return out;
        }
        match req.topics.as_mut() {
            None => out.all_topics = true,
            Some(topics) => topics.retain(|t| {
                let ok = c.topic(Op::Describe, &t.name);
                if !ok {
                    out.topics.push(
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_error_code(TOPIC_DENIED)
                                    })
                                    .collect(),
                            ),
                    );
                }
                ok
            }),
        }
        return out;
    }
    let groups = std::mem::take(&mut req.groups);
    for mut g in groups {
        if !c.group(Op::Describe, &g.group_id) {
            out.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(GROUP_DENIED),
            );
            continue;
        }
        let mut refused = Vec::new();
        match g.topics.as_mut() {
            None => out.all_topics = true,
            Some(topics) => topics.retain(|t| {
                let ok = c.topic(Op::Describe, &t.name);
                if !ok {
                    refused.push(
                        OffsetFetchResponseTopics::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_error_code(TOPIC_DENIED)
                                    })
                                    .collect(),
                            ),
                    );
                }
                ok
            }),
        }
        if !refused.is_empty() {
            out.topics_by_group.push((g.group_id.to_string(), refused));
        }
        req.groups.push(g);
    }
    out
}

/// Whether OffsetFetch refused the whole request (before v8), so the handler is not
/// asked.
pub fn offset_fetch_refused(r: &OffsetFetchRefusals) -> Option<OffsetFetchResponse> {
    r.group
        .then(|| OffsetFetchResponse::default().with_error_code(GROUP_DENIED))
}

/// Adds OffsetFetch's refusals to the handler's answer.
pub fn offset_fetch_answer(c: &Check<'_>, r: OffsetFetchRefusals, resp: &mut OffsetFetchResponse) {
    if r.all_topics {
        resp.topics.retain(|t| c.topic(Op::Describe, &t.name));
        for g in &mut resp.groups {
            g.topics.retain(|t| c.topic(Op::Describe, &t.name));
        }
    }
    resp.topics.extend(r.topics);
    for (group, topics) in r.topics_by_group {
        if let Some(g) = resp.groups.iter_mut().find(|g| *g.group_id == *group) {
            g.topics.extend(topics);
        }
    }
    resp.groups.extend(r.groups);
}

/// ListGroups: all groups with DESCRIBE on the cluster, else those the principal may
/// DESCRIBE.
pub fn list_groups(c: &Check<'_>, resp: &mut ListGroupsResponse) {
    let quiet = |op, t, name: &str| c.allowed_quietly(op, t, name);
    if !quiet(Op::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        resp.groups
            .retain(|g| quiet(Op::Describe, ResourceType::Group, &g.group_id));
    }
}

/// The operations DescribeGroups and ConsumerGroupDescribe report as authorized: the
/// principal's.
pub fn group_ops(c: &Check<'_>, ops: i32, group: &str) -> i32 {
    c.authorized_ops(ops, ResourceType::Group, group)
}

/// OffsetDelete (after DELETE on the group, checked by the router): READ on each
/// topic, else TOPIC_AUTHORIZATION_FAILED per partition.
pub fn offset_delete(
    c: &Check<'_>,
    req: &mut OffsetDeleteRequest,
) -> Vec<offset_delete_response::OffsetDeleteResponseTopic> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| c.topic(Op::Read, &t.name));
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            offset_delete_response::OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            offset_delete_response::OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// DescribeGroups: DESCRIBE on each group.
pub fn describe_groups(c: &Check<'_>, req: &mut DescribeGroupsRequest) -> Vec<DescribedGroup> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups)
        .into_iter()
        .partition(|g| c.group(Op::Describe, g));
    req.groups = allowed;
    refused
        .into_iter()
        .map(|g| {
            DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
        })
        .collect()
}

/// ConsumerGroupDescribe: DESCRIBE on each group.
pub fn consumer_group_describe(
    c: &Check<'_>,
    req: &mut ConsumerGroupDescribeRequest,
) -> Vec<consumer_group_describe_response::DescribedGroup> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.group_ids)
        .into_iter()
        .partition(|g| c.group(Op::Describe, g));
    req.group_ids = allowed;
    refused
        .into_iter()
        .map(|g| {
            consumer_group_describe_response::DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
        })
        .collect()
}

/// DeleteGroups: DELETE on each group.
pub fn delete_groups(c: &Check<'_>, req: &mut DeleteGroupsRequest) -> Vec<DeletableGroupResult> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups_names)
        .into_iter()
        .partition(|g| c.group(Op::Delete, g));
    req.groups_names = allowed;
    refused
        .into_iter()
        .map(|g| {
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
        })
        .collect()
}

/// ShareGroupDescribe: DESCRIBE on each group.
pub fn share_group_describe(
    c: &Check<'_>,
    req: &mut kafka_protocol::messages::ShareGroupDescribeRequest,
) -> Vec<kafka_protocol::messages::share_group_describe_response::DescribedGroup> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.group_ids)
        .into_iter()
        .partition(|g| c.group(Op::Describe, g));
    req.group_ids = allowed;
    refused
        .into_iter()
        .map(|g| {
            kafka_protocol::messages::share_group_describe_response::DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(GROUP_DENIED)
        })
        .collect()
}

/// ShareGroupHeartbeat: READ on the group and DESCRIBE on every subscribed topic, as
/// Kafka checks it. `Some(code)` refuses the request.
pub fn share_group_heartbeat(
    c: &Check<'_>,
    req: &kafka_protocol::messages::ShareGroupHeartbeatRequest,
) -> Option<i16> {
    if !c.group(Op::Read, &req.group_id) {
        return Some(GROUP_DENIED);
    }
    let denied = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .any(|t| !c.topic(Op::Describe, t));
    denied.then_some(kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code())
}

/// ShareFetch and ShareAcknowledge: READ on the group (the whole request); the topics'
/// READ is checked by id in the handler's image.
pub fn share_group_read(c: &Check<'_>, group: Option<&str>) -> bool {
    group.is_some_and(|g| c.group(Op::Read, g))
}
