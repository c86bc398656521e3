#!/usr/bin/env python3
"""Where Brook's CPU goes under real clients: perf profiles and flamegraphs per cell.

For each (client, produce|consume, record size, partitions) cell, one Brook release
binary (fresh data directory, 127.0.0.1 only) is profiled with `perf record` (DWARF call
graphs, 499 Hz) while the client runs; then:

- `bench/results/flamegraphs/<cell>.svg`: the flamegraph (inferno);
- `bench/results/profiles.md` (and `.json`): per cell, the client's throughput, the broker's
  CPU time and how busy it was (CPU seconds / wall seconds of the client run: 1.0 is one
  core, this machine has 2), and the broker's samples split into categories (kernel file
  writes, kernel network, CRC and record checks, protocol, allocator, runtime...).

A cell whose broker is busy well under one core is bound by its client (or by the
round trips the client chooses), not by the broker: there, a faster broker cannot make
the cell much faster.

    bench/profile.py [--brook-bin target/release/brook] [--kafka-libs DIR]
                     [--clients kafka-tools,librdkafka,franz-go] [--quick]

Needs `perf` (linux-perf) and inferno (`cargo install inferno`). The Kafka perf tools come
from the jars of bench/run.sh's cache (bench/.cache/kafka-*/libs).
"""

import argparse
import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402  broker launcher, topic creation, the Kafka perf tools
import perf_clients as PC  # noqa: E402  the librdkafka and franz-go drivers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (record size, partitions, records)
CELLS = [(1024, 12, 1_000_000), (100, 1, 3_000_000)]
QUICK_CELLS = [(1024, 12, 200_000)]

# Categories of samples, first match wins: (name, substrings of any frame in the stack).
CATEGORIES = [
    ("kernel: file write (page cache, ext4)",
     ("copy_folio_from_iter", "ext4_", "generic_perform_write", "vfs_write")),
    ("kernel: fsync", ("fsync", "jbd2")),
    ("kernel: sendfile / page-cache read", ("sendfile", "splice", "filemap_", "vfs_read")),
    ("kernel: network (tcp, loopback)",
     ("tcp_", "sock_", "__sys_recvfrom", "__sys_sendto", "sock_recvmsg", "skb_", "net_rx",
      "__netif", "do_softirq", "handle_softirqs", "ip_", "loopback")),
    ("kernel: epoll, futex, scheduling",
     ("epoll", "futex", "schedule", "finish_task_switch", "__x64_sys_sched_yield")),
    ("CRC-32C", ("crc32c",)),
    ("record checks (batch walk)", ("record_check",)),
    ("protocol decode / encode", ("kafka_protocol", "brook_protocol")),
    ("allocator", ("malloc", "free", "realloc", "__rust_alloc", "__rust_dealloc", "cfree",
                   "_int_malloc", "_int_free")),
    ("log (brook-log)", ("brook_log",)),
    ("broker (brook-broker)", ("brook_broker",)),
    ("tokio runtime", ("tokio::",)),
]
OTHER = "other"


def log(msg):
    print(f"[profile {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def categorize(folded):
    """Sample share per category from inferno's folded stacks (leaf last)."""
    counts = collections.Counter()
    leaves = collections.Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = stack.split(";")
        leaves[frames[-1]] += n
        # The innermost matching frame decides: a CRC under the broker is CRC time.
        hit = OTHER
        for frame in reversed(frames):
            for name, needles in CATEGORIES:
                if any(s in frame for s in needles):
                    hit = name
                    break
            if hit != OTHER:
                break
        counts[hit] += n
    share = {k: counts[k] / total for k in [c[0] for c in CATEGORIES] + [OTHER] if counts[k]}
    top = [(f, n / total) for f, n in leaves.most_common(8)]
    return total, share, top


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def run_client(cfg, broker, client, op, topic, records, size):
    if client == "kafka-tools":
        if op == "produce":
            return B.producer_perf(cfg, broker, topic, records, size, "1", -1)
        return B.consumer_perf(cfg, broker, topic, records, size)
    if op == "produce":
        return PC.produce(cfg, broker, client, topic, records, size, "1")
    return PC.consume(cfg, broker, client, topic, records, size)


def profile_cell(cfg, broker, client, op, topic, records, size, out_svg):
    perf_data = os.path.join(cfg["workdir"], "perf.data")
    perf = subprocess.Popen(
        ["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384",
         "-p", str(broker.proc.pid), "-o", perf_data],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    cpu0, t0 = cpu_seconds(broker.proc.pid), time.monotonic()
    result = run_client(cfg, broker, client, op, topic, records, size)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(broker.proc.pid) - cpu0
    perf.send_signal(subprocess.signal.SIGINT)
    perf.wait(timeout=60)
    script = subprocess.run(["perf", "script", "-i", perf_data], capture_output=True,
                            timeout=600).stdout
    folded = subprocess.run(["inferno-collapse-perf"], input=script, capture_output=True,
                            timeout=600).stdout
    title = f"Brook under {client}: {op} {size} B records, {topic}"
    with open(out_svg, "wb") as f:
        f.write(subprocess.run(["inferno-flamegraph", "--title", title, "--width", "1600"],
                               input=folded, capture_output=True, timeout=600).stdout)
    os.unlink(perf_data)
    total, share, top = categorize(folded.decode(errors="replace"))
    return {
        "client": client, "op": op, "size": size, "records": records,
        "records_per_sec": result["records_per_sec"],
        "client_wall_s": wall, "broker_cpu_s": cpu, "broker_busy_cores": cpu / wall,
        "samples": total, "categories": share, "top_leaves": top,
        "svg": os.path.relpath(out_svg, ROOT),
    }


def render(runs, meta):
    lines = [
        "# Where Brook's CPU goes under real clients",
        "",
        f"- When: {meta['when']} (UTC); Brook at git `{meta['git']}`; "
        f"load average at start {meta['load_start']}, at end {meta['load_end']}.",
        "- One Brook release binary, default settings, fresh data directory; each cell's "
        "client runs once while `perf record -F 499 --call-graph dwarf` samples the broker.",
        "- *Broker busy* is the broker's CPU time over the client run's wall time, in cores "
        "(the machine has 2). A broker busy well under 1 core is not what limits the cell.",
        "- Reproduce: `bench/profile.py` (see its docstring). Flamegraphs: the SVGs named "
        "in the table (open in a browser; click to zoom).",
        "",
        "| client | op | record | partitions | records/s | broker busy (cores) | "
        "broker CPU per MB (ms) | flamegraph |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        mb = r["records"] * r["size"] / 1e6
        lines.append(
            f"| {r['client']} | {r['op']} | {r['size']} B | {r['partitions']} | "
            f"{r['records_per_sec']:,.0f} | {r['broker_busy_cores']:.2f} | "
            f"{1000 * r['broker_cpu_s'] / mb:.2f} | [svg]({os.path.basename(r['svg'])}) |")
    lines += ["", "## Samples by category", "",
              "Each sample is put in the category of its innermost frame that matches one "
              "(so CRC work called from the broker counts as CRC).", ""]
    names = [c[0] for c in CATEGORIES] + [OTHER]
    used = [n for n in names if any(n in r["categories"] for r in runs)]
    head = "| category | " + " | ".join(
        f"{r['client']} {r['op']} {r['size']} B" for r in runs) + " |"
    lines += [head, "|---|" + "---:|" * len(runs)]
    for n in used:
        lines.append(f"| {n} | " + " | ".join(
            f"{100 * r['categories'].get(n, 0):.1f}%" for r in runs) + " |")
    lines += ["", "## Hottest functions (self time)", ""]
    for r in runs:
        lines.append(f"- **{r['client']} {r['op']} {r['size']} B**: " + "; ".join(
            f"`{f[:70]}` {100 * s:.1f}%" for f, s in r["top_leaves"][:5]))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brook-bin", default=os.path.join(ROOT, "target", "release", "brook"))
    ap.add_argument("--kafka-libs", help="directory of Kafka jars (default: bench/.cache)")
    ap.add_argument("--clients", default="kafka-tools,librdkafka,franz-go")
    ap.add_argument("--quick", action="store_true", help="one small 1 KiB cell")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "profiles"))
    a = ap.parse_args()
    for tool in ("perf", "inferno-collapse-perf", "inferno-flamegraph"):
        if not shutil.which(tool):
            sys.exit(f"profile.py: `{tool}` not found (apt-get install linux-perf; "
                     "cargo install inferno)")
    clients = a.clients.split(",")
    libs = a.kafka_libs or next(iter(sorted(glob.glob(os.path.join(HERE, ".cache",
                                                                   "kafka-*", "libs")))), None)
    if "kafka-tools" in clients and not libs:
        sys.exit("profile.py: no Kafka jars; run bench/run.sh once or pass --kafka-libs")
    workdir = tempfile.mkdtemp(prefix="brook-profile-")
    svg_dir = os.path.join(HERE, "results", "flamegraphs")
    os.makedirs(svg_dir, exist_ok=True)
    cfg = dict(B.FULL, brook_bin=a.brook_bin, kafka_libs=libs, workdir=workdir,
               idle_seconds=1, keep_data=False)
    if libs:
        B.detect_tool_flags(cfg)
    cfg["perf_clients"] = PC.build(log)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "load_start": os.getloadavg(),
            "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                  capture_output=True, text=True).stdout.strip()}
    runs = []
    broker = B.Brook(cfg, workdir, 1)
    broker.start()
    try:
        for size, parts, records in (QUICK_CELLS if a.quick else CELLS):
            for client in clients:
                topic = f"prof-{client}-{size}-{parts}"
                B.create_topic(cfg, broker, topic, parts)
                for op in ("produce", "consume"):
                    name = f"{client}-{op}-{size}B-{parts}p"
                    log(f"{name}: {records:,} records")
                    r = profile_cell(cfg, broker, client, op, topic, records, size,
                                     os.path.join(svg_dir, f"{name}.svg"))
                    r["partitions"] = parts
                    log(f"{name}: {r['records_per_sec']:,.0f} records/s, broker busy "
                        f"{r['broker_busy_cores']:.2f} cores")
                    runs.append(r)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["load_end"] = os.getloadavg()
    meta["load_start"] = [round(x, 2) for x in meta["load_start"]]
    meta["load_end"] = [round(x, 2) for x in meta["load_end"]]
    with open(a.out + ".json", "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
    with open(a.out + ".md", "w") as f:
        f.write(render(runs, meta))
    log(f"wrote {a.out}.md, {a.out}.json and {len(runs)} flamegraphs in {svg_dir}")


if __name__ == "__main__":
    main()
