//! Group configs (Kafka's GROUP config resource, KIP-848 and KIP-932): values that replace
//! the broker's `group.consumer.*` and `group.share.*` settings for one group, set with
//! IncrementalAlterConfigs (`kafka-configs --entity-type groups --entity-name G --alter`)
//! and kept in the metadata log.

use std::collections::BTreeMap;

use super::{BrokerSettings, ConfigError};

/// The group configs Brook has, as Kafka 4.4 names them.
pub const GROUP_CONFIG_NAMES: &[&str] = &[
    "consumer.heartbeat.interval.ms",
    "consumer.session.timeout.ms",
    "share.auto.offset.reset",
    "share.heartbeat.interval.ms",
    "share.record.lock.duration.ms",
    "share.session.timeout.ms",
];

/// Each group config's value for a group that has not set it: the broker setting it
/// stands in for (Kafka describes these defaults the same way).
pub fn group_config_defaults(s: &BrokerSettings) -> Vec<(&'static str, String)> {
    vec![
        (
            "consumer.heartbeat.interval.ms",
            s.group_consumer_heartbeat_interval_ms.to_string(),
        ),
        (
            "consumer.session.timeout.ms",
            s.group_consumer_session_timeout_ms.to_string(),
        ),
        ("share.auto.offset.reset", "latest".to_string()),
        (
            "share.heartbeat.interval.ms",
            s.group_share_heartbeat_interval_ms.to_string(),
        ),
        (
            "share.record.lock.duration.ms",
            s.group_share_record_lock_duration_ms.to_string(),
        ),
        (
            "share.session.timeout.ms",
            s.group_share_session_timeout_ms.to_string(),
        ),
    ]
}

/// An integer group config's range: the broker's `min`/`max` settings bounding it, and
/// the least value the config takes at all.
struct Bounds {
    min: (&'static str, i64),
    max: (&'static str, i64),
    floor: i64,
}

fn bounds(s: &BrokerSettings, name: &str) -> Option<Bounds> {
    let b = |min, max, floor| Some(Bounds { min, max, floor });
    match name {
        "consumer.heartbeat.interval.ms" => b(
            (
                "group.consumer.min.heartbeat.interval.ms",
                s.group_consumer_min_heartbeat_interval_ms,
            ),
            (
                "group.consumer.max.heartbeat.interval.ms",
                s.group_consumer_max_heartbeat_interval_ms,
            ),
            1,
        ),
        "consumer.session.timeout.ms" => b(
            (
                "group.consumer.min.session.timeout.ms",
                s.group_consumer_min_session_timeout_ms,
            ),
            (
                "group.consumer.max.session.timeout.ms",
                s.group_consumer_max_session_timeout_ms,
            ),
            1,
        ),
        "share.heartbeat.interval.ms" => b(
            (
                "group.share.min.heartbeat.interval.ms",
                s.group_share_min_heartbeat_interval_ms,
            ),
            (
                "group.share.max.heartbeat.interval.ms",
                s.group_share_max_heartbeat_interval_ms,
            ),
            1,
        ),
        "share.session.timeout.ms" => b(
            (
                "group.share.min.session.timeout.ms",
                s.group_share_min_session_timeout_ms,
            ),
            (
                "group.share.max.session.timeout.ms",
                s.group_share_max_session_timeout_ms,
            ),
            1,
        ),
        "share.record.lock.duration.ms" => b(
            (
                "group.share.min.record.lock.duration.ms",
                s.group_share_min_record_lock_duration_ms,
            ),
            (
                "group.share.max.record.lock.duration.ms",
                s.group_share_max_record_lock_duration_ms,
            ),
            1_000,
        ),
        _ => None,
    }
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Checks a group's own configs as a change would leave them (`merged`: what it had, with
/// the change applied), by Kafka's rules: known names; `share.auto.offset.reset` is
/// `latest` or `earliest` (Kafka's `by_duration:` is not supported); the timeouts and
/// intervals are ints within the broker's `group.*.min.*`/`group.*.max.*` bounds; and a
/// session timeout is longer than its heartbeat interval (the group's own value, else the
/// broker's).
pub fn validate_group_configs(
    s: &BrokerSettings,
    merged: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, value) in merged {
        if !GROUP_CONFIG_NAMES.contains(&name.as_str()) {
            return Err(ConfigError::Unknown(name.clone()));
        }
        if name == "share.auto.offset.reset" {
            if !matches!(value.as_str(), "latest" | "earliest") {
                return Err(invalid(name, value, "expected latest or earliest"));
            }
            continue;
        }
        let bounds = bounds(s, name).expect("every other group config is an int");
        let v: i64 = value
            .trim()
            .parse::<i32>()
            .map_err(|_| invalid(name, value, "expected an int"))?
            .into();
        if v < bounds.floor {
            return Err(invalid(
                name,
                value,
                format!("must be at least {}", bounds.floor),
            ));
        }
        if v < bounds.min.1 {
            return Err(invalid(
                name,
                value,
                format!("must be greater than or equal to {}", bounds.min.0),
            ));
        }
        if v > bounds.max.1 {
            return Err(invalid(
                name,
                value,
                format!("must be less than or equal to {}", bounds.max.0),
            ));
        }
    }
    let defaults = group_config_defaults(s);
    let effective = |name: &str| -> i64 {
        merged
            .get(name)
            .or_else(|| defaults.iter().find(|(n, _)| *n == name).map(|(_, v)| v))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    for kind in ["consumer", "share"] {
        let session = format!("{kind}.session.timeout.ms");
        let interval = format!("{kind}.heartbeat.interval.ms");
        let own = merged.contains_key(&session) || merged.contains_key(&interval);
        if own && effective(&session) <= effective(&interval) {
            let value = effective(&session).to_string();
            return Err(invalid(
                &session,
                &value,
                format!("must be greater than {interval}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn settings() -> BrokerSettings {
        BrokerConfig::new("127.0.0.1:0".parse().unwrap(), None).broker_settings()
    }

    fn check(pairs: &[(&str, &str)]) -> Result<(), ConfigError> {
        let merged = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        validate_group_configs(&settings(), &merged)
    }

    #[test]
    fn kafka_bounds_and_relations_hold() {
        check(&[]).unwrap();
        check(&[("consumer.session.timeout.ms", "50000")]).unwrap();
        check(&[("share.record.lock.duration.ms", "15000")]).unwrap();
        check(&[("share.auto.offset.reset", "earliest")]).unwrap();
        let refused = |pairs: &[(&str, &str)], why: &str| match check(pairs) {
            Err(e) => assert!(e.to_string().contains(why), "{pairs:?}: {e}"),
            Ok(()) => panic!("{pairs:?} accepted"),
        };
        refused(
            &[("consumer.session.timeout.ms", "44999")],
            "group.consumer.min.session.timeout.ms",
        );
        refused(
            &[("consumer.heartbeat.interval.ms", "15001")],
            "group.consumer.max.heartbeat.interval.ms",
        );
        refused(&[("share.record.lock.duration.ms", "999")], "at least 1000");
        refused(&[("share.session.timeout.ms", "lots")], "expected an int");
        refused(&[("share.auto.offset.reset", "none")], "latest or earliest");
        refused(&[("no.such.config", "1")], "no.such.config");
    }

    #[test]
    fn a_session_must_outlast_its_heartbeat_interval() {
        let mut s = settings();
        s.group_consumer_min_session_timeout_ms = 1;
        let merged = BTreeMap::from([
            (
                "consumer.session.timeout.ms".to_string(),
                "5000".to_string(),
            ),
            (
                "consumer.heartbeat.interval.ms".to_string(),
                "5000".to_string(),
            ),
        ]);
        let e = validate_group_configs(&s, &merged).unwrap_err();
        assert!(
            e.to_string().contains("greater than consumer.heartbeat"),
            "{e}"
        );
    }
}
