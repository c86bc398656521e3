"""ListOffsets: offsets_for_times, watermarks, earliest/latest/max-timestamp."""

import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import OffsetSpec

from kafka_helpers import (
    admin_client,
    assert_all_delivered,
    consumer,
    create_topic,
    produce_all,
    producer,
    unique_topic,
)

# Explicit CreateTime timestamps, 1 s apart, starting an hour ago: recent enough that
# the default 7-day retention (which goes by record timestamps) keeps them.
BASE_TS = (int(time.time()) - 3600) * 1000
N = 300


def produce_timed(bootstrap, topic, n=N, partition=0, **conf):
    records = [{"value": f"v{i}".encode(), "partition": partition,
                "timestamp": BASE_TS + i * 1000} for i in range(n)]
    # Small batches, so the answer has to come from the right batch, not batch 0.
    p = producer(bootstrap, **{"batch.num.messages": 7, "linger.ms": 1, **conf})
    assert_all_delivered(produce_all(p, topic, records))


def offsets_for_times(bootstrap, topic, ts_list, partition=0):
    c = consumer(bootstrap)
    try:
        out = []
        for ts in ts_list:
            res = c.offsets_for_times([TopicPartition(topic, partition, ts)], timeout=10)
            assert res[0].error is None, res[0].error
            out.append(res[0].offset)
        return out
    finally:
        c.close()


def test_offsets_for_times(brook):
    topic = unique_topic("off-times")
    create_topic(brook.bootstrap, topic, partitions=1)
    produce_timed(brook.bootstrap, topic)

    cases = {
        BASE_TS - 10_000: 0,                 # before everything: the first record
        BASE_TS: 0,                          # exact match on the first record
        BASE_TS + 1: 1,                      # between 0 and 1: the next one
        BASE_TS + 41_000: 41,                # exact match
        BASE_TS + 41_500: 42,                # between two records
        BASE_TS + 150_999: 151,
        BASE_TS + (N - 1) * 1000: N - 1,     # the last record
        BASE_TS + (N - 1) * 1000 + 1: -1,    # after the last: -1 (no such offset)
    }
    got = offsets_for_times(brook.bootstrap, topic, list(cases))
    assert dict(zip(cases, got)) == cases

    # The same through the admin API (OffsetSpec.for_timestamp).
    admin = admin_client(brook.bootstrap)
    for ts, want in cases.items():
        tp = TopicPartition(topic, 0)
        res = admin.list_offsets({tp: OffsetSpec.for_timestamp(ts)})[tp].result(10)
        assert res.offset == want, f"for_timestamp({ts})"
        if want >= 0:
            assert res.timestamp == BASE_TS + want * 1000


def test_offsets_for_times_survives_restart(brook):
    """The time index is on disk (or rebuilt): same answers after a restart."""
    topic = unique_topic("off-times-restart")
    create_topic(brook.bootstrap, topic, partitions=1)
    produce_timed(brook.bootstrap, topic, n=100)
    brook.restart()
    got = offsets_for_times(brook.bootstrap, topic,
                            [BASE_TS - 1, BASE_TS + 50_000, BASE_TS + 50_001,
                             BASE_TS + 99_000, BASE_TS + 99_001])
    assert got == [0, 50, 51, 99, -1]


def test_watermarks_and_earliest_latest(brook):
    topic = unique_topic("off-wm")
    create_topic(brook.bootstrap, topic, partitions=2)
    c = consumer(brook.bootstrap)
    try:
        # Empty partitions: low == high == 0.
        for p in (0, 1):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) == (0, 0)
        assert offsets_for_times(brook.bootstrap, topic, [BASE_TS]) == [-1]

        produce_timed(brook.bootstrap, topic, n=123, partition=0)
        produce_timed(brook.bootstrap, topic, n=7, partition=1)
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 123)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 7)
    finally:
        c.close()

    admin = admin_client(brook.bootstrap)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    res = admin.list_offsets({tp0: OffsetSpec.earliest(), tp1: OffsetSpec.earliest()})
    assert res[tp0].result(10).offset == 0
    assert res[tp1].result(10).offset == 0
    res = admin.list_offsets({tp0: OffsetSpec.latest(), tp1: OffsetSpec.latest()})
    assert res[tp0].result(10).offset == 123
    assert res[tp1].result(10).offset == 7
    # KIP-734: the offset of the record with the largest timestamp.
    res = admin.list_offsets({tp0: OffsetSpec.max_timestamp()})
    info = res[tp0].result(10)
    assert info.offset == 122
    assert info.timestamp == BASE_TS + 122 * 1000


def test_kafka_python_offset_lookups(brook):
    from kafka import KafkaConsumer, TopicPartition as KTP

    topic = unique_topic("off-kpy")
    create_topic(brook.bootstrap, topic, partitions=1)
    produce_timed(brook.bootstrap, topic, n=50)
    c = KafkaConsumer(bootstrap_servers=brook.bootstrap, group_id=None,
                      enable_auto_commit=False)
    try:
        tp = KTP(topic, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 50}
        res = c.offsets_for_times({tp: BASE_TS + 10_500})
        assert res[tp].offset == 11
        assert res[tp].timestamp == BASE_TS + 11_000
        assert c.offsets_for_times({tp: BASE_TS + 10**9}) == {tp: None}
    finally:
        c.close()


def test_commit_for_a_topic_that_does_not_exist_is_refused_per_partition(brook):
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    from kafka_helpers import create_topic, unique_topic

    topic = unique_topic("commit-known")
    create_topic(brook.bootstrap, topic)
    group = unique_topic("commit-unknown")
    c = Consumer({"bootstrap.servers": brook.bootstrap, "group.id": group})
    try:
        try:
            result = c.commit(offsets=[TopicPartition("no-such-topic", 0, 5),
                                       TopicPartition(topic, 0, 3),
                                       TopicPartition(topic, 7, 3)], asynchronous=False)
            errors = {(tp.topic, tp.partition): tp.error for tp in result}
        except KafkaException as e:
            errors = None
            assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e
        if errors is not None:
            assert errors[("no-such-topic", 0)].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            assert errors[(topic, 7)].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            assert errors[(topic, 0)] is None
        got = c.committed([TopicPartition(topic, 0), TopicPartition("no-such-topic", 0)],
                          timeout=10)
        assert got[0].offset == 3  # the partition that exists was committed
        assert got[1].offset < 0   # nothing stored for the one that does not
    finally:
        c.close()
