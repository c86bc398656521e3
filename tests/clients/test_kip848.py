"""KIP-848 consumer groups (group.protocol=consumer) with Kafka's own Java client
(kafka-clients 4.4, from compat/.cache via scripts/kafka-jars.sh), Kafka's
kafka-consumer-groups tool, and confluent-kafka (librdkafka 2.x).

Brokers run with a short consumer session (6 s) and heartbeat interval (500 ms) so a
killed member's partitions move within seconds."""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
import time
from collections import Counter
from functools import lru_cache

import pytest
from confluent_kafka import Consumer

from kafka_helpers import (assert_all_delivered, create_topic, produce_all, producer,
                           unique_topic, wait_until)
from test_cluster_tools import JVM, config_command, kafka_jars

HERE = pathlib.Path(__file__).resolve().parent
SESSION_MS = 6000
pytestmark = pytest.mark.brook_config({
    "group.consumer.session.timeout.ms": SESSION_MS,
    "group.consumer.heartbeat.interval.ms": 500,
    "offsets.topic.num.partitions": 4,
})
GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


@lru_cache(maxsize=1)
def classes(tmp: str = "/tmp/brook-kip848-classes") -> str:
    """Kip848Consumer.java compiled once against the Kafka jars."""
    out = pathlib.Path(tmp) / str(os.getpid())
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-nowarn", "-cp", f"{kafka_jars()}/*", "-d", str(out),
                    str(HERE / "java" / "Kip848Consumer.java")],
                   check=True, capture_output=True, timeout=120)
    return str(out)


class JavaConsumer:
    """One Kip848Consumer process; its event lines are collected as they come."""

    def __init__(self, bootstrap: str, group: str, topic: str, idle_ms: int = 60_000,
                 instance: str | None = None, protocol: str = "consumer",
                 rack: str | None = None):
        cmd = [*JVM, "-cp", f"{kafka_jars()}/*:{classes()}", "Kip848Consumer",
               bootstrap, group, topic, str(idle_ms)] + ([instance] if instance else [])
        self.protocol = protocol
        env = {**os.environ, "GROUP_PROTOCOL": protocol}
        if rack is not None:
            env["CLIENT_RACK"] = rack
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines: list[str] = []
        self.err: list[str] = []
        self._t = [threading.Thread(target=self._pump, args=(s, l), daemon=True)
                   for s, l in ((self.proc.stdout, self.lines), (self.proc.stderr, self.err))]
        for t in self._t:
            t.start()

    @staticmethod
    def _pump(stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))

    def records(self) -> list[tuple[int, int]]:
        return [(int(p), int(o)) for _, p, o, *_ in
                (l.split(" ") for l in list(self.lines) if l.startswith("RECORD "))]

    def topic_records(self) -> list[tuple[str, int, int]]:
        """(topic, partition, offset) of each record read."""
        return [(t, int(p), int(o)) for _, p, o, *_, t in
                (l.split(" ") for l in list(self.lines) if l.startswith("RECORD "))]

    def assigned(self) -> set[int]:
        """The partitions held now, from the ASSIGNED/REVOKED/LOST lines."""
        held: set[int] = set()
        for line in list(self.lines):
            kind, _, rest = line.partition(" ")
            if kind not in ("ASSIGNED", "REVOKED", "LOST"):
                continue
            parts = {int(tp.rsplit("-", 1)[1]) for tp in rest.split(",") if tp}
            if kind == "ASSIGNED":
                held |= parts
            elif kind in ("REVOKED", "LOST"):
                held -= parts
        return held

    def errors(self) -> list[str]:
        return [l for l in self.lines if l.startswith("ERROR")]

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout)
        for t in self._t:
            t.join(5)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def describe(self) -> str:
        return "\n".join(self.lines[-30:] + self.err[-30:])


def produce_range(bootstrap: str, topic: str, start: int, n: int) -> None:
    p = producer(bootstrap)
    assert_all_delivered(produce_all(p, topic, [
        {"key": str(i).encode(), "value": f"v{i}".encode()} for i in range(start, start + n)]))


@pytest.fixture
def consumers():
    made: list[JavaConsumer] = []
    yield made
    for c in made:
        if c.proc.poll() is None:
            c.kill9()


def test_java_consumers_join_and_leave_and_consume_everything_once(brook, consumers):
    """Three Java consumers join one by one and one leaves while records arrive: the
    server-side assignment moves partitions (revoked before reassigned), every record
    is consumed exactly once, and committed offsets end at the log end."""
    topic, group = unique_topic("kip848"), unique_topic("g848")
    create_topic(brook.bootstrap, topic, partitions=6)
    produce_range(brook.bootstrap, topic, 0, 600)
    a = JavaConsumer(brook.bootstrap, group, topic, idle_ms=60_000)
    consumers.append(a)
    wait_until(lambda: len(a.assigned()) == 6, 30, what=f"first member owns all 6\n{a.describe()}")
    b = JavaConsumer(brook.bootstrap, group, topic, idle_ms=60_000)
    consumers.append(b)
    wait_until(lambda: len(b.assigned()) == 3 and len(a.assigned()) == 3, 30,
               what=f"two members split 6 partitions\n{a.describe()}\n{b.describe()}")
    produce_range(brook.bootstrap, topic, 600, 600)
    c = JavaConsumer(brook.bootstrap, group, topic, idle_ms=60_000)
    consumers.append(c)
    wait_until(lambda: all(len(x.assigned()) == 2 for x in (a, b, c)), 30,
               what="three members with two partitions each")
    a.stop()
    assert "CLOSED" in a.lines, a.describe()
    wait_until(lambda: len(b.assigned()) + len(c.assigned()) == 6
               and len(b.assigned()) == 3, 30, what="a's partitions moved to b and c")
    produce_range(brook.bootstrap, topic, 1200, 600)
    wait_until(lambda: len(a.records() + b.records() + c.records()) >= 1800, 60,
               what="every record consumed")
    for x in (b, c):
        x.stop()
    seen = Counter(a.records() + b.records() + c.records())
    dupes = {k: v for k, v in seen.items() if v > 1}
    assert not dupes, f"records consumed twice: {sorted(dupes)[:10]}"
    assert len(seen) == 1800
    for x in (a, b, c):
        assert not x.errors(), x.describe()
    out = kafka_tool_out("--describe", "--group", group, bootstrap=brook.bootstrap)
    lags = [l.split() for l in out.splitlines() if l.startswith(group)]
    assert len(lags) == 6, out
    assert all(cols[5] == "0" for cols in lags), out  # LAG column


def kafka_tool_out(*args: str, bootstrap: str) -> str:
    r = subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*", GROUP_COMMAND,
                        "--bootstrap-server", bootstrap, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_killed_member_loses_its_partitions_after_the_session_timeout(brook, consumers):
    """kill -9 one of two members: after group.consumer.session.timeout.ms the other
    owns every partition and reads everything (at least once), and kafka-consumer-groups
    lists and describes the group as a consumer group."""
    topic, group = unique_topic("kip848k"), unique_topic("g848k")
    create_topic(brook.bootstrap, topic, partitions=4)
    produce_range(brook.bootstrap, topic, 0, 400)
    a = JavaConsumer(brook.bootstrap, group, topic)
    b = JavaConsumer(brook.bootstrap, group, topic)
    consumers += [a, b]
    wait_until(lambda: len(a.assigned()) == 2 and len(b.assigned()) == 2, 30,
               what=f"two members split 4 partitions\n{a.describe()}\n{b.describe()}")
    wait_until(lambda: len(a.records() + b.records()) >= 400, 30, what="first batch read")
    a.kill9()
    killed_at = time.monotonic()
    produce_range(brook.bootstrap, topic, 400, 400)
    wait_until(lambda: len(b.assigned()) == 4, SESSION_MS / 1000 + 20,
               what=f"the survivor owns all partitions\n{b.describe()}")
    moved_after = time.monotonic() - killed_at
    assert moved_after >= SESSION_MS / 1000 - 1.5, f"moved after {moved_after:.1f}s"
    wait_until(lambda: len(set(a.records() + b.records())) >= 800, 30, what="all records")

    listed = kafka_tool_out("--list", "--type", bootstrap=brook.bootstrap)
    assert any(group in l and "consumer" in l.lower() for l in listed.splitlines()), listed
    members = kafka_tool_out("--describe", "--members", "--group", group,
                             bootstrap=brook.bootstrap)
    assert group in members and "#PARTITIONS" in members, members
    state = kafka_tool_out("--describe", "--state", "--group", group, bootstrap=brook.bootstrap)
    assert "Stable" in state or "Reconciling" in state, state
    b.stop()
    assert not b.errors(), b.describe()


@pytest.mark.brook_config({"group.consumer.min.session.timeout.ms": 1000,
                           "group.consumer.min.heartbeat.interval.ms": 100})
def test_a_group_session_timeout_of_its_own(brook, consumers):
    """`kafka-configs --entity-type groups --add-config consumer.session.timeout.ms=15000,
    consumer.heartbeat.interval.ms=1000` (IncrementalAlterConfigs on the GROUP resource)
    replaces the broker's 6 s for this group: after kill -9 of one of two members, the
    survivor gets its partitions only after 15 s. Values outside the broker's
    group.consumer.min/max bounds, and a session not longer than the heartbeat
    interval, are refused with Kafka's messages."""
    topic, group = unique_topic("kip848own"), unique_topic("g848own")
    create_topic(brook.bootstrap, topic, partitions=2)
    config = ["--alter", "--entity-type", "groups", "--entity-name", group, "--add-config"]
    for value, why in [("consumer.session.timeout.ms=500", "group.consumer.min.session"),
                       ("consumer.heartbeat.interval.ms=20000", "group.consumer.max.heartbeat"),
                       ("consumer.session.timeout.ms=5000,consumer.heartbeat.interval.ms=5000",
                        "must be greater than consumer.heartbeat.interval.ms")]:
        r = config_command(brook.bootstrap, *config, value)
        assert r.returncode != 0 and why in r.stdout + r.stderr, r.stdout + r.stderr
    r = config_command(brook.bootstrap, *config,
                    "consumer.session.timeout.ms=15000,consumer.heartbeat.interval.ms=1000")
    assert r.returncode == 0, r.stdout + r.stderr
    r = config_command(brook.bootstrap, "--describe", "--entity-type", "groups", "--entity-name",
                    group)
    assert "consumer.session.timeout.ms=15000" in r.stdout, r.stdout + r.stderr
    a = JavaConsumer(brook.bootstrap, group, topic)
    b = JavaConsumer(brook.bootstrap, group, topic)
    consumers += [a, b]
    wait_until(lambda: len(a.assigned()) == 1 and len(b.assigned()) == 1, 30,
               what=f"two members split 2 partitions\n{a.describe()}\n{b.describe()}")
    a.kill9()
    killed_at = time.monotonic()
    wait_until(lambda: len(b.assigned()) == 2, 40,
               what=f"the survivor owns both partitions\n{b.describe()}")
    moved_after = time.monotonic() - killed_at
    assert moved_after >= 15 - 1.5, f"moved after {moved_after:.1f}s (broker's 6 s applied?)"
    b.stop()
    assert not b.errors(), b.describe()


def test_confluent_kafka_consumer_protocol(brook):
    """librdkafka with group.protocol=consumer: two consumers share a topic and read
    every record once between them."""
    topic, group = unique_topic("kip848r"), unique_topic("g848r")
    create_topic(brook.bootstrap, topic, partitions=4)
    produce_range(brook.bootstrap, topic, 0, 400)
    conf = {"bootstrap.servers": brook.bootstrap, "group.id": group,
            "group.protocol": "consumer", "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    cs = [Consumer(conf), Consumer(conf)]
    seen: Counter = Counter()
    try:
        for c in cs:
            c.subscribe([topic])
        deadline = time.monotonic() + 40
        while sum(seen.values()) < 400 and time.monotonic() < deadline:
            for c in cs:
                m = c.poll(0.1)
                if m is None or m.error():
                    continue
                seen[(m.partition(), m.offset())] += 1
                c.commit(message=m, asynchronous=False)
        assert len(seen) == 400, f"read {len(seen)} of 400"
        assert max(seen.values()) == 1
        owned = [len(c.assignment()) for c in cs]
        assert sorted(owned) == [2, 2], owned
    finally:
        for c in cs:
            c.close()


def test_classic_member_joins_a_live_consumer_group(brook, consumers):
    """A librdkafka classic member (JoinGroup/SyncGroup/Heartbeat) joins a live consumer
    group as Kafka lets it: it gets its share of the server-side assignment next to the
    Java consumer-protocol member; when the Java member leaves, the group downgrades to
    a classic group and the classic member takes every partition."""
    topic, group = unique_topic("kip848c"), unique_topic("g848c")
    create_topic(brook.bootstrap, topic, partitions=2)
    a = JavaConsumer(brook.bootstrap, group, topic)
    consumers.append(a)
    wait_until(lambda: len(a.assigned()) == 2, 30, what=f"member owns both\n{a.describe()}")
    classic = Consumer({"bootstrap.servers": brook.bootstrap, "group.id": group,
                        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                        "auto.offset.reset": "earliest"})
    try:
        classic.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                len(classic.assignment()) == 1 and len(a.assigned()) == 1):
            classic.poll(0.2)
        assert len(classic.assignment()) == 1, (classic.assignment(), a.describe())
        assert len(a.assigned()) == 1, a.describe()
        a.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(classic.assignment()) != 2:
            classic.poll(0.2)
        assert len(classic.assignment()) == 2, classic.assignment()
        assert "downgraded the consumer group to a classic group" in brook.log_tail()
        listed = kafka_tool_out("--list", "--type", bootstrap=brook.bootstrap)
        assert any(group in l and "classic" in l.lower() for l in listed.splitlines()), listed
    finally:
        classic.close()


def test_java_consumer_regex_subscription(brook, consumers):
    """`subscribe(SubscriptionPattern)`: the coordinator resolves the pattern (whole
    names, RE2 syntax) to the topics that exist, the member reads those only, and a
    matching topic created later joins the subscription within Kafka's 10 s refresh
    interval plus a heartbeat; ConsumerGroupDescribe shows the pattern."""
    prefix = unique_topic("rx")
    group = unique_topic("g848x")
    for name in ("regex-a", "regex-b", "other-c"):
        create_topic(brook.bootstrap, f"{prefix}-{name}", partitions=2)
        produce_range(brook.bootstrap, f"{prefix}-{name}", 0, 20)
    c = JavaConsumer(brook.bootstrap, group, f"regex:{prefix}-regex-.*", idle_ms=90_000)
    consumers.append(c)
    wanted = {f"{prefix}-regex-a", f"{prefix}-regex-b"}
    wait_until(lambda: len(c.topic_records()) >= 40, 30,
               what=f"the matching topics read\n{c.describe()}")
    time.sleep(2)
    assert {t for t, _, _ in c.topic_records()} == wanted, c.describe()
    assert len(set(c.topic_records())) == 40

    members = kafka_tool_out("--describe", "--members", "--verbose", "--group", group,
                             bootstrap=brook.bootstrap)
    assert group in members, members

    created = time.monotonic()
    create_topic(brook.bootstrap, f"{prefix}-regex-c", partitions=2)
    produce_range(brook.bootstrap, f"{prefix}-regex-c", 0, 20)
    wait_until(lambda: sum(t.endswith("-regex-c") for t, _, _ in c.topic_records()) >= 20,
               30, what=f"the topic created later read\n{c.describe()}")
    took = time.monotonic() - created
    assert {t for t, _, _ in c.topic_records()} == wanted | {f"{prefix}-regex-c"}
    c.stop()
    assert not c.errors(), c.describe()
    assert took < 30, f"took {took:.1f}s"


def test_java_consumer_invalid_regex_is_refused(brook, consumers):
    """A pattern that is not a regular expression fails the member with Kafka's
    InvalidRegularExpression (error 128) from poll()."""
    group = unique_topic("g848xi")
    c = JavaConsumer(brook.bootstrap, group, "regex:regex-(", idle_ms=30_000)
    consumers.append(c)
    wait_until(lambda: c.errors(), 30, what=f"an error from poll\n{c.describe()}")
    assert any("InvalidRegularExpression" in e for e in c.errors()), c.describe()


@pytest.mark.deadline(300)
def test_rolling_upgrade_to_the_consumer_protocol_and_back(brook, consumers):
    """Two classic Java consumers read a topic a producer keeps writing to; each in turn
    is restarted with group.protocol=consumer (the first restart upgrades the live
    classic group, the other classic member staying in it), then each is rolled back to
    classic (the last consumer-protocol member leaving downgrades the group). Every
    record is read, committed offsets never go backwards, and kafka-consumer-groups
    describes the group all along."""
    topic, group = unique_topic("kip848m"), unique_topic("g848m")
    create_topic(brook.bootstrap, topic, partitions=4)
    total = 0

    def write(n: int) -> None:
        nonlocal total
        produce_range(brook.bootstrap, topic, total, n)
        total += n

    committed: dict[int, int] = {}

    def check_offsets() -> None:
        out = kafka_tool_out("--describe", "--group", group, bootstrap=brook.bootstrap)
        for cols in (l.split() for l in out.splitlines() if l.startswith(group)):
            if cols[3] == "-":
                continue
            p, off = int(cols[2]), int(cols[3])
            assert off >= committed.get(p, 0), f"offset of {p} went back: {out}"
            committed[p] = off

    def start(protocol: str) -> JavaConsumer:
        c = JavaConsumer(brook.bootstrap, group, topic, protocol=protocol)
        consumers.append(c)
        return c

    def read_all(live: list[JavaConsumer]) -> None:
        every = lambda: {r for c in consumers for r in c.records()}
        wait_until(lambda: len(every()) >= total, 60,
                   what=f"{total} records read\n" + "\n".join(c.describe() for c in live))
        wait_until(lambda: sum(len(c.assigned()) for c in live) == 4 and
                   all(c.assigned() for c in live), 60,
                   what="the live members share 4 partitions\n"
                   + "\n".join(c.describe() for c in live))
        check_offsets()

    write(200)
    a, b = start("classic"), start("classic")
    read_all([a, b])
    for step, (old, protocol) in enumerate([(a, "consumer"), (b, "consumer"),
                                            (None, "classic"), (None, "classic")]):
        # Upgrade a then b; then roll back the consumer-protocol members one by one.
        live = [c for c in consumers if c.proc.poll() is None]
        if old is None:
            old = next(c for c in live if c.protocol == "consumer")
        old.stop()
        write(100)
        start(protocol)
        live = [c for c in consumers if c.proc.poll() is None]
        read_all(live)
        members = kafka_tool_out("--describe", "--members", "--group", group,
                                 bootstrap=brook.bootstrap)
        assert len([l for l in members.splitlines() if l.startswith(group)]) == 2, members
        if step == 0:
            assert "upgraded the classic group to a consumer group" in brook.log_tail()
        if step == 3:
            assert "downgraded the consumer group to a classic group" in brook.log_tail()
        write(100)
        read_all(live)
    for c in consumers:
        c.stop()
        assert not c.errors(), c.describe()
    seen = {r for c in consumers for r in c.records()}
    assert len(seen) == total
    check_offsets()
    assert sum(committed.values()) == total, committed


def test_static_member_restarted_with_the_classic_protocol_downgrades_the_group(
        brook, consumers):
    """A static Java consumer (`group.instance.id`) is the only consumer-protocol member
    of a group next to a classic member; it stops and comes back under the same
    instance id with group.protocol=classic: it replaces itself, the group becomes a
    classic group at once (no session timeout to wait out) without a rebalance, as in
    Kafka: the new instance gets the partitions the old one held, the other member keeps
    its own and revokes nothing, and the two read every record."""
    topic, group = unique_topic("kip848s"), unique_topic("g848s")
    create_topic(brook.bootstrap, topic, partitions=4)
    produce_range(brook.bootstrap, topic, 0, 200)
    a = JavaConsumer(brook.bootstrap, group, topic, protocol="classic")
    consumers.append(a)
    wait_until(lambda: len(a.assigned()) == 4, 30, what=f"a alone\n{a.describe()}")
    s1 = JavaConsumer(brook.bootstrap, group, topic, instance="inst-1")
    consumers.append(s1)
    wait_until(lambda: len(a.assigned()) == 2 and len(s1.assigned()) == 2, 60,
               what=f"a and the static member split\n{a.describe()}\n{s1.describe()}")
    assert "upgraded the classic group to a consumer group" in brook.log_tail()
    held_by_a, held_by_s1 = a.assigned(), s1.assigned()
    s1.kill9()
    revocations_before = sum(1 for l in list(a.lines) if l.startswith("REVOKED"))
    s2 = JavaConsumer(brook.bootstrap, group, topic, instance="inst-1", protocol="classic")
    consumers.append(s2)
    wait_until(lambda: "downgraded the consumer group to a classic group" in brook.log_tail(),
               SESSION_MS / 1000 - 1, what="a downgrade before the session timeout")
    produce_range(brook.bootstrap, topic, 200, 200)
    wait_until(lambda: s2.assigned() == held_by_s1, 30,
               what=f"the new instance holds what the old one held\n{s2.describe()}")
    assert a.assigned() == held_by_a, a.describe()
    every = lambda: set(a.records() + s1.records() + s2.records())  # noqa: E731
    wait_until(lambda: len(every()) >= 400, 60, what="all records")
    listed = kafka_tool_out("--list", "--type", bootstrap=brook.bootstrap)
    line = next(l for l in listed.splitlines() if group in l)
    assert "classic" in line.lower(), listed
    revocations = sum(1 for l in list(a.lines) if l.startswith("REVOKED"))
    assert revocations == revocations_before, f"the downgrade rebalanced\n{a.describe()}"
    for c in (a, s2):
        c.stop()
        assert not c.errors(), c.describe()


def test_kafka_python_classic_member_next_to_a_java_consumer_member(brook, consumers):
    """kafka-python (classic protocol only) joins a live consumer group next to a Java
    consumer-protocol member; the two split the partitions and read every record once
    between them (offsets committed by each)."""
    from kafka import KafkaConsumer
    topic, group = unique_topic("kip848p"), unique_topic("g848p")
    create_topic(brook.bootstrap, topic, partitions=4)
    produce_range(brook.bootstrap, topic, 0, 400)
    a = JavaConsumer(brook.bootstrap, group, topic)
    consumers.append(a)
    wait_until(lambda: len(a.assigned()) == 4, 30, what=f"member owns all\n{a.describe()}")
    wait_until(lambda: len(a.records()) >= 400, 30, what=f"first batch read\n{a.describe()}")
    kp = KafkaConsumer(topic, bootstrap_servers=brook.bootstrap, group_id=group,
                       auto_offset_reset="earliest", enable_auto_commit=False,
                       session_timeout_ms=6000, heartbeat_interval_ms=500)
    seen: Counter = Counter()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                len(kp.assignment()) == 2 and len(a.assigned()) == 2):
            for batch in kp.poll(timeout_ms=200).values():
                for m in batch:
                    seen[(m.partition, m.offset)] += 1
            if seen:
                kp.commit()
        assert len(kp.assignment()) == 2, (kp.assignment(), a.describe())
        produce_range(brook.bootstrap, topic, 400, 400)
        mine = {p.partition for p in kp.assignment()}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(set(a.records()) | set(seen)) < 800:
            for batch in kp.poll(timeout_ms=200).values():
                for m in batch:
                    seen[(m.partition, m.offset)] += 1
            kp.commit()
        assert len(set(a.records()) | set(seen)) == 800
        assert {p for p, _ in seen} <= mine, (seen, mine)
        assert seen, "the classic member read nothing"
    finally:
        kp.close()
    a.stop()
    assert not a.errors(), a.describe()


def test_mixed_group_survives_a_broker_restart(brook, consumers):
    """A consumer group holding a Java consumer-protocol member and a librdkafka classic
    member is rebuilt from __consumer_offsets after a restart (the classic member's
    ClassicMemberMetadata included): both go on reading, and kafka-consumer-groups
    still shows one consumer group of two members."""
    topic, group = unique_topic("kip848r"), unique_topic("g848r")
    create_topic(brook.bootstrap, topic, partitions=2)
    produce_range(brook.bootstrap, topic, 0, 200)
    a = JavaConsumer(brook.bootstrap, group, topic)
    consumers.append(a)
    wait_until(lambda: len(a.assigned()) == 2, 30, what=f"member owns both\n{a.describe()}")
    classic = Consumer({"bootstrap.servers": brook.bootstrap, "group.id": group,
                        "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    seen: set = set()

    def poll_for(secs: float, until) -> None:
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline and not until():
            m = classic.poll(0.2)
            if m is not None and not m.error():
                seen.add((m.partition(), m.offset()))
                classic.commit(message=m, asynchronous=False)

    try:
        classic.subscribe([topic])
        poll_for(30, lambda: len(classic.assignment()) == 1 and len(a.assigned()) == 1)
        assert len(classic.assignment()) == 1, a.describe()
        brook.restart()
        produce_range(brook.bootstrap, topic, 200, 200)
        poll_for(60, lambda: len(set(a.records()) | seen) >= 400)
        assert len(set(a.records()) | seen) == 400
        assert len(classic.assignment()) == 1 and len(a.assigned()) == 1, a.describe()
        listed = kafka_tool_out("--list", "--type", bootstrap=brook.bootstrap)
        assert any(group in l and "consumer" in l.lower() for l in listed.splitlines()), listed
        members = kafka_tool_out("--describe", "--members", "--group", group,
                                 bootstrap=brook.bootstrap)
        assert len([l for l in members.splitlines() if l.startswith(group)]) == 2, members
        # Both members were rebuilt from the log: neither had to join again.
        since = brook._log_since_spawn()
        assert not any("member joins the consumer group" in l and group in l
                       for l in since.splitlines()), since[-3000:]
    finally:
        classic.close()
    a.stop()


@pytest.mark.deadline(240)
def test_mixed_group_survives_a_coordinator_failover(cluster, consumers):
    """A group upgraded to the consumer protocol with a classic member still in it (a
    Java consumer-protocol member and a librdkafka classic member), on a 3-node cluster:
    kill -9 of its coordinator. Another node takes the group over from the replicated
    __consumer_offsets (both members, the classic one's metadata included), both go on
    reading, every record is read, and the group is still one consumer group of two."""
    topic, group = unique_topic("kip848f"), unique_topic("g848f")
    cluster.create_topic(topic, partitions=2, replication_factor=3)
    produce_range(cluster.bootstrap, topic, 0, 200)
    a = JavaConsumer(cluster.bootstrap, group, topic)
    consumers.append(a)
    wait_until(lambda: len(a.assigned()) == 2, 60, what=f"member owns both\n{a.describe()}")
    classic = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                        "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    seen: set = set()

    def poll_for(secs: float, until) -> None:
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline and not until():
            m = classic.poll(0.2)
            if m is not None and not m.error():
                seen.add((m.partition(), m.offset()))
                classic.commit(message=m, asynchronous=False)

    try:
        classic.subscribe([topic])
        poll_for(60, lambda: len(classic.assignment()) == 1 and len(a.assigned()) == 1)
        assert len(classic.assignment()) == 1, a.describe()
        coordinator = next(i for i in cluster.ids
                           if describe_consumer_group(cluster.nodes[i].port, group))
        epoch = describe_in_cluster(cluster, group)["epoch"]
        cluster.kill(coordinator)
        produce_range(cluster.bootstrap, topic, 200, 200)
        poll_for(120, lambda: len(set(a.records()) | seen) >= 400)
        assert len(set(a.records()) | seen) == 400, (len(a.records()), len(seen))
        after = describe_in_cluster(cluster, group)
        assert len(after["members"]) == 2 and after["epoch"] >= epoch, after
        poll_for(30, lambda: len(classic.assignment()) == 1 and len(a.assigned()) == 1)
        assert len(classic.assignment()) == 1 and len(a.assigned()) == 1, a.describe()
    finally:
        classic.close()
    a.stop()


@pytest.mark.deadline(300)
def test_churn_and_a_coordinator_failover_mid_rebalance(cluster, consumers):
    """KIP-848 under churn on a 3-node cluster: records keep arriving while Java
    consumers join and leave; the coordinator is killed (kill -9) right as a member
    joins, while partitions are being revoked and reassigned. Every record is read at
    least once, and the group's committed offsets never go backwards (sampled between
    every batch of records produced, all through the test)."""
    from confluent_kafka import TopicPartition
    topic, group = unique_topic("kip848c"), unique_topic("g848c")
    cluster.create_topic(topic, partitions=6, replication_factor=3)
    # Committed offsets through a consumer that never subscribes (it does not join the
    # group). Not the admin client: librdkafka 2.16's admin ListConsumerGroupOffsets
    # crashes the process (rd_kafka_handle_OffsetFetch calls rd_kafka_cgrp_op on the
    # admin client's missing group handle) when OffsetFetch answers a coordinator error,
    # as it does while the coordinator moves.
    reader = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                       "enable.auto.commit": False})
    # One producer for the whole test: librdkafka clients created and destroyed by the
    # dozen while a node is down have crashed the pytest worker (a segfault in CI).
    writer = producer(cluster.bootstrap)
    # Members keep polling through a slow failover (the metadata quorum's election on a
    # loaded machine has taken 25 s, and no record arrives meanwhile).
    IDLE_MS = 120_000  # noqa: N806
    produced = [0]
    backwards: list[str] = []
    last: dict[int, int] = {}

    def committed() -> dict[int, int]:
        try:
            tps = reader.committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
        except Exception:  # noqa: BLE001 - the coordinator may be moving
            return {}
        return {tp.partition: tp.offset for tp in tps if tp.error is None and tp.offset >= 0}

    def churning(until, secs: float, what: str, produce: bool = True) -> None:
        """Produces 50 records and samples the committed offsets until `until`."""
        deadline = time.monotonic() + secs
        while not until():
            assert time.monotonic() < deadline, what
            if produce and produced[0] < 3000:
                first = produced[0]
                assert_all_delivered(produce_all(writer, topic, [
                    {"key": str(i).encode(), "value": f"v{i}".encode()}
                    for i in range(first, first + 50)]))
                produced[0] += 50
            for p, o in committed().items():
                if o < last.get(p, -1):
                    backwards.append(f"partition {p}: {last[p]} -> {o}")
                last[p] = max(o, last.get(p, -1))
            time.sleep(0.1)

    a = JavaConsumer(cluster.bootstrap, group, topic, idle_ms=IDLE_MS)
    consumers.append(a)
    churning(lambda: len(a.assigned()) == 6, 60, f"a owns all\n{a.describe()}")
    coordinator = next(i for i in cluster.ids
                       if describe_consumer_group(cluster.nodes[i].port, group))
    b = JavaConsumer(cluster.bootstrap, group, topic, idle_ms=IDLE_MS)
    consumers.append(b)
    churning(lambda: len(a.assigned()) < 6 or b.assigned(), 60,
             f"the rebalance started\n{a.describe()}\n{b.describe()}")
    cluster.kill(coordinator)
    c = JavaConsumer(cluster.bootstrap, group, topic, idle_ms=IDLE_MS)
    consumers.append(c)
    churning(lambda: all(len(m.assigned()) == 2 for m in (a, b, c)), 120,
             f"three members own two each\n{a.describe()}\n{b.describe()}\n{c.describe()}")
    a.stop()
    churning(lambda: len(b.assigned()) == 3 and len(c.assigned()) == 3, 120,
             f"a's partitions moved on\n{b.describe()}\n{c.describe()}")
    total = produced[0]
    read = lambda: {r for m in (a, b, c) for r in m.records()}  # noqa: E731
    churning(lambda: len(read()) >= total, 120, f"all {total} records read", produce=False)
    assert len(read()) == total
    assert not backwards, backwards
    for m in (a, b, c):
        assert not m.errors(), m.describe()
    reader.close()


def describe_consumer_group(port: int, group: str) -> dict | None:
    """ConsumerGroupDescribe v0 sent to one node: {"epoch", "assignment_epoch", "state",
    "members": {member_id: rack_id}}, or None when the node does not coordinate it."""
    import kafka_wire as kw
    body = (kw.compact_array([kw.compact_string(group)]) + b"\x00" + kw.NO_TAGS)
    s = kw.connect(port)
    try:
        s.sendall(kw.frame(kw.header_v2(69, 0, 7) + body))
        r = kw.Reader(kw.read_response(s, 7, flexible_header=True))
    finally:
        s.close()

    def compact_array(item):
        return [item() for _ in range(r.uvarint() - 1)]

    def topic_partitions():
        r.take(16)
        r.compact_string()
        compact_array(r.i32)
        r.tags()

    def assignment():
        compact_array(topic_partitions)
        r.tags()

    r.i32()                                   # throttle_time_ms
    assert r.uvarint() == 2, "one group"
    error, _message = r.i16(), r.compact_string()
    if error == 16:                           # NOT_COORDINATOR
        return None
    assert error == 0, error
    r.compact_string()                        # group_id
    out = {"state": r.compact_string(), "epoch": r.i32(), "assignment_epoch": r.i32()}
    r.compact_string()                        # assignor_name

    def member():
        member_id = r.compact_string()
        r.compact_string()                    # instance_id
        rack = r.compact_string()
        r.i32()                               # member_epoch
        r.compact_string(), r.compact_string()  # client_id, client_host
        compact_array(r.compact_string)       # subscribed_topic_names
        r.compact_string()                    # subscribed_topic_regex
        assignment(), assignment()            # assignment, target_assignment
        r.tags()
        return member_id, rack

    out["members"] = dict(compact_array(member))
    return out


def describe_in_cluster(cluster, group: str) -> dict:
    """The group as its coordinator (whichever node that is) describes it."""
    for i in (i for i in cluster.ids if cluster.nodes[i].running):
        d = describe_consumer_group(cluster.nodes[i].port, group)
        if d is not None:
            return d
    raise AssertionError(f"no node coordinates {group}")


@pytest.mark.deadline(240)
def test_replica_rack_changes_bump_the_group_epoch(cluster_factory, consumers, tmp_path):
    """Brokers with `broker.rack`, Java consumers with `client.rack`. Kafka 4's `uniform`
    assignor does not use racks (nor does `range`): two members get two partitions
    each whatever their racks. As with KIP-1101, the group's metadata hash covers the
    racks of the subscribed partitions' replicas: moving a replica to another broker of
    the same rack changes nothing, moving it to another rack bumps the group epoch and
    runs the assignor again, which keeps every partition where it is."""
    from test_cluster_tools import reassign
    cluster = cluster_factory(3, {
        "group.consumer.session.timeout.ms": SESSION_MS,
        "group.consumer.heartbeat.interval.ms": 500,
        "offsets.topic.num.partitions": 4,
    }, start=False)
    racks = {1: "rack-a", 2: "rack-b", 3: "rack-b"}
    for i, rack in racks.items():
        cluster.nodes[i].settings["broker.rack"] = rack
    cluster.start_all()
    topic, group = unique_topic("racks"), unique_topic("racks-group")
    cluster.create_topic(topic, partitions=4, replica_assignment=[[1], [2], [1], [2]])
    a = JavaConsumer(cluster.bootstrap, group, topic, rack="rack-a")
    consumers.append(a)
    b = JavaConsumer(cluster.bootstrap, group, topic, rack="rack-b")
    consumers.append(b)
    wait_until(lambda: len(a.assigned()) == 2 and len(b.assigned()) == 2, 60,
               what=f"two members split 4 partitions\n{a.describe()}\n{b.describe()}")

    def settled():
        d = describe_in_cluster(cluster, group)
        return d if d["state"] == "Stable" else None

    first = wait_until(settled, 30, what="a Stable group")
    assert sorted(first["members"].values()) == ["rack-a", "rack-b"], first
    held = (a.assigned(), b.assigned())

    # rack-b -> rack-b: the partition's racks stay {rack-b}.
    reassign(cluster.bootstrap, tmp_path, "execute", {(topic, 1): [3]})
    cluster.wait(lambda: cluster.partition(topic, 1).replicas == [3] or None, 30,
                 f"{topic}-1 on node 3")
    time.sleep(3)                             # a few heartbeats of both members
    same = wait_until(settled, 30, what="a Stable group")
    assert (same["epoch"], same["assignment_epoch"]) == (first["epoch"], first["epoch"]), \
        (first, same)

    # rack-b -> rack-a: another rack, another group epoch; nothing moves.
    reassign(cluster.bootstrap, tmp_path, "execute", {(topic, 1): [1]})
    cluster.wait(lambda: cluster.partition(topic, 1).replicas == [1] or None, 30,
                 f"{topic}-1 on node 1")
    wait_until(lambda: (d := settled()) and d["epoch"] > first["epoch"]
               and d["assignment_epoch"] == d["epoch"], 30,
               what=f"the group epoch moves past {first['epoch']}")
    assert (a.assigned(), b.assigned()) == held
    produce_range(cluster.bootstrap, topic, 0, 40)
    wait_until(lambda: len(set(a.records() + b.records())) >= 40, 30,
               what=f"every record read\n{a.describe()}\n{b.describe()}")
    for c in (a, b):
        c.stop()
        assert not c.errors(), c.describe()

