"""Client quotas (issue 15): set and described with Apache Kafka's own `kafka-configs
--entity-type clients/users` (AlterClientQuotas / DescribeClientQuotas), kept across a
restart, and enforced on librdkafka producers and consumers through throttle_time_ms
and muting, while clients without a quota run unthrottled.

The quota windows are shortened (2 windows of 1 s) so a burst is judged over about a
second rather than Kafka's default ten."""

from __future__ import annotations

import subprocess
import time

import pytest

import kafka_wire as wire
from confluent_kafka.admin import NewTopic
from kafka_helpers import (
    admin_client,
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
)
from test_cluster_tools import JVM, kafka_jars
from test_scram_credentials import configs, configs_failing

THROTTLING_QUOTA_EXCEEDED = 89

RATE = 100_000  # bytes per second
RECORDS = 500
VALUE = b"q" * 1000  # 500 KB in all: about 5 s at the quota

pytestmark = pytest.mark.brook_config(
    {"quota.window.num": 2, "quota.window.size.seconds": 1})


def timed_produce(bootstrap: str, topic: str, client_id: str) -> float:
    p = producer(bootstrap, **{"client.id": client_id, "batch.size": 16384,
                               "linger.ms": 1})
    start = time.monotonic()
    assert_all_delivered(produce_all(p, topic, [{"value": VALUE}] * RECORDS, timeout=60))
    return time.monotonic() - start


def test_kafka_configs_sets_quotas_and_they_survive_a_restart(brook):
    b = brook.bootstrap
    out = configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow",
                  "--add-config", f"producer_byte_rate={RATE},consumer_byte_rate={RATE}")
    assert "Completed updating config for client slow" in out, out
    configs(b, "--alter", "--entity-type", "users", "--entity-default",
            "--add-config", "request_percentage=250")
    configs(b, "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--entity-type", "clients", "--entity-default",
            "--add-config", "controller_mutation_rate=10")
    # Kafka's checks: a byte rate is a whole number; keys belong to their entity type.
    assert "must be a Long" in configs_failing(
        b, "--alter", "--entity-type", "clients", "--entity-name", "x",
        "--add-config", "producer_byte_rate=1.5")

    brook.restart()
    b = brook.bootstrap
    slow = configs(b, "--describe", "--entity-type", "clients", "--entity-name", "slow")
    assert "client-id 'slow'" in slow, slow
    assert f"producer_byte_rate={RATE}" in slow and f"consumer_byte_rate={RATE}" in slow
    users = configs(b, "--describe", "--entity-type", "users")
    assert "request_percentage=250" in users, users
    alice = configs(b, "--describe", "--entity-type", "users", "--entity-name", "alice",
                    "--entity-type", "clients")
    assert "controller_mutation_rate=10" in alice, alice

    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow",
            "--delete-config", "producer_byte_rate")
    slow = configs(b, "--describe", "--entity-type", "clients", "--entity-name", "slow")
    assert "producer_byte_rate" not in slow and "consumer_byte_rate" in slow, slow


def test_producers_and_consumers_are_held_to_their_byte_rates(brook):
    b = brook.bootstrap
    topic = unique_topic("quota")
    create_topic(b, topic)
    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow",
            "--add-config", f"producer_byte_rate={RATE}")
    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow-reader",
            "--add-config", f"consumer_byte_rate={RATE}")

    fast = timed_produce(b, topic, "fast")
    slow = timed_produce(b, topic, "slow")
    # 500 KB at 100 KB/s: the first window's worth passes at once, the rest waits.
    assert slow >= 3.0, f"throttled producer took {slow:.1f}s"
    assert fast < slow, (fast, slow)

    start = time.monotonic()
    got = consume_to_end(b, topic, 1, timeout=60, **{"client.id": "fast-reader"})
    fast_read = time.monotonic() - start
    assert len(got[0]) == 2 * RECORDS
    start = time.monotonic()
    got = consume_to_end(b, topic, 1, timeout=60, **{"client.id": "slow-reader"})
    slow_read = time.monotonic() - start
    # Every record arrives, none twice, just later (1 MB at 100 KB/s).
    assert [r.offset for r in got[0]] == list(range(2 * RECORDS))
    assert slow_read >= 5.0, f"throttled consumer took {slow_read:.1f}s"
    assert fast_read < slow_read, (fast_read, slow_read)

    # Per-client quota metrics: the clients a quota covers, their rate and the throttle
    # time they were given (Kafka's per client-id byte-rate and throttle-time).
    import re
    import urllib.request
    with urllib.request.urlopen(brook.admin_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    throttled = re.search(
        r'^brook_client_quota_throttle_time_seconds_total\{quota="producer_byte_rate",'
        r'user="",client_id="slow"\} (\S+)$', text, re.M)
    assert throttled and float(throttled.group(1)) >= 1.0, text[-3000:]
    assert re.search(r'^brook_client_quota_rate\{quota="consumer_byte_rate",user="",'
                     r'client_id="slow-reader"\} \S+$', text, re.M), text[-3000:]
    assert 'client_id="fast"' not in text



MUTATION_RATE = 2  # partitions per second; with 2 windows of 1 s, a burst of 4


def raw_create(port: int, client_id: str, topics) -> tuple[int, list, float]:
    """CreateTopics v7 (strict under KIP-599) on a fresh connection: the throttle time,
    the per-topic results and how long the answer took."""
    s = wire.connect(port, timeout=30)
    try:
        start = time.monotonic()
        s.sendall(wire.create_topics_v7(1, topics, client_id))
        body = wire.read_response(s, 1, flexible_header=True)
        took = time.monotonic() - start
    finally:
        s.close()
    throttle, results = wire.parse_create_topics_v7(body)
    return throttle, results, took


def test_controller_mutation_quota_refuses_strict_clients_and_throttles_old_ones(brook):
    b = brook.bootstrap
    for client, rate in (("mutator", MUTATION_RATE), ("old-mutator", MUTATION_RATE),
                         ("java-mutator", 1)):
        configs(b, "--alter", "--entity-type", "clients", "--entity-name", client,
                "--add-config", f"controller_mutation_rate={rate}")
    first, second, other = (unique_topic("mut") for _ in range(3))

    # A client that knows KIP-599 (CreateTopics v7): the full bucket (4 tokens) lets a
    # 10-partition topic through, leaving it 6 tokens short: 3 s at 2/s.
    throttle, results, _ = raw_create(brook.port, "mutator", [(first, 10)])
    assert results == [(first, 0, None, 10)], results
    throttle, results, _ = raw_create(brook.port, "mutator", [(second, 1)])
    assert results[0][1] == THROTTLING_QUOTA_EXCEEDED, results
    assert 2000 <= throttle <= 3000, throttle
    # Other clients are not held back.
    _, results, _ = raw_create(brook.port, "someone-else", [(other, 8)])
    assert results[0][1] == 0, results
    # Once the bucket has refilled, the topic is created.
    time.sleep(throttle / 1000 + 0.2)
    _, results, _ = raw_create(brook.port, "mutator", [(second, 1)])
    assert results[0][1] == 0, results

    # librdkafka speaks CreateTopics v4, before KIP-599: its topics are created and
    # the response throttled instead.
    old = admin_client(b, **{"client.id": "old-mutator"})
    names = [unique_topic("old") for _ in range(3)]
    start = time.monotonic()
    for name in names:
        futures = old.create_topics([NewTopic(name, num_partitions=5, replication_factor=1)],
                                    operation_timeout=30, request_timeout=30)
        futures[name].result(60)
    took = time.monotonic() - start
    # 15 partitions against a burst of 4 at 2/s: about 3 s of throttling (0.5 s after
    # the first topic, 2.5 s after the second).
    assert took >= 2.5, took
    assert set(names) <= set(old.list_topics(timeout=30).topics)

    # kafka-topics (the Java admin client, which TopicCommand tells not to retry
    # quota violations) reports the refusal as Kafka's own error.
    props = brook.base_dir / "java-mutator.properties"
    props.write_text("client.id=java-mutator\n")
    first_java, second_java = unique_topic("java"), unique_topic("java")

    def topics(*args: str) -> list[str]:
        return [*JVM, "-cp", f"{kafka_jars()}/*", "org.apache.kafka.tools.TopicCommand",
                "--bootstrap-server", b, *args]

    def create(name: str, partitions: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            topics("--command-config", str(props), "--create", "--topic", name,
                   "--partitions", str(partitions), "--replication-factor", "1"),
            capture_output=True, text=True, timeout=60)

    # A burst of 2 at 1/s: the first topic leaves the bucket 10 short, so the second
    # is refused until about 10 s later (the JVM of the next kafka-topics takes a few
    # seconds to start, more on a loaded machine).
    r = create(first_java, 12)
    assert r.returncode == 0, r.stdout + r.stderr
    refilled = time.monotonic() + 10
    r = create(second_java, 6)
    assert r.returncode != 0, r.stdout
    assert "ThrottlingQuotaExceededException" in r.stdout + r.stderr, r.stdout + r.stderr
    time.sleep(max(0.0, refilled - time.monotonic()) + 0.5)
    r = create(second_java, 6)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = subprocess.run(topics("--list"), capture_output=True, text=True, timeout=60)
    assert {first_java, second_java} <= set(listed.stdout.split()), listed.stdout


def api_versions_answered(port: int) -> bool:
    """Connects and asks ApiVersions: whether the broker answered (rather than closed)."""
    s = wire.connect(port, timeout=10)
    try:
        s.sendall(wire.api_versions_request(0, 7))
        wire.read_response(s, 7)
        return True
    except (ConnectionError, OSError):
        return False
    finally:
        s.close()


def test_connection_creation_rates(brook):
    b = brook.bootstrap
    # An address over its connection_creation_rate quota (KIP-612) has its new
    # connections closed, not served, until its rate comes down.
    configs(b, "--alter", "--entity-type", "ips", "--entity-name", "127.0.0.1",
            "--add-config", "connection_creation_rate=3")
    described = configs(b, "--describe", "--entity-type", "ips", "--entity-name", "127.0.0.1")
    assert "connection_creation_rate=3" in described, described
    time.sleep(2.5)  # the tool's own connections age out of the rate
    answered = [api_versions_answered(brook.port) for _ in range(10)]
    # Each refused connection is held about 1/3 s before it is closed, in which time
    # the rate comes down enough to let about one more in.
    assert answered[:3] == [True] * 3, answered
    assert answered.count(False) >= 3, answered
    time.sleep(2.5)
    assert api_versions_answered(brook.port)
    configs(b, "--alter", "--entity-type", "ips", "--entity-name", "127.0.0.1",
            "--delete-config", "connection_creation_rate")

    # The broker-wide max.connection.creation.rate delays connections instead: all
    # are served, spread out.
    configs(b, "--alter", "--entity-type", "brokers", "--entity-default",
            "--add-config", "max.connection.creation.rate=5")
    time.sleep(2.5)
    start = time.monotonic()
    answered = [api_versions_answered(brook.port) for _ in range(20)]
    took = time.monotonic() - start
    assert all(answered), answered
    # 20 at 5/s, the first 5 at once: about 3 s.
    assert took >= 2.0, took
    configs(b, "--alter", "--entity-type", "brokers", "--entity-default",
            "--delete-config", "max.connection.creation.rate")
    time.sleep(1.5)
    start = time.monotonic()
    assert all(api_versions_answered(brook.port) for _ in range(20))
    assert time.monotonic() - start < 2.0


def test_old_clients_get_their_response_late_new_ones_are_muted_after(brook):
    """KIP-219: a client that throttles itself (Produce v6+) gets its throttled response
    at once and the broker reads nothing more for the throttle time; an older one
    (Produce v3) gets the response only after the throttle time."""
    b = brook.bootstrap
    topic = unique_topic("kip219")
    create_topic(b, topic)
    # The raw requests' client id.
    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "brook-raw-test",
            "--add-config", "producer_byte_rate=100000")
    batch = wire.record_batch([(None, b"x" * 100_000)] * 3)  # 300 KB: ~2 s over quota

    def produce(version: int) -> tuple[float, float]:
        """(seconds until the response, seconds until a second request's answer)."""
        time.sleep(3)  # the rate's windows age out
        s = wire.connect(brook.port, timeout=30)
        try:
            make = wire.produce_request_v3 if version == 3 else wire.produce_request_v9
            start = time.monotonic()
            s.sendall(make(1, topic, 0, batch))
            wire.read_response(s, 1, flexible_header=version >= 9)
            first = time.monotonic() - start
            s.sendall(wire.api_versions_request(0, 2))
            wire.read_response(s, 2)
            return first, time.monotonic() - start
        finally:
            s.close()

    old_first, old_total = produce(3)
    new_first, new_total = produce(9)
    assert old_first >= 1.0, old_first
    assert new_first < 0.8, new_first
    # Either way the client waits about the same in all.
    assert new_total >= 1.0 and old_total >= 1.0, (old_total, new_total)


def test_a_listener_has_connection_limits_of_its_own(brook_factory):
    """`listener.name.<l>.max.connections` and `listener.name.<l>.max.connection.creation.rate`
    (dynamic, set with kafka-configs) limit that listener only: the other one goes on."""
    from procs import pick_port
    ext = pick_port()
    b = brook_factory({"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT",
                       "listener.name.external.max.connections": "3",
                       "quota.window.num": "2", "quota.window.size.seconds": "1"}, start=False)
    b.command = lambda: [x if not x.startswith("127.0.0.1:") else
                         f"PLAINTEXT://{x},EXTERNAL://127.0.0.1:{ext}"
                         for x in type(b).command(b)]
    b.start()
    # Static: 3 connections open on EXTERNAL, a 4th is refused; PLAINTEXT is not limited.
    held = [wire.connect(ext, timeout=10) for _ in range(3)]
    for s in held:
        s.sendall(wire.api_versions_request(0, 7))
        wire.read_response(s, 7)
    assert not api_versions_answered(ext)
    assert all(api_versions_answered(b.port) for _ in range(5))
    assert "the listener's max.connections reached" in b.log_tail()
    held.pop().close()
    time.sleep(0.3)
    assert api_versions_answered(ext)
    for s in held:
        s.close()

    # Dynamic: a creation rate of 5/s on EXTERNAL spreads its connections out; PLAINTEXT's
    # are served at once.
    configs(b.bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
            "--add-config", "listener.name.external.max.connection.creation.rate=5")
    described = configs(b.bootstrap, "--describe", "--entity-type", "brokers", "--entity-default")
    assert "listener.name.external.max.connection.creation.rate=5" in described, described
    time.sleep(2.5)
    start = time.monotonic()
    assert all(api_versions_answered(b.port) for _ in range(20))
    assert time.monotonic() - start < 2.0
    start = time.monotonic()
    assert all(api_versions_answered(ext) for _ in range(20))
    assert time.monotonic() - start >= 2.0
    configs_failing(b.bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
                    "--add-config", "listener.name.external.max.connection.creation.rate=-1")


def test_a_throttled_fetch_keeps_its_fetch_session_and_loses_no_records(brook):
    """A consumer's incremental fetch that its byte-rate quota throttles is answered
    empty and keeps its session id (as Kafka answers it), so the client does not start
    over with a full fetch of every partition; the records held back come with a later
    fetch of the same session, each once. Fetch v11 by kafka-python's encoder."""
    from test_fetch_sessions import Conn

    b = brook.bootstrap
    topic = unique_topic("quota-session")
    create_topic(b, topic, partitions=2)
    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "session-reader",
            "--add-config", f"consumer_byte_rate={RATE}")
    c = Conn(brook.port, client_id="session-reader")
    # Opened while the topic is empty: nothing to throttle yet.
    error, sid, answered = c.fetch(0, 0, [(topic, [0, 1])], replica=-1, records=True)
    assert error == 0 and sid > 0 and all(a[4] == 0 for a in answered), answered
    p = producer(b, **{"linger.ms": 0})
    per_partition = 150
    for i in range(per_partition):  # 300 KB, 3 s at the quota
        assert_all_delivered(produce_all(p, topic, [{"value": VALUE, "partition": k}
                                                    for k in (0, 1)]))
    position, throttled, epoch = {0: 0, 1: 0}, 0, 0
    deadline = time.monotonic() + 60
    while min(position.values()) < per_partition:
        assert time.monotonic() < deadline, (position, throttled)
        epoch += 1
        error, got_sid, answered = c.fetch(
            sid, epoch, [(topic, [0, 1])], replica=-1, records=True,
            offsets={(topic, k): position[k] for k in (0, 1)}, wait_ms=500)
        assert error == 0 and got_sid == sid, (error, got_sid, c.throttle_ms, answered)
        if c.throttle_ms > 0:
            throttled += 1
            assert answered == [], answered
        for _, k, err, _, n in answered:
            assert err == 0
            position[k] += n
    assert throttled > 0, "the quota never throttled a fetch"
    assert position == {0: per_partition, 1: per_partition}, position
