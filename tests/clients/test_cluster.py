"""Three-node clusters under failure: leader failover under load, and a network
partition that isolates a leader (see cluster.py for the fixture and the proxies).

Both tests print their seed (`BROOK_CLUSTER_SEED=...` replays a run) and a timeline;
the failover times they measure are printed as `failover ...` lines (`pytest -s`)."""

from __future__ import annotations

import os
import random
import struct
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

from cluster import Cluster, event
from kafka_helpers import consume_to_end, unique_topic

SEED = int(os.environ.get("BROOK_CLUSTER_SEED", random.randrange(1 << 30)))

TOPIC_CONFIG = {"min.insync.replicas": 2}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

class LoadProducer(threading.Thread):
    """Produces b"v{seq:08d}" to partition seq % partitions at `rate` records/s from
    its own thread (idempotent, acks=all) and keeps every delivery report."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: int):
        super().__init__(daemon=True, name="load-producer")
        self.topic, self.partitions, self.rate = topic, partitions, rate
        self.conf = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Long enough that no record times out during a failover: every record
            # must end up acknowledged.
            "message.timeout.ms": 30000,
            "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 500,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "queue.buffering.max.messages": 500000,
        }
        self.next_seq = 0            # records handed to produce() so far
        self.acks: dict[int, list[tuple[int, int, bytes, float]]] = {
            p: [] for p in range(partitions)}   # partition -> [(seq, offset, value, t)]
        self.failed: list[tuple[bytes, str]] = []
        self.fatal: str | None = None
        self.unflushed = 0
        self._halt = threading.Event()

    def _on_delivery(self, err, msg) -> None:
        value = msg.value()
        if err is not None:
            self.failed.append((value, str(err)))
            return
        self.acks[msg.partition()].append(
            (int(value[1:]), msg.offset(), value, time.monotonic()))

    def run(self) -> None:
        p = Producer(self.conf)
        start = time.monotonic()
        try:
            while not self._halt.is_set():
                due = int((time.monotonic() - start) * self.rate)
                while self.next_seq < due:
                    seq = self.next_seq
                    try:
                        p.produce(self.topic, value=b"v%08d" % seq,
                                  partition=seq % self.partitions,
                                  on_delivery=self._on_delivery)
                    except BufferError:
                        break
                    self.next_seq = seq + 1
                p.poll(0.005)
            self.unflushed = p.flush(30)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.fatal = repr(e)

    def stop(self) -> None:
        self._halt.set()
        self.join(45)
        assert not self.is_alive(), "producer thread did not finish within 45 s"

    def first_ack_from(self, partition: int, seq: int) -> float | None:
        """When the first record with sequence >= seq was acknowledged on `partition`."""
        first = None
        for s, _, _, t in reversed(self.acks[partition]):
            if s < seq:
                break
            first = t
        return first

    def acked(self) -> dict[tuple[int, int], bytes]:
        out = {}
        for p, acks in self.acks.items():
            for _, offset, value, _ in acks:
                assert (p, offset) not in out, f"offset {p}/{offset} acknowledged twice"
                out[(p, offset)] = value
        return out


def produce_batch(bootstrap: str, topic: str, values: list[bytes], timeout: float,
                  **conf) -> tuple[dict[int, bytes], list[tuple[bytes, str]]]:
    """Produces `values` to partition 0 and waits up to `timeout` s for every report.
    Returns ({offset: value} acknowledged, [(value, error)] failed)."""
    acked: dict[int, bytes] = {}
    failed: list[tuple[bytes, str]] = []

    def cb(err, msg):
        if err is None:
            acked[msg.offset()] = msg.value()
        else:
            failed.append((msg.value(), str(err)))

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, **conf})
    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=cb)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} delivery reports missing after {timeout}s"
    return acked, failed


def check_partition(recs, part: int) -> None:
    offsets = [r.offset for r in recs]
    assert all(a < b for a, b in zip(offsets, offsets[1:])), \
        f"partition {part}: offsets do not strictly increase"
    if offsets:
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), \
            f"partition {part}: offsets not dense ({offsets[0]}..{offsets[-1]}, {len(offsets)} records)"


def read_segment_values(node, topic: str, partition: int = 0) -> dict[int, bytes] | None:
    """{offset: value} from the node's segment files (uncompressed v2 batches), or None
    if the node keeps no such files. Reading the node's own disk shows what IT holds,
    whoever leads the partition."""
    files = node.segment_files(topic, partition)
    if not files:
        return None
    out: dict[int, bytes] = {}

    def varint(buf, pos):
        shift = result = 0
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1), pos

    for f in files:
        data = f.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break  # preallocated tail or a torn write
            magic = data[pos + 16]
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            count = struct.unpack_from(">i", data, pos + 57)[0]
            if magic != 2 or attributes & 0x07:
                return None  # not plain v2 records: cannot check this way
            rpos = pos + 61
            for _ in range(count):
                _, rpos = varint(data, rpos)            # record length
                rpos += 1                               # attributes
                _, rpos = varint(data, rpos)            # timestamp delta
                delta, rpos = varint(data, rpos)        # offset delta
                klen, rpos = varint(data, rpos)
                rpos += max(klen, 0)
                vlen, rpos = varint(data, rpos)
                value = bytes(data[rpos:rpos + vlen]) if vlen >= 0 else None
                rpos += max(vlen, 0)
                hcount, rpos = varint(data, rpos)
                for _ in range(hcount):
                    hk, rpos = varint(data, rpos)
                    rpos += hk
                    hv, rpos = varint(data, rpos)
                    rpos += max(hv, 0)
                out[base_offset + delta] = value
            pos += 12 + length
    return out


# ---------------------------------------------------------------------------------------
# a. leader failover under load
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(90)
def test_leader_failover_under_load_keeps_every_acknowledged_record(cluster: Cluster):
    """kill -9 the leader of each partition in turn while an idempotent acks=all
    producer runs: every acknowledged record is at its offset, no value twice."""
    rng = random.Random(SEED)
    print(f"BROOK_CLUSTER_SEED={SEED}")
    topic = unique_topic("failover")
    partitions = 3
    cluster.create_topic(topic, partitions=partitions, replication_factor=3,
                         config=TOPIC_CONFIG)
    all_nodes = set(cluster.ids)

    load = LoadProducer(cluster.bootstrap, topic, partitions, rate=3000)
    load.start()
    failovers = []
    try:
        time.sleep(1.0)
        assert all(load.acks[p] for p in range(partitions)), (
            f"no acknowledgements after 1 s of load: {cluster.describe(topic)}; "
            f"failed so far: {load.failed[:3]}")
        for part in range(partitions):
            time.sleep(rng.uniform(0.3, 1.5))   # the kill lands at a random moment
            leader = cluster.leader(topic, part)
            assert leader in all_nodes, f"partition {part} has no leader: {cluster.describe(topic)}"
            before = cluster.describe(topic)
            controller = cluster.metadata().controller_id
            epoch_before = cluster.partition(topic, part).leader_epoch
            cluster.kill(leader)
            t_kill = time.monotonic()
            seq_at_kill = load.next_seq       # every later record was sent after the kill
            survivor = min(all_nodes - {leader})
            new_leader, _ = cluster.wait_for_leader(topic, part, not_in={leader},
                                                    via=survivor, timeout=20)
            t_elected = time.monotonic()
            epoch_after = cluster.partition(topic, part, via=survivor).leader_epoch
            assert epoch_after > epoch_before, (
                f"partition {part}: leader moved {leader} -> {new_leader} but the leader "
                f"epoch went {epoch_before} -> {epoch_after}")
            deadline = t_kill + 30
            while (t_ack := load.first_ack_from(part, seq_at_kill)) is None:
                assert time.monotonic() < deadline, (
                    f"partition {part}: nothing acknowledged for 30 s after killing node"
                    f"{leader}; {cluster.describe(topic, via=survivor)}; "
                    f"failed deliveries: {load.failed[:3]}")
                assert load.is_alive(), f"producer thread died: {load.fatal}"
                time.sleep(0.01)
            failover = t_ack - t_kill
            failovers.append(failover)
            print(f"failover partition {part}: node{leader} killed "
                  f"({'the' if controller == leader else 'not the'} controller) -> node{new_leader} "
                  f"leads after {t_elected - t_kill:.2f}s (metadata), first record "
                  f"acknowledged {failover:.2f}s after the kill (before: {before})")
            cluster.start(leader)
            for p in range(partitions):
                cluster.wait_for_isr(topic, p, all_nodes, via=survivor, timeout=30)
    finally:
        load.stop()

    assert load.fatal is None, f"producer thread failed: {load.fatal}"
    assert load.unflushed == 0, f"{load.unflushed} records still unacknowledged at the end"
    assert not load.failed, (f"{len(load.failed)} of {load.next_seq} deliveries failed, "
                             f"e.g. {load.failed[:3]}")
    acked = load.acked()
    assert len(acked) == load.next_seq, f"{load.next_seq} sent, {len(acked)} acknowledged"

    consumed = consume_to_end(cluster.bootstrap, topic, partitions, timeout=40)
    by_offset = {}
    for part, recs in consumed.items():
        check_partition(recs, part)
        for r in recs:
            by_offset[(part, r.offset)] = r.value
    lost = sorted(k for k in acked if k not in by_offset)
    assert not lost, f"{len(lost)} acknowledged records missing, e.g. {lost[:5]}"
    wrong = sorted(k for k, v in acked.items() if by_offset[k] != v)
    assert not wrong, (f"{len(wrong)} acknowledged offsets hold other values, e.g. "
                       f"{wrong[0]}: acknowledged {acked[wrong[0]]!r}, "
                       f"read {by_offset[wrong[0]]!r}")
    dups = [v for v, c in Counter(by_offset.values()).items() if c > 1]
    assert not dups, f"{len(dups)} values stored more than once, e.g. {sorted(dups)[:3]}"
    print(f"verified {len(acked)} acknowledged records of {len(by_offset)} stored; "
          f"failover times {', '.join(f'{t:.2f}s' for t in failovers)}")


# ---------------------------------------------------------------------------------------
# b. network partition: the isolated leader's writes vanish
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(90)
def test_isolated_leader_loses_its_unreplicated_writes(cluster: Cluster):
    """Isolate the leader L (its client port stays up): acks=all to L fails, acks=1 to
    L succeeds locally, the majority elects a new leader and takes acks=all writes.
    After healing, L rejoins the ISR having truncated the records only it had."""
    rng = random.Random(SEED)
    print(f"BROOK_CLUSTER_SEED={SEED}")
    topic = unique_topic("partition")
    cluster.create_topic(topic, partitions=1, replication_factor=3, config=TOPIC_CONFIG)
    all_nodes = set(cluster.ids)
    replicas = cluster.partition(topic, 0).replicas
    event(f"{topic}-0 replicas {replicas}")

    acked: dict[int, bytes] = {}   # offset -> value, acknowledged with acks=all
    n_base = rng.randint(200, 800)
    ok, failed = produce_batch(cluster.bootstrap, topic, [b"base-%05d" % i for i in range(n_base)],
                               timeout=20, acks="all", **{"enable.idempotence": True})
    assert not failed, f"baseline: {len(failed)} deliveries failed, e.g. {failed[:2]}"
    acked.update(ok)

    L = cluster.leader(topic, 0)
    assert L in all_nodes, cluster.describe(topic)
    others = sorted(all_nodes - {L})
    F = others[0]
    cluster.isolate(L)
    t_iso = time.monotonic()

    # acks=1 straight to L: the isolated leader takes these alone. They must vanish.
    iso_one, iso_one_failed = produce_batch(
        cluster.bootstrap_of(L), topic, [b"iso-one-%04d" % i for i in range(50)],
        timeout=5, acks=1, retries=0, **{"message.timeout.ms": 2500,
                                         "enable.idempotence": False})
    event(f"acks=1 to isolated node{L}: {len(iso_one)} acknowledged, "
          f"{len(iso_one_failed)} failed")

    # acks=all straight to L, while the majority elects a new leader.
    result: dict = {}

    def produce_all_to_isolated():
        try:
            result["acked"], result["failed"] = produce_batch(
                cluster.bootstrap_of(L), topic, [b"iso-all-%04d" % i for i in range(50)],
                timeout=15, acks="all", **{"message.timeout.ms": 3000,
                                           "enable.idempotence": False})
        except BaseException as e:  # noqa: BLE001 - reported below
            result["error"] = repr(e)
    t = threading.Thread(target=produce_all_to_isolated, daemon=True)
    t.start()

    new_leader, _ = cluster.wait_for_leader(topic, 0, not_in={L}, via=F, timeout=20)
    election = time.monotonic() - t_iso
    print(f"failover partition: node{L} isolated -> node{new_leader} leads "
          f"{election:.2f}s later (as node{F} sees it)")
    t.join(20)
    assert not t.is_alive(), "acks=all producer to the isolated leader did not finish"
    assert "error" not in result, result.get("error")
    assert not result["acked"], (
        f"the isolated leader node{L} acknowledged {len(result['acked'])} acks=all "
        f"records with no follower reachable, e.g. {sorted(result['acked'].items())[:3]}")
    event(f"acks=all to isolated node{L}: all {len(result['failed'])} failed "
          f"({result['failed'][0][1] if result['failed'] else '-'})")
    assert iso_one, (f"the isolated leader node{L} took no acks=1 writes right after "
                     f"isolation ({iso_one_failed[:2]}): nothing to truncate")

    # The majority takes acks=all writes.
    n_maj = rng.randint(200, 800)
    ok, failed = produce_batch(cluster.bootstrap_of(*others), topic,
                               [b"maj-%05d" % i for i in range(n_maj)], timeout=20,
                               acks="all", **{"enable.idempotence": True})
    assert not failed, (f"majority side: {len(failed)} acks=all deliveries failed, e.g. "
                        f"{failed[:2]}; {cluster.describe(topic, via=F)}")
    clash = sorted(set(ok) & set(acked))
    assert not clash, f"offsets acknowledged twice: {clash[:5]}"
    acked.update(ok)
    event(f"majority: {len(ok)} acks=all records acknowledged; {cluster.describe(topic, via=F)}")

    cluster.heal()
    t_heal = time.monotonic()
    cluster.wait_for_isr(topic, 0, all_nodes, via=F, timeout=30)
    print(f"node{L} back in the ISR {time.monotonic() - t_heal:.2f}s after healing")
    # The new leader expanded the ISR when L came back: its /metrics counts it (Kafka's
    # IsrExpandsPerSec). L left the ISR when the controller fenced it, which is the
    # controller's change, not the leader's, so it is not a leader's shrink.
    import urllib.request
    leader_now = cluster.leader(topic, 0, via=F)
    with urllib.request.urlopen(cluster.nodes[leader_now].admin_url + "/metrics",
                                timeout=10) as r:
        scraped = r.read().decode()
    counts = {name: float(v) for name, v in
              (ln.split() for ln in scraped.splitlines()
               if ln.startswith(("brook_isr_shrinks_total ", "brook_isr_expands_total ")))}
    assert "brook_isr_shrinks_total" in counts, counts
    assert counts.get("brook_isr_expands_total", 0) >= 1, counts

    # Make L the leader without losing the metadata quorum (2 of 3 voters must stay up,
    # so the two others cannot both be killed): kill -9 the current leader; the
    # controller picks the first live ISR replica in assignment order.
    killed = []
    for _ in range(2):
        current = cluster.leader(topic, 0, via=L)
        if current == L:
            break
        for k in killed:                    # bring back whoever was killed before
            cluster.start(k)
            cluster.wait_for_isr(topic, 0, all_nodes, via=L, timeout=30)
        killed = [current]
        cluster.kill(current)
        cluster.wait_for_leader(topic, 0, not_in={current}, via=L, timeout=20)
    lead_now = cluster.leader(topic, 0, via=L)
    assert lead_now == L, (f"could not make node{L} the leader by killing the current "
                           f"leader: {cluster.describe(topic, via=L)}")

    consumed = consume_to_end(cluster.bootstrap_of(L), topic, 1, timeout=30)[0]
    check_partition(consumed, 0)
    by_offset = {r.offset: r.value for r in consumed}
    lost = sorted(o for o in acked if o not in by_offset)
    assert not lost, f"{len(lost)} acknowledged records missing on node{L}, e.g. {lost[:5]}"
    wrong = sorted(o for o, v in acked.items() if by_offset[o] != v)
    assert not wrong, (f"{len(wrong)} acknowledged offsets hold other values on node{L}, "
                       f"e.g. {wrong[0]}: acknowledged {acked[wrong[0]]!r}, "
                       f"read {by_offset[wrong[0]]!r}")
    survived = sorted(v for v in by_offset.values() if v.startswith(b"iso-one-"))
    assert not survived, (f"{len(survived)} acks=1 records written only to the isolated "
                          f"node{L} are still there (not truncated), e.g. {survived[:3]}")
    survived = sorted(v for v in by_offset.values() if v.startswith(b"iso-all-"))
    assert not survived, (f"{len(survived)} never-acknowledged acks=all records of the "
                          f"isolated node{L} are still there, e.g. {survived[:3]}")
    dups = [v for v, c in Counter(by_offset.values()).items() if c > 1]
    assert not dups, f"values stored twice: {sorted(dups)[:3]}"
    extra = len(by_offset) - len(acked)
    assert extra == 0, f"{extra} records on node{L} that were never acknowledged"

    # L's own segment files tell the same story.
    on_disk = read_segment_values(cluster.nodes[L], topic)
    if on_disk is None:
        print(f"(node{L} has no plain v2 segment files for {topic}-0: disk check skipped)")
    else:
        bad = sorted(o for o, v in on_disk.items() if v.startswith(b"iso-"))
        assert not bad, f"node{L}'s segment files still hold divergent records at {bad[:5]}"
        differ = sorted(o for o, v in on_disk.items() if by_offset.get(o, v) != v)
        assert not differ, f"node{L}'s segment files differ from what it serves at {differ[:5]}"
        print(f"node{L}'s segment files: {len(on_disk)} records, none divergent")
    print(f"verified {len(acked)} acknowledged records on node{L}; {len(iso_one)} acks=1 "
          f"records of the isolated leader were truncated")


# ---------------------------------------------------------------------------------------
# c. the group coordinator moves with its __consumer_offsets partition
# ---------------------------------------------------------------------------------------

@pytest.mark.deadline(120)
def test_group_coordinator_failover_keeps_every_committed_offset(cluster: Cluster):
    """A consumer commits synchronously while the kill -9 of its group coordinator
    moves the group to another broker: no acknowledged commit is lost, the consumer
    carries on and every record is consumed."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = unique_topic("groupfail")
    group = unique_topic("g")
    partitions = 3
    cluster.create_topic(topic, partitions=partitions, replication_factor=3,
                         config=TOPIC_CONFIG)
    n = 3000
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"g-%05d" % i, partition=i % partitions)
    assert p.flush(30) == 0

    consumer = Consumer({
        "bootstrap.servers": cluster.bootstrap, "group.id": group,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
        "reconnect.backoff.max.ms": 500, "retry.backoff.ms": 100,
    })
    consumer.subscribe([topic])
    seen: set[bytes] = set()
    acked: dict[int, int] = {}        # partition -> last offset the coordinator acknowledged

    def consume_and_commit(until: int, deadline: float) -> float | None:
        """Polls until `until` distinct values are seen; commits after each batch,
        retrying failed commits. Returns when the first commit after a failure went
        through (monotonic), or None if none failed."""
        recovered = None
        failing = False
        while len(seen) < until:
            assert time.monotonic() < deadline, (
                f"{len(seen)}/{until} records after the deadline; {cluster.describe(topic)}")
            msgs = consumer.consume(200, timeout=0.5)
            for m in msgs:
                if m.error() is None:
                    seen.add(m.value())
            if not msgs:
                continue
            offsets = consumer.position(consumer.assignment())
            offsets = [tp for tp in offsets if tp.offset >= 0]
            while True:
                assert time.monotonic() < deadline, "commits kept failing"
                try:
                    result = consumer.commit(offsets=offsets, asynchronous=False)
                    for tp in result:
                        assert tp.error is None, tp.error
                        acked[tp.partition] = max(acked.get(tp.partition, 0), tp.offset)
                    if failing and recovered is None:
                        recovered = time.monotonic()
                    break
                except KafkaException as e:
                    failing = True
                    event(f"commit failed: {e}")
                    time.sleep(0.2)
        return recovered

    try:
        consume_and_commit(n // 2, time.monotonic() + 30)
        before_kill = dict(acked)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        desc = admin.describe_consumer_groups([group])[group].result(10)
        coordinator = desc.coordinator.id
        survivor = min(set(cluster.ids) - {coordinator})
        cluster.kill(coordinator)
        t_kill = time.monotonic()
        recovered = consume_and_commit(n, t_kill + 60)
        took = (recovered or time.monotonic()) - t_kill
        print(f"failover group: coordinator node{coordinator} killed; commits acknowledged "
              f"again {took:.2f}s later")
    finally:
        consumer.close()

    # What the new coordinator holds: every acknowledged commit, at least.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_of(survivor)})
    from confluent_kafka import ConsumerGroupTopicPartitions
    fut = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, i) for i in range(partitions)])])
    committed = {tp.partition: tp.offset for tp in fut[group].result(20).topic_partitions}
    lost = {p: (o, committed.get(p)) for p, o in acked.items() if committed.get(p, -1) < o}
    assert not lost, f"acknowledged commits lost (partition: (acked, now)): {lost}"
    assert sum(committed.values()) == n, committed
    assert len(seen) == n
    assert all(before_kill.get(p, 0) <= committed[p] for p in range(partitions))
    print(f"verified: {n} records consumed, committed offsets {committed} survive the "
          f"coordinator's kill")


# ---------------------------------------------------------------------------------------
# d. pipelined acks=all produce requests on one connection
# ---------------------------------------------------------------------------------------

def scrape_counter(node, name: str) -> float:
    """The value of the series `name` (with its labels) on the node's /metrics (0 if
    absent)."""
    import urllib.request
    with urllib.request.urlopen(node.admin_url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


PIPELINED_CLIENT_REQUESTS = 'brook_pipelined_requests_total{listener="PLAINTEXT"}'
PRODUCE_REQUESTS = 'brook_request_total_time_seconds_count{api="Produce"}'


@pytest.mark.deadline(90)
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
def test_pipelined_acks_all_requests_keep_order_and_lose_nothing(cluster: Cluster, idempotent):
    """A librdkafka acks=all producer at linger 0 with small batches may keep up to 5
    Produce requests in flight on its one connection to the leader, which handles the
    next requests while the earlier ones wait for the followers. Every record is
    acknowledged once, at an offset that grows with the order it was produced in, and
    stored once, in that order (an idempotent producer would also fail fatally on an
    out-of-order sequence). librdkafka's idempotent producer keeps about one request in
    flight per partition here, so the plain producer is the one shown to pipeline: most
    of its requests are handled while an earlier one waits."""
    topic = unique_topic("pipelined")
    cluster.create_topic(topic, partitions=1, replication_factor=3, config=TOPIC_CONFIG)
    leader = cluster.leader(topic, 0)
    before = scrape_counter(cluster.nodes[leader], PIPELINED_CLIENT_REQUESTS)
    produces_before = scrape_counter(cluster.nodes[leader], PRODUCE_REQUESTS)

    acked: list[tuple[int, int]] = []   # (seq, offset) in delivery-report order
    failed: list[tuple[bytes, str]] = []
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append((msg.value(), str(err)))
        else:
            acked.append((int(msg.value()[1:]), msg.offset()))

    p = Producer({
        "bootstrap.servers": cluster.bootstrap_of(leader),
        "enable.idempotence": idempotent,
        "acks": "all",
        "linger.ms": 0,
        "max.in.flight.requests.per.connection": 5,
        # Small batches: many requests, the next ones ready while earlier ones wait.
        "batch.size": 512,
        "message.timeout.ms": 30000,
        "error_cb": lambda e: errors.append(str(e)),
    })
    total = 20_000
    start = time.monotonic()
    for seq in range(total):
        while True:
            try:
                p.produce(topic, value=b"v%08d" % seq, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    remaining = p.flush(40)
    took = time.monotonic() - start
    assert remaining == 0, f"{remaining} delivery reports missing after 40 s"
    assert not errors, f"producer errors: {errors[:3]}"
    assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[:3]}"
    assert len(acked) == total, f"{total} produced, {len(acked)} acknowledged"

    by_seq = dict(acked)
    assert len(by_seq) == total, "a record was acknowledged twice"
    offsets = [by_seq[s] for s in range(total)]
    disorder = [s for s in range(1, total) if offsets[s] <= offsets[s - 1]]
    assert not disorder, (f"{len(disorder)} records acknowledged at offsets out of "
                          f"produce order, e.g. seq {disorder[0]}: offset "
                          f"{offsets[disorder[0]]} after {offsets[disorder[0] - 1]}")

    recs = consume_to_end(cluster.bootstrap, topic, 1, timeout=40)[0]
    check_partition(recs, 0)
    values = [r.value for r in recs]
    expected = [b"v%08d" % s for s in range(total)]
    first_diff = next((i for i, (a, b) in enumerate(zip(values, expected)) if a != b),
                      min(len(values), total))
    assert values == expected, (f"stored {len(values)} records, produced {total}; "
                                f"first difference at {first_diff}")
    assert [r.offset for r in recs] == offsets, "stored offsets differ from acknowledged ones"

    pipelined = scrape_counter(cluster.nodes[leader], PIPELINED_CLIENT_REQUESTS) - before
    produces = scrape_counter(cluster.nodes[leader], PRODUCE_REQUESTS) - produces_before
    print(f"{'idempotent' if idempotent else 'plain'}: {total} records in {took:.2f}s, "
          f"{produces:.0f} Produce requests; node{leader} handled {pipelined:.0f} requests "
          f"while earlier ones of their connection were unanswered")
    assert produces >= 100, f"only {produces:.0f} Produce requests: batches too large"
    if not idempotent:
        assert pipelined >= produces / 10, (
            f"only {pipelined:.0f} of {produces:.0f} requests were handled while an earlier "
            f"one of the connection was unanswered: the connection did not pipeline")
