//! DescribeAcls, CreateAcls and DeleteAcls (Kafka's `AclApis`). Without
//! `authorizer.class.name` Brook answers as a Kafka broker without an authorizer does:
//! SECURITY_DISABLED, for the request and for every ACL or filter in it (tools such as
//! MirrorMaker 2 then just skip ACL syncing). With it, ACLs are records in the metadata
//! log, created and deleted through the controller; the caller's ALTER (create,
//! delete) or DESCRIBE (describe) on the cluster is checked by the router first.

use std::collections::BTreeMap;

use brook_meta::{
    Acl, AclFilter, AclOperation, AclPermission, MetadataImage, PatternType, ResourceType,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::controller_client::ControllerClient;

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

/// Why the whole request is refused before it is looked at: no authorizer
/// (SECURITY_DISABLED) or no permission on the cluster (CLUSTER_AUTHORIZATION_FAILED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoAuthorizer,
    ClusterAuthorization,
}

impl Refusal {
    fn error(self) -> (i16, StrBytes) {
        match self {
            Refusal::NoAuthorizer => (
                ResponseError::SecurityDisabled.code(),
                StrBytes::from_static_str(NO_AUTHORIZER),
            ),
            Refusal::ClusterAuthorization => (
                ResponseError::ClusterAuthorizationFailed.code(),
                StrBytes::from_static_str("Cluster authorization failed."),
            ),
        }
    }
}

pub fn describe(
    image: &MetadataImage,
    refusal: Option<Refusal>,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Some(r) = refusal {
        let (code, message) = r.error();
        return DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(message));
    }
    let filter = AclFilter {
        resource_type: ResourceType::from_code(req.resource_type_filter),
        resource_name: req.resource_name_filter.map(|s| s.to_string()),
        pattern_type: PatternType::from_code(req.pattern_type_filter),
        principal: req.principal_filter.map(|s| s.to_string()),
        host: req.host_filter.map(|s| s.to_string()),
        operation: AclOperation::from_code(req.operation),
        permission: AclPermission::from_code(req.permission_type),
    };
    if let Err(e) = filter.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(e.to_string())));
    }
    let mut resources: BTreeMap<(ResourceType, &str, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for (_, acl) in image.acls.iter().filter(|(_, a)| filter.matches(a)) {
        resources
            .entry((acl.resource_type, &acl.resource_name, acl.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(&acl.principal))
                    .with_host(str_bytes(&acl.host))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    DescribeAclsResponse::default().with_resources(
        resources
            .into_iter()
            .map(|((rt, name, pt), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt.code())
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(pt.code())
                    .with_acls(acls)
            })
            .collect(),
    )
}

pub async fn create(
    controller: &ControllerClient,
    refusal: Option<Refusal>,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let all_failed = |code, message: StrBytes| {
        let results = req
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(message.clone()))
            })
            .collect();
        CreateAclsResponse::default().with_results(results)
    };
    if let Some(r) = refusal {
        let (code, message) = r.error();
        return all_failed(code, message);
    }
    let acls: Vec<Acl> = req
        .creations
        .iter()
        .map(|c| Acl {
            resource_type: ResourceType::from_code(c.resource_type),
            resource_name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type),
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation),
            permission: AclPermission::from_code(c.permission_type),
        })
        .collect();
    match controller.create_acls(acls).await {
        Ok(results) => CreateAclsResponse::default().with_results(
            results
                .into_iter()
                .map(|(code, message)| {
                    AclCreationResult::default()
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                })
                .collect(),
        ),
        Err(e) => all_failed(e.code, str_bytes(e.message)),
    }
}

fn filter_of(f: &DeleteAclsFilter) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(f.resource_type_filter),
        resource_name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
        pattern_type: PatternType::from_code(f.pattern_type_filter),
        principal: f.principal_filter.as_ref().map(|s| s.to_string()),
        host: f.host_filter.as_ref().map(|s| s.to_string()),
        operation: AclOperation::from_code(f.operation),
        permission: AclPermission::from_code(f.permission_type),
    }
}

pub async fn delete(
    controller: &ControllerClient,
    refusal: Option<Refusal>,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let all_failed = |code, message: StrBytes| {
        let results = req
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(message.clone()))
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    };
    if let Some(r) = refusal {
        let (code, message) = r.error();
        return all_failed(code, message);
    }
    let filters = req.filters.iter().map(filter_of).collect();
    match controller.delete_acls(filters).await {
        Ok(results) => DeleteAclsResponse::default().with_filter_results(
            results
                .into_iter()
                .map(|(code, message, acls)| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                        .with_matching_acls(acls.iter().map(matching).collect())
                })
                .collect(),
        ),
        Err(e) => all_failed(e.code, str_bytes(e.message)),
    }
}

fn matching(acl: &Acl) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(str_bytes(&acl.resource_name))
        .with_pattern_type(acl.pattern_type.code())
        .with_principal(str_bytes(&acl.principal))
        .with_host(str_bytes(&acl.host))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}
