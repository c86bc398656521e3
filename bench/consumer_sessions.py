#!/usr/bin/env python3
"""A consumer of many partitions tailing a few busy ones: what its fetches cost the broker.

    python3 bench/consumer_sessions.py --brook before=/tmp/brook-before \\
        --brook after=target/release/brook --kafka-libs bench/.cache/kafka-4.4.0/libs

One broker, one topic of --partitions partitions. A consumer reads the whole topic from
its end while Kafka's ProducerPerformance writes --rate records/s of 100 B for --seconds
(its default partitioner, so a few partitions take records at a time). Each append
answers the consumer's long poll, so it fetches hundreds of times a second; without a
fetch session (KIP-227) every fetch names, reads and answers every partition. Consumers:
Kafka's Java consumer (ConsumerPerformance, in a group) and franz-go (bench/perf/franz,
every partition, no group); both use fetch sessions when the broker offers them.
Reported per run: the broker's CPU seconds while the producer ran, the consumer's CPU
seconds (JVM start included for Java), and whether the consumer got every record.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
JVM = ["-Xmx512M", "-XX:+UseG1GC"]


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def java(libs, main, args):
    return ["java", *JVM, f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2-tools.properties')}",
            "-cp", os.path.join(libs, "*"), main, *args]


def run_one(brook_bin, consumer, a, port):
    data = tempfile.mkdtemp(prefix="brook-cs-")
    broker = subprocess.Popen([brook_bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while subprocess.run([brook_bin, "cluster", "info", "-b", bootstrap], capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("broker did not start")
            time.sleep(0.1)
        subprocess.run([brook_bin, "topic", "create", "wide", "--partitions", str(a.partitions),
                        "-b", bootstrap], check=True, capture_output=True, timeout=120)
        n = a.rate * a.seconds
        if consumer == "java":
            cmd = java(a.kafka_libs, "org.apache.kafka.tools.ConsumerPerformance",
                       ["--bootstrap-server", bootstrap, "--topic", "wide", "--messages", str(n),
                        "--timeout", "60000"])
        else:
            cmd = [os.path.join(HERE, ".cache", "bin", "franz-perf"), "consume", "-b", bootstrap,
                   "-t", "wide", "-n", str(n)]
        c0 = children_cpu()
        reader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(a.settle)  # joined its group (Java) and caught up with the empty topic
        b0, t0 = cpu_s(broker.pid), time.monotonic()
        subprocess.run(java(a.kafka_libs, "org.apache.kafka.tools.ProducerPerformance",
                            ["--topic", "wide", "--num-records", str(n), "--record-size", "100",
                             "--throughput", str(a.rate), "--producer-props",
                             f"bootstrap.servers={bootstrap}", "acks=1"]),
                       check=True, capture_output=True, timeout=a.seconds + 120)
        b1, t1 = cpu_s(broker.pid), time.monotonic()
        out, err = reader.communicate(timeout=120)
        c1 = children_cpu()
        ok = reader.returncode == 0
        return {"broker_cpu_s": round(b1 - b0, 2), "wall_s": round(t1 - t0, 2),
                "clients_cpu_s": round(c1 - c0, 2), "consumer_ok": ok,
                "tail": (out + err).strip().splitlines()[-1:] if not ok else []}
    finally:
        broker.kill()
        broker.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brook", action="append", required=True, help="LABEL=PATH of a brook binary")
    ap.add_argument("--kafka-libs", default=os.path.join(HERE, ".cache", "kafka-4.4.0", "libs"))
    ap.add_argument("--partitions", type=int, default=10_000)
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--consumers", default="java,franz-go")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    results = []
    port = 19400
    for rep in range(a.reps):
        for consumer in a.consumers.split(","):
            for spec in a.brook:
                label, path = spec.split("=", 1)
                port += 1
                r = run_one(path, consumer, a, port)
                r.update(binary=label, consumer=consumer, rep=rep)
                print(json.dumps(r), flush=True)
                results.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"partitions": a.partitions, "rate": a.rate, "seconds": a.seconds,
                       "runs": results}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
