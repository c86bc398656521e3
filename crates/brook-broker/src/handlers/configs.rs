//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: topic configs, dynamic
//! broker configs (one broker's, or the cluster defaults: Kafka's BROKER resource), log
//! levels (BROKER_LOGGER) and group configs (GROUP: `share.auto.offset.reset`).

use brook_meta::MetadataImage;
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
use crate::config::{
    broker_setting_kind, is_dynamic_broker_config, topic_config_by_broker_name, topic_config_def,
    BrokerConfig, ConfigSource, ConfigType, Dynamic, BROKER_CONFIGS, TOPIC_CONFIGS,
};
use crate::controller_client::ControllerClient;
use crate::error::ApiError;
use crate::log_levels::{
    kafka_name, module_path, parse_level, valid_logger_name, LogLevels, LEVELS, MAX_LOGGER_LEVELS,
    ROOT_LOGGER,
};
use crate::metadata::MetadataView;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_GROUP: i8 = 32;
/// DescribeConfigs' source code for a dynamic group config (Kafka's DYNAMIC_GROUP_CONFIG).
const SOURCE_GROUP: i8 = 8;

/// DescribeConfigs' source code for a logger's level.
const SOURCE_BROKER_LOGGER: i8 = 6;

const OP_SET: i8 = 0;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// What the config handlers use.
pub struct Configs<'a> {
    pub controller: &'a ControllerClient,
    pub meta: &'a MetadataView,
    pub config: &'a BrokerConfig,
    /// The process's loggers, when it lets them be changed (BROKER_LOGGER).
    pub loggers: Option<&'a dyn LogLevels>,
}

pub fn describe(
    cx: &Configs<'_>,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = cx.meta.image();
    let shown = Shown {
        synonyms: req.include_synonyms && version >= 1,
        documentation: req.include_documentation,
    };
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
                RESOURCE_TOPIC => describe_topic(&image, cx.config, &r.resource_name, shown),
                RESOURCE_BROKER => describe_broker(&image, cx.config, &r.resource_name, shown),
                RESOURCE_BROKER_LOGGER => describe_loggers(cx, &r.resource_name),
                RESOURCE_GROUP => Ok(describe_group(&image, cx.config, &r.resource_name)),
                _ => Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "only topic, broker, broker-logger and group configs can be described",
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

/// A group's configs: its own, else the broker settings they stand in for.
fn describe_group(
    image: &MetadataImage,
    config: &BrokerConfig,
    group: &str,
) -> Vec<DescribeConfigsResourceResult> {
    let set = image.group_configs.get(group);
    crate::config::group_config_defaults(&config.broker_settings())
        .into_iter()
        .map(|(name, default)| {
            let value = set.and_then(|c| c.get(name));
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name.to_string()))
                .with_value(Some(str_bytes(value.unwrap_or(&default).clone())))
                .with_config_source(if value.is_some() {
                    SOURCE_GROUP
                } else {
                    ConfigSource::Default as i8
                })
                .with_config_type(if name == "share.auto.offset.reset" {
                    ConfigType::String as i8
                } else {
                    ConfigType::Int as i8
                })
        })
        .collect()
}

/// What a DescribeConfigs request asked to see besides values.
#[derive(Clone, Copy)]
struct Shown {
    synonyms: bool,
    documentation: bool,
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name.to_string()))
        .with_value(Some(str_bytes(value.to_string())))
        .with_source(source as i8)
}

/// Where a broker-level config's value can come from, most specific first: this
/// broker's dynamic config, the cluster's dynamic default, the static config, Kafka's
/// default.
fn broker_synonyms(
    image: &MetadataImage,
    config: &BrokerConfig,
    name: &str,
) -> Vec<DescribeConfigsSynonym> {
    let mut list = Vec::new();
    let dynamic = &image.broker_configs;
    if let Some(v) = dynamic.of(Some(config.node_id)).and_then(|c| c.get(name)) {
        list.push(synonym(name, v, ConfigSource::DynamicBroker));
    }
    if let Some(v) = dynamic.defaults.get(name) {
        list.push(synonym(name, v, ConfigSource::DynamicDefaultBroker));
    }
    if let Some(v) = config.settings.get(name) {
        list.push(synonym(name, v, ConfigSource::StaticBroker));
    }
    if let Some(v) = broker_default(name) {
        list.push(synonym(name, v, ConfigSource::Default));
    }
    list
}

fn describe_topic(
    image: &MetadataImage,
    config: &BrokerConfig,
    name: &str,
    shown: Shown,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    let topic = image.topic(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let dynamic = Dynamic::new(&image.broker_configs, config.node_id);
    Ok(TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = config.topic_value(&topic.configs, dynamic, def);
            let mut entry = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(def.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source as i8)
                .with_config_type(def.kind.code());
            if shown.documentation {
                entry = entry.with_documentation(Some(str_bytes(def.doc)));
            }
            if shown.synonyms {
                let mut list = Vec::new();
                if let Some(v) = topic.configs.get(def.name) {
                    list.push(synonym(def.name, v, ConfigSource::TopicOverride));
                }
                list.extend(broker_synonyms(image, config, def.broker_name));
                entry = entry.with_synonyms(list);
            }
            entry
        })
        .collect())
}

/// Kafka's default of broker-level config `name`, if Brook knows it.
fn broker_default(name: &str) -> Option<&'static str> {
    BROKER_CONFIGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .or_else(|| topic_config_by_broker_name(name).map(|d| d.default))
}

/// The broker configs of broker `name` (this broker's id: every config, read-only
/// unless dynamic), or with an empty name the cluster-wide dynamic defaults, as Kafka
/// answers `kafka-configs --describe --entity-type brokers [--entity-default]`.
fn describe_broker(
    image: &MetadataImage,
    config: &BrokerConfig,
    name: &str,
    shown: Shown,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    let entry = |key: &str, value: &str, source: ConfigSource| {
        let def = topic_config_by_broker_name(key);
        let kind = def.map_or_else(
            || broker_setting_kind(key).unwrap_or(ConfigType::Long),
            |d| d.kind,
        );
        let mut e = DescribeConfigsResourceResult::default()
            .with_name(str_bytes(key.to_string()))
            .with_value(Some(str_bytes(value.to_string())))
            .with_read_only(!is_dynamic_broker_config(key))
            .with_config_source(source as i8)
            .with_config_type(kind.code());
        if shown.documentation {
            e = e.with_documentation(def.map(|d| str_bytes(d.doc)));
        }
        if shown.synonyms {
            e = e.with_synonyms(broker_synonyms(image, config, key));
        }
        e
    };
    if name.is_empty() {
        return Ok(image
            .broker_configs
            .defaults
            .iter()
            .map(|(k, v)| entry(k, v, ConfigSource::DynamicDefaultBroker))
            .collect());
    }
    if name != config.node_id.to_string() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "broker {} cannot describe broker '{name}': send the request to that broker",
                config.node_id
            ),
        ));
    }
    let dynamic = Dynamic::new(&image.broker_configs, config.node_id);
    let mut names: Vec<&str> = BROKER_CONFIGS
        .iter()
        .map(|(n, _)| *n)
        .chain(TOPIC_CONFIGS.iter().map(|d| d.broker_name))
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|key| {
            let (value, source) =
                dynamic
                    .get(key)
                    .unwrap_or_else(|| match config.settings.get(key) {
                        Some(v) => (v.as_str(), ConfigSource::StaticBroker),
                        None => (
                            broker_default(key).unwrap_or_default(),
                            ConfigSource::Default,
                        ),
                    });
            entry(key, value, source)
        })
        .collect())
}

/// The loggers of this broker and their levels (Kafka's BROKER_LOGGER resource).
fn describe_loggers(
    cx: &Configs<'_>,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, ApiError> {
    let loggers = this_brokers_loggers(cx, name)?;
    Ok(loggers
        .levels()
        .into_iter()
        .map(|(logger, level)| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(kafka_name(&logger)))
                .with_value(Some(str_bytes(level)))
                .with_config_source(SOURCE_BROKER_LOGGER)
                .with_config_type(ConfigType::String.code())
        })
        .collect())
}

fn this_brokers_loggers<'a>(cx: &Configs<'a>, name: &str) -> Result<&'a dyn LogLevels, ApiError> {
    if name != cx.config.node_id.to_string() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "broker {} cannot change the loggers of broker '{name}'",
                cx.config.node_id
            ),
        ));
    }
    cx.loggers.ok_or_else(|| {
        ApiError::new(
            ResponseError::InvalidRequest,
            "this broker's log levels cannot be changed at run time",
        )
    })
}

type Overrides = std::collections::BTreeMap<String, String>;
type Changes = Vec<(String, Option<String>)>;

/// What an alter request changes.
enum Target {
    Topic(String),
    /// One broker's dynamic configs, or (`None`) the cluster defaults.
    Broker(Option<i32>),
    Group(String),
}

fn target(resource_type: i8, name: &str) -> Result<Target, ApiError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(Target::Topic(name.to_string())),
        RESOURCE_GROUP if !name.is_empty() => Ok(Target::Group(name.to_string())),
        RESOURCE_BROKER if name.is_empty() => Ok(Target::Broker(None)),
        RESOURCE_BROKER => name
            .parse::<i32>()
            .ok()
            .filter(|id| *id >= 0)
            .map(|id| Target::Broker(Some(id)))
            .ok_or_else(|| {
                ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("'{name}' is not a broker id"),
                )
            }),
        _ => Err(ApiError::new(
            ResponseError::InvalidRequest,
            "only topic, broker, broker-logger and group configs can be altered",
        )),
    }
}

/// The dynamic configs `target` has now (a topic's overrides; a broker's dynamic
/// configs).
fn current(meta: &MetadataView, target: &Target) -> Overrides {
    let image = meta.image();
    match target {
        Target::Topic(name) => image.topic(name).map(|t| t.configs.clone()),
        Target::Broker(id) => image.broker_configs.of(*id).cloned(),
        Target::Group(group) => image.group_configs.get(group).cloned(),
    }
    .unwrap_or_default()
}

/// Shared by both alter APIs: `changes` turns the target's current dynamic configs
/// into the changes to apply.
async fn alter_target(
    cx: &Configs<'_>,
    target: Target,
    validate_only: bool,
    changes: impl FnOnce(&Overrides) -> Result<Changes, ApiError>,
) -> Result<(), ApiError> {
    let changes = changes(&current(cx.meta, &target))?;
    match target {
        Target::Topic(name) => {
            cx.controller
                .alter_topic_configs(&name, changes, validate_only)
                .await
        }
        Target::Broker(id) => {
            cx.controller
                .alter_broker_configs(id, changes, validate_only)
                .await
        }
        Target::Group(group) => {
            cx.controller
                .alter_group_configs(&group, changes, validate_only)
                .await
        }
    }
}

/// Kafka refuses a resource named twice in one request, and a config named twice for
/// one resource (INVALID_REQUEST): which change should win is not defined.
fn duplicates<'a>(
    resources: impl Iterator<Item = (i8, &'a str, Vec<&'a str>)>,
) -> Vec<Option<ApiError>> {
    let resources: Vec<_> = resources.collect();
    let mut seen = std::collections::HashMap::new();
    for (t, n, _) in &resources {
        *seen.entry((*t, *n)).or_insert(0) += 1;
    }
    resources
        .iter()
        .map(|(t, n, configs)| {
            if seen[&(*t, *n)] > 1 {
                return Some(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("resource '{n}' appears more than once in the request"),
                ));
            }
            let mut names = std::collections::HashSet::new();
            configs.iter().find(|c| !names.insert(**c)).map(|c| {
                ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("config '{c}' appears more than once for '{n}'"),
                )
            })
        })
        .collect()
}

/// The per-resource error fields of both alter responses.
fn error_fields(outcome: Result<(), ApiError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code, Some(str_bytes(e.message))),
    }
}

/// Legacy AlterConfigs: the given set replaces every dynamic config of the resource.
pub async fn alter(cx: &Configs<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let refused = duplicates(req.resources.iter().map(|r| {
        let configs = r.configs.iter().map(|c| c.name.as_str()).collect();
        (r.resource_type, r.resource_name.as_str(), configs)
    }));
    let mut responses = Vec::with_capacity(req.resources.len());
    for (r, refused) in req.resources.into_iter().zip(refused) {
        let target = match refused {
            Some(e) => Err(e),
            None => target(r.resource_type, r.resource_name.as_str()),
        };
        let outcome =
            match target {
                Ok(target) => {
                    alter_target(cx, target, req.validate_only, |existing| {
                        let mut changes: Changes = existing
                            .keys()
                            .filter(|k| !r.configs.iter().any(|c| c.name.as_str() == k.as_str()))
                            .map(|k| (k.clone(), None))
                            .collect();
                        changes.extend(r.configs.iter().map(|c| {
                            (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))
                        }));
                        Ok(changes)
                    })
                    .await
                }
                Err(e) => Err(e),
            };
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
    cx: &Configs<'_>,
    mut req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    for r in &mut req.resources {
        r.configs.retain(|c| {
            !(c.config_operation == OP_DELETE && THROTTLE_CONFIGS.contains(&c.name.as_str()))
        });
    }
    let image = cx.meta.image();
    let dynamic = Dynamic::new(&image.broker_configs, cx.config.node_id);
    let refused = duplicates(req.resources.iter().map(|r| {
        let configs = r.configs.iter().map(|c| c.name.as_str()).collect();
        (r.resource_type, r.resource_name.as_str(), configs)
    }));
    let mut responses = Vec::with_capacity(req.resources.len());
    for (r, refused) in req.resources.into_iter().zip(refused) {
        if let Some(e) = refused {
            let (code, message) = error_fields(Err(e));
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message),
            );
            continue;
        }
        let ops: Vec<(&str, i8, Option<&str>)> = r
            .configs
            .iter()
            .map(|c| (c.name.as_str(), c.config_operation, c.value.as_deref()))
            .collect();
        let outcome = if r.resource_type == RESOURCE_BROKER_LOGGER {
            alter_loggers(cx, r.resource_name.as_str(), &ops, req.validate_only)
        } else if r.resource_type == RESOURCE_BROKER && ops.is_empty() {
            Ok(()) // only throttle deletions, all no-ops
        } else {
            match target(r.resource_type, r.resource_name.as_str()) {
                Ok(target) => {
                    let is_topic = matches!(target, Target::Topic(_));
                    let is_group = matches!(target, Target::Group(_));
                    alter_target(cx, target, req.validate_only, |existing| {
                        ops.iter()
                            .map(|&(name, op, value)| {
                                if is_topic {
                                    topic_change(cx.config, dynamic, existing, name, op, value)
                                } else if is_group {
                                    group_change(name, op, value)
                                } else {
                                    broker_change(cx.config, existing, name, op, value)
                                }
                            })
                            .collect()
                    })
                    .await
                }
                Err(e) => Err(e),
            }
        };
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

/// One IncrementalAlterConfigs operation on a group config: SET or DELETE (the
/// controller checks names and values).
fn group_change(
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(String, Option<String>), ApiError> {
    match op {
        OP_SET => Ok((
            name.to_string(),
            Some(value.unwrap_or_default().to_string()),
        )),
        OP_DELETE => Ok((name.to_string(), None)),
        _ => Err(ApiError::new(
            ResponseError::InvalidRequest,
            "group configs take only SET and DELETE",
        )),
    }
}

/// IncrementalAlterConfigs on BROKER_LOGGER: SET a level or DELETE (follow the root
/// logger again); checked in full before any logger changes. Not persisted, as in Kafka.
fn alter_loggers(
    cx: &Configs<'_>,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> Result<(), ApiError> {
    let loggers = this_brokers_loggers(cx, name)?;
    let invalid = |message: String| ApiError::new(ResponseError::InvalidConfig, message);
    if ops.len() > MAX_LOGGER_LEVELS {
        return Err(invalid(format!(
            "at most {MAX_LOGGER_LEVELS} loggers can be changed at once"
        )));
    }
    let mut changes = Vec::with_capacity(ops.len());
    for &(name, op, value) in ops {
        let logger = module_path(name);
        if !valid_logger_name(&logger) {
            return Err(invalid(format!("'{name}' is not a logger name")));
        }
        let level = match op {
            OP_SET => Some(parse_level(value.unwrap_or_default()).ok_or_else(|| {
                invalid(format!(
                    "'{}' is not a log level (one of {})",
                    value.unwrap_or_default(),
                    LEVELS.join(", ")
                ))
            })?),
            OP_DELETE if logger == ROOT_LOGGER => {
                return Err(invalid("the root logger's level cannot be removed".into()))
            }
            OP_DELETE => None,
            _ => {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "loggers take only SET and DELETE",
                ))
            }
        };
        changes.push((logger, level));
    }
    if validate_only {
        return Ok(());
    }
    loggers.set(&changes).map_err(invalid)?;
    for (logger, level) in &changes {
        tracing::info!(
            logger,
            level = level.unwrap_or("(root)"),
            "log level changed"
        );
    }
    Ok(())
}

fn topic_change(
    config: &BrokerConfig,
    dynamic: Dynamic<'_>,
    existing: &Overrides,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(String, Option<String>), ApiError> {
    let def = topic_config_def(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::InvalidConfig,
            format!("unknown config '{name}'"),
        )
    })?;
    incremental_change(name, op, value, def.kind == ConfigType::List, || {
        config.topic_value(existing, dynamic, def).0.to_string()
    })
}

/// A broker config's change; unknown and static names are refused by the controller.
fn broker_change(
    config: &BrokerConfig,
    existing: &Overrides,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(String, Option<String>), ApiError> {
    let is_list = topic_config_by_broker_name(name).is_some_and(|d| d.kind == ConfigType::List);
    incremental_change(name, op, value, is_list, || {
        existing
            .get(name)
            .or_else(|| config.settings.get(name))
            .map(String::as_str)
            .or_else(|| broker_default(name))
            .unwrap_or_default()
            .to_string()
    })
}

/// One IncrementalAlterConfigs operation as the new value (`None`: removed).
/// `current` is the value in effect, which APPEND and SUBTRACT edit.
fn incremental_change(
    name: &str,
    op: i8,
    value: Option<&str>,
    is_list: bool,
    current: impl FnOnce() -> String,
) -> Result<(String, Option<String>), ApiError> {
    let items = |list: &str| -> Vec<String> {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    match op {
        OP_SET => Ok((
            name.to_string(),
            Some(value.unwrap_or_default().to_string()),
        )),
        OP_DELETE => Ok((name.to_string(), None)),
        OP_APPEND | OP_SUBTRACT if !is_list => Err(ApiError::new(
            ResponseError::InvalidConfig,
            format!("'{name}' is not a list config"),
        )),
        OP_APPEND => {
            let mut list = items(&current());
            for v in items(value.unwrap_or_default()) {
                if !list.contains(&v) {
                    list.push(v);
                }
            }
            Ok((name.to_string(), Some(list.join(","))))
        }
        OP_SUBTRACT => {
            let remove = items(value.unwrap_or_default());
            let list: Vec<String> = items(&current())
                .into_iter()
                .filter(|i| !remove.contains(i))
                .collect();
            Ok((name.to_string(), Some(list.join(","))))
        }
        _ => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("unknown config operation {op}"),
        )),
    }
}
