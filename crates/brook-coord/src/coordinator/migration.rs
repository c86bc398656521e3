//! Groups that move between the classic and the consumer protocol, and classic members
//! inside a consumer group (KIP-848 "online migration"), as Kafka's
//! `GroupMetadataManager` does:
//! - upgrade: a consumer-protocol member's first heartbeat to a non-empty classic group
//!   of protocol type `consumer` turns it into a consumer group when
//!   `group.consumer.migration.policy` allows; its members stay, at the classic
//!   generation as their member epoch, holding the partitions of their last assignment;
//! - classic members of a consumer group go on with JoinGroup (answered at once: the
//!   member is reconciled one step towards its target assignment, and the generation is
//!   its member epoch), SyncGroup (their assigned partitions, in the consumer protocol's
//!   assignment format), Heartbeat (REBALANCE_IN_PROGRESS when the group epoch moved
//!   past theirs, they owe a revocation, or a partition they wait for became free) and
//!   LeaveGroup; told to rejoin, a classic member has its rebalance timeout to send
//!   JoinGroup, and after JoinGroup the same to send SyncGroup, or it is removed
//!   (Kafka's join and sync timeouts);
//! - downgrade: when the last consumer-protocol member leaves (or is fenced) and classic
//!   members remain, the group becomes a classic group of those members, each keeping
//!   the partitions it holds, and rebalances; when a static classic member replaces the
//!   last consumer-protocol member, it takes over that one's partitions and the group
//!   becomes classic without a rebalance (unless the subscription changed).
//!
//! Empty groups convert both ways whatever the policy (see `consumer::heartbeat` and
//! `membership::join_group`).

use brook_protocol::consumer_protocol::{self, decode_assignment, decode_subscription};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{HeartbeatRequest, SyncGroupRequest};
use tracing::info;

use super::consumer::{self as cons, converge, group_records, session_key};
use super::responses::{join_error, join_success, sync_error, sync_success, JoinedGeneration};
use super::{heartbeat_key, join_key, sync_key, Ctx};
use crate::consumer::{
    metadata_hash, Assignment, ClassicMeta, ConsumerGroup, ConsumerMember, MemberState, TopicsView,
};
use crate::group::{Group, GroupState, Member, Parked, Protocol, CONSUMER_PROTOCOL_TYPE};
use crate::records::OffsetsRecord;

/// JoinGroup v4+ must join twice: first to get a member id, then with it (KIP-394).
const FIRST_VERSION_REQUIRING_KNOWN_MEMBER_ID: i16 = 4;
/// Partitions by topic name to partitions by topic id (topics that no longer exist, and
/// partitions past a topic's count, left out).
fn to_ids(named: &[(String, Vec<i32>)], topics: &dyn TopicsView) -> Assignment {
    let mut a = Assignment::new();
    for (name, partitions) in named {
        if let Some((id, count)) = topics.topic(name) {
            let ps = partitions
                .iter()
                .copied()
                .filter(|p| (0..count).contains(p));
            a.entry(id).or_default().extend(ps);
        }
    }
    a.retain(|_, ps| !ps.is_empty());
    a
}

/// A member's assigned partitions as the consumer protocol's assignment, in the version
/// of its subscription (as Kafka answers a classic member's SyncGroup).
fn encode_assignment(member: &ConsumerMember, topics: &dyn TopicsView) -> Bytes {
    let version = member
        .classic
        .as_ref()
        .and_then(|c| c.protocols.first())
        .and_then(|(_, m)| consumer_protocol::split_version(m))
        .map_or(0, |(version, _)| version);
    consumer_protocol::encode_assignment(
        version,
        member.assigned.iter().filter_map(|(id, partitions)| {
            let name = topics.topic_name(id)?;
            Some((name, partitions.iter().copied().collect()))
        }),
    )
}

/// Whether a consumer-protocol member's first heartbeat may turn this non-empty classic
/// group into a consumer group (Kafka's `validateOnlineUpgrade`).
pub(crate) fn can_upgrade(ctx: &Ctx<'_>, group: &Group) -> bool {
    if group.share.is_some() || group.consumer.is_some() || group.members.is_empty() {
        return false;
    }
    if !ctx.config.consumer_migration_policy.upgrades() {
        info!(group = %group.id, "cannot upgrade the classic group: group.consumer.migration.policy does not allow it");
        return false;
    }
    let protocol = group.protocol_name.as_deref();
    let readable = group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
        && protocol.is_some_and(|p| {
            group.members.values().all(|m| {
                m.metadata(p).and_then(|m| decode_subscription(m)).is_some()
                    && decode_assignment(&m.assignment).is_some()
            })
        });
    if !readable {
        info!(group = %group.id, "cannot upgrade the classic group: it does not use the consumer embedded protocol");
        return false;
    }
    if group.members.len() > ctx.config.consumer_max_size {
        info!(group = %group.id, "cannot upgrade the classic group: it has more members than group.consumer.max.size");
        return false;
    }
    true
}

/// Turns a classic group (checked by [`can_upgrade`]) into a consumer group at its
/// generation: parked JoinGroup and SyncGroup requests get REBALANCE_IN_PROGRESS, the
/// classic records are deleted and the consumer group's written.
pub(crate) fn upgrade(ctx: &mut Ctx<'_>, group: &mut Group, topics: &dyn TopicsView) {
    let group_id = group.id.clone();
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let generation = group.generation_id;
    let mut cg = ConsumerGroup::new(ctx.now_ms);
    cg.group_epoch = generation;
    cg.assignment_epoch = generation;
    let members = std::mem::take(&mut group.members);
    for (member_id, mut m) in members {
        if let Some(parked) = m.awaiting_join.take() {
            ctx.reply_join(
                parked,
                join_error(
                    parked.version,
                    &member_id,
                    ResponseError::RebalanceInProgress,
                ),
            );
        }
        if let Some(parked) = m.awaiting_sync.take() {
            ctx.reply_sync(parked, sync_error(ResponseError::RebalanceInProgress));
        }
        ctx.cancel_heartbeat(&group_id, &member_id);
        let subscription = m
            .metadata(&protocol)
            .and_then(|m| decode_subscription(m))
            .expect("checked by can_upgrade");
        let mut assigned = to_ids(
            &decode_assignment(&m.assignment).unwrap_or_default(),
            topics,
        );
        // A partition two members name (an assignment from an older generation) stays
        // with the first.
        for ps in assigned.iter_mut() {
            ps.1.retain(|p| cg.partition_owner(*ps.0, *p).is_none());
        }
        assigned.retain(|_, ps| !ps.is_empty());
        let mut topics_sorted = subscription.topics;
        topics_sorted.sort_unstable();
        topics_sorted.dedup();
        let member = ConsumerMember {
            instance_id: m.group_instance_id.clone(),
            rack_id: subscription.rack_id,
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            subscribed_topic_names: topics_sorted,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            state: MemberState::Stable,
            member_epoch: generation,
            previous_member_epoch: generation,
            assigned: assigned.clone(),
            classic: Some(ClassicMeta {
                session_timeout_ms: m.session_timeout_ms,
                protocols: m
                    .protocols
                    .iter()
                    .map(|p| (p.name.clone(), p.metadata.clone()))
                    .collect(),
            }),
            ..ConsumerMember::new(&member_id)
        };
        cg.target.insert(member_id.clone(), assigned);
        cg.upsert_member(member);
        ctx.schedule_group_timer(
            session_key(&group_id, &member_id),
            i64::from(m.session_timeout_ms),
        );
    }
    cg.metadata_hash = metadata_hash(topics, cg.subscribed_topics().into_iter(), ctx.rack_digests);
    ctx.timers.cancel(&join_key(&group_id));
    ctx.timers.cancel(&sync_key(&group_id));
    ctx.effects
        .records
        .push(OffsetsRecord::group_metadata_tombstone(&group_id));
    ctx.effects.records.extend(group_records(&group_id, &cg));
    info!(
        group = %group_id,
        generation,
        members = cg.members.len(),
        "upgraded the classic group to a consumer group"
    );
    // The classic fields go back to an Empty group's; offsets stay.
    let offsets = std::mem::take(&mut group.offsets);
    *group = Group::new(&group_id, Some(ctx.now_ms));
    group.offsets = offsets;
    group.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_owned());
    group.consumer = Some(Box::new(cg));
}

/// What `membership` hands over of a JoinGroup to a consumer group.
pub(crate) struct ClassicJoin<'a> {
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    pub client_id: &'a str,
    pub client_host: &'a str,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: &'a str,
    pub protocols: &'a [Protocol],
    pub parked: Parked,
}

/// JoinGroup from a classic member to a consumer group: answered at once.
pub(crate) fn join(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    join: ClassicJoin<'_>,
    topics: &dyn TopicsView,
) {
    let parked = join.parked;
    let result = try_join(ctx, group, &join, topics);
    if let Ok((member_id, _, _)) = &result {
        // It rejoined; now it has its rebalance timeout to sync (Kafka's sync timeout).
        ctx.timers
            .cancel(&cons::classic_join_key(&group.id, member_id));
        ctx.schedule_group_timer(
            cons::classic_sync_key(&group.id, member_id),
            i64::from(join.rebalance_timeout_ms.max(0)),
        );
    }
    let response = match result {
        Ok((member_id, epoch, protocol)) => join_success(
            parked.version,
            &member_id,
            &JoinedGeneration {
                generation_id: epoch,
                protocol_type: Some(CONSUMER_PROTOCOL_TYPE),
                protocol_name: Some(&protocol),
                leader: "",
            },
            Vec::new(),
            false,
        ),
        Err((member_id, error)) => join_error(parked.version, &member_id, error),
    };
    ctx.reply_join(parked, response);
}

/// JoinGroup from a static classic member that replaces the group's last
/// consumer-protocol member (`replaced`, found by [`replaced_by_classic`]): the member
/// takes over the replaced one's partitions, then the group becomes a classic group in
/// which every member keeps what it holds, and the JoinGroup is answered at once in its
/// generation. Only when the new member subscribes to other topics than the one it
/// replaced does a rebalance follow (Kafka's downgrade by static member replacement).
pub(crate) fn join_replacing(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    join: ClassicJoin<'_>,
    replaced: &str,
    topics: &dyn TopicsView,
) {
    let parked = join.parked;
    let cg = group.consumer.as_ref().expect("a consumer group");
    let before = cg.members.get(replaced).map(ConsumerMember::subscription);
    let (member_id, protocol) = match try_join(ctx, group, &join, topics) {
        Ok((member_id, _, protocol)) => (member_id, protocol),
        Err((member_id, error)) => {
            return ctx.reply_join(parked, join_error(parked.version, &member_id, error));
        }
    };
    let cg = group.consumer.as_ref().expect("still a consumer group");
    let changed = cg.members.get(&member_id).map(ConsumerMember::subscription) != before;
    info!(
        group = %group.id,
        replaced,
        member = %member_id,
        "a static classic member replaced the last consumer-protocol member"
    );
    downgrade(ctx, group, None, topics);
    let response = join_success(
        parked.version,
        &member_id,
        &JoinedGeneration {
            generation_id: group.generation_id,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE),
            protocol_name: Some(&protocol),
            leader: "",
        },
        Vec::new(),
        false,
    );
    ctx.reply_join(parked, response);
    if changed {
        super::membership::prepare_rebalance(ctx, group);
    }
}

type JoinResult = Result<(String, i32, String), (String, ResponseError)>;

fn try_join(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    join: &ClassicJoin<'_>,
    topics: &dyn TopicsView,
) -> JoinResult {
    let group_id = group.id.clone();
    let cg = group.consumer.as_mut().expect("a consumer group");
    let fail = |id: &str, e| Err((id.to_owned(), e));
    let subscription = match join.protocols.first() {
        Some(p) if join.protocol_type == CONSUMER_PROTOCOL_TYPE => decode_subscription(&p.metadata),
        _ => None,
    };
    let Some(subscription) = subscription else {
        info!(group = %group_id, "classic member refused: not the consumer embedded protocol");
        return fail(join.member_id, ResponseError::InconsistentGroupProtocol);
    };
    let mut member_id = join.member_id.to_owned();
    if member_id.is_empty() {
        member_id = ctx.member_ids.generate_uuid();
        if join.group_instance_id.is_none()
            && join.parked.version >= FIRST_VERSION_REQUIRING_KNOWN_MEMBER_ID
        {
            return fail(&member_id, ResponseError::MemberIdRequired);
        }
    }
    // A static member: its instance id names the member it is, or the one it takes over
    // (keeping that one's partitions, as Kafka replaces a static member).
    let mut replaced = None;
    if let Some(instance) = join.group_instance_id {
        if let Some(current) = cg.static_members.get(instance).cloned() {
            if current != member_id {
                if !join.member_id.is_empty() {
                    return fail(&member_id, ResponseError::FencedInstanceId);
                }
                replaced = Some(cons::take_over_static_member(
                    ctx, &group_id, cg, &current, &member_id,
                ));
            }
        }
    }
    let old = cg.members.get(&member_id).cloned();
    if old.as_ref().is_some_and(|m| m.classic.is_none()) {
        return fail(&member_id, ResponseError::UnknownMemberId);
    }
    if old.is_none() && replaced.is_none() && cg.members.len() >= ctx.config.consumer_max_size {
        return fail(&member_id, ResponseError::GroupMaxSizeReached);
    }
    let (previous_subscription, mut updated) = match replaced {
        Some((member, subscription)) => (Some(subscription), member),
        None => (
            old.as_ref().map(ConsumerMember::subscription),
            old.clone()
                .unwrap_or_else(|| ConsumerMember::new(&member_id)),
        ),
    };
    updated.instance_id = join.group_instance_id.map(str::to_owned);
    updated.rack_id = subscription.rack_id;
    updated.rebalance_timeout_ms = join.rebalance_timeout_ms;
    updated.server_assignor = None;
    updated.subscribed_topic_regex = None;
    let mut names = subscription.topics;
    names.sort_unstable();
    names.dedup();
    updated.subscribed_topic_names = names;
    updated.client_id = join.client_id.to_owned();
    updated.client_host = join.client_host.to_owned();
    updated.classic = Some(ClassicMeta {
        session_timeout_ms: join.session_timeout_ms,
        protocols: join
            .protocols
            .iter()
            .map(|p| (p.name.clone(), p.metadata.clone()))
            .collect(),
    });
    let owned = to_ids(&subscription.owned, topics);
    converge(
        ctx,
        &group_id,
        cg,
        old.as_ref(),
        previous_subscription,
        updated,
        Some(&owned),
        topics,
    );
    let epoch = cg.members[&member_id].member_epoch;
    let protocol = join.protocols[0].name.clone();
    Ok((member_id, epoch, protocol))
}

/// Finds a classic member of a consumer group by member id (and instance id).
fn classic_member<'a>(
    cg: &'a ConsumerGroup,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<&'a ConsumerMember, ResponseError> {
    let member = match instance_id {
        Some(instance) => {
            let current = cg
                .static_members
                .get(instance)
                .ok_or(ResponseError::UnknownMemberId)?;
            if current != member_id {
                return Err(ResponseError::FencedInstanceId);
            }
            &cg.members[current]
        }
        None => cg
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?,
    };
    if member.classic.is_none() {
        return Err(ResponseError::UnknownMemberId);
    }
    Ok(member)
}

/// Whether the member should rejoin: the group epoch moved past its own while it owes
/// no revocation (it rejoined already), or it waits for partitions one of which is
/// free now.
fn should_rejoin(cg: &ConsumerGroup, member: &ConsumerMember) -> bool {
    match member.state {
        MemberState::UnrevokedPartitions => true,
        _ if member.member_epoch < cg.group_epoch => true,
        MemberState::UnreleasedPartitions => {
            let empty = Assignment::new();
            let target = cg.target.get(&member.member_id).unwrap_or(&empty);
            target.iter().any(|(t, ps)| {
                ps.iter().any(|p| {
                    !member.assigned.get(t).is_some_and(|a| a.contains(p))
                        && cg.partition_owner(*t, *p).is_none()
                })
            })
        }
        MemberState::Stable => false,
    }
}

/// SyncGroup from a classic member of a consumer group.
pub(crate) fn sync(
    ctx: &mut Ctx<'_>,
    group: &Group,
    parked: Parked,
    request: &SyncGroupRequest,
    topics: &dyn TopicsView,
) {
    let cg = group.consumer.as_ref().expect("a consumer group");
    let result = (|| {
        let member = classic_member(
            cg,
            request.member_id.as_str(),
            request.group_instance_id.as_deref(),
        )?;
        if request.generation_id != member.member_epoch {
            return Err(ResponseError::IllegalGeneration);
        }
        let protocol = member
            .classic
            .as_ref()
            .and_then(|c| c.protocols.first())
            .map(|(n, _)| n.as_str());
        let type_differs = request
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE);
        let name_differs = request
            .protocol_name
            .as_deref()
            .is_some_and(|n| Some(n) != protocol);
        if type_differs || name_differs {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        if cg.group_epoch > member.member_epoch && member.state != MemberState::UnrevokedPartitions
        {
            must_rejoin(ctx, &group.id, member);
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok((member, protocol.map(str::to_owned)))
    })();
    let response = match result {
        Err(error) => sync_error(error),
        Ok((member, protocol)) => {
            let timeout = cons::session_timeout_ms(ctx, &group.id, member);
            let key = session_key(&group.id, &member.member_id);
            let assignment = encode_assignment(member, topics);
            ctx.schedule_group_timer(key, i64::from(timeout));
            ctx.timers
                .cancel(&cons::classic_sync_key(&group.id, &member.member_id));
            sync_success(
                parked.version,
                Some(CONSUMER_PROTOCOL_TYPE),
                protocol.as_deref(),
                assignment,
            )
        }
    };
    ctx.reply_sync(parked, response);
}

/// Heartbeat from a classic member of a consumer group.
pub(crate) fn heartbeat(
    ctx: &mut Ctx<'_>,
    group: &Group,
    request: &HeartbeatRequest,
) -> Result<(), ResponseError> {
    let cg = group.consumer.as_ref().expect("a consumer group");
    let member = classic_member(
        cg,
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
    )?;
    if request.generation_id != member.member_epoch {
        return Err(ResponseError::IllegalGeneration);
    }
    let timeout = cons::session_timeout_ms(ctx, &group.id, member);
    ctx.schedule_group_timer(
        session_key(&group.id, &member.member_id),
        i64::from(timeout),
    );
    if should_rejoin(cg, member) {
        must_rejoin(ctx, &group.id, member);
        return Err(ResponseError::RebalanceInProgress);
    }
    Ok(())
}

/// A classic member was told to rejoin (REBALANCE_IN_PROGRESS): unless it sends
/// JoinGroup within its rebalance timeout it is removed (Kafka's join timeout; the
/// first telling starts the clock, later ones do not move it).
fn must_rejoin(ctx: &mut Ctx<'_>, group_id: &str, member: &ConsumerMember) {
    let key = cons::classic_join_key(group_id, &member.member_id);
    if !ctx.timers.is_scheduled(&key) {
        ctx.schedule_group_timer(key, i64::from(member.rebalance_timeout_ms.max(0)));
    }
}

/// LeaveGroup to a consumer group: each classic member named leaves it.
pub(crate) fn leave(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    identities: &[MemberIdentity],
) -> Vec<MemberResponse> {
    let group_id = group.id.clone();
    let cg = group.consumer.as_mut().expect("a consumer group");
    let mut responses = Vec::with_capacity(identities.len());
    for identity in identities {
        let mut response = MemberResponse::default();
        response.member_id = identity.member_id.clone();
        response.group_instance_id = identity.group_instance_id.clone();
        let found = match identity.group_instance_id.as_deref() {
            // Administrative removal names the instance alone.
            Some(instance) if identity.member_id.is_empty() => cg
                .static_members
                .get(instance)
                .cloned()
                .ok_or(ResponseError::UnknownMemberId)
                .and_then(|id| {
                    classic_member(cg, &id, Some(instance)).map(|m| m.member_id.clone())
                }),
            instance => classic_member(cg, identity.member_id.as_str(), instance)
                .map(|m| m.member_id.clone()),
        };
        match found {
            Ok(member_id) => {
                cons::remove_member(
                    ctx,
                    &group_id,
                    cg,
                    &member_id,
                    "the classic member left the group",
                );
                response.member_id = member_id.into();
            }
            Err(error) => response.error_code = error.code(),
        }
        responses.push(response);
    }
    responses
}

/// Before `leaving` is removed from a consumer group: whether the group should become a
/// classic group instead (Kafka's `validateOnlineDowngradeWithFencedMember`): every
/// other member uses the classic protocol, there is at least one, the policy allows it
/// and they fit `group.max.size`.
pub(crate) fn should_downgrade(ctx: &Ctx<'_>, cg: &ConsumerGroup, leaving: &str) -> bool {
    let others = || cg.members.values().filter(|m| m.member_id != leaving);
    if others().count() == 0 || others().any(|m| m.classic.is_none()) {
        return false;
    }
    if !ctx.config.consumer_migration_policy.downgrades() {
        info!("cannot downgrade the consumer group: group.consumer.migration.policy does not allow it");
        return false;
    }
    others().count() <= ctx.config.max_size
}

/// A classic JoinGroup with a `group.instance.id` (and no member id) that would replace
/// the group's last consumer-protocol member, a static one: the member it replaces, when
/// the group should become a classic group instead (Kafka's
/// `validateOnlineDowngradeWithReplacedMember`: every other member uses the classic
/// protocol, the policy allows downgrades, and the group fits `group.max.size`).
pub(crate) fn replaced_by_classic(
    ctx: &Ctx<'_>,
    cg: &ConsumerGroup,
    instance: Option<&str>,
    member_id: &str,
) -> Option<String> {
    let current = cg.static_members.get(instance?)?;
    let replaced = cg.members.get(current)?;
    if !member_id.is_empty() || replaced.classic.is_some() {
        return None;
    }
    let others_classic = cg
        .members
        .values()
        .all(|m| m.member_id == *current || m.classic.is_some());
    if !others_classic {
        return None;
    }
    if !ctx.config.consumer_migration_policy.downgrades() {
        info!("cannot downgrade the consumer group: group.consumer.migration.policy does not allow it");
        return None;
    }
    (cg.members.len() <= ctx.config.max_size).then(|| current.clone())
}

/// Turns a consumer group into a Stable classic group of its members but `leaving`, at
/// the group epoch as generation, each member keeping the partitions it holds as its
/// classic assignment (Kafka's `ClassicGroup.fromConsumerGroup`). The consumer group's
/// records are deleted and the classic group's written. When a member left, a
/// rebalance starts, as the partitions it held are nobody's.
pub(crate) fn downgrade(
    ctx: &mut Ctx<'_>,
    group: &mut Group,
    leaving: Option<&str>,
    topics: &dyn TopicsView,
) {
    let group_id = group.id.clone();
    let cg = group.consumer.take().expect("a consumer group");
    for member_id in cg.members.keys() {
        cons::cancel_timers(ctx, &group_id, member_id);
    }
    ctx.effects
        .records
        .extend(cons::all_tombstones(&group_id, &cg));
    let offsets = std::mem::take(&mut group.offsets);
    *group = Group::new(&group_id, Some(ctx.now_ms));
    group.offsets = offsets;
    group.generation_id = cg.group_epoch;
    for m in cg
        .members
        .values()
        .filter(|m| Some(m.member_id.as_str()) != leaving)
    {
        let classic = m.classic.clone().expect("checked by should_downgrade");
        let assignment = encode_assignment(m, topics);
        group.add(Member {
            member_id: m.member_id.clone(),
            group_instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: classic.session_timeout_ms,
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
            protocols: classic
                .protocols
                .into_iter()
                .map(|(name, metadata)| Protocol { name, metadata })
                .collect(),
            assignment,
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
        });
        ctx.timers.schedule(
            heartbeat_key(&group_id, &m.member_id),
            ctx.now_ms
                .saturating_add(i64::from(classic.session_timeout_ms)),
        );
    }
    group.protocol_name = group.select_protocol();
    group.subscribed_topics = group.compute_subscribed_topics();
    group.state = GroupState::Stable;
    group.previous_state = GroupState::Empty;
    info!(
        group = %group_id,
        generation = group.generation_id,
        members = group.members.len(),
        "downgraded the consumer group to a classic group"
    );
    super::membership::write_group_metadata(ctx, group);
    if leaving.is_some() {
        super::membership::prepare_rebalance(ctx, group);
    }
}
