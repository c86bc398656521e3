#!/usr/bin/env python3
"""Log cleaner, Brook vs Apache Kafka on the same data (issue 16's measure).

Two measurements per broker, with librdkafka (confluent-kafka) as the client:

1. Cleaner throughput. A topic is filled with keyed records under
   cleanup.policy=delete (nothing is cleaned), then switched to compact with
   min.cleanable.dirty.ratio=0.01. We time from the switch until the partition's
   files stop shrinking (sampled on disk every 50 ms) and report the dirty bytes
   cleaned per second; each broker's own cleaner log line is reported beside it.
2. Produce latency with the cleaner running. A producer sends keyed 1 KiB records at
   a fixed rate (acks=1) into a topic with 1 MiB segments, once with
   cleanup.policy=delete (no cleaning) and once with compact (a pass every time a
   segment seals), and reports p50/p99/p99.9 of the delivery latency.

    bench/cleaner.py --brook-bin target/release/brook --kafka-libs bench/.cache/kafka-4.x/libs

bench/run.sh fetches Kafka's jars into bench/.cache; reuse them here.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  the broker launchers

CLEANER = {
    "log.cleaner.backoff.ms": "100",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": str(128 * 1024 * 1024),
}


class Kafka(bench.Kafka):
    def prepare(self):
        super().prepare()
        with open(self.props, "a") as f:
            for k, v in CLEANER.items():
                f.write(f"{k}={v}\n")


class Brook(bench.Brook):
    def command(self):
        cmd = super().command()
        for k, v in CLEANER.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, topic, configs):
    fs = admin(broker).create_topics([NewTopic(topic, 1, 1, config=configs)])
    fs[topic].result(30)


def alter(broker, topic, configs):
    res = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()])
    admin(broker).incremental_alter_configs([res])[res].result(30)


def partition_bytes(broker, topic):
    """Bytes of the partition's segment files on disk (Kafka: data/<t>-0, Brook: its
    own layout; both keep `.log` files under a directory named after the topic)."""
    total = 0
    for root, _dirs, files in os.walk(broker.data):
        if topic not in root:
            continue
        for f in files:
            if f.endswith(".log"):
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    return total


def fill(broker, topic, records, keys, size):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20,
                  "batch.size": 256 * 1024, "compression.type": "none", "acks": "1",
                  "queue.buffering.max.messages": 200_000})
    value = os.urandom(size)
    errors = []

    def cb(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(records):
        while True:
            try:
                p.produce(topic, key=b"key-%08d" % (i % keys), value=value, partition=0,
                          on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(120)
    if errors:
        raise bench.BenchError(f"{len(errors)} records failed: {errors[0]}")


def cleaner_throughput(broker, records, keys, size):
    topic = "clean-throughput"
    create(broker, topic, {"cleanup.policy": "delete", "segment.bytes": str(16 * 1024 * 1024),
                           "retention.ms": "-1"})
    fill(broker, topic, records, keys, size)
    # Roll the active segment so everything written is cleanable: one more segment's
    # worth of a single key (it compacts to one record).
    before = partition_bytes(broker, topic)
    t0 = time.monotonic()
    alter(broker, topic, {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
    last_change, last = t0, before
    deadline = t0 + 600
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_bytes = partition_bytes(broker, topic)
        if now_bytes != last:
            last, last_change = now_bytes, time.monotonic()
        elif last < before and time.monotonic() - last_change > 5:
            break
    seconds = last_change - t0
    return {
        "dirty_mib": before / 2**20,
        "after_mib": last / 2**20,
        "seconds_to_clean": seconds,
        "mib_per_s": (before / 2**20) / seconds if seconds > 0 else None,
        "broker_log": cleaner_log_lines(broker),
    }


def cleaner_log_lines(broker):
    try:
        with open(broker.logfile, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if "compacted log" in line or re.search(r"MB/sec|cleaned log|Log cleaner thread", line):
            out.append(line.strip()[:300])
    return out[-6:]


def produce_latency(broker, topic, policy, rate, seconds, size):
    create(broker, topic, {"cleanup.policy": policy, "segment.bytes": str(1024 * 1024),
                           "min.cleanable.dirty.ratio": "0.01", "retention.ms": "-1"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": "1"})
    value = os.urandom(size)
    latencies = []

    def cb(err, _msg, sent):
        if err is None:
            latencies.append(time.monotonic() - sent)

    interval = 1.0 / rate
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        due = start + i * interval
        wait = due - time.monotonic()
        if wait > 0:
            p.poll(wait)
        sent = time.monotonic()
        p.produce(topic, key=b"k%05d" % (i % 2000), value=value, partition=0,
                  on_delivery=lambda err, msg, sent=sent: cb(err, msg, sent))
        i += 1
        p.poll(0)
    p.flush(60)
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"records": len(latencies), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "p999_ms": pct(0.999), "max_ms": latencies[-1] * 1000}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brook-bin", required=True)
    ap.add_argument("--kafka-libs", required=True)
    ap.add_argument("--brokers", default="brook,kafka")
    ap.add_argument("--records", type=int, default=400_000)
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rate", type=int, default=5_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    cfg = {"brook_bin": args.brook_bin, "kafka_libs": args.kafka_libs, "idle_seconds": 0,
           "keep_data": False}
    results = {}
    workdir = tempfile.mkdtemp(prefix="brook-cleaner-bench-")
    try:
        for name in args.brokers.split(","):
            cls = {"brook": Brook, "kafka": Kafka}[name]
            broker = cls(cfg, workdir, 0)
            bench.log(f"{name}: starting")
            broker.start()
            try:
                r = {}
                bench.log(f"{name}: cleaner throughput ({args.records} records of {args.size} B, {args.keys} keys)")
                r["throughput"] = cleaner_throughput(broker, args.records, args.keys, args.size)
                for policy in ("delete", "compact"):
                    bench.log(f"{name}: produce latency at {args.rate}/s, cleanup.policy={policy}")
                    r[f"latency_{policy}"] = produce_latency(
                        broker, f"latency-{policy}", policy, args.rate, args.seconds, 1024)
                r["cleaner_log"] = cleaner_log_lines(broker)
                results[name] = r
            finally:
                broker.stop()
    finally:
        bench.cleanup()
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
