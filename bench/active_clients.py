#!/usr/bin/env python3
"""Many active clients and fairness, Brook vs Apache Kafka (issue 19).

For each broker (one at a time, default configs, as bench/run.sh starts them), on a
12-partition topic, franz-go (bench/perf/franz, `franz-perf many`) runs:

1. **many**: CLIENTS producers (1,000 by default), each its own client and connections,
   each sending RATE records/s of 100 B (acks=1, linger 0) for SECONDS; every record
   timed from send to acknowledgement. Reported: records acknowledged of those
   scheduled, latency percentiles over all records, the worst client's p99, the smallest
   share any one client got acknowledged, and the broker's RSS and CPU while they run
   (RSS per connection: the RSS they add over the idle broker, per client).
2. **fairness**: the same, plus one heavy producer sending 1 KiB records as fast as
   franz-go takes them for the whole run. A fair broker keeps the light producers'
   latencies and shares close to (1); the heavy one's rate is reported too.

    python3 bench/active_clients.py --brook-bin target/release/brook \\
        --kafka-libs bench/.cache/kafka-4.4.0/libs [--only brook] [--clients 1000]

Writes bench/results/active-clients.md and .json (or --out). Every run has a time limit;
brokers bind to 127.0.0.1 only.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402  broker launchers, topic creation
import perf_clients as PC  # noqa: E402  builds franz-perf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    print(f"[active {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_many(franz, broker, topic, clients, rate, seconds, heavy):
    """One `franz-perf many` run; samples the broker's RSS while it runs."""
    cmd = [franz, "many", "-b", broker.bootstrap, "-t", topic, "-c", str(clients),
           "-r", str(rate), "-s", "100", "-d", str(seconds)] + (["-heavy"] if heavy else [])
    cpu0 = B.proc_cpu_seconds(broker.proc.pid)
    rss = []
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            v = B.proc_status(broker.proc.pid, "VmRSS")
            if v is not None:
                rss.append(v)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 150)
    finally:
        done.set()
        t.join()
    wall = time.monotonic() - t0
    cpu = B.proc_cpu_seconds(broker.proc.pid) - cpu0
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"franz-perf many failed ({p.returncode}): {p.stderr[-600:]}")
    r = json.loads(lines[-1])
    r.update(broker_peak_rss_mib=max(rss) if rss else None,
             broker_cpu_s=round(cpu, 2), broker_busy_cores=round(cpu / wall, 2),
             exit=p.returncode, stderr=p.stderr[-300:])
    return r


def measure(cfg, cls, franz, a):
    broker = cls(cfg, cfg["workdir"], 1)
    out = {"broker": broker.name}
    try:
        out["start"] = broker.start()
        topic = "active"
        B.create_topic(cfg, broker, topic, 12)
        time.sleep(1)
        out["idle_rss_mib"] = B.proc_status(broker.proc.pid, "VmRSS")
        for name, heavy in (("many", False), ("fairness", True)):
            log(f"{broker.name}: {name}: {a.clients} producers x {a.rate}/s for {a.seconds} s"
                + (" + one heavy producer" if heavy else ""))
            try:
                r = run_many(franz, broker, topic, a.clients, a.rate, a.seconds, heavy)
                log(f"{broker.name}: {name}: acked {r['acked']:,}/{r['expected']:,}, p99 "
                    f"{r['p99_ms']} ms, worst client p99 {r['worst_client_p99_ms']} ms, "
                    f"min share {r['min_client_fraction']:.3f}, heavy "
                    f"{r['heavy_records_per_sec']:,.0f}/s, broker {r['broker_busy_cores']} cores")
            except Exception as e:  # noqa: BLE001  recorded, the run goes on
                r = {"failed": str(e)}
                log(f"{broker.name}: {name}: {e}")
            out[name] = r
    finally:
        out["stop"] = broker.stop()
    return out


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def render(results, meta, a):
    lines = [
        "# Many active clients and fairness: Brook vs Apache Kafka",
        "",
        f"- When: {meta['when']} (UTC); Brook at git `{meta['git']}`; load average at start "
        f"{meta['load_start']}, at end {meta['load_end']}.",
        f"- {a.clients} franz-go producers (`franz-perf many`), each its own client, "
        f"{a.rate} records/s of 100 B each (acks=1, linger 0) for {a.seconds} s, on a "
        "12-partition topic; *fairness* adds one producer sending 1 KiB records as fast as "
        "it can. One broker at a time, default configs.",
        f"- Command: `python3 bench/active_clients.py --clients {a.clients} --rate {a.rate} "
        f"--seconds {a.seconds}`",
        "",
        "| broker | run | acked / scheduled | p50 / p99 / p99.9 / max (ms) | worst client p99 (ms) "
        "| least share of one client | heavy producer (records/s) | broker RSS idle / peak (MiB) "
        "| broker CPU (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for name in ("many", "fairness"):
            r = res.get(name, {})
            if "failed" in r or not r:
                lines.append(f"| {res['broker']} | {name} | failed: {r.get('failed', '?')[:80]} "
                             "| | | | | | |")
                continue
            lines.append(
                f"| {res['broker']} | {name} | {r['acked']:,} / {r['expected']:,} | "
                f"{fmt(r['p50_ms'], 2)} / {fmt(r['p99_ms'], 2)} / {fmt(r['p999_ms'], 2)} / "
                f"{fmt(r['max_ms'], 1)} | {fmt(r['worst_client_p99_ms'], 2)} | "
                f"{r['min_client_fraction']:.3f} | "
                f"{fmt(r['heavy_records_per_sec'], 0) if name == 'fairness' else '-'} | "
                f"{fmt(res.get('idle_rss_mib'))} / {fmt(r.get('broker_peak_rss_mib'))} | "
                f"{fmt(r.get('broker_busy_cores'), 2)} |")
    lines += ["", "RSS per client (peak during *many* minus idle, over the clients; each "
              "franz-go client holds a connection to the broker, and its metadata "
              "connection):", ""]
    for res in results:
        r = res.get("many", {})
        if r.get("broker_peak_rss_mib") and res.get("idle_rss_mib"):
            per = (r["broker_peak_rss_mib"] - res["idle_rss_mib"]) * 1024 / a.clients
            lines.append(f"- {res['broker']}: {per:.1f} KiB")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brook-bin", default=os.path.join(ROOT, "target", "release", "brook"))
    ap.add_argument("--kafka-libs", help="directory of Kafka jars (default: bench/.cache)")
    ap.add_argument("--only", choices=("brook", "kafka"))
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "active-clients"))
    a = ap.parse_args()
    libs = a.kafka_libs or next(iter(sorted(glob.glob(os.path.join(HERE, ".cache", "kafka-*",
                                                                   "libs")))), None)
    if a.only != "brook" and not libs:
        sys.exit("active_clients.py: no Kafka jars; run bench/run.sh once or pass --kafka-libs")
    workdir = tempfile.mkdtemp(prefix="brook-active-")
    cfg = dict(B.FULL, brook_bin=a.brook_bin, kafka_libs=libs, workdir=workdir,
               idle_seconds=1, keep_data=False)
    if libs:
        B.detect_tool_flags(cfg)
    franz = PC.build(log).get("franz-go")
    if not franz or not os.path.exists(str(franz)):
        sys.exit(f"active_clients.py: franz-perf: {franz}")
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_start": [round(x, 2) for x in os.getloadavg()],
            "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                  capture_output=True, text=True).stdout.strip()}
    brokers = [c for c in (B.Kafka, B.Brook) if a.only in (None, c.name)]
    results = []
    try:
        for cls in brokers:
            results.append(measure(cfg, cls, franz, a))
    finally:
        B.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["load_end"] = [round(x, 2) for x in os.getloadavg()]
    with open(a.out + ".json", "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    with open(a.out + ".md", "w") as f:
        f.write(render(results, meta, a))
    log(f"wrote {a.out}.md and {a.out}.json")


if __name__ == "__main__":
    main()
