use super::*;

#[test]
fn broker_settings_that_would_leave_the_broker_unable_to_work_are_refused() {
    let mut c = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    assert!(c.set("num.partitions", "0").is_err());
    assert!(c.set("num.partitions", "-5").is_err());
    assert!(c.set("num.partitions", "3").is_ok());
    assert!(c.set("max.connections", "0").is_ok());
    assert!(c.set("auto.create.topics.enable", "maybe").is_err());
}

#[test]
fn a_compact_only_topic_is_never_trimmed_by_time_or_size() {
    let c = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    let with = |policy: &str| {
        let o = BTreeMap::from([
            ("cleanup.policy".to_string(), policy.to_string()),
            ("retention.ms".to_string(), "1000".to_string()),
            ("retention.bytes".to_string(), "10".to_string()),
        ]);
        let t = c.topic_config(&o, Dynamic::none());
        (t.log.retention_ms, t.log.retention_bytes)
    };
    assert_eq!(with("compact"), (-1, -1));
    assert_eq!(with("compact,delete"), (1000, 10));
    assert_eq!(with("delete"), (1000, 10));
}

#[test]
fn topic_overrides_beat_broker_settings_beat_defaults() {
    let mut c = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    c.set("log.retention.hours", "1").unwrap();
    c.set("log.segment.bytes", "1000").unwrap();
    let mut o = BTreeMap::new();
    o.insert("segment.bytes".to_string(), "500".to_string());
    let t = c.topic_config(&o, Dynamic::none());
    assert_eq!(t.log.retention_ms, 3_600_000);
    assert_eq!(t.log.segment_bytes, 500);
    assert_eq!(t.max_message_bytes, 1_048_588);
    let def = topic_config_def("retention.ms").unwrap();
    assert_eq!(
        c.topic_value(&o, Dynamic::none(), def),
        ("3600000", ConfigSource::StaticBroker)
    );
}

#[test]
fn dynamic_broker_configs_sit_between_topic_overrides_and_static_settings() {
    let mut c = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    c.set("log.retention.ms", "1000").unwrap();
    let mut dynamic = BrokerConfigs::default();
    dynamic
        .defaults
        .insert("log.retention.ms".into(), "2000".into());
    dynamic
        .defaults
        .insert("log.segment.bytes".into(), "4096".into());
    let retention = topic_config_def("retention.ms").unwrap();
    let none = BTreeMap::new();
    let here = Dynamic::new(&dynamic, 1);
    assert_eq!(
        c.topic_value(&none, here, retention),
        ("2000", ConfigSource::DynamicDefaultBroker)
    );
    dynamic.per_broker.insert(
        1,
        BTreeMap::from([("log.retention.ms".into(), "3000".into())]),
    );
    let here = Dynamic::new(&dynamic, 1);
    assert_eq!(
        c.topic_value(&none, here, retention),
        ("3000", ConfigSource::DynamicBroker)
    );
    // Another broker's own setting does not apply here.
    let elsewhere = Dynamic::new(&dynamic, 2);
    assert_eq!(
        c.topic_value(&none, elsewhere, retention),
        ("2000", ConfigSource::DynamicDefaultBroker)
    );
    let overrides = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
    assert_eq!(
        c.topic_value(&overrides, here, retention),
        ("5", ConfigSource::TopicOverride)
    );
    let t = c.topic_config(&none, here);
    assert_eq!((t.log.retention_ms, t.log.segment_bytes), (3000, 4096));
    assert_eq!(here.int("max.connections", 7), 7);
    assert!(is_dynamic_broker_config("log.retention.ms"));
    assert!(is_dynamic_broker_config("max.connections"));
    assert!(is_dynamic_broker_config(
        "listener.name.external.max.connections"
    ));
    assert!(is_dynamic_broker_config(
        "listener.name.ssl.max.connection.creation.rate"
    ));
    assert!(!is_dynamic_broker_config("listener.name..max.connections"));
    assert!(!is_dynamic_broker_config(
        "listener.name.x.max.connections.per.ip"
    ));
    assert!(validate_broker_config("listener.name.x.max.connections", "-1").is_err());
    assert!(!is_dynamic_broker_config("auto.create.topics.enable"));
    let policy = "group.consumer.migration.policy";
    for ok in ["bidirectional", "Upgrade", "DOWNGRADE", "disabled"] {
        assert!(validate_broker_config(policy, ok).is_ok(), "{ok}");
    }
    assert!(validate_broker_config(policy, "sideways").is_err());
}

#[test]
fn validation() {
    let cases = [
        ("retention.ms", "-1", true),
        ("retention.ms", "abc", false),
        ("segment.bytes", "10", false),
        ("message.timestamp.type", "LogAppendTime", true),
        ("message.timestamp.type", "Whenever", false),
        ("min.insync.replicas", "0", false),
        ("no.such.config", "1", false),
    ];
    for (name, value, ok) in cases {
        assert_eq!(
            validate_topic_config(name, value).is_ok(),
            ok,
            "{name}={value}"
        );
    }
    let mut c = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    assert!(c.set("num.partitions", "3").is_ok());
    assert!(c.set("num.partitions", "x").is_err());
    assert!(c.set("bogus", "1").is_err());
}
