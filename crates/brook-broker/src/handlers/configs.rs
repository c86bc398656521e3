//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, and
//! DescribeConfigs for the broker (its static configuration).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyAlterResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::config::{BrokerConfig, ConfigSource, BROKER_CONFIGS, TOPIC_CONFIGS};
use crate::controller_client::ControllerClient;
use crate::error::ApiError;
use crate::metadata::MetadataView;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub fn describe(
    meta: &MetadataView,
    config: &BrokerConfig,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            // Null (or, leniently, an empty list) means every config.
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries = match r.resource_type {
                RESOURCE_TOPIC => describe_topic(
                    meta,
                    config,
                    &r.resource_name,
                    req.include_synonyms,
                    req.include_documentation,
                    version,
                ),
                RESOURCE_BROKER => describe_broker(config, &r.resource_name),
                _ => Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "only topic and broker configs can be described",
                )),
            };
            match entries {
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|e| wanted(e.name.as_str()))
                        .collect(),
                ),
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_topic(
    meta: &MetadataView,
    config: &BrokerConfig,
    name: &str,
    synonyms: bool,
    documentation: bool,
    version: i16,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    let topic = meta.image().topic(name).cloned().ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    Ok(TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = config.topic_value(&topic.configs, def);
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(def.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source as i8)
                .with_config_type(def.kind.code());
            if documentation {
                entry = entry.with_documentation(Some(str_bytes(def.doc)));
            }
            if synonyms && version >= 1 {
                let mut list = Vec::new();
                if let Some(v) = topic.configs.get(def.name) {
                    list.push(
                        DescribeConfigsSynonym::default()
                            .with_name(str_bytes(def.name))
                            .with_value(Some(str_bytes(v.clone())))
                            .with_source(ConfigSource::TopicOverride as i8),
                    );
                }
                if let Some(v) = config.settings.get(def.broker_name) {
                    list.push(
                        DescribeConfigsSynonym::default()
                            .with_name(str_bytes(def.broker_name))
                            .with_value(Some(str_bytes(v.clone())))
                            .with_source(ConfigSource::StaticBroker as i8),
                    );
                }
                list.push(
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(def.broker_name))
                        .with_value(Some(str_bytes(def.default)))
                        .with_source(ConfigSource::Default as i8),
                );
                entry = entry.with_synonyms(list);
            }
            entry
        })
        .collect())
}

fn describe_broker(
    config: &BrokerConfig,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    if !name.is_empty() && name != config.node_id.to_string() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unknown broker '{name}'"),
        ));
    }
    let defaults = BROKER_CONFIGS
        .iter()
        .copied()
        .chain(TOPIC_CONFIGS.iter().map(|d| (d.broker_name, d.default)));
    let mut entries: Vec<DescribeConfigsResourceResult> = defaults
        .map(|(key, default)| {
            let (value, source) = match config.settings.get(key) {
                Some(v) => (v.as_str(), ConfigSource::StaticBroker),
                None => (default, ConfigSource::Default),
            };
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(value)))
                .with_read_only(true)
                .with_config_source(source as i8)
        })
        .collect();
    entries.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    entries.dedup_by(|a, b| a.name == b.name);
    Ok(entries)
}

type Overrides = std::collections::BTreeMap<String, String>;
type Changes = Vec<(String, Option<String>)>;

/// Shared by both alter APIs: only topics can be altered; `changes` turns the topic's
/// current overrides into the changes to apply.
async fn alter_topic(
    controller: &ControllerClient,
    meta: &MetadataView,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    changes: impl FnOnce(&Overrides) -> Result<Changes, ApiError>,
) -> Result<(), ApiError> {
    if resource_type != RESOURCE_TOPIC {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "only topic configs can be altered; broker configs are static",
        ));
    }
    let existing = meta
        .image()
        .topic(name)
        .map(|t| t.configs.clone())
        .unwrap_or_default();
    controller
        .alter_topic_configs(name, changes(&existing)?, validate_only)
        .await
}

/// The per-resource error fields of both alter responses.
fn error_fields(outcome: Result<(), ApiError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code, Some(str_bytes(e.message))),
    }
}

/// Legacy AlterConfigs: the given set replaces every override of the topic.
pub async fn alter(
    controller: &ControllerClient,
    meta: &MetadataView,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let outcome = alter_topic(
            controller,
            meta,
            r.resource_type,
            r.resource_name.as_str(),
            req.validate_only,
            |existing| {
                let mut changes: Changes = existing
                    .keys()
                    .filter(|k| !r.configs.iter().any(|c| c.name.as_str() == k.as_str()))
                    .map(|k| (k.clone(), None))
                    .collect();
                changes.extend(
                    r.configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
                );
                Ok(changes)
            },
        )
        .await;
        let (code, message) = error_fields(outcome);
        responses.push(
            LegacyAlterResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Replication throttles (KIP-73), broker- and topic-level. Brook does not throttle
/// replication, so none of these is ever set and deleting one changes nothing;
/// `kafka-reassign-partitions --verify` deletes them all after every reassignment.
const THROTTLE_CONFIGS: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];
const OP_DELETE: i8 = 1;

pub async fn incremental_alter(
    controller: &ControllerClient,
    meta: &MetadataView,
    config: &BrokerConfig,
    mut req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    for r in &mut req.resources {
        r.configs.retain(|c| {
            !(c.config_operation == OP_DELETE && THROTTLE_CONFIGS.contains(&c.name.as_str()))
        });
    }
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        if r.resource_type == RESOURCE_BROKER && r.configs.is_empty() {
            // Only throttle deletions, all no-ops.
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name),
            );
            continue;
        }
        let outcome = alter_topic(
            controller,
            meta,
            r.resource_type,
            r.resource_name.as_str(),
            req.validate_only,
            |existing| {
                r.configs
                    .iter()
                    .map(|c| {
                        incremental_change(
                            config,
                            existing,
                            c.name.as_str(),
                            c.config_operation,
                            c.value.as_deref(),
                        )
                    })
                    .collect()
            },
        )
        .await;
        let (code, message) = error_fields(outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn incremental_change(
    config: &BrokerConfig,
    existing: &Overrides,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(String, Option<String>), ApiError> {
    let def = crate::config::topic_config_def(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::InvalidConfig,
            format!("unknown config '{name}'"),
        )
    })?;
    let current = || -> Vec<String> {
        let (v, _) = config.topic_value(existing, def);
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let list_only = || {
        ApiError::new(
            ResponseError::InvalidConfig,
            format!("'{name}' is not a list config"),
        )
    };
    match op {
        OP_SET => Ok((
            name.to_string(),
            Some(value.unwrap_or_default().to_string()),
        )),
        OP_DELETE => Ok((name.to_string(), None)),
        OP_APPEND | OP_SUBTRACT if def.kind != crate::config::ConfigType::List => Err(list_only()),
        OP_APPEND => {
            let mut items = current();
            for v in value
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
            {
                if !items.iter().any(|i| i == v) {
                    items.push(v.to_string());
                }
            }
            Ok((name.to_string(), Some(items.join(","))))
        }
        OP_SUBTRACT => {
            let remove: Vec<&str> = value.unwrap_or_default().split(',').collect();
            let items: Vec<String> = current()
                .into_iter()
                .filter(|i| !remove.contains(&i.as_str()))
                .collect();
            Ok((name.to_string(), Some(items.join(","))))
        }
        _ => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unknown config operation {op}"),
        )),
    }
}
