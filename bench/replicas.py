#!/usr/bin/env python3
"""30,000 replicas on a 3-node cluster, Brook vs Apache Kafka (issue 19's measure).

The cluster variant of bench/partitions.py: three nodes, each a broker and a controller
voter (as bench/latency.py starts them), and T topics of P partitions with replication
factor 3 (100 x 100 = 10,000 partitions, 30,000 replicas, by default). For each broker,
with librdkafka (confluent-kafka) as the client:

1. Creation: CreateTopics requests of 10 topics, timed until every request has answered,
   then until every partition has a leader and all three replicas in its ISR.
2. Full Metadata: a raw Metadata v12 request for all topics to one node (median of 5).
3. Memory and idle CPU of each node.
4. One record produced to every partition with acks=all, then all read back.
   Also, before the topics are created and again after: acks=all throughput to one
   hot 1-partition topic (librdkafka's rdkafka_perf, 100 B and 1 KiB records), so
   work that grows with the partitions that are idle shows as a drop.
5. kill -9 of one node, 5 s down, restart: time until every partition's ISR is full again.
6. kill -9 of all three, restart: time until every partition is led, and until one
   record (acks=all) was produced to each of 100 random partitions.

    bench/replicas.py --brook-bin target/release/brook \\
        --kafka-libs bench/.cache/kafka-4.4.0/libs [--only brook] [--topics 100 --partitions 100]

Every phase has a time limit (--limit, default 300 s); a phase past it is recorded as
such and the run goes on to the next broker. Brokers bind to 127.0.0.1 only.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from confluent_kafka.admin import AdminClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402  the broker launchers
import latency as L  # noqa: E402  the 3-node clusters
import partitions as P  # noqa: E402  the single-broker measure's client steps


class Late(Exception):
    """A phase past its time limit."""


def wait_for(pred, limit, what):
    deadline = time.monotonic() + limit
    while True:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001  a node may still be loading
            pass
        if time.monotonic() > deadline:
            raise Late(f"{what}: not within {limit} s")
        time.sleep(0.2)


def fully_replicated(admin, names, partitions, replicas=3):
    md = admin.list_topics(timeout=60)
    for n in names:
        t = md.topics.get(n)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        for p in t.partitions.values():
            if p.leader < 0 or len(p.isrs) < replicas:
                return False
    return True


def create(admin, names, partitions, limit):
    for i in range(0, len(names), 10):
        fs = admin.create_topics([P.NewTopic(n, partitions, 3) for n in names[i:i + 10]],
                                 operation_timeout=limit, request_timeout=limit)
        for f in fs.values():
            f.result(limit)


def restart(node):
    log = open(node.logfile, "ab")
    node.proc = subprocess.Popen(node.command(), stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL, env=node.env(),
                                 start_new_session=True)
    log.close()
    B.CHILDREN.append(node.proc)


def kill9(node):
    os.killpg(node.proc.pid, signal.SIGKILL)
    node.proc.wait()


def nodes_figures(cluster, out, label):
    out[f"rss_{label}_mib"] = [B.proc_status(n.proc.pid, "VmRSS") for n in cluster.nodes]
    out[f"rss_{label}_total_mib"] = sum(out[f"rss_{label}_mib"])


def phase(cls, cfg, workdir, topics, partitions, limit, keep_logs=None):
    names = [f"r{i:04d}" for i in range(topics)]
    targets = [(n, p) for n in names for p in range(partitions)]
    cluster = cls(cfg, workdir, 0)
    out = {"partitions": len(targets), "replicas": 3 * len(targets)}
    out.update(cluster.start())
    try:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 2})
        hot_partition(cluster, admin, "hot-before", out, "hot_alone")
        t0 = time.perf_counter()
        create(admin, names, partitions, limit)
        out["create_s"] = time.perf_counter() - t0
        wait_for(lambda: fully_replicated(admin, names, partitions), limit,
                 "every partition led with a full ISR")
        out["create_until_full_isr_s"] = time.perf_counter() - t0
        B.log(f"{cluster.name}: every partition led with a full ISR after "
              f"{out['create_until_full_isr_s']:.1f} s")
        out["metadata_ms"], out["metadata_bytes"] = P.full_metadata_ms(cluster.nodes[0].port)
        nodes_figures(cluster, out, "after_create")
        out["open_fds"] = [len(os.listdir(f"/proc/{n.proc.pid}/fd")) for n in cluster.nodes]
        cpu0 = [B.proc_cpu_seconds(n.proc.pid) for n in cluster.nodes]
        time.sleep(10)
        out["idle_cpu_s_per_10s"] = [B.proc_cpu_seconds(n.proc.pid) - c
                                     for n, c in zip(cluster.nodes, cpu0)]
        hot_partition(cluster, admin, "hot-after", out, "hot_with_all")
        t0 = time.perf_counter()
        P.produce_all(cluster.bootstrap, targets, limit, acks="all")
        out["produce_each_acks_all_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["consumed"] = P.consume_all(cluster.bootstrap, targets, limit)
        out["consume_each_s"] = time.perf_counter() - t0
        nodes_figures(cluster, out, "after_load")

        # One node down for 5 s, then back: until every ISR is full again.
        third = cluster.nodes[2]
        kill9(third)
        time.sleep(5)
        t0 = time.perf_counter()
        restart(third)
        wait_for(lambda: fully_replicated(admin, names, partitions), limit,
                 "full ISRs after one node's restart")
        out["one_node_restart_full_isr_s"] = time.perf_counter() - t0

        # The whole cluster killed and restarted.
        for n in cluster.nodes:
            kill9(n)
        t0 = time.perf_counter()
        for n in cluster.nodes:
            restart(n)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 2})
        wait_for(lambda: P.all_led(admin, names, partitions), limit,
                 "every partition led after the cluster's restart")
        out["cluster_restart_all_led_s"] = time.perf_counter() - t0
        P.produce_all(cluster.bootstrap, random.Random(1).sample(targets, 100), limit,
                      acks="all")
        out["cluster_restart_serving_s"] = time.perf_counter() - t0
        nodes_figures(cluster, out, "after_restart")
    except Late as e:
        out["late"] = str(e)
        B.log(f"{cluster.name}: {e}")
    except Exception as e:  # noqa: BLE001  a failed phase: keep the figures so far
        out["failed"] = f"{type(e).__name__}: {e}"[:500]
        B.log(f"{cluster.name}: {out['failed']}")
    finally:
        cluster.stop()
        out["log_lines"] = log_lines(cluster)
        if keep_logs:
            os.makedirs(keep_logs, exist_ok=True)
            for i, n in enumerate(cluster.nodes):
                shutil.copyfile(n.logfile, os.path.join(keep_logs, f"node{i}.log"))
    return out


HOT_CELLS = ((100, 2_000_000), (1024, 500_000))


def hot_partition(cluster, admin, topic, out, key):
    """acks=all throughput of rdkafka_perf to a new 1-partition topic (replication 3),
    with the nodes' CPU seconds over the run: {size: {records_per_sec, cpu_s}}."""
    from confluent_kafka.admin import NewTopic
    perf = os.path.join(B.HERE, ".cache", "bin", "rdkafka_perf")
    if not os.path.exists(perf):
        import perf_clients
        perf = perf_clients.build(B.log).get("librdkafka", "")
    if not os.path.isabs(perf):
        out[key] = f"rdkafka_perf not built: {perf}"
        return
    for f in admin.create_topics([NewTopic(topic, num_partitions=1,
                                           replication_factor=3)]).values():
        f.result()
    wait_for(lambda: fully_replicated(admin, [topic], 1), 60, f"{topic} fully replicated")
    cells = {}
    for size, records in HOT_CELLS:
        cpu0 = sum(B.proc_cpu_seconds(n.proc.pid) for n in cluster.nodes)
        r = B.run([perf, "produce", "-b", cluster.bootstrap, "-t", topic, "-n", str(records),
                   "-s", str(size), "-a", "all"], timeout=300)[0]
        cpu = sum(B.proc_cpu_seconds(n.proc.pid) for n in cluster.nodes) - cpu0
        j = json.loads(r.strip().splitlines()[-1])
        cells[str(size)] = {"records_per_sec": j["records_per_sec"], "cpu_s": cpu,
                            "errors": j.get("errors", 0)}
        B.log(f"{cluster.name}: {key} {size} B: {j['records_per_sec']:,.0f} records/s, "
              f"nodes' CPU {cpu:.2f} s")
    out[key] = cells


def log_lines(cluster):
    """How often each node logged the events that tell why a phase was slow."""
    marks = {"isr_requests": "asking the controller to change the ISR",
             "fenced": "fencing broker that stopped heartbeating"}
    counts = {k: [] for k in marks}
    for n in cluster.nodes:
        try:
            with open(n.logfile, errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        for k, m in marks.items():
            counts[k].append(text.count(m))
    return counts


def main():
    args = B.scale_args(__doc__, **{
        "--topics": (int, 100, "topics"),
        "--partitions": (int, 100, "partitions per topic"),
        "--limit": (int, 300, "seconds per phase"),
        "--keep-logs": (str, None, "copy the nodes' logs into this directory")})
    B.side_by_side(
        args, "bench-replicas-", {"brook": L.BrookCluster, "kafka": L.KafkaCluster},
        lambda cls, cfg, workdir: phase(
            cls, cfg, workdir, args.topics, args.partitions, args.limit,
            args.keep_logs and os.path.join(args.keep_logs, cls.name)),
        f"3 nodes, {args.topics} topics x {args.partitions} partitions x 3")


if __name__ == "__main__":
    main()
