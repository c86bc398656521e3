"""Incremental fetch sessions (KIP-227) on the wire, as a follower's replica fetch uses
them: opened by a full fetch, advanced epoch by epoch, refused with Kafka's error codes.
Requests are encoded by kafka-python's protocol classes (Fetch v11). The replica id
used here is no replica of anything, so each partition is answered NOT_LEADER_OR_FOLLOWER
and no real follower's progress is touched; the records path of sessions is what every
cluster test's replication runs on."""

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


class Conn:
    def __init__(self, port):
        self.sock = w.connect(port)
        self.cid = 0

    def fetch(self, session_id, epoch, topics=(), forgotten=(), replica=NOT_A_REPLICA):
        self.cid += 1
        req = FetchRequest[V](replica, 0, 1, 1 << 20, 0, session_id, epoch,
                              [(t, [(p, -1, 0, -1, 1 << 20) for p in ps]) for t, ps in topics],
                              [(t, list(ps)) for t, ps in forgotten], "")
        self.sock.sendall(w.frame(w.header_v1(FETCH, V, self.cid) + req.encode()))
        resp = FetchResponse[V].decode(w.read_response(self.sock, self.cid))
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


def test_consumers_are_answered_without_a_session(brook):
    """As Kafka answers when its session cache has no room: session id 0, every
    partition answered (the Java consumer then keeps sending full fetches)."""
    topic = unique_topic("session-consumer")
    create_topic(brook.bootstrap, topic, partitions=2)
    c = Conn(brook.port)
    error, sid, answered = c.fetch(0, 0, [(topic, [0, 1])], replica=-1)
    assert (error, sid) == (0, 0)
    assert answered == [(topic, 0, 0), (topic, 1, 0)]


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
