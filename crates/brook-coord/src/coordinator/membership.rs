//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup, and the rebalance they drive.
//!
//! The flow follows Kafka's classic group coordinator: a rebalance moves the group to
//! PreparingRebalance and parks JoinGroup requests until every known member has rejoined
//! (or the longest rebalance timeout passes); completing the join phase bumps the
//! generation, answers every parked JoinGroup (the leader gets all members' metadata) and
//! moves to CompletingRebalance; the leader's SyncGroup carries the assignment, which
//! answers every parked SyncGroup and makes the group Stable.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest,
};
use tracing::{debug, info};

use super::responses::{
    join_error, join_success, str_bytes, sync_error, sync_success, JoinedGeneration,
};
use super::{
    join_key, migration, sync_key, Ctx, Effects, GroupCoordinator, Groups, Reply, ReplyToken,
};
use crate::consumer::TopicsView;
use crate::group::{Group, GroupState, Member, Parked, Protocol};
use crate::records::{GroupMetadataValue, MemberMetadataValue, OffsetsRecord};

/// JoinGroup v4+ must join twice: first to get a member id, then with it (KIP-394).
const FIRST_VERSION_REQUIRING_KNOWN_MEMBER_ID: i16 = 4;
/// JoinGroup v9+ can tell a rejoining static leader to skip the assignment.
const FIRST_VERSION_SUPPORTING_SKIP_ASSIGNMENT: i16 = 9;
/// SyncGroup v5+ must name the protocol type and name.
const FIRST_SYNC_VERSION_WITH_PROTOCOL: i16 = 5;
/// LeaveGroup v3+ carries a batch of members.
const FIRST_LEAVE_VERSION_WITH_BATCH: i16 = 3;

/// A JoinGroup request, normalized across versions.
struct Join<'a> {
    member_id: &'a str,
    group_instance_id: Option<&'a str>,
    client_id: &'a str,
    client_host: &'a str,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocol_type: &'a str,
    protocols: Vec<Protocol>,
    parked: Parked,
}

impl GroupCoordinator {
    /// Handles JoinGroup. The reply for `token` may come out of this call or of a later
    /// one (when the join phase completes).
    /// `topics` names the partitions of a classic member of a consumer group.
    #[allow(clippy::too_many_arguments)]
    pub fn join_group(
        &mut self,
        token: ReplyToken,
        version: i16,
        request: &JoinGroupRequest,
        client_id: &str,
        client_host: &str,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> Effects {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let join = Join {
            member_id: request.member_id.as_str(),
            group_instance_id: request.group_instance_id.as_deref(),
            client_id,
            client_host,
            // JoinGroup v0 has no rebalance timeout: the session timeout serves as one.
            rebalance_timeout_ms: if version == 0 {
                request.session_timeout_ms
            } else {
                request.rebalance_timeout_ms
            },
            session_timeout_ms: request.session_timeout_ms,
            protocol_type: request.protocol_type.as_str(),
            protocols: request
                .protocols
                .iter()
                .map(|p| Protocol {
                    name: p.name.to_string(),
                    metadata: p.metadata.clone(),
                })
                .collect(),
            parked: Parked { token, version },
        };
        join_group(&mut ctx, groups, request.group_id.as_str(), join, topics);
        effects
    }

    /// Handles SyncGroup. A follower's reply waits for the leader's assignment.
    pub fn sync_group(
        &mut self,
        token: ReplyToken,
        version: i16,
        request: &SyncGroupRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> Effects {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let parked = Parked { token, version };
        if let Some(group) = groups
            .get(request.group_id.as_str())
            .filter(|g| g.consumer.is_some())
        {
            if version >= FIRST_SYNC_VERSION_WITH_PROTOCOL
                && (request.protocol_type.is_none() || request.protocol_name.is_none())
            {
                ctx.reply_sync(parked, sync_error(ResponseError::InconsistentGroupProtocol));
            } else {
                migration::sync(&mut ctx, group, parked, request, topics);
            }
            return effects;
        }
        match validate_sync(groups, version, request) {
            Err(error) => ctx.reply_sync(parked, sync_error(error)),
            Ok(()) => {
                let group = groups
                    .get_mut(request.group_id.as_str())
                    .expect("validated");
                sync_group(&mut ctx, group, parked, request);
            }
        }
        effects
    }

    /// The records of a change to `group_id` could not be written, so its state is ahead
    /// of its log. As Kafka: the replies that change produced become `error` (every
    /// member of the generation learns it failed, not only the one whose request wrote),
    /// the assignment is forgotten and the group rebalances.
    pub fn write_failed(
        &mut self,
        group_id: &str,
        failed: Vec<(ReplyToken, Reply)>,
        error: ResponseError,
        now_ms: i64,
    ) -> Effects {
        let replies = failed
            .into_iter()
            .map(|(token, reply)| {
                let reply = match reply {
                    Reply::SyncGroup(_) => Reply::SyncGroup(sync_error(error)),
                    Reply::JoinGroup(mut r) => {
                        r.error_code = error.code();
                        r.members.clear();
                        Reply::JoinGroup(r)
                    }
                };
                (token, reply)
            })
            .collect();
        let mut effects = Effects {
            replies,
            records: Vec::new(),
        };
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        if let Some(group) = groups.get_mut(group_id) {
            if group.is(GroupState::Stable) || group.is(GroupState::CompletingRebalance) {
                reset_and_propagate_assignment_error(&mut ctx, group, error);
                if group.can_rebalance() {
                    prepare_rebalance(&mut ctx, group);
                }
            }
        }
        effects
    }

    /// Handles Heartbeat: resets the member's session timer and tells it whether a
    /// rebalance is under way.
    pub fn heartbeat(
        &mut self,
        _version: i16,
        request: &HeartbeatRequest,
        now_ms: i64,
    ) -> HeartbeatResponse {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let mut response = HeartbeatResponse::default();
        if let Err(error) = heartbeat(&mut ctx, groups, request) {
            response.error_code = error.code();
        }
        debug_assert!(effects.is_empty());
        response
    }

    /// Handles LeaveGroup (one member before v3, a batch from v3, members named by
    /// group.instance.id alone for administrative removal).
    pub fn leave_group(
        &mut self,
        version: i16,
        request: &LeaveGroupRequest,
        now_ms: i64,
    ) -> (LeaveGroupResponse, Effects) {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let identities = if version < FIRST_LEAVE_VERSION_WITH_BATCH {
            let mut identity = MemberIdentity::default();
            identity.member_id = request.member_id.clone();
            vec![identity]
        } else {
            request.members.clone()
        };
        let mut response = LeaveGroupResponse::default();
        match leave_group(&mut ctx, groups, request.group_id.as_str(), &identities) {
            Err(error) => response.error_code = error.code(),
            Ok(members) => {
                if version < FIRST_LEAVE_VERSION_WITH_BATCH {
                    // The single member's outcome is the top-level error.
                    response.error_code = members.first().map_or(0, |m| m.error_code);
                } else {
                    response.members = members;
                }
            }
        }
        (response, effects)
    }
}

fn join_group(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    group_id: &str,
    join: Join<'_>,
    topics: &dyn TopicsView,
) {
    let parked = join.parked;
    if group_id.is_empty() {
        let response = join_error(
            parked.version,
            join.member_id,
            ResponseError::InvalidGroupId,
        );
        return ctx.reply_join(parked, response);
    }
    if join.session_timeout_ms < ctx.config.min_session_timeout_ms
        || join.session_timeout_ms > ctx.config.max_session_timeout_ms
    {
        let response = join_error(
            parked.version,
            join.member_id,
            ResponseError::InvalidSessionTimeout,
        );
        return ctx.reply_join(parked, response);
    }
    let is_unknown_member = join.member_id.is_empty();
    let is_new_group = !groups.contains_key(group_id);
    if is_new_group {
        if !is_unknown_member {
            // A member id for a group that does not exist: the member must start over.
            let response = join_error(
                parked.version,
                join.member_id,
                ResponseError::UnknownMemberId,
            );
            return ctx.reply_join(parked, response);
        }
        groups.insert(group_id.to_owned(), Group::new(group_id, Some(ctx.now_ms)));
    }
    let group = groups.get_mut(group_id).expect("exists or just created");
    if group.share.is_some() {
        let response = join_error(
            parked.version,
            join.member_id,
            ResponseError::InconsistentGroupProtocol,
        );
        info!(
            group = group_id,
            "classic member refused: the group is a share group"
        );
        return ctx.reply_join(parked, response);
    }
    if let Some(cg) = &group.consumer {
        if !cg.members.is_empty() {
            // A classic member in a consumer group.
            let replaced =
                migration::replaced_by_classic(ctx, cg, join.group_instance_id, join.member_id);
            let classic = migration::ClassicJoin {
                member_id: join.member_id,
                group_instance_id: join.group_instance_id,
                client_id: join.client_id,
                client_host: join.client_host,
                rebalance_timeout_ms: join.rebalance_timeout_ms,
                session_timeout_ms: join.session_timeout_ms,
                protocol_type: join.protocol_type,
                protocols: &join.protocols,
                parked,
            };
            return match replaced {
                // A static classic member takes the place of the last consumer-protocol
                // one: the group becomes classic.
                Some(replaced) => migration::join_replacing(ctx, group, classic, &replaced, topics),
                None => migration::join(ctx, group, classic, topics),
            };
        }
        // An empty consumer group becomes a classic one, as in Kafka.
        let tombstones = super::consumer::group_tombstones(group_id, cg);
        ctx.effects.records.extend(tombstones);
        group.consumer = None;
        group.protocol_type = None;
        info!(
            group = group_id,
            "converted the empty consumer group to a classic group"
        );
    }
    if !accept_joining_member(ctx, group, join.member_id) {
        if group.members.contains_key(join.member_id) {
            remove_member(ctx, group, join.member_id);
            maybe_complete_join_phase(ctx, group);
        }
        let response = join_error(parked.version, "", ResponseError::GroupMaxSizeReached);
        ctx.reply_join(parked, response);
    } else if is_unknown_member {
        join_new_member(ctx, group, join);
    } else {
        join_existing_member(ctx, group, join);
    }
    let abandoned = groups.get(group_id).is_some_and(|g| {
        g.is(GroupState::Empty)
            && g.members.is_empty()
            && g.pending_members.is_empty()
            && !g.has_offsets()
    });
    if is_new_group && abandoned {
        // The join that created the group failed: keep no trace of it.
        groups.remove(group_id);
    }
}

/// group.max.size: new members are turned away once the group is full. During a
/// rebalance the count is of members that have rejoined, so a group that is over the
/// limit (after the limit was lowered) sheds the members that rejoin last.
fn accept_joining_member(ctx: &Ctx<'_>, group: &Group, member_id: &str) -> bool {
    let max_size = ctx.config.max_size;
    match group.state {
        GroupState::Empty | GroupState::Dead => true,
        GroupState::PreparingRebalance => {
            group
                .members
                .get(member_id)
                .is_some_and(|m| m.awaiting_join.is_some())
                || group.num_awaiting_join() < max_size
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            group.members.contains_key(member_id) || group.members.len() < max_size
        }
    }
}

fn join_new_member(ctx: &mut Ctx<'_>, group: &mut Group, join: Join<'_>) {
    let parked = join.parked;
    if !group.supports_protocols(join.protocol_type, &join.protocols) {
        let response = join_error(parked.version, "", ResponseError::InconsistentGroupProtocol);
        return ctx.reply_join(parked, response);
    }
    let new_member_id =
        generate_member_id(ctx, group, join.group_instance_id.unwrap_or(join.client_id));
    match join.group_instance_id {
        Some(instance_id) => match group.static_members.get(instance_id).cloned() {
            Some(old_member_id) => {
                info!(
                    group = %group.id, instance_id, old_member_id, new_member_id,
                    state = group.state.name(), "static member rejoined with a new member id"
                );
                replace_static_member_then_rebalance_or_complete_join(
                    ctx,
                    group,
                    &old_member_id,
                    &new_member_id,
                    join,
                );
            }
            None => add_member_then_rebalance_or_complete_join(ctx, group, &new_member_id, join),
        },
        None if parked.version >= FIRST_VERSION_REQUIRING_KNOWN_MEMBER_ID => {
            // KIP-394: hand out the id and wait for the member to come back with it, so a
            // client that never gets the reply leaves no member behind.
            group.pending_members.insert(new_member_id.clone());
            ctx.schedule_heartbeat(&group.id, &new_member_id, join.session_timeout_ms);
            let response = join_error(
                parked.version,
                &new_member_id,
                ResponseError::MemberIdRequired,
            );
            ctx.reply_join(parked, response);
        }
        None => add_member_then_rebalance_or_complete_join(ctx, group, &new_member_id, join),
    }
}

fn generate_member_id(ctx: &mut Ctx<'_>, group: &Group, prefix: &str) -> String {
    loop {
        let id = ctx.member_ids.generate(prefix);
        if !group.members.contains_key(&id) && !group.pending_members.contains(&id) {
            return id;
        }
    }
}

fn join_existing_member(ctx: &mut Ctx<'_>, group: &mut Group, join: Join<'_>) {
    let parked = join.parked;
    let member_id = join.member_id;
    if !group.supports_protocols(join.protocol_type, &join.protocols) {
        let response = join_error(
            parked.version,
            member_id,
            ResponseError::InconsistentGroupProtocol,
        );
        return ctx.reply_join(parked, response);
    }
    if group.pending_members.contains(member_id) && join.group_instance_id.is_none() {
        debug!(group = %group.id, member_id, "pending member rejoined with its member id");
        let member_id = member_id.to_owned();
        return add_member_then_rebalance_or_complete_join(ctx, group, &member_id, join);
    }
    if let Err(error) = validate_member(group, member_id, join.group_instance_id) {
        let response = join_error(parked.version, member_id, error);
        return ctx.reply_join(parked, response);
    }
    let member = &group.members[member_id];
    match group.state {
        GroupState::PreparingRebalance => {
            update_member_then_rebalance_or_complete_join(ctx, group, join)
        }
        GroupState::CompletingRebalance if member.matches(&join.protocols) => {
            // The member lost the JoinGroup response: send the current generation again.
            let members = if group.is_leader(member_id) {
                current_member_metadata(group)
            } else {
                Vec::new()
            };
            let response = join_success(
                parked.version,
                member_id,
                &generation(group),
                members,
                false,
            );
            ctx.reply_join(parked, response);
        }
        GroupState::Stable if !group.is_leader(member_id) && member.matches(&join.protocols) => {
            // A follower with unchanged metadata: nothing to rebalance for.
            let response = join_success(
                parked.version,
                member_id,
                &generation(group),
                Vec::new(),
                false,
            );
            ctx.reply_join(parked, response);
        }
        // The leader rejoining a Stable group asks for a rebalance (it may have seen
        // metadata change); changed protocols always do.
        GroupState::CompletingRebalance | GroupState::Stable => {
            update_member_then_rebalance_or_complete_join(ctx, group, join)
        }
        GroupState::Empty | GroupState::Dead => {
            let response = join_error(parked.version, member_id, ResponseError::UnknownMemberId);
            ctx.reply_join(parked, response);
        }
    }
}

/// A static member (group.instance.id) may name itself; otherwise the member id must be
/// known. An instance id mapped to another member id means this one was replaced.
pub(crate) fn validate_member(
    group: &Group,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if let Some(instance_id) = group_instance_id {
        match group.static_members.get(instance_id) {
            None => return Err(ResponseError::UnknownMemberId),
            Some(current) if current != member_id => {
                info!(group = %group.id, instance_id, member_id, current, "fenced static member");
                return Err(ResponseError::FencedInstanceId);
            }
            Some(_) => {}
        }
    }
    if group.members.contains_key(member_id) {
        Ok(())
    } else {
        Err(ResponseError::UnknownMemberId)
    }
}

fn generation(group: &Group) -> JoinedGeneration<'_> {
    JoinedGeneration {
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.as_deref(),
        protocol_name: group.protocol_name.as_deref(),
        leader: group.leader_id.as_deref().unwrap_or(""),
    }
}

/// Every member's metadata for the group's protocol: what the leader assigns from.
fn current_member_metadata(group: &Group) -> Vec<JoinGroupResponseMember> {
    let protocol = group
        .protocol_name
        .as_deref()
        .expect("a group with a generation has a protocol");
    group
        .members
        .values()
        .map(|m| {
            let mut entry = JoinGroupResponseMember::default();
            entry.member_id = str_bytes(&m.member_id);
            entry.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
            entry.metadata = m.metadata(protocol).cloned().unwrap_or_default();
            entry
        })
        .collect()
}

fn add_member_then_rebalance_or_complete_join(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    member_id: &str,
    join: Join<'_>,
) {
    if group.is(GroupState::PreparingRebalance) && group.previous_state == GroupState::Empty {
        group.new_member_added = true;
    }
    group.add(Member {
        member_id: member_id.to_owned(),
        group_instance_id: join.group_instance_id.map(str::to_owned),
        client_id: join.client_id.to_owned(),
        client_host: join.client_host.to_owned(),
        rebalance_timeout_ms: join.rebalance_timeout_ms,
        session_timeout_ms: join.session_timeout_ms,
        protocol_type: join.protocol_type.to_owned(),
        protocols: join.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(join.parked),
        awaiting_sync: None,
        is_new: true,
    });
    ctx.park(join.parked, &group.id);
    // A new member cannot heartbeat while its JoinGroup is parked, so its session timeout
    // does not apply; the new-member join timeout keeps defunct joins from piling up.
    let timeout_ms = ctx.config.new_member_join_timeout_ms;
    ctx.schedule_heartbeat(&group.id, member_id, timeout_ms);
    info!(group = %group.id, member_id, "member joined");
    maybe_prepare_rebalance_or_complete_join(ctx, group);
}

/// Records the member's latest protocols and timeouts and parks its JoinGroup.
fn update_member(ctx: &mut Ctx<'_>, group: &mut Group, member_id: &str, join: Join<'_>) {
    let member = group.members.get_mut(member_id).expect("validated member");
    member.protocols = join.protocols;
    member.rebalance_timeout_ms = join.rebalance_timeout_ms;
    member.session_timeout_ms = join.session_timeout_ms;
    if let Some(old) = member.awaiting_join.replace(join.parked) {
        // A second JoinGroup while the first is parked: the first was given up on by
        // the client (Kafka drops it unanswered); answer it with a retriable error so no
        // connection waits forever.
        let response = join_error(old.version, member_id, ResponseError::RebalanceInProgress);
        ctx.reply_join(old, response);
    }
    ctx.park(join.parked, &group.id);
}

fn update_member_then_rebalance_or_complete_join(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    join: Join<'_>,
) {
    let member_id = join.member_id.to_owned();
    update_member(ctx, group, &member_id, join);
    maybe_prepare_rebalance_or_complete_join(ctx, group);
}

/// KIP-345: a known group.instance.id joining with an unknown member id is the same
/// member restarted. It takes over the old member id's place; the old id is fenced.
fn replace_static_member_then_rebalance_or_complete_join(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    old_member_id: &str,
    new_member_id: &str,
    join: Join<'_>,
) {
    let instance_id = join.group_instance_id.expect("static join");
    let leader_before = group.leader_id.clone().unwrap_or_default();
    let (old_join, old_sync) =
        group.replace_static_member(instance_id, old_member_id, new_member_id);
    if let Some(old) = old_join {
        let response = join_error(old.version, old_member_id, ResponseError::FencedInstanceId);
        ctx.reply_join(old, response);
    }
    if let Some(old) = old_sync {
        ctx.reply_sync(old, sync_error(ResponseError::FencedInstanceId));
    }
    ctx.cancel_heartbeat(&group.id, old_member_id);
    let parked = join.parked;
    let member = group.members.get_mut(new_member_id).expect("just replaced");
    member.protocols = join.protocols;
    member.rebalance_timeout_ms = join.rebalance_timeout_ms;
    member.session_timeout_ms = join.session_timeout_ms;
    let session_timeout_ms = member.session_timeout_ms;
    ctx.schedule_heartbeat(&group.id, new_member_id, session_timeout_ms);

    match group.state {
        GroupState::Stable if group.select_protocol() == group.protocol_name => {
            // Same protocol choice: no rebalance. Persist the new member id and let the
            // member fetch its old assignment with SyncGroup in the current generation.
            write_group_metadata(ctx, group);
            let skip = parked.version >= FIRST_VERSION_SUPPORTING_SKIP_ASSIGNMENT;
            let response = if skip {
                // v9+: a static leader learns it leads, but must not run the assignor.
                let is_leader = group.is_leader(new_member_id);
                let members = if is_leader {
                    current_member_metadata(group)
                } else {
                    Vec::new()
                };
                join_success(
                    parked.version,
                    new_member_id,
                    &generation(group),
                    members,
                    is_leader,
                )
            } else {
                // Before v9, report the old leader id so the member, even if it leads,
                // does not think it must assign: a Stable group would ignore it.
                let mut facts = generation(group);
                facts.leader = &leader_before;
                join_success(parked.version, new_member_id, &facts, Vec::new(), false)
            };
            ctx.reply_join(parked, response);
        }
        GroupState::Stable => {
            park_join(ctx, group, new_member_id, parked);
            maybe_prepare_rebalance_or_complete_join(ctx, group);
        }
        GroupState::CompletingRebalance => {
            // The leader may already be assigning to the old member id: start over.
            park_join(ctx, group, new_member_id, parked);
            prepare_rebalance(ctx, group);
        }
        GroupState::PreparingRebalance => {
            park_join(ctx, group, new_member_id, parked);
            maybe_complete_join_phase(ctx, group);
        }
        GroupState::Empty | GroupState::Dead => {
            unreachable!("a group with a static member has members")
        }
    }
}

fn park_join(ctx: &mut Ctx<'_>, group: &mut Group, member_id: &str, parked: Parked) {
    let member = group.members.get_mut(member_id).expect("member exists");
    debug_assert!(member.awaiting_join.is_none());
    member.awaiting_join = Some(parked);
    ctx.park(parked, &group.id);
}

fn maybe_prepare_rebalance_or_complete_join(ctx: &mut Ctx<'_>, group: &mut Group) {
    if group.can_rebalance() {
        prepare_rebalance(ctx, group);
    } else {
        maybe_complete_join_phase(ctx, group);
    }
}

/// Starts a rebalance: answers parked SyncGroups with REBALANCE_IN_PROGRESS and waits for
/// members to rejoin. An Empty group's first rebalance waits group.initial.rebalance.delay
/// so that members starting together land in one generation.
pub(super) fn prepare_rebalance(ctx: &mut Ctx<'_>, group: &mut Group) {
    if group.is(GroupState::CompletingRebalance) {
        reset_and_propagate_assignment_error(ctx, group, ResponseError::RebalanceInProgress);
    }
    group.pending_sync_members.clear();
    ctx.timers.cancel(&sync_key(&group.id));

    let is_initial = group.is(GroupState::Empty);
    if is_initial {
        let delay_ms = ctx.config.initial_rebalance_delay_ms;
        let remaining_ms = (i64::from(group.rebalance_timeout_ms()) - delay_ms).max(0);
        group.initial_delay = Some((delay_ms, remaining_ms));
        ctx.schedule_group_timer(join_key(&group.id), delay_ms);
    }
    info!(
        group = %group.id, from = group.state.name(), generation = group.generation_id,
        "preparing to rebalance"
    );
    group.transition_to(GroupState::PreparingRebalance, ctx.now_ms);
    if !is_initial {
        if group.has_all_members_joined() {
            complete_join(ctx, group);
        } else {
            let timeout_ms = group.rebalance_timeout_ms();
            ctx.schedule_group_timer(join_key(&group.id), i64::from(timeout_ms));
        }
    }
}

/// Completes the join phase once everyone has rejoined, except during the initial delay,
/// which only its timer ends.
fn maybe_complete_join_phase(ctx: &mut Ctx<'_>, group: &mut Group) {
    if group.is(GroupState::PreparingRebalance)
        && group.previous_state != GroupState::Empty
        && group.has_all_members_joined()
    {
        complete_join(ctx, group);
    }
}

/// Ends the join phase: dynamic members that did not rejoin are dropped, the generation
/// advances, and every parked JoinGroup is answered (the leader with all members'
/// metadata). Static members that did not rejoin stay, and must SyncGroup in time.
fn complete_join(ctx: &mut Ctx<'_>, group: &mut Group) {
    debug_assert!(group.is(GroupState::PreparingRebalance));
    ctx.timers.cancel(&join_key(&group.id));
    group.initial_delay = None;
    group.new_member_added = false;
    let not_rejoined: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in &not_rejoined {
        info!(group = %group.id, member_id, "removing member that did not rejoin in time");
        remove_member(ctx, group, member_id);
    }
    if !group.maybe_elect_new_joined_leader() && !group.members.is_empty() {
        // Only static members that have not rejoined are left: wait for them (or for
        // their sessions to expire) another rebalance timeout.
        let timeout_ms = group.rebalance_timeout_ms();
        ctx.schedule_group_timer(join_key(&group.id), i64::from(timeout_ms));
        return;
    }
    group.init_next_generation(ctx.now_ms);
    if group.is(GroupState::Empty) {
        info!(group = %group.id, generation = group.generation_id, "group is now empty");
        write_group_metadata(ctx, group);
        return;
    }
    info!(
        group = %group.id, generation = group.generation_id, members = group.members.len(),
        protocol = group.protocol_name.as_deref().unwrap_or(""), "join phase complete"
    );
    let leader_members = current_member_metadata(group);
    let member_ids: Vec<String> = group.members.keys().cloned().collect();
    for member_id in member_ids {
        let is_leader = group.is_leader(&member_id);
        let (parked, session_timeout_ms) = {
            let member = group.members.get_mut(&member_id).expect("listed");
            member.is_new = false;
            (member.awaiting_join.take(), member.session_timeout_ms)
        };
        if let Some(parked) = parked {
            let members = if is_leader {
                leader_members.clone()
            } else {
                Vec::new()
            };
            let response = join_success(
                parked.version,
                &member_id,
                &generation(group),
                members,
                false,
            );
            ctx.reply_join(parked, response);
        }
        ctx.schedule_heartbeat(&group.id, &member_id, session_timeout_ms);
        group.pending_sync_members.insert(member_id);
    }
    let timeout_ms = group.rebalance_timeout_ms();
    ctx.schedule_group_timer(sync_key(&group.id), i64::from(timeout_ms));
}

/// Clears every assignment and answers parked SyncGroups with `error`.
fn reset_and_propagate_assignment_error(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    error: ResponseError,
) {
    let group_id = group.id.clone();
    for member in group.members.values_mut() {
        member.assignment = Bytes::new();
        if let Some(parked) = member.awaiting_sync.take() {
            ctx.reply_sync(parked, sync_error(error));
            ctx.schedule_heartbeat(&group_id, &member.member_id, member.session_timeout_ms);
        }
    }
}

/// Answers parked SyncGroups with each member's assignment.
fn propagate_assignment(ctx: &mut Ctx<'_>, group: &mut Group) {
    let group_id = group.id.clone();
    let protocol_type = group.protocol_type.clone();
    let protocol_name = group.protocol_name.clone();
    for member in group.members.values_mut() {
        if let Some(parked) = member.awaiting_sync.take() {
            let response = sync_success(
                parked.version,
                protocol_type.as_deref(),
                protocol_name.as_deref(),
                member.assignment.clone(),
            );
            ctx.reply_sync(parked, response);
            // The session restarts now: it may have lapsed while the member waited.
            ctx.schedule_heartbeat(&group_id, &member.member_id, member.session_timeout_ms);
        }
    }
}

/// Writes the group's membership to `__consumer_offsets` and remembers the record as the
/// last one written, which [`GroupCoordinator::snapshot`](super::GroupCoordinator::snapshot)
/// hands out.
pub(super) fn write_group_metadata(ctx: &mut Ctx<'_>, group: &mut Group) {
    let record = group_metadata_record(group);
    group.last_metadata_record = Some(record.clone());
    ctx.effects.records.push(record);
}

/// The group's membership as a `__consumer_offsets` record.
fn group_metadata_record(group: &Group) -> OffsetsRecord {
    let protocol = group.protocol_name.as_deref();
    let value = GroupMetadataValue {
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        generation: group.generation_id,
        protocol_name: group.protocol_name.clone(),
        leader: group.leader_id.clone(),
        state_timestamp_ms: group.state_timestamp_ms,
        members: group
            .members
            .values()
            .map(|m| MemberMetadataValue {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: protocol
                    .and_then(|p| m.metadata(p))
                    .cloned()
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect(),
    };
    OffsetsRecord::group_metadata(&group.id, &value)
}

/// Removes a member, answering whatever it has parked with UNKNOWN_MEMBER_ID.
fn remove_member(ctx: &mut Ctx<'_>, group: &mut Group, member_id: &str) -> Option<Member> {
    let member = group.remove(member_id)?;
    ctx.cancel_heartbeat(&group.id, member_id);
    if let Some(parked) = member.awaiting_join {
        let response = join_error(parked.version, "", ResponseError::UnknownMemberId);
        ctx.reply_join(parked, response);
    }
    if let Some(parked) = member.awaiting_sync {
        ctx.reply_sync(parked, sync_error(ResponseError::UnknownMemberId));
    }
    Some(member)
}

/// After a member is gone: a settled group rebalances; a rebalancing group may now have
/// everyone it waits for.
fn remove_member_and_update_group(ctx: &mut Ctx<'_>, group: &mut Group, member_id: &str) {
    remove_member(ctx, group, member_id);
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            maybe_prepare_rebalance_or_complete_join(ctx, group)
        }
        GroupState::PreparingRebalance if group.has_all_members_joined() => {
            complete_join(ctx, group)
        }
        _ => {}
    }
}

fn validate_sync(
    groups: &Groups,
    version: i16,
    request: &SyncGroupRequest,
) -> Result<(), ResponseError> {
    if request.group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    if version >= FIRST_SYNC_VERSION_WITH_PROTOCOL
        && (request.protocol_type.is_none() || request.protocol_name.is_none())
    {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    let group = groups
        .get(request.group_id.as_str())
        .filter(|g| !g.is(GroupState::Empty))
        .ok_or(ResponseError::UnknownMemberId)?;
    validate_member(
        group,
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
    )?;
    if request.generation_id != group.generation_id {
        return Err(ResponseError::IllegalGeneration);
    }
    let inconsistent = |asked: &Option<kafka_protocol::protocol::StrBytes>,
                        have: &Option<String>| {
        matches!((asked, have), (Some(a), Some(h)) if a.as_str() != h)
    };
    if inconsistent(&request.protocol_type, &group.protocol_type)
        || inconsistent(&request.protocol_name, &group.protocol_name)
    {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    Ok(())
}

fn sync_group(ctx: &mut Ctx<'_>, group: &mut Group, parked: Parked, request: &SyncGroupRequest) {
    let member_id = request.member_id.as_str();
    match group.state {
        GroupState::PreparingRebalance => {
            ctx.reply_sync(parked, sync_error(ResponseError::RebalanceInProgress));
        }
        GroupState::CompletingRebalance => {
            let member = group.members.get_mut(member_id).expect("validated");
            if let Some(old) = member.awaiting_sync.replace(parked) {
                ctx.reply_sync(old, sync_error(ResponseError::RebalanceInProgress));
            }
            ctx.park(parked, &group.id);
            remove_pending_sync_member(ctx, group, member_id);
            if group.is_leader(member_id) {
                complete_sync(ctx, group, request);
            }
        }
        GroupState::Stable => {
            remove_pending_sync_member(ctx, group, member_id);
            let member = &group.members[member_id];
            let response = sync_success(
                parked.version,
                group.protocol_type.as_deref(),
                group.protocol_name.as_deref(),
                member.assignment.clone(),
            );
            let session_timeout_ms = member.session_timeout_ms;
            ctx.reply_sync(parked, response);
            ctx.schedule_heartbeat(&group.id, member_id, session_timeout_ms);
        }
        GroupState::Empty | GroupState::Dead => unreachable!("validated: group has members"),
    }
}

/// The leader's assignment arrived: store it, hand it out, and the group is Stable.
/// Members the leader left out get an empty assignment.
fn complete_sync(ctx: &mut Ctx<'_>, group: &mut Group, request: &SyncGroupRequest) {
    let assignments: HashMap<&str, &Bytes> = request
        .assignments
        .iter()
        .map(|a| (a.member_id.as_str(), &a.assignment))
        .collect();
    for member in group.members.values_mut() {
        member.assignment = assignments
            .get(member.member_id.as_str())
            .map(|a| (*a).clone())
            .unwrap_or_default();
    }
    write_group_metadata(ctx, group);
    propagate_assignment(ctx, group);
    group.transition_to(GroupState::Stable, ctx.now_ms);
    info!(group = %group.id, generation = group.generation_id, "group is stable");
}

fn remove_pending_sync_member(ctx: &mut Ctx<'_>, group: &mut Group, member_id: &str) {
    group.pending_sync_members.remove(member_id);
    if group.pending_sync_members.is_empty() {
        ctx.timers.cancel(&sync_key(&group.id));
    }
}

fn heartbeat(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    request: &HeartbeatRequest,
) -> Result<(), ResponseError> {
    if request.group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let group = groups
        .get(request.group_id.as_str())
        .ok_or(ResponseError::UnknownMemberId)?;
    if group.consumer.is_some() {
        return migration::heartbeat(ctx, group, request);
    }
    let member_id = request.member_id.as_str();
    validate_member(group, member_id, request.group_instance_id.as_deref())?;
    if request.generation_id != group.generation_id {
        return Err(ResponseError::IllegalGeneration);
    }
    let session_timeout_ms = group.members[member_id].session_timeout_ms;
    match group.state {
        GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
        GroupState::PreparingRebalance => {
            ctx.schedule_heartbeat(&group.id, member_id, session_timeout_ms);
            Err(ResponseError::RebalanceInProgress)
        }
        // Members heartbeat between their JoinGroup and SyncGroup responses too.
        GroupState::CompletingRebalance | GroupState::Stable => {
            ctx.schedule_heartbeat(&group.id, member_id, session_timeout_ms);
            Ok(())
        }
    }
}

/// Keeps a member alive after an offset commit, as Kafka does for Stable and
/// PreparingRebalance groups.
pub(crate) fn reschedule_heartbeat(ctx: &mut Ctx<'_>, group: &Group, member_id: &str) {
    if let Some(member) = group.members.get(member_id) {
        ctx.schedule_heartbeat(&group.id, member_id, member.session_timeout_ms);
    }
}

fn leave_group(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    group_id: &str,
    identities: &[MemberIdentity],
) -> Result<Vec<MemberResponse>, ResponseError> {
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let group = groups
        .get_mut(group_id)
        .ok_or(ResponseError::UnknownMemberId)?;
    if group.consumer.is_some() {
        return Ok(migration::leave(ctx, group, identities));
    }
    let mut responses = Vec::with_capacity(identities.len());
    let mut anyone_left = false;
    for identity in identities {
        let result = leave_one(ctx, group, identity);
        anyone_left |= result.is_ok();
        let mut response = MemberResponse::default();
        response.member_id = identity.member_id.clone();
        response.group_instance_id = identity.group_instance_id.clone();
        response.error_code = result.err().map_or(0, |e| e.code());
        responses.push(response);
    }
    if anyone_left {
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                maybe_prepare_rebalance_or_complete_join(ctx, group)
            }
            GroupState::PreparingRebalance => maybe_complete_join_phase(ctx, group),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
    Ok(responses)
}

fn leave_one(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    identity: &MemberIdentity,
) -> Result<(), ResponseError> {
    let member_id = identity.member_id.as_str();
    let instance_id = identity.group_instance_id.as_deref();
    let leaving = if member_id.is_empty() {
        // Administrative removal of a static member by its group.instance.id alone.
        instance_id
            .and_then(|id| group.static_members.get(id))
            .cloned()
            .ok_or(ResponseError::UnknownMemberId)?
    } else if group.pending_members.remove(member_id) {
        ctx.cancel_heartbeat(&group.id, member_id);
        info!(group = %group.id, member_id, "pending member left");
        return Ok(());
    } else {
        validate_member(group, member_id, instance_id)?;
        member_id.to_owned()
    };
    info!(group = %group.id, member_id = %leaving, "member left");
    remove_member(ctx, group, &leaving);
    Ok(())
}

/// A session, a pending member's wait, or a new member's join timed out.
pub(crate) fn expire_heartbeat(ctx: &mut Ctx<'_>, group: &mut Group, member_id: &str) {
    if group.pending_members.remove(member_id) {
        info!(group = %group.id, member_id, "pending member expired");
        if group.is(GroupState::PreparingRebalance) && group.has_all_members_joined() {
            complete_join(ctx, group);
        }
        return;
    }
    let Some(member) = group.members.get(member_id) else {
        return;
    };
    if member.has_satisfied_heartbeat() {
        // Parked in JoinGroup or SyncGroup: alive. Its timer restarts when that request
        // is answered.
        return;
    }
    info!(group = %group.id, member_id, "session timed out");
    remove_member_and_update_group(ctx, group, member_id);
}

/// The join phase's deadline: extend the initial delay while members keep arriving,
/// otherwise complete the join with whoever has rejoined.
pub(crate) fn expire_join(ctx: &mut Ctx<'_>, group: &mut Group) {
    if !group.is(GroupState::PreparingRebalance) {
        return;
    }
    if let Some((delay_ms, remaining_ms)) = group.initial_delay {
        if group.new_member_added && remaining_ms != 0 {
            group.new_member_added = false;
            let next_delay_ms = ctx.config.initial_rebalance_delay_ms.min(remaining_ms);
            let next_remaining_ms = remaining_ms.saturating_sub(delay_ms).max(0);
            group.initial_delay = Some((next_delay_ms, next_remaining_ms));
            ctx.schedule_group_timer(join_key(&group.id), next_delay_ms);
            return;
        }
    }
    complete_join(ctx, group);
}

/// The sync phase's deadline: members that never sent SyncGroup are dropped and the
/// group rebalances without them.
pub(crate) fn expire_sync(ctx: &mut Ctx<'_>, group: &mut Group) {
    if !matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) || group.pending_sync_members.is_empty()
    {
        return;
    }
    let missing: Vec<String> = group.pending_sync_members.iter().cloned().collect();
    info!(group = %group.id, ?missing, "removing members that did not sync in time");
    for member_id in &missing {
        remove_member(ctx, group, member_id);
    }
    prepare_rebalance(ctx, group);
}

/// Start the session timers of members loaded from the log; a group over group.max.size
/// (the limit was lowered) rebalances so members can commit and shed the excess.
pub(crate) fn on_group_loaded(ctx: &mut Ctx<'_>, group: &mut Group) {
    let sessions: Vec<(String, i32)> = group
        .members
        .values()
        .map(|m| (m.member_id.clone(), m.session_timeout_ms))
        .collect();
    for (member_id, session_timeout_ms) in sessions {
        ctx.schedule_heartbeat(&group.id, &member_id, session_timeout_ms);
    }
    let max_size = ctx.config.max_size;
    if group.members.len() > max_size && group.can_rebalance() {
        prepare_rebalance(ctx, group);
    }
}

/// Withdraws a parked request (see [`GroupCoordinator::cancel`]).
pub(crate) fn cancel(ctx: &mut Ctx<'_>, group: &mut Group, token: ReplyToken) {
    let joined = group
        .members
        .values()
        .find(|m| m.awaiting_join.is_some_and(|p| p.token == token))
        .map(|m| (m.member_id.clone(), m.is_new));
    if let Some((member_id, is_new)) = joined {
        if is_new {
            // Only this request made it a member: without it there is no member.
            group
                .members
                .get_mut(&member_id)
                .expect("found")
                .awaiting_join = None;
            remove_member_and_update_group(ctx, group, &member_id);
        } else {
            let member = group.members.get_mut(&member_id).expect("found");
            member.awaiting_join = None;
            let session_timeout_ms = member.session_timeout_ms;
            ctx.schedule_heartbeat(&group.id, &member_id, session_timeout_ms);
        }
        return;
    }
    let synced = group
        .members
        .values()
        .find(|m| m.awaiting_sync.is_some_and(|p| p.token == token))
        .map(|m| m.member_id.clone());
    if let Some(member_id) = synced {
        let member = group.members.get_mut(&member_id).expect("found");
        member.awaiting_sync = None;
        let session_timeout_ms = member.session_timeout_ms;
        if group.is(GroupState::CompletingRebalance) {
            // It still owes a SyncGroup; the sync deadline is running (the leader has
            // not synced, or the group would be Stable).
            group.pending_sync_members.insert(member_id.clone());
        }
        ctx.schedule_heartbeat(&group.id, &member_id, session_timeout_ms);
    }
}
