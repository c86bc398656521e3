#!/usr/bin/env python3
"""Does creating a topic get slower as topics accumulate? Creates N single-partition
topics in CreateTopics requests of B topics each (confluent-kafka's AdminClient) and
prints the creation rate of each batch, so the first and the last can be compared.

    python3 bench/topic_creation.py --brook-bin target/release/brook --topics 12000
"""

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic


def start(binary):
    data = tempfile.mkdtemp(prefix="brook-topics-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brook-bin", required=True)
    ap.add_argument("--topics", type=int, default=12_000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    proc, data, bootstrap = start(args.brook_bin)
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
        rates = []
        for start_index in range(0, args.topics, args.batch):
            names = [f"t{i:06d}" for i in range(start_index, min(args.topics, start_index + args.batch))]
            began = time.perf_counter()
            futures = admin.create_topics([NewTopic(n, 1, 1) for n in names],
                                          operation_timeout=120, request_timeout=120)
            for f in futures.values():
                f.result(180)
            rate = len(names) / (time.perf_counter() - began)
            rates.append(rate)
            print(f"topics {start_index:>6}..{start_index + len(names):>6}: {rate:8.0f} topics/s",
                  flush=True)
        t0 = time.perf_counter()
        md = admin.list_topics(timeout=60)
        full_ms = (time.perf_counter() - t0) * 1000
        print(f"first batch {rates[0]:.0f} topics/s, last batch {rates[-1]:.0f} topics/s "
              f"(last/first {rates[-1] / rates[0]:.2f}); full Metadata of "
              f"{len(md.topics)} topics in {full_ms:.0f} ms")
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(l for l in f if l.startswith("VmRSS")).split()[1]
        print(f"broker RSS {int(rss) / 1024:.0f} MiB")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
