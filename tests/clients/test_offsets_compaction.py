"""__consumer_offsets is compacted by the log cleaner like any compacted topic: after
many commits its sealed segments keep only each key's last record (offsets stay, with
gaps), and committed offsets survive a restart unchanged."""

import time

from confluent_kafka import Consumer, TopicPartition

from kafka_helpers import create_topic, unique_topic

COMMITS = 20_000


def committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def records_in_offsets_topic(bootstrap: str) -> tuple[int, list[tuple[int, int]]]:
    """How many records a reader of __consumer_offsets sees, and each partition's
    watermarks."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        meta = c.list_topics("__consumer_offsets", timeout=10).topics["__consumer_offsets"]
        parts = sorted(meta.partitions)
        bounds = [c.get_watermark_offsets(TopicPartition("__consumer_offsets", p), timeout=10)
                  for p in parts]
        c.assign([TopicPartition("__consumer_offsets", p, 0) for p in parts])
        seen, eof = 0, set()
        deadline = time.monotonic() + 30
        while len(eof) < len(parts) and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                eof.add(m.partition())
                continue
            seen += 1
        assert len(eof) == len(parts), "did not reach the end of __consumer_offsets"
        return seen, bounds
    finally:
        c.close()


def test_many_commits_are_compacted_and_survive_restart(brook_factory):
    broker = brook_factory({"log.cleaner.backoff.ms": "300", "offsets.topic.num.partitions": "3",
                            "offsets.topic.segment.bytes": str(1024 * 1024)})
    topic = unique_topic("compact")
    create_topic(broker.bootstrap, topic, partitions=1)
    group = unique_topic("compact-group")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    for i in range(1, COMMITS + 1):
        c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=True)
        if i % 500 == 0:
            c.poll(0)
    c.commit(offsets=[TopicPartition(topic, 0, COMMITS)], asynchronous=False)
    c.close()
    assert committed(broker.bootstrap, group, topic) == COMMITS

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen, bounds = records_in_offsets_topic(broker.bootstrap)
        # Compacted: the sealed segments keep one record per key; what is left is the
        # active segment's tail. Offsets stay: nothing is cut from the front.
        if seen < COMMITS // 3:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"__consumer_offsets was never compacted: {seen} records")
    assert all(low == 0 for low, _ in bounds), bounds
    assert sum(high for _, high in bounds) >= COMMITS

    broker.restart()
    assert committed(broker.bootstrap, group, topic) == COMMITS
