//! CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
};

use super::{str_bytes, topic_name};
use crate::config::TOPIC_CONFIGS;
use crate::shared::{ApiError, Shared};

pub fn create(
    shared: &Arc<Shared>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen = std::collections::HashSet::new();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if !seen.insert(name.clone()) {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("duplicate topic name in request")));
            }
            let mut assignment: Vec<(i32, Vec<i32>)> = t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            assignment.sort_by_key(|(p, _)| *p);
            if !assignment.is_empty() && (t.num_partitions != -1 || t.replication_factor != -1) {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(
                        "both numPartitions or replicationFactor and replicasAssignments were set",
                    )));
            }
            if assignment
                .iter()
                .enumerate()
                .any(|(i, (p, _))| *p != i as i32)
            {
                return result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(Some(str_bytes(
                        "partitions in the manual assignment must be numbered 0, 1, 2, ...",
                    )));
            }
            let assignment: Vec<Vec<i32>> = assignment.into_iter().map(|(_, r)| r).collect();
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            match crate::shared::block_on(shared.create_topic(
                &name,
                t.num_partitions,
                t.replication_factor,
                configs,
                assignment,
                req.validate_only,
            )) {
                Ok(()) => describe_created(shared, &name, result, version),
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// v5+ responses carry the created topic's partitions, replication factor and configs.
fn describe_created(
    shared: &Shared,
    name: &str,
    result: CreatableTopicResult,
    version: i16,
) -> CreatableTopicResult {
    let Some(topic) = shared.image().topic(name).cloned() else {
        return result; // validate_only
    };
    let result = result
        .with_topic_id(topic.topic_id)
        .with_num_partitions(topic.partitions.len() as i32)
        .with_replication_factor(topic.replication_factor);
    if version < 5 {
        return result;
    }
    let configs = TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = shared.config.topic_value(&topic.configs, def);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(def.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source as i8)
        })
        .collect();
    result.with_configs(Some(configs))
}

pub fn delete(
    shared: &Arc<Shared>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let name =
                name.or_else(|| shared.with_image(|i| i.topic_by_id(&id).map(|t| t.name.clone())));
            let result = DeletableTopicResult::default().with_topic_id(id);
            let Some(name) = name else {
                return result.with_error_code(ResponseError::UnknownTopicId.code());
            };
            let result = result.with_name(Some(topic_name(&name)));
            match crate::shared::block_on(shared.delete_topic(&name)) {
                Ok(topic_id) => result.with_topic_id(topic_id),
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub fn create_partitions(
    shared: &Arc<Shared>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match crate::shared::block_on(shared.create_partitions(
                &t.name.0,
                t.count,
                req.validate_only,
            )) {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub fn delete_records(shared: &Arc<Shared>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    match delete_before(shared, &t.name.0, p.partition_index, p.offset) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(e) => result.with_error_code(e.code),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Offset -1 means "up to the high watermark", as in Kafka.
fn delete_before(shared: &Shared, topic: &str, index: i32, offset: i64) -> Result<i64, ApiError> {
    let partition = shared.partition(topic, index).ok_or_else(|| {
        ApiError::new(ResponseError::UnknownTopicOrPartition, "unknown partition")
    })?;
    let (_, high_watermark) = partition.offsets();
    let offset = if offset == -1 { high_watermark } else { offset };
    if offset < 0 || offset > high_watermark {
        return Err(ApiError::new(
            ResponseError::OffsetOutOfRange,
            "offset beyond the high watermark",
        ));
    }
    tokio::task::block_in_place(|| partition.with_log(|log| log.delete_records_before(offset)))
        .map_err(|e| {
            tracing::error!(error = %e, "delete records failed");
            ApiError::new(ResponseError::KafkaStorageError, e.to_string())
        })
}
