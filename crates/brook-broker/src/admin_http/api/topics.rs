//! Topics: list and describe (metadata image, local replicas, DescribeConfigs), and
//! the actions CreateTopics, DeleteTopics, IncrementalAlterConfigs, CreatePartitions
//! and DeleteRecords, each a Kafka request through the router.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use brook_meta::{ResourceType, TopicImage};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use serde::{Deserialize, Serialize};

use super::{
    body, json, kafka, ok, path_param, v, ApiFailure, Kafka, State, Unanswered, KAFKA_TIMEOUT_MS,
    PEER_TIMEOUT,
};
use crate::access::Op;
use crate::admin_http::limits::PeerAddr;
use crate::handlers::{str_bytes, topic_name};
use crate::replicas::{ask_leaders, Replicas};

/// DescribeConfigs' and IncrementalAlterConfigs' resource type for a topic.
const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// Most config changes, records deletions or partitions one action may name.
const MAX_ITEMS_PER_ACTION: usize = 1_000;

/// One replica's offsets and size (`None` in JSON where neither this broker nor the
/// partition's leader gave them).
pub use crate::replicas::ReplicaFigures as Figures;

/// Reads a replica's figures (takes its lock: call on the blocking pool for many).
pub fn figures(replicas: &Replicas, topic: &str, index: i32) -> Option<Figures> {
    replicas.figures(topic, index)
}

/// Figures of every partition named, cluster-wide: this broker's replica where it
/// holds one, else the leader's (each leader asked once, all at once, within
/// `PEER_TIMEOUT`); the brokers that did not answer are the second part.
pub async fn cluster_figures(
    k: &Kafka<'_>,
    wanted: Vec<(String, i32)>,
) -> Result<(Vec<Option<Figures>>, Vec<Unanswered>), ApiFailure> {
    let mut found = figures_of(&k.services.replicas, wanted.clone()).await?;
    let peers = k.services.internal.as_ref().map(|i| &i.peers);
    let Some(peers) = peers else {
        return Ok((found, vec![]));
    };
    let image = k.services.metadata.image();
    let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, ((topic, index), f)) in wanted.iter().zip(&found).enumerate() {
        let leader = image
            .topic(topic)
            .and_then(|t| t.partitions.iter().find(|p| p.index == *index))
            .map_or(-1, |p| p.leader);
        if f.is_none() && leader >= 0 && leader != k.node_id() {
            by_leader.entry(leader).or_default().push(i);
        }
    }
    let asks = by_leader
        .into_iter()
        .map(|(node, at)| {
            let partitions = at.iter().map(|&i| wanted[i].clone()).collect();
            (node, partitions, at)
        })
        .collect();
    let mut unanswered = Vec::new();
    for (node, at, answer) in ask_leaders(peers, asks, PEER_TIMEOUT).await {
        match answer {
            Ok(figures) => {
                for (i, f) in at.into_iter().zip(figures) {
                    found[i] = f;
                }
            }
            Err(message) => unanswered.push(Unanswered {
                broker: node,
                error: "BROKER_UNREACHABLE".into(),
                message,
            }),
        }
    }
    Ok((found, unanswered))
}

/// Figures of every partition named, read on the blocking pool.
pub async fn figures_of(
    replicas: &Arc<Replicas>,
    wanted: Vec<(String, i32)>,
) -> Result<Vec<Option<Figures>>, ApiFailure> {
    let replicas = replicas.clone();
    tokio::task::spawn_blocking(move || {
        wanted
            .iter()
            .map(|(t, p)| figures(&replicas, t, *p))
            .collect()
    })
    .await
    .map_err(|e| ApiFailure::internal(format!("reading partition offsets failed: {e}")))
}

#[derive(Debug, Serialize)]
struct TopicSummary {
    name: String,
    topic_id: String,
    internal: bool,
    partitions: usize,
    replication_factor: i16,
    /// Sum over the partitions this broker holds (all of them on a single broker).
    size_bytes: u64,
    /// High watermark minus log start, summed likewise: records, counting any
    /// transaction markers and compacted gaps.
    messages: i64,
    under_replicated_partitions: usize,
    offline_partitions: usize,
}

pub async fn list(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
) -> Result<Response, ApiFailure> {
    let image = state.metadata.image();
    let k = Kafka::new(&state, peer);
    // As Metadata lists topics: only those the caller may DESCRIBE.
    let mut topics: Vec<&Arc<TopicImage>> = image
        .topics
        .values()
        .filter(|t| k.may(&image, Op::Describe, ResourceType::Topic, &t.name))
        .collect();
    topics.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let wanted = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.index)))
        .collect();
    let (found, errors) = cluster_figures(&k, wanted).await?;
    let mut found = found.into_iter();
    let summaries: Vec<TopicSummary> = topics
        .iter()
        .map(|t| {
            let known: Vec<Figures> = found.by_ref().take(t.partitions.len()).flatten().collect();
            TopicSummary {
                name: t.name.clone(),
                topic_id: t.topic_id.to_string(),
                internal: t.internal,
                partitions: t.partitions.len(),
                replication_factor: t.replication_factor,
                size_bytes: known.iter().map(|f| f.size_bytes).sum(),
                messages: known
                    .iter()
                    .map(|f| (f.high_watermark - f.log_start_offset).max(0))
                    .sum(),
                under_replicated_partitions: t
                    .partitions
                    .iter()
                    .filter(|p| p.isr.len() < p.replicas.len())
                    .count(),
                offline_partitions: t.partitions.iter().filter(|p| p.leader < 0).count(),
            }
        })
        .collect();
    ok(&serde_json::json!({
        "topics": summaries,
        "partial": !errors.is_empty(),
        "errors": errors,
    }))
}

#[derive(Debug, Serialize)]
struct TopicDetail {
    name: String,
    topic_id: String,
    internal: bool,
    replication_factor: i16,
    partitions: Vec<PartitionDetail>,
    configs: Vec<ConfigEntry>,
    /// Whether a leader did not give its figures (named in `errors`).
    partial: bool,
    errors: Vec<Unanswered>,
}

#[derive(Debug, Serialize)]
struct PartitionDetail {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// This broker's replica's, if it holds one, else the leader's.
    #[serde(flatten)]
    figures: Option<Figures>,
}

/// One topic config as DescribeConfigs gives it.
#[derive(Debug, Serialize, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's `ConfigSource` name (`DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`, ...).
    pub source: &'static str,
    /// Kafka's `ConfigEntry.isDefault`: the source is `DEFAULT_CONFIG`.
    pub is_default: bool,
    pub read_only: bool,
    pub sensitive: bool,
}

/// DescribeConfigs' `ConfigSource` codes by name.
pub fn source_name(code: i8) -> &'static str {
    match code {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

pub async fn describe(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiFailure> {
    let name = path_param(name)?;
    let image = state.metadata.image();
    if !Kafka::new(&state, peer.clone()).may(&image, Op::Describe, ResourceType::Topic, &name) {
        return Err(ApiFailure::kafka(
            kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code(),
            None,
        ));
    }
    let topic = image
        .topic(&name)
        .cloned()
        .ok_or_else(|| unknown_topic(&name))?;
    let wanted = topic
        .partitions
        .iter()
        .map(|p| (name.clone(), p.index))
        .collect();
    let k = Kafka::new(&state, peer);
    let (figures, errors) = cluster_figures(&k, wanted).await?;
    let partitions = topic
        .partitions
        .iter()
        .zip(figures)
        .map(|(p, figures)| PartitionDetail {
            partition: p.index,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            figures,
        })
        .collect();
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(name.clone()))
            .with_configuration_keys(None)]);
    let response = kafka!(k, DescribeConfigs, v::DESCRIBE_CONFIGS, request)?;
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| ApiFailure::internal("DescribeConfigs gave no result"))?;
    // A caller who may DESCRIBE the topic but not DESCRIBE_CONFIGS sees no configs.
    let denied = kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code();
    if result.error_code != denied {
        ApiFailure::check(result.error_code, result.error_message.as_deref())?;
    }
    let configs = result
        .configs
        .into_iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            source: source_name(c.config_source),
            is_default: c.config_source == 5,
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .collect();
    ok(&TopicDetail {
        name: topic.name.clone(),
        topic_id: topic.topic_id.to_string(),
        internal: topic.internal,
        replication_factor: topic.replication_factor,
        partitions,
        configs,
        partial: !errors.is_empty(),
        errors,
    })
}

fn unknown_topic(name: &str) -> ApiFailure {
    ApiFailure::kafka(
        kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code(),
        Some(&format!("no topic named '{name}'")),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTopic {
    name: String,
    /// Omitted: the broker's `num.partitions`.
    partitions: Option<i32>,
    /// Omitted: the broker's `default.replication.factor`.
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
    #[serde(default)]
    validate_only: bool,
}

pub async fn create(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFailure> {
    let b: CreateTopic = body(&headers, bytes)?;
    limit("configs", b.configs.len())?;
    let topic = CreatableTopic::default()
        .with_name(topic_name(&b.name))
        .with_num_partitions(b.partitions.unwrap_or(-1))
        .with_replication_factor(b.replication_factor.unwrap_or(-1))
        .with_configs(
            b.configs
                .into_iter()
                .map(|(name, value)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(value)))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(KAFKA_TIMEOUT_MS)
        .with_validate_only(b.validate_only);
    let k = Kafka::new(&state, peer);
    let response = kafka!(k, CreateTopics, v::CREATE_TOPICS, request)?;
    let t = response
        .topics
        .into_iter()
        .next()
        .ok_or_else(|| ApiFailure::internal("CreateTopics gave no result"))?;
    ApiFailure::check(t.error_code, t.error_message.as_deref())?;
    tracing::info!(topic = %b.name, validate_only = b.validate_only, "admin API created a topic");
    let status = if b.validate_only {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(
        status,
        &serde_json::json!({
            "name": b.name,
            "topic_id": t.topic_id.to_string(),
            "partitions": t.num_partitions,
            "replication_factor": t.replication_factor,
            "validate_only": b.validate_only,
        }),
    ))
}

pub async fn delete(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiFailure> {
    let name = path_param(name)?;
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default()
            .with_name(Some(topic_name(&name)))
            .with_topic_id(uuid::Uuid::nil())])
        .with_timeout_ms(KAFKA_TIMEOUT_MS);
    let k = Kafka::new(&state, peer);
    let response = kafka!(k, DeleteTopics, v::DELETE_TOPICS, request)?;
    let r = response
        .responses
        .into_iter()
        .next()
        .ok_or_else(|| ApiFailure::internal("DeleteTopics gave no result"))?;
    ApiFailure::check(r.error_code, r.error_message.as_deref())?;
    tracing::info!(topic = %name, "admin API deleted a topic");
    ok(&serde_json::json!({ "name": name, "deleted": true }))
}

/// IncrementalAlterConfigs on one topic: `set` (SET) and `delete` (DELETE: back to
/// the inherited value).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlterConfigs {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
    #[serde(default)]
    validate_only: bool,
}

pub async fn alter_configs(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFailure> {
    let name = path_param(name)?;
    let b: AlterConfigs = body(&headers, bytes)?;
    limit("configs", b.set.len() + b.delete.len())?;
    let set = b.set.into_iter().map(|(k, val)| {
        AlterableConfig::default()
            .with_name(str_bytes(k))
            .with_config_operation(OP_SET)
            .with_value(Some(str_bytes(val)))
    });
    let deleted = b.delete.into_iter().map(|k| {
        AlterableConfig::default()
            .with_name(str_bytes(k))
            .with_config_operation(OP_DELETE)
            .with_value(None)
    });
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(name.clone()))
            .with_configs(set.chain(deleted).collect())])
        .with_validate_only(b.validate_only);
    let k = Kafka::new(&state, peer);
    let response = kafka!(
        k,
        IncrementalAlterConfigs,
        v::INCREMENTAL_ALTER_CONFIGS,
        request
    )?;
    let r = response
        .responses
        .into_iter()
        .next()
        .ok_or_else(|| ApiFailure::internal("IncrementalAlterConfigs gave no result"))?;
    ApiFailure::check(r.error_code, r.error_message.as_deref())?;
    tracing::info!(topic = %name, "admin API altered topic configs");
    ok(&serde_json::json!({ "name": name, "validate_only": b.validate_only }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPartitions {
    /// The new total number of partitions (CreatePartitions' `count`).
    count: i32,
    #[serde(default)]
    validate_only: bool,
}

pub async fn add_partitions(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFailure> {
    let name = path_param(name)?;
    let b: AddPartitions = body(&headers, bytes)?;
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(&name))
            .with_count(b.count)
            .with_assignments(None)])
        .with_timeout_ms(KAFKA_TIMEOUT_MS)
        .with_validate_only(b.validate_only);
    let k = Kafka::new(&state, peer);
    let response = kafka!(k, CreatePartitions, v::CREATE_PARTITIONS, request)?;
    let r = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| ApiFailure::internal("CreatePartitions gave no result"))?;
    ApiFailure::check(r.error_code, r.error_message.as_deref())?;
    tracing::info!(topic = %name, count = b.count, "admin API added partitions");
    ok(
        &serde_json::json!({ "name": name, "partitions": b.count, "validate_only": b.validate_only }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRecords {
    partitions: Vec<DeleteBefore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBefore {
    partition: i32,
    /// Records before this offset go; -1 means the high watermark (all of them).
    offset: i64,
}

#[derive(Debug, Serialize)]
struct Deleted {
    partition: i32,
    low_watermark: i64,
}

pub async fn delete_records(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFailure> {
    let name = path_param(name)?;
    let b: DeleteRecords = body(&headers, bytes)?;
    limit("partitions", b.partitions.len())?;
    if b.partitions.is_empty() {
        return Err(ApiFailure::invalid("name at least one partition"));
    }
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(&name))
            .with_partitions(
                b.partitions
                    .iter()
                    .map(|p| {
                        DeleteRecordsPartition::default()
                            .with_partition_index(p.partition)
                            .with_offset(p.offset)
                    })
                    .collect(),
            )])
        .with_timeout_ms(KAFKA_TIMEOUT_MS);
    let k = Kafka::new(&state, peer);
    let response = kafka!(k, DeleteRecords, v::DELETE_RECORDS, request)?;
    let results: Vec<_> = response
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .collect();
    // Partitions are independent (as in Kafka): report the first failure, naming it,
    // after the others have been done.
    if let Some(failed) = results.iter().find(|p| p.error_code != 0) {
        let e = super::name_of(failed.error_code);
        return Err(ApiFailure::kafka(
            failed.error_code,
            Some(&format!(
                "partition {}: {} (other partitions, if any, were done)",
                failed.partition_index, e
            )),
        ));
    }
    tracing::info!(topic = %name, "admin API deleted records");
    let deleted: Vec<Deleted> = results
        .iter()
        .map(|p| Deleted {
            partition: p.partition_index,
            low_watermark: p.low_watermark,
        })
        .collect();
    ok(&serde_json::json!({ "name": name, "partitions": deleted }))
}

fn limit(what: &str, n: usize) -> Result<(), ApiFailure> {
    if n > MAX_ITEMS_PER_ACTION {
        return Err(ApiFailure::invalid(format!(
            "at most {MAX_ITEMS_PER_ACTION} {what} per request"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_entries_say_where_their_value_comes_from() {
        assert_eq!(source_name(1), "DYNAMIC_TOPIC_CONFIG");
        assert_eq!(source_name(5), "DEFAULT_CONFIG");
        assert_eq!(source_name(42), "UNKNOWN");
        let e = ConfigEntry {
            name: "retention.ms".into(),
            value: Some("1000".into()),
            source: source_name(1),
            is_default: false,
            read_only: false,
            sensitive: false,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"name": "retention.ms", "value": "1000",
                "source": "DYNAMIC_TOPIC_CONFIG", "is_default": false,
                "read_only": false, "sensitive": false})
        );
    }

    #[test]
    fn a_partition_without_a_local_replica_has_no_offsets() {
        let p = PartitionDetail {
            partition: 0,
            leader: 2,
            leader_epoch: 0,
            replicas: vec![2, 3],
            isr: vec![2],
            figures: None,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert!(v.get("high_watermark").is_none(), "{v}");
        let p = PartitionDetail {
            figures: Some(Figures {
                log_start_offset: 1,
                log_end_offset: 5,
                high_watermark: 4,
                last_stable_offset: 4,
                size_bytes: 99,
            }),
            ..p
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["high_watermark"], 4);
        assert_eq!(v["size_bytes"], 99);
    }

    #[test]
    fn action_bodies_refuse_unknown_fields() {
        let parsed: Result<CreateTopic, _> =
            serde_json::from_str(r#"{"name": "a", "partition": 3}"#);
        assert!(parsed.is_err(), "a misspelt field must not be ignored");
        let parsed: CreateTopic = serde_json::from_str(r#"{"name": "a"}"#).unwrap();
        assert_eq!(parsed.partitions, None);
    }
}
