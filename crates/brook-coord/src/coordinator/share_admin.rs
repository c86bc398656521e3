//! ShareGroupDescribe, and the replay of share group records.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;

use super::share::SHARE_PROTOCOL_TYPE;
use super::{GroupCoordinator, Groups};
use crate::consumer::TopicsView;
use crate::group::Group;
use crate::share::records::{ShareKey, ShareValue};
use crate::share::{ShareGroup, ShareMember, ASSIGNOR_NAME};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

impl GroupCoordinator {
    /// Handles ShareGroupDescribe: GROUP_ID_NOT_FOUND for unknown groups and for groups
    /// of another type, as Kafka answers.
    pub fn share_group_describe(
        &self,
        request: &ShareGroupDescribeRequest,
        topics: &dyn TopicsView,
    ) -> ShareGroupDescribeResponse {
        let mut response = ShareGroupDescribeResponse::default();
        for group_id in &request.group_ids {
            let mut described = DescribedGroup::default().with_group_id(group_id.clone());
            match self.groups.get(group_id.as_str()) {
                Some(Group {
                    share: Some(sg), ..
                }) => {
                    described.group_state = StrBytes::from_static_str(sg.state().name());
                    described.group_epoch = sg.group_epoch;
                    described.assignment_epoch = sg.assignment_epoch;
                    described.assignor_name = StrBytes::from_static_str(ASSIGNOR_NAME);
                    described.members = sg
                        .members
                        .values()
                        .map(|m| describe_member(m, topics))
                        .collect();
                }
                found => {
                    let message = match found {
                        None => format!("Group {} not found.", group_id.as_str()),
                        Some(_) => format!("Group {} is not a share group.", group_id.as_str()),
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

fn describe_member(m: &ShareMember, topics: &dyn TopicsView) -> Member {
    let partitions = m
        .assigned
        .iter()
        .map(|(topic, partitions)| {
            TopicPartitions::default()
                .with_topic_id(*topic)
                .with_topic_name(s(&topics.topic_name(topic).unwrap_or_default()).into())
                .with_partitions(partitions.iter().copied().collect())
        })
        .collect();
    Member::default()
        .with_member_id(s(&m.member_id))
        .with_rack_id(m.rack_id.as_deref().map(s))
        .with_member_epoch(m.member_epoch)
        .with_client_id(s(&m.client_id))
        .with_client_host(s(&m.client_host))
        .with_subscribed_topic_names(
            m.subscribed_topic_names
                .iter()
                .map(|n| s(n).into())
                .collect(),
        )
        .with_assignment(Assignment::default().with_topic_partitions(partitions))
}

/// Applies one share group record in log order (last writer wins per key). Records for
/// a group replace a group of another type of that id (keeping its offsets); a
/// tombstone for something unknown changes nothing.
pub(crate) fn replay(
    groups: &mut Groups,
    loaded: &mut BTreeSet<String>,
    key: ShareKey,
    value: Option<ShareValue>,
) {
    if matches!(key, ShareKey::Ignored { .. }) {
        return;
    }
    let group_id = key.group().to_owned();
    let has_share = groups.get(&group_id).is_some_and(|g| g.share.is_some());
    if value.is_none() && !has_share {
        return;
    }
    if !has_share {
        let mut group = Group::new(&group_id, None);
        if let Some(old) = groups.remove(&group_id) {
            group.offsets = old.offsets;
        }
        group.protocol_type = Some(SHARE_PROTOCOL_TYPE.to_owned());
        group.share = Some(Box::default());
        groups.insert(group_id.clone(), group);
    }
    loaded.insert(group_id.clone());
    let group = groups.get_mut(&group_id).expect("present");
    let sg: &mut ShareGroup = group.share.as_mut().expect("share group");
    let member_entry = |sg: &mut ShareGroup, member: &str| -> ShareMember {
        sg.members
            .get(member)
            .cloned()
            .unwrap_or_else(|| ShareMember {
                member_id: member.to_owned(),
                ..ShareMember::default()
            })
    };
    match (key, value) {
        (
            ShareKey::Metadata { .. },
            Some(ShareValue::Metadata {
                epoch,
                metadata_hash,
            }),
        ) => {
            sg.group_epoch = epoch;
            sg.metadata_hash = metadata_hash;
        }
        (ShareKey::Metadata { .. }, None) => {
            group.share = None;
            group.protocol_type = None;
            loaded.remove(&group_id);
            if !group.has_offsets() {
                groups.remove(&group_id);
            }
        }
        (ShareKey::MemberMetadata { member, .. }, Some(ShareValue::MemberMetadata(md))) => {
            let mut m = member_entry(sg, &member);
            m.rack_id = md.rack_id;
            m.client_id = md.client_id;
            m.client_host = md.client_host;
            let mut names = md.subscribed_topic_names;
            names.sort_unstable();
            names.dedup();
            m.subscribed_topic_names = names;
            sg.members.insert(member, m);
        }
        (ShareKey::MemberMetadata { member, .. }, None) => {
            sg.members.remove(&member);
        }
        (ShareKey::TargetMetadata { .. }, value) => {
            sg.assignment_epoch = match value {
                Some(ShareValue::TargetMetadata { assignment_epoch }) => assignment_epoch,
                _ => 0,
            };
        }
        (ShareKey::TargetMember { member, .. }, Some(ShareValue::TargetMember(a))) => {
            sg.target.insert(member, a);
        }
        (ShareKey::TargetMember { member, .. }, None) => {
            sg.target.remove(&member);
        }
        (
            ShareKey::CurrentAssignment { member, .. },
            Some(ShareValue::CurrentAssignment {
                member_epoch,
                previous_member_epoch,
                assigned,
            }),
        ) => {
            let mut m = member_entry(sg, &member);
            m.member_epoch = member_epoch;
            m.previous_member_epoch = previous_member_epoch;
            m.assigned = assigned;
            sg.members.insert(member, m);
        }
        (ShareKey::CurrentAssignment { member, .. }, None) => {
            if let Some(m) = sg.members.get_mut(&member) {
                m.assigned.clear();
            }
        }
        (
            ShareKey::PartitionState {
                topic, partition, ..
            },
            Some(ShareValue::PartitionState(state)),
        ) => {
            sg.partition_states.insert((topic, partition), state);
        }
        (
            ShareKey::PartitionState {
                topic, partition, ..
            },
            None,
        ) => {
            sg.partition_states.remove(&(topic, partition));
        }
        (key, value) => warn!(
            ?key,
            ?value,
            "share group record whose value does not match its key"
        ),
    }
}
