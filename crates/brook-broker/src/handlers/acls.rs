//! DescribeAcls, CreateAcls and DeleteAcls. Brook has no authorizer yet, so it answers
//! as a Kafka broker without `authorizer.class.name` does: SECURITY_DISABLED, for the
//! request and for every ACL or filter in it (tools such as MirrorMaker 2 then just
//! skip ACL syncing).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsResponse,
};

use super::str_bytes;

const WHY: &str = "No authorizer is configured on the broker";

pub fn describe() -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(str_bytes(WHY)))
}

pub fn create(req: CreateAclsRequest) -> CreateAclsResponse {
    let results = req
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(str_bytes(WHY)))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn delete(req: DeleteAclsRequest) -> DeleteAclsResponse {
    let results = req
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(str_bytes(WHY)))
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
