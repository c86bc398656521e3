//! CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
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
use crate::config::{BrokerConfig, Dynamic, TOPIC_CONFIGS};
use crate::controller::ControllerRequest;
use crate::controller_client::ControllerClient;
use crate::error::{storage, ApiError};
use crate::metadata::MetadataView;
use crate::mutation_quotas::MutationQuota;
use crate::names::is_internal;
use crate::replicas::Replicas;

/// The versions from which CreateTopics, DeleteTopics and CreatePartitions are refused
/// past a controller mutation quota, rather than served and throttled (KIP-599).
pub const STRICT_MUTATION_QUOTA_SINCE: (i16, i16, i16) = (6, 5, 3);

/// The longest a CreateTopics waits for its topics to show here, whatever its timeout.
const MAX_CREATE_WAIT_MS: i32 = 60_000;

/// CreateTopics. `shows_configs` tells whether the client may see a topic's configs
/// (DESCRIBE_CONFIGS on it): otherwise its result carries neither configs nor
/// partitions and replication factor, and `topic_config_error_code` says why.
pub async fn create(
    controller: &ControllerClient,
    meta: &MetadataView,
    config: &BrokerConfig,
    req: CreateTopicsRequest,
    version: i16,
    quota: MutationQuota,
    shows_configs: impl Fn(&str) -> bool,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let mut throttle_ms = 0;
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.timeout_ms.clamp(0, MAX_CREATE_WAIT_MS) as u64);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let (result, throttle) =
            create_one(controller, t, req.validate_only, &mut seen, &quota).await;
        throttle_ms = throttle_ms.max(throttle);
        results.push(result);
    }
    // A topic of many partitions shows in this broker's image only once they are all
    // open, which may take longer than the controller's settle wait: its id, partitions
    // and configs are answered from the image, so wait for it within the request's
    // timeout (as Kafka's controller answers them once created).
    if !req.validate_only {
        for (name, _) in results.iter().flatten() {
            let shown = |i: &Arc<brook_meta::MetadataImage>| i.topic(name).is_some();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            controller.settle_within(left, shown).await;
        }
    }
    let mut topics = Vec::with_capacity(results.len());
    for result in results {
        topics.push(match result {
            Ok((name, result)) if shows_configs(&name) => {
                describe_created(meta, config, &name, result, version)
            }
            Ok((name, result)) => {
                let id = meta.image().topic(&name).map(|t| t.topic_id);
                result
                    .with_topic_id(id.unwrap_or_default())
                    .with_topic_config_error_code(ResponseError::TopicAuthorizationFailed.code())
            }
            Err(result) => result,
        });
    }
    CreateTopicsResponse::default()
        .with_topics(topics)
        .with_throttle_time_ms(throttle_ms_i32(throttle_ms))
}

fn throttle_ms_i32(ms: u64) -> i32 {
    ms.min(i32::MAX as u64) as i32
}

/// Creates one topic of a CreateTopics request: `Ok` with the name once created (or
/// validated), `Err` with the error result; and how long the client is throttled.
async fn create_one(
    controller: &ControllerClient,
    t: CreatableTopic,
    validate_only: bool,
    seen: &mut HashSet<String>,
    quota: &MutationQuota,
) -> (
    Result<(String, CreatableTopicResult), CreatableTopicResult>,
    u64,
) {
    let name = t.name.0.to_string();
    let result = CreatableTopicResult::default()
        .with_name(t.name.clone())
        .with_error_message(None)
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    let (created, throttle_ms) = match check_creatable(&t, seen) {
        Ok(assignment) => {
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            controller
                .create_topic_charged(ControllerRequest::CreateTopic {
                    name: name.clone(),
                    partitions: t.num_partitions,
                    replication_factor: t.replication_factor,
                    configs,
                    assignment,
                    validate_only,
                    quota: Some(quota.clone()),
                })
                .await
        }
        Err(e) => (Err(e), 0),
    };
    let outcome = match created {
        Ok(()) => Ok((name, result)),
        Err(e) => Err(result
            .with_error_code(e.code)
            .with_error_message(Some(str_bytes(e.message)))),
    };
    (outcome, throttle_ms)
}

/// The checks a topic to create passes before the controller sees it; the replicas
/// the client chose for it.
fn check_creatable(
    t: &CreatableTopic,
    seen: &mut HashSet<String>,
) -> Result<Vec<Vec<i32>>, ApiError> {
    let name = t.name.0.to_string();
    if !seen.insert(name.clone()) {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "duplicate topic name in request",
        ));
    }
    refuse_internal(&name, "Creation")?;
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
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "both numPartitions or replicationFactor and replicasAssignments were set",
        ));
    }
    if assignment
        .iter()
        .enumerate()
        .any(|(i, (p, _))| *p != i as i32)
    {
        return Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            "partitions in the manual assignment must be numbered 0, 1, 2, ...",
        ));
    }
    Ok(assignment.into_iter().map(|(_, r)| r).collect())
}

/// v5+ responses carry the created topic's partitions, replication factor and configs.
fn describe_created(
    meta: &MetadataView,
    config: &BrokerConfig,
    name: &str,
    result: CreatableTopicResult,
    version: i16,
) -> CreatableTopicResult {
    let image = meta.image();
    let Some(topic) = image.topic(name).cloned() else {
        return result; // validate_only
    };
    let dynamic = Dynamic::new(&image.broker_configs, config.node_id);
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
            let (value, source) = config.topic_value(&topic.configs, dynamic, def);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(def.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source as i8)
        })
        .collect();
    result.with_configs(Some(configs))
}

pub async fn delete(
    controller: &ControllerClient,
    meta: &MetadataView,
    req: DeleteTopicsRequest,
    version: i16,
    quota: MutationQuota,
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
    let mut responses = Vec::with_capacity(targets.len());
    let mut throttle_ms = 0;
    for (name, id) in targets {
        let name = name.or_else(|| meta.image().topic_by_id(&id).map(|t| t.name.clone()));
        let result = DeletableTopicResult::default().with_topic_id(id);
        let Some(name) = name else {
            responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
            continue;
        };
        let result = result.with_name(Some(topic_name(&name)));
        if let Err(e) = refuse_internal(&name, "Deletion") {
            responses.push(
                result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(e.message))),
            );
            continue;
        }
        let (deleted, throttle) = controller.delete_topic(&name, Some(quota.clone())).await;
        throttle_ms = throttle_ms.max(throttle);
        responses.push(match deleted {
            Ok(topic_id) => result.with_topic_id(topic_id),
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(str_bytes(e.message))),
        });
    }
    DeleteTopicsResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle_ms_i32(throttle_ms))
}

pub async fn create_partitions(
    controller: &ControllerClient,
    req: CreatePartitionsRequest,
    quota: MutationQuota,
) -> CreatePartitionsResponse {
    let mut throttle_ms = 0;
    let mut named = std::collections::HashMap::new();
    for t in &req.topics {
        *named.entry(t.name.0.clone()).or_insert(0) += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        // Keys map to partitions of an internal topic by their count: changing it
        // would orphan every group's offsets and every transactional id's state.
        let changed = if named[&t.name.0] > 1 {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                "the topic appears more than once in the request",
            ))
        } else {
            match refuse_internal(&t.name.0, "Adding partitions to") {
                Ok(()) => {
                    let assignment = t
                        .assignments
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                        .collect();
                    let (changed, throttle) = controller
                        .create_partitions(
                            &t.name.0,
                            t.count,
                            assignment,
                            req.validate_only,
                            Some(quota.clone()),
                        )
                        .await;
                    throttle_ms = throttle_ms.max(throttle);
                    changed
                }
                Err(e) => Err(e),
            }
        };
        results.push(match changed {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(str_bytes(e.message))),
        });
    }
    CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(throttle_ms_i32(throttle_ms))
}

pub async fn delete_records(
    replicas: &Replicas,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            partitions.push(
                match delete_before(replicas, &t.name.0, p.partition_index, p.offset).await {
                    Ok(low) => result.with_low_watermark(low),
                    Err(e) => result.with_error_code(e.code),
                },
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Internal topics are the broker's own: clients may not create, delete or resize them.
fn refuse_internal(name: &str, what: &str) -> Result<(), ApiError> {
    if is_internal(name) {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("{what} internal topic {name} is prohibited."),
        ));
    }
    Ok(())
}

/// Offset -1 means "up to the high watermark", as in Kafka.
async fn delete_before(
    replicas: &Replicas,
    topic: &str,
    index: i32,
    offset: i64,
) -> Result<i64, ApiError> {
    if is_internal(topic) {
        // As Kafka: the coordinators' state lives in these records.
        return Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!("cannot delete records of internal topic {topic}"),
        ));
    }
    let partition = replicas.get(topic, index).ok_or_else(|| {
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
    // Deleting segment files is disk work: on the blocking pool.
    let deleted = tokio::task::spawn_blocking(move || {
        partition.with_log(|log| log.delete_records_before(offset))
    })
    .await
    .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?;
    deleted.map_err(|e| {
        tracing::error!(error = %e, "delete records failed");
        storage(e)
    })
}
