#!/usr/bin/env bash
# A/B of consume throughput of two brook binaries (BEFORE=path AFTER=path):
# brook bench consume, 100 B records, 1 and 12 partitions, two alternating rounds.
set -u
for round in 1 2; do
for which in before after; do
  if [ "$which" = before ]; then bin=$BEFORE; else bin=$AFTER; fi; d=$(mktemp -d); port=$((20000 + RANDOM % 10000))
  $bin serve --listen 127.0.0.1:$port --data-dir $d >/dev/null 2>&1 & pid=$!
  sleep 0.5
  for p in 1 12; do
    $bin topic create t$p --partitions $p -b 127.0.0.1:$port >/dev/null
    $bin bench produce --topic t$p --records 2000000 --record-size 100 -b 127.0.0.1:$port --json >/dev/null 2>&1
    for i in 1 2 3; do
      r=$($bin bench consume --topic t$p --records 2000000 -b 127.0.0.1:$port --json 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["records_per_sec"]))')
      echo "round $round $which p=$p consume $r"
    done
  done
  kill $pid; wait $pid 2>/dev/null; rm -rf $d
done; done
