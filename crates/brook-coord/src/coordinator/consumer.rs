//! ConsumerGroupHeartbeat (KIP-848): joining, leaving, subscriptions, the target
//! assignment and each member's reconciliation, with the records that make them durable.
//!
//! One heartbeat, as Kafka's `consumerGroupHeartbeat` runs it:
//! 1. check the request (INVALID_REQUEST, UNSUPPORTED_ASSIGNOR);
//! 2. find the member: a new one (epoch 0; GROUP_MAX_SIZE_REACHED when full), a static
//!    member taking over its instance id (UNRELEASED_INSTANCE_ID while the old one is
//!    active), or a known one whose epoch must be current (FENCED_MEMBER_EPOCH,
//!    UNKNOWN_MEMBER_ID) — the previous epoch is accepted with a subset of the
//!    assignment, for a response that was lost;
//! 3. apply what the request changes; keep the group's regular expressions resolved
//!    ([`update_regexes`]); a new subscription, a pattern that resolves to other
//!    topics, or subscribed topics that changed in the metadata, bump the group epoch;
//! 4. a group epoch ahead of the target assignment's runs the assignor;
//! 5. reconcile the member one step ([`crate::consumer::reconcile`]);
//! 6. answer with the member's epoch and, when it changed or the request was a full
//!    one, its assignment.
//!
//! Every state change is applied here and written as records (member metadata, group
//! epoch, target assignment, current assignment), which replay to the same state.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as ResponseAssignment, TopicPartitions as ResponseTopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::{Ctx, Effects, GroupCoordinator, Groups};
use crate::config::MAX_SUBSCRIBED_TOPICS;
use crate::consumer::assignor::{self, MemberSpec};
use crate::consumer::reconcile::{reconcile, Target};
use crate::consumer::records::{ConsumerKey, ConsumerValue, CurrentAssignment, MemberMetadata};
use crate::consumer::topic_regex::{self, ResolvedRegex, REGEX_REFRESH_MIN_INTERVAL_MS};
use crate::consumer::{
    metadata_hash, Assignment, ConsumerGroup, ConsumerMember, MemberState, TopicsView,
    LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use crate::group::{Group, GroupState, CONSUMER_PROTOCOL_TYPE};
use crate::records::OffsetsRecord;
use crate::timers::TimerKey;

/// ConsumerGroupHeartbeat v1+ requires the client to choose its member id (KIP-1082).
const FIRST_VERSION_WITH_CLIENT_MEMBER_ID: i16 = 1;

/// An error answer: the code and Kafka's message.
pub(crate) struct HeartbeatError(ResponseError, String);

fn err<T>(code: ResponseError, message: impl Into<String>) -> Result<T, HeartbeatError> {
    Err(HeartbeatError(code, message.into()))
}

impl GroupCoordinator {
    /// Handles ConsumerGroupHeartbeat. Returns the response and the records to append
    /// before sending it (for a heartbeat that cannot upgrade a classic group with
    /// parked requests: see [`GroupCoordinator::consumer_group_heartbeat_effects`]).
    pub fn consumer_group_heartbeat(
        &mut self,
        version: i16,
        request: &ConsumerGroupHeartbeatRequest,
        client_id: &str,
        client_host: &str,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> (ConsumerGroupHeartbeatResponse, Vec<OffsetsRecord>) {
        let (response, effects) = self.consumer_group_heartbeat_effects(
            version,
            request,
            client_id,
            client_host,
            topics,
            now_ms,
        );
        debug_assert!(effects.replies.is_empty());
        (response, effects.records)
    }

    /// Handles ConsumerGroupHeartbeat. Returns the response, and the records to append
    /// before sending it with the replies: a heartbeat that upgrades a classic group
    /// answers its parked JoinGroup and SyncGroup requests.
    pub fn consumer_group_heartbeat_effects(
        &mut self,
        version: i16,
        request: &ConsumerGroupHeartbeatRequest,
        client_id: &str,
        client_host: &str,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> (ConsumerGroupHeartbeatResponse, Effects) {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let client = Client {
            id: client_id,
            host: client_host,
        };
        let response = heartbeat(&mut ctx, groups, version, request, &client, topics)
            .unwrap_or_else(|HeartbeatError(code, message)| {
                let mut r = ConsumerGroupHeartbeatResponse::default();
                r.error_code = code.code();
                r.error_message = Some(StrBytes::from_string(message));
                r
            });
        (response, effects)
    }
}

struct Client<'a> {
    id: &'a str,
    host: &'a str,
}

fn heartbeat(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    version: i16,
    req: &ConsumerGroupHeartbeatRequest,
    client: &Client<'_>,
    topics: &dyn TopicsView,
) -> Result<ConsumerGroupHeartbeatResponse, HeartbeatError> {
    validate(ctx, version, req)?;
    let group_id = req.group_id.as_str();
    if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
        || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
    {
        return leave(ctx, groups, req, topics);
    }
    if req.member_epoch == 0 {
        if let Some(classic) = groups.get_mut(group_id) {
            if !is_empty_classic(classic) && super::migration::can_upgrade(ctx, classic) {
                super::migration::upgrade(ctx, classic, topics);
            }
        }
    }
    let mut fresh = None;
    let cg: &mut ConsumerGroup = match groups.get_mut(group_id) {
        Some(Group {
            consumer: Some(cg), ..
        }) => cg,
        Some(classic) if !is_empty_classic(classic) || req.member_epoch != 0 => {
            return err(
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            );
        }
        None if req.member_epoch != 0 => {
            return err(
                ResponseError::GroupIdNotFound,
                format!("Consumer group {group_id} not found."),
            );
        }
        _ => fresh.insert(ConsumerGroup::new(ctx.now_ms)),
    };
    let response = join_or_update(ctx, group_id, cg, version, req, client, topics)?;
    if let Some(cg) = fresh {
        // Created (or converted from an empty classic group) by this heartbeat.
        let group = groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, Some(ctx.now_ms)));
        if group.last_metadata_record.take().is_some() {
            ctx.effects
                .records
                .insert(0, OffsetsRecord::group_metadata_tombstone(group_id));
            info!(
                group = group_id,
                "converted the empty classic group to a consumer group"
            );
        }
        group.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_owned());
        group.consumer = Some(Box::new(cg));
    }
    Ok(response)
}

/// A classic group that a consumer-protocol member may take over: no members at all
/// (it may hold offsets).
fn is_empty_classic(group: &Group) -> bool {
    group.share.is_none()
        && group.is(GroupState::Empty)
        && group.members.is_empty()
        && group.pending_members.is_empty()
}

fn validate(
    ctx: &Ctx<'_>,
    version: i16,
    req: &ConsumerGroupHeartbeatRequest,
) -> Result<(), HeartbeatError> {
    let invalid = |m: &str| err(ResponseError::InvalidRequest, m);
    if req.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    let epoch = req.member_epoch;
    if req.member_id.is_empty()
        && (version >= FIRST_VERSION_WITH_CLIENT_MEMBER_ID
            || epoch > 0
            || epoch == LEAVE_GROUP_MEMBER_EPOCH)
    {
        return invalid("MemberId can't be empty.");
    }
    if epoch == 0 {
        if req.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        return invalid(&format!(
            "MemberEpoch is {epoch}, but must be greater than or equal to -2."
        ));
    }
    if req
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|n| n.len() > MAX_SUBSCRIBED_TOPICS)
    {
        return invalid(&format!(
            "SubscribedTopicNames has more than {MAX_SUBSCRIBED_TOPICS} topics."
        ));
    }
    if let Some(pattern) = req.subscribed_topic_regex.as_deref() {
        if version >= 1 && !pattern.is_empty() {
            topic_regex::compile(pattern)
                .map_err(|why| HeartbeatError(ResponseError::InvalidRegularExpression, why))?;
        }
    }
    if let Some(name) = req.server_assignor.as_deref() {
        let supported = &ctx.config.consumer_assignors;
        if !supported.iter().any(|a| a == name) {
            return err(
                ResponseError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    supported.join(", ")
                ),
            );
        }
    }
    Ok(())
}

/// Who the heartbeat is from.
enum Found {
    Existing(String),
    New,
    /// A static member rejoining under a new member id: takes over this one.
    ReplaceStatic(String),
}

fn find_member(
    ctx: &Ctx<'_>,
    group_id: &str,
    cg: &ConsumerGroup,
    member_id: &str,
    req: &ConsumerGroupHeartbeatRequest,
    owned: Option<&Assignment>,
) -> Result<Found, HeartbeatError> {
    let epoch = req.member_epoch;
    let found = match req.instance_id.as_deref() {
        Some(instance) => match cg.static_members.get(instance) {
            None if epoch == 0 => Found::New,
            None => {
                return err(
                    ResponseError::UnknownMemberId,
                    format!("Instance id {instance} is unknown."),
                )
            }
            Some(old) if old == member_id => Found::Existing(old.clone()),
            Some(old) if epoch != 0 => {
                return err(
                    ResponseError::FencedInstanceId,
                    format!("Static member {member_id} with instance id {instance} was fenced by member {old}."),
                )
            }
            Some(old) if cg.members[old].member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                return err(
                    ResponseError::UnreleasedInstanceId,
                    format!("Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {old} member."),
                )
            }
            Some(old) => Found::ReplaceStatic(old.clone()),
        },
        None => match cg.members.get(member_id) {
            Some(_) => Found::Existing(member_id.to_owned()),
            None if epoch == 0 => Found::New,
            None => {
                return err(
                    ResponseError::UnknownMemberId,
                    format!("Member {member_id} is not a member of group {group_id}."),
                )
            }
        },
    };
    match &found {
        Found::New if cg.members.len() >= ctx.config.consumer_max_size => {
            return err(
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    ctx.config.consumer_max_size
                ),
            );
        }
        Found::Existing(id) if epoch > 0 => check_epoch(&cg.members[id], epoch, owned)?,
        _ => {}
    }
    Ok(found)
}

fn check_epoch(
    member: &ConsumerMember,
    epoch: i32,
    owned: Option<&Assignment>,
) -> Result<(), HeartbeatError> {
    let known = member.member_epoch;
    if epoch > known {
        return err(
            ResponseError::FencedMemberEpoch,
            format!("The consumer group member has a greater member epoch ({epoch}) than the one known by the group coordinator ({known}). The member must abandon all its partitions and rejoin."),
        );
    }
    let lost_response = epoch == member.previous_member_epoch
        && owned.is_some_and(|o| is_subset(o, &member.assigned));
    if epoch < known && !lost_response {
        return err(
            ResponseError::FencedMemberEpoch,
            format!("The consumer group member has a smaller member epoch ({epoch}) than the one known by the group coordinator ({known}). The member must abandon all its partitions and rejoin."),
        );
    }
    Ok(())
}

fn is_subset(owned: &Assignment, of: &Assignment) -> bool {
    owned
        .iter()
        .all(|(t, ps)| of.get(t).is_some_and(|have| ps.is_subset(have)))
}

fn join_or_update(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    cg: &mut ConsumerGroup,
    version: i16,
    req: &ConsumerGroupHeartbeatRequest,
    client: &Client<'_>,
    topics: &dyn TopicsView,
) -> Result<ConsumerGroupHeartbeatResponse, HeartbeatError> {
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
        a.retain(|_, ps| !ps.is_empty());
        a
    });
    let member_id = if req.member_id.is_empty() {
        // v0 joins may leave the member id to the coordinator.
        ctx.member_ids.generate_uuid()
    } else {
        req.member_id.to_string()
    };
    let found = find_member(ctx, group_id, cg, &member_id, req, owned.as_ref())?;

    // The member as the request leaves it (assignment state untouched yet), and the
    // subscription it had (a replaced static member's, for one taking over).
    let (old, previous_subscription, mut updated) = match &found {
        Found::Existing(id) => {
            let m = cg.members[id].clone();
            (Some(m.clone()), Some(m.subscription()), m)
        }
        Found::New => (None, None, ConsumerMember::new(&member_id)),
        Found::ReplaceStatic(old_id) => {
            let (m, sub) = take_over_static_member(ctx, group_id, cg, old_id, &member_id);
            (None, Some(sub), m)
        }
    };
    apply_request(&mut updated, version, req, client);
    let assignment_changed = converge(
        ctx,
        group_id,
        cg,
        old.as_ref(),
        previous_subscription,
        updated,
        owned.as_ref(),
        topics,
    );
    let member = &cg.members[&member_id];

    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.member_id = Some(StrBytes::from_string(member_id.clone()));
    response.member_epoch = member.member_epoch;
    response.heartbeat_interval_ms = ctx.config.consumer_heartbeat_interval_ms(group_id);
    let full_request = req.rebalance_timeout_ms != -1
        && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
        && req.topic_partitions.is_some();
    if req.member_epoch == 0 || full_request || assignment_changed {
        let mut assignment = ResponseAssignment::default();
        assignment.topic_partitions = member
            .assigned
            .iter()
            .map(|(topic, ps)| {
                let mut tp = ResponseTopicPartitions::default();
                tp.topic_id = *topic;
                tp.partitions = ps.iter().copied().collect();
                tp
            })
            .collect();
        response.assignment = Some(assignment);
    }
    Ok(response)
}

/// A static member rejoining under a new member id takes over `old_id`'s place: the
/// old id is removed (its records tombstoned, its timers cancelled) and the member comes
/// back under `new_id` at epoch 0 with the partitions and target assignment it had, so
/// that its reconciliation hands them back (Kafka's static member replacement). Returns
/// the member, not yet in the group, and the subscription it had.
pub(crate) fn take_over_static_member(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    cg: &mut ConsumerGroup,
    old_id: &str,
    new_id: &str,
) -> (ConsumerMember, (Vec<String>, Option<String>)) {
    let target = cg.target.get(old_id).cloned();
    let mut m = cg.remove_member(old_id).expect("static member exists");
    ctx.effects
        .records
        .extend(member_tombstones(group_id, old_id));
    cancel_timers(ctx, group_id, old_id);
    info!(group = group_id, member = %new_id, replaced = %old_id, "static member rejoins under a new member id");
    let subscription = m.subscription();
    m.member_id = new_id.to_owned();
    m.member_epoch = 0;
    m.previous_member_epoch = 0;
    m.state = MemberState::Stable;
    m.pending_revocation = Assignment::new();
    if let Some(target) = target {
        ctx.effects
            .records
            .push(target_member_record(group_id, new_id, &target));
        cg.target.insert(new_id.to_owned(), target);
    }
    (m, subscription)
}

/// Applies a member as its request leaves it (`updated`; `old` is what it was, None
/// for a new member): writes its metadata when it changed, bumps the group epoch when
/// subscriptions or the subscribed topics changed, recomputes the target assignment
/// when the epoch is ahead of it, and reconciles the member one step with what it says
/// it owns. Returns whether the member's assigned partitions changed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn converge(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    cg: &mut ConsumerGroup,
    old: Option<&ConsumerMember>,
    previous_subscription: Option<(Vec<String>, Option<String>)>,
    updated: ConsumerMember,
    owned: Option<&Assignment>,
    topics: &dyn TopicsView,
) -> bool {
    let member_id = updated.member_id.clone();
    let subscription_changed = previous_subscription.as_ref().is_none_or(|(names, regex)| {
        *names != updated.subscribed_topic_names || *regex != updated.subscribed_topic_regex
    });
    if old.is_none_or(|o| !o.same_metadata(&updated)) {
        ctx.effects
            .records
            .push(member_metadata_record(group_id, &updated));
    }
    if old.is_none() {
        info!(group = group_id, member = %member_id, "member joins the consumer group");
    }
    cg.upsert_member(updated);
    let regexes_changed = update_regexes(ctx, group_id, cg, topics);

    // The group epoch moves with subscriptions, with what their regular expressions
    // resolve to and with the subscribed topics' metadata.
    let hash = metadata_hash(topics, cg.subscribed_topics().into_iter(), ctx.rack_digests);
    let bump = subscription_changed || regexes_changed || hash != cg.metadata_hash;
    if bump {
        cg.group_epoch = cg.group_epoch.saturating_add(1);
        cg.metadata_hash = hash;
        ctx.effects.records.push(group_epoch_record(group_id, cg));
    }
    if cg.group_epoch > cg.assignment_epoch || cg.assignment_epoch == 0 {
        compute_target(ctx, group_id, cg, topics);
    }

    // One reconciliation step.
    let before = cg.members[&member_id].clone();
    let next = {
        let empty = Assignment::new();
        let target = Target {
            epoch: cg.assignment_epoch,
            partitions: cg.target.get(&member_id).unwrap_or(&empty),
        };
        let held_by_other = |t, p| {
            cg.partition_owner(t, p)
                .is_some_and(|owner| owner != member_id)
        };
        reconcile(&before, &target, &held_by_other, owned)
    };
    if !next.same_assignment(&before) || old.is_none() {
        ctx.effects
            .records
            .push(current_assignment_record(group_id, &next));
    }
    schedule_timers(ctx, group_id, &before, &next, old.is_none());
    let assignment_changed = old.is_none_or(|o| o.assigned != next.assigned);
    cg.upsert_member(next);
    assignment_changed
}

fn apply_request(
    member: &mut ConsumerMember,
    version: i16,
    req: &ConsumerGroupHeartbeatRequest,
    client: &Client<'_>,
) {
    member.client_id = client.id.to_owned();
    member.client_host = client.host.to_owned();
    if let Some(instance) = &req.instance_id {
        member.instance_id = Some(instance.to_string());
    }
    if let Some(rack) = &req.rack_id {
        member.rack_id = Some(rack.to_string());
    }
    if req.rebalance_timeout_ms != -1 {
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    if let Some(names) = &req.subscribed_topic_names {
        let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names.dedup();
        member.subscribed_topic_names = names;
    }
    if version >= 1 {
        if let Some(regex) = &req.subscribed_topic_regex {
            member.subscribed_topic_regex = (!regex.is_empty()).then(|| regex.to_string());
        }
    }
    if let Some(assignor) = &req.server_assignor {
        member.server_assignor = Some(assignor.to_string());
    }
}

/// Runs the group's assignor for the group epoch and records what changed.
fn compute_target(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    cg: &mut ConsumerGroup,
    topics: &dyn TopicsView,
) {
    let name = cg.preferred_assignor(&ctx.config.consumer_assignors);
    let mut partitions = BTreeMap::new();
    for topic in cg.subscribed_topics() {
        if let Some((id, count)) = topics.topic(topic) {
            partitions.insert(id, count);
        }
    }
    let target = {
        let specs: Vec<MemberSpec<'_>> = cg
            .members
            .values()
            .map(|m| MemberSpec {
                member_id: &m.member_id,
                topics: cg
                    .member_topics(m)
                    .into_iter()
                    .filter_map(|t| topics.topic(t).map(|(id, _)| id))
                    .collect(),
                previous: cg.target.get(&m.member_id),
            })
            .collect();
        assignor::assign(name, &specs, &partitions)
    };
    for (member, assignment) in &target {
        if cg.target.get(member) != Some(assignment) {
            ctx.effects
                .records
                .push(target_member_record(group_id, member, assignment));
        }
    }
    cg.target = target;
    cg.assignment_epoch = cg.group_epoch;
    ctx.effects.records.push(OffsetsRecord::consumer(
        &ConsumerKey::TargetMetadata {
            group: group_id.to_owned(),
        },
        Some(&ConsumerValue::TargetMetadata {
            assignment_epoch: cg.assignment_epoch,
        }),
    ));
    info!(
        group = group_id,
        epoch = cg.assignment_epoch,
        assignor = name,
        "computed a new target assignment"
    );
}

/// Keeps the group's resolved regular expressions in step with its members' patterns
/// and with the topics, as Kafka's `maybeUpdateRegularExpressions` does (there on a
/// background thread, here inline: a resolution is one pass over the topic names):
/// drops the patterns no member uses any more, resolves a pattern new to the group at
/// once, and resolves them all again when topics were created or deleted (at most
/// every [`REGEX_REFRESH_MIN_INTERVAL_MS`]) or `group.consumer.regex.refresh.interval.ms`
/// passed. Each resolution is written as a ConsumerGroupRegularExpression record.
/// Returns whether some pattern now resolves to other topics.
fn update_regexes(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    cg: &mut ConsumerGroup,
    topics: &dyn TopicsView,
) -> bool {
    drop_unused_regexes(ctx, group_id, cg);
    let version = topics.topics_version();
    let due = cg.regexes.values().any(|r| {
        let age_ms = ctx.now_ms.saturating_sub(r.resolved_at_ms);
        (r.version != version && age_ms >= REGEX_REFRESH_MIN_INTERVAL_MS)
            || age_ms >= ctx.config.consumer_regex_refresh_interval_ms
    });
    let patterns: Vec<&str> = cg
        .subscribed_regexes()
        .filter(|p| due || !cg.regexes.contains_key(*p))
        .collect();
    if patterns.is_empty() {
        return false;
    }
    let resolved = topic_regex::resolve(patterns.into_iter(), topics);
    let mut changed = false;
    for (pattern, matched) in resolved {
        let new = ResolvedRegex {
            topics: matched,
            version,
            resolved_at_ms: ctx.now_ms,
        };
        if cg
            .regexes
            .get(&pattern)
            .is_none_or(|old| old.topics != new.topics)
        {
            info!(group = group_id, pattern = %pattern, topics = new.topics.len(), "regular expression resolved to other topics");
            changed = true;
        }
        if let Some(record) = regex_record(group_id, &pattern, Some(&new)) {
            ctx.effects.records.push(record);
        }
        cg.regexes.insert(pattern, new);
    }
    changed
}

/// Forgets (and tombstones) the resolutions of patterns no member subscribes with.
fn drop_unused_regexes(ctx: &mut Ctx<'_>, group_id: &str, cg: &mut ConsumerGroup) {
    let unused: Vec<String> = cg
        .regexes
        .keys()
        .filter(|p| !cg.has_regex_subscriber(p))
        .cloned()
        .collect();
    for pattern in unused {
        cg.regexes.remove(&pattern);
        if let Some(record) = regex_record(group_id, &pattern, None) {
            ctx.effects.records.push(record);
        }
    }
}

/// Session timer on every heartbeat; the revocation timer while the member owes a
/// revocation (set when it starts owing one, kept while it does).
fn schedule_timers(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    before: &ConsumerMember,
    next: &ConsumerMember,
    is_new: bool,
) {
    let member_id = &next.member_id;
    ctx.schedule_group_timer(
        session_key(group_id, member_id),
        i64::from(session_timeout_ms(ctx, group_id, next)),
    );
    let revoking = next.state == MemberState::UnrevokedPartitions;
    let started = is_new
        || before.state != MemberState::UnrevokedPartitions
        || before.member_epoch != next.member_epoch;
    if revoking && started {
        ctx.schedule_group_timer(
            revocation_key(group_id, member_id),
            i64::from(next.rebalance_timeout_ms.max(0)),
        );
    } else if !revoking {
        ctx.timers.cancel(&revocation_key(group_id, member_id));
    }
}

/// Epoch -1 (leave) or -2 (a static member leaving for a while).
fn leave(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    req: &ConsumerGroupHeartbeatRequest,
    topics: &dyn TopicsView,
) -> Result<ConsumerGroupHeartbeatResponse, HeartbeatError> {
    let group_id = req.group_id.as_str();
    let Some(group) = groups.get_mut(group_id) else {
        return err(
            ResponseError::GroupIdNotFound,
            format!("Consumer group {group_id} not found."),
        );
    };
    let cg = match &mut group.consumer {
        Some(cg) => cg,
        None => {
            return err(
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            )
        }
    };
    let member_id = req.member_id.as_str();
    let leaving = match req.instance_id.as_deref() {
        Some(instance) => match cg.static_members.get(instance) {
            None => {
                return err(
                    ResponseError::UnknownMemberId,
                    format!("Instance id {instance} is unknown."),
                )
            }
            Some(owner) if owner != member_id => {
                return err(
                    ResponseError::FencedInstanceId,
                    format!("Static member {member_id} with instance id {instance} was fenced by member {owner}."),
                )
            }
            Some(owner) => owner.clone(),
        },
        None if cg.members.contains_key(member_id) => member_id.to_owned(),
        None => {
            return err(
                ResponseError::UnknownMemberId,
                format!("Member {member_id} is not a member of group {group_id}."),
            )
        }
    };
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.member_id = Some(StrBytes::from_string(leaving.clone()));
    response.member_epoch = req.member_epoch;
    if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        // Keeps its partitions until it rejoins or its session expires.
        let mut member = cg.members[&leaving].clone();
        member.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
        member.pending_revocation = Assignment::new();
        ctx.effects
            .records
            .push(current_assignment_record(group_id, &member));
        ctx.timers.cancel(&revocation_key(group_id, &leaving));
        cg.upsert_member(member);
        info!(group = group_id, member = %leaving, "static member left temporarily");
    } else {
        fence(ctx, group, &leaving, "the member left the group", topics);
    }
    Ok(response)
}

/// Removes a member for good (left, or fenced: session or revocation timeout) and bumps
/// the group epoch so the others get its partitions.
pub(crate) fn remove_member(
    ctx: &mut Ctx<'_>,
    group_id: &str,
    cg: &mut ConsumerGroup,
    member_id: &str,
    why: &str,
) {
    if cg.remove_member(member_id).is_none() {
        return;
    }
    info!(
        group = group_id,
        member = member_id,
        "member removed: {why}"
    );
    ctx.effects
        .records
        .extend(member_tombstones(group_id, member_id));
    drop_unused_regexes(ctx, group_id, cg);
    cancel_timers(ctx, group_id, member_id);
    cg.group_epoch = cg.group_epoch.saturating_add(1);
    ctx.effects.records.push(group_epoch_record(group_id, cg));
    if cg.members.is_empty() {
        cg.empty_since_ms = ctx.now_ms;
    }
}

/// A member's session ran out.
pub(crate) fn expire_session(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    member_id: &str,
    topics: &dyn TopicsView,
) {
    fence(ctx, group, member_id, "its session expired", topics);
}

/// Removes a member for `reason` (it left, or Kafka's fencing), or turns the group into
/// a classic group of the others when it was the last consumer-protocol member and the
/// policy allows it.
pub(crate) fn fence(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    member_id: &str,
    reason: &str,
    topics: &dyn TopicsView,
) {
    if let Some(cg) = group.consumer.as_mut() {
        if !cg.members.contains_key(member_id) {
            return;
        }
        if super::migration::should_downgrade(ctx, cg, member_id) {
            info!(group = %group.id, member = member_id, reason, "the last consumer-protocol member goes");
            super::migration::downgrade(ctx, group, Some(member_id), topics);
        } else {
            remove_member(ctx, &group.id, cg, member_id, reason);
        }
    }
}

/// A member did not revoke its partitions within its rebalance timeout.
pub(crate) fn expire_revocation(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    member_id: &str,
    topics: &dyn TopicsView,
) {
    let late = group.consumer.as_ref().is_some_and(|cg| {
        cg.members
            .get(member_id)
            .is_some_and(|m| m.state == MemberState::UnrevokedPartitions)
    });
    if late {
        let why = "it did not revoke its partitions in time";
        fence(ctx, group, member_id, why, topics);
    }
}

/// Members replayed from the log start their session (and revocation) timers now.
pub(crate) fn on_loaded(ctx: &mut Ctx<'_>, group: &mut Group) {
    let Some(cg) = group.consumer.as_mut() else {
        return;
    };
    if cg.members.is_empty() {
        cg.empty_since_ms = ctx.now_ms;
    }
    for m in cg.members.values() {
        ctx.schedule_group_timer(
            session_key(&group.id, &m.member_id),
            i64::from(session_timeout_ms(ctx, &group.id, m)),
        );
        if m.state == MemberState::UnrevokedPartitions {
            ctx.schedule_group_timer(
                revocation_key(&group.id, &m.member_id),
                i64::from(m.rebalance_timeout_ms.max(0)),
            );
        }
    }
}

/// A member's session timeout: the group's, or for a classic-protocol member the one it
/// joined with.
pub(crate) fn session_timeout_ms(ctx: &Ctx<'_>, group_id: &str, m: &ConsumerMember) -> i32 {
    m.classic
        .as_ref()
        .map_or(ctx.config.consumer_session_timeout_ms(group_id), |c| {
            c.session_timeout_ms
        })
}

pub(crate) fn session_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ConsumerSession {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
    }
}

pub(crate) fn revocation_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ConsumerRevocation {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
    }
}

pub(crate) fn classic_join_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ClassicJoin {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
    }
}

pub(crate) fn classic_sync_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ClassicSync {
        group: group_id.to_owned(),
        member: member_id.to_owned(),
    }
}

/// Every timer of a consumer group's member.
pub(crate) fn cancel_timers(ctx: &mut Ctx<'_>, group_id: &str, member_id: &str) {
    ctx.timers.cancel(&session_key(group_id, member_id));
    ctx.timers.cancel(&revocation_key(group_id, member_id));
    ctx.timers.cancel(&classic_join_key(group_id, member_id));
    ctx.timers.cancel(&classic_sync_key(group_id, member_id));
}

fn member_key(group_id: &str, member_id: &str) -> (String, String) {
    (group_id.to_owned(), member_id.to_owned())
}

pub(crate) fn member_metadata_record(group_id: &str, m: &ConsumerMember) -> OffsetsRecord {
    let (group, member) = member_key(group_id, &m.member_id);
    OffsetsRecord::consumer(
        &ConsumerKey::MemberMetadata { group, member },
        Some(&ConsumerValue::MemberMetadata(MemberMetadata {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            subscribed_topic_names: m.subscribed_topic_names.clone(),
            subscribed_topic_regex: m.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            server_assignor: m.server_assignor.clone(),
            classic: m.classic.clone(),
        })),
    )
}

pub(crate) fn current_assignment_record(group_id: &str, m: &ConsumerMember) -> OffsetsRecord {
    let (group, member) = member_key(group_id, &m.member_id);
    OffsetsRecord::consumer(
        &ConsumerKey::CurrentAssignment { group, member },
        Some(&ConsumerValue::CurrentAssignment(CurrentAssignment {
            member_epoch: m.member_epoch,
            previous_member_epoch: m.previous_member_epoch,
            state: m.state,
            assigned: m.assigned.clone(),
            pending_revocation: m.pending_revocation.clone(),
        })),
    )
}

pub(crate) fn target_member_record(
    group_id: &str,
    member_id: &str,
    a: &Assignment,
) -> OffsetsRecord {
    let (group, member) = member_key(group_id, member_id);
    OffsetsRecord::consumer(
        &ConsumerKey::TargetMember { group, member },
        Some(&ConsumerValue::TargetMember(a.clone())),
    )
}

/// A pattern's ConsumerGroupRegularExpression record (a tombstone without `resolved`).
/// None for a pattern too long to be a key, which the heartbeat refuses (only a log
/// written by another implementation can bring one): it is resolved but not written.
pub(crate) fn regex_record(
    group_id: &str,
    pattern: &str,
    resolved: Option<&ResolvedRegex>,
) -> Option<OffsetsRecord> {
    if pattern.len() > topic_regex::MAX_REGEX_LENGTH_BYTES {
        return None;
    }
    let value = resolved.map(|r| ConsumerValue::RegularExpression {
        topics: r.topics.iter().cloned().collect(),
        version: r.version,
        timestamp_ms: r.resolved_at_ms,
    });
    Some(OffsetsRecord::consumer(
        &ConsumerKey::RegularExpression {
            group: group_id.to_owned(),
            regex: pattern.to_owned(),
        },
        value.as_ref(),
    ))
}

pub(crate) fn group_epoch_record(group_id: &str, cg: &ConsumerGroup) -> OffsetsRecord {
    OffsetsRecord::consumer(
        &ConsumerKey::Metadata {
            group: group_id.to_owned(),
        },
        Some(&ConsumerValue::Metadata {
            epoch: cg.group_epoch,
            metadata_hash: cg.metadata_hash,
            creation_time_ms: cg.creation_time_ms,
        }),
    )
}

/// Kafka's order: current assignment, target assignment, then the member itself.
fn member_tombstones(group_id: &str, member_id: &str) -> [OffsetsRecord; 3] {
    let k = || member_key(group_id, member_id);
    [
        {
            let (group, member) = k();
            OffsetsRecord::consumer(&ConsumerKey::CurrentAssignment { group, member }, None)
        },
        {
            let (group, member) = k();
            OffsetsRecord::consumer(&ConsumerKey::TargetMember { group, member }, None)
        },
        {
            let (group, member) = k();
            OffsetsRecord::consumer(&ConsumerKey::MemberMetadata { group, member }, None)
        },
    ]
}

/// The tombstones that delete a consumer group with its members (its offsets aside),
/// in Kafka's order: current assignments, target assignments, members, the group.
pub(crate) fn all_tombstones(group_id: &str, cg: &ConsumerGroup) -> Vec<OffsetsRecord> {
    let mut records = Vec::new();
    for member in cg.members.keys() {
        let (group, member) = member_key(group_id, member);
        records.push(OffsetsRecord::consumer(
            &ConsumerKey::CurrentAssignment { group, member },
            None,
        ));
    }
    let mut rest = group_tombstones(group_id, cg);
    let group_tail = rest.split_off(rest.len() - 1);
    records.extend(rest);
    for member in cg.members.keys() {
        let (group, member) = member_key(group_id, member);
        records.push(OffsetsRecord::consumer(
            &ConsumerKey::MemberMetadata { group, member },
            None,
        ));
    }
    records.extend(group_tail);
    records
}

/// The tombstones that delete an empty consumer group's records (its offsets aside).
pub(crate) fn group_tombstones(group_id: &str, cg: &ConsumerGroup) -> Vec<OffsetsRecord> {
    let mut records = Vec::new();
    for member in cg.target.keys() {
        let (group, member) = member_key(group_id, member);
        records.push(OffsetsRecord::consumer(
            &ConsumerKey::TargetMember { group, member },
            None,
        ));
    }
    for pattern in cg.regexes.keys() {
        records.extend(regex_record(group_id, pattern, None));
    }
    let group = || group_id.to_owned();
    records.push(OffsetsRecord::consumer(
        &ConsumerKey::TargetMetadata { group: group() },
        None,
    ));
    records.push(OffsetsRecord::consumer(
        &ConsumerKey::Metadata { group: group() },
        None,
    ));
    records
}

/// Every record that rebuilds the group as it is now (for `snapshot`).
pub(crate) fn group_records(group_id: &str, cg: &ConsumerGroup) -> Vec<OffsetsRecord> {
    let mut records = vec![group_epoch_record(group_id, cg)];
    for m in cg.members.values() {
        records.push(member_metadata_record(group_id, m));
    }
    for (pattern, resolved) in &cg.regexes {
        records.extend(regex_record(group_id, pattern, Some(resolved)));
    }
    for (member, a) in &cg.target {
        records.push(target_member_record(group_id, member, a));
    }
    records.push(OffsetsRecord::consumer(
        &ConsumerKey::TargetMetadata {
            group: group_id.to_owned(),
        },
        Some(&ConsumerValue::TargetMetadata {
            assignment_epoch: cg.assignment_epoch,
        }),
    ));
    for m in cg.members.values() {
        records.push(current_assignment_record(group_id, m));
    }
    records
}
