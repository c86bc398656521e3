//! OffsetCommit, OffsetFetch, OffsetDelete and offset retention.
//!
//! Offsets are stored by topic name. The broker caps OffsetCommit and OffsetFetch at v9,
//! so topic ids never appear here.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::membership::{reschedule_heartbeat, validate_member};
use super::{Ctx, Effects, GroupCoordinator, Groups};
use crate::consumer::TopicsView;
use crate::group::{Group, GroupState};
use crate::records::{CommittedOffset, OffsetsRecord};

/// OffsetCommit v2-v4 carry a retention time; -1 means the broker's retention.
const DEFAULT_RETENTION_TIME_MS: i64 = -1;
/// OffsetCommit v9+ answers GROUP_ID_NOT_FOUND for an unknown group and a generation.
const FIRST_COMMIT_VERSION_WITH_GROUP_ID_NOT_FOUND: i16 = 9;
/// OffsetFetch v8+ fetches for several groups at once.
const FIRST_FETCH_VERSION_WITH_GROUPS: i16 = 8;
/// OffsetFetch v5+ returns the committed leader epoch.
const FIRST_FETCH_VERSION_WITH_LEADER_EPOCH: i16 = 5;
/// The offset returned for a partition without a committed offset.
const NO_OFFSET: i64 = -1;

/// One committed (or missing) offset as OffsetFetch reports it.
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

impl Fetched {
    fn new(partition: i32, committed: Option<&CommittedOffset>) -> Self {
        match committed {
            Some(c) => Fetched {
                partition,
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.clone(),
            },
            None => Fetched {
                partition,
                offset: NO_OFFSET,
                leader_epoch: -1,
                metadata: String::new(),
            },
        }
    }
}

impl GroupCoordinator {
    /// Handles OffsetCommit. The broker appends the records, then sends the response.
    pub fn offset_commit(
        &mut self,
        version: i16,
        request: &OffsetCommitRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> (OffsetCommitResponse, Vec<OffsetsRecord>) {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let outcome = validate_commit(&mut ctx, groups, version, request);
        let mut response = OffsetCommitResponse::default();
        let mut records = Vec::new();
        for topic in &request.topics {
            let mut topic_response = OffsetCommitResponseTopic::default();
            topic_response.name = topic.name.clone();
            for partition in &topic.partitions {
                let mut partition_response = OffsetCommitResponsePartition::default();
                partition_response.partition_index = partition.partition_index;
                let error = match &outcome {
                    Err(error) => Some(*error),
                    Ok((group_id, check)) => {
                        let metadata = partition.committed_metadata.as_deref().unwrap_or_default();
                        let owned = check.check(
                            groups
                                .get(group_id.as_str())
                                .and_then(|g| g.consumer.as_deref()),
                            topics,
                            topic.name.as_str(),
                            partition.partition_index,
                            ResponseError::StaleMemberEpoch,
                        );
                        if let Err(e) = owned {
                            Some(e)
                        } else if metadata.chars().count() > ctx.config.offset_metadata_max_bytes {
                            Some(ResponseError::OffsetMetadataTooLarge)
                        } else {
                            let committed = CommittedOffset {
                                offset: partition.committed_offset,
                                leader_epoch: partition.committed_leader_epoch,
                                metadata: metadata.to_owned(),
                                commit_timestamp_ms: now_ms,
                                expire_timestamp_ms: expire_timestamp_ms(
                                    version,
                                    request.retention_time_ms,
                                    now_ms,
                                ),
                            };
                            records.push(OffsetsRecord::offset_commit(
                                group_id,
                                topic.name.as_str(),
                                partition.partition_index,
                                &committed,
                            ));
                            groups
                                .get_mut(group_id.as_str())
                                .expect("validated")
                                .offsets
                                .entry(topic.name.to_string())
                                .or_default()
                                .insert(partition.partition_index, committed);
                            None
                        }
                    }
                };
                partition_response.error_code = error.map_or(0, |e| e.code());
                topic_response.partitions.push(partition_response);
            }
            response.topics.push(topic_response);
        }
        debug_assert!(effects.is_empty());
        (response, records)
    }

    /// Handles TxnOffsetCommit: validates the group and member as Kafka does (member and
    /// generation only when the request carries them, v3+) and returns the records to
    /// write in the producer's transaction. Nothing is applied here: the broker replays
    /// the records with [`GroupCoordinator::replay`] when the transaction commits, and
    /// drops them when it aborts.
    pub fn txn_offset_commit(
        &mut self,
        request: &TxnOffsetCommitRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> (TxnOffsetCommitResponse, Vec<OffsetsRecord>) {
        let mut effects = Effects::default();
        let (groups, mut ctx) = self.parts(now_ms, &mut effects);
        let outcome = validate_txn_commit(&mut ctx, groups, request);
        let mut response = TxnOffsetCommitResponse::default();
        let mut records = Vec::new();
        for topic in &request.topics {
            let mut topic_response = TxnOffsetCommitResponseTopic::default();
            topic_response.name = topic.name.clone();
            for partition in &topic.partitions {
                let metadata = partition.committed_metadata.as_deref().unwrap_or_default();
                let owned = outcome.and_then(|check| {
                    check.check(
                        groups
                            .get(request.group_id.as_str())
                            .and_then(|g| g.consumer.as_deref()),
                        topics,
                        topic.name.as_str(),
                        partition.partition_index,
                        ResponseError::IllegalGeneration,
                    )
                });
                let error = match owned {
                    Err(error) => Some(error),
                    Ok(()) if metadata.chars().count() > ctx.config.offset_metadata_max_bytes => {
                        Some(ResponseError::OffsetMetadataTooLarge)
                    }
                    Ok(()) => {
                        let committed = CommittedOffset {
                            offset: partition.committed_offset,
                            leader_epoch: partition.committed_leader_epoch,
                            metadata: metadata.to_owned(),
                            commit_timestamp_ms: now_ms,
                            expire_timestamp_ms: None,
                        };
                        records.push(OffsetsRecord::offset_commit(
                            request.group_id.as_str(),
                            topic.name.as_str(),
                            partition.partition_index,
                            &committed,
                        ));
                        None
                    }
                };
                let mut partition_response = TxnOffsetCommitResponsePartition::default();
                partition_response.partition_index = partition.partition_index;
                partition_response.error_code = error.map_or(0, |e| e.code());
                topic_response.partitions.push(partition_response);
            }
            response.topics.push(topic_response);
        }
        debug_assert!(effects.is_empty());
        (response, records)
    }

    /// Handles OffsetFetch: one group before v8, several from v8. Offsets are returned
    /// whatever the group's state, since groups may use Kafka only to store offsets.
    pub fn offset_fetch(&self, version: i16, request: &OffsetFetchRequest) -> OffsetFetchResponse {
        let mut response = OffsetFetchResponse::default();
        if version >= FIRST_FETCH_VERSION_WITH_GROUPS {
            for wanted in &request.groups {
                let topics = wanted.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|t| (&t.name, t.partition_indexes.as_slice()))
                        .collect::<Vec<_>>()
                });
                let mut group = OffsetFetchResponseGroup::default();
                group.group_id = wanted.group_id.clone();
                // v9+: a consumer-protocol member fetches with its id and epoch.
                let consumer = self
                    .groups
                    .get(wanted.group_id.as_str())
                    .and_then(|g| g.consumer.as_ref());
                // Without a member id and epoch (the admin client, or a client that
                // does not send them) any fetch is accepted, as in Kafka.
                let anonymous = wanted.member_id.is_none() && wanted.member_epoch < 0;
                if let Some(cg) = consumer.filter(|_| !anonymous) {
                    let member_id = wanted.member_id.as_deref().unwrap_or("");
                    if let Err(e) =
                        validate_consumer_member(cg, member_id, wanted.member_epoch, false, false)
                    {
                        group.error_code = e.code();
                        response.groups.push(group);
                        continue;
                    }
                }
                group.topics = self
                    .fetch(&wanted.group_id, topics)
                    .into_iter()
                    .map(|(name, partitions)| {
                        let mut topic = OffsetFetchResponseTopics::default();
                        topic.name = name;
                        topic.partitions = partitions
                            .into_iter()
                            .map(|f| {
                                let mut p = OffsetFetchResponsePartitions::default();
                                p.partition_index = f.partition;
                                p.committed_offset = f.offset;
                                p.committed_leader_epoch = f.leader_epoch;
                                p.metadata = Some(StrBytes::from_string(f.metadata));
                                p
                            })
                            .collect();
                        topic
                    })
                    .collect();
                response.groups.push(group);
            }
        } else {
            let topics = request.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| (&t.name, t.partition_indexes.as_slice()))
                    .collect::<Vec<_>>()
            });
            response.topics = self
                .fetch(&request.group_id, topics)
                .into_iter()
                .map(|(name, partitions)| {
                    let mut topic = OffsetFetchResponseTopic::default();
                    topic.name = name;
                    topic.partitions = partitions
                        .into_iter()
                        .map(|f| {
                            let mut p = OffsetFetchResponsePartition::default();
                            p.partition_index = f.partition;
                            p.committed_offset = f.offset;
                            if version >= FIRST_FETCH_VERSION_WITH_LEADER_EPOCH {
                                p.committed_leader_epoch = f.leader_epoch;
                            }
                            p.metadata = Some(StrBytes::from_string(f.metadata));
                            p
                        })
                        .collect();
                    topic
                })
                .collect();
        }
        response
    }

    /// The committed offsets of `topics` (each partition asked for, -1 when none), or of
    /// everything the group has committed when `topics` is None.
    fn fetch(
        &self,
        group_id: &GroupId,
        topics: Option<Vec<(&TopicName, &[i32])>>,
    ) -> Vec<(TopicName, Vec<Fetched>)> {
        let group = self.groups.get(group_id.as_str());
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(name, partitions)| {
                    let committed = group.and_then(|g| g.offsets.get(name.as_str()));
                    let fetched = partitions
                        .iter()
                        .map(|p| Fetched::new(*p, committed.and_then(|c| c.get(p))))
                        .collect();
                    (name.clone(), fetched)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(topic, partitions)| {
                            let fetched = partitions
                                .iter()
                                .map(|(p, c)| Fetched::new(*p, Some(c)))
                                .collect();
                            (TopicName(StrBytes::from_string(topic.clone())), fetched)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Handles OffsetDelete: removes committed offsets of topics the group does not
    /// subscribe to (all of them once the group is Empty).
    pub fn offset_delete(
        &mut self,
        _version: i16,
        request: &OffsetDeleteRequest,
    ) -> (OffsetDeleteResponse, Vec<OffsetsRecord>) {
        let mut response = OffsetDeleteResponse::default();
        let mut records = Vec::new();
        let group_id = request.group_id.as_str();
        let group = match validate_offset_delete(&mut self.groups, group_id) {
            Ok(group) => group,
            Err(error) => {
                response.error_code = error.code();
                return (response, records);
            }
        };
        for topic in &request.topics {
            let subscribed = group.is_subscribed_to_topic(topic.name.as_str());
            let mut topic_response = OffsetDeleteResponseTopic::default();
            topic_response.name = topic.name.clone();
            for partition in &topic.partitions {
                let mut partition_response = OffsetDeleteResponsePartition::default();
                partition_response.partition_index = partition.partition_index;
                if subscribed {
                    partition_response.error_code = ResponseError::GroupSubscribedToTopic.code();
                } else if remove_offset(group, topic.name.as_str(), partition.partition_index) {
                    records.push(OffsetsRecord::offset_commit_tombstone(
                        group_id,
                        topic.name.as_str(),
                        partition.partition_index,
                    ));
                }
                topic_response.partitions.push(partition_response);
            }
            response.topics.push(topic_response);
        }
        (response, records)
    }
}

/// Kafka's rules for who may commit: without group management (generation -1, no
/// member id) only while the group is Empty; otherwise a current member of the current
/// generation, and not while the group waits for the leader's assignment. Returns the
/// group id (the group is created Empty for a first commit without group management).
fn validate_commit<'r>(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    version: i16,
    request: &'r OffsetCommitRequest,
) -> Result<(GroupId, CommitCheck<'r>), ResponseError> {
    let group_id = request.group_id.as_str();
    let generation_id = request.generation_id_or_member_epoch;
    if !groups.contains_key(group_id) {
        if generation_id >= 0 {
            return Err(if version >= FIRST_COMMIT_VERSION_WITH_GROUP_ID_NOT_FOUND {
                ResponseError::GroupIdNotFound
            } else {
                ResponseError::IllegalGeneration
            });
        }
        info!(
            group = group_id,
            "creating a group for offset commits without group management"
        );
        groups.insert(group_id.to_owned(), Group::new(group_id, Some(ctx.now_ms)));
    }
    let group = &groups[group_id];
    if group.share.is_some() {
        // Share groups have no committed offsets (Kafka: not a consumer group).
        return Err(ResponseError::GroupIdNotFound);
    }
    let member_id = request.member_id.as_str();
    let instance_id = request.group_instance_id.as_deref();
    if let Some(cg) = &group.consumer {
        let check = validate_consumer_member(cg, member_id, generation_id, false, true)?;
        let classic = cg
            .members
            .get(member_id)
            .is_some_and(|m| m.classic.is_some());
        if !cg.members.is_empty()
            && !classic
            && version < FIRST_COMMIT_VERSION_WITH_GROUP_ID_NOT_FOUND
        {
            // Kafka: members of the new protocol commit with v9+ (UNSUPPORTED_VERSION).
            return Err(ResponseError::UnsupportedVersion);
        }
        if let Some(member) = cg.members.get(member_id) {
            // Commits count as liveness for consumer members too.
            let timeout = super::consumer::session_timeout_ms(ctx, group_id, member);
            ctx.schedule_group_timer(
                super::consumer::session_key(group_id, member_id),
                i64::from(timeout),
            );
        }
        return Ok((request.group_id.clone(), check));
    }
    let any = |id: &GroupId| Ok((id.clone(), CommitCheck::Any));
    if generation_id < 0 && group.is(GroupState::Empty) {
        return any(&request.group_id);
    }
    if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
        validate_member(group, member_id, instance_id)?;
        if generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
    } else if !group.is(GroupState::Empty) {
        return Err(ResponseError::UnknownMemberId);
    }
    match group.state {
        GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
        GroupState::Stable | GroupState::PreparingRebalance => {
            // Commits count as liveness, as in Kafka.
            reschedule_heartbeat(ctx, group, member_id);
            any(&request.group_id)
        }
        GroupState::Empty | GroupState::Dead => any(&request.group_id),
    }
}

fn validate_txn_commit<'r>(
    ctx: &mut Ctx<'_>,
    groups: &mut Groups,
    request: &'r TxnOffsetCommitRequest,
) -> Result<CommitCheck<'r>, ResponseError> {
    let group_id = request.group_id.as_str();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    if !groups.contains_key(group_id) {
        // Kafka creates the group: a transactional producer may commit for a group that
        // never joined (simple consumers), and a generation check needs a group.
        if request.generation_id >= 0 {
            return Err(ResponseError::IllegalGeneration);
        }
        groups.insert(group_id.to_owned(), Group::new(group_id, Some(ctx.now_ms)));
        return Ok(CommitCheck::Any);
    }
    let group = &groups[group_id];
    if group.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if let Some(cg) = &group.consumer {
        let member_id = request.member_id.as_str();
        if member_id.is_empty() && request.generation_id < 0 {
            return Ok(CommitCheck::Any);
        }
        return validate_consumer_member(cg, member_id, request.generation_id, true, true);
    }
    let member_id = request.member_id.as_str();
    let instance_id = request.group_instance_id.as_deref();
    if !member_id.is_empty() || instance_id.is_some() {
        validate_member(group, member_id, instance_id)?;
    }
    if request.generation_id >= 0 && request.generation_id != group.generation_id {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(CommitCheck::Any)
}

/// How the partitions of an accepted commit are checked (Kafka's
/// `CommitPartitionValidator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitCheck<'a> {
    /// Every partition may be committed.
    Any,
    /// A consumer-protocol member committed with an epoch older than its own
    /// (KIP-1251): a partition passes if the member holds it and was given it at that
    /// epoch or before. A heartbeat that bumped the epoch can cross a commit in flight;
    /// the commit still comes from the partition's owner.
    AssignedBy { member_id: &'a str, epoch: i32 },
}

impl CommitCheck<'_> {
    /// `Err(error)` when the partition may not be committed.
    fn check(
        self,
        cg: Option<&crate::consumer::ConsumerGroup>,
        topics: &dyn TopicsView,
        topic: &str,
        partition: i32,
        error: ResponseError,
    ) -> Result<(), ResponseError> {
        match self {
            CommitCheck::Any => Ok(()),
            CommitCheck::AssignedBy { member_id, epoch } => {
                let since = cg
                    .zip(topics.topic(topic))
                    .and_then(|(cg, (id, _))| cg.assignment_epoch(member_id, id, partition));
                match since {
                    Some(since) if since <= epoch => Ok(()),
                    _ => Err(error),
                }
            }
        }
    }
}

/// Kafka's ConsumerGroup.validateOffsetCommit / validateOffsetFetch: without a member
/// id and with epoch -1 (the admin client, a consumer without group management) only
/// while the group is empty; otherwise the member must exist (UNKNOWN_MEMBER_ID) with
/// that epoch (STALE_MEMBER_EPOCH, or ILLEGAL_GENERATION for transactional commits).
/// A commit (`allow_older`) may also come with an older epoch of the member (KIP-1251):
/// its partitions are then checked one by one.
pub(crate) fn validate_consumer_member<'a>(
    cg: &crate::consumer::ConsumerGroup,
    member_id: &'a str,
    epoch: i32,
    transactional: bool,
    allow_older: bool,
) -> Result<CommitCheck<'a>, ResponseError> {
    if epoch < 0 && member_id.is_empty() && cg.members.is_empty() {
        return Ok(CommitCheck::Any);
    }
    let member = cg
        .members
        .get(member_id)
        .ok_or(ResponseError::UnknownMemberId)?;
    let stale = if transactional {
        ResponseError::IllegalGeneration
    } else {
        ResponseError::StaleMemberEpoch
    };
    if epoch == member.member_epoch {
        Ok(CommitCheck::Any)
    } else if member.classic.is_some() {
        // A classic member commits with its generation, which must be its epoch.
        Err(ResponseError::IllegalGeneration)
    } else if allow_older && (0..member.member_epoch).contains(&epoch) {
        Ok(CommitCheck::AssignedBy { member_id, epoch })
    } else {
        Err(stale)
    }
}

/// v2-v4 may ask for a retention of their own: the offset then expires at a fixed time.
fn expire_timestamp_ms(version: i16, retention_time_ms: i64, now_ms: i64) -> Option<i64> {
    ((2..=4).contains(&version) && retention_time_ms != DEFAULT_RETENTION_TIME_MS)
        .then(|| now_ms.saturating_add(retention_time_ms))
}

fn validate_offset_delete<'a>(
    groups: &'a mut Groups,
    group_id: &str,
) -> Result<&'a mut Group, ResponseError> {
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let group = groups
        .get_mut(group_id)
        .ok_or(ResponseError::GroupIdNotFound)?;
    match group.state {
        GroupState::Stable | GroupState::PreparingRebalance | GroupState::CompletingRebalance
            if !group.uses_consumer_protocol() =>
        {
            // Subscriptions can only be read for consumer groups.
            Err(ResponseError::NonEmptyGroup)
        }
        _ => Ok(group),
    }
}

fn remove_offset(group: &mut Group, topic: &str, partition: i32) -> bool {
    let Some(partitions) = group.offsets.get_mut(topic) else {
        return false;
    };
    let removed = partitions.remove(&partition).is_some();
    if partitions.is_empty() {
        group.offsets.remove(topic);
    }
    removed
}

/// offsets.retention: expires offsets and deletes Empty groups left with none.
///
/// Which offsets may expire, and from when the retention counts, follows Kafka: in an
/// Empty group, all of them, from when the group became Empty; in a Stable consumer
/// group whose subscriptions are known, those of topics no longer subscribed, from their
/// commit; in a group without group management, all, from their commit. An offset
/// committed with its own retention (OffsetCommit v2-v4) expires at its fixed time.
pub(crate) fn expire_offsets(ctx: &mut Ctx<'_>, groups: &mut Groups) {
    let now_ms = ctx.now_ms;
    let retention_ms = ctx.config.offsets_retention_ms;
    let mut deleted = Vec::new();
    for group in groups.values_mut() {
        let base_of = |group: &Group, offset: &CommittedOffset| -> Option<i64> {
            if let Some(cg) = &group.consumer {
                // Empty: from when it emptied; else offsets of topics nobody subscribes
                // to, from their commit (the caller skips subscribed topics).
                return Some(if cg.members.is_empty() {
                    cg.empty_since_ms.max(offset.commit_timestamp_ms)
                } else {
                    offset.commit_timestamp_ms
                });
            }
            match group.protocol_type.as_deref() {
                None => Some(offset.commit_timestamp_ms),
                Some(_) if group.is(GroupState::Empty) => Some(
                    group
                        .state_timestamp_ms
                        .unwrap_or(offset.commit_timestamp_ms),
                ),
                Some(_)
                    if group.uses_consumer_protocol()
                        && group.subscribed_topics.is_some()
                        && group.is(GroupState::Stable) =>
                {
                    Some(offset.commit_timestamp_ms)
                }
                Some(_) => None,
            }
        };
        let mut expired = Vec::new();
        for (topic, partitions) in &group.offsets {
            if group.is_subscribed_to_topic(topic) {
                continue;
            }
            for (partition, offset) in partitions {
                let Some(base_ms) = base_of(group, offset) else {
                    continue;
                };
                let is_expired = match offset.expire_timestamp_ms {
                    Some(expire_ms) => now_ms >= expire_ms,
                    None => now_ms.saturating_sub(base_ms) >= retention_ms,
                };
                if is_expired {
                    expired.push((topic.clone(), *partition));
                }
            }
        }
        for (topic, partition) in expired {
            remove_offset(group, &topic, partition);
            ctx.effects
                .records
                .push(OffsetsRecord::offset_commit_tombstone(
                    &group.id, &topic, partition,
                ));
        }
        // A share group stays: it holds its share-partitions' state.
        if group.is(GroupState::Empty)
            && group.share.is_none()
            && !group.has_offsets()
            && group.members.is_empty()
            && group.pending_members.is_empty()
            && group
                .consumer
                .as_ref()
                .is_none_or(|cg| cg.members.is_empty())
        {
            deleted.push(group.id.clone());
        }
    }
    for group_id in deleted {
        info!(group = %group_id, "deleting empty group without offsets");
        let group = groups.remove(&group_id).expect("listed");
        match &group.consumer {
            Some(cg) => ctx
                .effects
                .records
                .extend(super::consumer::group_tombstones(&group_id, cg)),
            None => ctx
                .effects
                .records
                .push(OffsetsRecord::group_metadata_tombstone(&group_id)),
        }
    }
}
