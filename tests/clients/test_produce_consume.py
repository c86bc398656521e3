"""Produce and consume with confluent-kafka and kafka-python: volume, ordering, keys,
headers, timestamps and every compression codec."""

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
)


def check_partitions_match(deliveries, records, consumed):
    """Every partition's consumed records are exactly the delivered ones, in offset
    order, with dense offsets from 0."""
    expected: dict[int, list] = {}
    for d, rec in zip(deliveries, records):
        expected.setdefault(d.partition, []).append((d.offset, rec.get("key"), rec["value"]))
    for p in expected:
        expected[p].sort()
    assert set(expected) <= set(consumed)
    for p, recs in consumed.items():
        exp = expected.get(p, [])
        got = [(r.offset, r.key, r.value) for r in recs]
        assert len(got) == len(exp), f"partition {p}: consumed {len(got)}, delivered {len(exp)}"
        offsets = [o for o, _, _ in got]
        assert offsets == list(range(len(exp))), f"partition {p}: offsets not dense/ordered"
        for g, e in zip(got, exp):
            assert g == (e[0], _b(e[1]), _b(e[2])), f"partition {p} offset {g[0]}"


def _b(x):
    if x is None or isinstance(x, bytes):
        return x
    return x.encode()


@pytest.mark.deadline(180)
def test_100k_keyed_records_three_partitions(brook):
    topic = unique_topic("pc-100k")
    create_topic(brook.bootstrap, topic, partitions=3)
    n = 100_000
    records = [{"key": f"key-{i % 977}".encode(), "value": f"value-{i}".encode()}
               for i in range(n)]
    p = producer(brook.bootstrap, acks="all")
    deliveries = produce_all(p, topic, records, timeout=120)
    assert_all_delivered(deliveries)
    parts = {d.partition for d in deliveries}
    assert parts == {0, 1, 2}, f"keyed records landed only in partitions {parts}"

    # The same key always goes to the same partition (librdkafka's default partitioner).
    by_key: dict[bytes, set[int]] = {}
    for d, r in zip(deliveries, records):
        by_key.setdefault(r["key"], set()).add(d.partition)
    assert all(len(s) == 1 for s in by_key.values())

    # Within a partition, produce order is offset order (one producer, no retries).
    last: dict[int, int] = {}
    for d in deliveries:
        assert d.offset > last.get(d.partition, -1), "offsets must increase per partition"
        last[d.partition] = d.offset

    consumed = consume_to_end(brook.bootstrap, topic, 3, timeout=120)
    assert sum(len(v) for v in consumed.values()) == n
    check_partitions_match(deliveries, records, consumed)


def test_headers_and_create_time_preserved(brook):
    topic = unique_topic("pc-hdr")
    create_topic(brook.bootstrap, topic, partitions=1)
    base_ts = int(time.time() * 1000) - 3_600_000  # an hour ago
    headers = [("h1", b"v1"), ("empty", b""), ("null", None), ("dup", b"1"), ("dup", b"2"),
               ("bin", bytes(range(256)))]
    records = [{"key": f"k{i}".encode(), "value": f"v{i}".encode(), "partition": 0,
                "timestamp": base_ts + i * 10, "headers": headers}
               for i in range(500)]
    # No headers at all on some records.
    records += [{"key": None, "value": b"no-headers", "partition": 0,
                 "timestamp": base_ts + 99_999}]
    deliveries = produce_all(producer(brook.bootstrap), topic, records)
    assert_all_delivered(deliveries)

    got = consume_to_end(brook.bootstrap, topic, [0])[0]
    assert len(got) == len(records)
    for r, rec in zip(got, records):
        assert r.key == rec["key"]
        assert r.value == rec["value"]
        assert r.timestamp_type == TIMESTAMP_CREATE_TIME
        assert r.timestamp == rec["timestamp"]
    for r in got[:-1]:
        assert r.headers == headers
    assert not got[-1].headers  # None (librdkafka) for no headers


def test_log_append_time_topic(brook):
    topic = unique_topic("pc-lat")
    create_topic(brook.bootstrap, topic, partitions=1,
                 config={"message.timestamp.type": "LogAppendTime"})
    old_ts = 1_000_000_000_000  # 2001: must be replaced by the broker's clock
    before = int(time.time() * 1000)
    deliveries = produce_all(producer(brook.bootstrap), topic,
                             [{"value": f"v{i}".encode(), "partition": 0, "timestamp": old_ts}
                              for i in range(200)])
    after = int(time.time() * 1000)
    assert_all_delivered(deliveries)
    got = consume_to_end(brook.bootstrap, topic, [0])[0]
    assert len(got) == 200
    slack = 5_000
    for r in got:
        assert r.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - slack <= r.timestamp <= after + slack, (
            f"LogAppendTime {r.timestamp} not within [{before}, {after}] (+-{slack} ms)")
    # The delivery reports carry the broker's timestamp too.
    for d in deliveries:
        assert d.timestamp[0] == TIMESTAMP_LOG_APPEND_TIME
        assert before - slack <= d.timestamp[1] <= after + slack


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(brook, codec):
    topic = unique_topic(f"pc-{codec}")
    create_topic(brook.bootstrap, topic, partitions=2)
    records = [{"key": f"k{i % 10}".encode(),
                "value": (f"{codec}-{i}-" + "x" * (i % 300)).encode(),
                "headers": [("i", str(i).encode())]}
               for i in range(20_000)]
    p = producer(brook.bootstrap, **{"compression.type": codec, "linger.ms": 20})
    deliveries = produce_all(p, topic, records)
    assert_all_delivered(deliveries)
    consumed = consume_to_end(brook.bootstrap, topic, 2)
    check_partitions_match(deliveries, records, consumed)
    for recs in consumed.values():
        for r in recs:
            i = int(r.headers[0][1])
            assert r.value == records[i]["value"]


def test_kafka_python_round_trip(brook):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = unique_topic("pc-kpy")
    create_topic(brook.bootstrap, topic, partitions=3)
    prod = KafkaProducer(bootstrap_servers=brook.bootstrap, acks="all", linger_ms=5,
                         request_timeout_ms=30_000)
    n = 5000
    futures = []
    for i in range(n):
        futures.append(prod.send(topic, key=f"k{i % 37}".encode(), value=f"v{i}".encode(),
                                 headers=[("n", str(i).encode())]))
    prod.flush(timeout=60)
    metas = [f.get(timeout=30) for f in futures]
    prod.close(timeout=10)
    expected: dict[int, list] = {}
    for i, m in enumerate(metas):
        assert m.topic == topic
        expected.setdefault(m.partition, []).append((m.offset, f"k{i % 37}".encode(),
                                                     f"v{i}".encode()))
    for lst in expected.values():
        lst.sort()
        assert [o for o, _, _ in lst] == list(range(len(lst)))

    cons = KafkaConsumer(bootstrap_servers=brook.bootstrap, group_id=None,
                         enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        got: dict[int, list] = {p: [] for p in range(3)}
        deadline = time.monotonic() + 60
        while sum(len(v) for v in got.values()) < n:
            assert time.monotonic() < deadline, (
                f"kafka-python consumer got {sum(len(v) for v in got.values())}/{n}")
            for tp, recs in cons.poll(timeout_ms=500).items():
                for r in recs:
                    got[tp.partition].append((r.offset, r.key, r.value))
                    assert r.headers == [("n", r.value[1:])]
        for p in range(3):
            assert got[p] == expected.get(p, []), f"partition {p} differs"
        # Nothing more than what was produced.
        assert not any(cons.poll(timeout_ms=300).values())
    finally:
        cons.close()


def test_kafka_python_consumes_confluent_produced(brook):
    """Cross-client: kafka-python reads what librdkafka wrote (compressed with gzip,
    which kafka-python decodes without optional modules)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = unique_topic("pc-cross")
    create_topic(brook.bootstrap, topic, partitions=1)
    records = [{"key": f"k{i}".encode(), "value": f"v{i}".encode(), "partition": 0}
               for i in range(2000)]
    p = producer(brook.bootstrap, **{"compression.type": "gzip"})
    assert_all_delivered(produce_all(p, topic, records))
    cons = KafkaConsumer(bootstrap_servers=brook.bootstrap, group_id=None,
                         enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        cons.assign([tp])
        cons.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 60
        while len(got) < len(records):
            assert time.monotonic() < deadline, f"got {len(got)}/{len(records)}"
            for recs in cons.poll(timeout_ms=500).values():
                got += [(r.offset, r.key, r.value) for r in recs]
        assert got == [(i, r["key"], r["value"]) for i, r in enumerate(records)]
    finally:
        cons.close()


@pytest.mark.parametrize("topic_codec,producer_codec,stored", [
    ("zstd", "none", 4), ("zstd", "gzip", 4), ("uncompressed", "lz4", 0), ("gzip", "snappy", 1),
])
def test_topic_compression_type_recompresses_batches(brook, topic_codec, producer_codec, stored):
    import struct

    topic = unique_topic("codec")
    create_topic(brook.bootstrap, topic, partitions=1, config={"compression.type": topic_codec})
    records = [{"key": f"k{i}".encode(), "value": (f"value-{i}-" * 20).encode(), "partition": 0}
               for i in range(200)]
    p = producer(brook.bootstrap, **{"compression.type": producer_codec, "linger.ms": 20})
    assert_all_delivered(produce_all(p, topic, records))
    got = consume_to_end(brook.bootstrap, topic, [0])[0]
    assert [(r.key, r.value) for r in got] == [(r["key"], r["value"]) for r in records]
    data = brook.segment_files(topic, 0)[0].read_bytes()
    pos, codecs = 0, set()
    while pos + 61 <= len(data):
        (length,) = struct.unpack(">i", data[pos + 8:pos + 12])
        if length <= 0:
            break
        (attributes,) = struct.unpack(">h", data[pos + 21:pos + 23])
        codecs.add(attributes & 7)
        pos += 12 + length
    assert codecs == {stored}, codecs


def test_topic_compression_level_is_applied_and_checked(brook):
    """compression.zstd.level (KIP-390): the same uncompressed batches stored at zstd
    level 19 take less disk than at level 1; a level out of range is INVALID_CONFIG."""
    import random

    rng = random.Random(7)
    words = [bytes(rng.choice(b"abcdefghij") for _ in range(8)) for _ in range(64)]
    values = [b" ".join(rng.choice(words) for _ in range(200)) for _ in range(300)]
    sizes = {}
    for level in (1, 19):
        topic = unique_topic(f"lvl{level}")
        create_topic(brook.bootstrap, topic, partitions=1,
                     config={"compression.type": "zstd", "compression.zstd.level": str(level)})
        p = producer(brook.bootstrap, **{"compression.type": "none", "linger.ms": 50,
                                         "batch.size": 1_000_000})
        assert_all_delivered(produce_all(p, topic, [{"value": v, "partition": 0}
                                                    for v in values]))
        got = consume_to_end(brook.bootstrap, topic, [0])[0]
        assert [r.value for r in got] == values
        sizes[level] = brook.segment_files(topic, 0)[0].stat().st_size
    assert sizes[19] < sizes[1], sizes

    bad = unique_topic("lvlbad")
    with pytest.raises(Exception) as e:
        create_topic(brook.bootstrap, bad, partitions=1,
                     config={"compression.type": "gzip", "compression.gzip.level": "10"})
    assert "INVALID_CONFIG" in str(e.value) or "between" in str(e.value), e.value
