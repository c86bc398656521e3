#!/usr/bin/env python3
"""Compares two bench.py results of Brook (e.g. before and after a change):
`python3 bench/compare.py bench/results/redesign-before.json bench/results/redesign-after.json`.
Prints one Markdown table, a row per cell, with the after/before ratio."""

import json
import sys


def main(before_path, after_path):
    before = json.load(open(before_path))["summary"]
    after = json.load(open(after_path))["summary"]
    print("| cell | before | after | after/before |")
    print("| --- | ---: | ---: | ---: |")
    for cell, b in before["cells"].items():
        a = after["cells"].get(cell, {}).get("brook")
        b = b.get("brook")
        if not a or not b:
            continue
        if "latency" in cell:
            key, unit = "latency_ms.p99", "ms p99"
        else:
            key, unit = "records_per_sec", "rec/s"
        if b.get(key) is None or a.get(key) is None:
            continue
        ratio = a[key] / b[key] if b[key] else float("nan")
        print(f"| {cell} ({unit}) | {b[key]:,.1f} | {a[key]:,.1f} | {ratio:.2f} |")
    for key in ("start_to_api_ms", "idle_rss_mib", "peak_rss_mib", "load_cpu_seconds"):
        b, a = before["brokers"]["brook"][key], after["brokers"]["brook"][key]
        print(f"| {key} | {b:,.1f} | {a:,.1f} | {a / b:.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
