//! The admin APIs' checks on topics and configs (CreateTopics, DeleteTopics,
//! CreatePartitions, DeleteRecords, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs), as Kafka's `KafkaApis` makes them.

use brook_meta::MetadataImage;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{Check, Op};
use brook_meta::AclOperation;

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();

/// Kafka's config resource types (`ConfigResource.Type`).
const CONFIG_TOPIC: i8 = 2;
const CONFIG_GROUP: i8 = 32;

/// CreateTopics: CREATE on the cluster, or on each topic.
pub fn create_topics(c: &Check<'_>, req: &mut CreateTopicsRequest) -> Vec<CreatableTopicResult> {
    if c.cluster(Op::Create) {
        return Vec::new();
    }
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| c.topic(Op::Create, &t.name));
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            CreatableTopicResult::default()
                .with_name(t.name)
                .with_error_code(TOPIC_DENIED)
                .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        })
        .collect()
}

/// DeleteTopics: DELETE on each topic (named, or by id).
pub fn delete_topics(
    c: &Check<'_>,
    image: &MetadataImage,
    req: &mut DeleteTopicsRequest,
) -> Vec<DeletableTopicResult> {
    let mut refused = Vec::new();
    req.topic_names.retain(|name| {
        let ok = c.topic(Op::Delete, name);
        if !ok {
            refused.push(
                DeletableTopicResult::default()
                    .with_name(Some(name.clone()))
                    .with_error_code(TOPIC_DENIED),
            );
        }
        ok
    });
    req.topics.retain(|t| {
        let name = match &t.name {
            Some(n) => Some(n.to_string()),
            None => image.topic_by_id(&t.topic_id).map(|t| t.name.clone()),
        };
        let ok = name.is_none_or(|n| c.topic(Op::Delete, &n));
        if !ok {
            refused.push(
                DeletableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_error_code(TOPIC_DENIED),
            );
        }
        ok
    });
    refused
}

/// CreatePartitions: ALTER on each topic.
pub fn create_partitions(
    c: &Check<'_>,
    req: &mut CreatePartitionsRequest,
) -> Vec<CreatePartitionsTopicResult> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| c.topic(Op::Alter, &t.name));
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(TOPIC_DENIED)
        })
        .collect()
}

/// DeleteRecords: DELETE on each topic.
pub fn delete_records(
    c: &Check<'_>,
    req: &mut DeleteRecordsRequest,
) -> Vec<DeleteRecordsTopicResult> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| c.topic(Op::Delete, &t.name));
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(TOPIC_DENIED)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Whether `op` on a config resource is allowed: a topic's (or group's) on the topic
/// (group), a broker's or broker logger's on the cluster. `Err` is the error code.
fn config_allowed(
    c: &Check<'_>,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Result<(), i16> {
    match resource_type {
        CONFIG_TOPIC if !c.topic(op, name) => Err(TOPIC_DENIED),
        CONFIG_TOPIC => Ok(()),
        CONFIG_GROUP if !c.group(op, name) => Err(ResponseError::GroupAuthorizationFailed.code()),
        CONFIG_GROUP => Ok(()),
        _ if !c.cluster(op) => Err(CLUSTER_DENIED),
        _ => Ok(()),
    }
}

/// Keeps in `items` those `allowed` lets through and returns the answer `refuse` gives
/// each of the others, with its error code.
fn take_refused<T, R>(
    items: &mut Vec<T>,
    allowed: impl Fn(&T) -> Result<(), i16>,
    refuse: impl Fn(&T, i16) -> R,
) -> Vec<R> {
    let mut refused = Vec::new();
    items.retain(|item| match allowed(item) {
        Ok(()) => true,
        Err(code) => {
            refused.push(refuse(item, code));
            false
        }
    });
    refused
}

/// DescribeConfigs: DESCRIBE_CONFIGS on each resource.
pub fn describe_configs(
    c: &Check<'_>,
    req: &mut DescribeConfigsRequest,
) -> Vec<DescribeConfigsResult> {
    take_refused(
        &mut req.resources,
        |r| config_allowed(c, Op::DescribeConfigs, r.resource_type, &r.resource_name),
        |r, code| {
            DescribeConfigsResult::default()
                .with_error_code(code)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        },
    )
}

/// AlterConfigs: ALTER_CONFIGS on each resource.
pub fn alter_configs(
    c: &Check<'_>,
    req: &mut AlterConfigsRequest,
) -> Vec<alter_configs_response::AlterConfigsResourceResponse> {
    take_refused(
        &mut req.resources,
        |r| config_allowed(c, Op::AlterConfigs, r.resource_type, &r.resource_name),
        |r, code| {
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        },
    )
}

/// IncrementalAlterConfigs: ALTER_CONFIGS on each resource.
pub fn incremental_alter_configs(
    c: &Check<'_>,
    req: &mut IncrementalAlterConfigsRequest,
) -> Vec<incremental_alter_configs_response::AlterConfigsResourceResponse> {
    take_refused(
        &mut req.resources,
        |r| config_allowed(c, Op::AlterConfigs, r.resource_type, &r.resource_name),
        |r, code| {
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        },
    )
}
