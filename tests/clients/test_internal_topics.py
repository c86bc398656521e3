"""Internal topics are the broker's own: a client can neither write to, create, delete,
resize nor trim them, and retention on a compact-only topic deletes nothing."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigEntry, AlterConfigOpType, NewPartitions, NewTopic

from kafka_helpers import admin_client, create_topic, kafka_error_code, producer, unique_topic

INTERNAL = ["__consumer_offsets", "__transaction_state"]


def error_of(future, timeout=30):
    try:
        future.result(timeout)
    except KafkaException as e:
        return kafka_error_code(e)
    return None


def make_internal_topics(bootstrap):
    """A committed offset creates __consumer_offsets; a transaction __transaction_state."""
    topic = unique_topic("internal")
    create_topic(bootstrap, topic)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g")})
    c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    c.close()
    p = producer(bootstrap, **{"transactional.id": unique_topic("tx")})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, b"v")
    p.commit_transaction(30)
    return topic


@pytest.mark.deadline(90)
def test_clients_cannot_create_delete_resize_or_trim_internal_topics(brook):
    make_internal_topics(brook.bootstrap)
    admin = admin_client(brook.bootstrap)
    for name in INTERNAL:
        fut = admin.delete_topics([name], operation_timeout=10)[name]
        assert error_of(fut) == KafkaError.INVALID_REQUEST, name
        fut = admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=10)[name]
        assert error_of(fut) in (KafkaError.INVALID_REQUEST, KafkaError.TOPIC_ALREADY_EXISTS), name
        fut = admin.create_partitions([NewPartitions(name, 100)], operation_timeout=10)[name]
        assert error_of(fut) == KafkaError.INVALID_REQUEST, name
        futs = admin.delete_records([TopicPartition(name, 0, -1)], operation_timeout=10)
        fut = next(iter(futs.values()))
        try:
            got = fut.result(30)
            code = getattr(got, "error", None)
            code = code.code() if code is not None else None
        except KafkaException as e:
            code = kafka_error_code(e)
        assert code == KafkaError.TOPIC_EXCEPTION, (name, code)
        p = producer(brook.bootstrap, **{"message.timeout.ms": 5000, "retries": 0})
        errors = []
        p.produce(name, b"poison", partition=0, on_delivery=lambda err, msg: errors.append(err))
        p.flush(10)
        assert errors and errors[0] is not None, f"a client wrote to {name}"
    md = admin.list_topics(timeout=10)
    assert all(name in md.topics for name in INTERNAL)


@pytest.mark.brook_config({"log.retention.check.interval.ms": 200,
                           "offsets.topic.num.partitions": 1})
@pytest.mark.deadline(90)
def test_retention_on_compact_only_offsets_topic_keeps_commits(brook):
    topic = unique_topic("keep")
    create_topic(brook.bootstrap, topic)
    group = unique_topic("keep-group")
    c = Consumer({"bootstrap.servers": brook.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 42)], asynchronous=False)
    admin = admin_client(brook.bootstrap)
    res = ConfigResource("topic", "__consumer_offsets", incremental_configs=[
        ConfigEntry("retention.ms", "100", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.bytes", "1", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.ms", "50", incremental_operation=AlterConfigOpType.SET),
    ])
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result(30)
    # Roll segments under the new settings, then give retention several passes.
    for i in range(5):
        c.commit(offsets=[TopicPartition(topic, 0, 43 + i)], asynchronous=False)
        time.sleep(0.2)
    time.sleep(1.5)
    low, _ = c.get_watermark_offsets(TopicPartition("__consumer_offsets", 0), timeout=10)
    c.close()
    assert low == 0, "retention trimmed the compact-only __consumer_offsets"
    brook.restart()
    c = Consumer({"bootstrap.servers": brook.bootstrap, "group.id": group})
    got = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    c.close()
    assert got == 47


@pytest.mark.deadline(60)
def test_one_metadata_request_auto_creates_a_bounded_number_of_topics(brook):
    import kafka_wire as w
    from kafka_helpers import topic_names

    prefix = unique_topic("auto")
    names = [f"{prefix}-{i}" for i in range(150)] + ["__transaction_state"]
    body = w.array([w.string(n) for n in names]) + w.i8(1)  # allow_auto_topic_creation
    s = w.connect(brook.port)
    try:
        s.sendall(w.frame(w.header_v1(3, 4, 7) + body))
        w.read_response(s, 7)
    finally:
        s.close()
    created = {n for n in topic_names(brook.bootstrap) if n.startswith(prefix)}
    assert len(created) == 100, len(created)
    assert "__transaction_state" not in topic_names(brook.bootstrap)
