"""kcat (librdkafka's command-line client) against a real brook process."""

import json

import pytest

from kafka_helpers import create_topic, kcat, unique_topic


def kcat_metadata(bootstrap, *args):
    res = kcat(bootstrap, "-L", "-J", *args, timeout=30)
    return json.loads(res.stdout)


def kcat_consume_json(bootstrap, topic, *args, timeout=60):
    """All records of `topic` from the beginning until the end (-e), as dicts."""
    res = kcat(bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q", *args,
               timeout=timeout)
    lines = [ln for ln in res.stdout.decode().splitlines() if ln.strip()]
    return [json.loads(ln) for ln in lines]


def test_metadata_lists_broker_and_topics(brook):
    a, b = unique_topic("kcat-md-a"), unique_topic("kcat-md-b")
    create_topic(brook.bootstrap, a, partitions=1)
    create_topic(brook.bootstrap, b, partitions=4)

    md = kcat_metadata(brook.bootstrap)
    assert [br["name"] for br in md["brokers"]] == [brook.bootstrap]
    broker_id = md["brokers"][0]["id"]
    assert md["controllerid"] == broker_id
    topics = {t["topic"]: t for t in md["topics"]}
    assert a in topics and b in topics
    assert len(topics[a]["partitions"]) == 1
    parts = sorted(topics[b]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2, 3]
    for p in parts:
        assert p["leader"] == broker_id
        assert [r["id"] for r in p["replicas"]] == [broker_id]
        assert [r["id"] for r in p["isrs"]] == [broker_id]
        assert "error" not in p

    # The human-readable form too.
    text = kcat(brook.bootstrap, "-L", timeout=30).stdout.decode()
    assert "1 brokers:" in text
    assert f"at {brook.bootstrap}" in text
    assert f'topic "{a}" with 1 partitions' in text
    assert f'topic "{b}" with 4 partitions' in text


def test_metadata_single_topic(brook):
    t = unique_topic("kcat-md-one")
    create_topic(brook.bootstrap, t, partitions=2)
    md = kcat_metadata(brook.bootstrap, "-t", t)
    assert [x["topic"] for x in md["topics"]] == [t]
    assert len(md["topics"][0]["partitions"]) == 2


def test_produce_keys_and_headers_then_consume(brook):
    topic = unique_topic("kcat-kv")
    create_topic(brook.bootstrap, topic, partitions=1)
    lines = [
        ("k1", "v1"),
        ("k2", "value with spaces"),
        ("k3", "v:with:colons"),      # split at the first delimiter only
        ("k4", "unicode \u00e9\u00e8\u2603"),
        ("k1", "same key again"),
    ] + [(f"key-{i}", f"value-{i}") for i in range(200)]
    data = "".join(f"{k}:{v}\n" for k, v in lines)
    kcat(brook.bootstrap, "-P", "-t", topic, "-p", "0", "-K:", "-H", "h1=one",
         "-H", "h2=two", "-H", "h1=dup", input=data.encode())

    got = kcat_consume_json(brook.bootstrap, topic)
    assert len(got) == len(lines)
    for i, (rec, (k, v)) in enumerate(zip(got, lines)):
        assert rec["partition"] == 0
        assert rec["offset"] == i
        assert rec["key"] == k
        assert rec["payload"] == v
        # Order and duplicate header names are preserved.
        assert rec["headers"] == ["h1", "one", "h2", "two", "h1", "dup"]
        assert rec["tstype"] == "create"


def test_produce_without_keys_auto_creates_topic(brook):
    # No CreateTopics: kcat's producer relies on auto.create.topics.enable (default on).
    topic = unique_topic("kcat-auto")
    values = [f"line {i}" for i in range(50)]
    kcat(brook.bootstrap, "-P", "-t", topic, input="\n".join(values) + "\n")
    got = kcat_consume_json(brook.bootstrap, topic)
    # Default num.partitions is 1, so the order is the produce order.
    assert [r["payload"] for r in got] == values
    assert all(r["key"] is None for r in got)
    assert [r["offset"] for r in got] == list(range(len(values)))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trip(brook, codec):
    topic = unique_topic(f"kcat-{codec}")
    create_topic(brook.bootstrap, topic, partitions=1)
    # Compressible, with some variety so bugs in offsets within a batch show up.
    values = [f"{codec} record {i:05d} " + ("abc" * (i % 50)) for i in range(3000)]
    kcat(brook.bootstrap, "-P", "-t", topic, "-p", "0", "-z", codec,
         "-X", "linger.ms=20", input="\n".join(values) + "\n")
    got = kcat_consume_json(brook.bootstrap, topic)
    assert [r["payload"] for r in got] == values
    assert [r["offset"] for r in got] == list(range(len(values)))

    # The broker stores batches as the producer compressed them (compression.type
    # =producer), so the log must be much smaller than the raw payload.
    raw = sum(len(v) for v in values)
    on_disk = sum(f.stat().st_size for f in brook.segment_files(topic, 0))
    assert 0 < on_disk < raw / 2, f"{codec}: {on_disk} bytes on disk for {raw} raw bytes"

    # And reading from the middle of a compressed batch works (the client skips
    # the records before the requested offset).
    mid = kcat(brook.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "1234", "-c", "3",
               "-e", "-q", "-f", "%o %s\n", timeout=30).stdout.decode().splitlines()
    assert mid == [f"{1234 + j} {values[1234 + j]}" for j in range(3)]
