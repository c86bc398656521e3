#!/usr/bin/env python3
"""A consumer of many partitions tailing a few busy ones: what its fetches cost the broker.

    python3 bench/consumer_sessions.py --brook-bin target/release/brook \\
        --kafka-libs bench/.cache/kafka-4.4.0/libs [--only brook] [--json F]

One broker, and per consumer a fresh topic of --partitions partitions (10,000). The
consumer reads the topic from its end while Kafka's ProducerPerformance writes --rate
records/s of 100 B for --seconds, acks=1 (its default partitioner: a few partitions take
records at a time). Each append answers the consumer's long poll, so it fetches hundreds
of times a second; without an incremental fetch session (KIP-227) every one of those
fetches names, reads and answers every partition. Consumers: Kafka's Java consumer
(ConsumerPerformance, in a group) and franz-go (bench/perf/franz: every partition, no
group); both fetch in sessions when the broker offers them. Reported: the broker's CPU
seconds while the producer ran, the consumer process's own CPU seconds (JVM start and
group join included for Java), and that it got every record.
"""

import os
import subprocess
import sys
import time

from confluent_kafka.admin import AdminClient, NewPartitions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  the broker launchers
from partitions import all_led, create  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# The Java tools (producer, consumer) also drive Brook, so --only brook needs them too.
DEFAULT_LIBS = os.path.join(HERE, ".cache", "kafka-4.4.0", "libs")


def java(cfg, main, args):
    return ["java", *bench.KAFKA_TOOL_HEAP, *bench.JVM_PERF,
            f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2-tools.properties')}",
            "-cp", os.path.join(cfg["kafka_libs"] or DEFAULT_LIBS, "*"), main, *args]


def tail(cfg, b, consumer, topic, a):
    n = a.rate * a.seconds
    if consumer == "java":
        cmd = java(cfg, "org.apache.kafka.tools.ConsumerPerformance",
                   ["--bootstrap-server", b.bootstrap, "--topic", topic, "--messages", str(n),
                    "--timeout", "60000"])
    else:
        cmd = [os.path.join(HERE, ".cache", "bin", "franz-perf"), "consume", "-b", b.bootstrap,
               "-t", topic, "-n", str(n)]
    reader = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(a.settle)  # joined its group (Java) and fetching at the empty topic's end
    cpu0, t0 = bench.proc_cpu_seconds(b.proc.pid), time.monotonic()
    subprocess.run(java(cfg, "org.apache.kafka.tools.ProducerPerformance",
                        ["--topic", topic, "--num-records", str(n), "--record-size", "100",
                         "--throughput", str(a.rate), "--producer-props",
                         f"bootstrap.servers={b.bootstrap}", "acks=1"]),
                   check=True, capture_output=True, timeout=a.seconds + 120)
    cpu1, t1 = bench.proc_cpu_seconds(b.proc.pid), time.monotonic()
    deadline = time.monotonic() + 90
    while True:
        pid, status, usage = os.wait4(reader.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            reader.kill()
            raise RuntimeError(f"{consumer}: did not read all {n} records within 90 s")
        time.sleep(0.1)
    reader.returncode = os.waitstatus_to_exitcode(status)
    return {"broker_cpu_s": round(cpu1 - cpu0, 2), "producer_wall_s": round(t1 - t0, 2),
            "consumer_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "consumer_read_all": reader.returncode == 0}


def phase(cls, cfg, workdir, a):
    """A fresh broker per consumer: two topics of 10,000 partitions would need more
    open files than the box's limit (20,000) on either broker."""
    out = {"partitions": a.partitions, "rate": a.rate, "seconds": a.seconds}
    for i, consumer in enumerate(a.consumers.split(",")):
        b = cls(cfg, workdir, i)
        b.start()
        try:
            admin = AdminClient({"bootstrap.servers": b.bootstrap, "log_level": 2})
            # Kafka refuses a CreateTopics of 10,000 partitions at once (its controller
            # takes at most 10,000 records per operation): grow the topic in steps.
            step = min(a.partitions, 5000)
            create(admin, ["wide"], step)
            for total in range(2 * step, a.partitions + step, step):
                fs = admin.create_partitions([NewPartitions("wide", min(total, a.partitions))])
                for f in fs.values():
                    f.result(180)
            deadline = time.monotonic() + 180
            while not all_led(admin, ["wide"], a.partitions):
                if time.monotonic() > deadline:
                    raise RuntimeError("partitions not all led after 180 s")
                time.sleep(0.5)
            out[consumer] = tail(cfg, b, consumer, "wide", a)
        finally:
            b.stop()
    return out


def main():
    a = bench.scale_args(__doc__, **{
        "--partitions": (int, 10_000, "partitions of the topic"),
        "--rate": (int, 20_000, "records/s produced"),
        "--seconds": (int, 10, "seconds of producing"),
        "--settle": (float, 8.0, "seconds between the consumer's start and the producer's"),
        "--consumers": (str, "java,franz-go", "consumers to run, comma-separated")})
    bench.side_by_side(a, "bench-consumer-sessions-", {"brook": bench.Brook, "kafka": bench.Kafka},
                       lambda cls, cfg, workdir: phase(cls, cfg, workdir, a),
                       f"a consumer of {a.partitions} partitions tailing {a.rate} records/s")


if __name__ == "__main__":
    main()
