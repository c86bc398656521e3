"""Log compaction (`cleanup.policy=compact`) on a user topic, read back with real
clients: confluent-kafka (librdkafka) and kafka-python see each key's last value at
its original offset, the log shrinks, offsets stay where they were (a compacted log
has gaps), and a broker killed with -9 comes back with the same view."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from kafka_helpers import (
    assert_all_delivered,
    create_topic,
    produce_all,
    producer,
    unique_topic,
    wait_until,
)

pytestmark = pytest.mark.brook_config({"log.cleaner.backoff.ms": "300",
                                        "log.segment.bytes": "16384"})

KEYS = 20
ROUNDS = 60


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of every record of partition 0, with librdkafka."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if c.position([TopicPartition(topic, 0)])[0].offset >= high:
                    return out
                continue
            out.append((m.offset(), m.key(), m.value()))
        raise AssertionError(f"did not reach offset {high}; read {len(out)}")
    finally:
        c.close()


def last_values(records) -> dict[bytes, tuple[int, bytes | None]]:
    out = {}
    for offset, key, value in records:
        out[key] = (offset, value)
    return out


def test_a_compacted_topic_keeps_each_keys_last_value(brook):
    topic = unique_topic("compact")
    create_topic(brook.bootstrap, topic, 1, config={
        "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
    records = [{"key": f"k{i % KEYS}".encode(), "value": f"v{r}-{i % KEYS}".encode() * 5,
                "partition": 0}
               for r in range(ROUNDS) for i in range(KEYS)]
    # Keys k0-k4 end with a tombstone.
    records += [{"key": f"k{i}".encode(), "value": None, "partition": 0} for i in range(5)]
    p = producer(brook.bootstrap, **{"linger.ms": 0, "batch.num.messages": 7})
    assert_all_delivered(produce_all(p, topic, records))
    before = read_all(brook.bootstrap, topic)
    assert len(before) == len(records)
    expected = last_values(before)

    def compacted():
        got = read_all(brook.bootstrap, topic)
        return got if len(got) < len(records) // 4 else None

    after = wait_until(compacted, 30, what="the cleaner to compact the topic")
    # Every key keeps its last record at its original offset (tombstones are young:
    # delete.retention.ms is a day), and offsets only ever increase.
    assert last_values(after) == expected
    offsets = [o for o, _, _ in after]
    assert offsets == sorted(set(offsets))
    assert "compacted log" in brook.log_tail()

    # kafka-python reads the compacted log (with its empty batches) to the end too.
    kc = KafkaConsumer(bootstrap_servers=brook.bootstrap, enable_auto_commit=False,
                       consumer_timeout_ms=5000)
    try:
        tp = KpTopicPartition(topic, 0)
        kc.assign([tp])
        kc.seek_to_beginning(tp)
        seen = [(m.offset, m.key, m.value) for m in kc]
    finally:
        kc.close()
    assert last_values(seen) == expected

    brook.kill9()
    brook.start()
    assert last_values(read_all(brook.bootstrap, topic)) == expected
    assert len(read_all(brook.bootstrap, topic)) == len(after)


def test_absurd_cleaner_settings_are_refused(brook):
    from confluent_kafka.admin import ConfigResource, ResourceType

    from kafka_helpers import admin_client
    topic = unique_topic("compact-bad")
    create_topic(brook.bootstrap, topic, 1, config={"cleanup.policy": "compact"})
    a = admin_client(brook.bootstrap)
    for name, value in [("min.cleanable.dirty.ratio", "1.5"),
                        ("min.cleanable.dirty.ratio", "-0.1"),
                        ("min.compaction.lag.ms", "-1"),
                        ("max.compaction.lag.ms", "0"),
                        ("delete.retention.ms", "-5")]:
        res = ConfigResource(ResourceType.TOPIC, topic, set_config={name: value})
        with pytest.raises(Exception) as e:
            a.alter_configs([res])[res].result(10)
        assert "INVALID_CONFIG" in str(e.value) or "must be" in str(e.value), (name, e.value)


@pytest.mark.deadline(240)
def test_kill9_while_the_cleaner_runs_loses_no_last_value(brook, brook_bin):
    """Rounds of keyed writes and tombstones (acks=all) into a compacted topic whose
    cleaner runs every 300 ms, the broker killed with -9 at a random moment after each
    round: after every restart each key's last acknowledged value is there at its
    offset, and `brook check-log` finds the log consistent."""
    import random
    import subprocess

    rng = random.Random(1234)
    topic = unique_topic("compact-kill")
    create_topic(brook.bootstrap, topic, 1, config={
        "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
    model: dict[bytes, bytes | None] = {}
    for round_ in range(8):
        records = []
        for _ in range(600):
            key = f"k{rng.randrange(150)}".encode()
            value = None if rng.random() < 0.1 else f"r{round_}-{rng.random()}".encode() * 3
            records.append({"key": key, "value": value, "partition": 0})
        p = producer(brook.bootstrap, **{"linger.ms": 0, "batch.num.messages": 5,
                                         "acks": "all"})
        assert_all_delivered(produce_all(p, topic, records))
        for r in records:
            model[r["key"]] = r["value"]
        time.sleep(rng.uniform(0.0, 1.2))
        brook.kill9()
        brook.start()
        got = {k: v for _, k, v in read_all(brook.bootstrap, topic)}
        assert got == model, f"round {round_}: {len(got)} keys read, {len(model)} expected"
    assert "compacted log" in brook.log_tail(1 << 20)
    brook.stop()
    check = subprocess.run([brook_bin, "check-log", str(brook.data_dir)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def read_committed(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of partition 0 as a read_committed librdkafka consumer
    sees it, to the last stable offset."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-rc",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed"})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                return out
            out.append((m.offset(), m.key(), m.value()))
        raise AssertionError(f"no end of partition; read {len(out)}")
    finally:
        c.close()


@pytest.mark.deadline(180)
def test_tombstones_and_aborted_transactions_go_and_producers_carry_on(brook):
    """KIP-534 on a real broker: committed and aborted transactions and tombstones in
    a compacted topic with delete.retention.ms=1500. The first passes remove the
    aborted records and superseded values but keep the tombstones; once the horizon
    has passed they go too. A read_committed consumer sees each live key's last value
    throughout, and after kill -9 the same transactional producer carries on."""
    from confluent_kafka import Producer

    topic = unique_topic("compact-txn")
    create_topic(brook.bootstrap, topic, 1, config={
        "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "1500"})
    tp = Producer({"bootstrap.servers": brook.bootstrap, "transactional.id": "compact-txn",
                   "linger.ms": 5})
    tp.init_transactions(10)
    model: dict[bytes, bytes | None] = {}
    for t in range(30):
        tp.begin_transaction()
        staged = {}
        for i in range(20):
            key = f"k{(t * 7 + i) % 40}".encode()
            value = None if i % 9 == 8 else f"t{t}-{i}".encode() * 8
            tp.produce(topic, key=key, value=value, partition=0)
            staged[key] = value
        if t % 3 == 2:
            tp.abort_transaction(10)
        else:
            tp.commit_transaction(10)
            model.update(staged)
    # Plain writes of other keys roll segments so the transactions get cleaned.
    p = producer(brook.bootstrap, **{"linger.ms": 0})
    assert_all_delivered(produce_all(p, topic, [
        {"key": f"fill{i % 10}".encode(), "value": b"x" * 500, "partition": 0}
        for i in range(200)]))
    for i in range(10):
        model[f"fill{i}".encode()] = b"x" * 500
    live = {k: v for k, v in model.items() if v is not None}

    def view():
        return {k: v for _, k, v in read_committed(brook.bootstrap, topic)}

    # Tombstones first stay (their horizon is 1.5 s after the pass that reached them),
    # then go; the live values never change.
    def tombstones_gone():
        got = view()
        assert {k: v for k, v in got.items() if v is not None} == live
        return got if got == live else None

    wait_until(tombstones_gone, 60, interval=0.5, what="tombstones past their horizon to go")

    brook.kill9()
    brook.start()
    assert view() == live
    # The producer's epoch and sequences survived cleaning and the restart.
    tp2 = Producer({"bootstrap.servers": brook.bootstrap, "transactional.id": "compact-txn"})
    tp2.init_transactions(10)
    tp2.begin_transaction()
    tp2.produce(topic, key=b"after", value=b"restart", partition=0)
    tp2.commit_transaction(10)
    live[b"after"] = b"restart"
    assert view() == live
