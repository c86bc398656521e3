#!/usr/bin/env python3
"""What per-request metrics cost on the produce and fetch path (issue 17: at most 2%).

One Brook binary, three broker setups, each started fresh (data on disk) for every run:

- `off`: `metrics.request.enable=false` (no request clocks, no request histograms, no
  per-topic counters);
- `on`: the default, nothing scraping;
- `on+scrape`: the default, `/metrics` scraped every second during the run.

Workloads, all with `brook bench` (bounded by `--max-seconds`, 30 s at most):

- `produce-b10`: 100 B records in batches of 10 (one batch per request): the most
  requests per byte, where a per-request cost shows most;
- `produce-b1000`: 100 B records in batches of 1000 (`bench/run.sh`'s produce cell);
- `consume`: reading back what produce-b1000 wrote (Fetch, sendfile).

Two figures per run: records/s as `brook bench` reports it, and the broker's own CPU
time (utime + stime from `/proc/PID/stat`) per million records. On a shared 2-core
machine the first moves with whatever else runs; the second is the steadier measure of
what the broker spends. Rounds alternate the setups (off, on, on+scrape, then the next
round), so load from elsewhere spreads over all three; the report gives each setup's
median per workload and its cost relative to `off`.

    python3 bench/metrics_cost.py --brook-bin target/release/brook --rounds 5
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SETUPS = ("off", "on", "on+scrape")
MAX_SECONDS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A `brook serve` on free ports with its data in a temporary directory."""

    def __init__(self, brook: str, setup: str):
        self.brook = brook
        self.port, self.admin_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="brook-metrics-cost-")
        cmd = [brook, "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", os.path.join(self.dir, "data"),
               "--set", f"admin.listeners=http://127.0.0.1:{self.admin_port}"]
        if setup == "off":
            cmd += ["--set", "metrics.request.enable=false"]
        self.log = open(os.path.join(self.dir, "broker.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.scrapes = 0
        self._stop = threading.Event()
        self._scraper = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"brook exited: see {self.log.name}")
                time.sleep(0.1)
        raise RuntimeError("brook did not become ready in 30 s")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """The broker's user + system CPU time so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def timed(self, records: int, *args: str) -> tuple[float, float]:
        """Runs a `brook bench` workload: (records/s, broker CPU seconds per million
        records)."""
        before = self.cpu_seconds()
        report = self.run(*args)
        cpu = self.cpu_seconds() - before
        done = report.get("records", records) or records
        return report["records_per_sec"], cpu / done * 1e6

    def run(self, *args: str) -> dict:
        out = subprocess.run([self.brook, *args, "-b", self.bootstrap],
                             capture_output=True, text=True, timeout=MAX_SECONDS + 30)
        if out.returncode != 0:
            raise RuntimeError(f"{args}: {out.stderr.strip()}")
        return json.loads(out.stdout) if "--json" in args else {}

    def start_scraping(self):
        def loop():
            while not self._stop.wait(1.0):
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics",
                                            timeout=5) as r:
                    r.read()
                self.scrapes += 1
        self._scraper = threading.Thread(target=loop, daemon=True)
        self._scraper.start()

    def stop(self):
        self._stop.set()
        if self._scraper:
            self._scraper.join()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def one_round(brook: str, setup: str, records: int, small_records: int) -> dict:
    """Every workload once against a fresh broker in `setup`: records/s of each."""
    b = Broker(brook, setup)
    try:
        for t in ("small", "big"):
            b.run("topic", "create", t, "--partitions", "1")
        if setup == "on+scrape":
            b.start_scraping()
        common = ["--json", "--quiet", "--record-size", "100", "--max-seconds", str(MAX_SECONDS)]
        small = b.timed(small_records, "bench", "produce", "--topic", "small",
                        "--records", str(small_records), "--batch-size", "10", *common)
        big = b.timed(records, "bench", "produce", "--topic", "big", "--records", str(records),
                      "--batch-size", "1000", *common)
        consume = b.timed(records, "bench", "consume", "--topic", "big", "--records",
                          str(records), "--json", "--quiet", "--max-seconds", str(MAX_SECONDS))
        out = {"scrapes": b.scrapes}
        for w, (rate, cpu) in (("produce-b10", small), ("produce-b1000", big),
                               ("consume", consume)):
            out[w], out[w + " cpu"] = rate, cpu
        return out
    finally:
        b.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brook-bin", default="target/release/brook")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--records", type=int, default=3_000_000)
    ap.add_argument("--small-records", type=int, default=1_000_000)
    ap.add_argument("--out", help="write the raw runs as JSON here")
    args = ap.parse_args()
    runs = {s: [] for s in SETUPS}
    load_start = os.getloadavg()
    for r in range(args.rounds):
        for setup in SETUPS:
            res = one_round(args.brook_bin, setup, args.records, args.small_records)
            runs[setup].append(res)
            print(f"round {r + 1} {setup:9} " + " ".join(
                f"{k}={v:,.3f}" if "cpu" in k else f"{k}={v:,.0f}" for k, v in res.items()),
                file=sys.stderr, flush=True)
    load_end = os.getloadavg()
    workloads = ("produce-b10", "produce-b1000", "consume")
    keys = workloads + tuple(w + " cpu" for w in workloads)
    med = {s: {k: statistics.median(x[k] for x in runs[s]) for k in keys} for s in SETUPS}
    print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f}; "
          f"{args.rounds} rounds, medians\n")
    print("| workload | figure | off | on | cost | on+scrape (1 s) | cost |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for w in workloads:
        for key, figure, fmt, sign in ((w, "records/s", "{:,.0f}", 1),
                                       (w + " cpu", "broker CPU s per 1M records", "{:.3f}", -1)):
            off = med["off"][key]
            cells = [fmt.format(off)]
            for s in ("on", "on+scrape"):
                # Cost: throughput lost, or CPU time added, relative to off.
                cost = (1 - med[s][key] / off) if sign > 0 else (med[s][key] / off - 1)
                cells += [fmt.format(med[s][key]), f"{cost * 100:+.1f}%"]
            print(f"| {w} | {figure} | " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": runs, "medians": med, "load": [load_start, load_end]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
