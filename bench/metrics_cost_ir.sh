#!/usr/bin/env bash
# What per-request metrics cost, in instructions: the broker runs under valgrind's
# callgrind (which counts every instruction it executes, whatever else loads the
# machine) through a fixed workload, with metrics.request.enable=false and =true; a
# run without a workload gives the start-up and shutdown to subtract. Two workloads:
#   small: SMALL records of 100 B produced in batches of 10 (one batch per request:
#          the most requests per byte, where a per-request cost shows most);
#   big:   BIG records of 100 B produced in batches of 1000 (bench/run.sh's produce
#          cell), then consumed.
#
#   bench/metrics_cost_ir.sh target/release/brook
#
# Prints the cost of metrics relative to each workload's own instructions. Each client
# run is bounded (--max-seconds 30). KEEP=1 keeps the callgrind files
# (callgrind_annotate shows where the cost goes).
set -euo pipefail
BROOK=${1:-target/release/brook}
SMALL=${SMALL:-100000}   # records produced in batches of 10: 10,000 Produce requests
BIG=${BIG:-1000000}      # records produced in batches of 1000, then consumed
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "callgrind files in $work" >&2
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME WORKLOAD(none|small|big) SETTINGS...: one broker under callgrind; prints its Ir.
run() {
  local name=$1 workload=$2; shift 2
  local p a out
  p=$(port); a=$(port); out=$work/$name.callgrind
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BROOK" serve \
    --listen 127.0.0.1:"$p" --data-dir "$work/$name-data" \
    --set admin.listeners=http://127.0.0.1:"$a" "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$a/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  local b=(-b 127.0.0.1:"$p")
  "$BROOK" topic create small --partitions 1 "${b[@]}" >/dev/null
  "$BROOK" topic create big --partitions 1 "${b[@]}" >/dev/null
  if [ "$workload" = small ]; then
    "$BROOK" bench produce --topic small --records "$SMALL" --batch-size 10 --record-size 100 \
      --quiet --max-seconds 30 "${b[@]}" >/dev/null
  elif [ "$workload" = big ]; then
    "$BROOK" bench produce --topic big --records "$BIG" --batch-size 1000 --record-size 100 \
      --quiet --max-seconds 30 "${b[@]}" >/dev/null
    "$BROOK" bench consume --topic big --records "$BIG" --quiet --max-seconds 30 "${b[@]}" >/dev/null
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  grep -m1 '^summary:' "$out" | awk '{print $2}'
}

base=$(run base none)
echo "instructions (Ir) of start-up and shutdown alone: $base"
for w in small big; do
  off=$(run "$w-off" "$w" --set metrics.request.enable=false)
  on=$(run "$w-on" "$w")
  python3 -c '
import sys
w = sys.argv[1]
base, off, on, small, big = map(int, sys.argv[2:])
requests = small // 10 if w == "small" else big // 1000
print(f"{w}: the workload'"'"'s own instructions: off {off - base:,}, on {on - base:,}; "
      f"metrics cost {(on - off) / (off - base) * 100:+.2f}%, "
      f"{(on - off) / requests:,.0f} per Produce request ({requests:,} of them"
      + ("" if w == "small" else "; the Fetch requests counted in") + ")")
' "$w" "$base" "$off" "$on" "$SMALL" "$BIG"
done
