#!/usr/bin/env python3
"""Many idle connections, Brook vs Apache Kafka (issue 19's measure).

Opens N TCP connections to the broker (10,000 by default), each sending one
ApiVersions request and reading its answer, then holds them idle. Reported: the time
to open and serve them all, the broker's RSS before and after (so memory per
connection), its CPU use over 10 idle seconds with them open, and the ApiVersions
round trip of a fresh connection while they are held (is everyone else still served?).

    bench/connections.py --brook-bin target/release/brook \\
        --kafka-libs bench/.cache/kafka-4.4.0/libs [--only brook] [--connections 10000]
"""

import os
import resource
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  the broker launchers


def api_versions(correlation_id):
    client = b"bench"
    payload = struct.pack(">hhi", 18, 0, correlation_id) + struct.pack(">h", len(client)) + client
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def round_trip(port):
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(api_versions(1))
        (n,) = struct.unpack(">i", recv_exact(s, 4))
        recv_exact(s, n)
    return (time.perf_counter() - t0) * 1000


def phase(cls, cfg, workdir, count):
    b = cls(cfg, workdir, 0)
    b.start()
    out = {"connections": count}
    socks = []
    try:
        time.sleep(2)
        out["rss_before_mib"] = bench.proc_status(b.proc.pid, "VmRSS")
        out["round_trip_before_ms"] = round_trip(b.port)
        t0 = time.perf_counter()
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
            s.sendall(api_versions(i))
            socks.append(s)
            if len(socks) % 500 == 0:
                for s2 in socks[-500:]:
                    (n,) = struct.unpack(">i", recv_exact(s2, 4))
                    recv_exact(s2, n)
        for s2 in socks[len(socks) - len(socks) % 500:]:
            (n,) = struct.unpack(">i", recv_exact(s2, 4))
            recv_exact(s2, n)
        out["open_and_serve_s"] = time.perf_counter() - t0
        time.sleep(2)
        out["rss_after_mib"] = bench.proc_status(b.proc.pid, "VmRSS")
        out["kib_per_connection"] = (out["rss_after_mib"] - out["rss_before_mib"]) * 1024 / count
        cpu0 = bench.proc_cpu_seconds(b.proc.pid)
        time.sleep(10)
        out["idle_cpu_s_per_10s"] = bench.proc_cpu_seconds(b.proc.pid) - cpu0
        out["round_trip_held_ms"] = round_trip(b.port)
    finally:
        for s in socks:
            s.close()
        b.stop()
    return out


def main():
    args = bench.scale_args(__doc__, **{
        "--connections": (int, 10_000, "connections")})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.connections + 1000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    bench.side_by_side(
        args, "bench-connections-", {"brook": bench.Brook, "kafka": bench.Kafka},
        lambda cls, cfg, workdir: phase(cls, cfg, workdir, args.connections),
        f"{args.connections} idle connections")


if __name__ == "__main__":
    main()
