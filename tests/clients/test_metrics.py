"""The admin HTTP listener: /metrics (parsed with the Prometheus client's own parser)
reports what real clients did, /health and /ready answer, and bad HTTP gets a 4xx
without hurting the broker.

Every test broker runs its admin listener on a free port (`conftest.Broker.admin_url`).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from confluent_kafka import KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from conftest import Broker, _finish
from kafka_helpers import (
    admin_client,
    assert_all_delivered,
    consumer,
    create_topic,
    produce_all,
    producer,
    unique_topic,
    wait_until,
)
from procs import pick_port
import kafka_wire as kw

pytestmark = pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})

N = 300  # records produced
K = 120  # records a group consumes and commits


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(brook) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    status, body = http_get(brook.admin_url + "/metrics")
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))


def series(samples, name: str, **labels) -> dict[frozenset, float]:
    """The samples of `name` whose labels include `labels`."""
    want = {(k, str(v)) for k, v in labels.items()}
    return {lab: v for (n, lab), v in samples.items() if n == name and want <= lab}


def produce_and_commit(brook, topic: str, group: str, partitions: int = 3) -> None:
    """N records over `partitions` partitions; a group consumes K and commits them."""
    create_topic(brook.bootstrap, topic, partitions=partitions)
    p = producer(brook.bootstrap)
    assert_all_delivered(produce_all(
        p, topic, [{"key": f"k{i}".encode(), "value": b"v" * 50} for i in range(N)]))
    c = consumer(brook.bootstrap, **{"group.id": group})
    c.subscribe([topic])
    got = 0
    next_offsets = {p: 0 for p in range(partitions)}
    try:
        while got < K:
            batch = c.consume(num_messages=K - got, timeout=1.0)
            for m in batch:
                assert m.error() is None, m.error()
                next_offsets[m.partition()] = m.offset() + 1
            got += len(batch)
        # Every partition gets an offset (0 where nothing was read): lag is reported
        # only where the group has committed one, as kafka-consumer-groups shows "-".
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in next_offsets.items()],
                 asynchronous=False)
    finally:
        c.close()


def test_metrics_match_what_the_clients_did(brook):
    topic, group = unique_topic("metrics"), unique_topic("group")
    produce_and_commit(brook, topic, group)
    assert http_get(brook.admin_url + "/health")[0] == 200
    assert http_get(brook.admin_url + "/ready")[0] == 200

    def lag_is_settled():
        s = scrape(brook)
        return s if sum(series(s, "brook_group_lag", group=group).values()) == N - K else None

    s = wait_until(lag_is_settled, 10, what=f"group lag {N - K}")
    assert value(s, "brook_topic_messages_in_total", topic=topic) == N
    assert value(s, "brook_topic_bytes_in_total", topic=topic) > 50 * N
    assert value(s, "brook_topic_bytes_out_total", topic=topic) > 50 * K
    assert value(s, "brook_topic_produce_requests_total", topic=topic) >= 1
    assert value(s, "brook_topic_failed_produce_requests_total", topic=topic) == 0
    assert value(s, "brook_topic_fetch_requests_total", topic=topic) >= 1
    for api in ("Produce", "Fetch", "OffsetCommit", "JoinGroup"):
        assert value(s, "brook_request_total_time_seconds_count", api=api) >= 1, api
        assert value(s, "brook_request_total_time_seconds_bucket", api=api, le="+Inf") >= 1

    hw = series(s, "brook_partition_high_watermark", topic=topic)
    assert len(hw) == 3 and sum(hw.values()) == N
    assert sum(series(s, "brook_partition_log_end_offset", topic=topic).values()) == N
    assert set(series(s, "brook_partition_log_start_offset", topic=topic).values()) == {0}
    assert sum(series(s, "brook_partition_log_size_bytes", topic=topic).values()) \
        == value(s, "brook_topic_bytes_in_total", topic=topic)
    # Lag per partition is the high watermark minus the committed offset.
    committed = series(s, "brook_group_committed_offset", group=group, topic=topic)
    assert sum(committed.values()) == K
    for labels, offset in committed.items():
        p = dict(labels)["partition"]
        assert value(s, "brook_group_lag", group=group, topic=topic, partition=p) \
            == value(s, "brook_partition_high_watermark", topic=topic, partition=p) - offset
    assert value(s, "brook_group_topic_lag", group=group, topic=topic) == N - K
    assert value(s, "brook_group_members", group=group) == 0  # the consumer left
    assert value(s, "brook_group_state", group=group, state="Empty") == 1
    assert value(s, "brook_active_controller") == 1
    assert value(s, "brook_isr_shrinks_total") == 0
    assert value(s, "brook_leader_partitions") >= 3
    assert value(s, "brook_under_replicated_partitions") == 0
    assert value(s, "brook_offline_partitions") == 0
    assert value(s, "brook_active_connections", listener="PLAINTEXT") >= 0


@pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0,
                           "metrics.partition.labels.enable": "false"})
def test_per_partition_series_can_be_turned_off(brook):
    topic, group = unique_topic("metrics"), unique_topic("group")
    produce_and_commit(brook, topic, group)
    s = wait_until(lambda: (x := scrape(brook))
                   and value(x, "brook_group_topic_lag", group=group, topic=topic) == N - K
                   and x, 10, what="topic lag")
    assert value(s, "brook_topic_messages_in_total", topic=topic) == N
    assert not [n for (n, labels) in s if any(k == "partition" for k, _ in labels)]


PHASES = ("queue", "local", "remote", "response_send")


def request_times(s, api: str) -> dict[str, tuple[float, float]]:
    """(count, sum) of each of `api`'s request time histograms."""
    return {part: (value(s, f"brook_request_{part}_time_seconds_count", api=api) or 0,
                   value(s, f"brook_request_{part}_time_seconds_sum", api=api) or 0)
            for part in PHASES + ("throttle", "total")}


def test_request_time_is_split_as_kafka_splits_it(brook):
    """After a produce and fetches, Produce and Fetch have every histogram of Kafka's
    RequestMetrics; a fetch parked for fetch.wait.max.ms shows it as remote time; the
    parts add up to the total; nothing is throttled."""
    topic = unique_topic("request-times")
    create_topic(brook.bootstrap, topic, 1)
    assert_all_delivered(produce_all(
        producer(brook.bootstrap, acks="all"), topic, [{"value": b"v" * 100}] * 50))
    c = consumer(brook.bootstrap, **{"fetch.wait.max.ms": 400})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    try:
        deadline = time.monotonic() + 10
        while got < 50 and time.monotonic() < deadline:
            got += len(c.consume(num_messages=50, timeout=1.0))
        assert got == 50
        # Nothing more to read: each fetch now parks for fetch.wait.max.ms.
        c.consume(num_messages=1, timeout=2.5)
    finally:
        c.close()
    s = scrape(brook)
    for api in ("Produce", "Fetch"):
        t = request_times(s, api)
        counts = {part: count for part, (count, _) in t.items()}
        assert min(counts.values()) >= 1 and len(set(counts.values())) == 1, (api, counts)
        # Every request's parts are measured between the same clock readings.
        parts = sum(t[part][1] for part in PHASES)
        assert abs(parts - t["total"][1]) < 0.001 * counts["total"] + 1e-6, (api, t)
        assert t["throttle"][1] == 0
    fetch = request_times(s, "Fetch")
    assert fetch["remote"][1] >= 0.6, fetch  # two or more 400 ms waits
    assert fetch["local"][1] < fetch["remote"][1], fetch
    assert value(s, "brook_request_remote_time_seconds_bucket", api="Fetch", le="0.0001") \
        < fetch["remote"][0]


def test_acks_all_waiting_for_followers_is_remote_time(cluster):
    """On a leader with two followers, an acks=all produce waits for their fetches:
    Produce's remote time is more than nothing."""
    topic = unique_topic("remote")
    cluster.create_topic(topic, partitions=1, replication_factor=3)
    cluster.wait_for_isr(topic, 0, {1, 2, 3}, timeout=30)
    leader = cluster.nodes[cluster.leader(topic, 0)]
    p = producer(leader.bootstrap, acks="all", **{"linger.ms": 0})
    for i in range(20):
        assert_all_delivered(produce_all(p, topic, [{"value": b"r%d" % i, "partition": 0}]))
    s = scrape(leader)
    produce = request_times(s, "Produce")
    assert produce["remote"][0] >= 20 and produce["remote"][1] > 0, produce
    # Waits of at least 100 µs, not only clock noise.
    assert value(s, "brook_request_remote_time_seconds_bucket", api="Produce", le="0.0001") \
        < produce["remote"][0], produce


class SaslPlainBroker(Broker):
    """A PLAINTEXT listener (the fixture's readiness check) and a SASL_PLAINTEXT one
    with PLAIN users."""

    JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="admin" password="admin-secret" user_alice="alice-secret";')

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.sasl_port = pick_port()

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index("--listen")
        cmd[i + 1] = (f"PLAINTEXT://127.0.0.1:{self.port},"
                      f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
        return cmd


def test_sasl_exchanges_are_timed_under_their_api_names(tmp_path, brook_bin):
    """A client logging in with SASL/PLAIN: SaslHandshake and SaslAuthenticate have
    request time series, counted, as Kafka records them; so has the ApiVersions the
    client sends before authenticating."""
    b = SaslPlainBroker(brook_bin, tmp_path, {
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": SaslPlainBroker.JAAS})
    try:
        b.start()
        before = scrape(b)
        assert not series(before, "brook_request_total_time_seconds_count",
                          api="SaslAuthenticate")
        topic = unique_topic("sasl-timed")
        create_topic(b.bootstrap, topic, 1)
        sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                "sasl.username": "alice", "sasl.password": "alice-secret"}
        assert_all_delivered(produce_all(
            producer(f"127.0.0.1:{b.sasl_port}", **sasl), topic, [{"value": b"x"}] * 3))
        s = scrape(b)
        for api in ("SaslHandshake", "SaslAuthenticate", "ApiVersions"):
            t = request_times(s, api)
            assert t["total"][0] >= 1, (api, t)
            assert len({count for count, _ in t.values()}) == 1, (api, t)
            assert t["remote"][1] == 0, (api, t)
        # A refused login is answered and then closed: still timed, and counted as a
        # failed authentication.
        authenticated = request_times(s, "SaslAuthenticate")["total"][0]
        with pytest.raises(KafkaException):
            admin_client(f"127.0.0.1:{b.sasl_port}", **{**sasl, "sasl.password": "wrong"}) \
                .list_topics(timeout=3)
        s = scrape(b)
        assert request_times(s, "SaslAuthenticate")["total"][0] > authenticated
        assert value(s, "brook_authentications_total", listener="SASL_PLAINTEXT",
                     result="failure") >= 1
        assert value(s, "brook_authentications_total", listener="SASL_PLAINTEXT",
                     result="success") >= 1
    finally:
        _finish([b])


def test_waiting_on_the_controller_is_remote_time(brook):
    """A single broker's CreateTopics waits on its controller (the metadata log's
    append, then the change reaching the broker's image): remote time, as Kafka counts
    a request forwarded to its controller; the handler's own work stays local."""
    topic = unique_topic("controller-wait")
    create_topic(brook.bootstrap, topic, 2)
    t = request_times(scrape(brook), "CreateTopics")
    print(f"single broker CreateTopics: remote {t['remote'][1] * 1e3:.2f} ms, "
          f"local {t['local'][1] * 1e3:.2f} ms")
    assert t["total"][0] >= 1, t
    assert t["remote"][1] > 0, t
    assert t["remote"][1] > t["local"][1], t


def create_topic_v2(port: int, topic: str, partitions: int, replication_factor: int) -> int:
    """A raw CreateTopics v2 to the broker on `port`; its error code for the topic."""
    body = kw.array([kw.string(topic) + kw.i32(partitions) + kw.i16(replication_factor)
                     + kw.array([]) + kw.array([])])
    body += kw.i32(30_000) + kw.i8(0)   # timeout_ms, validate_only
    with kw.connect(port, timeout=35) as sock:
        sock.sendall(kw.frame(kw.header_v1(19, 2, 7, "metrics-test") + body))
        r = kw.Reader(kw.read_response(sock, 7))
    r.i32()                              # throttle_time_ms
    assert r.i32() == 1
    assert r.string() == topic
    return r.i16()


def test_forwarded_controller_requests_and_internal_rpcs_are_timed(cluster):
    """In a cluster, a CreateTopics sent to a broker that is not the controller waits
    for the controller over the inter-broker RPC: remote time there; the controller
    times that RPC as Internal:Controller, and raft's own RPCs show as Internal:Raft."""
    controller = cluster.metadata().controller_id
    other = min(set(cluster.ids) - {controller})
    node = cluster.nodes[other]
    topic = unique_topic("forwarded")
    # Sent to that broker itself (clients' admin libraries go to the controller).
    assert create_topic_v2(node.port, topic, partitions=1, replication_factor=3) == 0
    t = request_times(scrape(node), "CreateTopics")
    print(f"forwarded CreateTopics on node {other}: remote {t['remote'][1] * 1e3:.2f} ms, "
          f"local {t['local'][1] * 1e3:.2f} ms")
    assert t["total"][0] >= 1 and t["remote"][1] > 0, t
    # Nearly all of it is the wait: the broker's own work is decoding and encoding.
    assert t["remote"][1] > t["local"][1], t
    at_controller = request_times(scrape(cluster.nodes[controller]), "Internal:Controller")
    assert at_controller["total"][0] >= 1, at_controller
    # The controller's quorum commit waits for the other voters: remote time there too.
    assert at_controller["remote"][1] > 0, at_controller
    raft = [request_times(scrape(cluster.nodes[n]), "Internal:Raft")["total"][0]
            for n in cluster.ids]
    assert sum(raft) > 0, raft
    # Only Brook's fixed set of internal kinds ever become series.
    kinds = {dict(lab)["api"] for (name, lab) in scrape(node).items()
             if name == "brook_request_total_time_seconds_count"
             and dict(lab)["api"].startswith("Internal:")}
    assert kinds <= {"Internal:Raft", "Internal:Controller", "Internal:Markers",
                     "Internal:VerifyTxn", "Internal:ShareState", "Internal:Kafka"}, kinds


@pytest.mark.brook_config({"metrics.request.enable": "false"})
def test_request_metrics_can_be_turned_off(brook):
    topic = unique_topic("unmeasured")
    create_topic(brook.bootstrap, topic, 1)
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic, [{"value": b"x"}] * 5))
    s = scrape(brook)
    assert not [n for (n, _) in s if n.startswith(("brook_request_", "brook_topic_"))]
    # The state read at scrape time is still there.
    assert value(s, "brook_partition_high_watermark", topic=topic, partition=0) == 5


def raw_http(admin_url: str, request: bytes) -> int:
    """Sends `request` as is; returns the status code of the answer."""
    u = urllib.parse.urlsplit(admin_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # the server may answer and close before reading everything
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_bad_http_gets_4xx_and_the_broker_keeps_serving(brook):
    url = brook.admin_url
    # `/` is the web console (test_admin_api.py); everything else unknown is refused.
    for path in ("/nope", "/admin/../metrics", "/console.js/../../etc/passwd", "/../../etc/passwd", "/%2e%2e/metrics",
                 "/metrics/extra", "/health?x=" + "a" * 10000):
        req = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        status = raw_http(url, req)
        assert 400 <= status < 500 or (path.startswith("/health") and status == 200), path
    assert raw_http(url, b"DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 405
    big_body = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n" \
               b"Connection: close\r\n\r\n" + b"x" * 5_000_000
    assert 400 <= raw_http(url, big_body) < 500
    huge_headers = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"a" * (4 << 20) + b"\r\n\r\n"
    assert 400 <= raw_http(url, huge_headers) < 500
    assert raw_http(url, b"NOT HTTP AT ALL\r\n\r\n") == 400
    assert http_get(url + "/health")[0] == 200
    assert brook.running
    # Kafka clients are unaffected.
    topic = unique_topic("after-http")
    create_topic(brook.bootstrap, topic)
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic, [{"value": b"x"}]))


def test_fsyncs_are_timed(brook):
    """flush.messages=1: every produce is fsynced before it is acknowledged, and each
    fsync lands in brook_log_flush_seconds."""
    topic = unique_topic("flushed")
    create_topic(brook.bootstrap, topic, 1, config={"flush.messages": "1"})
    before = value(scrape(brook), "brook_log_flush_seconds_count") or 0
    p = producer(brook.bootstrap, **{"linger.ms": 0, "acks": "all"})
    for i in range(5):
        assert_all_delivered(produce_all(p, topic, [{"value": b"v%d" % i, "partition": 0}]))
    s = scrape(brook)
    assert value(s, "brook_log_flush_seconds_count") >= before + 5
    assert value(s, "brook_log_flush_seconds_sum") > 0


@pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0,
                           "group.share.heartbeat.interval.ms": 500,
                           "group.share.session.timeout.ms": 6000})
def test_share_group_metrics(brook):
    """A share group whose member holds records it has not acknowledged: the group is
    counted as Stable with one member (in the share group series only), and the held records are acquired and in flight;
    once the member is gone (its process exits without leaving: removed at the session
    timeout), the group is Empty and its records are released (in flight, no longer
    acquired)."""
    from test_share_groups import ShareConsumer, produce_range
    topic, group = unique_topic("mshare"), unique_topic("gmshare")
    create_topic(brook.bootstrap, topic, partitions=1)
    produce_range(brook.bootstrap, topic, 0, 10, batch=10)
    before = scrape(brook)
    assert value(before, "brook_share_groups", state="Stable") == 0
    c = ShareConsumer(brook.bootstrap, group, topic, "hold", "probe.earliest=true")
    try:
        wait_until(lambda: "HOLDING" in c.lines, 60, what=f"records held\n{c.describe()}")
        s = scrape(brook)
        assert value(s, "brook_share_groups", state="Stable") == 1
        assert value(s, "brook_share_group_members", group=group) == 1
        assert value(s, "brook_share_group_acquired_records", group=group, topic=topic) == 10
        assert value(s, "brook_share_group_in_flight_records", group=group, topic=topic) == 10
        # Not a consumer group: none of the consumer group series.
        assert not series(s, "brook_group_members", group=group)
        assert not series(s, "brook_group_state", group=group)
    finally:
        c.stop()

    def released():
        s = scrape(brook)
        return (value(s, "brook_share_groups", state="Empty") == 1
                and value(s, "brook_share_group_members", group=group) == 0
                and value(s, "brook_share_group_acquired_records", group=group,
                          topic=topic) == 0
                and value(s, "brook_share_group_in_flight_records", group=group,
                          topic=topic) == 10)
    wait_until(released, 30, what="the member left and its records were released")
