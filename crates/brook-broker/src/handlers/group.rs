//! Group membership and offsets: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
//! The decisions are `brook-coord`'s; this module parks, appends and answers.

use brook_coord::{Effects, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::groups::{GroupState, Groups};
use crate::handlers::RequestContext;
use crate::image_topics::ImageTopics;
use crate::metadata::MetadataView;

pub async fn join(
    groups: &Arc<Groups>,
    meta: &MetadataView,
    ctx: &RequestContext,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !groups.coordinates(&group_id) {
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code())
            .with_generation_id(-1);
    }
    let image = meta.image();
    let reply = groups
        .park(&group_id, |c, token| {
            c.join_group(
                token,
                version,
                &req,
                ctx.client_id(),
                &ctx.client_host(),
                &ImageTopics(&image),
                now_ms(),
            )
        })
        .await;
    match reply {
        Ok(Reply::JoinGroup(r)) => r,
        Ok(_) => {
            JoinGroupResponse::default().with_error_code(ResponseError::UnknownServerError.code())
        }
        Err(e) => JoinGroupResponse::default()
            .with_error_code(e.code)
            .with_generation_id(-1),
    }
}

pub async fn sync(
    groups: &Arc<Groups>,
    meta: &MetadataView,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !groups.coordinates(&group_id) {
        return SyncGroupResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    let image = meta.image();
    match groups
        .park(&group_id, |c, token| {
            c.sync_group(token, version, &req, &ImageTopics(&image), now_ms())
        })
        .await
    {
        Ok(Reply::SyncGroup(r)) => r,
        Ok(_) => {
            SyncGroupResponse::default().with_error_code(ResponseError::UnknownServerError.code())
        }
        Err(e) => SyncGroupResponse::default().with_error_code(e.code),
    }
}

pub fn heartbeat(groups: &Groups, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
    if !groups.coordinates(&req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    groups.read_mut(|c| c.heartbeat(version, &req, now_ms()))
}

pub async fn leave(groups: &Groups, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !groups.coordinates(&group_id) {
        return LeaveGroupResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    groups
        .apply(&group_id, |c| c.leave_group(version, &req, now_ms()))
        .await
        .unwrap_or_else(|e| LeaveGroupResponse::default().with_error_code(e.code))
}

pub async fn offset_commit(
    groups: &Groups,
    meta: &MetadataView,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    if !groups.coordinates(&group_id) {
        return fail_commit(
            &req,
            &ApiError::new(ResponseError::NotCoordinator, "not the coordinator"),
        );
    }
    // As Kafka: a partition that does not exist gets UNKNOWN_TOPIC_OR_PARTITION and is
    // not committed; the others are.
    let image = meta.image();
    let exists = |topic: &str, index: i32| image.partition(topic, index).is_some();
    if req.topics.iter().any(|t| {
        t.partitions
            .iter()
            .any(|p| !exists(&t.name.0, p.partition_index))
    }) {
        let mut known = req.clone();
        for t in &mut known.topics {
            t.partitions
                .retain(|p| exists(&t.name.0, p.partition_index));
        }
        known.topics.retain(|t| !t.partitions.is_empty());
        let committed = if known.topics.is_empty() {
            OffsetCommitResponse::default()
        } else {
            Box::pin(offset_commit(groups, meta, known, version)).await
        };
        return merge_unknown(&req, committed, &exists);
    }
    let result = groups
        .apply_replicated(&group_id, |c| {
            let (response, records) =
                c.offset_commit(version, &req, &ImageTopics(&image), now_ms());
            (
                response,
                Effects {
                    replies: vec![],
                    records,
                },
            )
        })
        .await;
    result.unwrap_or_else(|e| fail_commit(&req, &e))
}

/// The response to `req` in its order: each partition from `committed`, or
/// UNKNOWN_TOPIC_OR_PARTITION for one that does not exist.
fn merge_unknown(
    req: &OffsetCommitRequest,
    mut committed: OffsetCommitResponse,
    exists: &dyn Fn(&str, i32) -> bool,
) -> OffsetCommitResponse {
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    let mut answered: HashMap<(String, i32), i16> = HashMap::new();
    for t in &committed.topics {
        for p in &t.partitions {
            answered.insert((t.name.0.to_string(), p.partition_index), p.error_code);
        }
    }
    committed.topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if exists(&t.name.0, p.partition_index) {
                        answered
                            .get(&(t.name.0.to_string(), p.partition_index))
                            .copied()
                            .unwrap_or(0)
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    committed
}

/// Every partition of the request gets the storage error.
fn fail_commit(req: &OffsetCommitRequest, e: &ApiError) -> OffsetCommitResponse {
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(e.code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub fn offset_fetch(groups: &Groups, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    // Offsets and what transactions hold pending are read under one lock: a commit
    // marker applies pending offsets under it too (KIP-447's require_stable).
    let mut response = groups.read(|state| {
        let mut response = state.coordinator.offset_fetch(version, &req);
        if req.require_stable {
            mark_unstable(state, &req, &mut response, version);
        }
        response
    });
    if version < 8 {
        if !groups.coordinates(&req.group_id.0) {
            return OffsetFetchResponse::default()
                .with_error_code(ResponseError::NotCoordinator.code());
        }
    } else {
        for g in response.groups.iter_mut() {
            if !groups.coordinates(&g.group_id.0) {
                g.error_code = ResponseError::NotCoordinator.code();
                g.topics.clear();
            }
        }
    }
    response
}

/// UNSTABLE_OFFSET_COMMIT for each partition whose offset a transaction has yet to
/// decide. Called with the coordinator locked.
fn mark_unstable(
    groups: &GroupState,
    req: &OffsetFetchRequest,
    response: &mut OffsetFetchResponse,
    version: i16,
) {
    let unstable = ResponseError::UnstableOffsetCommit.code();
    if version < 8 {
        for t in response.topics.iter_mut() {
            for p in t.partitions.iter_mut() {
                if groups.has_pending_offset(&req.group_id, &t.name, p.partition_index) {
                    p.error_code = unstable;
                    p.committed_offset = -1;
                }
            }
        }
        return;
    }
    for g in response.groups.iter_mut() {
        for t in g.topics.iter_mut() {
            for p in t.partitions.iter_mut() {
                if groups.has_pending_offset(&g.group_id, &t.name, p.partition_index) {
                    p.error_code = unstable;
                    p.committed_offset = -1;
                }
            }
        }
    }
}

pub fn list(groups: &Groups, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    groups.read(|g| g.coordinator.list_groups(version, &req))
}

pub fn describe(
    groups: &Groups,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut response = groups.read(|g| g.coordinator.describe_groups(version, &req));
    for g in response.groups.iter_mut() {
        if !groups.coordinates(&g.group_id.0) {
            g.error_code = ResponseError::NotCoordinator.code();
        }
    }
    if req.include_authorized_operations {
        for g in response.groups.iter_mut().filter(|g| g.error_code == 0) {
            g.authorized_operations = super::authorized_ops::GROUP;
        }
    }
    response
}

pub async fn delete(
    groups: &Groups,
    req: DeleteGroupsRequest,
    version: i16,
) -> DeleteGroupsResponse {
    // Tombstones for several groups: append them group by group.
    let deleted = groups.apply_all(|c| c.delete_groups(version, &req)).await;
    deleted.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot write group tombstones");
        DeleteGroupsResponse::default().with_results(
            req.groups_names
                .iter()
                .map(|g| {
                    delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(e.code)
                })
                .collect(),
        )
    })
}

pub async fn offset_delete(
    groups: &Groups,
    req: OffsetDeleteRequest,
    version: i16,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    if !groups.coordinates(&group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code());
    }
    groups
        .apply(&group_id, |c| {
            let (response, records) = c.offset_delete(version, &req);
            (
                response,
                Effects {
                    replies: vec![],
                    records,
                },
            )
        })
        .await
        .unwrap_or_else(|e| OffsetDeleteResponse::default().with_error_code(e.code))
}
