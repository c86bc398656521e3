#!/usr/bin/env python3
"""Produce latency at fixed rates, Brook and Apache Kafka side by side (bench/run.sh --latency-only).

For each repetition, each broker in turn (order alternating; never both at once) is started
with default configs as bench.py starts it, and for each rate × acks × producer a fresh
1-partition topic gets RATE records/s of SIZE bytes for WARMUP + SECONDS seconds; only the
last SECONDS are recorded. Producers:

- java: bench/LatencyProducer.java (Kafka's own Java producer from the Kafka jars, default
  configs but acks; send() → callback with System.nanoTime);
- librdkafka: bench/latency_rdkafka.py (confluent-kafka; produce() → delivery report with
  time.perf_counter_ns).

Both keep every sample and report exact percentiles (p50/p90/p99/p99.9/max). Writes
OUT.md / OUT.json (default bench/results/latency.*). Standard library only here; the
librdkafka producer needs the confluent-kafka package.
"""

import argparse
import atexit
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

import bench as B

HERE = B.HERE
ROOT = B.ROOT


class BrookL(B.Brook):
    """Brook as bench.py starts it, plus --set overrides (for A/B runs of broker settings),
    with its admin listener on a free port: each run's Produce request times are read from
    /metrics before and after it (the broker's own view, for telling its tail from the
    client's)."""

    def command(self):
        self.admin_port = B.free_port()
        cmd = super().command()
        cmd += ["--set", f"admin.listeners=http://127.0.0.1:{self.admin_port}"]
        for kv in self.cfg.get("brook_set", []):
            cmd += ["--set", kv]
        return cmd

    def produce_histograms(self):
        """{part: {upper bound in s: cumulative count}} of the Produce request times."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        out = {}
        for m in METRIC_RE.finditer(text):
            part, le, n = m.group(1), m.group(2), float(m.group(3))
            out.setdefault(part, {})[float("inf") if le == "+Inf" else float(le)] = n
        return out


METRIC_RE = re.compile(r'^brook_request_(queue|local|remote|response_send|total)_time_seconds'
                       r'_bucket\{api="Produce",le="([^"]+)"\} ([0-9.e+]+)$', re.M)


def histogram_delta(before, after):
    """Per part: p50/p99/p99.9/max as bucket upper bounds (ms) of the requests in between."""
    out = {}
    for part, cum in after.items():
        prev = before.get(part, {})
        bounds = sorted(cum)
        counts = [cum[b] - prev.get(b, 0) for b in bounds]
        total = counts[-1] if counts else 0
        if not total:
            continue
        r = {"requests": int(total)}
        for name, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999), ("max", 1.0)):
            need = q * total
            r[f"{name}_le_ms"] = next((b * 1000 for b, c in zip(bounds, counts) if c >= need),
                                      None)
        out[part] = r
    return out


class KafkaNode(B.Kafka):
    """One node of a 3-node Kafka cluster: broker and controller (combined mode), static
    voters, the shipped server.properties otherwise (internal topics replicated 3 ways,
    as its defaults say)."""

    def __init__(self, cfg, workdir, rep, node_id, cluster):
        self.name = f"kafka-{node_id}"
        super().__init__(cfg, workdir, rep)
        self.node_id, self.cluster = node_id, cluster
        self.controller_port = free_port_once(cluster.used)

    def prepare(self):
        props = os.path.join(self.dir, "server.properties")
        with open(props, "w") as f:
            f.write(B.kafka_server_properties(
                "bench/latency.py (3-node cluster)", node_id=self.node_id,
                quorum=f"controller.quorum.voters={self.cluster.voters}",
                listeners=f"PLAINTEXT://127.0.0.1:{self.port},"
                          f"CONTROLLER://127.0.0.1:{self.controller_port}",
                advertised=f"PLAINTEXT://127.0.0.1:{self.port}",
                protocol_map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                log_dirs=self.data, single_node=False))
        self.props = props
        B.run(["java", *B.KAFKA_TOOL_HEAP, *self.log4j("tools"), "-cp",
               os.path.join(self.cfg["kafka_libs"], "*"), "kafka.tools.StorageTool", "format",
               "-t", self.cluster.cluster_id, "-c", props], timeout=60)


class BrookNode(BrookL):
    """One node of a 3-node Brook cluster (every node a broker and a voter)."""

    def __init__(self, cfg, workdir, rep, node_id, cluster):
        self.name = f"brook-{node_id}"
        super().__init__(cfg, workdir, rep)
        self.node_id, self.cluster = node_id, cluster
        self.controller_port = free_port_once(cluster.used)

    def command(self):
        self.admin_port = B.free_port()
        return [self.cfg["brook_bin"], "serve", "--node-id", str(self.node_id),
                "--listen", self.bootstrap,
                "--controller-listen", f"127.0.0.1:{self.controller_port}",
                "--voters", self.cluster.voters, "--data-dir", self.data,
                "--set", f"admin.listeners=http://127.0.0.1:{self.admin_port}",
                *[x for kv in self.cfg.get("brook_set", []) for x in ("--set", kv)]]


def free_port_once(used):
    while True:
        p = B.free_port()
        if p not in used:
            used.add(p)
            return p


class Cluster:
    """Three nodes started together (a quorum needs a majority before any serves)."""
    node_cls = None
    name = "?"

    def __init__(self, cfg, workdir, rep):
        self.cfg, self.used = cfg, set()
        self.cluster_id = None
        self.nodes = []
        for i in (1, 2, 3):
            self.nodes.append(self.node_cls(cfg, workdir, rep, i, self))
        self.voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        self.bootstrap = ",".join(n.bootstrap for n in self.nodes)
        self.proc = None

    def start(self):
        t0 = time.monotonic()
        for n in self.nodes:
            n.prepare()
            out = open(n.logfile, "ab")
            n.proc = subprocess.Popen(n.command(), stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=n.env(),
                                      start_new_session=True)
            B.CHILDREN.append(n.proc)
            out.close()
        for n in self.nodes:
            B.wait_until(lambda n=n: B.api_versions_answers(n.port), n.proc,
                         f"{n.name} ApiVersions", n.logfile, interval=0.05)
        # Until all three brokers have registered, a 3-replica topic cannot be placed.
        deadline = time.monotonic() + 90
        while True:
            try:
                B.create_topic(self.cfg, self, "lat-probe", 1, replication=3)
                break
            except B.BenchError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        return {"start_to_3_replica_topic_ms": (time.monotonic() - t0) * 1000}

    def pids(self):
        return [n.proc.pid for n in self.nodes if n.proc]

    def stop(self):
        for n in self.nodes:
            n.stop()
        return {}


class KafkaCluster(Cluster):
    node_cls = KafkaNode
    name = "kafka"

    def start(self):
        out, _ = B.run(["java", *B.KAFKA_TOOL_HEAP, "-cp",
                        os.path.join(self.cfg["kafka_libs"], "*"), "kafka.tools.StorageTool",
                        "random-uuid"], timeout=60)
        self.cluster_id = out.strip().splitlines()[-1].strip()
        return super().start()


class BrookCluster(Cluster):
    node_cls = BrookNode
    name = "brook"

    def produce_histograms(self):
        """The sum over the nodes (only the partition's leader answers Produce)."""
        total = {}
        for n in self.nodes:
            for part, cum in n.produce_histograms().items():
                t = total.setdefault(part, {})
                for le, c in cum.items():
                    t[le] = t.get(le, 0) + c
        return total


def raise_autogroup(pid, nice, what):
    """With sched_autogroup (Linux's default on desktops and on this machine), each session
    shares the CPU as one group, whatever its processes' nice values; a broker (its own
    session) and the clients (this script's session) then wait behind every other busy
    session, builds included. `--priority N` gives both groups nice N: both brokers alike."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
        return True
    except OSError as e:
        B.log(f"cannot set the autogroup nice of {what} to {nice}: {e}")
        return False


def producer_cmd(cfg, producer, bootstrap, topic, rate, acks, extra):
    common = [bootstrap, topic, str(rate), str(cfg["warmup"]), str(cfg["seconds"]),
              str(cfg["size"]), acks, *extra]
    if producer == "java":
        return ["java", *B.KAFKA_TOOL_HEAP, *B.JVM_PERF,
                f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2-tools.properties')}",
                "-cp", os.path.join(cfg["kafka_libs"], "*"),
                os.path.join(HERE, "LatencyProducer.java"), *common]
    return [sys.executable, os.path.join(HERE, "latency_rdkafka.py"), *common]


def variants(cfg):
    """(label, extra producer properties): the clients' defaults, and linger 0 if asked."""
    out = [("default", [])]
    if cfg["linger0"]:
        out.append(("linger0", ["linger.ms=0"]))
    return out


def key(producer, variant, rate, acks):
    return f"{producer}/{variant}/{rate}/acks={acks}"


def broker_phase(cfg, cls, rep, raw):
    broker = cls(cfg, cfg["workdir"], rep)
    B.log(f"rep {rep}: starting {broker.name}")
    res = raw["runs"].setdefault(broker.name, [])
    entry = {"rep": rep, "cells": {}}
    res.append(entry)
    try:
        entry["start"] = broker.start()
        if cfg["priority"] is not None:
            for pid in (broker.pids() if hasattr(broker, "pids") else [broker.proc.pid]):
                raise_autogroup(pid, cfg["priority"], broker.name)
    except Exception as e:  # noqa: BLE001
        entry["error"] = str(e)
        B.log(f"{broker.name}: start failed: {e}")
        broker.stop()
        return
    try:
        if cfg["broker_warmup"] > 0:
            # Unrecorded: JIT compilation, and on a cluster the followers' first fetches.
            w = dict(cfg, warmup=0, seconds=cfg["broker_warmup"])
            try:
                B.create_topic(cfg, broker, f"lat-r{rep}-warmup", 1,
                               replication=3 if cfg["cluster"] else None)
                B.run(producer_cmd(w, "librdkafka", broker.bootstrap, f"lat-r{rep}-warmup",
                                   20_000, "all", []), timeout=cfg["broker_warmup"] + 120)
            except Exception as e:  # noqa: BLE001
                B.log(f"{broker.name}: warm-up failed: {e}")
        n = 0
        for rate in cfg["rates"]:
            for acks in cfg["acks"]:
                for producer in cfg["producers"]:
                    for variant, extra in variants(cfg):
                        n += 1
                        topic = f"lat-r{rep}-{n}"
                        k = key(producer, variant, rate, acks)
                        try:
                            B.create_topic(cfg, broker, topic, 1,
                                           replication=3 if cfg["cluster"] else None)
                            hist = getattr(broker, "produce_histograms", None)
                            before = hist() if hist else None
                            out, _ = B.run(producer_cmd(cfg, producer, broker.bootstrap, topic,
                                                        rate, acks, extra),
                                           timeout=cfg["warmup"] + cfg["seconds"] + 120)
                            r = json.loads(out.strip().splitlines()[-1])
                            if hist:
                                # Warm-up included: the counts cannot tell the seconds apart.
                                r["broker_produce"] = histogram_delta(before, hist())
                            entry["cells"][k] = r
                            B.log(f"{broker.name} {k}: p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f}"
                                  f" p99.9 {r['p999_ms']:.2f} max {r['max_ms']:.2f} ms"
                                  f" ({r['count']} samples, {r['errors']} errors)"
                                  + broker_side(r))
                        except Exception as e:  # noqa: BLE001
                            entry["cells"][k] = {"error": str(e)}
                            B.log(f"{broker.name} {k}: FAILED: {e}")
    finally:
        entry["stop"] = broker.stop()


def broker_side(r):
    t = r.get("broker_produce", {}).get("total")
    if not t:
        return ""
    return (f"; broker Produce total p50/p99/p99.9/max ≤ {t['p50_le_ms']:g}/{t['p99_le_ms']:g}/"
            f"{t['p999_le_ms']:g}/{t['max_le_ms']:g} ms over {t['requests']} requests")


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def summarize(raw):
    s = {}
    for broker, reps in raw["runs"].items():
        cells = {}
        for e in reps:
            for k, r in e.get("cells", {}).items():
                cells.setdefault(k, []).append(r)
        for k, rs in cells.items():
            ok = [r for r in rs if "error" not in r]
            s.setdefault(k, {})[broker] = {
                f: med([r.get(f) for r in ok])
                for f in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")
            } if ok else {"error": rs[-1].get("error")}
    return s


def fmt(v):
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def ratio(b, k):
    if b is None or k is None or k == 0:
        return "–"
    r = b / k
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.3f}× (1/{1 / r:.0f})"


def markdown(raw, s):
    m = raw["meta"]
    cfg = m["config"]
    lines = [
        f"# Produce latency{' (3-node clusters)' if cfg.get('cluster') else ''}: "
        f"Brook vs Apache Kafka {m['kafka_version']}",
        "",
        f"- When: {m['started']} – {m.get('finished', '?')} (UTC); {cfg['reps']} repetition(s),"
        " median reported",
        f"- Machine: {m['host']['cpus']} CPUs ({m['host']['cpu_model']}), "
        f"{m['host']['kernel']}; data on {m['host']['data_fs']}",
        f"- Brook: `{m['brook_version']}` at git `{m['brook_git']}`"
        + (f" with `{' '.join('--set ' + x for x in cfg['brook_set'])}`" if cfg["brook_set"]
           else "") + f"; Kafka {m['kafka_version']} on {m['java']}",
        f"- Load average at start {m['load_start']}, at end {m.get('load_end')}.",
        ("- One 3-node cluster at a time (every node a broker and a voter of the metadata "
         "quorum, Kafka in combined mode with static voters), all on this machine, default "
         "configs; a fresh 1-partition topic with 3 replicas per run;"
         if cfg.get("cluster") else
         "- One broker at a time, default configs, single node, data on disk; a fresh "
         "1-partition topic per run;")
        + f" {cfg['size']} B records at a fixed rate for {cfg['warmup']} s unrecorded "
        f"+ {cfg['seconds']} s recorded; after each start, {cfg.get('broker_warmup', 0):g} s of "
        "unrecorded load (librdkafka, 20,000/s, acks=all) first (JIT).",
        "- Producers, each with its defaults except `acks` (linger: 5 ms in both, "
        "librdkafka `linger.ms=5` and the Java producer's 4.x default `linger.ms=5`): "
        "**java** = Kafka's Java producer (`bench/LatencyProducer.java`), send() → callback, "
        "System.nanoTime; **librdkafka** = confluent-kafka "
        f"{m.get('librdkafka', '?')} (`bench/latency_rdkafka.py`), produce() → delivery report, "
        "time.perf_counter_ns.",
        "- Every sample is kept; percentiles are exact (nearest rank) over "
        "rate × seconds samples per run. Times in ms.",
        ("- Scheduling: the brokers' and the clients' sessions ran with autogroup nice "
         f"{cfg['priority']} (`--priority`; with sched_autogroup each session shares the CPU "
         "as one group, so without it every busy shell or build on the machine takes an equal "
         "share and tails grow to hundreds of ms for both brokers)."
         if cfg.get("priority") is not None else
         "- Scheduling: default priorities (`--priority none`); other work on the machine "
         "delays brokers and clients alike."),
        "",
        f"Command: `{m['command']}`",
        "",
        "| producer | linger | rate/s | acks | Kafka p50 / p99 / p99.9 / max | "
        "Brook p50 / p99 / p99.9 / max | Brook/Kafka p99 | Brook/Kafka p99.9 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cellstr(c):
        if not c:
            return "not run"
        if "error" in c:
            return "error"
        return " / ".join(fmt(c[f]) for f in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))

    for rate in cfg["rates"]:
        for acks in cfg["acks"]:
            for producer in cfg["producers"]:
                for variant in (["default", "linger0"] if cfg["linger0"] else ["default"]):
                    c = s.get(key(producer, variant, rate, acks), {})
                    k, b = c.get("kafka"), c.get("brook")
                    ok = k and b and "error" not in k and "error" not in b
                    lines.append(
                        f"| {producer} | {'default (5 ms)' if variant == 'default' else '0'} | "
                        f"{rate:,} | {acks} | {cellstr(k)} | {cellstr(b)} | "
                        f"{ratio(b['p99_ms'], k['p99_ms']) if ok else '–'} | "
                        f"{ratio(b['p999_ms'], k['p999_ms']) if ok else '–'} |")
    lines += [
        "",
        "## Brook's own share",
        "",
        "Brook's Produce request times from its `/metrics` over each run (warm-up included): "
        "*total* is from the request's last byte read to its response flushed, *send* the "
        "write of the response. Histogram buckets double from 0.1 ms, so each figure is the "
        "bucket's upper bound (≤); *remote* is the acks=all wait for the followers. What a producer sees beyond *total* is spent outside "
        "request handling: batching in the client (linger), waiting for a CPU, the network "
        "stack.",
        "",
        "| producer | linger | rate/s | acks | requests (all reps) | total p50 / p99 / p99.9 / max | "
        "remote p50 / p99 | send p99 / p99.9 / max | client p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rate in cfg["rates"]:
        for acks in cfg["acks"]:
            for producer in cfg["producers"]:
                for variant in (["default", "linger0"] if cfg["linger0"] else ["default"]):
                    k = key(producer, variant, rate, acks)
                    runs = [e["cells"][k] for e in raw["runs"].get("brook", [])
                            if "error" not in e.get("cells", {}).get(k, {"error": 1})]
                    bp = [r.get("broker_produce", {}) for r in runs]
                    tot = [x["total"] for x in bp if "total" in x]
                    snd = [x["response_send"] for x in bp if "response_send" in x]
                    rem = [x["remote"] for x in bp if "remote" in x]
                    if not tot:
                        continue

                    def worst(rows, f):
                        v = [r[f] for r in rows if r.get(f) is not None]
                        return f"{max(v):g}" if v else "–"
                    lines.append(
                        f"| {producer} | {'default' if variant == 'default' else '0'} | "
                        f"{rate:,} | {acks} | {sum(t['requests'] for t in tot):,} | ≤ "
                        + " / ".join(worst(tot, f) for f in
                                     ("p50_le_ms", "p99_le_ms", "p999_le_ms", "max_le_ms"))
                        + " | ≤ " + " / ".join(worst(rem, f) for f in ("p50_le_ms", "p99_le_ms"))
                        + " | ≤ " + " / ".join(worst(snd, f) for f in
                                               ("p99_le_ms", "p999_le_ms", "max_le_ms"))
                        + f" | {fmt(max(r['p99_ms'] for r in runs))} |")
    lines += ["", "(Worst repetition shown.)"]
    probs = []
    for broker, reps in raw["runs"].items():
        for e in reps:
            if "error" in e:
                probs.append(f"{broker} rep {e['rep']}: {e['error']}")
            for k, r in e.get("cells", {}).items():
                if "error" in r:
                    probs.append(f"{broker} rep {e['rep']} {k}: {r['error']}")
                elif r.get("errors") or r.get("undelivered"):
                    probs.append(f"{broker} rep {e['rep']} {k}: {r.get('errors')} delivery "
                                 f"errors, {r.get('undelivered', 0)} undelivered")
    lines += ["", "## Problems", ""] + ([f"- {p}" for p in probs] or ["None."])
    lines += ["", f"Raw numbers per repetition (and librdkafka's own timing of each record, "
              f"`lib`): `{m.get('json_name', '')}`."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brook-bin", default=os.path.join(ROOT, "target", "release", "brook"))
    ap.add_argument("--kafka-libs")
    ap.add_argument("--kafka-version")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--cluster", action="store_true",
                    help="3-node clusters (replication factor 3) instead of single brokers; "
                         "defaults then: --rates 5000 --acks all, out results/latency-cluster")
    ap.add_argument("--rates")
    ap.add_argument("--acks")
    ap.add_argument("--producers", default="java,librdkafka")
    ap.add_argument("--brokers", default="kafka,brook")
    ap.add_argument("--seconds", type=float, default=8, help="recorded seconds per run")
    ap.add_argument("--warmup", type=float, default=2, help="unrecorded seconds per run")
    ap.add_argument("--size", type=int, default=100, help="record value bytes")
    ap.add_argument("--broker-warmup", type=float, default=10,
                    help="seconds of unrecorded load (librdkafka, 20,000/s, acks=all) after "
                         "each start, before the first recorded run")
    ap.add_argument("--no-linger0", action="store_true",
                    help="only the producers' default linger, not also linger.ms=0")
    ap.add_argument("--brook-set", action="append", default=[], metavar="K=V",
                    help="extra `brook serve --set K=V` (A/B of broker settings)")
    ap.add_argument("--priority", metavar="NICE", default="-10" if os.geteuid() == 0 else "none",
                    help="autogroup nice (-20..19) of the brokers' and the clients' sessions, "
                         "so other work on the machine disturbs less; 'none' leaves them "
                         "(default: -10 as root, else none)")
    ap.add_argument("--workdir", default=os.path.join(HERE, ".cache", "work-latency"))
    ap.add_argument("--out")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the report of a run's JSON")
    a = ap.parse_args()
    if a.render:
        with open(a.render) as f:
            raw = json.load(f)
        raw["summary"] = summarize(raw)
        md = markdown(raw, raw["summary"])
        with open(os.path.splitext(a.render)[0] + ".md", "w") as f:
            f.write(md)
        print(md)
        return
    if not a.kafka_libs or not a.kafka_version:
        ap.error("--kafka-libs and --kafka-version are required (run.sh passes them)")
    a.rates = a.rates or ("5000" if a.cluster else "5000,20000")
    a.acks = a.acks or ("all" if a.cluster else "1,all")
    a.out = a.out or os.path.join(HERE, "results", "latency-cluster" if a.cluster else "latency")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, B.on_signal)
    atexit.register(B.cleanup)
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    snapshot = os.path.join(a.workdir, "brook")
    shutil.copy2(a.brook_bin, snapshot)
    cfg = {
        "brook_bin": snapshot, "kafka_libs": a.kafka_libs, "workdir": a.workdir,
        "keep_data": a.keep_data, "idle_seconds": 1, "reps": a.reps,
        "rates": [int(x) for x in a.rates.split(",") if x],
        "acks": [x for x in a.acks.split(",") if x],
        "producers": [x for x in a.producers.split(",") if x],
        "seconds": a.seconds, "warmup": a.warmup, "size": a.size, "linger0": not a.no_linger0,
        "brook_set": a.brook_set, "priority": None if a.priority == "none" else int(a.priority),
        "cluster": a.cluster, "broker_warmup": a.broker_warmup,
    }
    if cfg["priority"] is not None and not raise_autogroup("self", cfg["priority"], "the clients"):
        cfg["priority"] = None
    brook_version = B.run([snapshot, "--version"], timeout=10)[0].strip()
    try:
        git = B.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=10)[0].strip()
        dirty = B.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                      timeout=30)[0].strip()
        git += " (+ uncommitted changes)" if dirty else ""
    except Exception:  # noqa: BLE001
        git = "?"
    try:
        import confluent_kafka
        rdk = confluent_kafka.libversion()[0]
    except ImportError:
        rdk = "not installed"
    raw = {
        "meta": {
            "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "kafka_version": a.kafka_version, "brook_version": brook_version, "brook_git": git,
            "java": B.run(["java", "-version"], timeout=30)[1].splitlines()[0],
            "librdkafka": rdk, "host": B.host_info(a.workdir), "load_start": B.loadavg(),
            # run.sh says how it was called; else this script's own command line.
            "command": os.environ.get("BENCH_COMMAND")
            or "python3 bench/latency.py " + " ".join(sys.argv[1:]),
            "config": {k: v for k, v in cfg.items()
                       if k not in ("brook_bin", "kafka_libs", "workdir")},
        },
        "runs": {},
    }
    classes = {"kafka": KafkaCluster, "brook": BrookCluster} if a.cluster else \
        {"kafka": B.Kafka, "brook": BrookL}
    order = [classes[b] for b in a.brokers.split(",") if b]
    for rep in range(1, a.reps + 1):
        for cls in (order if rep % 2 == 1 else list(reversed(order))):
            broker_phase(cfg, cls, rep, raw)
    out_json = os.path.abspath(a.out + ".json")
    raw["meta"]["json_name"] = os.path.relpath(out_json, ROOT) \
        if out_json.startswith(ROOT + os.sep) else out_json
    raw["meta"]["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    raw["meta"]["load_end"] = B.loadavg()
    raw["summary"] = summarize(raw)
    md = markdown(raw, raw["summary"])
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(raw, f, indent=2)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    print(md)
    B.log(f"wrote {a.out}.md and {a.out}.json")


if __name__ == "__main__":
    main()
