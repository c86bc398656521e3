"""Kafka transactions (KIP-98, KIP-447) with real clients: librdkafka's transactional
producer (confluent-kafka) and kafka-python's, read back by read_committed and
read_uncommitted consumers.

Covered: commit and abort (control records take offsets, aborted records are filtered
out of read_committed fetches), the last stable offset (a read_committed consumer and
ListOffsets(read_committed) stop at the first offset of the oldest open transaction),
consume-transform-produce with send_offsets_to_transaction (TxnOffsetCommit: the group's
offsets move only when the transaction commits), zombie fencing by a second producer
with the same transactional.id, the broker aborting a transaction that outlives its
transaction.timeout.ms, a kill -9 with one transaction committed and one open, and a
3-node cluster whose transaction coordinator is killed under a transactional load.

Every measured time is printed (run with `-s` to see them).

Notes on what Kafka does and these tests rely on:
- commit_transaction()/abort_transaction() return once the coordinator has logged the
  decision; the markers are written to the partitions afterwards. So visibility right
  after a commit is waited for (bounded), never assumed.
- Each transaction writes exactly one control record (marker) per partition it touched,
  so offsets are not dense: N records committed to an empty partition leave the high
  watermark at N + 1.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

import kafka_wire as kw
from cluster import Cluster, event
from kafka_helpers import admin_client, consumer, create_topic, producer, unique_topic, wait_until

SEED = int(os.environ.get("BROOK_TXN_SEED", random.randrange(1 << 30)))

# Client-side limit for init_transactions / commit / abort / send_offsets calls.
TXN_CALL_TIMEOUT_S = 30

# librdkafka's error codes for "this producer was fenced".
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                KafkaError.INVALID_PRODUCER_EPOCH}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def new_txn_id(prefix: str = "txn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def txn_producer(bootstrap: str, transactional_id: str, **conf) -> Producer:
    base = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "retry.backoff.ms": 50,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    }
    base.update(conf)
    return Producer(base)


def kerr(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def describe_err(err: KafkaError | None) -> str:
    if err is None:
        return "?"
    return (f"{err.name()} ({err.code()}): {err.str()} [fatal={err.fatal()} "
            f"retriable={err.retriable()} txn_requires_abort={err.txn_requires_abort()}]")


def timed(what: str, fn, *args):
    """Runs fn(*args); prints and returns the seconds it took."""
    t0 = time.monotonic()
    try:
        fn(*args)
    except KafkaException as e:
        raise AssertionError(f"{what} failed: {describe_err(kerr(e))}") from None
    secs = time.monotonic() - t0
    print(f"{what}: {secs * 1000:.0f} ms")
    return secs


def send(p: Producer, topic: str, records: list[tuple[int, bytes]],
         timeout: float = 30) -> dict[int, list[tuple[int, bytes]]]:
    """Produces each (partition, value), flushes, asserts every delivery succeeded.
    Returns {partition: [(offset, value), ...]} in produce order."""
    reports: list = [None] * len(records)

    def cb_for(i):
        def cb(err, msg):
            reports[i] = (err, msg.offset())
        return cb

    for i, (part, value) in enumerate(records):
        while True:
            try:
                p.produce(topic, value=value, partition=part, on_delivery=cb_for(i))
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(timeout)
    assert left == 0, f"{left} of {len(records)} records still undelivered after {timeout}s"
    missing = [i for i, r in enumerate(reports) if r is None]
    assert not missing, f"no delivery report for {len(missing)} records"
    failed = [(records[i][1], r[0]) for i, r in enumerate(reports) if r[0] is not None]
    assert not failed, f"{len(failed)} deliveries failed, first: {failed[0]}"
    out: dict[int, list[tuple[int, bytes]]] = {}
    for (part, value), (_, offset) in zip(records, reports):
        out.setdefault(part, []).append((offset, value))
    return out


def spread(prefix: str, n: int, partitions: int) -> list[tuple[int, bytes]]:
    """n records b"<prefix>-00000"..., record i to partition i % partitions."""
    return [(i % partitions, f"{prefix}-{i:05d}".encode()) for i in range(n)]


def first_difference(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def by_partition(records: list[tuple[int, bytes]]) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for part, value in records:
        out.setdefault(part, []).append(value)
    return out


class Reader:
    """A consumer that assign()s partitions of `topic` from the beginning with one
    isolation level (no group) and collects (offset, value) per partition.

    "At the end" of a partition means librdkafka reported PARTITION_EOF: its fetch
    position reached the high watermark (read_uncommitted) or the last stable offset
    (read_committed). Control records are never returned but move the position."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, isolation: str):
        assert isolation in ("read_committed", "read_uncommitted")
        self.topic, self.isolation = topic, isolation
        self.parts = list(range(partitions))
        self.c = consumer(bootstrap, **{"isolation.level": isolation,
                                        "enable.partition.eof": True,
                                        "fetch.wait.max.ms": 100})
        self.records: dict[int, list[tuple[int, bytes]]] = {p: [] for p in self.parts}
        self.eof: set[int] = set()
        self.final_positions: dict[int, int] = {}
        self.reached: float | None = None   # when the last read() had its min_records
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self.parts])

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.c is not None:
            self.c.close()
            self.c = None

    def count(self) -> int:
        return sum(len(v) for v in self.records.values())

    def values(self, part: int | None = None) -> list[bytes]:
        if part is None:
            return [v for p in self.parts for _, v in self.records[p]]
        return [v for _, v in self.records[part]]

    def offsets(self, part: int) -> list[int]:
        return [o for o, _ in self.records[part]]

    def _poll(self, timeout: float) -> None:
        for m in self.c.consume(1000, timeout):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.eof.add(m.partition())
                    continue
                raise AssertionError(f"{self.isolation} consumer of {self.topic}: "
                                     f"{describe_err(err)}")
            self.eof.discard(m.partition())
            self.records[m.partition()].append((m.offset(), m.value()))

    def read(self, min_records: int = 0, timeout: float = 20.0,
             settle: float = 0.0) -> "Reader":
        """Consumes until every partition is at its end and at least `min_records`
        records arrived in total, then for `settle` more seconds (to catch records
        that should not be there). `self.reached` is when min_records were there."""
        deadline = time.monotonic() + timeout
        self.reached = time.monotonic() if self.count() >= min_records else None
        while not (self.eof == set(self.parts) and self.count() >= min_records):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.isolation} consumer of {self.topic}: after {timeout}s "
                    f"{self.count()} records (want >= {min_records}) "
                    f"{ {p: len(r) for p, r in self.records.items()} }, at the end of "
                    f"partitions {sorted(self.eof)} of {self.parts}, positions "
                    f"{self.positions()}")
            self._poll(0.05)
            if self.reached is None and self.count() >= min_records:
                self.reached = time.monotonic()
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self._poll(0.1)
        return self

    def positions(self) -> dict[int, int]:
        tps = self.c.position([TopicPartition(self.topic, p) for p in self.parts])
        return {tp.partition: tp.offset for tp in tps}

    def watermarks(self, part: int) -> tuple[int, int]:
        """ListOffsets earliest/latest with this consumer's isolation level: for
        read_committed the high end is the last stable offset."""
        wm = self.c.get_watermark_offsets(TopicPartition(self.topic, part), timeout=10)
        assert wm is not None, f"get_watermark_offsets({self.topic}-{part}) timed out"
        return wm


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str,
             min_records: int = 0, timeout: float = 20.0, settle: float = 0.0) -> Reader:
    """A Reader that has read to the end (closed; records and positions kept)."""
    r = Reader(bootstrap, topic, partitions, isolation)
    try:
        r.read(min_records, timeout, settle)
        r.final_positions = r.positions()
    finally:
        r.close()
    return r


def latest_offsets(bootstrap: str, topic: str, partitions: int,
                   isolation: IsolationLevel, admin=None) -> dict[int, int]:
    """AdminClient ListOffsets(latest) per partition with the given isolation level:
    the high watermark (READ_UNCOMMITTED) or the last stable offset (READ_COMMITTED)."""
    admin = admin or admin_client(bootstrap)
    tps = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
    res = admin.list_offsets(tps, isolation_level=isolation, request_timeout=10)
    return {tp.partition: fut.result(15).offset for tp, fut in res.items()}


def hwm_and_lso(bootstrap: str, topic: str, partitions: int,
                admin=None) -> dict[int, tuple[int, int]]:
    """{partition: (high watermark, last stable offset)}."""
    admin = admin or admin_client(bootstrap)
    hwm = latest_offsets(bootstrap, topic, partitions, IsolationLevel.READ_UNCOMMITTED, admin)
    lso = latest_offsets(bootstrap, topic, partitions, IsolationLevel.READ_COMMITTED, admin)
    return {p: (hwm[p], lso[p]) for p in range(partitions)}


def warm_admin(bootstrap: str, topic: str, partitions: int):
    """An AdminClient that already has a connection to the partition leaders. (A new
    librdkafka client drops its bootstrap connection once it learns the broker's node
    id and connects again about a second later: a cold client's first ListOffsets
    measures that, not the broker.)"""
    admin = admin_client(bootstrap)
    latest_offsets(bootstrap, topic, partitions, IsolationLevel.READ_UNCOMMITTED, admin)
    return admin


def wait_stable(bootstrap: str, topic: str, partitions: int, want_hwm: dict[int, int],
                timeout: float = 15.0, admin=None) -> float:
    """Waits until every partition's HWM and LSO both equal want_hwm[p] (all markers
    written, nothing open). Returns the seconds waited (when the first ListOffsets round
    already agrees, that is just its latency; more rounds are printed)."""
    t0 = time.monotonic()
    admin = admin or admin_client(bootstrap)
    first, polls = None, 0
    while True:
        t_poll = time.monotonic()
        last = hwm_and_lso(bootstrap, topic, partitions, admin)
        polls += 1
        if first is None:
            first = (last, time.monotonic() - t_poll)
        if all(last[p] == (want_hwm[p], want_hwm[p]) for p in range(partitions)):
            secs = time.monotonic() - t0
            if polls > 1:
                print(f"{topic}: HWM = LSO = {want_hwm} after {polls} ListOffsets rounds, "
                      f"{secs * 1000:.0f} ms; the first answered {first[0]} in "
                      f"{first[1] * 1000:.0f} ms")
            return secs
        if time.monotonic() - t0 > timeout:
            raise AssertionError(
                f"{topic}: (high watermark, last stable offset) per partition still "
                f"{last} after {timeout}s; expected both = {want_hwm}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# 1. commit
# ---------------------------------------------------------------------------------------

def test_commit_visible_to_both_isolation_levels(brook):
    topic = unique_topic("txn-commit")
    parts, n = 3, 300
    create_topic(brook.bootstrap, topic, partitions=parts)
    admin = warm_admin(brook.bootstrap, topic, parts)
    p = txn_producer(brook.bootstrap, new_txn_id())
    timed("init_transactions", p.init_transactions, TXN_CALL_TIMEOUT_S)

    records = spread("c", n, parts)
    p.begin_transaction()
    delivered = send(p, topic, records)
    timed("commit_transaction (300 records, 3 partitions)", p.commit_transaction,
          TXN_CALL_TIMEOUT_S)

    expected = by_partition(records)
    for part in range(parts):
        offs = [o for o, _ in delivered[part]]
        assert offs == list(range(len(expected[part]))), (
            f"partition {part}: data offsets {offs[:3]}..{offs[-3:]} are not "
            f"0..{len(expected[part]) - 1}")
    # One commit marker per partition after the data: HWM = records + 1.
    want_hwm = {part: len(expected[part]) + 1 for part in range(parts)}
    secs = wait_stable(brook.bootstrap, topic, parts, want_hwm, admin=admin)
    print(f"commit markers in place (LSO = HWM = records + 1), confirmed by ListOffsets "
          f"{secs * 1000:.0f} ms after commit_transaction returned")

    for isolation in ("read_committed", "read_uncommitted"):
        r = Reader(brook.bootstrap, topic, parts, isolation)
        try:
            r.read(min_records=n, timeout=20, settle=0.5)
            for part in range(parts):
                got = r.values(part)
                assert got == expected[part], (
                    f"{isolation}, partition {part}: read {len(got)} records, committed "
                    f"{len(expected[part])}; first read {got[:3]}, expected {expected[part][:3]}")
                assert r.offsets(part) == list(range(len(expected[part]))), \
                    f"{isolation}, partition {part}: offsets {r.offsets(part)[:5]}..."
            # The consumer's position moves past the control record it never returns,
            # and ListOffsets with this consumer's isolation level agrees.
            assert r.positions() == want_hwm, (
                f"{isolation}: positions {r.positions()} after reading to the end; "
                f"expected {want_hwm} (last data offset + 1 for the commit marker + 1)")
            for part in range(parts):
                assert r.watermarks(part) == (0, want_hwm[part]), (
                    f"{isolation}, partition {part}: watermarks {r.watermarks(part)}, "
                    f"expected (0, {want_hwm[part]})")
        finally:
            r.close()
    assert sum(want_hwm.values()) == n + parts


# ---------------------------------------------------------------------------------------
# 2. abort
# ---------------------------------------------------------------------------------------

def test_abort_hidden_from_read_committed(brook):
    topic = unique_topic("txn-abort")
    parts, n = 3, 150
    create_topic(brook.bootstrap, topic, partitions=parts)
    admin = warm_admin(brook.bootstrap, topic, parts)
    p = txn_producer(brook.bootstrap, new_txn_id())
    p.init_transactions(TXN_CALL_TIMEOUT_S)

    aborted = spread("aborted", n, parts)
    p.begin_transaction()
    d_aborted = send(p, topic, aborted)     # flushed: in the log before the abort
    timed("abort_transaction", p.abort_transaction, TXN_CALL_TIMEOUT_S)

    committed = spread("committed", n, parts)
    p.begin_transaction()
    d_committed = send(p, topic, committed)
    timed("commit_transaction", p.commit_transaction, TXN_CALL_TIMEOUT_S)

    exp_aborted, exp_committed = by_partition(aborted), by_partition(committed)
    want_hwm = {}
    for part in range(parts):
        last_aborted = d_aborted[part][-1][0]
        first_committed = d_committed[part][0][0]
        assert first_committed == last_aborted + 2, (
            f"partition {part}: the committed transaction starts at offset "
            f"{first_committed}, the aborted one ended at {last_aborted}: expected exactly "
            f"one control record (the abort marker) in between")
        want_hwm[part] = d_committed[part][-1][0] + 2
    secs = wait_stable(brook.bootstrap, topic, parts, want_hwm, admin=admin)
    print(f"markers in place (LSO = HWM), confirmed by ListOffsets {secs * 1000:.0f} ms "
          f"after commit_transaction returned")

    rc = read_all(brook.bootstrap, topic, parts, "read_committed", min_records=n, settle=0.5)
    for part in range(parts):
        got = rc.values(part)
        leaked = [v for v in got if v.startswith(b"aborted")]
        assert not leaked, (f"read_committed, partition {part}: {len(leaked)} records of "
                            f"the aborted transaction returned, e.g. {leaked[:3]}")
        assert got == exp_committed[part], (
            f"read_committed, partition {part}: read {len(got)} records, expected the "
            f"{len(exp_committed[part])} committed ones in order; first {got[:3]}")
        assert rc.offsets(part) == [o for o, _ in d_committed[part]]
    assert rc.final_positions == want_hwm, \
        f"read_committed positions {rc.final_positions}, expected {want_hwm}"

    ru = read_all(brook.bootstrap, topic, parts, "read_uncommitted", min_records=2 * n,
                  settle=0.5)
    for part in range(parts):
        got = ru.values(part)
        assert got == exp_aborted[part] + exp_committed[part], (
            f"read_uncommitted, partition {part}: read {len(got)} records, expected "
            f"{len(exp_aborted[part])} aborted then {len(exp_committed[part])} committed")
    assert ru.final_positions == want_hwm


# ---------------------------------------------------------------------------------------
# 3. the last stable offset
# ---------------------------------------------------------------------------------------

def test_open_transaction_blocks_read_committed_at_lso(brook):
    topic = unique_topic("txn-lso")
    create_topic(brook.bootstrap, topic, partitions=1)
    plain = producer(brook.bootstrap, acks="all")

    pre = send(plain, topic, [(0, b"pre-%d" % i) for i in range(5)])[0]
    tp = txn_producer(brook.bootstrap, new_txn_id())
    tp.init_transactions(TXN_CALL_TIMEOUT_S)
    tp.begin_transaction()
    txn = send(tp, topic, [(0, b"txn-%d" % i) for i in range(3)])[0]   # flushed, open
    post = send(plain, topic, [(0, b"post-%d" % i) for i in range(5)])[0]
    first_open = txn[0][0]
    hwm = post[-1][0] + 1
    assert [o for o, _ in pre + txn + post] == list(range(hwm)), \
        f"offsets not dense before any marker: {[o for o, _ in pre + txn + post]}"

    # ListOffsets(latest): READ_COMMITTED gives the LSO, READ_UNCOMMITTED the HWM.
    (got_hwm, got_lso), = hwm_and_lso(brook.bootstrap, topic, 1).values()
    assert (got_hwm, got_lso) == (hwm, first_open), (
        f"with a transaction open from offset {first_open}: ListOffsets latest gave "
        f"HWM {got_hwm} (expected {hwm}), read_committed LSO {got_lso} "
        f"(expected {first_open})")

    rc = Reader(brook.bootstrap, topic, 1, "read_committed")
    try:
        rc.read(min_records=len(pre), timeout=20, settle=1.5)
        assert rc.values() == [v for _, v in pre], (
            f"read_committed with a transaction open from offset {first_open}: read "
            f"{rc.values()}, expected only the {len(pre)} records before it (the later "
            f"non-transactional records are above the LSO too)")
        assert rc.positions() == {0: first_open}, \
            f"read_committed position {rc.positions()}, expected the LSO {first_open}"
        assert rc.watermarks(0) == (0, first_open), \
            f"read_committed consumer's watermarks {rc.watermarks(0)}, expected (0, {first_open})"
        ru_wm = Reader(brook.bootstrap, topic, 1, "read_uncommitted")
        try:
            assert ru_wm.watermarks(0) == (0, hwm)
        finally:
            ru_wm.close()

        t_commit = time.monotonic()
        timed("commit_transaction", tp.commit_transaction, TXN_CALL_TIMEOUT_S)
        # The same consumer goes on: the transaction, then what was produced after it.
        rc.read(min_records=len(pre) + len(txn) + len(post), timeout=20, settle=0.5)
        print(f"read_committed consumer unblocked {(rc.reached - t_commit) * 1000:.0f} ms "
              f"after commit_transaction was called")
        assert rc.values() == [v for _, v in pre + txn + post], \
            f"read_committed after the commit: {rc.values()}"
        assert rc.positions() == {0: hwm + 1}, \
            f"position {rc.positions()} after the commit marker, expected {hwm + 1}"
    finally:
        rc.close()
    assert wait_stable(brook.bootstrap, topic, 1, {0: hwm + 1}) < 15


# ---------------------------------------------------------------------------------------
# 4. consume-transform-produce
# ---------------------------------------------------------------------------------------

def group_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = admin_client(bootstrap)
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            request_timeout=10)[group]
    res = fut.result(15)
    return {tp.partition: tp.offset for tp in res.topic_partitions
            if tp.topic == topic and tp.offset >= 0}


def group_consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "fetch.wait.max.ms": 100,
    })
    c.subscribe([topic])
    return c


def consume_n(c: Consumer, n: int, timeout: float) -> list:
    msgs = []
    deadline = time.monotonic() + timeout
    while len(msgs) < n:
        assert time.monotonic() < deadline, \
            f"consumed {len(msgs)} of {n} input records in {timeout}s"
        for m in c.consume(n - len(msgs), 0.5):
            assert m.error() is None, f"consumer error: {describe_err(m.error())}"
            msgs.append(m)
    return msgs


def transform(p: Producer, c: Consumer, msgs, out_topic: str) -> None:
    """Produces one output record per input record (same partition) and adds the
    consumer's positions to the open transaction."""
    for m in msgs:
        while True:
            try:
                p.produce(out_topic, value=b"out:" + m.value(), partition=m.partition())
                break
            except BufferError:
                p.poll(0.05)
    positions = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
    p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), TXN_CALL_TIMEOUT_S)


@pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})
@pytest.mark.deadline(150)
def test_consume_transform_produce_exactly_once(brook):
    parts, m_count, k_count = 3, 300, 30
    in_topic, out_topic = unique_topic("txn-in"), unique_topic("txn-out")
    create_topic(brook.bootstrap, in_topic, partitions=parts)
    create_topic(brook.bootstrap, out_topic, partitions=parts)
    group = f"txn-group-{uuid.uuid4().hex[:8]}"
    plain = producer(brook.bootstrap, acks="all")
    inputs = spread("in", m_count, parts)
    send(plain, in_topic, inputs)

    p = txn_producer(brook.bootstrap, new_txn_id("ctp"))
    p.init_transactions(TXN_CALL_TIMEOUT_S)
    c = group_consumer(brook.bootstrap, group, in_topic)
    processed, rounds = 0, 0
    t0 = time.monotonic()
    try:
        deadline = time.monotonic() + 60
        while processed < m_count:
            assert time.monotonic() < deadline, f"processed {processed} of {m_count} in 60s"
            msgs = [m for m in c.consume(100, 0.5)]
            for m in msgs:
                assert m.error() is None, f"consumer error: {describe_err(m.error())}"
            if not msgs:
                continue
            p.begin_transaction()
            transform(p, c, msgs, out_topic)
            p.commit_transaction(TXN_CALL_TIMEOUT_S)
            processed += len(msgs)
            rounds += 1
        print(f"consume-transform-produce: {processed} records in {rounds} transactions, "
              f"{time.monotonic() - t0:.2f}s")
        assert processed == m_count, f"processed {processed} input records, produced {m_count}"

        want = {part: m_count // parts for part in range(parts)}
        wait_until(lambda: group_offsets(brook.bootstrap, group, in_topic) == want, 15,
                   what=f"group {group}'s committed offsets = {want}")

        # An aborted round: its output stays invisible and the offsets stay put.
        more = [(i % parts, f"more-{i:05d}".encode()) for i in range(k_count)]
        send(plain, in_topic, more)
        msgs = consume_n(c, k_count, 20)
        assert sorted(m.value() for m in msgs) == sorted(v for _, v in more)
        p.begin_transaction()
        transform(p, c, msgs, out_topic)
        # abort_transaction() purges records not yet sent: flush so they are in the log.
        assert p.flush(30) == 0, "the aborted round's output was not delivered"
        timed("abort_transaction (with offsets)", p.abort_transaction, TXN_CALL_TIMEOUT_S)
        t_end = time.monotonic() + 2
        while time.monotonic() < t_end:
            got = group_offsets(brook.bootstrap, group, in_topic)
            assert got == want, (f"group offsets {got} after the transaction that "
                                 f"carried them was aborted; expected still {want}")
            time.sleep(0.2)
    finally:
        c.close()

    # A new member of the group starts from the committed offsets: it gets exactly the
    # records of the aborted round again, and processes them for good this time.
    c2 = group_consumer(brook.bootstrap, group, in_topic)
    try:
        msgs = consume_n(c2, k_count, 30)
        assert sorted(m.value() for m in msgs) == sorted(v for _, v in more), \
            f"after the aborted round the group re-read {[m.value() for m in msgs][:5]}..."
        firsts = {}
        for m in msgs:
            firsts.setdefault(m.partition(), m.offset())
        assert firsts == {part: m_count // parts for part in range(parts)}, \
            f"first offsets re-read per partition {firsts}"
        p.begin_transaction()
        transform(p, c2, msgs, out_topic)
        p.commit_transaction(TXN_CALL_TIMEOUT_S)
        extra = c2.consume(100, 1.0)
        assert not [m for m in extra if m.error() is None], "more input than produced"
    finally:
        c2.close()

    final = {part: (m_count + k_count) // parts for part in range(parts)}
    wait_until(lambda: group_offsets(brook.bootstrap, group, in_topic) == final, 15,
               what=f"group {group}'s committed offsets = {final}")
    want_out = by_partition([(part, b"out:" + v) for part, v in inputs + more])
    out = read_all(brook.bootstrap, out_topic, parts, "read_committed",
                   min_records=m_count + k_count, settle=1.0)
    for part in range(parts):
        got = out.values(part)
        assert len(got) == len(set(got)), f"output partition {part}: duplicates"
        assert got == want_out[part], (
            f"output partition {part}: read_committed has {len(got)} records, expected "
            f"{len(want_out[part])} (each input exactly once, the aborted round's output "
            f"hidden); first difference at index {first_difference(got, want_out[part])}")
    ru = read_all(brook.bootstrap, out_topic, parts, "read_uncommitted",
                  min_records=m_count + 2 * k_count, settle=0.5)
    assert ru.count() == m_count + 2 * k_count, \
        f"read_uncommitted output has {ru.count()} records, expected {m_count + 2 * k_count}"


# ---------------------------------------------------------------------------------------
# 5. zombie fencing
# ---------------------------------------------------------------------------------------

def test_second_producer_fences_zombie(brook):
    topic = unique_topic("txn-zombie")
    parts = 3
    create_topic(brook.bootstrap, topic, partitions=parts)
    tid = new_txn_id("zombie")
    admin = warm_admin(brook.bootstrap, topic, parts)

    a = txn_producer(brook.bootstrap, tid)
    a.init_transactions(TXN_CALL_TIMEOUT_S)
    a.begin_transaction()
    d_a = send(a, topic, spread("zombie", 30, parts))

    b = txn_producer(brook.bootstrap, tid)
    timed("init_transactions of the second producer (aborts the first's transaction)",
          b.init_transactions, TXN_CALL_TIMEOUT_S)

    # The open transaction was aborted, not left hanging: the LSO is back at the HWM,
    # one abort marker after A's records.
    want_hwm = {part: d_a[part][-1][0] + 2 for part in range(parts)}
    secs = wait_stable(brook.bootstrap, topic, parts, want_hwm, admin=admin)
    print(f"abort markers for the fenced transaction in place (LSO = HWM), confirmed by "
          f"ListOffsets {secs * 1000:.0f} ms after init_transactions returned")

    # The zombie tries to go on: its write (to a partition already in its transaction,
    # so it goes straight to the partition leader with the old epoch) must be refused
    # (checked below: it is not in the log), and its commit fails fatally. One record,
    # no delivery callback: confluent-kafka raises the fatal error out of flush() and
    # would trip over a Python callback while doing so.
    a.produce(topic, value=b"zombie-late", partition=0)
    flush_err = None
    try:
        a.flush(15)
    except KafkaException as e:
        flush_err = kerr(e)
    with pytest.raises(KafkaException) as info:
        a.commit_transaction(TXN_CALL_TIMEOUT_S)
    err = kerr(info.value)
    print(f"fenced producer: flush() after its late record: "
          f"{describe_err(flush_err) if flush_err else 'no error'}; "
          f"commit_transaction raised {describe_err(err)}")
    assert err is not None and (err.fatal() or err.code() in FENCED_CODES), (
        f"commit_transaction of the fenced producer raised {describe_err(err)}; "
        f"expected a fatal error (fenced: PRODUCER_FENCED / INVALID_PRODUCER_EPOCH)")

    b.begin_transaction()
    d_b = send(b, topic, spread("fresh", 30, parts))
    b.commit_transaction(TXN_CALL_TIMEOUT_S)
    want_hwm = {part: d_b[part][-1][0] + 2 for part in range(parts)}
    wait_stable(brook.bootstrap, topic, parts, want_hwm)

    rc = read_all(brook.bootstrap, topic, parts, "read_committed", min_records=30, settle=0.5)
    assert sorted(rc.values()) == sorted(v for _, v in spread("fresh", 30, parts)), (
        f"read_committed: {len(rc.values())} records, "
        f"{sum(v.startswith(b'zombie') for v in rc.values())} from the fenced producer")
    ru = read_all(brook.bootstrap, topic, parts, "read_uncommitted", min_records=60,
                  settle=0.5)
    late = [v for v in ru.values() if v.startswith(b"zombie-late")]
    assert not late, f"the fenced producer's late records are in the log: {late}"
    assert ru.count() == 60, f"read_uncommitted: {ru.count()} records, expected 30 + 30"
    del info, a   # the ExceptionInfo's traceback would keep the zombie client alive


# ---------------------------------------------------------------------------------------
# 6. transaction timeout
# ---------------------------------------------------------------------------------------

@pytest.mark.brook_config({"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500})
def test_broker_aborts_timed_out_transaction(brook):
    topic = unique_topic("txn-timeout")
    create_topic(brook.bootstrap, topic, partitions=1)
    timeout_ms = 2000
    p = txn_producer(brook.bootstrap, new_txn_id("timeout"),
                     **{"transaction.timeout.ms": timeout_ms})
    p.init_transactions(TXN_CALL_TIMEOUT_S)
    t_begin = time.monotonic()   # before the transaction starts on the coordinator
    p.begin_transaction()
    abandoned = send(p, topic, [(0, b"abandoned-%d" % i) for i in range(5)])[0]
    later = send(producer(brook.bootstrap, acks="all"), topic,
                 [(0, b"later-%d" % i) for i in range(5)])[0]
    # ... and the transactional producer never calls commit or abort.

    rc = Reader(brook.bootstrap, topic, 1, "read_committed")
    try:
        rc.read(min_records=5, timeout=20, settle=0.5)
        visible = rc.reached - t_begin
        print(f"transaction.timeout.ms={timeout_ms}: the broker aborted the abandoned "
              f"transaction and read_committed saw later records {visible:.2f}s after "
              f"begin_transaction")
        assert rc.values() == [v for _, v in later], (
            f"read_committed after the timeout: {rc.values()}; expected only the later "
            f"non-transactional records")
        assert visible >= timeout_ms / 1000 - 0.1, (
            f"transaction aborted after {visible:.2f}s, before its "
            f"transaction.timeout.ms ({timeout_ms} ms)")
        assert visible <= timeout_ms / 1000 + 10
        assert rc.positions() == {0: later[-1][0] + 2}, \
            f"position {rc.positions()}, expected past the abort marker"
    finally:
        rc.close()
    ru = read_all(brook.bootstrap, topic, 1, "read_uncommitted", min_records=10)
    assert ru.values() == [v for _, v in abandoned + later]

    # The abandoned producer was fenced by the abort (Kafka bumps the epoch): it cannot
    # commit what the broker already aborted.
    with pytest.raises(KafkaException) as info:
        p.commit_transaction(TXN_CALL_TIMEOUT_S)
    print(f"commit_transaction after the broker's abort: {describe_err(kerr(info.value))}")
    del info, p


# ---------------------------------------------------------------------------------------
# 7. kill -9 with one committed and one open transaction
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(180)
def test_kill9_keeps_committed_and_open_transactions(brook):
    topic = unique_topic("txn-kill")
    parts = 3
    create_topic(brook.bootstrap, topic, partitions=parts)
    tid = new_txn_id("kill")
    # A long transaction timeout: the open transaction must stay open across the crash
    # until a new producer with the same id takes over.
    p1 = txn_producer(brook.bootstrap, tid, **{"transaction.timeout.ms": 300000})
    p1.init_transactions(TXN_CALL_TIMEOUT_S)

    committed = spread("committed", 60, parts)
    p1.begin_transaction()
    send(p1, topic, committed)
    p1.commit_transaction(TXN_CALL_TIMEOUT_S)

    p1.begin_transaction()
    d_open = send(p1, topic, spread("open", 60, parts))   # acknowledged, never decided
    first_open = {part: d_open[part][0][0] for part in range(parts)}

    brook.kill9()
    t0 = time.monotonic()
    brook.start()
    print(f"broker restarted after kill -9 in {time.monotonic() - t0:.2f}s")

    after = spread("after", 30, parts)
    d_after = send(producer(brook.bootstrap, acks="all"), topic, after)
    t_up = time.monotonic()
    rc = read_all(brook.bootstrap, topic, parts, "read_committed", min_records=len(committed),
                  timeout=30, settle=1.5)
    print(f"committed transaction visible to a new read_committed consumer "
          f"{rc.reached - t_up:.2f}s after the restart")
    assert sorted(rc.values()) == sorted(v for _, v in committed), (
        f"read_committed after the crash: {len(rc.values())} records "
        f"({sum(v.startswith(b'committed') for v in rc.values())} committed, "
        f"{sum(v.startswith(b'open') for v in rc.values())} of the open transaction, "
        f"{sum(v.startswith(b'after') for v in rc.values())} produced after it); "
        f"expected exactly the {len(committed)} committed")
    assert rc.final_positions == first_open, (
        f"read_committed positions {rc.final_positions}: expected to stop at the open "
        f"transaction's first offsets {first_open}")
    lso = latest_offsets(brook.bootstrap, topic, parts, IsolationLevel.READ_COMMITTED)
    assert lso == first_open, f"LSO after restart {lso}, expected {first_open}"

    # A new producer instance with the same transactional.id aborts the open one.
    p2 = txn_producer(brook.bootstrap, tid)
    timed("init_transactions after the crash (aborts the open transaction)",
          p2.init_transactions, TXN_CALL_TIMEOUT_S)
    t_init = time.monotonic()
    want = [v for _, v in committed + after]
    rc = read_all(brook.bootstrap, topic, parts, "read_committed", min_records=len(want),
                  timeout=20, settle=0.5)
    print(f"records after the aborted transaction visible {rc.reached - t_init:.2f}s after "
          f"init_transactions returned")
    assert sorted(rc.values()) == sorted(want), (
        f"read_committed after the abort: {len(rc.values())} records, "
        f"{sum(v.startswith(b'open') for v in rc.values())} of the aborted transaction; "
        f"expected the {len(committed)} committed + {len(after)} later ones")
    for part in range(parts):
        after_offsets = [o for o, _ in d_after[part]]
        assert [o for o, v in rc.records[part] if v.startswith(b"after")] == after_offsets

    p2.begin_transaction()
    final = spread("final", 30, parts)
    send(p2, topic, final)
    p2.commit_transaction(TXN_CALL_TIMEOUT_S)
    rc = read_all(brook.bootstrap, topic, parts, "read_committed",
                  min_records=len(want) + len(final), timeout=20, settle=0.5)
    assert sorted(rc.values()) == sorted(want + [v for _, v in final])
    ru = read_all(brook.bootstrap, topic, parts, "read_uncommitted",
                  min_records=len(want) + len(final) + 60, timeout=20)
    assert sum(v.startswith(b"open") for v in ru.values()) == 60, \
        "the open transaction's acknowledged records are not all in the log after the crash"
    del p1


# ---------------------------------------------------------------------------------------
# 8. kafka-python's transactional producer
# ---------------------------------------------------------------------------------------

def test_kafka_python_transactional_producer(brook):
    kafka = pytest.importorskip("kafka")
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    if not hasattr(KafkaProducer, "init_transactions"):
        pytest.skip(f"kafka-python {kafka.__version__} has no transactional producer")

    topic = unique_topic("txn-kpy")
    parts = 3
    create_topic(brook.bootstrap, topic, partitions=parts)
    kp = KafkaProducer(bootstrap_servers=brook.bootstrap, transactional_id=new_txn_id("kpy"),
                       acks="all", linger_ms=5, max_block_ms=30000,
                       request_timeout_ms=15000, retry_backoff_ms=50)
    try:
        t0 = time.monotonic()
        kp.init_transactions()
        print(f"kafka-python init_transactions: {(time.monotonic() - t0) * 1000:.0f} ms")

        def txn(prefix, n, commit):
            kp.begin_transaction()
            futs = [kp.send(topic, value=v, partition=part) for part, v in spread(prefix, n, parts)]
            kp.flush(timeout=30)
            for f in futs:
                f.get(timeout=10)   # raises if the record was not acknowledged
            t = time.monotonic()
            (kp.commit_transaction if commit else kp.abort_transaction)()
            print(f"kafka-python {'commit' if commit else 'abort'}_transaction: "
                  f"{(time.monotonic() - t) * 1000:.0f} ms")

        txn("kpy-first", 60, True)
        txn("kpy-aborted", 60, False)
        txn("kpy-second", 60, True)
    finally:
        kp.close(timeout=10)

    want = by_partition(spread("kpy-first", 60, parts) + spread("kpy-second", 60, parts))
    rc = read_all(brook.bootstrap, topic, parts, "read_committed", min_records=120, settle=1.0)
    for part in range(parts):
        assert rc.values(part) == want[part], (
            f"read_committed partition {part}: {len(rc.values(part))} records, "
            f"{sum(v.startswith(b'kpy-aborted') for v in rc.values(part))} aborted ones")
    ru = read_all(brook.bootstrap, topic, parts, "read_uncommitted", min_records=180, settle=0.5)
    assert ru.count() == 180
    # Three transactions, one marker each per partition.
    hwm = latest_offsets(brook.bootstrap, topic, parts, IsolationLevel.READ_UNCOMMITTED)
    assert hwm == {part: 60 + 3 for part in range(parts)}, f"HWMs {hwm}"

    # kafka-python's own read_committed fetch path sees the same.
    kc = KafkaConsumer(bootstrap_servers=brook.bootstrap, isolation_level="read_committed",
                       enable_auto_commit=False, group_id=None, fetch_max_wait_ms=100)
    try:
        kc.assign([KTP(topic, part) for part in range(parts)])
        kc.seek_to_beginning()
        got: dict[int, list[bytes]] = {part: [] for part in range(parts)}
        deadline = time.monotonic() + 20
        settle_until = None
        while True:
            now = time.monotonic()
            if sum(len(v) for v in got.values()) >= 120:
                settle_until = settle_until or now + 1.0
                if now >= settle_until:
                    break
            assert now < deadline, f"kafka-python read_committed got {got}"
            for tp, recs in kc.poll(timeout_ms=200).items():
                got[tp.partition] += [r.value for r in recs]
        assert got == want, "kafka-python read_committed consumer disagrees"
    finally:
        kc.close()


# ---------------------------------------------------------------------------------------
# 9. cluster: the transaction coordinator is killed under load
# ---------------------------------------------------------------------------------------

API_FIND_COORDINATOR = 10
_correlation = itertools.count(1)


def find_coordinator(port: int, key: str, key_type: int = 1,
                     timeout: float = 5.0) -> tuple[int, int]:
    """FindCoordinator v1 asked of the broker on `port`, on a connection of our own.
    key_type 1 = transactional id. -> (error_code, node_id)."""
    cid = next(_correlation)
    body = kw.string(key) + kw.i8(key_type)
    req = kw.frame(kw.header_v1(API_FIND_COORDINATOR, 1, cid, "brook-txn-test") + body)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(req)
        r = kw.Reader(kw.read_response(s, cid))
    r.i32()              # throttle_time_ms
    err = r.i16()
    r.string()           # error_message
    node = r.i32()
    r.string()           # host
    r.i32()              # port
    return err, node


class TxnLoop(threading.Thread):
    """Runs transactions back to back from its own thread: each writes `per_txn`
    records b"t<n>-<i>" over the partitions and commits. Retriable errors are retried,
    an abortable error aborts the transaction (and the loop goes on), a fatal error
    ends the loop (`fatal`)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, txn_id: str,
                 per_txn: int = 30):
        super().__init__(daemon=True, name="txn-loop")
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.txn_id, self.per_txn = txn_id, per_txn
        self.committed: list[int] = []
        self.commit_times: dict[int, float] = {}
        self.aborted: list[int] = []
        self.errors: list[str] = []         # retriable / abortable errors seen
        self.fatal: str | None = None
        self._halt = threading.Event()

    def values(self, n: int) -> list[tuple[int, bytes]]:
        return [(i % self.partitions, b"t%05d-%03d" % (n, i)) for i in range(self.per_txn)]

    def note(self, what: str, err: KafkaError | None) -> None:
        line = f"txn {what}: {describe_err(err)}"
        self.errors.append(line)
        event(line)

    def run(self) -> None:
        p = txn_producer(self.bootstrap, self.txn_id, **{"transaction.timeout.ms": 60000})
        try:
            p.init_transactions(TXN_CALL_TIMEOUT_S)
            n = 0
            while not self._halt.is_set():
                self._one(p, n)
                n += 1
        except KafkaException as e:
            self.fatal = describe_err(kerr(e))
            event(f"txn loop stopped: {self.fatal}")
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.fatal = repr(e)
            event(f"txn loop stopped: {self.fatal}")

    def _one(self, p: Producer, n: int) -> None:
        deadline = time.monotonic() + 60
        p.begin_transaction()
        must_abort = False
        try:
            for part, value in self.values(n):
                while True:
                    try:
                        p.produce(self.topic, value=value, partition=part)
                        break
                    except BufferError:
                        p.poll(0.05)
        except KafkaException as e:
            err = kerr(e)
            if err is not None and err.fatal():
                raise
            self.note(f"{n} produce", err)
            must_abort = True
        while not must_abort:
            try:
                p.commit_transaction(10)
                self.committed.append(n)
                self.commit_times[n] = time.monotonic()
                return
            except KafkaException as e:
                err = kerr(e)
                if err is None or err.fatal():
                    raise
                self.note(f"{n} commit", err)
                if err.txn_requires_abort():
                    must_abort = True
                elif not err.retriable() or time.monotonic() > deadline:
                    raise
        while True:
            try:
                p.abort_transaction(10)
                self.aborted.append(n)
                event(f"txn {n} aborted")
                return
            except KafkaException as e:
                err = kerr(e)
                if err is None or err.fatal() or not err.retriable() \
                        or time.monotonic() > deadline:
                    raise
                self.note(f"{n} abort", err)

    def stop(self) -> None:
        self._halt.set()
        self.join(90)
        assert not self.is_alive(), "transaction loop did not finish within 90 s"


def txn_coordinator(cluster: Cluster, tid: str, exclude: set[int] = frozenset(),
                    timeout: float = 30.0) -> tuple[int, float]:
    """The coordinator of `tid` as a running node (not in `exclude`) reports it, once it
    names a running node not in `exclude`. -> (node id, seconds waited)."""
    def check():
        for via in cluster.running():
            if via in exclude:
                continue
            err, node = find_coordinator(cluster.nodes[via].port, tid)
            if err == 0 and node in cluster.running() and node not in exclude:
                return node
        return None
    return cluster.wait(check, timeout, f"FindCoordinator(transaction {tid}) to name a "
                        f"running node not in {sorted(exclude)}", interval=0.05)


def wait_full_isr(cluster: Cluster, topics: list[str], timeout: float = 60.0) -> float:
    """Until every partition of each topic has a leader and all its replicas in the ISR
    (an internal topic missing from metadata is skipped)."""
    def check():
        for t in topics:
            tm = cluster.metadata(topic=t).topics.get(t)
            if tm is None or tm.error is not None:
                if t.startswith("__"):
                    continue
                return None
            for pm in tm.partitions.values():
                if pm.leader < 0 or set(pm.isrs) != set(pm.replicas):
                    return None
        return True
    _, secs = cluster.wait(check, timeout, f"full ISR on every partition of {topics}")
    return secs


@pytest.mark.deadline(300)
def test_cluster_coordinator_failover_under_transactions(cluster: Cluster):
    rng = random.Random(SEED)
    print(f"BROOK_TXN_SEED={SEED}")
    topic = unique_topic("txn-failover")
    parts = 3
    cluster.create_topic(topic, partitions=parts, replication_factor=3,
                         config={"min.insync.replicas": 2})
    tid = new_txn_id("failover")
    loop = TxnLoop(cluster.bootstrap, topic, parts, tid)
    loop.start()
    moves = []
    try:
        for cycle in range(2):
            base = len(loop.committed)
            cluster.wait(lambda: loop.fatal or len(loop.committed) >= base + 5, 60,
                         f"5 more committed transactions (cycle {cycle})")
            assert loop.fatal is None, f"transaction loop failed: {loop.fatal}"
            coord, _ = txn_coordinator(cluster, tid)
            time.sleep(rng.uniform(0.05, 0.5))   # the kill lands at a random moment
            committed_before = len(loop.committed)
            cluster.kill(coord)
            t_kill = time.monotonic()
            new_coord, moved = txn_coordinator(cluster, tid, exclude={coord}, timeout=45)
            event(f"coordinator of {tid}: node{coord} -> node{new_coord} after {moved:.2f}s")

            def committed_after_kill():
                if loop.fatal:
                    return True
                return next((t for n, t in loop.commit_times.items() if t > t_kill), None)
            first, _ = cluster.wait(committed_after_kill, 60,
                                    "a transaction committed after the kill")
            assert loop.fatal is None, f"transaction loop failed: {loop.fatal}"
            resumed = first - t_kill
            moves.append((coord, new_coord, moved, resumed))
            print(f"coordinator failover {cycle}: node{coord} killed -> node{new_coord} "
                  f"named by FindCoordinator after {moved:.2f}s; first commit "
                  f"{resumed:.2f}s after the kill ({committed_before} committed before)")
            cluster.start(coord)
            secs = wait_full_isr(cluster, [topic, "__transaction_state"], timeout=60)
            event(f"node{coord} back in every ISR after {secs:.2f}s")
        base = len(loop.committed)
        cluster.wait(lambda: loop.fatal or len(loop.committed) >= base + 3, 60,
                     "3 more committed transactions after the last restart")
    finally:
        loop.stop()
    assert loop.fatal is None, f"transaction loop failed: {loop.fatal}"
    committed, aborted = set(loop.committed), set(loop.aborted)
    print(f"{len(committed)} transactions committed, {len(aborted)} aborted "
          f"({sorted(aborted)}); {len(loop.errors)} retriable/abortable errors")

    want = {part: [] for part in range(parts)}
    for n in sorted(committed):
        for part, value in loop.values(n):
            want[part].append(value)
    total = sum(len(v) for v in want.values())
    rc = read_all(cluster.bootstrap, topic, parts, "read_committed", min_records=total,
                  timeout=60, settle=1.0)
    for part in range(parts):
        got = rc.values(part)
        from_aborted = [v for v in got if int(v[1:6]) in aborted]
        assert not from_aborted, (f"partition {part}: {len(from_aborted)} records of "
                                  f"aborted transactions visible, e.g. {from_aborted[:3]}")
        dups = len(got) - len(set(got))
        assert dups == 0, f"partition {part}: {dups} records read twice"
        missing = sorted(set(want[part]) - set(got))
        assert not missing, (f"partition {part}: {len(missing)} records of committed "
                             f"transactions missing, e.g. {missing[:3]}")
        assert got == want[part], (f"partition {part}: records of committed transactions "
                                   f"out of order or unexpected extra records "
                                   f"({len(got)} read, {len(want[part])} expected)")
    print("coordinator moves: " + "; ".join(
        f"node{a}->node{b} {m:.2f}s (first commit {r:.2f}s)" for a, b, m, r in moves))


@pytest.mark.deadline(180)
def test_cluster_refuses_a_transaction_its_coordinator_never_began(cluster: Cluster):
    """KIP-890 across brokers: the leader of a partition asks the transaction
    coordinator on another broker before it takes transactional records, so a producer
    id that coordinator never issued cannot leave a transaction nobody will end."""
    import kafka_wire as w
    from test_poisoned_batches import produce_txn_v9, txn_batch

    topic = unique_topic("kip890")
    cluster.create_topic(topic, partitions=1, replication_factor=3)
    leader = cluster.wait_for_leader(topic, 0)[0]
    # A real transaction first, so __transaction_state exists and is loaded.
    real = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": new_txn_id("real")})
    real.init_transactions(60)
    real.begin_transaction()
    real.produce(topic, b"before", partition=0)
    real.commit_transaction(60)
    # A transactional id coordinated by another broker than the partition's leader.
    tid = next(t for t in (new_txn_id(f"orphan{i}") for i in range(200))
               if txn_coordinator(cluster, t)[0] != leader)
    coordinator = txn_coordinator(cluster, tid)[0]
    event(f"partition leader {leader}, coordinator of {tid}: {coordinator}")
    s = w.connect(cluster.nodes[leader].port)
    try:
        s.sendall(produce_txn_v9(7, tid, topic, txn_batch(987_654, 0)))
        resp = w.parse_produce_v9(w.read_response(s, 7, flexible_header=True))
    finally:
        s.close()
    assert resp[0][2] != 0, f"the leader took an orphan transactional batch: {resp}"
    # The partition stays readable with read_committed past later transactions.
    real.begin_transaction()
    real.produce(topic, b"after", partition=0)
    real.commit_transaction(60)
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": new_txn_id("rc"),
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    seen, deadline = [], time.monotonic() + 30
    while b"after" not in seen and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append(m.value())
    c.close()
    assert seen == [b"before", b"after"], seen
