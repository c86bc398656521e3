#!/usr/bin/env python3
"""KIP-932 share group scenarios driven by librdkafka's share consumer (confluent-kafka's
`ShareConsumer`, pinned by scripts/setup-test-deps.sh), explicit acknowledgement mode: the
same scenarios as the Java column's ShareCompat.java.

    python3 share_compat.py 127.0.0.1:9092                    # every scenario
    python3 share_compat.py 127.0.0.1:9092 hold GROUP TOPIC   # the member that
        share.lock_timeout kills: takes one poll's records, prints "HOLDING offset,...",
        acknowledges nothing, sleeps until killed

The broker's group.share.record.lock.duration.ms and group.share.delivery.count.limit are
read back with describe_configs (compat/run.sh makes them small for this client). Each group
first gets share.auto.offset.reset=earliest (incremental_alter_configs on the GROUP
resource). confluent-kafka 2.16's AdminClient has no share group APIs, so the two admin
reads the Java column does with Kafka's Admin (describeShareGroups: every member assigned
the partition; listShareGroupOffsets: the share-partition start offset) are done here with
one hand-encoded request each (ShareGroupDescribe v1, DescribeShareGroupOffsets v0; see
`wire_request`); everything else is the client's own API.

Prints one `RESULT {...}` line per scenario (results.py).
"""

from __future__ import annotations

import os
import random
import socket
import string
import struct
import subprocess
import sys
import threading
import time

from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

from results import check, scenario

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
RUN = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
LOCK_MS = 0
DELIVERY_LIMIT = 0
admin: AdminClient | None = None


def topic_name(s):
    return f"ck-share-{s}-{RUN}"


def share_consumer(group, max_poll_records):
    return ShareConsumer({"bootstrap.servers": BOOTSTRAP, "group.id": group,
                          "share.acknowledgement.mode": "explicit",
                          "max.poll.records": max_poll_records})


# --------------------------------------------------------------------------------------
# ShareGroupDescribe and DescribeShareGroupOffsets, which confluent-kafka's AdminClient
# does not have: request header v2, flexible (compact) encoding, one broker (the
# coordinator of every group).
# --------------------------------------------------------------------------------------
def _uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _cstr(s):
    b = s.encode()
    return _uvarint(len(b) + 1) + b


class _Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        n = shift = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def cstr(self):
        n = self.uvarint() - 1
        return None if n < 0 else self.take(n).decode()

    def array(self, item):
        n = self.uvarint() - 1
        return [] if n < 0 else [item() for _ in range(n)]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


_correlation = [0]


def wire_request(api_key, version, body):
    """Sends one flexible-version request to the bootstrap broker, returns the response
    body (after the correlation id and the header's tagged fields)."""
    _correlation[0] += 1
    client_id = b"brook-compat-ck-share-admin"
    header = struct.pack(">hhih", api_key, version, _correlation[0], len(client_id)) + client_id + b"\0"
    msg = header + body
    host, port = BOOTSTRAP.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(struct.pack(">i", len(msg)) + msg)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            check(chunk, f"api {api_key}: connection closed before the response")
            buf += chunk
    r = _Reader(buf[4:])
    check(r.i32() == _correlation[0], f"api {api_key}: wrong correlation id")
    r.tags()
    return r


def describe_share_group(group):
    """ShareGroupDescribe v1: (error code, state, [(member id, {topic: [partitions]})])."""
    r = wire_request(77, 1, _uvarint(2) + _cstr(group) + b"\0" + b"\0")
    r.i32()  # throttle

    def tp():
        r.take(16)
        name, parts = r.cstr(), r.array(r.i32)
        r.tags()
        return name, parts

    def member():
        mid = r.cstr()
        r.cstr(), r.i32(), r.cstr(), r.cstr()  # rack, epoch, client id, client host
        r.array(r.cstr)  # subscribed topics
        assignment = dict(r.array(tp))
        r.tags()
        r.tags()
        return mid, assignment

    def described():
        err, msg = r.i16(), r.cstr()
        gid, state = r.cstr(), r.cstr()
        r.i32(), r.i32(), r.cstr()  # group epoch, assignment epoch, assignor
        members = r.array(member)
        r.i32()
        r.tags()
        return gid, err, msg, state, members

    groups = r.array(described)
    check(len(groups) == 1 and groups[0][0] == group, f"ShareGroupDescribe answered {groups}")
    return groups[0][1:]


def start_offset(group, topic):
    """DescribeShareGroupOffsets v0: the share-partition start offset of partition 0, -1
    when the group has none."""
    body = (_uvarint(2) + _cstr(group) + _uvarint(2) + _cstr(topic) + _uvarint(2)
            + struct.pack(">i", 0) + b"\0" + b"\0" + b"\0")
    r = wire_request(90, 0, body)
    r.i32()
    found = []

    def partition():
        idx, start = r.i32(), r.i64()
        r.i32()
        err, msg = r.i16(), r.cstr()
        r.tags()
        check(err == 0, f"DescribeShareGroupOffsets {topic}-{idx}: error {err} {msg}")
        if idx == 0:
            found.append(start)

    def t():
        r.cstr()
        r.take(16)
        r.array(partition)
        r.tags()

    def g():
        r.cstr()
        r.array(t)
        err, msg = r.i16(), r.cstr()
        r.tags()
        check(err == 0, f"DescribeShareGroupOffsets {group}: error {err} {msg}")

    r.array(g)
    return found[0] if found else -1


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def wait_for(cond, seconds, what):
    deadline = time.monotonic() + seconds
    while not cond():
        check(time.monotonic() < deadline, f"timed out after {seconds} s: {what()}")
        time.sleep(0.05)


def earliest(group):
    res = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(20)


def topic_and_group(name):
    """A one-partition topic and a group reading it from the earliest offset."""
    topic = topic_name(name)
    for f in admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10).values():
        f.result(20)
    group = topic + "-g"
    earliest(group)
    return topic, group


def produce(topic, n, batch):
    """Values v0..v(n-1), `batch` records per produce request (linger 0, a flush per batch)."""
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 0})
    errors = []
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), key=f"k{i}".encode(),
                  on_delivery=lambda err, msg: err and errors.append(err))
        if (i + 1) % batch == 0:
            check(p.flush(20) == 0, "flush left messages")
    check(p.flush(20) == 0, "flush left messages")
    check(not errors, f"delivery errors {errors}")


def check_start_offset(group, topic, n):
    """Every record acknowledged (accepted, rejected or archived): the start offset is `n`."""
    last = [-2]

    def ok():
        last[0] = start_offset(group, topic)
        return last[0] == n
    wait_for(ok, 10, lambda: f"share-partition start offset {last[0]}, expected {n}")


class Member:
    """One ShareConsumer on its own thread: polls, acknowledges each record as `ack` says,
    commits (commit_sync) after each non-empty poll."""

    def __init__(self, group, topic, max_poll_records, ack):
        self.group, self.topic, self.ack = group, topic, ack
        self.max_poll_records = max_poll_records
        self.deliveries = []  # (offset, delivery count), in order
        self.problems = []
        self.stop = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c = None
        try:
            c = share_consumer(self.group, self.max_poll_records)
            c.subscribe([self.topic])
            while not self.stop:
                got = 0
                for m in c.poll(0.1):
                    if m.error() is not None:
                        self.problems.append(f"poll: {m.error()}")
                        continue
                    got += 1
                    with self.lock:
                        self.deliveries.append((m.offset(), m.delivery_count()))
                    c.acknowledge(m, self.ack(m))
                if got:
                    for tp, e in c.commit_sync(20).items():
                        if e is not None:
                            self.problems.append(f"commit_sync {tp.topic}-{tp.partition}: {e}")
        except Exception as e:  # noqa: BLE001 - reported by close()
            self.problems.append(f"{type(e).__name__}: {e}")
        finally:
            if c is not None:
                try:
                    c.close()
                except Exception as e:  # noqa: BLE001
                    self.problems.append(f"close: {type(e).__name__}: {e}")

    def offsets(self):
        with self.lock:
            return [o for o, _ in self.deliveries]

    def count(self):
        with self.lock:
            return len(self.deliveries)

    def close(self):
        self.stop = True
        self.thread.join(20)
        check(not self.thread.is_alive(), "a share consumer did not close within 20 s")
        check(not self.problems, f"share consumer problems: {self.problems}")


def by_offset(members):
    """offset -> delivery counts, in delivery order, over some members."""
    out = {}
    for mb in members:
        with mb.lock:
            for o, n in mb.deliveries:
                out.setdefault(o, []).append(n)
    return dict(sorted(out.items()))


def close_all(members):
    for m in members:
        m.stop = True
    for m in members:
        m.close()


# --------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------
def split(n, records):
    topic, group = topic_and_group(f"split{n}")
    members = []
    try:
        members = [Member(group, topic, 10, lambda m: AcknowledgeType.ACCEPT) for _ in range(n)]
        # Every member holds the partition before anything is produced.
        seen = [""]

        def assigned():
            err, msg, state, ms = describe_share_group(group)
            seen[0] = f"error {err} {msg or ''}, state {state}, members {ms}"
            if err == 69:  # GROUP_ID_NOT_FOUND: no member has joined yet
                return False
            check(err == 0, f"ShareGroupDescribe {group}: {seen[0]}")
            return len(ms) == n and all(0 in a.get(topic, []) for _, a in ms)
        wait_for(assigned, 30, lambda: f"{n} members each assigned {topic}-0: {seen[0]}")
        produce(topic, records, 5)
        wait_for(lambda: len(by_offset(members)) >= records, 30,
                 lambda: f"{len(by_offset(members))} of {records} records delivered")
        time.sleep(0.3)  # a record delivered twice would come back within a poll or two
    finally:
        close_all(members)
    got = by_offset(members)
    check(list(got) == list(range(records)),
          f"offsets delivered: {len(got)} distinct, {min(got, default=None)}..{max(got, default=None)}")
    twice = [f"{o}={c}" for o, c in got.items() if c != [1]]
    check(not twice, f"records delivered more than once (offset=delivery counts): {twice}")
    per = [m.count() for m in members]
    check(0 not in per, f"a member got no records: {per}")
    check_start_offset(group, topic, records)
    return (f"{n} members of {group}, all assigned partition 0, split {records} records {per}, "
            f"each delivered and accepted once; share-partition start offset {records}")


def hold(group, topic):
    """The child process of share.lock_timeout."""
    c = share_consumer(group, 500)
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = [m for m in c.poll(0.2)]
        if not got:
            continue
        errors = [str(m.error()) for m in got if m.error() is not None]
        print("HOLDING " + ",".join(str(m.offset()) for m in got if m.error() is None)
              + (f" errors {errors}" if errors else ""), flush=True)
        time.sleep(120)  # killed long before
    print("NOTHING", flush=True)


def lock_timeout():
    topic, group = topic_and_group("lock")
    n = 10
    produce(topic, n, n)
    holder = subprocess.Popen([sys.executable, os.path.abspath(__file__), BOOTSTRAP, "hold", group, topic],
                              stdout=subprocess.PIPE, text=True)
    other = None
    try:
        line = ""
        while True:
            line = holder.stdout.readline()  # the child gives up after 30 s
            if not line or line.startswith("HOLDING ") or line.strip() == "NOTHING":
                break
        held_at = time.monotonic()
        check(line.startswith("HOLDING "), f"the holding member printed {line.strip()!r}")
        held = [int(s) for s in line.split()[1].split(",")]
        check(held == list(range(n)) and " errors " not in line,
              f"the holding member took {line.strip()[8:]}, expected all {n}")
        # kill -9 (SIGKILL): no acknowledgement, no leave heartbeat, no close.
        holder.kill()
        holder.wait(10)
        m = other = Member(group, topic, 500, lambda m: AcknowledgeType.ACCEPT)
        wait_for(lambda: m.count() >= n, LOCK_MS / 1000 + 20,
                 lambda: f"the killed member's records redelivered: got {m.offsets()}")
        after_ms = (time.monotonic() - held_at) * 1000
        time.sleep(0.3)
        other = None
        m.close()
        got = by_offset([m])
        check(list(got) == held, f"redelivered {list(got)}, held {held}")
        for o, counts in got.items():
            check(counts == [2], f"offset {o} delivery counts {counts} (expected one redelivery, count 2)")
        check_start_offset(group, topic, n)
        return (f"a member (own process) took offsets 0..{n - 1} and was killed with SIGKILL; another "
                f"member got all {n} with delivery count 2, {after_ms:.0f} ms after the first took them "
                f"(acquisition lock {LOCK_MS} ms), accepted them: start offset {n}")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if other is not None:
            other.stop = True


def reject():
    """REJECT on even offsets, ACCEPT on odd ones: each record is delivered once, even
    after the acquisition lock duration has passed."""
    topic, group = topic_and_group("reject")
    n = 20
    produce(topic, n, 4)
    m = Member(group, topic, 500,
               lambda r: AcknowledgeType.REJECT if r.offset() % 2 == 0 else AcknowledgeType.ACCEPT)
    try:
        wait_for(lambda: m.count() >= n, 30, lambda: f"deliveries {m.offsets()}")
        time.sleep(LOCK_MS / 1000 + 1)  # a rejected record never comes back
    finally:
        m.close()
    got = by_offset([m])
    check(list(got) == list(range(n)), f"offsets delivered {list(got)}")
    for o, counts in got.items():
        check(counts == [1], f"offset {o} delivered with counts {counts}")
    check_start_offset(group, topic, n)
    return (f"{n} records, the 10 even offsets rejected, the odd accepted; none redelivered within "
            f"{LOCK_MS + 1000} ms (lock {LOCK_MS} ms); start offset {n}")


def release():
    """RELEASE at the first delivery, ACCEPT at the second."""
    topic, group = topic_and_group("release")
    n = 10
    produce(topic, n, 5)
    m = Member(group, topic, 500,
               lambda r: AcknowledgeType.RELEASE if r.delivery_count() <= 1 else AcknowledgeType.ACCEPT)
    try:
        wait_for(lambda: m.count() >= 2 * n, 30, lambda: f"deliveries {m.offsets()}")
        time.sleep(0.3)
    finally:
        m.close()
    got = by_offset([m])
    check(list(got) == list(range(n)), f"offsets delivered {list(got)}")
    for o, counts in got.items():
        check(counts == [1, 2], f"offset {o} delivery counts {counts}")
    check_start_offset(group, topic, n)
    return f"{n} records released at delivery 1, each redelivered (count 2) and accepted; start offset {n}"


def delivery_limit():
    """RELEASE every time: each record is delivered group.share.delivery.count.limit times,
    then archived."""
    topic, group = topic_and_group("limit")
    n = 5
    produce(topic, n, n)
    m = Member(group, topic, 500, lambda r: AcknowledgeType.RELEASE)
    try:
        wait_for(lambda: m.count() >= n * DELIVERY_LIMIT, 30, lambda: f"deliveries {m.offsets()}")
        time.sleep(0.5)  # one more would show by now
    finally:
        m.close()
    got = by_offset([m])
    expected = list(range(1, DELIVERY_LIMIT + 1))
    check(list(got) == list(range(n)), f"offsets delivered {list(got)}")
    for o, counts in got.items():
        check(counts == expected, f"offset {o} delivery counts {counts}, expected {expected} "
                                  f"(group.share.delivery.count.limit {DELIVERY_LIMIT})")
    check_start_offset(group, topic, n)
    return (f"{n} records released at every delivery: each delivered {DELIVERY_LIMIT} times "
            f"(group.share.delivery.count.limit), then archived: start offset {n}")


def main():
    global admin, LOCK_MS, DELIVERY_LIMIT
    if len(sys.argv) > 2 and sys.argv[2] == "hold":
        hold(sys.argv[3], sys.argv[4])
        return
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    node = str(admin.describe_cluster().result(20).nodes[0].id)
    res = ConfigResource(ConfigResource.Type.BROKER, node)
    cfg = admin.describe_configs([res])[res].result(20)
    LOCK_MS = int(cfg["group.share.record.lock.duration.ms"].value)
    DELIVERY_LIMIT = int(cfg["group.share.delivery.count.limit"].value)
    scenario("share.split2", lambda: split(2, 200))
    scenario("share.split5", lambda: split(5, 300))
    scenario("share.lock_timeout", lock_timeout)
    scenario("share.reject", reject)
    scenario("share.release", release)
    scenario("share.delivery_limit", delivery_limit)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # do not wait for a member thread stuck in librdkafka
