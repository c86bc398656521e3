//! Group coordinator limits and timeouts, each with Kafka's config name and default.

use std::collections::BTreeMap;

/// `offsets.retention.minutes` default (7 days), in milliseconds.
pub const DEFAULT_OFFSETS_RETENTION_MS: i64 = 10_080 * 60 * 1000;

/// Longest `SubscribedTopicNames` list a consumer-protocol member may send (Brook's
/// limit; Kafka has none besides the request size).
pub const MAX_SUBSCRIBED_TOPICS: usize = 10_000;

/// `group.consumer.migration.policy`: which live conversions between the classic and
/// the consumer protocol a non-empty group may go through. Empty groups convert both
/// ways whatever the policy, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Upgrade (classic to consumer) and downgrade (consumer to classic).
    Bidirectional,
    /// Only a classic group upgrades to a consumer group.
    Upgrade,
    /// Only a consumer group downgrades to a classic group.
    Downgrade,
    /// Neither.
    Disabled,
}

impl MigrationPolicy {
    /// Kafka's names, case-insensitive.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "bidirectional" => Ok(MigrationPolicy::Bidirectional),
            "upgrade" => Ok(MigrationPolicy::Upgrade),
            "downgrade" => Ok(MigrationPolicy::Downgrade),
            "disabled" => Ok(MigrationPolicy::Disabled),
            other => Err(format!(
                "expected bidirectional, upgrade, downgrade or disabled, not '{other}'"
            )),
        }
    }

    pub fn upgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade
        )
    }

    pub fn downgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade
        )
    }
}

/// Settings of the group coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an Empty group
    /// waits for more members before completing (extended while members keep arriving,
    /// up to the rebalance timeout).
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`: the smallest session timeout a member may ask for.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: the largest session timeout a member may ask for.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: the most members a group accepts.
    pub max_size: usize,
    /// `offsets.retention.minutes`, in milliseconds: how long committed offsets are kept
    /// once the group is Empty (or, for a Stable consumer group, for topics it no longer
    /// subscribes to; for a group without group management, since the commit).
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are looked for.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: the longest metadata string a commit may carry
    /// (counted in characters, as Kafka does); longer ones get OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
    /// `group.coordinator.new.member.join.timeout.ms` (Kafka's internal constant, 5 min):
    /// how long a brand-new member's parked JoinGroup may wait before it is dropped. A new
    /// member cannot heartbeat, so its session timeout cannot protect the group from it.
    pub new_member_join_timeout_ms: i32,
    /// `group.consumer.session.timeout.ms`: a consumer-protocol member that has not
    /// heartbeated for this long is removed (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often consumer-protocol members
    /// heartbeat (the coordinator tells them in every response).
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`: the most members a consumer group accepts.
    pub consumer_max_size: usize,
    /// `group.consumer.assignors`, as canonical names (`uniform`, `range`); the first is
    /// the default.
    pub consumer_assignors: Vec<String>,
    /// `group.consumer.regex.refresh.interval.ms`: a group's regular expressions are
    /// resolved again after this long even if no topic was created or deleted.
    pub consumer_regex_refresh_interval_ms: i64,
    /// `group.consumer.migration.policy`: live upgrades and downgrades of non-empty
    /// groups between the classic and the consumer protocol.
    pub consumer_migration_policy: MigrationPolicy,
    /// `group.share.session.timeout.ms`: a share group member that has not heartbeated
    /// for this long is removed (KIP-932).
    pub share_session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`: how often share group members heartbeat.
    pub share_heartbeat_interval_ms: i32,
    /// `group.share.max.size`: the most members a share group accepts.
    pub share_max_size: usize,
    /// Groups' own settings (Kafka's GROUP configs), which replace the ones above for
    /// that group. Only groups that set one are here.
    pub group_overrides: BTreeMap<String, GroupOverrides>,
}

/// A group's own timeouts and intervals (`kafka-configs --entity-type groups`): each
/// replaces the broker's setting for this group when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOverrides {
    /// `consumer.session.timeout.ms`
    pub consumer_session_timeout_ms: Option<i32>,
    /// `consumer.heartbeat.interval.ms`
    pub consumer_heartbeat_interval_ms: Option<i32>,
    /// `share.session.timeout.ms`
    pub share_session_timeout_ms: Option<i32>,
    /// `share.heartbeat.interval.ms`
    pub share_heartbeat_interval_ms: Option<i32>,
}

impl GroupOverrides {
    /// Reads the group configs these stand for (names as Kafka's); others are ignored.
    pub fn from_configs<'a>(configs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut o = GroupOverrides::default();
        for (name, value) in configs {
            let slot = match name {
                "consumer.session.timeout.ms" => &mut o.consumer_session_timeout_ms,
                "consumer.heartbeat.interval.ms" => &mut o.consumer_heartbeat_interval_ms,
                "share.session.timeout.ms" => &mut o.share_session_timeout_ms,
                "share.heartbeat.interval.ms" => &mut o.share_heartbeat_interval_ms,
                _ => continue,
            };
            *slot = value.trim().parse().ok().filter(|v| *v > 0);
        }
        o
    }

    pub fn is_empty(&self) -> bool {
        *self == GroupOverrides::default()
    }
}

impl GroupConfig {
    fn overrides(&self, group: &str) -> Option<&GroupOverrides> {
        self.group_overrides.get(group)
    }

    /// The session timeout of `group`'s consumer-protocol members.
    pub fn consumer_session_timeout_ms(&self, group: &str) -> i32 {
        self.overrides(group)
            .and_then(|o| o.consumer_session_timeout_ms)
            .unwrap_or(self.consumer_session_timeout_ms)
    }

    /// The heartbeat interval told to `group`'s consumer-protocol members.
    pub fn consumer_heartbeat_interval_ms(&self, group: &str) -> i32 {
        self.overrides(group)
            .and_then(|o| o.consumer_heartbeat_interval_ms)
            .unwrap_or(self.consumer_heartbeat_interval_ms)
    }

    /// The session timeout of `group`'s share members.
    pub fn share_session_timeout_ms(&self, group: &str) -> i32 {
        self.overrides(group)
            .and_then(|o| o.share_session_timeout_ms)
            .unwrap_or(self.share_session_timeout_ms)
    }

    /// The heartbeat interval told to `group`'s share members.
    pub fn share_heartbeat_interval_ms(&self, group: &str) -> i32 {
        self.overrides(group)
            .and_then(|o| o.share_heartbeat_interval_ms)
            .unwrap_or(self.share_heartbeat_interval_ms)
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: DEFAULT_OFFSETS_RETENTION_MS,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4_096,
            new_member_join_timeout_ms: 300_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: i32::MAX as usize,
            consumer_assignors: vec!["uniform".into(), "range".into()],
            consumer_regex_refresh_interval_ms: 600_000,
            consumer_migration_policy: MigrationPolicy::Bidirectional,
            share_session_timeout_ms: 45_000,
            share_heartbeat_interval_ms: 5_000,
            share_max_size: 200,
            group_overrides: BTreeMap::new(),
        }
    }
}
