"""Idempotent producer (enable.idempotence=True): exactly once, in order, and still
working after the broker restarts under a live producer."""

import pytest

from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
)


def idempotent_producer(bootstrap):
    return producer(bootstrap, **{
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "max.in.flight.requests.per.connection": 5,
        "message.timeout.ms": 60_000,
        # Reconnect quickly once the broker is back.
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    })


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_exactly_once_in_order(consumed, produced_by_partition):
    for p, values in produced_by_partition.items():
        got = [r.value for r in consumed.get(p, [])]
        assert len(got) == len(set(got)), f"partition {p}: duplicates"
        assert got == values, (f"partition {p}: consumed {len(got)} records, produced "
                               f"{len(values)}; first difference at index "
                               f"{first_difference(got, values)}")
        assert [r.offset for r in consumed[p]] == list(range(len(values)))


def test_idempotent_10k_exactly_once(brook):
    topic = unique_topic("idem")
    create_topic(brook.bootstrap, topic, partitions=3)
    p = idempotent_producer(brook.bootstrap)
    records = [{"key": f"k{i % 101}".encode(), "value": f"v{i}".encode()}
               for i in range(10_000)]
    deliveries = produce_all(p, topic, records)
    assert_all_delivered(deliveries)
    assert len({(d.partition, d.offset) for d in deliveries}) == len(records)

    by_partition: dict[int, list] = {}
    for d, r in zip(deliveries, records):
        by_partition.setdefault(d.partition, []).append(r["value"])
    consumed = consume_to_end(brook.bootstrap, topic, 3)
    assert sum(len(v) for v in consumed.values()) == len(records)
    check_exactly_once_in_order(consumed, by_partition)


@pytest.mark.deadline(180)
def test_idempotent_producer_survives_broker_restart(brook):
    topic = unique_topic("idem-restart")
    create_topic(brook.bootstrap, topic, partitions=3)
    p = idempotent_producer(brook.bootstrap)

    phase1 = [{"key": f"k{i % 101}".encode(), "value": f"a{i}".encode()}
              for i in range(5_000)]
    d1 = produce_all(p, topic, phase1)
    assert_all_delivered(d1)

    # Restart (SIGTERM, start on the same port and data dir) with the producer alive:
    # it must reconnect and go on with the same producer id and sequence numbers.
    brook.restart()

    phase2 = [{"key": f"k{i % 101}".encode(), "value": f"b{i}".encode()}
              for i in range(5_000)]
    d2 = produce_all(p, topic, phase2, timeout=90)
    assert_all_delivered(d2)
    p.flush(10)

    deliveries = d1 + d2
    records = phase1 + phase2
    assert len({(d.partition, d.offset) for d in deliveries}) == len(records)
    by_partition: dict[int, list] = {}
    for d, r in zip(deliveries, records):
        by_partition.setdefault(d.partition, []).append(r["value"])
    consumed = consume_to_end(brook.bootstrap, topic, 3)
    assert sum(len(v) for v in consumed.values()) == len(records)
    check_exactly_once_in_order(consumed, by_partition)
