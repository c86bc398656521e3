//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets
//! (KIP-932): a share group's start offset in each share-partition, read from and
//! written to the share-partition state records the coordinator keeps (key type 100).
//!
//! Altering or deleting needs an empty group, as Kafka requires (NON_EMPTY_GROUP
//! otherwise): with no members nothing is in flight that the new state would lose. An
//! altered share-partition starts afresh at the given offset with nothing in flight; a
//! deleted one has no state, so it starts where `share.auto.offset.reset` says when the
//! group next reads it. The broker drops its live state of what changed (see
//! `brook_broker::shares`), so the next fetch loads the new record.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::GroupCoordinator;
use crate::consumer::TopicsView;
use crate::group::Group;
use crate::records::OffsetsRecord;
use crate::share::records::{ShareKey, ShareValue};
use crate::share::{ShareGroup, StoredPartitionState};

/// The stored-state codes of records past the start that need no more delivery.
const STORED_ACKNOWLEDGED: i8 = 2;
const STORED_ARCHIVED: i8 = 4;

/// What a partition's log looks like to the broker answering: (end offset, leader
/// epoch), when it has a replica.
pub type PartitionEnd<'a> = &'a dyn Fn(&str, i32) -> Option<(i64, i32)>;

/// An error for a whole request or group: (code, message).
type Refusal = (i16, String);

fn msg(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

/// Records past the start offset that are acknowledged or archived: not lag.
fn done_past_start(state: &StoredPartitionState) -> i64 {
    state
        .batches
        .iter()
        .filter(|b| b.state == STORED_ACKNOWLEDGED || b.state == STORED_ARCHIVED)
        .map(|b| b.last_offset - b.first_offset.max(state.start_offset) + 1)
        .filter(|n| *n > 0)
        .sum()
}

fn describe_partition(
    state: Option<&StoredPartitionState>,
    end: Option<(i64, i32)>,
    index: i32,
) -> DescribeShareGroupOffsetsResponsePartition {
    let mut p = DescribeShareGroupOffsetsResponsePartition::default()
        .with_partition_index(index)
        .with_start_offset(-1)
        .with_leader_epoch(-1)
        .with_lag(-1);
    if let Some(state) = state {
        p.start_offset = state.start_offset;
        if let Some((end, epoch)) = end {
            p.leader_epoch = epoch;
            p.lag = (end - state.start_offset - done_past_start(state)).max(0);
        }
    }
    p
}

impl GroupCoordinator {
    /// The share group `group_id`, or GROUP_ID_NOT_FOUND (also for a group of another
    /// type, as Kafka answers).
    fn share_group_ref(&self, group_id: &str) -> Result<&ShareGroup, Refusal> {
        match self.groups.get(group_id) {
            Some(Group {
                share: Some(sg), ..
            }) => Ok(sg),
            Some(_) => Err((
                ResponseError::GroupIdNotFound.code(),
                format!("Group {group_id} is not a share group."),
            )),
            None => Err((
                ResponseError::GroupIdNotFound.code(),
                format!("Group {group_id} not found."),
            )),
        }
    }

    /// A share group with no members, which may have its offsets altered or deleted.
    fn empty_share_group(&self, group_id: &str) -> Result<&ShareGroup, Refusal> {
        if group_id.is_empty() {
            return Err((
                ResponseError::InvalidGroupId.code(),
                "The group id is empty.".into(),
            ));
        }
        let sg = self.share_group_ref(group_id)?;
        if !sg.members.is_empty() {
            return Err((
                ResponseError::NonEmptyGroup.code(),
                format!("The share group {group_id} has members; its offsets can only be changed while it is empty."),
            ));
        }
        Ok(sg)
    }

    /// Handles one group of DescribeShareGroupOffsets: the start offset of each asked
    /// share-partition (-1 where the group has no state for it), or of every
    /// share-partition the group has state for when `topics` is null.
    pub fn describe_share_group_offsets(
        &self,
        request: &DescribeShareGroupOffsetsRequestGroup,
        topics: &dyn TopicsView,
        end: PartitionEnd<'_>,
    ) -> DescribeShareGroupOffsetsResponseGroup {
        let mut out = DescribeShareGroupOffsetsResponseGroup::default()
            .with_group_id(request.group_id.clone());
        let sg = match self.share_group_ref(&request.group_id) {
            Ok(sg) => sg,
            Err((code, message)) => {
                out.error_code = code;
                out.error_message = msg(message);
                return out;
            }
        };
        match &request.topics {
            None => {
                let mut by_topic: BTreeMap<String, (Uuid, Vec<i32>)> = BTreeMap::new();
                for (topic, partition) in sg.partition_states.keys() {
                    if let Some(name) = topics.topic_name(topic) {
                        by_topic
                            .entry(name)
                            .or_insert_with(|| (*topic, Vec::new()))
                            .1
                            .push(*partition);
                    }
                }
                for (name, (id, partitions)) in by_topic {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            describe_partition(sg.partition_states.get(&(id, p)), end(&name, p), p)
                        })
                        .collect();
                    out.topics.push(
                        DescribeShareGroupOffsetsResponseTopic::default()
                            .with_topic_name(StrBytes::from_string(name).into())
                            .with_topic_id(id)
                            .with_partitions(partitions),
                    );
                }
            }
            Some(asked) => {
                for t in asked {
                    let mut topic = DescribeShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(t.topic_name.clone());
                    match topics.topic(&t.topic_name) {
                        Some((id, count)) => {
                            topic.topic_id = id;
                            topic.partitions = t
                                .partitions
                                .iter()
                                .map(|&p| {
                                    if p < 0 || p >= count {
                                        return unknown_partition(p);
                                    }
                                    describe_partition(
                                        sg.partition_states.get(&(id, p)),
                                        end(&t.topic_name, p),
                                        p,
                                    )
                                })
                                .collect();
                        }
                        None => {
                            topic.partitions =
                                t.partitions.iter().map(|&p| unknown_partition(p)).collect();
                        }
                    }
                    out.topics.push(topic);
                }
            }
        }
        out
    }

    /// Handles AlterShareGroupOffsets on an empty share group: each valid partition's
    /// state becomes a fresh start at the given offset. Returns the answer, the records
    /// to append and the share-partitions whose state changed.
    pub fn alter_share_group_offsets(
        &mut self,
        request: &AlterShareGroupOffsetsRequest,
        topics: &dyn TopicsView,
    ) -> (
        AlterShareGroupOffsetsResponse,
        Vec<OffsetsRecord>,
        Vec<(Uuid, i32)>,
    ) {
        let group_id = request.group_id.as_str();
        let mut response = AlterShareGroupOffsetsResponse::default();
        if let Err((code, message)) = self.empty_share_group(group_id) {
            response.error_code = code;
            response.error_message = msg(message.clone());
            response.responses = request
                .topics
                .iter()
                .map(|t| {
                    AlterShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(t.topic_name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| alter_partition(p.partition_index, code, &message))
                                .collect(),
                        )
                })
                .collect();
            return (response, Vec::new(), Vec::new());
        }
        let mut records = Vec::new();
        let mut changed = Vec::new();
        for t in &request.topics {
            let mut topic = AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone());
            let known = topics.topic(&t.topic_name);
            if let Some((id, _)) = known {
                topic.topic_id = id;
            }
            for p in &t.partitions {
                let index = p.partition_index;
                let result = match known {
                    Some((id, count)) if index >= 0 && index < count => {
                        if p.start_offset < 0 {
                            alter_partition(
                                index,
                                ResponseError::InvalidRequest.code(),
                                "The start offset must not be negative.",
                            )
                        } else {
                            let state = StoredPartitionState {
                                start_offset: p.start_offset,
                                batches: Vec::new(),
                            };
                            records.extend(
                                self.write_share_partition_state(group_id, id, index, state),
                            );
                            changed.push((id, index));
                            AlterShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(index)
                        }
                    }
                    _ => alter_partition(
                        index,
                        ResponseError::UnknownTopicOrPartition.code(),
                        "This server does not host this topic-partition.",
                    ),
                };
                topic.partitions.push(result);
            }
            response.responses.push(topic);
        }
        (response, records, changed)
    }

    /// Handles DeleteShareGroupOffsets on an empty share group: the state of every
    /// share-partition of each named topic is deleted. Returns the answer, the
    /// tombstones to append and the share-partitions whose state went.
    pub fn delete_share_group_offsets(
        &mut self,
        request: &DeleteShareGroupOffsetsRequest,
        topics: &dyn TopicsView,
    ) -> (
        DeleteShareGroupOffsetsResponse,
        Vec<OffsetsRecord>,
        Vec<(Uuid, i32)>,
    ) {
        let group_id = request.group_id.as_str();
        let mut response = DeleteShareGroupOffsetsResponse::default();
        let sg = match self.empty_share_group(group_id) {
            Ok(sg) => sg,
            Err((code, message)) => {
                response.error_code = code;
                response.error_message = msg(message);
                return (response, Vec::new(), Vec::new());
            }
        };
        let mut gone = Vec::new();
        for t in &request.topics {
            let mut topic = DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone());
            match topics.topic(&t.topic_name) {
                Some((id, _)) => {
                    topic.topic_id = id;
                    gone.extend(
                        sg.partition_states
                            .keys()
                            .filter(|(topic, _)| *topic == id)
                            .copied(),
                    );
                }
                None => {
                    topic.error_code = ResponseError::UnknownTopicOrPartition.code();
                    topic.error_message =
                        msg("This server does not host this topic-partition.".into());
                }
            }
            response.responses.push(topic);
        }
        gone.sort_unstable();
        gone.dedup();
        let mut records = Vec::with_capacity(gone.len());
        if let Some(sg) = self.groups.get_mut(group_id).and_then(|g| g.share.as_mut()) {
            for (topic, partition) in &gone {
                sg.partition_states.remove(&(*topic, *partition));
                records.push(OffsetsRecord::share(
                    &ShareKey::PartitionState {
                        group: group_id.to_owned(),
                        topic: *topic,
                        partition: *partition,
                    },
                    None::<&ShareValue>,
                ));
            }
        }
        (response, records, gone)
    }
}

fn unknown_partition(index: i32) -> DescribeShareGroupOffsetsResponsePartition {
    DescribeShareGroupOffsetsResponsePartition::default()
        .with_partition_index(index)
        .with_start_offset(-1)
        .with_leader_epoch(-1)
        .with_lag(-1)
        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
        .with_error_message(msg("This server does not host this topic-partition.".into()))
}

fn alter_partition(
    index: i32,
    code: i16,
    message: &str,
) -> AlterShareGroupOffsetsResponsePartition {
    AlterShareGroupOffsetsResponsePartition::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_error_message(msg(message.to_owned()))
}
