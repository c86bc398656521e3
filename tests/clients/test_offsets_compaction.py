"""__consumer_offsets is compacted by snapshot: after many commits the partition keeps
only the live state, and committed offsets survive a restart unchanged."""

import time

from confluent_kafka import Consumer, TopicPartition

from kafka_helpers import create_topic, unique_topic

COMMITS = 12_000


def committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def offsets_partition_bounds(bootstrap: str) -> list[tuple[int, int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        meta = c.list_topics("__consumer_offsets", timeout=10).topics["__consumer_offsets"]
        return [c.get_watermark_offsets(TopicPartition("__consumer_offsets", p), timeout=10)
                for p in sorted(meta.partitions)]
    finally:
        c.close()


def test_many_commits_are_compacted_and_survive_restart(brook_factory):
    broker = brook_factory({"log.cleaner.backoff.ms": "300", "offsets.topic.num.partitions": "3"})
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

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bounds = offsets_partition_bounds(broker.bootstrap)
        # Compacted: the prefix is gone and what is left is a small fraction of the
        # commits. Commits that land after the snapshot stay until the next one, and a
        # partition is compacted once it holds 10,000 records, so up to ~2,000 of the
        # 12,000 may remain, depending on how fast the commits arrive.
        if any(low > 0 and high - low < COMMITS // 5 for low, high in bounds):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"__consumer_offsets was never compacted: {bounds}")

    broker.restart()
    assert committed(broker.bootstrap, group, topic) == COMMITS
