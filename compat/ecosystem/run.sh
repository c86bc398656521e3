#!/usr/bin/env bash
# The Kafka ecosystem on top of Brook: real Kafka Streams (exactly-once word count,
# killed and restarted), Kafka Connect (a distributed worker's FileStream pipeline,
# restarted and killed), MirrorMaker 2 (two brokers) and a schema registry keeping its
# state in a topic (Apicurio Registry, kafkasql storage, restarted), each against its own fresh
# `brook serve`. Writes compat/ecosystem/results.json and compat/ecosystem/RESULTS.md
# and exits non-zero if any scenario failed. See compat/ecosystem/README.md.
#
#   compat/ecosystem/run.sh                    # every scenario
#   compat/ecosystem/run.sh streams connect    # some of them
#   BROOK_BIN=/path/to/brook compat/ecosystem/run.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export BROOK_BIN="${BROOK_BIN:-$REPO/target/debug/brook}"
ALL=(streams connect mirror schema-registry)
TIMEOUT_S="${ECOSYSTEM_TIMEOUT_S:-600}"
if (($#)); then SCENARIOS=("$@"); else SCENARIOS=("${ALL[@]}"); fi
LOGS="$REPO/compat/.cache/ecosystem"
mkdir -p "$LOGS"

results=()
failed=0
for s in "${SCENARIOS[@]}"; do
  [[ -x "$HERE/$s/run.sh" ]] || { echo "unknown scenario '$s' (known: ${ALL[*]})" >&2; exit 2; }
  printf '\n==> ecosystem: %s\n' "$s" >&2
  start=$(date +%s)
  set +e
  timeout --kill-after=10 "$TIMEOUT_S" "$HERE/$s/run.sh" > "$LOGS/$s.out"
  code=$?
  set -e
  secs=$(( $(date +%s) - start ))
  line="$(grep -E '^\{.*"scenario"' "$LOGS/$s.out" | tail -1 || true)"
  if [[ -z "$line" ]]; then
    line="{\"scenario\": \"$s\", \"status\": \"fail\", \"detail\": \"exit $code without a result (timeout ${TIMEOUT_S}s?)\"}"
  fi
  if ((code != 0)); then failed=1; fi
  results+=("$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["seconds"]=int(sys.argv[2]); r["exit"]=int(sys.argv[3]); print(json.dumps(r))' "$line" "$secs" "$code")")
  echo "$s: exit $code in ${secs}s" >&2
done

printf '%s\n' "${results[@]}" > "$LOGS/results.jsonl"
python3 - "$HERE" "$LOGS/results.jsonl" <<'PY'
import json, pathlib, sys
here = pathlib.Path(sys.argv[1])
rows = [json.loads(l) for l in pathlib.Path(sys.argv[2]).read_text().splitlines() if l.strip()]
(here / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
names = {
    "streams.eos_wordcount": "Kafka Streams 4.4 (exactly_once_v2, repartition + compacted changelog, kill -9)",
    "connect.file_pipeline": "Kafka Connect 4.3 distributed (FileStream source -> topic -> sink, restart + kill -9)",
    "mirror.mm2": "MirrorMaker 2 4.3 (topic + group offsets, Brook -> Brook)",
    "schema_registry.apicurio_kafkasql": "Apicurio Registry 3.3 (kafkasql: schemas in a Kafka topic, SIGTERM + kill -9 restarts)",
}
out = ["| ecosystem scenario | result | time |", "|---|---|---|"]
for r in rows:
    mark = "✅ pass" if r.get("status") == "pass" else "❌ fail"
    out.append(f"| {names.get(r['scenario'], r['scenario'])} | {mark} | {r.get('seconds', '?')} s |")
out.append("")
for r in rows:
    out.append(f"- **{r['scenario']}**: {r.get('detail', '')}")
(here / "RESULTS.md").write_text("\n".join(out) + "\n")
print("\n".join(out))
PY
exit "$failed"
