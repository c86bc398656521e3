#!/usr/bin/env python3
"""Consume throughput of one partition, Brook and Apache Kafka in turn, long enough to
read past the noise of the full matrix's short consume cells.

For each broker (Brook, then Kafka, twice): one 1-partition topic, N records of SIZE
bytes produced once with franz-perf, then read in full REPS times by each consumer
driver (franz-perf and rdkafka_perf, bench/perf/). Prints each read and the medians.

    python3 bench/consume_ab.py 1024 1000000 3
    python3 bench/consume_ab.py 100 5000000 3

Needs target/release/brook, the Kafka jars in bench/.cache/kafka-4.4.0/libs and the
drivers in bench/.cache/bin (bench/run.sh builds them). Brokers bind to 127.0.0.1.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402

SIZE, N = int(sys.argv[1]), int(sys.argv[2])
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
BIN = os.path.join(HERE, ".cache", "bin")
cfg = {"brook_bin": os.path.join(HERE, "..", "target", "release", "brook"),
       "kafka_libs": os.path.join(HERE, ".cache", "kafka-4.4.0", "libs"),
       "keep_data": False, "idle_seconds": 0}
work = tempfile.mkdtemp(prefix="bench-consume-ab-")
res = {}
for rnd in range(2):
    for cls in (B.Brook, B.Kafka):
        b = cls(cfg, work, rnd)
        b.start()
        try:
            topic = f"ab{rnd}"
            from confluent_kafka.admin import AdminClient, NewTopic
            admin = AdminClient({"bootstrap.servers": b.bootstrap})
            for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
                f.result()
            B.run([os.path.join(BIN, "franz-perf"), "produce", "-b", b.bootstrap, "-t", topic,
                   "-n", str(N), "-s", str(SIZE), "-a", "1"], timeout=600)
            for rep in range(REPS):
                for drv in ("franz-perf", "rdkafka_perf"):
                    out, _ = B.run([os.path.join(BIN, drv), "consume", "-b", b.bootstrap,
                                    "-t", topic, "-n", str(N)], timeout=600)
                    j = json.loads(out.strip().splitlines()[-1])
                    res.setdefault((b.name, drv), []).append(j["records_per_sec"])
                    print(f"{b.name} {drv} read {rep}: {j['records_per_sec']:,.0f} records/s "
                          f"({j['records_per_sec'] * SIZE / 1e6:,.0f} MB/s)", flush=True)
        finally:
            b.stop()
for (broker, drv), v in sorted(res.items()):
    print(f"{broker} {drv}: median {sorted(v)[len(v) // 2]:,.0f} records/s of {len(v)} reads")
