"""Batches whose CRC is valid but whose records are not what the header says are
refused (INVALID_RECORD / CORRUPT_MESSAGE) and leave the log untouched, so consumers
never stall on them; keyless records are refused on a compacted topic."""

import gzip
import time

import pytest
from confluent_kafka import KafkaError

import kafka_wire as w
from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
    watermarks,
)

CORRUPT_MESSAGE = 2
INVALID_RECORD = 87


def batch(records_bytes: bytes, count: int, attributes: int = 0) -> bytes:
    """A magic-2 batch with a valid CRC around whatever records section it is given,
    declaring `count` records."""
    now = int(time.time() * 1000)
    after_crc = (w.i16(attributes) + w.i32(count - 1) + w.i64(now) + w.i64(now)
                 + w.i64(-1) + w.i16(-1) + w.i32(-1) + w.i32(count) + records_bytes)
    after_length = w.i32(-1) + w.i8(2) + w.u32(w.crc32c(after_crc)) + after_crc
    return w.i64(0) + w.i32(len(after_length)) + after_length


def records(n: int) -> bytes:
    return b"".join(w.record(i, None, f"v{i}".encode()) for i in range(n))


POISON = {
    "count-too-high": lambda: batch(records(2), 3),
    "count-too-low": lambda: batch(records(3), 2),
    "count-2^31-1": lambda: batch(records(1), 2**31 - 1),
    "garbage-records": lambda: batch(b"\xff" * 40, 2),
    "empty-records": lambda: batch(b"", 1),
    "gzip-flag-on-plain": lambda: batch(records(2), 2, attributes=1),
    "offset-deltas-skip": lambda: batch(w.record(0, None, b"a") + w.record(5, None, b"b"), 2),
    "trailing-bytes": lambda: batch(records(2) + b"\x00\x00", 2),
    "gzip-lying-count": lambda: batch(gzip.compress(records(2)), 3, attributes=1),
}


@pytest.fixture(scope="module")
def topic(brook_module):
    t = unique_topic("poison")
    create_topic(brook_module.bootstrap, t, partitions=1)
    return t


@pytest.mark.parametrize("name", sorted(POISON))
def test_poisoned_batch_is_refused_and_log_untouched(brook_module, topic, name):
    broker = brook_module
    _, end = watermarks(broker.bootstrap, topic, 0)
    s = w.connect(broker.port)
    try:
        s.sendall(w.produce_request_v9(1, topic, 0, POISON[name]()))
        resp = w.parse_produce_v9(w.read_response(s, 1, flexible_header=True))
        assert resp[0][2] in (INVALID_RECORD, CORRUPT_MESSAGE), resp
        # The connection still works and a good batch lands right after the old end.
        s.sendall(w.produce_request_v9(2, topic, 0, batch(records(2), 2)))
        resp = w.parse_produce_v9(w.read_response(s, 2, flexible_header=True))
        assert resp == [(topic, 0, 0, end)]
    finally:
        s.close()
    assert watermarks(broker.bootstrap, topic, 0) == (0, end + 2)


def test_consumers_read_past_every_refused_batch(brook_module, topic):
    got = consume_to_end(brook_module.bootstrap, topic, [0])[0]
    assert [r.offset for r in got] == list(range(len(got)))
    assert all(r.value in (b"v0", b"v1") for r in got)
    brook_module.assert_alive()


def test_keyless_records_on_a_compacted_topic_are_refused(brook_module):
    broker = brook_module
    t = unique_topic("compacted")
    create_topic(broker.bootstrap, t, partitions=1, config={"cleanup.policy": "compact"})
    p = producer(broker.bootstrap, **{"retries": 0, "enable.idempotence": False})
    keyless = produce_all(p, t, [{"value": b"no key", "partition": 0}])
    assert keyless[0].error is not None
    assert keyless[0].error.code() == KafkaError.INVALID_RECORD, keyless[0].error
    keyed = produce_all(p, t, [{"key": b"k", "value": b"v", "partition": 0}])
    assert_all_delivered(keyed)
    assert watermarks(broker.bootstrap, t, 0) == (0, 1)


def txn_batch(producer_id: int, epoch: int, n: int = 2) -> bytes:
    """A transactional batch (attributes bit 4) of `producer_id` at `epoch`, sequence 0."""
    now = int(time.time() * 1000)
    after_crc = (w.i16(0x10) + w.i32(n - 1) + w.i64(now) + w.i64(now)
                 + w.i64(producer_id) + w.i16(epoch) + w.i32(0) + w.i32(n) + records(n))
    after_length = w.i32(-1) + w.i8(2) + w.u32(w.crc32c(after_crc)) + after_crc
    return w.i64(0) + w.i32(len(after_length)) + after_length


def produce_txn_v9(correlation: int, transactional_id: str, topic: str, batch: bytes) -> bytes:
    body = (w.compact_string(transactional_id) + w.i16(-1) + w.i32(10_000)
            + w.compact_array([w.compact_string(topic)
                               + w.compact_array([w.i32(0) + w.compact_bytes(batch) + w.NO_TAGS])
                               + w.NO_TAGS])
            + w.NO_TAGS)
    return w.frame(w.header_v2(0, 9, correlation) + body)


@pytest.mark.deadline(90)
def test_a_transaction_no_coordinator_began_cannot_hold_back_read_committed(brook_module):
    """KIP-890: transactional records from a producer id that was never issued (or a
    partition never added to its transaction) are refused, so the last stable offset
    is never stuck behind a transaction nobody will end."""
    from confluent_kafka import Consumer, TopicPartition

    broker = brook_module
    t = unique_topic("orphan")
    create_topic(broker.bootstrap, t, partitions=1)
    # A real transaction first, so the coordinator exists and knows some producers.
    p = producer(broker.bootstrap, **{"transactional.id": unique_topic("real")})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(t, b"committed-before", partition=0)
    p.commit_transaction(30)

    s = w.connect(broker.port)
    try:
        for i, (tid, pid) in enumerate([("never-issued", 987654), (None, 987655)]):
            frame = (produce_txn_v9(10 + i, tid, t, txn_batch(pid, 0)) if tid
                     else w.produce_request_v9(10 + i, t, 0, txn_batch(pid, 0)))
            s.sendall(frame)
            resp = w.parse_produce_v9(w.read_response(s, 10 + i, flexible_header=True))
            assert resp[0][2] != 0, f"an orphan transactional batch was accepted: {resp}"
    finally:
        s.close()

    p.begin_transaction()
    p.produce(t, b"committed-after", partition=0)
    p.commit_transaction(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique_topic("rc"),
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(t, 0, 0)])
    seen = []
    deadline = time.monotonic() + 20
    while b"committed-after" not in seen and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append(m.value())
    c.close()
    assert seen == [b"committed-before", b"committed-after"], seen


def broker_rss_mib(broker) -> float:
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.deadline(120)
def test_a_compression_bomb_to_a_recompressing_topic_costs_nothing(brook):
    """A 300 KB gzip batch that inflates to 300 MB, sent to a topic whose
    compression.type makes the broker re-encode batches, four at a time: refused as
    INVALID_RECORD by the bounded check before any re-encoding, and the broker's memory
    stays small. (Before: each inflated fully first; 4 in parallel took 2.5 GB.)"""
    import threading

    t = unique_topic("bomb")
    create_topic(brook.bootstrap, t, partitions=1, config={"compression.type": "zstd"})
    payload = gzip.compress(w.record(0, None, bytes(300 * 1024 * 1024)), 9)
    bomb = batch(payload, 1, attributes=1)
    codes = []

    def send(i):
        s = w.connect(brook.port)
        try:
            s.sendall(w.produce_request_v9(200 + i, t, 0, bomb))
            codes.append(w.parse_produce_v9(w.read_response(s, 200 + i, flexible_header=True))[0][2])
        finally:
            s.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    peak = 0.0
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads):
        peak = max(peak, broker_rss_mib(brook))
        time.sleep(0.02)
    assert codes == [INVALID_RECORD] * 4, codes
    assert peak < 600, f"broker RSS peaked at {peak:.0f} MiB"
    assert watermarks(brook.bootstrap, t, 0) == (0, 0)
