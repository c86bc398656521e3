"""Time-based retention deletes old segments and advances the log start offset.

Uses 16 KiB segments through the broker's static log.segment.bytes: a client may not
ask for segments below 1 MiB (Kafka 4, KIP-1030), the operator may."""

import time

import pytest

from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
    watermarks,
)

pytestmark = pytest.mark.brook_config({"log.retention.check.interval.ms": 500,
                                        "log.segment.bytes": 16384})


@pytest.mark.deadline(90)
def test_time_retention_deletes_segments(brook):
    topic = unique_topic("ret")
    create_topic(brook.bootstrap, topic, partitions=1,
                 config={"retention.ms": 2000})
    value = b"r" * 1000
    n = 1000  # ~1 MB
    # Batches well under segment.bytes (a batch larger than a segment is refused).
    p = producer(brook.bootstrap, **{"batch.size": 8192, "linger.ms": 2,
                                     "compression.type": "none"})
    deliveries = produce_all(p, topic, [{"value": value, "partition": 0,
                                         "key": str(i).encode()} for i in range(n)])
    assert_all_delivered(deliveries)
    segments_before = brook.segment_files(topic, 0)
    # ~1 MB in 16 KiB segments: dozens of them.
    assert len(segments_before) >= 20, f"only {len(segments_before)} segments"
    low, high = watermarks(brook.bootstrap, topic, 0)
    assert high == n

    deadline = time.monotonic() + 15
    while True:
        low, high = watermarks(brook.bootstrap, topic, 0)
        if low > 0:
            break
        assert time.monotonic() < deadline, "low watermark still 0 after 15 s"
        time.sleep(0.25)
    assert high == n, "retention must not change the high watermark"
    assert 0 < low <= n

    # Deleted segments leave the directory (Kafka renames them to *.log.deleted
    # first, which no longer match *.log).
    segments_after = brook.segment_files(topic, 0)
    assert len(segments_after) < len(segments_before)
    assert segments_after, "the active segment is always kept"

    # What is left is readable from the new log start offset, and new writes work.
    got = consume_to_end(brook.bootstrap, topic, [0])[0]
    offsets = [r.offset for r in got]
    assert all(o >= low for o in offsets)
    assert offsets == sorted(set(offsets))
    if offsets:
        assert offsets[-1] == n - 1
    d = produce_all(producer(brook.bootstrap), topic, [{"value": b"after", "partition": 0}])
    assert_all_delivered(d)
    assert d[0].offset == n


@pytest.mark.deadline(60)
def test_retention_respects_recent_data(brook):
    """A topic with long retention keeps everything."""
    topic = unique_topic("ret-keep")
    create_topic(brook.bootstrap, topic, partitions=1,
                 config={"retention.ms": 3_600_000})
    p = producer(brook.bootstrap, **{"batch.size": 8192})
    assert_all_delivered(produce_all(p, topic, [{"value": b"k" * 1000, "partition": 0}
                                                 for _ in range(200)]))
    before = brook.segment_files(topic, 0)
    time.sleep(2.5)  # several retention checks
    assert watermarks(brook.bootstrap, topic, 0) == (0, 200)
    assert len(brook.segment_files(topic, 0)) == len(before)
