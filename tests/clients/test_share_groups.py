"""KIP-932 share groups with Kafka's own Java KafkaShareConsumer (kafka-clients 4.4,
from compat/.cache via scripts/kafka-jars.sh), in explicit acknowledgement mode
(tests/clients/java/ShareConsumerProbe.java), and Kafka's kafka-share-groups tool.

Brokers run with a 3 s acquisition lock and a delivery count limit of 3, so lock
expiry and archiving show within seconds. A share-partition starts at the log end the
first time the group fetches it (`share.auto.offset.reset=latest`) and a consumer's
first poll does not tell when that was, so the probes set their group's
`share.auto.offset.reset` to earliest first (IncrementalAlterConfigs on the GROUP
resource); the last test checks `latest` and `earliest` with Kafka's tools."""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
import time
from collections import Counter
from functools import lru_cache

import pytest

from kafka_helpers import (admin_client, assert_all_delivered, create_topic, produce_all,
                           producer, unique_topic, wait_until, watermarks)
from test_cluster_tools import JVM, config_command, kafka_jars

HERE = pathlib.Path(__file__).resolve().parent
LOCK_MS = 3000
DELIVERY_LIMIT = 3
OFFSETS_PARTITIONS = 4
pytestmark = pytest.mark.brook_config({
    "group.share.record.lock.duration.ms": LOCK_MS,
    "group.share.delivery.count.limit": DELIVERY_LIMIT,
    "group.share.heartbeat.interval.ms": 500,
    "group.share.session.timeout.ms": 6000,
    "offsets.topic.num.partitions": OFFSETS_PARTITIONS,
})
SHARE_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ShareGroupCommand"


def coordinator_partition(group: str) -> int:
    """The group's __consumer_offsets partition: Java String.hashCode, as Kafka."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % OFFSETS_PARTITIONS


@lru_cache(maxsize=1)
def classes(tmp: str = "/tmp/brook-share-classes") -> str:
    """ShareConsumerProbe.java and ShareOffsetsAdmin.java compiled once against the
    Kafka jars."""
    out = pathlib.Path(tmp) / str(os.getpid())
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-nowarn", "-cp", f"{kafka_jars()}/*", "-d", str(out),
                    str(HERE / "java" / "ShareConsumerProbe.java"),
                    str(HERE / "java" / "ShareOffsetsAdmin.java")],
                   check=True, capture_output=True, timeout=120)
    return str(out)


class ShareConsumer:
    """One ShareConsumerProbe process; its lines are collected as they come."""

    def __init__(self, bootstrap: str, group: str, topic: str, mode: str, *config: str):
        cmd = [*JVM, "-cp", f"{kafka_jars()}/*:{classes()}", "ShareConsumerProbe",
               bootstrap, group, topic, mode, *config]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
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

    def deliveries(self) -> list[tuple[int, int, int]]:
        """(partition, offset, delivery count) of every delivery, in order."""
        return [(int(p), int(o), int(c)) for _, p, o, c, *_ in
                (l.split(" ") for l in list(self.lines) if l.startswith("RECORD "))]

    def offsets(self) -> list[int]:
        return [o for _, o, _ in self.deliveries()]

    def ready(self) -> bool:
        return "READY" in self.lines

    def problems(self) -> list[str]:
        return [l for l in self.lines if l.startswith(("ERROR", "COMMIT"))]

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


@pytest.fixture
def consumers():
    made: list[ShareConsumer] = []
    yield made
    for c in made:
        if c.proc.poll() is None:
            c.kill9()


def start(consumers, bootstrap, group, topic, mode, *config, earliest=True) -> ShareConsumer:
    extra = ("probe.earliest=true",) if earliest else ()
    c = ShareConsumer(bootstrap, group, topic, mode, *config, *extra)
    consumers.append(c)
    wait_until(c.ready, 60, what=f"share consumer ready\n{c.describe()}")
    return c


def produce_range(bootstrap: str, topic: str, start_at: int, n: int, batch: int = 1) -> None:
    """Values v<start_at>..; `batch` records per produce request (linger 0, one flush
    per batch), so a partition holds many small batches."""
    p = producer(bootstrap, **{"linger.ms": 0})
    for first in range(start_at, start_at + n, batch):
        assert_all_delivered(produce_all(p, topic, [
            {"key": str(i).encode(), "value": f"v{i}".encode()}
            for i in range(first, min(first + batch, start_at + n))]))


def share_tool(*args: str, bootstrap: str) -> str:
    r = subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*", SHARE_GROUP_COMMAND,
                        "--bootstrap-server", bootstrap, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_two_share_consumers_split_one_partition(brook, consumers):
    """Two members of one share group on a one-partition topic: both are assigned the
    partition, each gets some of the records, together they see every record, and none
    is delivered twice (all are accepted at the first delivery)."""
    topic, group = unique_topic("share2"), unique_topic("gshare2")
    create_topic(brook.bootstrap, topic, partitions=1)
    a = start(consumers, brook.bootstrap, group, topic, "accept", "max.poll.records=10")
    b = start(consumers, brook.bootstrap, group, topic, "accept", "max.poll.records=10")
    produce_range(brook.bootstrap, topic, 0, 400, batch=5)
    wait_until(lambda: len(set(a.offsets()) | set(b.offsets())) >= 400, 60,
               what=f"every record delivered\n{a.describe()}\n{b.describe()}")
    seen = Counter(a.offsets() + b.offsets())
    assert sorted(seen) == list(range(400))
    twice = {o: n for o, n in seen.items() if n > 1}
    assert not twice, f"records delivered twice: {sorted(twice)[:10]}"
    assert a.offsets() and b.offsets(), "both members got records"
    assert not a.problems() and not b.problems(), a.describe() + b.describe()

    listed = share_tool("--list", bootstrap=brook.bootstrap)
    assert group in listed.split(), listed
    members = share_tool("--describe", "--members", "--group", group,
                         bootstrap=brook.bootstrap)
    assert members.count(topic) >= 2, members  # both members hold the partition
    state = share_tool("--describe", "--state", "--group", group, bootstrap=brook.bootstrap)
    assert "Stable" in state, state
    for c in (a, b):
        c.stop()
        assert "CLOSED" in c.lines, c.describe()
    # Empty now: kafka-share-groups deletes it (DeleteGroups), state and all.
    wait_until(lambda: "Empty" in share_tool("--describe", "--state", "--group", group,
                                            bootstrap=brook.bootstrap), 20, what="empty group")
    share_tool("--delete", "--group", group, bootstrap=brook.bootstrap)
    assert group not in share_tool("--list", bootstrap=brook.bootstrap).split()


def test_implicit_acknowledgement_mode(brook, consumers):
    """The Java client's default mode: each poll accepts the previous poll's records
    (acknowledgements piggy-backed on ShareFetch, the last ones sent on close). Every
    record is delivered once, and a later member of the group gets none of them."""
    topic, group = unique_topic("shareimp"), unique_topic("gimp")
    create_topic(brook.bootstrap, topic, partitions=2)
    a = start(consumers, brook.bootstrap, group, topic, "implicit",
              "share.acknowledgement.mode=implicit", "max.poll.records=7")
    produce_range(brook.bootstrap, topic, 0, 100, batch=10)
    wait_until(lambda: len(a.deliveries()) >= 100, 30, what=f"every record\n{a.describe()}")
    a.stop()
    assert "CLOSED" in a.lines and not a.problems(), a.describe()
    assert len(set((p, o) for p, o, _ in a.deliveries())) == 100
    assert all(c == 1 for _, _, c in a.deliveries())
    b = start(consumers, brook.bootstrap, group, topic, "accept")
    time.sleep(LOCK_MS / 1000 + 2)
    assert b.deliveries() == [], b.describe()


def test_release_redelivers_and_reject_archives(brook, consumers):
    """RELEASE at the first delivery makes a record come back with delivery count 2;
    REJECT archives it for good."""
    topic = unique_topic("sharerel")
    create_topic(brook.bootstrap, topic, partitions=1)
    rel = start(consumers, brook.bootstrap, unique_topic("grel"), topic, "release-first")
    rej = start(consumers, brook.bootstrap, unique_topic("grej"), topic, "reject-even")
    produce_range(brook.bootstrap, topic, 0, 20, batch=4)
    wait_until(lambda: len(rel.deliveries()) >= 40, 30,
               what=f"each record twice\n{rel.describe()}")
    by_offset: dict[int, list[int]] = {}
    for _, o, c in rel.deliveries():
        by_offset.setdefault(o, []).append(c)
    assert sorted(by_offset) == list(range(20))
    assert all(counts == [1, 2] for counts in by_offset.values()), by_offset
    wait_until(lambda: len(rej.deliveries()) >= 20, 30, what=f"every record once\n{rej.describe()}")
    # Rejected records never come back, even after the lock duration.
    time.sleep(LOCK_MS / 1000 + 1)
    assert sorted(rej.offsets()) == list(range(20)), rej.describe()
    assert all(c == 1 for _, _, c in rej.deliveries())
    assert not rel.problems() and not rej.problems()


def holding_ten(consumers, bootstrap: str, prefix: str) -> tuple[ShareConsumer, str, str]:
    """A member of a new group on a new 1-partition topic that took its 10 records and
    holds them unacknowledged; returns it, the topic and the group."""
    topic, group = unique_topic(f"share{prefix}"), unique_topic(f"g{prefix}")
    create_topic(bootstrap, topic, partitions=1)
    holder = start(consumers, bootstrap, group, topic, "hold")
    produce_range(bootstrap, topic, 0, 10, batch=10)
    wait_until(lambda: "HOLDING" in holder.lines, 30, what=f"records held\n{holder.describe()}")
    assert set(holder.offsets()) == set(range(10)), holder.describe()
    return holder, topic, group


def test_unacknowledged_records_come_back_after_the_lock_expires(brook, consumers):
    """A member takes records and never acknowledges them (it stays in the group): after
    the acquisition lock duration another member gets them, with delivery count 2."""
    holder, topic, group = holding_ten(consumers, brook.bootstrap, "lock")
    held = set(holder.offsets())
    taken_at = time.monotonic()
    other = start(consumers, brook.bootstrap, group, topic, "accept")
    wait_until(lambda: set(other.offsets()) >= held, LOCK_MS / 1000 + 20,
               what=f"held records redelivered\n{other.describe()}")
    assert time.monotonic() - taken_at >= LOCK_MS / 1000 - 1.5
    # Redelivered (count 2), or 3 when the holder, still polling, took them once more
    # after the first lock ran out before the other member's first fetch.
    assert all(c in (2, 3) for _, _, c in other.deliveries()), other.deliveries()


def test_records_of_a_killed_consumer_come_back_when_its_connection_drops(brook_factory,
                                                                          consumers):
    """kill -9 of a member holding records: its connections drop, its share session ends
    and what it held is released at once (as Kafka evicts a share session whose
    connection drops), long before the 60 s acquisition lock would run out."""
    lock_ms = 60_000
    brook = brook_factory({"group.share.record.lock.duration.ms": lock_ms,
                           "group.share.heartbeat.interval.ms": 500,
                           "group.share.session.timeout.ms": 90_000})
    holder, topic, group = holding_ten(consumers, brook.bootstrap, "drop")
    held = set(holder.offsets())
    other = start(consumers, brook.bootstrap, group, topic, "accept")
    time.sleep(2)
    assert not other.offsets(), other.describe()
    killed_at = time.monotonic()
    holder.kill9()
    wait_until(lambda: set(other.offsets()) >= held, 20,
               what=f"released records redelivered\n{other.describe()}")
    assert time.monotonic() - killed_at < lock_ms / 1000 / 2
    assert all(c == 2 for _, _, c in other.deliveries()), other.deliveries()


def test_delivery_count_limit_archives(brook, consumers):
    """A member that releases every record sees each one exactly
    group.share.delivery.count.limit times."""
    topic = unique_topic("sharelimit")
    create_topic(brook.bootstrap, topic, partitions=1)
    c = start(consumers, brook.bootstrap, unique_topic("glimit"), topic, "release")
    produce_range(brook.bootstrap, topic, 0, 5, batch=5)
    wait_until(lambda: len(c.deliveries()) >= 5 * DELIVERY_LIMIT, 30,
               what=f"every delivery\n{c.describe()}")
    time.sleep(2)
    counts = Counter(c.offsets())
    assert counts == {o: DELIVERY_LIMIT for o in range(5)}, counts
    assert sorted({n for _, _, n in c.deliveries()}) == list(range(1, DELIVERY_LIMIT + 1))


def test_renew_keeps_records_from_redelivery(brook, consumers):
    """KIP-1222, ShareFetch/ShareAcknowledge v2: a member that RENEWs the records it
    holds (explicit mode, AcknowledgeType.RENEW) keeps them past the lock duration, three
    times over: another member of the group never gets them, and the holder finally
    accepts them at their first delivery count. Without renewal (the `hold` test above)
    they come back to the other member after one lock duration."""
    topic, group = unique_topic("sharerenew"), unique_topic("grenew")
    create_topic(brook.bootstrap, topic, partitions=1)
    hold_ms = 3 * LOCK_MS
    a = start(consumers, brook.bootstrap, group, topic, "renew", f"probe.renew.ms={hold_ms}")
    produce_range(brook.bootstrap, topic, 0, 5, batch=5)
    wait_until(lambda: {o for o in a.offsets()} == set(range(5)), 30,
               what=f"records taken\n{a.describe()}")
    renewing_since = time.monotonic()
    b = start(consumers, brook.bootstrap, group, topic, "accept")
    # Past the renewals: the holder accepts, and nothing was ever redelivered.
    wait_until(lambda: time.monotonic() - renewing_since > hold_ms / 1000 + LOCK_MS / 1000,
               hold_ms / 1000 + 10, what="renewal period over")
    renewals = Counter(int(l.split()[2]) for l in a.lines if l.startswith("RENEW "))
    assert set(renewals) == set(range(5)) and min(renewals.values()) >= 4, renewals
    assert a.deliveries() == [(0, o, 1) for o in range(5)], a.describe()
    assert b.deliveries() == [], b.describe()
    assert not a.problems() and not b.problems(), a.describe() + b.describe()
    # Accepted, they never come back; the group goes on with new records.
    produce_range(brook.bootstrap, topic, 5, 5, batch=5)
    wait_until(lambda: len(set(a.offsets()) | set(b.offsets())) >= 10, 30,
               what=f"new records\n{a.describe()}\n{b.describe()}")
    time.sleep(LOCK_MS / 1000 + 1)
    assert sorted(a.offsets() + b.offsets()) == list(range(10)), a.describe() + b.describe()


@pytest.mark.parametrize("mode", ["record_limit", "batch_optimized"])
def test_share_acquire_mode(brook, consumers, mode):
    """KIP-1206, ShareFetch v2's acquire mode: 20 records in one batch, a member with
    `max.poll.records=3` takes one poll's worth and holds it. With
    `share.acquire.mode=record_limit` each of its fetches acquires at most 3, so another
    member gets most of the batch at their first delivery, never more than 3 per poll
    (the holder's client may have fetched once or twice more ahead of its polls). With
    `batch_optimized` (the default) the broker acquires whole batches: the first poll
    has all 20 (the Java client hands over what was acquired), and the other member
    gets them only once the lock expired, none at its first delivery."""
    topic, group = unique_topic("sharemode"), unique_topic("gmode")
    create_topic(brook.bootstrap, topic, partitions=1)
    produce_range(brook.bootstrap, topic, 0, 20, batch=20)
    cfg = (f"share.acquire.mode={mode}", "max.poll.records=3")
    holder = start(consumers, brook.bootstrap, group, topic, "hold", *cfg)
    wait_until(lambda: "HOLDING" in holder.lines, 30, what=f"records held\n{holder.describe()}")
    held = set(holder.offsets())
    if mode == "record_limit":
        assert 1 <= len(held) <= 3, holder.describe()
    else:
        assert held == set(range(20)), holder.describe()
    other = start(consumers, brook.bootstrap, group, topic, "accept", *cfg)
    # record_limit: what the holder did not show; batch_optimized: all, once expired.
    target = set(range(20)) - held if mode == "record_limit" else set(range(20))
    wait_until(lambda: set(other.offsets()) >= target, LOCK_MS / 1000 + 30,
               what=f"the other records\n{other.describe()}")
    first = {o for _, o, c in other.deliveries() if c == 1}
    polls = [int(l.split()[1]) for l in other.lines if l.startswith("POLL ")]
    if mode == "record_limit":
        assert len(first) >= 20 - 3 * 3 and not first & held, (first, held)
        assert polls and max(polls) <= 3, polls
    else:
        assert not first, other.deliveries()
    assert not other.problems(), other.describe()


def test_acknowledged_records_stay_acknowledged_across_a_crash(brook, consumers):
    """kill -9 the broker after some records were accepted and others taken but not
    acknowledged: after the restart the accepted ones never come back and the others
    all do (the share-partition's state is in __consumer_offsets)."""
    topic, group = unique_topic("sharecrash"), unique_topic("gcrash")
    create_topic(brook.bootstrap, topic, partitions=1)
    a = start(consumers, brook.bootstrap, group, topic, "accept")
    produce_range(brook.bootstrap, topic, 0, 30, batch=10)
    wait_until(lambda: len(a.offsets()) >= 30, 30, what=f"first records\n{a.describe()}")
    a.stop()
    h = start(consumers, brook.bootstrap, group, topic, "hold")
    produce_range(brook.bootstrap, topic, 30, 10, batch=10)
    wait_until(lambda: "HOLDING" in h.lines, 30, what=f"records held\n{h.describe()}")
    assert set(h.offsets()) == set(range(30, 40)), h.describe()
    h.kill9()
    brook.kill9()
    brook.start()
    b = start(consumers, brook.bootstrap, group, topic, "accept")
    produce_range(brook.bootstrap, topic, 40, 10, batch=10)
    wait_until(lambda: set(b.offsets()) >= set(range(30, 50)), 60,
               what=f"held and new records\n{b.describe()}")
    time.sleep(1)
    assert sorted(set(b.offsets())) == list(range(30, 50)), b.describe()


def test_share_auto_offset_reset_latest_and_earliest(brook, consumers):
    """`kafka-configs --entity-type groups --add-config share.auto.offset.reset=earliest`
    (IncrementalAlterConfigs on the GROUP resource) makes a new share group start at
    the log start: records produced before it first fetched are delivered. It survives
    a restart and kafka-configs describes it."""
    topic, group = unique_topic("shareearly"), unique_topic("gearly")
    create_topic(brook.bootstrap, topic, partitions=1)
    produce_range(brook.bootstrap, topic, 0, 10, batch=10)
    tool = "org.apache.kafka.tools.ConfigCommand"
    r = subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*", tool, "--bootstrap-server",
                        brook.bootstrap, "--alter", "--entity-type", "groups", "--entity-name",
                        group, "--add-config", "share.auto.offset.reset=earliest"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    brook.restart()
    r = subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*", tool, "--bootstrap-server",
                        brook.bootstrap, "--describe", "--entity-type", "groups",
                        "--entity-name", group], capture_output=True, text=True, timeout=60)
    assert "share.auto.offset.reset=earliest" in r.stdout, r.stdout + r.stderr
    c = start(consumers, brook.bootstrap, group, topic, "accept", earliest=False)
    wait_until(lambda: len(c.offsets()) >= 10, 30, what=f"old records\n{c.describe()}")
    assert sorted(c.offsets()) == list(range(10))
    # Without the config a new group starts at the log end: it sees only what comes
    # after its first fetch (waited for here by the lack of any delivery).
    late = start(consumers, brook.bootstrap, unique_topic("glate"), topic, "accept",
                 earliest=False)
    time.sleep(5)
    assert late.offsets() == [], late.describe()
    produce_range(brook.bootstrap, topic, 10, 5, batch=5)
    wait_until(lambda: len(late.offsets()) >= 5, 30, what=f"new records\n{late.describe()}")
    assert sorted(late.offsets()) == list(range(10, 15))


def console_share_consumer(bootstrap: str, topic: str, group: str, *args: str) -> list[str]:
    """Kafka's kafka-console-share-consumer; the values it printed."""
    r = subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*",
                        "org.apache.kafka.tools.consumer.ConsoleShareConsumer",
                        "--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
                        *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_kafka_console_share_consumer(brook):
    """`kafka-console-share-consumer`: `--release` hands the records back (another run
    gets them again), a plain run accepts them, and then there is nothing left."""
    topic, group = unique_topic("shareconsole"), unique_topic("gconsole")
    create_topic(brook.bootstrap, topic, partitions=1)
    r = config_command(brook.bootstrap, "--alter", "--entity-type", "groups", "--entity-name",
                       group, "--add-config", "share.auto.offset.reset=earliest")
    assert r.returncode == 0, r.stdout + r.stderr
    produce_range(brook.bootstrap, topic, 0, 10, batch=10)
    want = [f"v{i}" for i in range(10)]
    assert sorted(console_share_consumer(brook.bootstrap, topic, group, "--release",
                                         "--max-messages", "10", "--timeout-ms", "30000"),
                  key=lambda v: int(v[1:])) == want
    assert sorted(console_share_consumer(brook.bootstrap, topic, group, "--max-messages", "10",
                                         "--timeout-ms", "30000"),
                  key=lambda v: int(v[1:])) == want
    assert console_share_consumer(brook.bootstrap, topic, group, "--timeout-ms", "5000") == []


@pytest.mark.deadline(180)
def test_share_group_in_a_cluster(cluster):
    """Three nodes: the group's coordinator is one broker and the partitions' leaders
    are spread over all three; two share consumers get every record once between them
    (ShareFetch goes to each partition's leader)."""
    topic, group = unique_topic("sharecl"), unique_topic("gcl")
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    for p in range(3):
        cluster.wait_for_leader(topic, p)
    made: list[ShareConsumer] = []
    try:
        a = start(made, cluster.bootstrap, group, topic, "accept")
        b = start(made, cluster.bootstrap, group, topic, "accept")
        produce_range(cluster.bootstrap, topic, 0, 300, batch=10)
        seen = lambda: [(p, o) for c in (a, b) for p, o, _ in c.deliveries()]  # noqa: E731
        wait_until(lambda: len(set(seen())) >= 300, 60,
                   what=f"every record\n{a.describe()}\n{b.describe()}")
        time.sleep(1)
        counts = Counter(seen())
        assert len(counts) == 300 and max(counts.values()) == 1, counts.most_common(3)
    finally:
        for c in made:
            if c.proc.poll() is None:
                c.kill9()


def only_the_new_records(made, bootstrap, group, topic, first, n) -> "ShareConsumer":
    """A new member of `group` after a failover: records first..first+n-1 are produced
    and it gets exactly those, none accepted before coming back."""
    c = start(made, bootstrap, group, topic, "accept")
    produce_range(bootstrap, topic, first, n, batch=10)
    wait_until(lambda: len(c.offsets()) >= n, 60, what=f"records {first}..\n{c.describe()}")
    time.sleep(LOCK_MS / 1000 + 1)
    assert sorted(c.offsets()) == list(range(first, first + n)), c.describe()
    return c


def off_the_leader_group_accepting_30(cluster, made, topic, leader, prefix) -> tuple[str, int]:
    """A share group whose coordinator is not `leader` (the partition's leader then keeps
    the state through another broker; the first share heartbeat of any group creates
    __consumer_offsets), after a member of it accepted records 0..29 and stopped.
    Returns the group and its coordinator."""
    warm = start(made, cluster.bootstrap, unique_topic("gwarm"), topic, "accept")
    warm.stop()
    offsets_leaders = {p: cluster.wait_for_leader("__consumer_offsets", p)[0]
                       for p in range(OFFSETS_PARTITIONS)}
    group = next(g for g in (unique_topic(prefix) for _ in range(100))
                 if offsets_leaders[coordinator_partition(g)] != leader)
    a = start(made, cluster.bootstrap, group, topic, "accept")
    produce_range(cluster.bootstrap, topic, 0, 30, batch=10)
    wait_until(lambda: len(a.offsets()) >= 30, 60, what=f"first records\n{a.describe()}")
    a.stop()
    return group, offsets_leaders[coordinator_partition(group)]


@pytest.mark.deadline(240)
def test_acknowledgements_survive_a_partition_leader_crash_in_a_cluster(cluster):
    """Three nodes: records accepted through one leader are not delivered again after
    kill -9 of that leader (the share-partition state is kept by the group's
    coordinator on another broker, written there with acks=all, and read back by the
    new leader), while records produced later are."""
    topic = unique_topic("sharefo")
    cluster.create_topic(topic, partitions=1, replication_factor=3)
    leader, _ = cluster.wait_for_leader(topic, 0)
    made: list[ShareConsumer] = []
    try:
        group, _ = off_the_leader_group_accepting_30(cluster, made, topic, leader, "gfo")
        cluster.kill(leader)
        alive = [i for i in cluster.ids if i != leader]
        cluster.wait_for_leader(topic, 0, not_in=[leader], via=alive[0], timeout=30)
        bootstrap = cluster.bootstrap_of(*alive)
        only_the_new_records(made, bootstrap, group, topic, 30, 10)
    finally:
        for c in made:
            if c.proc.poll() is None:
                c.kill9()


@pytest.mark.deadline(300)
def test_share_state_survives_a_coordinator_failover_in_a_cluster(cluster):
    """Three nodes: kill -9 of the share group's coordinator; acknowledgements go on
    through the new one. Then, with the old coordinator back, kill -9 of the partition's
    leader: the new leader reads the share-partition state from the coordinator that
    took over (replayed from `__consumer_offsets`), so no accepted record is delivered
    again, before or after either failover."""
    topic = unique_topic("sharecfo")
    cluster.create_topic(topic, partitions=1, replication_factor=3)
    leader, _ = cluster.wait_for_leader(topic, 0)
    made: list[ShareConsumer] = []
    try:
        group, coordinator = off_the_leader_group_accepting_30(cluster, made, topic, leader,
                                                               "gcfo")

        cluster.kill(coordinator)
        alive = [i for i in cluster.ids if i != coordinator]
        cluster.wait_for_leader("__consumer_offsets", coordinator_partition(group),
                                not_in=[coordinator], via=alive[0], timeout=30)
        bootstrap = cluster.bootstrap_of(*alive)
        only_the_new_records(made, bootstrap, group, topic, 30, 10).stop()

        cluster.start(coordinator)
        cluster.wait_for_isr(topic, 0, cluster.ids, timeout=60)
        cluster.kill(leader)
        alive = [i for i in cluster.ids if i != leader]
        cluster.wait_for_leader(topic, 0, not_in=[leader], via=alive[0], timeout=30)
        bootstrap = cluster.bootstrap_of(*alive)
        only_the_new_records(made, bootstrap, group, topic, 40, 10)
    finally:
        for x in made:
            if x.proc.poll() is None:
                x.kill9()


# ---------------------------------------------------------------------------------------
# Share group offsets: DescribeShareGroupOffsets, AlterShareGroupOffsets and
# DeleteShareGroupOffsets, through Kafka's Admin and kafka-share-groups.
# ---------------------------------------------------------------------------------------

def share_admin(bootstrap: str, *args: str, properties: str | None = None) -> list[str]:
    """One ShareOffsetsAdmin call (Kafka's Java Admin); its output lines. `properties`:
    a client properties file (security settings)."""
    env = {**os.environ, **({"ADMIN_PROPERTIES": properties} if properties else {})}
    r = subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*:{classes()}", "ShareOffsetsAdmin",
                        bootstrap, *args], capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()


def start_offsets(bootstrap: str, group: str, *partitions: str) -> dict[tuple[str, int], tuple]:
    """listShareGroupOffsets: {(topic, partition): (start, leader epoch, lag)}, or
    (None,) where the group has no start offset for an asked partition."""
    lines = share_admin(bootstrap, "list", group, *partitions)
    assert lines[-1] == "OK", lines
    out = {}
    for line in lines[:-1]:
        _, topic, p, *rest = line.split(" ")
        out[(topic, int(p))] = (None,) if rest == ["none"] else (
            int(rest[0]), rest[1], None if rest[2] == "-" else int(rest[2]))
    return out


def wait_empty(bootstrap: str, group: str) -> None:
    wait_until(lambda: "Empty" in share_tool("--describe", "--state", "--group", group,
                                            bootstrap=bootstrap), 20, what="empty group")


def test_share_group_offsets_with_kafka_share_groups(brook, consumers):
    """kafka-share-groups on an empty share group: --describe shows the start offset
    and lag of each share-partition; --reset-offsets --to-earliest / --to-latest /
    --to-datetime --execute move the start (the next consumer gets the records from
    there, each at its first delivery); --delete-offsets forgets the topic's state;
    --delete removes the group."""
    topic, group = unique_topic("shareoff"), unique_topic("goff")
    create_topic(brook.bootstrap, topic, partitions=1)
    produce_range(brook.bootstrap, topic, 0, 10, batch=5)
    c = start(consumers, brook.bootstrap, group, topic, "accept")
    wait_until(lambda: len(c.offsets()) >= 10, 30, what=f"first records\n{c.describe()}")
    c.stop()
    wait_empty(brook.bootstrap, group)
    produce_range(brook.bootstrap, topic, 10, 5, batch=5)

    assert start_offsets(brook.bootstrap, group) == {(topic, 0): (10, "0", 5)}
    described = share_tool("--describe", "--group", group, bootstrap=brook.bootstrap)
    # GROUP TOPIC PARTITION START-OFFSET LAG
    rows = [l.split() for l in described.splitlines() if topic in l.split()]
    assert rows == [[group, topic, "0", "10", "5"]], described

    plan = share_tool("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
                      "--execute", bootstrap=brook.bootstrap)
    assert topic in plan, plan
    assert start_offsets(brook.bootstrap, group) == {(topic, 0): (0, "0", 15)}
    again = start(consumers, brook.bootstrap, group, topic, "accept", earliest=False)
    wait_until(lambda: len(again.offsets()) >= 15, 30, what=f"all records\n{again.describe()}")
    time.sleep(1)
    assert sorted(again.offsets()) == list(range(15)), again.describe()
    assert all(n == 1 for _, _, n in again.deliveries()), again.deliveries()
    again.stop()
    wait_empty(brook.bootstrap, group)

    share_tool("--reset-offsets", "--group", group, "--topic", topic, "--to-latest",
               "--execute", bootstrap=brook.bootstrap)
    assert start_offsets(brook.bootstrap, group)[(topic, 0)][::2] == (15, 0)
    share_tool("--reset-offsets", "--group", group, "--topic", topic, "--to-datetime",
               "2000-01-01T00:00:00.000", "--execute", bootstrap=brook.bootstrap)
    assert start_offsets(brook.bootstrap, group)[(topic, 0)][0] == 0

    share_tool("--delete-offsets", "--group", group, "--topic", topic,
               bootstrap=brook.bootstrap)
    assert start_offsets(brook.bootstrap, group) == {}
    assert start_offsets(brook.bootstrap, group, f"{topic}:0") == {(topic, 0): (None,)}
    share_tool("--delete", "--group", group, bootstrap=brook.bootstrap)
    assert group not in share_tool("--list", bootstrap=brook.bootstrap).split()


def test_share_group_offsets_admin_errors(brook, consumers):
    """Kafka's Admin calls get Kafka's errors: GroupIdNotFoundException for a group that
    does not exist (or is not a share group), GroupNotEmptyException to alter or delete
    offsets of a group with members, UnknownTopicOrPartitionException per partition or
    topic that does not exist. A valid alter moves the start: the next consumer begins
    there."""
    topic, group = unique_topic("shareadm"), unique_topic("gadm")
    create_topic(brook.bootstrap, topic, partitions=1)
    nosuch = unique_topic("nosuch-group")
    assert share_admin(brook.bootstrap, "list", nosuch)[-1].startswith(
        "ERROR GroupIdNotFoundException"), nosuch
    assert share_admin(brook.bootstrap, "alter", nosuch, f"{topic}:0=0")[-1].startswith(
        "ERROR GroupIdNotFoundException")
    assert share_admin(brook.bootstrap, "delete", nosuch, topic)[-1].startswith(
        "ERROR GroupIdNotFoundException")

    produce_range(brook.bootstrap, topic, 0, 10, batch=10)
    c = start(consumers, brook.bootstrap, group, topic, "accept")
    wait_until(lambda: len(c.offsets()) >= 10, 30, what=f"records\n{c.describe()}")
    assert share_admin(brook.bootstrap, "alter", group, f"{topic}:0=0")[-1].startswith(
        "ERROR GroupNotEmptyException")
    assert share_admin(brook.bootstrap, "delete", group, topic)[-1].startswith(
        "ERROR GroupNotEmptyException")
    c.stop()
    wait_empty(brook.bootstrap, group)

    missing = unique_topic("nosuch")
    out = share_admin(brook.bootstrap, "alter", group, f"{missing}:0=0", f"{topic}:7=0")
    assert f"PARTITION {missing} 0 UnknownTopicOrPartitionException" in out, out
    assert f"PARTITION {topic} 7 UnknownTopicOrPartitionException" in out, out
    out = share_admin(brook.bootstrap, "delete", group, missing)
    assert f"TOPIC {missing} UnknownTopicOrPartitionException" in out, out
    listed = start_offsets(brook.bootstrap, group, f"{topic}:0", f"{missing}:0")
    assert listed[(topic, 0)][0] == 10, listed

    assert share_admin(brook.bootstrap, "alter", group, f"{topic}:0=4")[-1] == "OK"
    assert start_offsets(brook.bootstrap, group)[(topic, 0)] == (4, "0", 6)
    again = start(consumers, brook.bootstrap, group, topic, "accept", earliest=False)
    wait_until(lambda: len(again.offsets()) >= 6, 30, what=f"records\n{again.describe()}")
    time.sleep(1)
    assert sorted(again.offsets()) == list(range(4, 10)), again.describe()


def raw_share_request(port: int, api_key: int, body: bytes) -> tuple[int, str | None]:
    """One ShareFetch/ShareAcknowledge v1 on a fresh connection: its top-level
    (error_code, error_message)."""
    from kafka_wire import Reader, connect, frame, header_v2, read_response
    s = connect(port)
    try:
        s.sendall(frame(header_v2(api_key, 1, 7) + body))
        r = Reader(read_response(s, 7, flexible_header=True))
        r.i32()  # throttle_time_ms
        return r.i16(), r.compact_string()
    finally:
        s.close()


def test_share_requests_from_a_non_member_are_refused(brook, consumers):
    """ShareFetch opening a session, and ShareAcknowledge, from a member id that is not
    in the share group get UNKNOWN_MEMBER_ID; a final-epoch ShareFetch (closing) does
    not."""
    from kafka_wire import compact_string, i32, uvarint
    topic, group = unique_topic("sharemem"), unique_topic("gmem")
    create_topic(brook.bootstrap, topic, partitions=1)
    start(consumers, brook.bootstrap, group, topic, "accept")
    port = int(brook.bootstrap.rsplit(":", 1)[1])
    stranger = "AAAAAAAAAAAAAAAAAAAAAA"
    empty, tags = uvarint(1), uvarint(0)

    def fetch(epoch: int) -> bytes:
        return (compact_string(group) + compact_string(stranger) + i32(epoch)
                + i32(0) + i32(1) + i32(1 << 20) + i32(10) + i32(10) + empty + empty + tags)

    code, message = raw_share_request(port, 78, fetch(0))
    assert code == 25, (code, message)  # UNKNOWN_MEMBER_ID
    ack = compact_string(group) + compact_string(stranger) + i32(1) + empty + tags
    assert raw_share_request(port, 79, ack)[0] == 25
    # Closing is not refused for membership (a leaving member closes after it left).
    assert raw_share_request(port, 78, fetch(-1))[0] != 25
    # A group with no members at all: the same.
    other = unique_topic("gnone")
    body = fetch(0).replace(compact_string(group), compact_string(other), 1)
    assert raw_share_request(port, 78, body)[0] == 25


def share_call(s, api_key: int, version: int, body: bytes, cid: int):
    """One request on an open connection; the response body as a Reader past the
    throttle time."""
    from kafka_wire import Reader, frame, header_v2, read_response
    s.sendall(frame(header_v2(api_key, version, cid) + body))
    r = Reader(read_response(s, cid, flexible_header=True))
    r.i32()  # throttle_time_ms
    return r


def parse_share_fetch(r) -> tuple[int, int, dict[int, tuple[int, int, list]]]:
    """ShareFetch v1/v2 response past the throttle time: (error, lock timeout,
    {partition: (error, acknowledge error, [(first, last, delivery count)])})."""
    error, _ = r.i16(), r.compact_string()
    lock_ms = r.i32()
    parts = {}
    for _ in range(r.uvarint() - 1):
        r.take(16)
        for _ in range(r.uvarint() - 1):
            index, perr, _ = r.i32(), r.i16(), r.compact_string()
            aerr, _ = r.i16(), r.compact_string()
            r.i32(), r.i32(), r.tags()  # current leader
            n = r.uvarint()
            if n:
                r.take(n - 1)  # records
            acquired = []
            for _ in range(r.uvarint() - 1):
                acquired.append((r.i64(), r.i64(), r.i16()))
                r.tags()
            r.tags()
            parts[index] = (perr, aerr, acquired)
        r.tags()
    return error, lock_ms, parts


class RawShareMember:
    """A share group member speaking raw ShareGroupHeartbeat/ShareFetch/ShareAcknowledge
    frames on one connection to a one-partition topic (partition 0)."""

    def __init__(self, brook, topic: str, group: str, member: str = "RAWRAWRAWRAWRAWRAWRAWw"):
        from confluent_kafka import TopicCollection
        from kafka_wire import compact_array, compact_string, connect, i32, uvarint
        admin = admin_client(brook.bootstrap)  # kept alive until the answer is in
        tid = admin.describe_topics(TopicCollection([topic]))[topic].result(10).topic_id
        self.topic_id = (tid.get_most_significant_bits().to_bytes(8, "big", signed=True)
                         + tid.get_least_significant_bits().to_bytes(8, "big", signed=True))
        self.group, self.member = group, member
        self.s = connect(brook.port)
        self.cid = iter(range(1, 100_000))
        hb = (compact_string(group) + compact_string(member) + i32(0) + uvarint(0)
              + compact_array([compact_string(topic)]) + uvarint(0))
        r = share_call(self.s, 76, 1, hb, next(self.cid))
        assert r.i16() == 0, r.compact_string()

    def fetch(self, version, epoch, max_records=0, mode=0, renew=False, wait=0, max_bytes=0,
              acks=()):
        """ShareFetch of partition 0: (error, lock timeout, {partition: ...})."""
        from kafka_wire import compact_array, compact_string, i8, i32, i64, uvarint
        tags = uvarint(0)
        v2 = i8(mode) + i8(1 if renew else 0) if version >= 2 else b""
        batches = compact_array([i64(f) + i64(l) + compact_array([i8(t)]) + tags
                                 for f, l, t in acks])
        part = compact_array([i32(0) + batches + tags])
        body = (compact_string(self.group) + compact_string(self.member) + i32(epoch)
                + i32(wait) + i32(0 if renew else 1) + i32(max_bytes) + i32(max_records)
                + i32(max_records) + v2 + compact_array([self.topic_id + part + tags])
                + compact_array([]) + tags)
        return parse_share_fetch(share_call(self.s, 78, version, body, next(self.cid)))

    def ack(self, version, epoch, acks, renew=False):
        """ShareAcknowledge of partition 0: (error, lock timeout (v2), [partition codes])."""
        from kafka_wire import compact_array, compact_string, i8, i32, i64, uvarint
        tags = uvarint(0)
        batches = compact_array([i64(f) + i64(l) + compact_array([i8(t)]) + tags
                                 for f, l, t in acks])
        body = (compact_string(self.group) + compact_string(self.member) + i32(epoch)
                + (i8(1 if renew else 0) if version >= 2 else b"")
                + compact_array([self.topic_id + compact_array([i32(0) + batches + tags])
                                 + tags])
                + tags)
        r = share_call(self.s, 79, version, body, next(self.cid))
        error, _ = r.i16(), r.compact_string()
        lock_ms = r.i32() if version >= 2 else None
        codes = []
        for _ in range(r.uvarint() - 1):
            r.take(16)
            for _ in range(r.uvarint() - 1):
                r.i32()
                codes.append(r.i16())
                r.compact_string(), r.i32(), r.i32(), r.tags(), r.tags()
            r.tags()
        return error, lock_ms, codes

    def close(self):
        self.s.close()


def test_renew_and_acquire_mode_on_the_wire(brook):
    """ShareFetch/ShareAcknowledge v2 frames: record_limit stops mid-batch at
    max_records; a RENEW of held records answers the lock duration; RENEW of records
    not acquired by the member is INVALID_RECORD_STATE (121); RENEW in a v1 request and
    an unknown acquire mode are INVALID_REQUEST (42), as is a renewing ShareFetch that
    also asks for records."""
    topic, group = unique_topic("sharewire"), unique_topic("gwire")
    create_topic(brook.bootstrap, topic, partitions=1)
    m = RawShareMember(brook, topic, group)
    fetch, ack = m.fetch, m.ack
    try:
        # Opens the session; the share-partition starts at the (empty) log's end.
        assert fetch(2, 0, max_records=3, mode=1, max_bytes=1 << 20)[0] == 0
        produce_range(brook.bootstrap, topic, 0, 10, batch=10)
        error, lock_ms, parts = fetch(2, 1, max_records=3, mode=1, wait=5000,
                                      max_bytes=1 << 20)
        assert (error, lock_ms) == (0, LOCK_MS)
        assert parts[0][2] == [(0, 2, 1)], parts  # record_limit: 3 of the batch's 10
        assert ack(2, 2, [(0, 2, 4)], renew=True) == (0, LOCK_MS, [0])
        # Renewing ShareFetch: acknowledgements only, nothing acquired.
        error, _, parts = fetch(2, 3, renew=True, acks=[(1, 1, 4)])
        assert error == 0 and parts[0][1] == 0 and parts[0][2] == [], parts
        # Records 3.. were never acquired; 10 is past the end.
        assert ack(2, 4, [(3, 3, 4)], renew=True)[2] == [121]
        assert ack(2, 5, [(2, 10, 4)], renew=True)[2] == [121]
        # v1 has no RENEW.
        assert ack(1, 6, [(0, 0, 4)])[2] == [42]
        # A renewing fetch that asks for records; an unknown acquire mode.
        assert fetch(2, 7, max_records=3, renew=True, wait=100, max_bytes=1 << 20,
                     acks=[(0, 0, 4)])[0] == 42
        assert fetch(2, 7, max_records=3, mode=5, max_bytes=1 << 20)[0] == 42
        # The refused requests changed nothing: 0..2 are still held, accepted now, and
        # batch_optimized takes the rest of the batch though max_records is 2.
        assert ack(2, 7, [(0, 2, 1)]) == (0, LOCK_MS, [0])
        error, _, parts = fetch(2, 8, max_records=2, mode=0, wait=5000, max_bytes=1 << 20)
        assert error == 0 and parts[0][2] == [(3, 9, 1)], parts
    finally:
        m.close()


@pytest.mark.brook_config({"group.share.min.record.lock.duration.ms": 1000,
                           # the raw members do not heartbeat
                           "group.share.session.timeout.ms": 30000})
def test_a_group_lock_duration_of_its_own(brook):
    """`kafka-configs --entity-type groups --add-config share.record.lock.duration.ms=8000`
    gives one group its own lock: ShareFetch and ShareAcknowledge answer 8000, and its
    unacknowledged records come back after 8 s, not after the broker's 3 s (which another
    group still gets). Values outside the broker's min/max bounds are refused with
    Kafka's messages, and kafka-configs describes the group's value."""
    topic, group, other = unique_topic("sharelock"), unique_topic("glock"), unique_topic("gdef")
    create_topic(brook.bootstrap, topic, partitions=1)
    for value, why in [("500", "at least 1000"),
                       ("70000", "group.share.max.record.lock.duration.ms")]:
        r = config_command(brook.bootstrap, "--alter", "--entity-type", "groups", "--entity-name",
                        group, "--add-config", f"share.record.lock.duration.ms={value}")
        assert r.returncode != 0 and why in r.stdout + r.stderr, r.stdout + r.stderr
    r = config_command(brook.bootstrap, "--alter", "--entity-type", "groups", "--entity-name",
                    group, "--add-config", "share.record.lock.duration.ms=8000")
    assert r.returncode == 0, r.stdout + r.stderr
    r = config_command(brook.bootstrap, "--describe", "--entity-type", "groups", "--entity-name",
                    group)
    assert "share.record.lock.duration.ms=8000" in r.stdout, r.stdout + r.stderr
    own, default = RawShareMember(brook, topic, group), RawShareMember(brook, topic, other)
    try:
        assert own.fetch(2, 0, max_bytes=1 << 20)[0] == 0
        assert default.fetch(2, 0, max_bytes=1 << 20)[0] == 0
        produce_range(brook.bootstrap, topic, 0, 5, batch=5)
        error, lock_ms, parts = own.fetch(2, 1, max_records=10, wait=5000, max_bytes=1 << 20)
        taken = time.monotonic()
        assert (error, lock_ms, parts[0][2]) == (0, 8000, [(0, 4, 1)]), (error, lock_ms, parts)
        error, lock_ms, parts = default.fetch(2, 1, max_records=10, wait=5000,
                                              max_bytes=1 << 20)
        assert (error, lock_ms, parts[0][2]) == (0, LOCK_MS, [(0, 4, 1)])
        time.sleep(max(0.0, taken + 4.5 - time.monotonic()))
        # Past the broker's 3 s: the other group's records are back, this group's not.
        assert default.fetch(2, 2, max_records=10, wait=2000,
                             max_bytes=1 << 20)[2][0][2] == [(0, 4, 2)]
        assert own.fetch(2, 2, max_records=10, wait=0,
                         max_bytes=1 << 20)[2].get(0, (0, 0, []))[2] == []
        time.sleep(max(0.0, taken + 8.5 - time.monotonic()))
        error, _, parts = own.fetch(2, 3, max_records=10, wait=3000, max_bytes=1 << 20)
        assert parts[0][2] == [(0, 4, 2)], parts
        assert own.ack(2, 4, [(0, 4, 1)]) == (0, 8000, [0])
    finally:
        own.close()
        default.close()


@pytest.mark.deadline(240)
def test_share_group_offsets_in_a_cluster(cluster):
    """Three nodes, partitions led by all three and the group coordinated by one: the
    Admin describes every share-partition's start offset (read from the coordinator),
    and an alter back to 0 reaches the leaders that hold the live state (they drop
    it), so the next consumer gets every record again."""
    topic, group = unique_topic("shareoffcl"), unique_topic("goffcl")
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    for p in range(3):
        cluster.wait_for_leader(topic, p)
    made: list[ShareConsumer] = []
    try:
        produce_range(cluster.bootstrap, topic, 0, 60, batch=10)
        a = start(made, cluster.bootstrap, group, topic, "accept")
        wait_until(lambda: len(a.deliveries()) >= 60, 60, what=f"records\n{a.describe()}")
        a.stop()
        wait_empty(cluster.bootstrap, group)
        ends = Counter(p for p, _, _ in a.deliveries())
        listed = start_offsets(cluster.bootstrap, group)
        assert {k: v[0] for k, v in listed.items()} == {(topic, p): n for p, n in ends.items()}
        out = share_admin(cluster.bootstrap, "alter", group, *(f"{topic}:{p}=0" for p in ends))
        assert out[-1] == "OK", out
        assert all(v[0] == 0 for v in start_offsets(cluster.bootstrap, group).values())
        b = start(made, cluster.bootstrap, group, topic, "accept", earliest=False)
        wait_until(lambda: len(b.deliveries()) >= 60, 60, what=f"records again\n{b.describe()}")
        time.sleep(1)
        assert Counter(p for p, _, _ in b.deliveries()) == ends, b.describe()
        assert all(n == 1 for _, _, n in b.deliveries())
    finally:
        for c in made:
            if c.proc.poll() is None:
                c.kill9()


@pytest.mark.deadline(240)
def test_share_group_lag_in_a_cluster(cluster):
    """DescribeShareGroupOffsets v1's lag counts to the high watermark of the
    partition's leader, also where the group's coordinator has no replica of it (a
    topic with one replica per partition): the coordinator asks the leader."""
    topic = unique_topic("sharelag")
    cluster.create_topic(topic, partitions=3, replication_factor=1)
    leaders = {p: cluster.wait_for_leader(topic, p)[0] for p in range(3)}
    made: list[ShareConsumer] = []
    try:
        warm = start(made, cluster.bootstrap, unique_topic("gwarm"), topic, "accept")
        warm.stop()
        offsets_leaders = {p: cluster.wait_for_leader("__consumer_offsets", p)[0]
                           for p in range(OFFSETS_PARTITIONS)}
        group = next(g for g in (unique_topic("glag") for _ in range(100))
                     if offsets_leaders[coordinator_partition(g)] != leaders[0])
        produce_range(cluster.bootstrap, topic, 0, 30, batch=10)
        a = start(made, cluster.bootstrap, group, topic, "accept")
        wait_until(lambda: len(a.deliveries()) >= 30, 60, what=f"records\n{a.describe()}")
        a.stop()
        wait_empty(cluster.bootstrap, group)
        produce_range(cluster.bootstrap, topic, 30, 12, batch=1)
        ends = {p: watermarks(cluster.bootstrap, topic, p)[1] for p in range(3)}
        listed = start_offsets(cluster.bootstrap, group)
        lags = {p: v[2] for (_, p), v in listed.items()}
        starts = {p: v[0] for (_, p), v in listed.items()}
        assert set(lags) == set(ends), listed
        assert lags == {p: ends[p] - starts[p] for p in lags}, (listed, ends)
        assert sum(lags.values()) == 12, (listed, ends)
    finally:
        for c in made:
            if c.proc.poll() is None:
                c.kill9()
