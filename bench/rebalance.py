#!/usr/bin/env python3
"""Rebalance time of a 10-member group, classic and KIP-848, Brook vs Apache Kafka.

For each broker (one at a time, started as bench.py starts it: default configs) and each
group protocol, Kafka's Java consumers in one JVM (bench/RebalanceProbe.java, see its
header) join a group on a fresh 20-partition topic; then one more member joins, then one
leaves. Each step's wall time and its *unowned partition-seconds* (summed over the
partitions, the time nobody owned them: what a stop-the-world rebalance costs) are
reported, median over --reps.

    python3 bench/rebalance.py --brook-bin target/release/brook \\
        --kafka-libs bench/.cache/kafka-4.4.0/libs [--only brook] [--reps 3] [--json F]
"""

import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402  the broker launchers

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOCOLS = ("classic", "consumer")
STEPS = ("join", "grow", "leave")


def probe(cfg, broker, topic, partitions, members, protocol):
    out, _ = B.run(["java", "-Xshare:auto", "-XX:+UseSerialGC", "-Xmx512m",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", os.path.join(cfg["kafka_libs"], "*"),
                    os.path.join(HERE, "RebalanceProbe.java"), broker.bootstrap, topic,
                    str(partitions), str(members), protocol], timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def measure(cls, cfg, workdir, args):
    b = cls(cfg, workdir, 0)
    b.start()
    runs = {p: [] for p in PROTOCOLS}
    try:
        for rep in range(args.reps):
            for protocol in PROTOCOLS:
                topic = f"rebalance-{protocol}-{rep}"
                B.create_topic(cfg, b, topic, args.partitions)
                try:
                    r = probe(cfg, b, topic, args.partitions, args.members, protocol)
                except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                    r = {"error": str(e)[-500:]}
                B.log(f"{b.name} {protocol} r{rep}: {r}")
                runs[protocol].append(r)
    finally:
        b.stop()
    return runs


def median(runs, step, field):
    vals = [r[step][field] for r in runs if step in r]
    return statistics.median(vals) if vals else None


def table(results, args):
    lines = ["| protocol | step | Kafka s | Brook s | Kafka unowned partition-s "
             "| Brook unowned partition-s |", "|---|---|---:|---:|---:|---:|"]
    for protocol in PROTOCOLS:
        for step in STEPS:
            cells = []
            for field, scale in (("ms", 1000), ("unowned_partition_s", 1)):
                for broker in ("kafka", "brook"):
                    v = median(results.get(broker, {}).get(protocol, []), step, field)
                    cells.append("—" if v is None else f"{v / scale:.2f}")
            lines.append(f"| {protocol} | {step} | {cells[0]} | {cells[1]} | {cells[2]} "
                         f"| {cells[3]} |")
    return "\n".join(lines)


def main():
    args = B.scale_args(__doc__, **{
        "--reps": (int, 3, "repetitions"),
        "--members": (int, 10, "members of the group"),
        "--partitions": (int, 20, "partitions of its topic")})
    results = B.side_by_side(
        args, "bench-rebalance-", {"brook": B.Brook, "kafka": B.Kafka},
        lambda cls, cfg, workdir: measure(cls, cfg, workdir, args),
        f"{args.members} members, {args.partitions} partitions, {args.reps} repetitions")
    print(table(results, args))


if __name__ == "__main__":
    main()
