"""Incremental fetch sessions (KIP-227) on the wire, as a follower's replica fetch and a
consumer's fetch use them: opened by a full fetch, advanced epoch by epoch, answering
only partitions with news, refused with Kafka's error codes. Requests are encoded by
kafka-python's protocol classes (Fetch v11, topics by name). In the replica test the
replica id is no replica of anything, so each partition is answered
NOT_LEADER_OR_FOLLOWER and no real follower's progress is touched; the records path of
replica sessions is what every cluster test's replication runs on, and sessions by
topic id (v13+) are what the Java consumer and franz-go use in every consume test."""

import struct
import threading
import time

from kafka.protocol.fetch import FetchRequest, FetchResponse

import kafka_wire as w
from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
)

V = 11
FETCH = 1
NOT_LEADER_OR_FOLLOWER = 6
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
NOT_A_REPLICA = 7


def record_count(raw):
    """Records in a v2 record-batch stream (each batch's count, at byte 57)."""
    n, at = 0, 0
    raw = raw or b""
    while at + 61 <= len(raw):
        length = struct.unpack_from(">i", raw, at + 8)[0]
        n += struct.unpack_from(">i", raw, at + 57)[0]
        at += 12 + length
    return n


class Conn:
    def __init__(self, port, client_id="brook-raw-test"):
        self.sock = w.connect(port)
        self.cid = 0
        self.client_id = client_id
        self.throttle_ms = 0

    def fetch(self, session_id, epoch, topics=(), forgotten=(), replica=NOT_A_REPLICA,
              offsets=None, wait_ms=0, records=False, max_bytes=1 << 20):
        """topics: [(topic, [partition])], fetched from offset 0 or `offsets[(t, p)]`.
        Returns (error, session id, [(topic, partition, error[, hw, record count])])."""
        self.cid += 1
        offsets = offsets or {}
        req = FetchRequest[V](replica, wait_ms, 1, max_bytes, 0, session_id, epoch,
                              [(t, [(p, -1, offsets.get((t, p), 0), -1, 1 << 20) for p in ps])
                               for t, ps in topics],
                              [(t, list(ps)) for t, ps in forgotten], "")
        self.sock.sendall(w.frame(w.header_v1(FETCH, V, self.cid, self.client_id)
                                  + req.encode()))
        resp = FetchResponse[V].decode(w.read_response(self.sock, self.cid))
        self.throttle_ms = resp.throttle_time_ms
        if records:
            # partition: (index, error, hw, lso, log start, aborted, preferred, records)
            answered = sorted((t, p[0], p[1], p[2], record_count(p[7]))
                              for t, parts in resp.topics for p in parts)
        else:
            answered = sorted((t, p[0], p[1]) for t, parts in resp.topics for p in parts)
        return resp.error_code, resp.session_id, answered


def test_a_replica_fetch_session_opens_advances_and_is_refused_as_kafka_refuses(brook):
    topic = unique_topic("session")
    create_topic(brook.bootstrap, topic, partitions=3)
    c = Conn(brook.port)
    everything = [(topic, [0, 1, 2])]

    # A full fetch opens a session and answers every partition.
    error, sid, answered = c.fetch(0, 0, everything)
    assert error == 0 and sid > 0
    assert answered == [(topic, p, NOT_LEADER_OR_FOLLOWER) for p in range(3)]

    # The next epoch names nothing and nothing changed: nothing is answered.
    assert c.fetch(sid, 1) == (0, sid, [])
    # Naming one partition answers it alone; forgetting one drops it.
    assert c.fetch(sid, 2, [(topic, [1])]) == (0, sid, [(topic, 1, NOT_LEADER_OR_FOLLOWER)])
    assert c.fetch(sid, 3, forgotten=[(topic, [2])]) == (0, sid, [])

    # A wrong epoch and an unknown id: refused, and the session stays as it was.
    assert c.fetch(sid, 9) == (INVALID_FETCH_SESSION_EPOCH, 0, [])
    assert c.fetch(sid + 1, 4) == (FETCH_SESSION_ID_NOT_FOUND, 0, [])
    assert c.fetch(sid, 4) == (0, sid, [])

    # Another connection has no such session (sessions are per connection).
    other = Conn(brook.port)
    assert other.fetch(sid, 5) == (FETCH_SESSION_ID_NOT_FOUND, 0, [])

    # A sessionless fetch naming the session closes it.
    error, none, answered = c.fetch(sid, -1, everything)
    assert (error, none) == (0, 0) and len(answered) == 3
    assert c.fetch(sid, 5) == (FETCH_SESSION_ID_NOT_FOUND, 0, [])

    # A new full fetch opens a new session.
    error, sid2, answered = c.fetch(0, 0, [(topic, [0])])
    assert error == 0 and sid2 > 0 and len(answered) == 1


def test_a_consumer_fetch_session_answers_only_partitions_with_news(brook):
    """A consumer's session (Kafka's incremental fetch for consumers): after the full
    fetch, a fetch naming nothing is answered only about the partitions that took
    records, a long poll wakes when a partition of the session takes one, and a
    partition moved past its records is not answered again until something changes."""
    topic = unique_topic("session-consumer")
    create_topic(brook.bootstrap, topic, partitions=3)
    p = producer(brook.bootstrap)
    c = Conn(brook.port)
    everything = [(topic, [0, 1, 2])]
    error, sid, answered = c.fetch(0, 0, everything, replica=-1, records=True)
    assert error == 0 and sid > 0
    assert answered == [(topic, i, 0, 0, 0) for i in range(3)]
    assert c.fetch(sid, 1, replica=-1) == (0, sid, [])

    assert_all_delivered(produce_all(p, topic, [{"value": b"a", "partition": 1},
                                                {"value": b"b", "partition": 1}]))
    # Only partition 1 is answered: its records and its new high watermark.
    assert c.fetch(sid, 2, replica=-1, records=True) == (0, sid, [(topic, 1, 0, 2, 2)])
    # Moved past them (named with its new offset): nothing new to say.
    assert c.fetch(sid, 3, [(topic, [1])], replica=-1, offsets={(topic, 1): 2}) == (0, sid, [])

    # A long poll on the session wakes for a record to a partition not named.
    def later():
        time.sleep(0.5)
        assert_all_delivered(produce_all(p, topic, [{"value": b"c", "partition": 2}]))
    threading.Thread(target=later).start()
    t0 = time.monotonic()
    error, _, answered = c.fetch(sid, 4, replica=-1, wait_ms=10_000, records=True)
    assert time.monotonic() - t0 < 8
    assert (error, answered) == (0, [(topic, 2, 0, 1, 1)])

    # A forgotten partition is not answered, whatever it takes.
    assert c.fetch(sid, 5, forgotten=[(topic, [0])], replica=-1,
                   offsets={(topic, 2): 1}) == (0, sid, [])
    assert_all_delivered(produce_all(p, topic, [{"value": b"d", "partition": 0}]))
    assert c.fetch(sid, 6, replica=-1) == (0, sid, [])


def test_a_full_consumer_fetch_names_every_partition_even_past_its_size(brook):
    """The response to the fetch that opens a session names every partition of it (the
    Java client drops a full response that leaves one out, records and all); partitions
    past the response's max_bytes come without records, and the next fetches bring them
    without being named."""
    topic = unique_topic("session-full")
    create_topic(brook.bootstrap, topic, partitions=3)
    p = producer(brook.bootstrap)
    assert_all_delivered(produce_all(p, topic, [{"value": b"x" * 2000, "partition": i}
                                                for i in range(3)]))
    c = Conn(brook.port)
    everything = [(topic, [0, 1, 2])]
    # max_bytes 1: the first batch still goes (as Kafka sends it), nothing after it.
    error, sid, answered = c.fetch(0, 0, everything, replica=-1, records=True, max_bytes=1)
    assert error == 0 and sid > 0
    assert [a[:4] for a in answered] == [(topic, i, 0, 1) for i in range(3)]
    assert sum(a[4] for a in answered) == 1
    got = {a[1] for a in answered if a[4]}
    for epoch in (1, 2):
        error, _, answered = c.fetch(sid, epoch, replica=-1, records=True, max_bytes=1,
                                     offsets={(topic, i): 1 for i in got})
        assert error == 0 and [a[4] for a in answered] == [1], answered
        got |= {a[1] for a in answered}
    assert got == {0, 1, 2}


def test_partitions_of_a_session_take_turns_when_responses_fill_up(brook):
    """When a response fills up before every partition with records had its go, the
    partitions left out go first next time (Kafka moves a partition that returned
    records to the end of its session). Three partitions of three batches each, read
    by a consumer session whose responses hold one batch: each of the first three
    responses brings a different partition's, not partition 0's three."""
    topic = unique_topic("session-turns")
    create_topic(brook.bootstrap, topic, partitions=3)
    p = producer(brook.bootstrap)
    for _ in range(3):  # one batch per partition per flush
        assert_all_delivered(produce_all(p, topic, [{"value": b"x" * 2000, "partition": i}
                                                    for i in range(3)]))
    c = Conn(brook.port)
    error, sid, answered = c.fetch(0, 0, [(topic, [0, 1, 2])], replica=-1, records=True,
                                   max_bytes=1)
    assert error == 0 and sid > 0
    got = [a[1] for a in answered if a[4]]
    order, position = list(got), {i: 0 for i in range(3)}
    for epoch in range(1, 9):
        for i in got:
            position[i] += 1
        error, _, answered = c.fetch(sid, epoch, [(topic, got)], replica=-1, records=True,
                                     max_bytes=1,
                                     offsets={(topic, i): position[i] for i in range(3)})
        got = [a[1] for a in answered if a[4]]
        assert error == 0 and len(got) == 1, answered
        order += got
    assert sorted(order[:3]) == [0, 1, 2], order
    assert sorted(order) == [0, 0, 0, 1, 1, 1, 2, 2, 2], order


def test_idle_partitions_keep_their_isr_in_a_fetch_session(cluster):
    """Followers replicate in fetch sessions, where the leader visits a partition only
    when it changes. A follower at the leader's log end counts as caught up (Kafka's
    isCaughtUp), so partitions left idle for twice `replica.lag.time.max.ms` (3 s in
    the test clusters) keep every replica in their ISR, and a record then written to
    each with acks=all reaches all three."""
    topic = unique_topic("idle-isr")
    partitions = 20
    cluster.create_topic(topic, partitions=partitions, replication_factor=3)
    p = producer(cluster.bootstrap, acks="all")
    assert_all_delivered(produce_all(p, topic, [{"value": b"first", "partition": 0}]))
    time.sleep(7)
    for node in cluster.running():
        isrs = {i: cluster.isr(topic, i, via=node) for i in range(partitions)}
        assert all(isr == {1, 2, 3} for isr in isrs.values()), (node, isrs)
    records = [{"value": f"v{i}".encode(), "partition": i} for i in range(partitions)]
    assert_all_delivered(produce_all(p, topic, records, timeout=30))
    got = consume_to_end(cluster.bootstrap, topic, partitions)
    assert got[0][-1].value == b"v0" and len(got[0]) == 2
    assert all([r.value for r in got[i]] == [f"v{i}".encode()] for i in range(1, partitions))


def test_java_consumer_reads_more_than_one_response_holds_from_many_partitions(brook):
    """Kafka's console consumer (the Java consumer, fetch sessions by topic id) reading
    8 partitions of 200 KB each from the start with fetch.max.bytes of 100 KB: no
    response can carry every partition's records, and a partition whose batch did not
    fit is not named again by the client (its position did not move), so the broker
    must read it again on its own; every record arrives."""
    from test_cluster_tools import kafka_tool

    topic = unique_topic("session-java")
    partitions, per_partition = 8, 20
    create_topic(brook.bootstrap, topic, partitions=partitions)
    p = producer(brook.bootstrap, **{"linger.ms": 50})
    records = [{"value": f"{i:05d}".encode() + b"x" * 10_000, "partition": i % partitions}
               for i in range(partitions * per_partition)]
    # In four rounds: batches of 5 records (50 KB), so a response holds one or two, and
    # the next partition's batch does not fit in what is left of it.
    for r in range(4):
        quarter = len(records) // 4
        assert_all_delivered(produce_all(p, topic, records[r * quarter:(r + 1) * quarter]))
    out = kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer",
                     "--bootstrap-server", brook.bootstrap, "--topic", topic,
                     "--from-beginning", "--max-messages", str(len(records)),
                     "--timeout-ms", "30000",
                     "--consumer-property", "fetch.max.bytes=100000",
                     "--consumer-property", "max.partition.fetch.bytes=100000",
                     timeout=120)
    got = sorted(line[:5] for line in out.splitlines() if line[:5].isdigit())
    assert got == [f"{i:05d}" for i in range(len(records))]
