//! Broker and topic configuration, by Kafka's names and with Kafka's defaults.
//!
//! Topic-level configs (`retention.ms`, ...) fall back to a broker-level config
//! (`log.retention.ms`, ...), which falls back to Kafka's default. [`TOPIC_CONFIGS`] is
//! the one table that says which names exist, what they default to and how they are
//! validated; DescribeConfigs, CreateTopics and AlterConfigs all read it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use brook_log::{CleanerConfig, LogConfig};
use brook_meta::BrokerConfigs;
use brook_protocol::batch::Compression;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config '{0}'")]
    Unknown(String),
    #[error("invalid value '{value}' for config '{name}': {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

impl From<crate::listeners::InvalidSetting> for ConfigError {
    fn from(e: crate::listeners::InvalidSetting) -> Self {
        let crate::listeners::InvalidSetting {
            name,
            value,
            reason,
        } = e;
        ConfigError::Invalid {
            name,
            value,
            reason,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
}

impl ConfigType {
    /// DescribeConfigs v3+ `config_type` codes.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// One topic-level config Brook knows.
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker-level config that supplies the default.
    pub broker_name: &'static str,
    pub default: &'static str,
    pub kind: ConfigType,
    /// Allowed values for enumerations; empty = any value of `kind`.
    pub allowed: &'static [&'static str],
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

/// The smallest `segment.bytes` a client may set (topic config, dynamic broker config).
pub const MIN_CLIENT_SEGMENT_BYTES: i32 = 1024 * 1024;

macro_rules! def {
    ($name:expr, $broker:expr, $default:expr, $kind:ident, [$($a:expr),*], $doc:expr) => {
        TopicConfigDef { name: $name, broker_name: $broker, default: $default, kind: ConfigType::$kind, allowed: &[$($a),*], doc: $doc }
    };
}

pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!("cleanup.policy", "log.cleanup.policy", "delete", List, ["delete", "compact", "compact,delete", "delete,compact"], "'delete': retention.ms and retention.bytes trim the log; 'compact': the log cleaner keeps each key's last record; 'compact' alone is never trimmed by time or size."),
    def!("compression.type", "compression.type", "producer", String, ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"], "'producer' keeps batches as the producer compressed them; a codec (or 'uncompressed') re-encodes every batch that arrives with another one."),
    def!("compression.gzip.level", "compression.gzip.level", "-1", Int, [], "gzip level (1-9, -1: the codec's default) for batches re-encoded to gzip."),
    def!("compression.lz4.level", "compression.lz4.level", "9", Int, [], "Accepted (1-17) for compatibility; lz4 is written at its one fast level."),
    def!("compression.zstd.level", "compression.zstd.level", "3", Int, [], "zstd level (-131072 to 22) for batches re-encoded to zstd."),
    def!("delete.retention.ms", "log.cleaner.delete.retention.ms", "86400000", Long, [], "How long a tombstone stays in a compacted log after its segment was last written."),
    def!("file.delete.delay.ms", "log.segment.delete.delay.ms", "60000", Long, [], "Delay before a deleted segment's file is removed."),
    def!("flush.messages", "log.flush.interval.messages", LONG_MAX, Long, [], "Fsync after this many messages."),
    def!("flush.ms", "log.flush.interval.ms", LONG_MAX, Long, [], "Fsync after this many milliseconds."),
    def!("index.interval.bytes", "log.index.interval.bytes", "4096", Int, [], "Bytes of log between offset index entries."),
    def!("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", LONG_MAX, Long, [], "A compacted log whose oldest uncleaned record is older than this is cleaned whatever its dirty ratio."),
    def!("max.message.bytes", "message.max.bytes", "1048588", Int, [], "Largest record batch accepted."),
    def!("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", "3600000", Long, [], "How far in the future a batch timestamp may be."),
    def!("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", LONG_MAX, Long, [], "How far in the past a batch timestamp may be."),
    def!("message.timestamp.type", "log.message.timestamp.type", "CreateTime", String, ["CreateTime", "LogAppendTime"], "Which timestamp records carry."),
    def!("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", "0.5", Double, [], "A compacted log is cleaned once its uncleaned part is at least this share of it (0 to 1)."),
    def!("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "0", Long, [], "Records younger than this are not compacted."),
    def!("min.insync.replicas", "min.insync.replicas", "1", Int, [], "Replicas that must acknowledge an acks=all write."),
    def!("preallocate", "log.preallocate", "false", Boolean, [], "Accepted; segments are not preallocated."),
    def!("retention.bytes", "log.retention.bytes", "-1", Long, [], "Delete old segments beyond this partition size (-1: no limit)."),
    def!("retention.ms", "log.retention.ms", "604800000", Long, [], "Delete segments older than this (-1: keep forever)."),
    def!("segment.bytes", "log.segment.bytes", "1073741824", Int, [], "Roll a new segment at this size."),
    def!("segment.index.bytes", "log.index.size.max.bytes", "10485760", Int, [], "Largest offset index per segment."),
    def!("segment.ms", "log.roll.ms", "604800000", Long, [], "Roll a new segment after this long."),
    def!("unclean.leader.election.enable", "unclean.leader.election.enable", "false", Boolean, [], "Never elect an out-of-sync replica."),
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The topic config whose broker-level default is `broker_name` (`log.retention.ms`).
pub fn topic_config_by_broker_name(broker_name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.broker_name == broker_name)
}

/// Checks a value against a config's type, allowed values and minimums.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = topic_config_def(name).ok_or_else(|| ConfigError::Unknown(name.to_string()))?;
    let invalid = |reason: &str| ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    };
    match def.kind {
        ConfigType::Boolean => {
            value
                .parse::<bool>()
                .map_err(|_| invalid("expected true or false"))?;
        }
        ConfigType::Int => {
            let v = value
                .parse::<i32>()
                .map_err(|_| invalid("expected a 32-bit integer"))?;
            let (min, max) = match name {
                // Kafka 4 (KIP-1030): a client may not ask for segments below 1 MiB,
                // each of which holds open files; the operator's static
                // `log.segment.bytes` may go lower (tests).
                "segment.bytes" => (MIN_CLIENT_SEGMENT_BYTES, i32::MAX),
                "segment.index.bytes" => (12, i32::MAX),
                "min.insync.replicas" => (1, i32::MAX),
                "compression.gzip.level" => (-1, 9),
                "compression.lz4.level" => (1, 17),
                "compression.zstd.level" => (-131_072, 22),
                _ => (0, i32::MAX),
            };
            if v < min || v > max {
                return Err(invalid(&if max == i32::MAX {
                    format!("must be at least {min}")
                } else {
                    format!("must be between {min} and {max}")
                }));
            }
            if name == "compression.gzip.level" && v == 0 {
                return Err(invalid("must be -1 or between 1 and 9"));
            }
        }
        ConfigType::Long => {
            let v = value
                .parse::<i64>()
                .map_err(|_| invalid("expected a 64-bit integer"))?;
            let min = if matches!(name, "retention.ms" | "retention.bytes") {
                -1
            } else {
                0
            };
            let min = if matches!(name, "segment.ms" | "max.compaction.lag.ms") {
                1
            } else {
                min
            };
            if v < min {
                return Err(invalid(&format!("must be at least {min}")));
            }
        }
        ConfigType::Double => {
            let v = value
                .parse::<f64>()
                .map_err(|_| invalid("expected a number"))?;
            if name == "min.cleanable.dirty.ratio" && !(0.0..=1.0).contains(&v) {
                return Err(invalid("must be between 0 and 1"));
            }
        }
        ConfigType::String | ConfigType::List => {}
    }
    if !def.allowed.is_empty() && !def.allowed.contains(&value) {
        return Err(invalid(&format!(
            "allowed values are {}",
            def.allowed.join(", ")
        )));
    }
    Ok(())
}

/// The effective configuration of one topic, resolved from overrides and defaults.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    pub log: LogConfig,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub min_insync_replicas: i32,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `compact` is in `cleanup.policy`: every record needs a key.
    pub compacted: bool,
    /// `compression.type` other than `producer`: the codec every batch is stored in.
    pub recompress_to: Option<Compression>,
    /// The level batches are re-encoded at (`compression.<codec>.level`; `None`: the
    /// codec's default).
    pub compression_level: Option<i32>,
    /// The topic's compaction settings (`delete.retention.ms`, compaction lags, dirty
    /// ratio); the broker adds its cleaner's buffer and I/O limits.
    pub cleaner: CleanerConfig,
}

/// Where a config value came from, with DescribeConfigs' source codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicOverride = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// The broker-level configs AlterConfigs may change at run time (the dynamic broker
/// configs of Kafka's that Brook has): every broker-level default of a topic config,
/// and the connection limits. The rest are read once at start.
pub fn is_dynamic_broker_config(name: &str) -> bool {
    const DYNAMIC_SETTINGS: &[&str] = &[
        "max.connections",
        "max.connections.per.ip",
        "max.connection.creation.rate",
    ];
    DYNAMIC_SETTINGS.contains(&name)
        || per_listener_base(name).is_some()
        || TOPIC_CONFIGS.iter().any(|d| d.broker_name == name)
}

/// Whether `name` is a broker-level config Brook knows (static or dynamic).
pub fn is_broker_config(name: &str) -> bool {
    BROKER_CONFIGS.iter().any(|(n, _)| *n == name)
        || per_listener_base(name).is_some()
        || TOPIC_CONFIGS.iter().any(|d| d.broker_name == name)
}

/// `max.connections` for Kafka's per-listener `listener.name.<l>.max.connections` (and
/// `max.connection.creation.rate` alike); `None` for anything else.
pub fn per_listener_base(name: &str) -> Option<&'static str> {
    let (listener, base) = name.strip_prefix("listener.name.")?.split_once('.')?;
    let limits = ["max.connections", "max.connection.creation.rate"];
    (!listener.is_empty()).then(|| limits.into_iter().find(|b| *b == base))?
}

/// The dynamic broker configs as they apply on one broker: its own, then the cluster
/// defaults.
#[derive(Debug, Clone, Copy)]
pub struct Dynamic<'a> {
    configs: &'a BrokerConfigs,
    node_id: i32,
}

static NO_DYNAMIC_CONFIGS: BrokerConfigs = BrokerConfigs {
    defaults: BTreeMap::new(),
    per_broker: BTreeMap::new(),
};

impl<'a> Dynamic<'a> {
    pub fn new(configs: &'a BrokerConfigs, node_id: i32) -> Self {
        Dynamic { configs, node_id }
    }

    /// No dynamic configs (tests, tools).
    pub fn none() -> Dynamic<'static> {
        Dynamic {
            configs: &NO_DYNAMIC_CONFIGS,
            node_id: -1,
        }
    }

    /// The dynamic value of broker config `name` here, with its source.
    pub fn get(&self, name: &str) -> Option<(&'a str, ConfigSource)> {
        self.configs.get(self.node_id, name).map(|(v, own)| {
            let source = if own {
                ConfigSource::DynamicBroker
            } else {
                ConfigSource::DynamicDefaultBroker
            };
            (v, source)
        })
    }

    /// An integer broker setting: its dynamic value here, else `configured`.
    pub fn int(&self, name: &str, configured: i64) -> i64 {
        self.get(name)
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(configured)
    }
}

/// Broker-wide configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// `None` = `--memory`: nothing is written to disk.
    pub data_dir: Option<PathBuf>,
    /// Every config given as `name=value` (config file, `--set`), Kafka names;
    /// `listeners` and the TLS settings too (see `crate::listeners`).
    pub settings: BTreeMap<String, String>,
    /// Where other brokers reach this one (raft, controller and replication traffic);
    /// `None` for a single broker.
    pub controller_listen: Option<SocketAddr>,
    /// `controller.quorum.voters`: every node of the metadata quorum, `id -> host:port`.
    /// Empty for a single broker.
    pub voters: BTreeMap<i32, String>,
}

/// Parses `controller.quorum.voters` (`1@host:port,2@host:port`).
pub fn parse_voters(spec: &str) -> Result<BTreeMap<i32, String>, ConfigError> {
    let bad = |reason: &str| ConfigError::Invalid {
        name: "controller.quorum.voters".into(),
        value: spec.into(),
        reason: reason.into(),
    };
    let mut voters = BTreeMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| bad("expected id@host:port entries"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| bad("node ids are integers"))?;
        if !addr.contains(':') {
            return Err(bad("expected id@host:port entries"));
        }
        if voters.insert(id, addr.trim().to_string()).is_some() {
            return Err(bad("a node id appears twice"));
        }
    }
    Ok(voters)
}

/// Declares the broker-level configs Brook reads besides the topic defaults, with Kafka's
/// names and defaults: the table `set` validates against and DescribeConfigs lists, and
/// the typed [`BrokerSettings`] the broker reads them through (built once at start-up,
/// so a misspelt name is a compile error, not a failed lookup at run time).
macro_rules! broker_settings {
    ($($field:ident: $ty:ty = $name:literal, $default:literal;)*) => {
        pub static BROKER_CONFIGS: &[(&str, &str)] = &[$(($name, $default),)*];

        /// Every broker-level setting, typed, resolved from the config and Kafka's defaults.
        #[derive(Debug, Clone)]
        pub struct BrokerSettings {
            $(#[doc = $name] pub $field: $ty,)*
        }

        /// The type of broker setting `name` (not of a topic default), from its field.
        pub fn broker_setting_kind(name: &str) -> Option<ConfigType> {
            match name {
                $($name => Some(<$ty as SettingKind>::KIND),)*
                _ => None,
            }
        }

        impl BrokerSettings {
            fn resolve(config: &BrokerConfig) -> Self {
                BrokerSettings {
                    $($field: config.broker_value($name).parse().expect("validated when set"),)*
                }
            }
        }
    };
}

impl BrokerSettings {
    /// `broker.rack`, if set.
    pub fn rack(&self) -> Option<String> {
        let rack = self.broker_rack.trim();
        (!rack.is_empty()).then(|| rack.to_string())
    }
}

/// What a broker setting's Rust type is as a Kafka config type.
trait SettingKind {
    const KIND: ConfigType;
}
impl SettingKind for bool {
    const KIND: ConfigType = ConfigType::Boolean;
}
impl SettingKind for i64 {
    const KIND: ConfigType = ConfigType::Long;
}
impl SettingKind for String {
    const KIND: ConfigType = ConfigType::String;
}

broker_settings! {
    admin_authentication: String = "admin.authentication", "none";
    admin_listeners: String = "admin.listeners", "";
    allow_everyone_if_no_acl_found: bool = "allow.everyone.if.no.acl.found", "false";
    authorizer_class_name: String = "authorizer.class.name", "";
    auto_create_topics_enable: bool = "auto.create.topics.enable", "true";
    auto_leader_rebalance_enable: bool = "auto.leader.rebalance.enable", "true";
    broker_heartbeat_interval_ms: i64 = "broker.heartbeat.interval.ms", "2000";
    broker_rack: String = "broker.rack", "";
    broker_session_timeout_ms: i64 = "broker.session.timeout.ms", "9000";
    connections_max_idle_ms: i64 = "connections.max.idle.ms", "600000";
    default_replication_factor: i64 = "default.replication.factor", "1";
    group_consumer_assignors: String = "group.consumer.assignors", "uniform,range";
    group_consumer_heartbeat_interval_ms: i64 = "group.consumer.heartbeat.interval.ms", "5000";
    group_consumer_max_heartbeat_interval_ms: i64 = "group.consumer.max.heartbeat.interval.ms", "15000";
    group_consumer_max_session_timeout_ms: i64 = "group.consumer.max.session.timeout.ms", "60000";
    group_consumer_max_size: i64 = "group.consumer.max.size", "2147483647";
    group_consumer_min_heartbeat_interval_ms: i64 = "group.consumer.min.heartbeat.interval.ms", "5000";
    group_consumer_min_session_timeout_ms: i64 = "group.consumer.min.session.timeout.ms", "45000";
    group_consumer_migration_policy: String = "group.consumer.migration.policy", "bidirectional";
    group_consumer_regex_refresh_interval_ms: i64 = "group.consumer.regex.refresh.interval.ms", "600000";
    group_consumer_session_timeout_ms: i64 = "group.consumer.session.timeout.ms", "45000";
    group_initial_rebalance_delay_ms: i64 = "group.initial.rebalance.delay.ms", "3000";
    group_max_session_timeout_ms: i64 = "group.max.session.timeout.ms", "1800000";
    group_max_size: i64 = "group.max.size", "2147483647";
    group_min_session_timeout_ms: i64 = "group.min.session.timeout.ms", "6000";
    group_share_delivery_count_limit: i64 = "group.share.delivery.count.limit", "5";
    group_share_heartbeat_interval_ms: i64 = "group.share.heartbeat.interval.ms", "5000";
    group_share_max_heartbeat_interval_ms: i64 = "group.share.max.heartbeat.interval.ms", "15000";
    group_share_max_record_lock_duration_ms: i64 = "group.share.max.record.lock.duration.ms", "60000";
    group_share_max_session_timeout_ms: i64 = "group.share.max.session.timeout.ms", "60000";
    group_share_max_share_sessions: i64 = "group.share.max.share.sessions", "2000";
    group_share_max_size: i64 = "group.share.max.size", "200";
    group_share_min_heartbeat_interval_ms: i64 = "group.share.min.heartbeat.interval.ms", "5000";
    group_share_min_record_lock_duration_ms: i64 = "group.share.min.record.lock.duration.ms", "15000";
    group_share_min_session_timeout_ms: i64 = "group.share.min.session.timeout.ms", "45000";
    group_share_partition_max_record_locks: i64 = "group.share.partition.max.record.locks", "2000";
    group_share_record_lock_duration_ms: i64 = "group.share.record.lock.duration.ms", "30000";
    group_share_session_timeout_ms: i64 = "group.share.session.timeout.ms", "45000";
    leader_imbalance_check_interval_seconds: i64 = "leader.imbalance.check.interval.seconds", "300";
    log_cleaner_backoff_ms: i64 = "log.cleaner.backoff.ms", "15000";
    log_cleaner_dedupe_buffer_size: i64 = "log.cleaner.dedupe.buffer.size", "134217728";
    log_cleaner_enable: bool = "log.cleaner.enable", "true";
    log_cleaner_io_max_bytes_per_second: i64 = "log.cleaner.io.max.bytes.per.second", "9223372036854775807";
    log_cleaner_threads: i64 = "log.cleaner.threads", "1";
    log_retention_check_interval_ms: i64 = "log.retention.check.interval.ms", "300000";
    max_connection_creation_rate: i64 = "max.connection.creation.rate", "2147483647";
    max_connections: i64 = "max.connections", "2147483647";
    max_connections_per_ip: i64 = "max.connections.per.ip", "2147483647";
    metrics_partition_labels_enable: bool = "metrics.partition.labels.enable", "true";
    metrics_request_enable: bool = "metrics.request.enable", "true";
    num_partitions: i64 = "num.partitions", "1";
    offset_metadata_max_bytes: i64 = "offset.metadata.max.bytes", "4096";
    offsets_commit_timeout_ms: i64 = "offsets.commit.timeout.ms", "5000";
    offsets_retention_check_interval_ms: i64 = "offsets.retention.check.interval.ms", "600000";
    offsets_retention_minutes: i64 = "offsets.retention.minutes", "10080";
    offsets_topic_num_partitions: i64 = "offsets.topic.num.partitions", "50";
    offsets_topic_replication_factor: i64 = "offsets.topic.replication.factor", "3";
    offsets_topic_segment_bytes: i64 = "offsets.topic.segment.bytes", "104857600";
    queued_max_request_bytes: i64 = "queued.max.request.bytes", "536870912";
    quota_window_num: i64 = "quota.window.num", "11";
    quota_window_size_seconds: i64 = "quota.window.size.seconds", "1";
    replica_lag_time_max_ms: i64 = "replica.lag.time.max.ms", "30000";
    socket_request_max_bytes: i64 = "socket.request.max.bytes", "104857600";
    super_users: String = "super.users", "";
    transaction_abort_timed_out_transaction_cleanup_interval_ms: i64 = "transaction.abort.timed.out.transaction.cleanup.interval.ms", "10000";
    transaction_max_timeout_ms: i64 = "transaction.max.timeout.ms", "900000";
    transaction_state_log_min_isr: i64 = "transaction.state.log.min.isr", "2";
    transaction_state_log_num_partitions: i64 = "transaction.state.log.num.partitions", "50";
    transaction_state_log_replication_factor: i64 = "transaction.state.log.replication.factor", "3";
    transaction_state_log_segment_bytes: i64 = "transaction.state.log.segment.bytes", "104857600";
    transactional_id_expiration_ms: i64 = "transactional.id.expiration.ms", "604800000";
}

/// The smallest value an integer broker setting accepts (Kafka's `atLeast` ranges): a
/// count, size, interval or timeout of 0 would leave the broker unable to work (every
/// auto-create failing with `num.partitions=0`), so it is refused at start.
fn broker_setting_min(name: &str) -> i64 {
    const MAY_BE_ZERO: &[&str] = &[
        "group.initial.rebalance.delay.ms",
        "group.min.session.timeout.ms",
        "max.connection.creation.rate",
        "max.connections",
        "max.connections.per.ip",
        "offset.metadata.max.bytes",
    ];
    if MAY_BE_ZERO.contains(&name) {
        0
    } else if name == "group.share.delivery.count.limit" {
        // Kafka's minimum: one delivery and one redelivery.
        2
    } else {
        1
    }
}

/// Kafka lets `log.retention.hours`/`minutes` and `log.roll.hours` stand in for the `.ms` forms.
const ALIASES: &[(&str, &str, i64)] = &[
    ("log.retention.hours", "log.retention.ms", 3_600_000),
    ("log.retention.minutes", "log.retention.ms", 60_000),
    ("log.roll.hours", "log.roll.ms", 3_600_000),
];

impl BrokerConfig {
    pub fn new(listen: SocketAddr, data_dir: Option<PathBuf>) -> Self {
        BrokerConfig {
            node_id: 1,
            data_dir,
            settings: BTreeMap::from([("listeners".into(), format!("PLAINTEXT://{listen}"))]),
            controller_listen: None,
            voters: BTreeMap::new(),
        }
    }

    /// Sets a broker config by its Kafka name, checking that Brook knows it.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        if let Some((_, target, factor)) = ALIASES.iter().find(|(alias, _, _)| *alias == name) {
            let v: i64 = value.parse().map_err(|_| ConfigError::Invalid {
                name: name.into(),
                value: value.into(),
                reason: "expected an integer".into(),
            })?;
            self.settings.insert(
                (*target).to_string(),
                (v.saturating_mul(*factor)).to_string(),
            );
            return Ok(());
        }
        if crate::listeners::is_listener_setting(name) {
            crate::listeners::validate(name, value)?;
        } else if name == "log.segment.bytes" {
            // Static: the operator's choice, down to Kafka 3's minimum.
            let bytes = value.parse::<i32>().ok().filter(|v| *v >= 14);
            if bytes.is_none() {
                return Err(ConfigError::Invalid {
                    name: name.into(),
                    value: value.into(),
                    reason: "expected an integer of at least 14".into(),
                });
            }
        } else if !crate::sasl::is_sasl_setting(name) {
            // SASL settings are checked when a SASL listener starts (`sasl::SaslServerConfig`).
            validate_broker_config(name, value)?;
        }
        self.settings.insert(name.to_string(), value.to_string());
        Ok(())
    }

    fn broker_value(&self, name: &str) -> &str {
        if let Some(v) = self.settings.get(name) {
            return v;
        }
        BROKER_CONFIGS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .or_else(|| {
                TOPIC_CONFIGS
                    .iter()
                    .find(|d| d.broker_name == name)
                    .map(|d| d.default)
            })
            .expect("every broker config read by Brook is in a table")
    }

    /// The broker-level settings, typed (see [`BrokerSettings`]).
    pub fn broker_settings(&self) -> BrokerSettings {
        BrokerSettings::resolve(self)
    }

    /// The value and source of a topic config given the topic's overrides: the topic's
    /// own, else the dynamic broker config (this broker's, then the cluster default),
    /// else the static broker config, else Kafka's default.
    pub fn topic_value<'a>(
        &'a self,
        overrides: &'a BTreeMap<String, String>,
        dynamic: Dynamic<'a>,
        def: &'static TopicConfigDef,
    ) -> (&'a str, ConfigSource) {
        if let Some(v) = overrides.get(def.name) {
            return (v, ConfigSource::TopicOverride);
        }
        if let Some(found) = dynamic.get(def.broker_name) {
            return found;
        }
        if let Some(v) = self.settings.get(def.broker_name) {
            return (v, ConfigSource::StaticBroker);
        }
        (def.default, ConfigSource::Default)
    }

    /// Resolves a topic's effective configuration.
    pub fn topic_config(
        &self,
        overrides: &BTreeMap<String, String>,
        dynamic: Dynamic<'_>,
    ) -> TopicConfig {
        let get = |name: &str| -> &str {
            self.topic_value(
                overrides,
                dynamic,
                topic_config_def(name).expect("known config"),
            )
            .0
        };
        let int = |name: &str| -> i64 { get(name).parse().unwrap_or(i64::MAX) };
        // A compact-only topic keeps every key's latest record whatever its age or the
        // log's size: retention by time or size applies only with `delete` in the policy.
        let policy = |name: &str| get("cleanup.policy").split(',').any(|p| p.trim() == name);
        let deletes = policy("delete");
        let retention = |name: &str| if deletes { int(name) } else { -1 };
        TopicConfig {
            log: LogConfig {
                segment_bytes: int("segment.bytes") as u64,
                segment_ms: int("segment.ms"),
                retention_ms: retention("retention.ms"),
                retention_bytes: retention("retention.bytes"),
                index_interval_bytes: int("index.interval.bytes") as u32,
                segment_index_bytes: int("segment.index.bytes") as u32,
                flush_interval_messages: int("flush.messages") as u64,
                flush_interval_ms: int("flush.ms"),
                ..LogConfig::default()
            },
            max_message_bytes: int("max.message.bytes") as usize,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            min_insync_replicas: int("min.insync.replicas") as i32,
            timestamp_before_max_ms: int("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: int("message.timestamp.after.max.ms"),
            compacted: policy("compact"),
            recompress_to: match get("compression.type") {
                "uncompressed" => Some(Compression::None),
                "gzip" => Some(Compression::Gzip),
                "snappy" => Some(Compression::Snappy),
                "lz4" => Some(Compression::Lz4),
                "zstd" => Some(Compression::Zstd),
                _ => None,
            },
            cleaner: CleanerConfig {
                delete_retention_ms: int("delete.retention.ms"),
                min_compaction_lag_ms: int("min.compaction.lag.ms"),
                max_compaction_lag_ms: int("max.compaction.lag.ms"),
                min_cleanable_ratio: get("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
                ..CleanerConfig::default()
            },
            compression_level: match get("compression.type") {
                "gzip" => Some(int("compression.gzip.level") as i32).filter(|l| *l > 0),
                "zstd" => Some(int("compression.zstd.level") as i32),
                _ => None,
            },
        }
    }
}

/// Checks a string broker setting's value.
fn validate_string_setting(name: &str, value: &str) -> Result<(), String> {
    match name {
        "admin.listeners" => parse_admin_listener(value).map(|_| ()),
        "admin.authentication" => AdminAuth::parse(value).map(|_| ()),
        "group.consumer.migration.policy" => brook_coord::MigrationPolicy::parse(value).map(|_| ()),
        "authorizer.class.name" => match value.trim() {
            "" | STANDARD_AUTHORIZER => Ok(()),
            _ => Err(format!(
                "the only authorizer Brook has is {STANDARD_AUTHORIZER}"
            )),
        },
        _ => Ok(()),
    }
}

/// `authorizer.class.name` that turns ACLs on (Kafka's KRaft authorizer).
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// Checks a broker-level config's value: a topic default as the topic config it stands
/// for, a broker setting against its type and minimum.
pub fn validate_broker_config(name: &str, value: &str) -> Result<(), ConfigError> {
    if let Some(base) = per_listener_base(name) {
        return validate_broker_config(base, value).map_err(|e| match e {
            ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid {
                name: name.into(),
                value,
                reason,
            },
            other => other,
        });
    }
    if let Some(def) = TOPIC_CONFIGS.iter().find(|d| d.broker_name == name) {
        validate_topic_config(def.name, value).map_err(|e| match e {
            ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid {
                name: name.into(),
                value,
                reason,
            },
            other => other,
        })?;
    } else if BROKER_CONFIGS.iter().any(|(n, _)| *n == name) {
        let invalid = |reason: String| ConfigError::Invalid {
            name: name.into(),
            value: value.into(),
            reason,
        };
        match broker_setting_kind(name) {
            Some(ConfigType::Boolean) => {
                value
                    .parse::<bool>()
                    .map_err(|_| invalid("expected true or false".into()))?;
            }
            Some(ConfigType::String) => {
                validate_string_setting(name, value).map_err(invalid)?;
            }
            _ => {
                let v = value
                    .parse::<i64>()
                    .map_err(|_| invalid("expected an integer".into()))?;
                let min = broker_setting_min(name);
                if v < min {
                    return Err(invalid(format!("must be at least {min}")));
                }
            }
        }
    } else {
        return Err(ConfigError::Unknown(name.to_string()));
    }
    Ok(())
}

mod admin;
mod groups;
#[cfg(test)]
mod tests;

pub use admin::{parse_admin_listener, AdminAuth, AdminListenerSpec};
pub use groups::{group_config_defaults, validate_group_configs, GROUP_CONFIG_NAMES};
