//! Group membership and offsets: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
//! The decisions are `brook-coord`'s; this module parks, appends and answers.

use std::sync::Arc;
use std::time::Duration;

use brook_coord::{Effects, Reply};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use crate::router::RequestContext;
use crate::shared::{now_ms, ApiError, Shared};

pub async fn join(
    shared: &Arc<Shared>,
    ctx: &RequestContext,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !shared.groups.coordinates(shared, &group_id) {
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code())
            .with_generation_id(-1);
    }
    let reply = shared
        .groups
        .park(shared, &group_id, |c, token| {
            c.join_group(
                token,
                version,
                &req,
                ctx.client_id(),
                &ctx.client_host(),
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

pub async fn sync(shared: &Arc<Shared>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !shared.groups.coordinates(shared, &group_id) {
        return SyncGroupResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    match shared
        .groups
        .park(shared, &group_id, |c, token| {
            c.sync_group(token, version, &req, now_ms())
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

pub fn heartbeat(shared: &Arc<Shared>, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
    if !shared.groups.coordinates(shared, &req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    shared
        .groups
        .read_mut(|c| c.heartbeat(version, &req, now_ms()))
}

pub fn leave(shared: &Arc<Shared>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !shared.groups.coordinates(shared, &group_id) {
        return LeaveGroupResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    shared
        .groups
        .apply(shared, &group_id, |c| {
            c.leave_group(version, &req, now_ms())
        })
        .unwrap_or_else(|e| LeaveGroupResponse::default().with_error_code(e.code))
}

pub fn offset_commit(
    shared: &Arc<Shared>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    if !shared.groups.coordinates(shared, &group_id) {
        return fail_commit(
            &req,
            &ApiError::new(ResponseError::NotCoordinator, "not the coordinator"),
        );
    }
    let result = shared.groups.apply_replicated(shared, &group_id, |c| {
        let (response, records) = c.offset_commit(version, &req, now_ms());
        (
            response,
            Effects {
                replies: vec![],
                records,
            },
        )
    });
    let (response, written) = match result {
        Ok(r) => r,
        Err(e) => return fail_commit(&req, &e),
    };
    // Answer once the in-sync replicas have the commit, as Kafka does (acks=all), so a
    // coordinator failover never loses an acknowledged offset.
    let Some((partition, appended)) = written else {
        return response;
    };
    let timeout =
        Duration::from_millis(shared.config.int("offsets.commit.timeout.ms").max(1) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    match crate::shared::block_on(partition.wait_replicated(&appended, deadline)) {
        Ok(()) => response,
        Err(code) => {
            // Kafka's mapping: the coordinator moved, or the ISR did not keep up in time.
            let error = if code == ResponseError::NotLeaderOrFollower.code() {
                ResponseError::NotCoordinator
            } else {
                ResponseError::CoordinatorNotAvailable
            };
            fail_commit(
                &req,
                &ApiError::new(error, "the offsets were not replicated in time"),
            )
        }
    }
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

pub fn offset_fetch(
    shared: &Arc<Shared>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    // Offsets and what transactions hold pending are read under one lock: a commit
    // marker applies pending offsets under it too (KIP-447's require_stable).
    let groups = &shared.groups;
    let mut response = groups.read(|c| {
        let mut response = c.offset_fetch(version, &req);
        if req.require_stable {
            mark_unstable(groups, &req, &mut response, version);
        }
        response
    });
    if version < 8 {
        if !groups.coordinates(shared, &req.group_id.0) {
            return OffsetFetchResponse::default()
                .with_error_code(ResponseError::NotCoordinator.code());
        }
    } else {
        for g in response.groups.iter_mut() {
            if !groups.coordinates(shared, &g.group_id.0) {
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
    groups: &crate::groups::Groups,
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

pub fn list(shared: &Arc<Shared>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    shared.groups.read(|c| c.list_groups(version, &req))
}

pub fn describe(
    shared: &Arc<Shared>,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut response = shared.groups.read(|c| c.describe_groups(version, &req));
    for g in response.groups.iter_mut() {
        if !shared.groups.coordinates(shared, &g.group_id.0) {
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

pub fn delete(
    shared: &Arc<Shared>,
    req: DeleteGroupsRequest,
    version: i16,
) -> DeleteGroupsResponse {
    // Tombstones for several groups: append them group by group.
    let (response, records) = shared.groups.read_mut(|c| c.delete_groups(version, &req));
    if let Err(e) = shared.groups.append_records(shared, &records) {
        tracing::error!(error = %e, "cannot write group tombstones");
    }
    response
}

pub fn offset_delete(
    shared: &Arc<Shared>,
    req: OffsetDeleteRequest,
    version: i16,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    if !shared.groups.coordinates(shared, &group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code());
    }
    shared
        .groups
        .apply(shared, &group_id, |c| {
            let (response, records) = c.offset_delete(version, &req);
            (
                response,
                Effects {
                    replies: vec![],
                    records,
                },
            )
        })
        .unwrap_or_else(|e| OffsetDeleteResponse::default().with_error_code(e.code))
}
