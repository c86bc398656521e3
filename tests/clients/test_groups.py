"""Consumer groups (the classic protocol: JoinGroup/SyncGroup/Heartbeat/LeaveGroup,
OffsetCommit/OffsetFetch) against a real `brook` process.

* membership and partition ownership with three confluent-kafka members, one of which
  crashes (SIGKILL, no LeaveGroup) and whose partitions move to the others once its
  session times out;
* committed offsets surviving a broker restart (clean and SIGKILL);
* two groups reading one topic independently;
* kafka-python's KafkaConsumer/KafkaAdminClient, and the cooperative-sticky assignor;
* admin: DeleteGroups (empty, active, unknown group) and the `brook group` CLI.

Every broker runs with group.initial.rebalance.delay.ms=0 and every consumer with
session.timeout.ms=6000, heartbeat.interval.ms=1000, so rebalances take seconds.

Members that must be able to crash run in a subprocess (a small confluent-kafka
program, WORKER_SRC) that reports, as JSON lines on stdout, its rebalance callbacks,
its assignment() whenever it changes, every record it receives, the JoinGroup
responses it gets (from librdkafka's `cgrp` debug log) and the results of commits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000

pytestmark = pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------

def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Polls `predicate` until it returns something truthy and returns that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout}s waiting for {what}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise AssertionError(msg)
        time.sleep(interval)


def admin(bootstrap: str) -> AdminClient:
    """(Keep the client referenced until its futures are done: a collected AdminClient
    never completes them.)"""
    return AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                         operation_timeout=20, request_timeout=20)
    fs[name].result(30)

    def visible():
        t = a.list_topics(timeout=5).topics.get(name)
        return t is not None and t.error is None and len(t.partitions) == partitions

    wait_until(visible, 10, f"topic {name} with {partitions} partitions in metadata")


def produce(bootstrap: str, topic: str, records) -> list[tuple[int, int, str, str]]:
    """records: iterable of (key, value, partition or None). Waits for every delivery
    report; returns (partition, offset, key, value) per record, in produce order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    out: list = []

    def cb_for(i):
        def cb(err, msg):
            out[i] = (err, msg.partition(), msg.offset())
        return cb

    recs = list(records)
    for i, (key, value, part) in enumerate(recs):
        out.append(None)
        kw = {} if part is None else {"partition": part}
        p.produce(topic, key=key, value=value, on_delivery=cb_for(i), **kw)
        p.poll(0)
    assert p.flush(30) == 0, "records still undelivered after 30 s"
    errors = [r for r in out if r is None or r[0] is not None]
    assert not errors, f"{len(errors)} deliveries failed, e.g. {errors[0]}"
    return [(part, off, k, v) for (_, part, off), (k, v, _) in zip(out, recs)]


def keyed(n: int, start: int = 0, partitions: int | None = None):
    """n keyed records k{i}/v{i}; with `partitions`, record i goes to i % partitions,
    otherwise the producer's key partitioner chooses."""
    return [(f"k{i}", f"v{i}", None if partitions is None else i % partitions)
            for i in range(start, start + n)]


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm")})
    try:
        out = {}
        for p in range(partitions):
            wm = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            assert wm is not None, f"watermarks of {topic}-{p}: timed out"
            out[p] = wm[1]
        return out
    finally:
        c.close()


def describe_group(bootstrap: str, group: str):
    a = admin(bootstrap)     # must outlive the future
    return a.describe_consumer_groups([group], request_timeout=10)[group].result(15)


def member_assignments(desc, topic: str) -> dict[str, set[int]]:
    """member id -> partitions of `topic`, from a ConsumerGroupDescription."""
    return {m.member_id: {tp.partition for tp in m.assignment.topic_partitions
                          if tp.topic == topic}
            for m in desc.members}


def committed_offsets(bootstrap: str, group: str, topic: str | None = None) -> dict[int, int]:
    """partition -> committed offset (only partitions that have one), via the admin
    client's OffsetFetch for all of the group's partitions."""
    a = admin(bootstrap)
    res = a.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=10)[group].result(15)
    out = {}
    for tp in res.topic_partitions or []:
        assert tp.error is None, f"offset of {tp.topic}-{tp.partition}: {tp.error}"
        if (topic is None or tp.topic == topic) and tp.offset >= 0:
            out[tp.partition] = tp.offset
    return out


def group_ids(bootstrap: str, states=None) -> dict[str, object]:
    """group id -> state, from ListGroups (optionally filtered by state)."""
    a = admin(bootstrap)
    kw = {"states": set(states)} if states else {}
    res = a.list_consumer_groups(request_timeout=10, **kw).result(15)
    return {g.group_id: g.state for g in res.valid}


def group_conf(bootstrap: str, group: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "allow.auto.create.topics": False,
        "topic.metadata.refresh.interval.ms": 5000,
    }
    conf.update(extra)
    return conf


def kafka_error_code(exc: BaseException) -> int | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


def poll_until(consumers, done, timeout: float, what: str, on_msg=None) -> None:
    """Polls every consumer in turn (this drives their rebalance callbacks) until
    `done()` is true. on_msg(index, msg) gets every record."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is None:
                continue
            if m.error():
                raise AssertionError(f"consumer {i}: {m.error()}")
            if on_msg is not None:
                on_msg(i, m)


def partitions_of(c: Consumer) -> set[int]:
    return {tp.partition for tp in c.assignment()}


# ---------------------------------------------------------------------------------------
# a group member in a subprocess
# ---------------------------------------------------------------------------------------

WORKER_SRC = r'''
import json, logging, queue, re, sys, threading, time
from confluent_kafka import Consumer, KafkaException

conf = json.loads(sys.argv[1])
topic = sys.argv[2]
_out = threading.Lock()

def emit(ev, **kw):
    kw["ev"] = ev
    kw["t"] = time.time()
    line = json.dumps(kw)
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

JOIN = re.compile(r"JoinGroup response: GenerationId (-?\d+), Protocol ([^,]*), "
                  r"LeaderId ([^, ]*)( \(me\))?, my MemberId ([^, ]*)")

class Handler(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        sys.stderr.write("%.3f %s\n" % (time.time(), msg))
        m = JOIN.search(msg)
        if m:
            emit("join", generation=int(m.group(1)), protocol=m.group(2),
                 leader_id=m.group(3), leader=bool(m.group(4)), member_id=m.group(5),
                 line=msg)

log = logging.getLogger("rdkafka-worker")
log.setLevel(logging.DEBUG)
log.propagate = False
log.addHandler(Handler())
conf["logger"] = log
conf.setdefault("debug", "cgrp")

cmds = queue.Queue()
def read_stdin():
    for line in sys.stdin:
        cmds.put(line.strip())
    cmds.put("eof")
threading.Thread(target=read_stdin, daemon=True).start()

emit("ready")
first = cmds.get()
if first != "start":
    sys.exit(0)

c = Consumer(conf)
def parts(ps):
    return sorted(p.partition for p in ps)
def on_assign(cons, ps):
    emit("assign", partitions=parts(ps))
def on_revoke(cons, ps):
    emit("revoke", partitions=parts(ps))
def on_lost(cons, ps):
    emit("lost", partitions=parts(ps))
c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
emit("started")
owned = None
while True:
    m = c.poll(0.05)
    if m is not None:
        if m.error():
            emit("error", error=str(m.error()))
        else:
            emit("msg", p=m.partition(), o=m.offset(),
                 k=None if m.key() is None else m.key().decode())
    now = parts(c.assignment())
    if now != owned:
        owned = now
        emit("owned", partitions=now, member_id=c.memberid())
    try:
        cmd = cmds.get_nowait()
    except queue.Empty:
        continue
    if cmd == "commit":
        try:
            pos = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
            res = c.commit(offsets=pos, asynchronous=False) if pos else []
            emit("committed", offsets={str(tp.partition): tp.offset for tp in res},
                 errors=[str(tp.error) for tp in res if tp.error is not None])
        except KafkaException as e:
            emit("committed", offsets={}, errors=[str(e)])
    elif cmd in ("close", "eof"):
        c.close()
        emit("closed")
        break
'''


class GroupWorker:
    """One confluent-kafka group member in its own process (so it can be SIGKILLed)."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, log_dir,
                 start: bool = True, **conf):
        self.name = name
        full = group_conf(bootstrap, group, **{"client.id": name, **conf})
        self.log_path = os.path.join(str(log_dir), f"worker-{name}.log")
        self._stderr = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", WORKER_SRC, json.dumps(full), topic],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, start_new_session=True)
        self.events: list[dict] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_event(lambda e: e["ev"] == "ready", 30, "worker process ready")
        if start:
            self.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._cv:
                self.events.append(ev)
                self._cv.notify_all()

    def start(self) -> float:
        t = time.time()
        self.send("start")
        return t

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def snapshot(self) -> list[dict]:
        with self._cv:
            return list(self.events)

    def wait_event(self, pred, timeout: float, what: str, since: int = 0) -> dict:
        """Waits for an event (index >= since) matching pred; returns it."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events[since:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{self.name}: no event '{what}' within {timeout}s "
                        f"(exit code {self.proc.poll()}; last events "
                        f"{[e for e in self.events if e['ev'] != 'msg'][-6:]}; "
                        f"log {self.log_path})")
                self._cv.wait(min(left, 0.2))

    def owned(self) -> set[int] | None:
        for ev in reversed(self.snapshot()):
            if ev["ev"] == "owned":
                return set(ev["partitions"])
        return None

    def member_id(self) -> str | None:
        for ev in reversed(self.snapshot()):
            if ev["ev"] == "owned" and ev.get("member_id"):
                return ev["member_id"]
        return None

    def last_join(self) -> dict | None:
        for ev in reversed(self.snapshot()):
            if ev["ev"] == "join":
                return ev
        return None

    def consumed(self, since_t: float = 0.0) -> list[tuple[int, int]]:
        return [(e["p"], e["o"]) for e in self.snapshot()
                if e["ev"] == "msg" and e["t"] >= since_t]

    def errors(self) -> list[str]:
        return [e["error"] for e in self.snapshot() if e["ev"] == "error"]

    def commit(self, timeout: float = 20) -> dict[int, int]:
        n = len(self.snapshot())
        self.send("commit")
        ev = self.wait_event(lambda e: e["ev"] == "committed", timeout, "commit", since=n)
        assert not ev["errors"], f"{self.name}: commit failed: {ev['errors']}"
        return {int(p): o for p, o in ev["offsets"].items()}

    def close(self, timeout: float = 20) -> None:
        """Consumer.close() (a dynamic member sends LeaveGroup; a static one does not)."""
        self.send("close")
        self.wait_event(lambda e: e["ev"] == "closed", timeout, "closed")
        self.proc.wait(timeout)

    def kill(self) -> float:
        """SIGKILL: no LeaveGroup, no commit. Returns the time of the kill."""
        t = time.time()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        return t

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._stderr.close()


@pytest.fixture
def spawn_worker(tmp_path):
    made: list[GroupWorker] = []

    def make(*args, **kw) -> GroupWorker:
        w = GroupWorker(*args, log_dir=tmp_path, **kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.cleanup()


def all_offsets(hw: dict[int, int]) -> set[tuple[int, int]]:
    return {(p, o) for p, end in hw.items() for o in range(end)}


# ---------------------------------------------------------------------------------------
# 1. three members, ownership, crash of one member
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(90)
def test_three_members_own_disjoint_partitions_and_take_over_after_crash(
        brook, spawn_worker):
    parts = 6
    topic, group = unique("grp3"), unique("g3")
    create_topic(brook.bootstrap, topic, parts)
    workers = [spawn_worker(brook.bootstrap, group, topic, f"m{i}") for i in range(3)]

    def stable(ws):
        owned = [w.owned() for w in ws]
        if any(not o for o in owned):
            return None
        union = set().union(*owned)
        if union != set(range(parts)) or sum(len(o) for o in owned) != parts:
            return None
        joins = [w.last_join() for w in ws]
        if any(j is None for j in joins) or len({j["generation"] for j in joins}) != 1:
            return None
        desc = describe_group(brook.bootstrap, group)
        if desc.state != ConsumerGroupState.STABLE or len(desc.members) != len(ws):
            return None
        return desc

    t0 = time.time()
    desc = wait_until(lambda: stable(workers), 40, "3 members with a complete, disjoint "
                      "assignment and a Stable group")
    print(f"\n3-member group stable {time.time() - t0:.2f}s after start")
    generation = workers[0].last_join()["generation"]

    # Each member's own assignment() agrees with what DescribeGroups reports for it.
    by_member = member_assignments(desc, topic)
    for w in workers:
        assert w.member_id() in by_member, (w.name, w.member_id(), list(by_member))
        assert by_member[w.member_id()] == w.owned(), (w.name, by_member)
        assert len(w.owned()) == 2, f"range over 6 partitions / 3 members: {w.owned()}"
    assert sorted(p for s in by_member.values() for p in s) == list(range(parts))
    assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
    assert not desc.is_simple_consumer_group

    # -- batch 1: every record consumed exactly once, by its partition's owner ----------
    produced = produce(brook.bootstrap, topic, keyed(600))
    assert {p for p, *_ in produced} == set(range(parts)), "every partition gets records"
    hw1 = high_watermarks(brook.bootstrap, topic, parts)
    wait_until(lambda: set().union(*(w.consumed() for w in workers)) >= all_offsets(hw1),
               30, "batch 1 consumed")
    owner = {p: w for w in workers for p in w.owned()}
    for w in workers:
        got = w.consumed()
        assert len(got) == len(set(got)), f"{w.name} got duplicates without a rebalance"
        assert all(owner[p] is w for p, _ in got), f"{w.name} got records it does not own"
    assert sum(len(w.consumed()) for w in workers) == len(produced)
    for w in workers:
        assert set(w.commit()) == w.owned()
    assert committed_offsets(brook.bootstrap, group, topic) == hw1

    # -- batch 2: consumed by all; the victim does not commit it --------------------------
    produce(brook.bootstrap, topic, keyed(300, start=600))
    hw2 = high_watermarks(brook.bootstrap, topic, parts)
    wait_until(lambda: set().union(*(w.consumed() for w in workers)) >= all_offsets(hw2),
               30, "batch 2 consumed")
    survivors, victim = workers[:2], workers[2]
    for w in survivors:
        w.commit()
    victim_parts = victim.owned()
    survivor_marks = [len(w.snapshot()) for w in survivors]

    t_kill = victim.kill()
    produce(brook.bootstrap, topic, keyed(300, start=900))
    hw3 = high_watermarks(brook.bootstrap, topic, parts)

    def taken_over():
        owned = [w.owned() for w in survivors]
        joins = [w.last_join() for w in survivors]
        return (all(owned) and set().union(*owned) == set(range(parts))
                and sum(len(o) for o in owned) == parts
                and all(j["generation"] > generation for j in joins))

    wait_until(taken_over, SESSION_TIMEOUT_MS / 1000 + 20,
               "the survivors to own all 6 partitions in a new generation")
    t_done = max(w.wait_event(lambda e: e["ev"] == "owned"
                              and set(e["partitions"]) == w.owned(),
                              1, "owned", since=mark)["t"]
                 for w, mark in zip(survivors, survivor_marks))
    rebalance_s = t_done - t_kill
    print(f"\nrebalance after SIGKILL of 1 of 3 members: {rebalance_s:.2f}s "
          f"(session.timeout.ms={SESSION_TIMEOUT_MS}, "
          f"heartbeat.interval.ms={HEARTBEAT_MS})")
    # No LeaveGroup was sent, so the broker must wait for the session to time out:
    # the last heartbeat was at most heartbeat.interval before the kill.
    assert rebalance_s >= (SESSION_TIMEOUT_MS - HEARTBEAT_MS) / 1000 - 1.0, (
        f"partitions moved {rebalance_s:.2f}s after the crash: before the session "
        f"({SESSION_TIMEOUT_MS} ms) could have expired")
    assert rebalance_s <= SESSION_TIMEOUT_MS / 1000 + 10, rebalance_s

    # every record, including the victim's uncommitted batch 2, is consumed at least once
    wait_until(lambda: set().union(*(w.consumed() for w in survivors),
                                   victim.consumed()) >= all_offsets(hw3),
               30, "every record consumed at least once")
    # the new owners of the victim's partitions start at the victim's committed offsets
    for p in victim_parts:
        first = min(o for w in survivors for (q, o) in w.consumed(since_t=t_kill) if q == p)
        assert first == hw1[p], (f"partition {p}: new owner started at {first}, the "
                                 f"committed offset is {hw1[p]}")
    # A partition that moved between survivors (range: 2 of m1's go to m0) is read again
    # by its new owner from the last commit; its position reaches hw3 only once it has.
    def committed_everything():
        for w in survivors:
            w.commit()
        return committed_offsets(brook.bootstrap, group, topic) == hw3

    wait_until(committed_everything, 30, "the survivors' commits to reach the high watermarks",
               interval=0.5)
    desc = describe_group(brook.bootstrap, group)
    assert desc.state == ConsumerGroupState.STABLE
    assert {m.member_id for m in desc.members} == {w.member_id() for w in survivors}
    for w in survivors:
        assert not w.errors(), w.errors()
        w.close()


# ---------------------------------------------------------------------------------------
# 2. committed offsets survive a broker restart
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(60)
@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_committed_offsets_survive_broker_restart(brook, how):
    parts = 3
    topic, group = unique("grprs"), unique("grs")
    create_topic(brook.bootstrap, topic, parts)
    produce(brook.bootstrap, topic, keyed(90, partitions=parts))   # 30 per partition

    c = Consumer(group_conf(brook.bootstrap, group))
    c.subscribe([topic])
    seen: set[tuple[int, int]] = set()
    poll_until([c], lambda: len(seen) == 90, 30, "90 records",
               on_msg=lambda i, m: seen.add((m.partition(), m.offset())))
    to_commit = {0: 10, 1: 20, 2: 30}
    res = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in to_commit.items()],
                   asynchronous=False)
    assert all(tp.error is None for tp in res), res
    c.close()
    assert committed_offsets(brook.bootstrap, group, topic) == to_commit

    if how == "restart":
        brook.restart()
    else:
        brook.kill9()
        brook.start()
    produce(brook.bootstrap, topic, [("after", "restart", 2)])        # p2 offset 30

    c = Consumer(group_conf(brook.bootstrap, group))
    try:
        committed = wait_until(
            lambda: c.committed([TopicPartition(topic, p) for p in range(parts)], timeout=5),
            20, "Consumer.committed() after the restart")
        assert {tp.partition: tp.offset for tp in committed} == to_commit
        assert committed_offsets(brook.bootstrap, group, topic) == to_commit

        c.subscribe([topic])
        got: dict[int, list[int]] = {p: [] for p in range(parts)}
        poll_until([c], lambda: sum(map(len, got.values())) >= 20 + 10 + 1, 30,
                   "the records after the committed offsets",
                   on_msg=lambda i, m: got[m.partition()].append(m.offset()))
        time.sleep(0.5)
        while (m := c.poll(0.2)) is not None:
            got[m.partition()].append(m.offset())
        # resumes exactly at the committed offsets: nothing committed is read again
        assert {p: offs[0] for p, offs in got.items()} == to_commit
        assert got == {0: list(range(10, 30)), 1: list(range(20, 30)), 2: [30]}
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# 3. two groups, one topic
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(60)
def test_two_groups_consume_independently(brook):
    parts = 3
    topic, ga, gb = unique("grp2"), unique("ga"), unique("gb")
    create_topic(brook.bootstrap, topic, parts)

    a = [Consumer(group_conf(brook.bootstrap, ga, **{"client.id": f"a{i}"})) for i in range(2)]
    b = [Consumer(group_conf(brook.bootstrap, gb, **{"client.id": "b0"}))]
    for c in a + b:
        c.subscribe([topic])
    try:
        def settled():
            pa = [partitions_of(c) for c in a]
            return (all(pa) and set().union(*pa) == set(range(parts))
                    and sum(map(len, pa)) == parts and partitions_of(b[0]) == set(range(parts))
                    and describe_group(brook.bootstrap, ga).state == ConsumerGroupState.STABLE)

        poll_until(a + b, settled, 30, "both groups assigned")

        produced = produce(brook.bootstrap, topic, keyed(150))
        expected: dict[int, list[tuple[int, str]]] = {p: [] for p in range(parts)}
        for p, o, _k, v in produced:
            expected[p].append((o, v))
        for p in expected:
            expected[p].sort()
        got = {"a": {p: [] for p in range(parts)}, "b": {p: [] for p in range(parts)}}

        def on_msg(i, m):
            got["a" if i < 2 else "b"][m.partition()].append((m.offset(), m.value().decode()))

        poll_until(a + b, lambda: all(sum(map(len, g.values())) >= 150 for g in got.values()),
                   30, "both groups to read all 150 records", on_msg=on_msg)
        for name, per_part in got.items():
            assert per_part == expected, f"group {name} did not see every record in order"

        for c in a + b:
            c.commit(asynchronous=False)
        hw = high_watermarks(brook.bootstrap, topic, parts)
        assert committed_offsets(brook.bootstrap, ga, topic) == hw
        assert committed_offsets(brook.bootstrap, gb, topic) == hw

        # Only group A reads and commits more: B's offsets do not move.
        produce(brook.bootstrap, topic, keyed(30, start=150, partitions=parts))
        n_a = 0

        def count_a(i, m):
            nonlocal n_a
            n_a += 1

        poll_until(a, lambda: n_a >= 30, 30, "group A to read 30 more", on_msg=count_a)
        for c in a:
            c.commit(asynchronous=False)
        hw2 = high_watermarks(brook.bootstrap, topic, parts)
        assert committed_offsets(brook.bootstrap, ga, topic) == hw2
        assert committed_offsets(brook.bootstrap, gb, topic) == hw
        states = group_ids(brook.bootstrap)
        assert states.get(ga) == ConsumerGroupState.STABLE, states
        assert states.get(gb) == ConsumerGroupState.STABLE, states
        assert {ga, gb} <= set(group_ids(brook.bootstrap, {ConsumerGroupState.STABLE}))
        assert not {ga, gb} & set(group_ids(brook.bootstrap, {ConsumerGroupState.EMPTY}))
    finally:
        for c in a + b:
            c.close()


# ---------------------------------------------------------------------------------------
# 5. kafka-python consumers and admin; cooperative-sticky with confluent-kafka
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(60)
def test_kafka_python_group_and_admin(brook):
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka import TopicPartition as KTP

    parts = 4
    topic, group = unique("grpkp"), unique("gkp")
    create_topic(brook.bootstrap, topic, parts)
    consumers = [KafkaConsumer(bootstrap_servers=brook.bootstrap, group_id=group,
                               client_id=f"kp{i}", auto_offset_reset="earliest",
                               enable_auto_commit=False,
                               session_timeout_ms=SESSION_TIMEOUT_MS,
                               heartbeat_interval_ms=HEARTBEAT_MS,
                               request_timeout_ms=30000)
                 for i in range(2)]
    kadmin = KafkaAdminClient(bootstrap_servers=brook.bootstrap, client_id="kp-admin")
    try:
        for c in consumers:
            c.subscribe([topic])
        got: dict[int, dict[int, list[int]]] = {0: {}, 1: {}}

        def poll_all():
            for i, c in enumerate(consumers):
                for tp, recs in c.poll(timeout_ms=100).items():
                    got[i].setdefault(tp.partition, []).extend(r.offset for r in recs)

        def balanced():
            a = [{tp.partition for tp in c.assignment()} for c in consumers]
            return (all(len(x) == 2 for x in a) and a[0] | a[1] == set(range(parts)))

        deadline = time.monotonic() + 40
        while not balanced():
            assert time.monotonic() < deadline, (
                f"kafka-python consumers not balanced: "
                f"{[sorted(tp.partition for tp in c.assignment()) for c in consumers]}")
            poll_all()
        # the group is stable once both stop rebalancing; check a few polls later
        for _ in range(10):
            poll_all()
        assert balanced()
        assignment = {i: {tp.partition for tp in c.assignment()}
                      for i, c in enumerate(consumers)}

        produce(brook.bootstrap, topic, keyed(200, partitions=parts))
        hw = high_watermarks(brook.bootstrap, topic, parts)
        deadline = time.monotonic() + 30
        while sum(len(v) for g in got.values() for v in g.values()) < 200:
            assert time.monotonic() < deadline, f"consumed so far: {got}"
            poll_all()
        for i in (0, 1):
            assert set(got[i]) <= assignment[i], "records from an unassigned partition"
            for p, offs in got[i].items():
                assert offs == list(range(hw[p])), f"consumer {i} partition {p}: {offs}"
        for c in consumers:
            c.commit()
            for p in {tp.partition for tp in c.assignment()}:
                assert c.committed(KTP(topic, p)) == hw[p]

        # KafkaAdminClient agrees
        groups = kadmin.list_consumer_groups()
        assert (group, "consumer") in [tuple(g[:2]) for g in groups], groups
        offsets = kadmin.list_consumer_group_offsets(group)
        assert {tp.partition: om.offset for tp, om in offsets.items()
                if tp.topic == topic} == hw
        # and so does the confluent admin client
        assert committed_offsets(brook.bootstrap, group, topic) == hw

        # KafkaAdminClient sends DescribeGroups v3 with include_authorized_operations=
        # true; Kafka (no authorizer) answers with the group operations READ, DELETE,
        # DESCRIBE (bits 3, 6, 8 = 328). INT32_MIN means "not requested" and has bit 31
        # set, which KafkaAdminClient cannot decode (ValueError from ACLOperation(31)).
        try:
            (info,) = kadmin.describe_consumer_groups([group])
        except ValueError as e:
            pytest.fail(f"KafkaAdminClient.describe_consumer_groups failed: {e!r}: the "
                        "DescribeGroups v3 response's authorized_operations is not a valid "
                        "ACL operation bitfield (include_authorized_operations=true)",
                        pytrace=False)
        assert info.group == group and info.state == "Stable", info
        assert info.protocol_type == "consumer" and info.protocol, info
        assert len(info.members) == 2, info.members
        described = {}
        for m in info.members:
            tps = {p for t, ps in m.member_assignment.assignment for p in ps if t == topic}
            described[m.client_id] = tps
        assert described == {f"kp{i}": assignment[i] for i in (0, 1)}, described
        assert set(info.authorized_operations) >= {"READ", "DESCRIBE", "DELETE"}, info
    finally:
        for c in consumers:
            c.close(autocommit=False)
        kadmin.close()


@pytest.mark.deadline(60)
def test_cooperative_sticky_incremental_rebalance(brook):
    parts = 6
    topic, group = unique("grpcs"), unique("gcs")
    create_topic(brook.bootstrap, topic, parts)
    events: list[tuple[int, str, set[int]]] = []
    consumers: list[Consumer] = []

    def conf(i):
        return group_conf(brook.bootstrap, group, **{
            "client.id": f"coop{i}",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": True, "auto.commit.interval.ms": 500})

    def cbs(i):
        def on_assign(c, ps):
            events.append((i, "assign", {tp.partition for tp in ps}))

        def on_revoke(c, ps):
            events.append((i, "revoke", {tp.partition for tp in ps}))

        def on_lost(c, ps):
            events.append((i, "lost", {tp.partition for tp in ps}))
        return dict(on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    seen: set[tuple[int, int]] = set()
    owned_history: list[set[int]] = []

    def on_msg(i, m):
        seen.add((m.partition(), m.offset()))

    try:
        consumers.append(Consumer(conf(0)))
        consumers[0].subscribe([topic], **cbs(0))
        poll_until(consumers, lambda: partitions_of(consumers[0]) == set(range(parts)), 30,
                   "the first member to own all partitions", on_msg=on_msg)
        produce(brook.bootstrap, topic, keyed(300))

        consumers.append(Consumer(conf(1)))
        consumers[1].subscribe([topic], **cbs(1))
        mark = len(events)

        def split():
            owned_history.append(partitions_of(consumers[0]))
            a, b = partitions_of(consumers[0]), partitions_of(consumers[1])
            return len(a) == 3 and len(b) == 3 and a | b == set(range(parts))

        poll_until(consumers, split, 40, "a 3/3 split", on_msg=on_msg)
        first_final = partitions_of(consumers[0])
        joined = events[mark:]
        revoked = set().union(*[ps for i, kind, ps in joined if i == 0 and kind == "revoke"])
        assert not [e for e in joined if e[1] == "lost"], joined
        # incremental: the first member gives up only the partitions that move ...
        assert revoked == set(range(parts)) - first_final, joined
        assert len(revoked) == 3, joined
        # ... and never stops owning the ones it keeps
        assert all(first_final <= h for h in owned_history), owned_history
        assert not [e for e in joined if e[0] == 0 and e[1] == "assign" and e[2]], (
            f"first member was re-assigned partitions: {joined}")
        assert {p for i, kind, ps in joined if i == 1 and kind == "assign" for p in ps} == revoked

        desc = describe_group(brook.bootstrap, group)
        assert desc.partition_assignor == "cooperative-sticky", desc.partition_assignor
        assert desc.state == ConsumerGroupState.STABLE

        produce(brook.bootstrap, topic, keyed(300, start=300))
        hw = high_watermarks(brook.bootstrap, topic, parts)
        poll_until(consumers, lambda: seen >= all_offsets(hw), 30,
                   "all 600 records consumed", on_msg=on_msg)
    finally:
        for c in consumers:
            c.close()


# ---------------------------------------------------------------------------------------
# 6. admin: DeleteGroups and the `brook group` CLI
# ---------------------------------------------------------------------------------------

def _consume_and_commit(bootstrap, group, topic, parts, commit: dict[int, int]) -> None:
    """Joins `group`, reads until assigned, commits `commit`, and leaves."""
    c = Consumer(group_conf(bootstrap, group))
    try:
        c.subscribe([topic])
        poll_until([c], lambda: partitions_of(c) == set(range(parts)), 30, "assignment")
        res = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in commit.items()],
                       asynchronous=False)
        assert all(tp.error is None for tp in res), res
    finally:
        c.close()


@pytest.mark.deadline(60)
def test_delete_consumer_groups(brook):
    parts = 2
    topic = unique("grpdel")
    create_topic(brook.bootstrap, topic, parts)
    produce(brook.bootstrap, topic, keyed(20, partitions=parts))
    empty, active = unique("gempty"), unique("gactive")

    _consume_and_commit(brook.bootstrap, empty, topic, parts, {0: 5, 1: 7})
    desc = describe_group(brook.bootstrap, empty)
    assert desc.state == ConsumerGroupState.EMPTY and not desc.members, desc
    assert committed_offsets(brook.bootstrap, empty, topic) == {0: 5, 1: 7}

    c = Consumer(group_conf(brook.bootstrap, active))
    try:
        c.subscribe([topic])
        poll_until([c], lambda: partitions_of(c) == set(range(parts)), 30, "assignment")
        c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)

        # ListGroups, unfiltered and filtered by state
        assert group_ids(brook.bootstrap).get(empty) == ConsumerGroupState.EMPTY
        assert group_ids(brook.bootstrap).get(active) == ConsumerGroupState.STABLE
        only_empty = group_ids(brook.bootstrap, {ConsumerGroupState.EMPTY})
        assert empty in only_empty and active not in only_empty, only_empty

        a = admin(brook.bootstrap)
        # an empty group (offsets only) is deleted, with its offsets
        a.delete_consumer_groups([empty], request_timeout=10)[empty].result(15)
        assert empty not in group_ids(brook.bootstrap)
        assert committed_offsets(brook.bootstrap, empty, topic) == {}

        # a group with members is not
        with pytest.raises(KafkaException) as ei:
            a.delete_consumer_groups([active], request_timeout=10)[active].result(15)
        assert kafka_error_code(ei.value) == KafkaError.NON_EMPTY_GROUP, ei.value

        # nor one that does not exist
        ghost = unique("gghost")
        with pytest.raises(KafkaException) as ei:
            a.delete_consumer_groups([ghost], request_timeout=10)[ghost].result(15)
        assert kafka_error_code(ei.value) == KafkaError.GROUP_ID_NOT_FOUND, ei.value

        # the active group is untouched
        for _ in range(10):
            c.poll(0.1)
        desc = describe_group(brook.bootstrap, active)
        assert desc.state == ConsumerGroupState.STABLE and len(desc.members) == 1, desc
        assert committed_offsets(brook.bootstrap, active, topic) == {0: 3}
        assert partitions_of(c) == set(range(parts))
    finally:
        c.close()
    # once its last member has left, it can be deleted
    wait_until(lambda: describe_group(brook.bootstrap, active).state
               == ConsumerGroupState.EMPTY, 10, "the group to become Empty")
    a = admin(brook.bootstrap)
    a.delete_consumer_groups([active], request_timeout=10)[active].result(15)
    assert active not in group_ids(brook.bootstrap)


def _describe_rows(stdout: str, topic: str) -> dict[int, tuple[str, str, str]]:
    """partition -> (CURRENT-OFFSET, LOG-END-OFFSET, LAG) from `brook group describe`."""
    lines = stdout.splitlines()
    header = next((ln for ln in lines if "PARTITION" in ln), None)
    assert header is not None, stdout
    cols = header.split()
    for name in ("TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"):
        assert name in cols, f"no {name} column in {header!r}"
    idx = {name: cols.index(name) for name in cols}
    rows = {}
    for ln in lines:
        f = ln.split()
        if len(f) >= 5 and f[idx["TOPIC"]] == topic:
            rows[int(f[idx["PARTITION"]])] = (f[idx["CURRENT-OFFSET"]],
                                              f[idx["LOG-END-OFFSET"]], f[idx["LAG"]])
    return rows


def _list_rows(stdout: str) -> dict[str, str]:
    rows = {}
    for ln in stdout.splitlines()[1:]:
        f = ln.split()
        if len(f) >= 2:
            rows[f[0]] = f[1]
    return rows


@pytest.mark.deadline(60)
def test_brook_group_cli(brook):
    parts = 3
    topic, group, live = unique("grpcli"), unique("gcli"), unique("glive")
    create_topic(brook.bootstrap, topic, parts)
    produce(brook.bootstrap, topic, keyed(30, partitions=parts))   # 10 per partition
    _consume_and_commit(brook.bootstrap, group, topic, parts, {0: 4, 1: 10, 2: 0})

    c = Consumer(group_conf(brook.bootstrap, live))
    try:
        c.subscribe([topic])
        poll_until([c], lambda: partitions_of(c) == set(range(parts)), 30, "assignment")
        c.commit(offsets=[TopicPartition(topic, 1, 2)], asynchronous=False)

        listed = _list_rows(brook.cli("group", "list").stdout)
        assert listed.get(group) == "Empty", listed
        assert listed.get(live) == "Stable", listed

        out = brook.cli("group", "describe", group).stdout
        assert _describe_rows(out, topic) == {0: ("4", "10", "6"), 1: ("10", "10", "0"),
                                              2: ("0", "10", "10")}, out

        out = brook.cli("group", "describe", live).stdout
        rows = _describe_rows(out, topic)
        assert rows[1] == ("2", "10", "8"), out
        member = c.memberid()
        assert member and member in out, f"member {member} not shown as owner:\n{out}"

        # a dry run changes nothing
        brook.cli("group", "reset-offsets", group, "--topic", topic, "--to-earliest")
        assert committed_offsets(brook.bootstrap, group, topic) == {0: 4, 1: 10, 2: 0}

        brook.cli("group", "reset-offsets", group, "--topic", topic, "--to-earliest",
                  "--execute")
        assert committed_offsets(brook.bootstrap, group, topic) == {0: 0, 1: 0, 2: 0}
        out = brook.cli("group", "describe", group).stdout
        assert _describe_rows(out, topic) == {p: ("0", "10", "10") for p in range(parts)}, out

        # a group with active members cannot be reset
        res = brook.cli("group", "reset-offsets", live, "--topic", topic, "--to-earliest",
                        "--execute", check=False)
        assert res.returncode != 0, res.stdout
        assert "stop its consumers" in res.stderr, res.stderr
        assert "NEW-OFFSET" not in res.stdout, "a plan printed for a group that cannot be reset"
        assert committed_offsets(brook.bootstrap, live, topic) == {1: 2}

        # a group that does not exist is an error, not "State: Dead"
        res = brook.cli("group", "describe", unique("nosuch"), check=False)
        assert res.returncode != 0 and "does not exist" in res.stderr, (res.stdout, res.stderr)

        # a consumer of the reset group starts from the beginning again
        c2 = Consumer(group_conf(brook.bootstrap, group))
        try:
            c2.subscribe([topic])
            first: dict[int, int] = {}
            poll_until([c2], lambda: len(first) == parts, 30, "records from every partition",
                       on_msg=lambda i, m: first.setdefault(m.partition(), m.offset()))
            assert first == {0: 0, 1: 0, 2: 0}
        finally:
            c2.close()

        wait_until(lambda: describe_group(brook.bootstrap, group).state
                   == ConsumerGroupState.EMPTY, 10, "the group to become Empty")
        brook.cli("group", "delete", group)
        assert group not in _list_rows(brook.cli("group", "list").stdout)
    finally:
        c.close()


@pytest.mark.deadline(120)
def test_groups_formed_while_the_offsets_topic_is_created(brook):
    """Eight groups join at once on a broker that has no __consumer_offsets yet: each
    JoinGroup may create it, and none may be served before this broker has loaded the
    group's partition (clients are told COORDINATOR_LOAD_IN_PROGRESS and retry). Before
    the fix, a group formed in the gap could never write its state: it rebalanced in a
    tight loop, or lost a member's pending join."""
    topic = unique("race")
    create_topic(brook.bootstrap, topic, 4)
    groups = [unique("grace") for _ in range(8)]
    consumers = [Consumer({"bootstrap.servers": brook.bootstrap, "group.id": g,
                           "session.timeout.ms": SESSION_TIMEOUT_MS,
                           "heartbeat.interval.ms": HEARTBEAT_MS,
                           "auto.offset.reset": "earliest"}) for g in groups]
    try:
        for c in consumers:
            c.subscribe([topic])
        assigned: dict[int, int] = {}

        def poll_one(i: int, c: Consumer) -> None:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not c.assignment():
                c.poll(0.2)
            assigned[i] = len(c.assignment())

        threads = [threading.Thread(target=poll_one, args=(i, c))
                   for i, c in enumerate(consumers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert assigned == {i: 4 for i in range(len(groups))}, assigned
        for g in groups:
            d = describe_group(brook.bootstrap, g)
            assert d.state == ConsumerGroupState.STABLE, (g, d.state)
        rebalances = brook.log_tail(1 << 20).count("preparing to rebalance")
        assert rebalances <= 3 * len(groups), f"{rebalances} rebalances for {len(groups)} groups"
    finally:
        for c in consumers:
            c.close()
