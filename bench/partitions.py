#!/usr/bin/env python3
"""Many partitions on one broker, Brook vs Apache Kafka (issue 19's measure).

For each broker, with librdkafka (confluent-kafka) as the client:

1. Creation: T topics of P partitions each (10,000 partitions by default) in
   CreateTopics requests of 10 topics, timed until every request has answered.
2. Full Metadata: a raw Metadata v12 request for all topics, timed from send to the
   last byte of the response (median of 5), so no client parsing is counted.
3. Memory and idle CPU: RSS after creation, and CPU seconds used over 10 idle seconds.
4. Produce one record to every partition, then read them all back (assign + consume).
5. kill -9, restart on the same data, and time until (a) Metadata lists every
   partition with a leader, and (b) one record was produced to each of 100 partitions.
   RSS after the restart.

    bench/partitions.py --brook-bin target/release/brook \\
        --kafka-libs bench/.cache/kafka-4.4.0/libs [--only brook]

Load is bounded: each phase has a time limit and the brokers bind to 127.0.0.1.
"""

import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  the broker launchers


def metadata_request(correlation_id):
    """Metadata v12 for all topics (header v2, flexible)."""
    client = b"bench"
    header = struct.pack(">hhi", 3, 12, correlation_id) + struct.pack(">h", len(client)) + client + b"\x00"
    # topics = null, allow_auto_topic_creation = false, include_topic_authorized_operations = false
    body = b"\x00\x00\x00\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def full_metadata_ms(port, runs=5):
    times, size = [], 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        for i in range(runs):
            t0 = time.perf_counter()
            s.sendall(metadata_request(i + 1))
            (n,) = struct.unpack(">i", recv_exact(s, 4))
            recv_exact(s, n)
            times.append((time.perf_counter() - t0) * 1000)
            size = n
    times.sort()
    return times[len(times) // 2], size


def create(admin, names, partitions):
    for i in range(0, len(names), 10):
        batch = names[i:i + 10]
        fs = admin.create_topics([NewTopic(n, partitions, 1) for n in batch],
                                 operation_timeout=120, request_timeout=120)
        for f in fs.values():
            f.result(180)


def all_led(admin, names, partitions):
    md = admin.list_topics(timeout=60)
    for n in names:
        t = md.topics.get(n)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        if any(p.leader < 0 for p in t.partitions.values()):
            return False
    return True


def produce_all(bootstrap, targets, timeout, acks="1"):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": acks,
                  "log_level": 2, "message.timeout.ms": int(timeout * 1000)})
    failed = []

    def done(err, _msg):
        if err is not None:
            failed.append(err)

    for topic, part in targets:
        while True:
            try:
                p.produce(topic, value=b"x" * 100, partition=part, on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    if left or failed:
        raise RuntimeError(f"{left} undelivered, {len(failed)} failed: {failed[:3]}")


def consume_all(bootstrap, targets, timeout):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-partitions",
                  "enable.auto.commit": False, "log_level": 2,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(t, p, 0) for t, p in targets])
    got, deadline = 0, time.monotonic() + timeout
    while got < len(targets) and time.monotonic() < deadline:
        for m in c.consume(10_000, 0.5):
            if m.error() is None:
                got += 1
    c.close()
    return got


def phase(cls, cfg, workdir, topics, partitions):
    names = [f"p{i:04d}" for i in range(topics)]
    targets = [(n, p) for n in names for p in range(partitions)]
    b = cls(cfg, workdir, 0)
    out = {"partitions": len(targets)}
    b.start()
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap, "log_level": 2})
        t0 = time.perf_counter()
        create(admin, names, partitions)
        out["create_s"] = time.perf_counter() - t0
        deadline = time.monotonic() + 120
        while not all_led(admin, names, partitions):
            if time.monotonic() > deadline:
                raise RuntimeError("partitions not all led after 120 s")
            time.sleep(0.2)
        out["create_until_led_s"] = time.perf_counter() - t0
        out["metadata_ms"], out["metadata_bytes"] = full_metadata_ms(b.port)
        out["rss_after_create_mib"] = bench.proc_status(b.proc.pid, "VmRSS")
        out["open_fds"] = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
        cpu0 = bench.proc_cpu_seconds(b.proc.pid)
        time.sleep(10)
        out["idle_cpu_s_per_10s"] = bench.proc_cpu_seconds(b.proc.pid) - cpu0
        t0 = time.perf_counter()
        produce_all(b.bootstrap, targets, 180)
        out["produce_each_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["consumed"] = consume_all(b.bootstrap, targets, 180)
        out["consume_each_s"] = time.perf_counter() - t0
        out["rss_after_load_mib"] = bench.proc_status(b.proc.pid, "VmRSS")
        # kill -9 and restart on the same data.
        os.killpg(b.proc.pid, signal.SIGKILL)
        b.proc.wait()
        t0 = time.perf_counter()
        log = open(b.logfile, "ab")
        b.proc = subprocess.Popen(b.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                  env=b.env(), start_new_session=True)
        log.close()
        bench.CHILDREN.append(b.proc)
        bench.wait_until(lambda: bench.api_versions_answers(b.port), b.proc,
                         f"{b.name} ApiVersions after restart", b.logfile, timeout=300)
        out["restart_api_s"] = time.perf_counter() - t0
        admin = AdminClient({"bootstrap.servers": b.bootstrap, "log_level": 2})
        deadline = time.monotonic() + 180
        while True:
            try:
                if all_led(admin, names, partitions):
                    break
            except Exception:  # noqa: BLE001  the broker may still be loading
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("not all partitions led 180 s after restart")
            time.sleep(0.1)
        out["restart_all_led_s"] = time.perf_counter() - t0
        produce_all(b.bootstrap, random.Random(1).sample(targets, 100), 120)
        out["restart_serving_s"] = time.perf_counter() - t0
        out["rss_after_restart_mib"] = bench.proc_status(b.proc.pid, "VmRSS")
    finally:
        b.stop()
    return out


def main():
    args = bench.scale_args(__doc__, **{
        "--topics": (int, 100, "topics"),
        "--partitions": (int, 100, "partitions per topic")})
    bench.side_by_side(
        args, "bench-partitions-", {"brook": bench.Brook, "kafka": bench.Kafka},
        lambda cls, cfg, workdir: phase(cls, cfg, workdir, args.topics, args.partitions),
        f"{args.topics} topics x {args.partitions} partitions")


if __name__ == "__main__":
    main()
