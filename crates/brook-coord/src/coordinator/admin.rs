//! ListGroups, DescribeGroups and DeleteGroups.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::responses::str_bytes;
use super::{heartbeat_key, GroupCoordinator};
use crate::group::{Group, GroupState};
use crate::records::OffsetsRecord;

/// The group types ListGroups v5 reports (KIP-848 names).
const CLASSIC_GROUP_TYPE: &str = "classic";
const CONSUMER_GROUP_TYPE: &str = "consumer";
const SHARE_GROUP_TYPE: &str = "share";
/// DescribeGroups v6+ answers GROUP_ID_NOT_FOUND for a group it cannot describe.
const FIRST_DESCRIBE_VERSION_WITH_NOT_FOUND: i16 = 6;
/// ListGroups v4+ filters by state.
const FIRST_LIST_VERSION_WITH_STATE: i16 = 4;
/// ListGroups v5+ filters by and reports the group type.
const FIRST_LIST_VERSION_WITH_TYPE: i16 = 5;
/// DescribeGroups v4+ reports group.instance.id.
const FIRST_DESCRIBE_VERSION_WITH_INSTANCE_ID: i16 = 4;

impl GroupCoordinator {
    /// Handles ListGroups, with the state filter (v4+, case-insensitive) and the type
    /// filter (v5+: "classic", "consumer" or "share").
    pub fn list_groups(&self, version: i16, request: &ListGroupsRequest) -> ListGroupsResponse {
        let states: Vec<String> = request
            .states_filter
            .iter()
            .map(|s| s.trim().to_lowercase())
            .collect();
        let types_match = |group_type: &str| {
            request.types_filter.is_empty()
                || request
                    .types_filter
                    .iter()
                    .any(|t| t.trim().eq_ignore_ascii_case(group_type))
        };
        let mut response = ListGroupsResponse::default();
        for group in self.groups.values() {
            let (state, group_type) = match (&group.consumer, &group.share) {
                (_, Some(sg)) => (sg.state().name(), SHARE_GROUP_TYPE),
                (Some(cg), None) => (cg.state().name(), CONSUMER_GROUP_TYPE),
                (None, None) => (group.state.name(), CLASSIC_GROUP_TYPE),
            };
            if !types_match(group_type) {
                continue;
            }
            if !states.is_empty() && !states.contains(&state.to_lowercase()) {
                continue;
            }
            let mut listed = ListedGroup::default();
            listed.group_id = str_bytes(&group.id).into();
            listed.protocol_type = str_bytes(group.protocol_type.as_deref().unwrap_or(""));
            if version >= FIRST_LIST_VERSION_WITH_STATE {
                listed.group_state = StrBytes::from_static_str(state);
            }
            if version >= FIRST_LIST_VERSION_WITH_TYPE {
                listed.group_type = StrBytes::from_static_str(group_type);
            }
            response.groups.push(listed);
        }
        response
    }

    /// Handles DescribeGroups. A Stable group shows each member's metadata for the chosen
    /// protocol and its assignment; other states show members without them; an unknown
    /// group is reported as "Dead" without an error, as Kafka does.
    pub fn describe_groups(
        &self,
        version: i16,
        request: &DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let mut response = DescribeGroupsResponse::default();
        for group_id in &request.groups {
            let mut described = DescribedGroup::default();
            described.group_id = group_id.clone();
            match self.groups.get(group_id.as_str()) {
                Some(group) if group.consumer.is_none() && group.share.is_none() => {
                    describe(version, group, &mut described)
                }
                found => {
                    // Unknown, or a consumer or share group (which ConsumerGroupDescribe
                    // and ShareGroupDescribe show).
                    described.group_state = StrBytes::from_static_str(GroupState::Dead.name());
                    if version >= FIRST_DESCRIBE_VERSION_WITH_NOT_FOUND {
                        let id = group_id.as_str();
                        let message = match found {
                            None => format!("Group {id} not found."),
                            Some(_) => format!("Group {id} is not a classic group."),
                        };
                        described.error_code = ResponseError::GroupIdNotFound.code();
                        described.error_message = Some(StrBytes::from_string(message));
                    }
                }
            }
            response.groups.push(described);
        }
        response
    }

    /// Handles DeleteGroups: only Empty groups can go (NON_EMPTY_GROUP otherwise,
    /// GROUP_ID_NOT_FOUND for unknown ones). Returns the tombstones of each deleted
    /// group's offsets and metadata.
    pub fn delete_groups(
        &mut self,
        _version: i16,
        request: &DeleteGroupsRequest,
    ) -> (DeleteGroupsResponse, Vec<OffsetsRecord>) {
        let mut response = DeleteGroupsResponse::default();
        let mut records = Vec::new();
        for group_id in &request.groups_names {
            let consumer_members = self.groups.get(group_id.as_str()).and_then(|g| {
                g.consumer
                    .as_ref()
                    .map(|cg| cg.members.len())
                    .or(g.share.as_ref().map(|sg| sg.members.len()))
            });
            let error = match self.groups.get(group_id.as_str()).map(|g| g.state) {
                None | Some(GroupState::Dead) => Some(ResponseError::GroupIdNotFound),
                Some(_) if consumer_members.is_some_and(|n| n > 0) => {
                    Some(ResponseError::NonEmptyGroup)
                }
                Some(GroupState::Empty) => {
                    let group = self.groups.remove(group_id.as_str()).expect("exists");
                    self.delete(group, &mut records);
                    None
                }
                Some(_) => Some(ResponseError::NonEmptyGroup),
            };
            let mut result = DeletableGroupResult::default();
            result.group_id = group_id.clone();
            result.error_code = error.map_or(0, |e| e.code());
            response.results.push(result);
        }
        (response, records)
    }

    fn delete(&mut self, group: Group, records: &mut Vec<OffsetsRecord>) {
        info!(group = %group.id, "deleting group");
        for (topic, partitions) in &group.offsets {
            for partition in partitions.keys() {
                records.push(OffsetsRecord::offset_commit_tombstone(
                    &group.id, topic, *partition,
                ));
            }
        }
        match (&group.consumer, &group.share) {
            (_, Some(sg)) => records.extend(super::share::group_tombstones(&group.id, sg)),
            (Some(cg), None) => records.extend(super::consumer::group_tombstones(&group.id, cg)),
            (None, None) => records.push(OffsetsRecord::group_metadata_tombstone(&group.id)),
        }
        for member_id in &group.pending_members {
            self.timers.cancel(&heartbeat_key(&group.id, member_id));
        }
        self.loaded.remove(&group.id);
    }
}

fn describe(version: i16, group: &Group, described: &mut DescribedGroup) {
    described.group_state = StrBytes::from_static_str(group.state.name());
    described.protocol_type = str_bytes(group.protocol_type.as_deref().unwrap_or(""));
    let protocol = group
        .protocol_name
        .as_deref()
        .filter(|_| group.is(GroupState::Stable));
    described.protocol_data = str_bytes(protocol.unwrap_or(""));
    described.members = group
        .members
        .values()
        .map(|m| {
            let mut member = DescribedGroupMember::default();
            member.member_id = str_bytes(&m.member_id);
            if version >= FIRST_DESCRIBE_VERSION_WITH_INSTANCE_ID {
                member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
            }
            member.client_id = str_bytes(&m.client_id);
            member.client_host = str_bytes(&m.client_host);
            if let Some(protocol) = protocol {
                member.member_metadata = m.metadata(protocol).cloned().unwrap_or_default();
                member.member_assignment = m.assignment.clone();
            }
            member
        })
        .collect();
}
