#!/usr/bin/env python3
"""Turns one compat/run.sh run into compat/results.json and compat/RESULTS.md.

    python3 report.py RUN_DIR OUT_DIR
    python3 report.py --secure RUN_DIR OUT_DIR   # the secured run: results-secure.json, RESULTS-secure.md

RUN_DIR holds, for each client that ran, `<client>.out` (its stdout: `RESULT {json}` lines),
`<client>.meta.json` (exit code, seconds, version, broker log path) written by run.sh, and
`run.meta.json` (total seconds, brook binary, git commit). Exit status: 1 if any supported
scenario failed or did not report, else 0.
"""

from __future__ import annotations

import json
import os
import sys

SCENARIOS = [
    ("admin.create", "admin: create topic (3 partitions + retention.ms config)"),
    ("admin.list", "admin: list topics"),
    ("admin.describe", "admin: describe topic + configs"),
    ("admin.add_partitions", "admin: add partitions (3 → 5)"),
    ("admin.delete", "admin: delete topic"),
    ("produce.keys_headers", "produce with keys and headers"),
    ("produce.gzip", "produce gzip"),
    ("produce.snappy", "produce snappy"),
    ("produce.lz4", "produce lz4"),
    ("produce.zstd", "produce zstd"),
    ("produce.idempotent", "idempotent produce"),
    ("tools.perf_test", "kafka-producer-perf-test"),
    ("consume.earliest", "consume from earliest"),
    ("consume.latest", "consume from latest"),
    ("consume.timestamp", "consume by timestamp"),
    ("group.commit_resume", "group: commit, close, resume"),
    ("group.describe_lag", "group: describe with lag"),
    ("txn.commit_abort", "transactions: commit, abort, commit; read_committed vs read_uncommitted"),
    ("txn.offsets", "transactions: consume-transform-produce with offsets in the transaction"),
    ("share.split2", "share group: 2 consumers on one partition split the records, each accepted once"),
    ("share.split5", "share group: 5 consumers on one partition split the records, each accepted once"),
    ("share.lock_timeout", "share group: a consumer killed (kill -9) holding records; "
                           "another gets them (its connection's drop or the lock's timeout "
                           "releases them)"),
    ("share.reject", "share group: REJECT archives (never redelivered)"),
    ("share.release", "share group: RELEASE redelivers (delivery count 2)"),
    ("share.delivery_limit", "share group: records released every time stop after "
                             "group.share.delivery.count.limit deliveries"),
]
SCENARIO_IDS = [s for s, _ in SCENARIOS]
SHARE = [s for s in SCENARIO_IDS if s.startswith("share.")]
BASE = [s for s in SCENARIO_IDS if s != "tools.perf_test" and s not in SHARE]

# client id -> (column title, scenarios it is expected to report)
CLIENTS = {
    "kafkajs": ("kafkajs", BASE),
    "franz-go": ("franz-go", BASE),
    "franz-go-consumer": ("franz-go (KIP-848 consumer)",
                          ["consume.earliest", "consume.latest", "consume.timestamp",
                           "group.commit_resume", "group.describe_lag", "txn.commit_abort",
                           "txn.offsets"]),
    "java-classic": ("Java client (classic)", BASE),
    "java-consumer": ("Java client (KIP-848 consumer)",
                      ["consume.earliest", "consume.latest", "consume.timestamp",
                       "group.commit_resume", "group.describe_lag", "txn.commit_abort", "txn.offsets"]),
    "java-share": ("Java client (share consumer)", SHARE),
    "kafka-cli": ("Kafka CLI tools", [s for s in SCENARIO_IDS if s not in SHARE]),
    "confluent-kafka": ("confluent-kafka", BASE),
    "confluent-kafka-share": ("confluent-kafka (share consumer)", SHARE),
    "kafka-python": ("kafka-python", BASE),
    "kcat": ("kcat", BASE),
}

# The secured run (compat/run.sh --secure): per authentication method, the principal is
# refused before its ACLs exist, works once the admin created them, is refused again after
# the admin deleted them.
METHODS = [("plain", "SASL_SSL + PLAIN (alice)"), ("scram512", "SASL_SSL + SCRAM-SHA-512 (carol)"),
           ("mtls", "SSL + client certificate (mTLS)")]
SECURE_SCENARIOS = [("secure.bad_password", "SASL_SSL: a wrong password is refused (authentication failed)"),
                    ("secure.scram_user", "admin creates the SCRAM-SHA-512 user carol (AlterUserScramCredentials)")]
for m, t in METHODS:
    SECURE_SCENARIOS += [
        (f"secure.{m}.refused", f"{t}: refused before ACLs (produce, group consume, metadata)"),
        (f"secure.{m}.allowed", f"{t}: admin creates ACLs, produce + group consume with commit"),
        (f"secure.{m}.revoked", f"{t}: admin deletes the ACLs, refused again"),
    ]
SECURE_BASE = [s for s, _ in SECURE_SCENARIOS]
SECURE_CLIENTS = {
    "kafkajs": ("kafkajs", SECURE_BASE),
    "franz-go": ("franz-go", SECURE_BASE),
    "java-classic": ("Java client", SECURE_BASE),
    "kafka-cli": ("Kafka CLI tools", SECURE_BASE),
    "confluent-kafka": ("confluent-kafka", SECURE_BASE),
    "kafka-python": ("kafka-python", SECURE_BASE),
    "kcat": ("kcat", SECURE_BASE),
}

CELL = {"pass": "✅ pass", "fail": "❌ FAIL", "unsupported": "⛔ not supported", "n/a": "n/a", None: "·"}


def load_results(path: str) -> tuple[dict, list[str]]:
    results, junk = {}, []
    if not os.path.exists(path):
        return results, junk
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("RESULT "):
                continue
            try:
                r = json.loads(line[len("RESULT "):])
                results[r["scenario"]] = {"status": r["status"], "detail": r.get("detail", "")}
            except (ValueError, KeyError) as e:
                junk.append(f"unparsable result line ({e}): {line.strip()[:200]}")
    return results, junk


def main() -> int:
    global SCENARIOS, CLIENTS
    args = sys.argv[1:]
    secure = args[:1] == ["--secure"]
    if secure:
        args = args[1:]
        SCENARIOS, CLIENTS = SECURE_SCENARIOS, SECURE_CLIENTS
    suffix = "-secure" if secure else ""
    run_dir, out_dir = args[0], args[1]
    with open(os.path.join(run_dir, "run.meta.json"), encoding="utf-8") as f:
        run_meta = json.load(f)
    clients = {}
    failures = 0
    for cid, (title, expected) in CLIENTS.items():
        meta_path = os.path.join(run_dir, f"{cid}.meta.json")
        if not os.path.exists(meta_path):
            continue  # not selected in this run
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        got, junk = load_results(os.path.join(run_dir, f"{cid}.out"))
        cells = {}
        for s in expected:
            if s in got:
                cells[s] = got[s]
            else:
                reason = meta.get("error") or f"client exited {meta.get('exit_code')} before reporting it"
                cells[s] = {"status": "fail", "detail": f"not reported: {reason}"}
        for s, r in got.items():
            if s not in cells:
                cells[s] = r
        for s, r in cells.items():
            if r["status"] not in ("pass", "fail", "unsupported", "n/a"):
                r["detail"] = f"unknown status {r['status']!r}: {r['detail']}"
                r["status"] = "fail"
            if r["status"] == "fail":
                failures += 1
        clients[cid] = {"title": title, **meta, "notes": junk, "scenarios": cells}

    results = {"run": run_meta, "failed": failures, "clients": clients,
               "scenarios": [{"id": s, "title": t} for s, t in SCENARIOS]}
    with open(os.path.join(out_dir, f"results{suffix}.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
        f.write("\n")

    order = [c for c in CLIENTS if c in clients]
    lines = [
        "# Brook client compatibility matrix" + (": secured" if secure else ""),
        "",
        f"Generated by `compat/run.sh{' --secure' if secure else ''}` from its last run; do not edit "
        f"by hand. Details of every cell are in `compat/results{suffix}.json`.",
        "",
        f"- brook: `{run_meta.get('brook_bin')}` ({run_meta.get('brook_profile')}), commit "
        f"`{run_meta.get('git_commit')}`",
        f"- run: {run_meta.get('started_at')}, {run_meta.get('seconds_total')} s in all "
        f"(setup {run_meta.get('seconds_setup')} s, clients {run_meta.get('seconds_clients')} s), on "
        f"{run_meta.get('host')}",
        f"- result: **{'all supported scenarios pass' if failures == 0 else f'{failures} FAILED'}**",
        "",
        "| scenario | " + " | ".join(clients[c]["title"] for c in order) + " |",
        "|---|" + "---|" * len(order),
        "| *version* | " + " | ".join(f"*{clients[c].get('version', '?')}*" for c in order) + " |",
    ]
    for s, title in SCENARIOS:
        row = [CELL[clients[c]["scenarios"].get(s, {}).get("status")] for c in order]
        if all(cell == CELL[None] for cell in row):
            continue
        lines.append(f"| {title} | " + " | ".join(row) + " |")
    lines.append("| *seconds (broker start to stop)* | " + " | ".join(
        f"*{clients[c].get('seconds', '?')}*" for c in order) + " |")
    lines += [
        "",
        "✅ pass · ❌ FAIL (a Brook or client problem: see below) · ⛔ not supported by Brook "
        "(expected, does not fail the run) · n/a: the client has no such feature · "
        "\"·\": not run for that column (same client code as another column; the share group rows "
        "(KIP-932) run with Kafka's Java KafkaShareConsumer and librdkafka's share consumer "
        "(confluent-kafka's ShareConsumer) only).",
        "",
    ]
    notes = []
    for c in order:
        for s, r in clients[c]["scenarios"].items():
            if r["status"] in ("fail", "unsupported", "n/a"):
                notes.append((c, s, r))
    if notes:
        lines += ["## Failures, unsupported and n/a cells", ""]
        for c, s, r in notes:
            detail = r["detail"].replace("\n", " ").replace("|", "\\|")
            lines.append(f"- **{clients[c]['title']}** / `{s}` — {CELL[r['status']]}: {detail}")
        lines.append("")
    lines += ["## Client logs", ""]
    for c in order:
        meta = clients[c]
        lines.append(f"- {meta['title']}: exit {meta.get('exit_code')}, client output "
                     f"`{meta.get('client_log')}`, broker log `{meta.get('broker_log')}`"
                     + (f"; {meta['error']}" if meta.get("error") else ""))
    with open(os.path.join(out_dir, f"RESULTS{suffix}.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("| scenario"))
    end = next(i for i, l in enumerate(lines) if l.startswith("| *seconds"))
    print("\n".join(lines[start:end + 1]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
