"""KIP-932 share groups with librdkafka's share consumer (confluent-kafka's
ShareConsumer, a client nobody here wrote): several consumers on one partition split
the records and together see each once, explicit RELEASE redelivers with a higher
delivery count, REJECT archives, and records a consumer held when it closed without
acknowledging them go to another.

Brokers run with a 3 s acquisition lock so that redelivery shows within seconds. Each
test's group starts from the earliest offset (`share.auto.offset.reset`, set through
IncrementalAlterConfigs on the GROUP resource, as Kafka's tools do)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import AcknowledgeType, ShareConsumer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from kafka_helpers import (admin_client, assert_all_delivered, create_topic, produce_all,
                           producer, unique_topic)

LOCK_MS = 3000
pytestmark = pytest.mark.brook_config({
    "group.share.record.lock.duration.ms": LOCK_MS,
    "group.share.delivery.count.limit": 5,
    "group.share.heartbeat.interval.ms": 500,
    "group.share.session.timeout.ms": 6000,
})


def earliest(bootstrap: str, group: str) -> None:
    resource = ConfigResource(
        ConfigResource.Type.GROUP, group,
        incremental_configs=[ConfigEntry("share.auto.offset.reset", "earliest",
                                         incremental_operation=AlterConfigOpType.SET)])
    admin = admin_client(bootstrap)
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(30)


def share_consumer(bootstrap: str, group: str, topic: str, **config) -> ShareConsumer:
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **config})
    c.subscribe([topic])
    return c


def produce_values(bootstrap: str, topic: str, first: int, n: int, batch: int = 5) -> None:
    """Values v<first>..v<first+n-1>, `batch` records per produce request."""
    p = producer(bootstrap, **{"linger.ms": 0})
    for start in range(first, first + n, batch):
        assert_all_delivered(produce_all(p, topic, [
            {"value": f"v{i}".encode()} for i in range(start, min(start + batch, first + n))]))


def poll(c: ShareConsumer, timeout: float = 0.3) -> list:
    out = []
    for m in c.poll(timeout):
        assert m.error() is None, m.error()
        out.append(m)
    return out


def test_rdkafka_share_consumers_split_one_partition(brook):
    """Two share consumers on one partition, implicit acknowledgement: while records
    keep coming both get some, and between them every record is delivered exactly
    once (each acquired by one consumer only and accepted by its next poll)."""
    topic, group = unique_topic("rdshare"), unique_topic("rdsg")
    create_topic(brook.bootstrap, topic, partitions=1)
    earliest(brook.bootstrap, group)
    consumers = [share_consumer(brook.bootstrap, group, topic) for _ in range(2)]
    seen: list[list[int]] = [[], []]
    try:
        produced = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(map(len, seen)) < 600:
            if produced < 600:
                produce_values(brook.bootstrap, topic, produced, 20)
                produced += 20
            for i, c in enumerate(consumers):
                seen[i].extend(m.offset() for m in poll(c, 0.1))
    finally:
        for c in consumers:
            c.close()
    every = seen[0] + seen[1]
    assert sorted(every) == list(range(600)), (len(every), len(set(every)))
    assert seen[0] and seen[1], f"one consumer got everything: {len(seen[0])}/{len(seen[1])}"


def test_rdkafka_explicit_release_redelivers_and_reject_archives(brook):
    """Explicit acknowledgement: of ten records, the even ones are released and the odd
    ones rejected. The released ones come back with delivery count 2 and are then
    accepted; the rejected ones never come back."""
    topic, group = unique_topic("rdsharex"), unique_topic("rdsgx")
    create_topic(brook.bootstrap, topic, partitions=1)
    earliest(brook.bootstrap, group)
    produce_values(brook.bootstrap, topic, 0, 10, batch=10)
    c = share_consumer(brook.bootstrap, group, topic, **{"share.acknowledgement.mode": "explicit"})
    deliveries: list[tuple[int, int]] = []
    try:
        deadline = time.monotonic() + 60
        first_round = True
        while time.monotonic() < deadline:
            got = poll(c, 0.5)
            for m in got:
                deliveries.append((m.offset(), m.delivery_count()))
                if m.delivery_count() > 1:
                    c.acknowledge(m, AcknowledgeType.ACCEPT)
                elif m.offset() % 2 == 0:
                    c.acknowledge(m, AcknowledgeType.RELEASE)
                else:
                    c.acknowledge(m, AcknowledgeType.REJECT)
            if got:
                c.commit_sync()
                first_round = False
            if not first_round and sum(1 for _, n in deliveries if n == 2) == 5:
                break
        # Nothing else comes back: the rejected are archived, the rest accepted.
        for _ in range(int(LOCK_MS / 500) + 2):
            for m in poll(c, 0.5):
                deliveries.append((m.offset(), m.delivery_count()))
                c.acknowledge(m, AcknowledgeType.ACCEPT)
            c.commit_sync()
    finally:
        c.close()
    assert sorted(o for o, n in deliveries if n == 1) == list(range(10)), deliveries
    assert sorted(o for o, n in deliveries if n == 2) == [0, 2, 4, 6, 8], deliveries
    assert len(deliveries) == 15, deliveries


def test_rdkafka_records_held_by_a_closed_consumer_go_to_another(brook):
    """A consumer in explicit mode polls records and closes without acknowledging
    them: they are released at its close (or when their lock runs out) and a second
    consumer of the group receives them, with delivery count 2."""
    topic, group = unique_topic("rdsharec"), unique_topic("rdsgc")
    create_topic(brook.bootstrap, topic, partitions=1)
    earliest(brook.bootstrap, group)
    produce_values(brook.bootstrap, topic, 0, 20, batch=20)
    first = share_consumer(brook.bootstrap, group, topic,
                           **{"share.acknowledgement.mode": "explicit"})
    held: list[int] = []
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        held = [m.offset() for m in poll(first, 0.5)]
    assert held, "the first consumer got nothing"
    first.close()
    second = share_consumer(brook.bootstrap, group, topic)
    got: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(got) < 20:
            for m in poll(second, 0.5):
                got[m.offset()] = m.delivery_count()
    finally:
        second.close()
    assert sorted(got) == list(range(20)), got
    assert all(got[o] == 2 for o in held), (held, got)
