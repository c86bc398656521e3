//! Consumer groups (KIP-848) outside the heartbeat: ConsumerGroupDescribe, replay of
//! their records, and what the classic APIs see of them.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;

use super::{GroupCoordinator, Groups};
use crate::consumer::records::{ConsumerKey, ConsumerValue};
use crate::consumer::topic_regex::ResolvedRegex;
use crate::consumer::{Assignment, ConsumerGroup, ConsumerMember, TopicsView};
use crate::group::{Group, CONSUMER_PROTOCOL_TYPE};

/// ConsumerGroupDescribe v1+ reports each member's type (KIP-1099): 1 = consumer
/// protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;
/// ConsumerGroupDescribe v1's MemberType of a classic-protocol member.
const MEMBER_TYPE_CLASSIC: i8 = 0;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

impl GroupCoordinator {
    /// Handles ConsumerGroupDescribe: GROUP_ID_NOT_FOUND for unknown groups and for
    /// classic groups (the admin client then asks DescribeGroups), as Kafka answers.
    pub fn consumer_group_describe(
        &self,
        version: i16,
        request: &ConsumerGroupDescribeRequest,
        topics: &dyn TopicsView,
    ) -> ConsumerGroupDescribeResponse {
        let mut response = ConsumerGroupDescribeResponse::default();
        for group_id in &request.group_ids {
            let mut described = DescribedGroup::default();
            described.group_id = group_id.clone();
            match self.groups.get(group_id.as_str()) {
                Some(Group {
                    consumer: Some(cg), ..
                }) => {
                    described.group_state = StrBytes::from_static_str(cg.state().name());
                    described.group_epoch = cg.group_epoch;
                    described.assignment_epoch = cg.assignment_epoch;
                    described.assignor_name =
                        s(cg.preferred_assignor(&self.config.consumer_assignors));
                    described.members = cg
                        .members
                        .values()
                        .map(|m| describe_member(version, cg, m, topics))
                        .collect();
                }
                found => {
                    let message = match found {
                        None => format!("Group {} not found.", group_id.as_str()),
                        Some(_) => format!("Group {} is not a consumer group.", group_id.as_str()),
                    };
                    described.error_code = ResponseError::GroupIdNotFound.code();
                    described.error_message = Some(StrBytes::from_string(message));
                }
            }
            response.groups.push(described);
        }
        response
    }
}

fn describe_member(
    version: i16,
    cg: &ConsumerGroup,
    m: &ConsumerMember,
    topics: &dyn TopicsView,
) -> Member {
    let mut member = Member::default();
    member.member_id = s(&m.member_id);
    member.instance_id = m.instance_id.as_deref().map(s);
    member.rack_id = m.rack_id.as_deref().map(s);
    member.member_epoch = m.member_epoch;
    member.client_id = s(&m.client_id);
    member.client_host = s(&m.client_host);
    member.subscribed_topic_names = m
        .subscribed_topic_names
        .iter()
        .map(|t| TopicName(s(t)))
        .collect();
    member.subscribed_topic_regex = m.subscribed_topic_regex.as_deref().map(s);
    member.assignment = described_assignment(&m.assigned, topics);
    let empty = Assignment::new();
    member.target_assignment =
        described_assignment(cg.target.get(&m.member_id).unwrap_or(&empty), topics);
    if version >= 1 {
        member.member_type = if m.classic.is_some() {
            MEMBER_TYPE_CLASSIC
        } else {
            MEMBER_TYPE_CONSUMER
        };
    }
    member
}

/// Partitions with their topic names; topics that no longer exist are left out.
fn described_assignment(a: &Assignment, topics: &dyn TopicsView) -> DescribedAssignment {
    let mut described = DescribedAssignment::default();
    described.topic_partitions = a
        .iter()
        .filter_map(|(id, partitions)| {
            let name = topics.topic_name(id)?;
            let mut tp = TopicPartitions::default();
            tp.topic_id = *id;
            tp.topic_name = TopicName(StrBytes::from_string(name));
            tp.partitions = partitions.iter().copied().collect();
            Some(tp)
        })
        .collect();
    described
}

/// Applies one consumer group record in log order (last writer wins per key). Records
/// for a group replace a classic group of that id (keeping its offsets); a tombstone
/// for something unknown changes nothing.
pub(crate) fn replay(
    groups: &mut Groups,
    loaded: &mut BTreeSet<String>,
    key: ConsumerKey,
    value: Option<ConsumerValue>,
) {
    let group_id = key.group().to_owned();
    let has_consumer = groups.get(&group_id).is_some_and(|g| g.consumer.is_some());
    if value.is_none() && !has_consumer {
        return;
    }
    if !has_consumer {
        let mut group = Group::new(&group_id, None);
        if let Some(old) = groups.remove(&group_id) {
            group.offsets = old.offsets;
        }
        group.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_owned());
        group.consumer = Some(Box::new(ConsumerGroup::new(0)));
        groups.insert(group_id.clone(), group);
    }
    loaded.insert(group_id.clone());
    let group = groups.get_mut(&group_id).expect("present");
    let cg = group.consumer.as_mut().expect("consumer group");
    match (key, value) {
        (
            ConsumerKey::Metadata { .. },
            Some(ConsumerValue::Metadata {
                epoch,
                metadata_hash,
                creation_time_ms,
            }),
        ) => {
            cg.group_epoch = epoch;
            cg.metadata_hash = metadata_hash;
            if creation_time_ms >= 0 {
                cg.creation_time_ms = creation_time_ms;
            }
        }
        (ConsumerKey::Metadata { .. }, None) => {
            group.consumer = None;
            group.protocol_type = None;
            loaded.remove(&group_id);
            if !group.has_offsets() {
                groups.remove(&group_id);
            }
        }
        (ConsumerKey::PartitionMetadata { .. }, _) => {}
        (ConsumerKey::MemberMetadata { member, .. }, Some(ConsumerValue::MemberMetadata(md))) => {
            let mut m = cg
                .members
                .get(&member)
                .cloned()
                .unwrap_or_else(|| ConsumerMember::new(&member));
            m.instance_id = md.instance_id;
            m.rack_id = md.rack_id;
            m.client_id = md.client_id;
            m.client_host = md.client_host;
            let mut names = md.subscribed_topic_names;
            names.sort_unstable();
            names.dedup();
            m.subscribed_topic_names = names;
            m.subscribed_topic_regex = md.subscribed_topic_regex;
            m.rebalance_timeout_ms = md.rebalance_timeout_ms;
            m.server_assignor = md.server_assignor;
            m.classic = md.classic;
            cg.upsert_member(m);
        }
        (ConsumerKey::MemberMetadata { member, .. }, None) => {
            let target = cg.target.get(&member).cloned();
            cg.remove_member(&member);
            // The target tombstone comes on its own record.
            if let Some(target) = target {
                cg.target.insert(member, target);
            }
        }
        (ConsumerKey::TargetMetadata { .. }, value) => {
            cg.assignment_epoch = match value {
                Some(ConsumerValue::TargetMetadata { assignment_epoch }) => assignment_epoch,
                _ => 0,
            };
        }
        (ConsumerKey::TargetMember { member, .. }, Some(ConsumerValue::TargetMember(a))) => {
            cg.target.insert(member, a);
        }
        (ConsumerKey::TargetMember { member, .. }, None) => {
            cg.target.remove(&member);
        }
        (
            ConsumerKey::CurrentAssignment { member, .. },
            Some(ConsumerValue::CurrentAssignment(c)),
        ) => {
            let mut m = cg
                .members
                .get(&member)
                .cloned()
                .unwrap_or_else(|| ConsumerMember::new(&member));
            m.member_epoch = c.member_epoch;
            m.previous_member_epoch = c.previous_member_epoch;
            m.state = c.state;
            m.assigned = c.assigned;
            m.pending_revocation = c.pending_revocation;
            cg.upsert_member(m);
        }
        (ConsumerKey::CurrentAssignment { member, .. }, None) => {
            if let Some(mut m) = cg.members.get(&member).cloned() {
                m.assigned.clear();
                m.pending_revocation.clear();
                cg.upsert_member(m);
            }
        }
        (
            ConsumerKey::RegularExpression { regex, .. },
            Some(ConsumerValue::RegularExpression {
                topics,
                version,
                timestamp_ms,
            }),
        ) => {
            cg.regexes.insert(
                regex,
                ResolvedRegex {
                    topics: topics.into_iter().collect(),
                    version,
                    resolved_at_ms: timestamp_ms,
                },
            );
        }
        (ConsumerKey::RegularExpression { regex, .. }, None) => {
            cg.regexes.remove(&regex);
        }
        (key, value) => warn!(
            ?key,
            ?value,
            "consumer group record whose value does not match its key"
        ),
    }
}
