"""AdminClient (confluent-kafka): topics, configs, partitions, records, cluster."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from kafka_helpers import (
    admin_client,
    assert_all_delivered,
    consume_to_end,
    create_topic,
    kafka_error_code,
    partition_count,
    produce_all,
    producer,
    topic_names,
    unique_topic,
    wait_until,
    watermarks,
)

KAFKA_DEFAULT_RETENTION_MS = "604800000"     # log.retention.hours=168
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = "1048588"


def source(entry) -> int:
    """ConfigEntry.source as an int (it may be an int or a ConfigSource)."""
    return int(getattr(entry.source, "value", entry.source))


DYNAMIC_TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def describe_topic_configs(admin, topic) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(10)


def test_create_list_describe_topic(brook):
    admin = admin_client(brook.bootstrap)
    topic = unique_topic("adm-create")
    fs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                       config={"retention.ms": "3600000"})])
    assert fs[topic].result(30) is None

    wait_until(lambda: partition_count(brook.bootstrap, topic) == 3, 10,
               what="3 partitions in metadata")
    md = admin.list_topics(timeout=10)
    assert topic in md.topics
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    broker_ids = set(md.brokers)
    assert len(broker_ids) == 1
    for pm in t.partitions.values():
        assert pm.leader in broker_ids
        assert pm.replicas == [pm.leader]
        assert pm.isrs == [pm.leader]

    configs = describe_topic_configs(admin, topic)
    entry = configs["retention.ms"]
    assert entry.value == "3600000"
    assert source(entry) == DYNAMIC_TOPIC
    # Configs that were not set come back with their defaults.
    assert configs["max.message.bytes"].value == KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    assert source(configs["max.message.bytes"]) != DYNAMIC_TOPIC
    assert configs["cleanup.policy"].value == "delete"


def test_describe_topics(brook):
    from confluent_kafka import TopicCollection

    topic = unique_topic("adm-desc")
    create_topic(brook.bootstrap, topic, partitions=2)
    admin = admin_client(brook.bootstrap)
    desc = admin.describe_topics(TopicCollection([topic]))[topic].result(10)
    assert desc.name == topic
    assert [p.id for p in sorted(desc.partitions, key=lambda p: p.id)] == [0, 1]


def test_duplicate_topic_is_rejected(brook):
    admin = admin_client(brook.bootstrap)
    topic = unique_topic("adm-dup")
    create_topic(brook.bootstrap, topic, partitions=2)
    fs = admin.create_topics([NewTopic(topic, num_partitions=5, replication_factor=1)])
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(30)
    assert kafka_error_code(ei.value) == KafkaError.TOPIC_ALREADY_EXISTS
    # The original is untouched.
    assert partition_count(brook.bootstrap, topic) == 2


def test_invalid_create_requests(brook):
    admin = admin_client(brook.bootstrap)
    bad_parts = unique_topic("adm-badparts")
    bad_cfg = unique_topic("adm-badcfg")
    fs = admin.create_topics([
        NewTopic(bad_parts, num_partitions=0, replication_factor=1),
        NewTopic(bad_cfg, num_partitions=1, replication_factor=1,
                 config={"retention.ms": "not-a-number"}),
    ])
    with pytest.raises(KafkaException) as ei:
        fs[bad_parts].result(30)
    assert kafka_error_code(ei.value) == KafkaError.INVALID_PARTITIONS
    with pytest.raises(KafkaException) as ei:
        fs[bad_cfg].result(30)
    assert kafka_error_code(ei.value) == KafkaError.INVALID_CONFIG
    names = topic_names(brook.bootstrap)
    assert bad_parts not in names and bad_cfg not in names


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
def test_alter_configs(brook):
    admin = admin_client(brook.bootstrap)
    topic = unique_topic("adm-cfg")
    create_topic(brook.bootstrap, topic, partitions=1, config={"retention.ms": "3600000"})

    # IncrementalAlterConfigs SET: only the named config changes.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "2000000",
                    incremental_operation=AlterConfigOpType.SET),
    ])
    admin.incremental_alter_configs([res])[res].result(10)
    cfg = describe_topic_configs(admin, topic)
    assert cfg["retention.ms"].value == "7200000"
    assert source(cfg["retention.ms"]) == DYNAMIC_TOPIC
    assert cfg["max.message.bytes"].value == "2000000"

    # IncrementalAlterConfigs DELETE: back to the default.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    admin.incremental_alter_configs([res])[res].result(10)
    cfg = describe_topic_configs(admin, topic)
    assert cfg["retention.ms"].value == KAFKA_DEFAULT_RETENTION_MS
    assert source(cfg["retention.ms"]) != DYNAMIC_TOPIC
    assert cfg["max.message.bytes"].value == "2000000"

    # Legacy AlterConfigs replaces the whole set: max.message.bytes goes back to default.
    res = ConfigResource(ResourceType.TOPIC, topic,
                         set_config={"retention.ms": "1000000", "segment.bytes": "1048576"})
    admin.alter_configs([res])[res].result(10)
    cfg = describe_topic_configs(admin, topic)
    assert cfg["retention.ms"].value == "1000000"
    assert cfg["segment.bytes"].value == "1048576"
    assert cfg["max.message.bytes"].value == KAFKA_DEFAULT_MAX_MESSAGE_BYTES

    # Bad values are refused and change nothing.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
    ])
    with pytest.raises(KafkaException) as ei:
        admin.incremental_alter_configs([res])[res].result(10)
    assert kafka_error_code(ei.value) == KafkaError.INVALID_CONFIG
    assert describe_topic_configs(admin, topic)["retention.ms"].value == "1000000"

    # Configs survive a restart.
    brook.restart()
    cfg = describe_topic_configs(admin_client(brook.bootstrap), topic)
    assert cfg["retention.ms"].value == "1000000"
    assert cfg["segment.bytes"].value == "1048576"


def test_create_partitions(brook):
    admin = admin_client(brook.bootstrap)
    topic = unique_topic("adm-parts")
    create_topic(brook.bootstrap, topic, partitions=2)
    fs = admin.create_partitions([NewPartitions(topic, 5)])
    assert fs[topic].result(30) is None
    wait_until(lambda: partition_count(brook.bootstrap, topic) == 5, 10,
               what="5 partitions in metadata")

    # The new partitions take writes.
    records = [{"value": f"p{p}".encode(), "partition": p} for p in range(5)]
    deliveries = produce_all(producer(brook.bootstrap), topic, records)
    assert_all_delivered(deliveries)
    assert sorted((d.partition, d.offset) for d in deliveries) == [(p, 0) for p in range(5)]

    # Decreasing is not allowed.
    fs = admin.create_partitions([NewPartitions(topic, 3)])
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(30)
    assert kafka_error_code(ei.value) == KafkaError.INVALID_PARTITIONS
    assert partition_count(brook.bootstrap, topic) == 5

    # A manual assignment naming a broker that does not exist is refused, not ignored.
    fs = admin.create_partitions([NewPartitions(topic, 6, replica_assignment=[[42]])])
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(30)
    assert kafka_error_code(ei.value) == KafkaError.INVALID_REPLICA_ASSIGNMENT
    # One that names this broker is taken.
    fs = admin.create_partitions([NewPartitions(topic, 6, replica_assignment=[[1]])])
    assert fs[topic].result(30) is None
    wait_until(lambda: partition_count(brook.bootstrap, topic) == 6, 10,
               what="6 partitions in metadata")


def test_delete_records(brook):
    admin = admin_client(brook.bootstrap)
    topic = unique_topic("adm-delrec")
    create_topic(brook.bootstrap, topic, partitions=1)
    records = [{"value": f"v{i}".encode(), "partition": 0} for i in range(100)]
    assert_all_delivered(produce_all(producer(brook.bootstrap, **{"batch.num.messages": 10}),
                                     topic, records))
    assert watermarks(brook.bootstrap, topic, 0) == (0, 100)

    fs = admin.delete_records([TopicPartition(topic, 0, 40)])
    result = fs[TopicPartition(topic, 0, 40)].result(30)
    assert result.low_watermark == 40
    assert watermarks(brook.bootstrap, topic, 0) == (40, 100)
    got = consume_to_end(brook.bootstrap, topic, [0])[0]
    assert [r.offset for r in got] == list(range(40, 100))
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(40, 100)]

    # -1 means "up to the high watermark".
    tp = TopicPartition(topic, 0, -1)
    assert admin.delete_records([tp])[tp].result(30).low_watermark == 100
    assert watermarks(brook.bootstrap, topic, 0) == (100, 100)

    # The log start offset is durable.
    brook.restart()
    assert watermarks(brook.bootstrap, topic, 0) == (100, 100)


def test_delete_topic(brook):
    admin = admin_client(brook.bootstrap)
    topic = unique_topic("adm-del")
    keep = unique_topic("adm-keep")
    create_topic(brook.bootstrap, topic, partitions=2)
    create_topic(brook.bootstrap, keep, partitions=1)
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic,
                                     [{"value": b"x", "partition": 0}]))
    fs = admin.delete_topics([topic], operation_timeout=30)
    assert fs[topic].result(30) is None
    wait_until(lambda: topic not in topic_names(brook.bootstrap), 10,
               what="deleted topic to leave metadata")
    assert keep in topic_names(brook.bootstrap)
    # Its data is gone from disk (Kafka may first rename the directory to
    # '<topic>-<p>.<uuid>-delete').
    wait_until(lambda: not (brook.data_dir / f"{topic}-0").exists(), 15,
               what="partition directory to be removed")

    # Deleting it again: UNKNOWN_TOPIC_OR_PART.
    fs = admin.delete_topics([topic], operation_timeout=30)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(30)
    assert kafka_error_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART

    # Stays deleted across a restart, and the name can be reused.
    brook.restart()
    assert topic not in topic_names(brook.bootstrap)
    create_topic(brook.bootstrap, topic, partitions=1)
    assert watermarks(brook.bootstrap, topic, 0) == (0, 0)


@pytest.mark.brook_config({"num.partitions": 3})
def test_auto_create_on_produce(brook):
    topic = unique_topic("adm-auto")
    assert topic not in topic_names(brook.bootstrap)
    records = [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(300)]
    deliveries = produce_all(producer(brook.bootstrap), topic, records, timeout=30)
    assert_all_delivered(deliveries)
    # Created with the broker's num.partitions.
    assert partition_count(brook.bootstrap, topic) == 3
    assert {d.partition for d in deliveries} == {0, 1, 2}
    consumed = consume_to_end(brook.bootstrap, topic, 3)
    assert sum(len(v) for v in consumed.values()) == 300


@pytest.mark.brook_config({"auto.create.topics.enable": False})
def test_no_auto_create_when_disabled(brook):
    topic = unique_topic("adm-noauto")
    p = producer(brook.bootstrap, **{"message.timeout.ms": 3000,
                                     "topic.metadata.propagation.max.ms": 1000})
    deliveries = produce_all(p, topic, [{"value": b"x"}], timeout=20)
    assert deliveries[0].error is not None
    assert topic not in topic_names(brook.bootstrap)


def test_describe_cluster(brook):
    admin = admin_client(brook.bootstrap)
    desc = admin.describe_cluster(request_timeout=10).result(10)
    assert len(desc.nodes) == 1
    node = desc.nodes[0]
    assert (node.host, node.port) == ("127.0.0.1", brook.port)
    assert desc.controller is not None and desc.controller.id == node.id
    assert desc.cluster_id
    # Stable across restarts.
    cluster_id = desc.cluster_id
    brook.restart()
    admin = admin_client(brook.bootstrap)  # keep the handle alive while waiting
    desc = admin.describe_cluster(request_timeout=10).result(10)
    assert desc.cluster_id == cluster_id


def test_describe_cluster_of_controllers_is_unsupported_on_a_broker(brook):
    """DescribeCluster v1 asking for controller endpoints (type 2) or an unknown type:
    UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker answers."""
    import kafka_wire as w

    port = int(brook.bootstrap.rsplit(":", 1)[1])
    s = w.connect(port)
    try:
        for i, endpoint_type in enumerate([1, 2, 99]):
            body = w.i8(0) + w.i8(endpoint_type) + w.NO_TAGS
            s.sendall(w.frame(w.header_v2(60, 1, 50 + i) + body))
            r = w.Reader(w.read_response(s, 50 + i, flexible_header=True))
            r.i32()  # throttle
            code = r.i16()
            assert code == (0 if endpoint_type == 1 else 115), (endpoint_type, code)
    finally:
        s.close()


def test_acl_apis_answer_security_disabled(brook):
    """No authorizer yet: DescribeAcls/CreateAcls/DeleteAcls answer SECURITY_DISABLED,
    as a Kafka broker without one does (MirrorMaker 2 then skips ACL syncing)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
    )

    admin = admin_client(brook.bootstrap)
    any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    # librdkafka reports the describe error as no bindings; Java raises it.
    try:
        assert admin.describe_acls(any_filter, request_timeout=10).result(15) == []
    except KafkaException as e:
        assert kafka_error_code(e) == KafkaError.SECURITY_DISABLED
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as ei:
        admin.create_acls([binding], request_timeout=10)[binding].result(15)
    assert kafka_error_code(ei.value) == KafkaError.SECURITY_DISABLED
    with pytest.raises(KafkaException) as ei:
        admin.delete_acls([any_filter], request_timeout=10)[any_filter].result(15)
    assert kafka_error_code(ei.value) == KafkaError.SECURITY_DISABLED
