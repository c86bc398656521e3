"""Limits under hostile load: 1,000 idle connections and slowloris clients must not
starve a working client; per-IP and idle-connection limits are enforced."""

import socket
import struct
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def open_idle(bootstrap: str, n: int) -> list[socket.socket]:
    host, port = bootstrap.split(":")
    return [socket.create_connection((host, int(port)), timeout=5) for _ in range(n)]


def slowloris(bootstrap: str, n: int, claimed_bytes: int) -> list[socket.socket]:
    """Connections that announce a big frame and then send almost nothing."""
    socks = open_idle(bootstrap, n)
    for s in socks:
        s.sendall(struct.pack(">i", claimed_bytes) + b"\x00\x00")
    return socks


def round_trip(bootstrap: str, topic: str, count: int) -> float:
    start = time.monotonic()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for i in range(count):
        p.produce(topic, value=f"v{i}".encode())
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "limits", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    deadline = time.monotonic() + 30
    while got < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.close()
    assert got == count
    return time.monotonic() - start


def test_idle_connections_and_slowloris_do_not_starve_clients(brook_factory):
    broker = brook_factory({"queued.max.request.bytes": str(200 * 1024 * 1024)})
    baseline = round_trip(broker.bootstrap, "warmup", 1000)
    idle = open_idle(broker.bootstrap, 1000)
    # Five clients each claiming a 100 MiB frame: together more than the memory pool.
    slow = slowloris(broker.bootstrap, 5, 100 * 1024 * 1024)
    try:
        loaded = round_trip(broker.bootstrap, "busy", 5000)
        broker.assert_alive()
        assert loaded < max(10.0, baseline * 10), f"working client slowed from {baseline:.2f}s to {loaded:.2f}s"
    finally:
        for s in idle + slow:
            s.close()


def test_max_connections_per_ip(brook_factory):
    broker = brook_factory({"max.connections.per.ip": "20"})
    socks = open_idle(broker.bootstrap, 30)
    time.sleep(0.5)
    closed = 0
    for s in socks:
        s.settimeout(0.5)
        try:
            if s.recv(1) == b"":
                closed += 1
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed += 1
    for s in socks:
        s.close()
    assert closed == 10, f"expected the 10 connections over the limit to be refused, {closed} were"
    time.sleep(0.5)
    round_trip(broker.bootstrap, "after", 10)


def test_idle_connections_are_closed(brook_factory):
    broker = brook_factory({"connections.max.idle.ms": "1000"})
    (s,) = open_idle(broker.bootstrap, 1)
    s.settimeout(10)
    start = time.monotonic()
    assert s.recv(1) == b""
    assert 0.5 < time.monotonic() - start < 8


def fetch_v4(correlation: int, topic: str, repeats: int) -> bytes:
    """A Fetch v4 frame listing partition 0 of `topic` `repeats` times from offset 0."""
    client = b"non-reader"
    header = struct.pack(">hhih", 1, 4, correlation, len(client)) + client
    name = topic.encode()
    body = (struct.pack(">iiiib", -1, 100, 1, 50 << 20, 0) + struct.pack(">ih", 1, len(name))
            + name + struct.pack(">i", repeats) + struct.pack(">iqi", 0, 0, 1 << 20) * repeats)
    return struct.pack(">i", len(header) + len(body)) + header + body


def test_clients_that_never_read_their_responses_do_not_starve_others(brook_factory):
    """Ten connections send large requests whose responses they never read: their
    writes stall, but the request memory is released before the write, so a working
    client is served; the stalled connections are closed at the idle timeout."""
    import threading

    broker = brook_factory({"queued.max.request.bytes": str(8 * 1024 * 1024),
                            "connections.max.idle.ms": "4000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(1200):
        p.produce("big", value=b"x" * 1000, partition=0)
    assert p.flush(30) == 0
    frame = b"".join(fetch_v4(c, "big", 120_000) for c in range(8))  # 8 x ~1.9 MB

    host, port = broker.bootstrap.split(":")
    attackers = [socket.create_connection((host, int(port)), timeout=5) for _ in range(10)]
    for s in attackers:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    def send(s):
        try:
            s.settimeout(20)
            s.sendall(frame)
        except OSError:
            pass

    threads = [threading.Thread(target=send, args=(s,), daemon=True) for s in attackers]
    for t in threads:
        t.start()
    try:
        time.sleep(2)  # the broker has read what it could and its writes are stalled
        took = round_trip(broker.bootstrap, "honest", 500)
        assert took < 10, f"a working client took {took:.1f}s"
        broker.assert_alive()
        # The stalled connections are closed after connections.max.idle.ms.
        time.sleep(5)
        assert "did not read its response" in broker.log_tail()
    finally:
        for s in attackers:
            s.close()
