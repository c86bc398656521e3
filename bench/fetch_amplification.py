#!/usr/bin/env python3
"""Fetch amplification: does a flood of pathological long-poll fetches slow others down?

N connections each park Fetch requests that list one partition of topic `amp` R times
(100,000 by default: a 1.6 MB request), re-sending as soon as one returns. Meanwhile a
producer (librdkafka through confluent-kafka, acks=1, linger.ms=0, one record at a time)
writes to an unrelated topic `lat` and records each record's round trip. The figure is
that producer's latency without and with the flood; the broker's CPU time over each phase
is reported when the broker is started here (--brook-bin) or its pid is given.

    python3 bench/fetch_amplification.py --brook-bin target/release/brook
    python3 bench/fetch_amplification.py --bootstrap 127.0.0.1:9092 --pid 1234

Fetch frames are built by hand (Fetch v4), since no client sends such a request.
"""

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

FETCH = 1


def fetch_v4(correlation, topic, partition, repeats, offset, max_wait_ms):
    """A Fetch v4 request frame listing (topic, partition) `repeats` times."""
    client = b"fetch-amplification"
    header = struct.pack(">hhih", FETCH, 4, correlation, len(client)) + client
    name = topic.encode()
    one = struct.pack(">iqi", partition, offset, 1 << 20)
    body = (
        struct.pack(">iiiib", -1, max_wait_ms, 1, 50 << 20, 0)
        + struct.pack(">ih", 1, len(name))
        + name
        + struct.pack(">i", repeats)
        + one * repeats
    )
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def flood(host, port, topic, repeats, max_wait_ms, stop, counts, errors):
    """One connection re-sending the amplified fetch until `stop` is set."""
    try:
        with socket.create_connection((host, port)) as sock:
            correlation = 0
            while not stop.is_set():
                correlation += 1
                # Offset 0 of an empty partition: parks until max_wait_ms.
                sock.sendall(fetch_v4(correlation, topic, 0, repeats, 0, max_wait_ms))
                (size,) = struct.unpack(">i", recv_exact(sock, 4))
                body = recv_exact(sock, size)
                (got,) = struct.unpack(">i", body[:4])
                if got != correlation:
                    raise RuntimeError(f"correlation {got} != {correlation}")
                counts.append(size)
    except Exception as e:  # reported, not raised: the measurement shows what it did
        errors.append(repr(e))


def cpu_seconds(pid):
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce_latencies(bootstrap, topic, seconds):
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0, "enable.idempotence": False,
         "log_level": 4}
    )
    # Connect and learn the leader before timing.
    producer.produce(topic, b"warm-up")
    producer.flush(10)
    out = []
    done = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done.clear()
        start = time.perf_counter()
        producer.produce(topic, b"x" * 100, on_delivery=lambda err, msg: done.append(err))
        while not done:
            producer.poll(0.0005)
        if done[0] is not None:
            raise RuntimeError(f"produce failed: {done[0]}")
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(ms):
    ms = sorted(ms)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    return {
        "records": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(pick(0.99), 3),
        "p999_ms": round(pick(0.999), 3),
        "max_ms": round(ms[-1], 3),
    }


def start_brook(binary):
    data = tempfile.mkdtemp(prefix="brook-amp-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, data, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("brook did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--brook-bin", help="start this brook binary on a free port (data in a temp dir)")
    ap.add_argument("--pid", type=int, help="broker pid, for its CPU time")
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=100_000, help="times the partition is listed")
    ap.add_argument("--max-wait-ms", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    args = ap.parse_args()

    proc = data = None
    bootstrap, pid = args.bootstrap, args.pid
    if args.brook_bin:
        proc, data, bootstrap = start_brook(args.brook_bin)
        pid = proc.pid
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic("amp", 1, 1), NewTopic("lat", 1, 1)]).values():
            try:
                f.result()
            except Exception as e:
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    raise
        host, port = bootstrap.rsplit(":", 1)

        cpu0 = cpu_seconds(pid)
        quiet = produce_latencies(bootstrap, "lat", args.seconds)
        cpu1 = cpu_seconds(pid)

        stop, counts, errors = threading.Event(), [], []
        threads = [
            threading.Thread(
                target=flood,
                args=(host, int(port), "amp", args.repeats, args.max_wait_ms, stop, counts, errors),
                daemon=True,
            )
            for _ in range(args.connections)
        ]
        for t in threads:
            t.start()
        time.sleep(1.0)  # let every connection park its first fetch
        cpu2 = cpu_seconds(pid)
        loaded = produce_latencies(bootstrap, "lat", args.seconds)
        cpu3 = cpu_seconds(pid)
        stop.set()
        for t in threads:
            t.join(args.max_wait_ms / 1000 + 10)

        result = {
            "connections": args.connections,
            "repeats": args.repeats,
            "request_bytes": len(fetch_v4(1, "amp", 0, args.repeats, 0, args.max_wait_ms)),
            "fetch_responses": len(counts),
            "fetch_errors": errors[:3],
            "quiet": summary(quiet),
            "flooded": summary(loaded),
        }
        if pid is not None:
            result["broker_cpu_s_quiet"] = round(cpu1 - cpu0, 2)
            result["broker_cpu_s_flooded"] = round(cpu3 - cpu2, 2)
        for k, v in result.items():
            print(f"{k}: {v}")
        return 1 if errors else 0
    finally:
        if proc:
            proc.kill()
            proc.wait()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
