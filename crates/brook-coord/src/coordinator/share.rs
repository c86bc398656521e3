//! ShareGroupHeartbeat (KIP-932): joining, leaving, subscriptions and the target
//! assignment of share groups, with the records that make them durable.
//!
//! One heartbeat, after Kafka's `shareGroupHeartbeat`:
//! 1. check the request (INVALID_REQUEST);
//! 2. find the member: a new one (epoch 0; GROUP_MAX_SIZE_REACHED when full) or a known
//!    one whose epoch must be current (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID);
//! 3. apply what the request changes; a new subscription, or subscribed topics that
//!    changed in the metadata, bump the group epoch;
//! 4. a group epoch ahead of the target assignment's runs the simple assignor;
//! 5. the member takes its target assignment at once (share groups revoke nothing);
//! 6. answer with the member's epoch and, when it changed or the request was a full
//!    one, its assignment.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_heartbeat_response::{
    Assignment as RespAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use uuid::Uuid;

use super::{Ctx, Effects, GroupCoordinator, Groups};
use crate::config::MAX_SUBSCRIBED_TOPICS;
use crate::consumer::{metadata_hash, Assignment, TopicsView, LEAVE_GROUP_MEMBER_EPOCH};
use crate::group::Group;
use crate::records::OffsetsRecord;
use crate::share::records::{MemberMetadata, ShareKey, ShareValue, StoredPartitionState};
use crate::share::{self, ShareGroup, ShareGroupState, ShareMember};
use crate::timers::TimerKey;

/// The protocol type ListGroups reports for share groups.
pub(crate) const SHARE_PROTOCOL_TYPE: &str = "share";

struct HeartbeatError(ResponseError, String);

fn err<T>(code: ResponseError, message: impl Into<String>) -> Result<T, HeartbeatError> {
    Err(HeartbeatError(code, message.into()))
}

impl GroupCoordinator {
    /// Handles ShareGroupHeartbeat. Returns the response and the records to append
    /// before sending it.
    pub fn share_group_heartbeat(
        &mut self,
        request: &ShareGroupHeartbeatRequest,
        client_id: &str,
        client_host: &str,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> (ShareGroupHeartbeatResponse, Vec<OffsetsRecord>) {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let response = heartbeat(&mut ctx, groups, request, client_id, client_host, topics)
            .unwrap_or_else(|HeartbeatError(code, message)| {
                ShareGroupHeartbeatResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message)))
            });
        (response, effects.records)
    }

    /// Whether `member` is a member of share group `group_id` assigned the partition.
    pub fn share_member_assigned(
        &self,
        group_id: &str,
        member: &str,
        topic: &Uuid,
        partition: i32,
    ) -> bool {
        self.groups
            .get(group_id)
            .and_then(|g| g.share.as_ref())
            .is_some_and(|sg| sg.is_assigned(member, topic, partition))
    }

    /// Each share group's id, state and member count, in group order (metrics).
    pub fn visit_share_groups(&self, mut f: impl FnMut(&str, ShareGroupState, usize)) {
        for (id, group) in &self.groups {
            if let Some(sg) = &group.share {
                f(id, sg.state(), sg.members.len());
            }
        }
    }

    /// Whether `group_id` is a share group with `member` in it.
    pub fn is_share_member(&self, group_id: &str, member: &str) -> bool {
        self.groups
            .get(group_id)
            .and_then(|g| g.share.as_ref())
            .is_some_and(|sg| sg.members.contains_key(member))
    }

    /// The stored state of a share-partition of a share group, if any was written.
    pub fn share_partition_state(
        &self,
        group_id: &str,
        topic: &Uuid,
        partition: i32,
    ) -> Option<StoredPartitionState> {
        self.groups
            .get(group_id)
            .and_then(|g| g.share.as_ref())
            .and_then(|sg| sg.partition_states.get(&(*topic, partition)))
            .cloned()
    }

    /// Records a share-partition's state: returns the record to append, or None when the
    /// group is not a share group here (it moved, or was deleted).
    pub fn write_share_partition_state(
        &mut self,
        group_id: &str,
        topic: Uuid,
        partition: i32,
        state: StoredPartitionState,
    ) -> Option<OffsetsRecord> {
        let sg = self.groups.get_mut(group_id)?.share.as_mut()?;
        let record = OffsetsRecord::share(
            &ShareKey::PartitionState {
                group: group_id.to_owned(),
                topic,
                partition,
            },
            Some(&ShareValue::PartitionState(state.clone())),
        );
        sg.partition_states.insert((topic, partition), state);
        Some(record)
    }

    /// Members removed from share groups since the last call (left, or their session
    /// expired): the broker releases what they hold and drops their share sessions.
    pub fn take_departed_share_members(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.departed_share_members)
    }
}

fn validate(req: &ShareGroupHeartbeatRequest) -> Result<(), HeartbeatError> {
    if req.group_id.is_empty() {
        return err(ResponseError::InvalidRequest, "GroupId can't be empty.");
    }
    if req.member_id.is_empty() {
        return err(ResponseError::InvalidRequest, "MemberId can't be empty.");
    }
    if req.member_id.len() > i16::MAX as usize {
        return err(ResponseError::InvalidRequest, "MemberId is too long.");
    }
    if req.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
        return err(ResponseError::InvalidRequest, "RackId can't be empty.");
    }
    if req.member_epoch < LEAVE_GROUP_MEMBER_EPOCH {
        return err(
            ResponseError::InvalidRequest,
            format!("MemberEpoch is invalid: {}.", req.member_epoch),
        );
    }
    let names = req.subscribed_topic_names.as_ref();
    if req.member_epoch == 0 && names.is_none_or(|n| n.is_empty()) {
        return err(
            ResponseError::InvalidRequest,
            "SubscribedTopicNames must be set in first request.",
        );
    }
    if names.is_some_and(|n| n.len() > MAX_SUBSCRIBED_TOPICS) {
        return err(
            ResponseError::InvalidRequest,
            format!("SubscribedTopicNames holds more than {MAX_SUBSCRIBED_TOPICS} topics."),
        );
    }
    Ok(())
}

fn heartbeat(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    req: &ShareGroupHeartbeatRequest,
    client_id: &str,
    client_host: &str,
    topics: &dyn TopicsView,
) -> Result<ShareGroupHeartbeatResponse, HeartbeatError> {
    validate(req)?;
    let group_id = req.group_id.as_str();
    let member_id = req.member_id.as_str();
    if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
        if let Some(group) = groups.get_mut(group_id) {
            if let Some(sg) = group.share.as_mut() {
                if sg.members.contains_key(member_id) {
                    remove_member(ctx, group_id, sg, member_id, "it left");
                }
            }
        }
        return Ok(ShareGroupHeartbeatResponse::default()
            .with_member_id(Some(req.member_id.clone()))
            .with_member_epoch(LEAVE_GROUP_MEMBER_EPOCH));
    }
    let is_new_group = match groups.get(group_id) {
        Some(g) if g.share.is_some() => false,
        Some(g) if !is_empty_other(g) => {
            return err(
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a share group."),
            )
        }
        _ if req.member_epoch != 0 => {
            return err(
                ResponseError::GroupIdNotFound,
                format!("Share group {group_id} not found."),
            )
        }
        _ => true,
    };
    if is_new_group {
        let mut group = Group::new(group_id, Some(ctx.now_ms));
        if let Some(old) = groups.remove(group_id) {
            // An empty classic group that only held offsets: they stay.
            group.offsets = old.offsets;
            if old.last_metadata_record.is_some() {
                ctx.effects
                    .records
                    .push(OffsetsRecord::group_metadata_tombstone(group_id));
            }
        }
        group.protocol_type = Some(SHARE_PROTOCOL_TYPE.to_owned());
        group.share = Some(Box::default());
        groups.insert(group_id.to_owned(), group);
    }
    let group = groups.get_mut(group_id).expect("present");
    let sg = group.share.as_mut().expect("share group");
    let response = join_or_update(ctx, group_id, sg, req, client_id, client_host, topics);
    if is_new_group && response.is_err() {
        groups.remove(group_id);
        ctx.effects.records.clear();
    }
    response
}

/// A classic group with no members, or a consumer group with none, may become a share
/// group (Kafka converts only empty groups).
fn is_empty_other(group: &Group) -> bool {
    match &group.consumer {
        Some(cg) => cg.members.is_empty(),
        None => group.members.is_empty() && group.pending_members.is_empty(),
    }
}

fn join_or_update(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    sg: &mut ShareGroup,
    req: &ShareGroupHeartbeatRequest,
    client_id: &str,
    client_host: &str,
    topics: &dyn TopicsView,
) -> Result<ShareGroupHeartbeatResponse, HeartbeatError> {
    let member_id = req.member_id.as_str();
    let existing = sg.members.get(member_id).cloned();
    let mut member = match (existing, req.member_epoch) {
        (None, 0) => {
            if sg.members.len() >= ctx.config.share_max_size {
                return err(
                    ResponseError::GroupMaxSizeReached,
                    format!(
                        "The share group has reached its maximum capacity of {} members.",
                        ctx.config.share_max_size
                    ),
                );
            }
            ShareMember {
                member_id: member_id.to_owned(),
                ..ShareMember::default()
            }
        }
        (None, _) => {
            return err(
                ResponseError::UnknownMemberId,
                format!("Member {member_id} is not a member of group {group_id}."),
            )
        }
        (Some(m), 0) => m,
        (Some(m), epoch) if epoch != m.member_epoch => {
            return err(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The share group member has an epoch ({epoch}) that does not match the current one ({}).",
                    m.member_epoch
                ),
            )
        }
        (Some(m), _) => m,
    };
    let is_new = !sg.members.contains_key(member_id);
    let before = member.clone();
    member.client_id = client_id.to_owned();
    member.client_host = client_host.to_owned();
    if let Some(rack) = &req.rack_id {
        member.rack_id = Some(rack.to_string());
    }
    if let Some(names) = &req.subscribed_topic_names {
        let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names.dedup();
        member.subscribed_topic_names = names;
    }
    let subscription_changed =
        is_new || member.subscribed_topic_names != before.subscribed_topic_names;
    let metadata_changed = is_new
        || subscription_changed
        || member.client_id != before.client_id
        || member.client_host != before.client_host
        || member.rack_id != before.rack_id;
    if metadata_changed {
        ctx.effects
            .records
            .push(member_metadata_record(group_id, &member));
    }
    sg.members.insert(member_id.to_owned(), member);
    let hash = metadata_hash(topics, sg.subscribed_topics().into_iter(), ctx.rack_digests);
    if subscription_changed || hash != sg.metadata_hash {
        sg.group_epoch = sg.group_epoch.saturating_add(1);
        sg.metadata_hash = hash;
        ctx.effects.records.push(group_epoch_record(group_id, sg));
        if is_new {
            info!(
                group = group_id,
                member = member_id,
                epoch = sg.group_epoch,
                "share group member joined"
            );
        }
    }
    if sg.group_epoch > sg.assignment_epoch {
        update_target(ctx, group_id, sg, topics);
    }
    let member = sg.members.get_mut(member_id).expect("inserted");
    let target = sg.target.get(member_id).cloned().unwrap_or_default();
    let epoch_changed = member.member_epoch != sg.assignment_epoch || member.assigned != target;
    if epoch_changed {
        member.previous_member_epoch = member.member_epoch;
        member.member_epoch = sg.assignment_epoch;
        member.assigned = target;
        ctx.effects
            .records
            .push(current_assignment_record(group_id, member));
    }
    ctx.schedule_group_timer(
        session_key(group_id, member_id),
        i64::from(ctx.config.share_session_timeout_ms(group_id)),
    );
    let full = req.member_epoch == 0 || req.subscribed_topic_names.is_some();
    let mut response = ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(req.member_id.clone()))
        .with_member_epoch(member.member_epoch)
        .with_heartbeat_interval_ms(ctx.config.share_heartbeat_interval_ms(group_id));
    if epoch_changed || full {
        response.assignment = Some(response_assignment(&member.assigned));
    }
    Ok(response)
}

fn response_assignment(a: &Assignment) -> RespAssignment {
    RespAssignment::default().with_topic_partitions(
        a.iter()
            .map(|(topic, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(*topic)
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}

/// Runs the assignor and records the target of every member whose target changed.
fn update_target(ctx: &mut Ctx<'_>, group_id: &str, sg: &mut ShareGroup, topics: &dyn TopicsView) {
    let new_target = share::assign(sg, topics);
    for (member, a) in &new_target {
        if sg.target.get(member) != Some(a) {
            ctx.effects.records.push(OffsetsRecord::share(
                &ShareKey::TargetMember {
                    group: group_id.to_owned(),
                    member: member.clone(),
                },
                Some(&ShareValue::TargetMember(a.clone())),
            ));
        }
    }
    sg.target = new_target;
    sg.assignment_epoch = sg.group_epoch;
    ctx.effects.records.push(OffsetsRecord::share(
        &ShareKey::TargetMetadata {
            group: group_id.to_owned(),
        },
        Some(&ShareValue::TargetMetadata {
            assignment_epoch: sg.assignment_epoch,
        }),
    ));
}

/// Removes a member: its records are tombstoned and the group epoch bumped, so the
/// next heartbeat of those who stay recomputes the target assignment.
fn remove_member(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    sg: &mut ShareGroup,
    member_id: &str,
    why: &str,
) {
    if sg.members.remove(member_id).is_none() {
        return;
    }
    info!(
        group = group_id,
        member = member_id,
        "share group member removed: {why}"
    );
    ctx.timers.cancel(&session_key(group_id, member_id));
    ctx.effects
        .records
        .extend(member_tombstones(group_id, member_id));
    sg.target.remove(member_id);
    sg.group_epoch = sg.group_epoch.saturating_add(1);
    ctx.effects.records.push(group_epoch_record(group_id, sg));
    ctx.departed_share_members
        .push((group_id.to_owned(), member_id.to_owned()));
}

/// A member's session expired.
pub(crate) fn expire_session(ctx: &mut Ctx<'_>, group: &mut Group, member_id: &str) {
    let group_id = group.id.clone();
    if let Some(sg) = group.share.as_mut() {
        remove_member(ctx, &group_id, sg, member_id, "its session expired");
    }
}

/// A replayed share group's members get their session timers.
pub(crate) fn on_loaded(ctx: &mut Ctx<'_>, group: &mut Group) {
    let Some(sg) = group.share.as_ref() else {
        return;
    };
    for m in sg.members.keys() {
        ctx.schedule_group_timer(
            session_key(&group.id, m),
            i64::from(ctx.config.share_session_timeout_ms(&group.id)),
        );
    }
}

pub(crate) fn session_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ShareSession {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
    }
}

fn member_metadata_record(group_id: &str, m: &ShareMember) -> OffsetsRecord {
    OffsetsRecord::share(
        &ShareKey::MemberMetadata {
            group: group_id.to_owned(),
            member: m.member_id.clone(),
        },
        Some(&ShareValue::MemberMetadata(MemberMetadata {
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            subscribed_topic_names: m.subscribed_topic_names.clone(),
        })),
    )
}

fn current_assignment_record(group_id: &str, m: &ShareMember) -> OffsetsRecord {
    OffsetsRecord::share(
        &ShareKey::CurrentAssignment {
            group: group_id.to_owned(),
            member: m.member_id.clone(),
        },
        Some(&ShareValue::CurrentAssignment {
            member_epoch: m.member_epoch,
            previous_member_epoch: m.previous_member_epoch,
            assigned: m.assigned.clone(),
        }),
    )
}

fn group_epoch_record(group_id: &str, sg: &ShareGroup) -> OffsetsRecord {
    OffsetsRecord::share(
        &ShareKey::Metadata {
            group: group_id.to_owned(),
        },
        Some(&ShareValue::Metadata {
            epoch: sg.group_epoch,
            metadata_hash: sg.metadata_hash,
        }),
    )
}

fn member_tombstones(group_id: &str, member_id: &str) -> Vec<OffsetsRecord> {
    let g = || group_id.to_owned();
    let m = || member_id.to_owned();
    vec![
        OffsetsRecord::share(
            &ShareKey::CurrentAssignment {
                group: g(),
                member: m(),
            },
            None,
        ),
        OffsetsRecord::share(
            &ShareKey::TargetMember {
                group: g(),
                member: m(),
            },
            None,
        ),
        OffsetsRecord::share(
            &ShareKey::MemberMetadata {
                group: g(),
                member: m(),
            },
            None,
        ),
    ]
}

/// Records that rebuild a share group (compaction's snapshot).
pub(crate) fn group_records(group_id: &str, sg: &ShareGroup) -> Vec<OffsetsRecord> {
    let mut records = vec![group_epoch_record(group_id, sg)];
    for m in sg.members.values() {
        records.push(member_metadata_record(group_id, m));
        records.push(current_assignment_record(group_id, m));
    }
    for (member, a) in &sg.target {
        records.push(OffsetsRecord::share(
            &ShareKey::TargetMember {
                group: group_id.to_owned(),
                member: member.clone(),
            },
            Some(&ShareValue::TargetMember(a.clone())),
        ));
    }
    records.push(OffsetsRecord::share(
        &ShareKey::TargetMetadata {
            group: group_id.to_owned(),
        },
        Some(&ShareValue::TargetMetadata {
            assignment_epoch: sg.assignment_epoch,
        }),
    ));
    for ((topic, partition), state) in &sg.partition_states {
        records.push(OffsetsRecord::share(
            &ShareKey::PartitionState {
                group: group_id.to_owned(),
                topic: *topic,
                partition: *partition,
            },
            Some(&ShareValue::PartitionState(state.clone())),
        ));
    }
    records
}

/// Records that delete a share group (DeleteGroups): the group metadata tombstone last,
/// as replay drops the group on it.
pub(crate) fn group_tombstones(group_id: &str, sg: &ShareGroup) -> Vec<OffsetsRecord> {
    let mut records = Vec::new();
    let members: BTreeSet<&String> = sg.members.keys().chain(sg.target.keys()).collect();
    for m in members {
        records.extend(member_tombstones(group_id, m));
    }
    for (topic, partition) in sg.partition_states.keys() {
        records.push(OffsetsRecord::share(
            &ShareKey::PartitionState {
                group: group_id.to_owned(),
                topic: *topic,
                partition: *partition,
            },
            None,
        ));
    }
    let g = || group_id.to_owned();
    records.push(OffsetsRecord::share(
        &ShareKey::TargetMetadata { group: g() },
        None,
    ));
    records.push(OffsetsRecord::share(
        &ShareKey::Metadata { group: g() },
        None,
    ));
    records
}
