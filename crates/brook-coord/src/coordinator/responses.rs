//! Response shapes that depend on the API version, in one place.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn opt_str_bytes(s: Option<&str>) -> Option<StrBytes> {
    s.map(str_bytes)
}

/// The generation-level facts a successful JoinGroup response carries.
pub(crate) struct JoinedGeneration<'a> {
    pub generation_id: i32,
    pub protocol_type: Option<&'a str>,
    pub protocol_name: Option<&'a str>,
    pub leader: &'a str,
}

pub(crate) fn join_error(version: i16, member_id: &str, error: ResponseError) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = error.code();
    response.member_id = str_bytes(member_id);
    normalize_join(version, response)
}

pub(crate) fn join_success(
    version: i16,
    member_id: &str,
    generation: &JoinedGeneration<'_>,
    members: Vec<JoinGroupResponseMember>,
    skip_assignment: bool,
) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.member_id = str_bytes(member_id);
    response.generation_id = generation.generation_id;
    response.protocol_type = opt_str_bytes(generation.protocol_type);
    response.protocol_name = opt_str_bytes(generation.protocol_name);
    response.leader = str_bytes(generation.leader);
    response.members = members;
    response.skip_assignment = skip_assignment;
    normalize_join(version, response)
}

/// Before v7 the protocol name is not nullable (empty string instead) and the protocol
/// type is absent; from v7 an empty name is sent as null. SkipAssignment exists in v9+.
fn normalize_join(version: i16, mut response: JoinGroupResponse) -> JoinGroupResponse {
    if version < 7 {
        response.protocol_type = None;
        if response.protocol_name.is_none() {
            response.protocol_name = Some(StrBytes::default());
        }
    } else if response.protocol_name.as_deref() == Some("") {
        response.protocol_name = None;
    }
    if version < 9 {
        response.skip_assignment = false;
    }
    if version < 5 {
        for member in &mut response.members {
            member.group_instance_id = None;
        }
    }
    response
}

pub(crate) fn sync_error(error: ResponseError) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.error_code = error.code();
    response
}

pub(crate) fn sync_success(
    version: i16,
    protocol_type: Option<&str>,
    protocol_name: Option<&str>,
    assignment: Bytes,
) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    if version >= 5 {
        response.protocol_type = opt_str_bytes(protocol_type);
        response.protocol_name = opt_str_bytes(protocol_name);
    }
    response.assignment = assignment;
    response
}
