#!/usr/bin/env bash
# Kafka Connect end to end against Brook: a DISTRIBUTED Connect worker
# (org.apache.kafka.connect.cli.ConnectDistributed; Kafka 4.3.1, see pom.xml for why not 4.4.0) with its three
# internal topics (config/offset/status, replication factor 1, compacted) on one `brook serve`
# runs FileStreamSource (input file) -> topic -> FileStreamSink (output file), both created
# through the REST API with curl.
#
#   phase 1  N1 lines in the input file; wait until the sink file has them all.
#   phase 2  stop the worker with SIGTERM (kill -9 if it has not exited after 30 s), append
#            N2 lines, start it again: the connectors come back from the config topic and the
#            source resumes from its offset in the offset topic.
#   phase 3  kill -9 the worker (no clean shutdown, no final offset flush), append N3 lines,
#            start it again.
# After each phase: every input line is in the sink file, in order (duplicates allowed:
# FileStreamSource/Sink are at-least-once; duplicates are counted and reported), nothing
# else is there, both connectors and their tasks are RUNNING. At the end: the three internal
# topics exist with cleanup.policy=compact (Admin DescribeConfigs, ConnectCheck.java), and
# the topic holds every line (read_committed; its duplicates, if any, are attributed to the
# source side, the rest of the sink file's to the sink side).
# EXACTLY_ONCE=1: the worker runs with exactly.once.source.support=enabled (KIP-618:
# transactional source tasks) and the sink reads read_committed; then the topic must have no
# duplicates at all, kill -9 included.
#
#   compat/ecosystem/connect/run.sh
#   BROOK_BIN=/path/to/brook compat/ecosystem/connect/run.sh    # default target/debug/brook
#   KAFKA_VERSION=4.4.0 compat/ecosystem/connect/run.sh          # other Kafka jars (-Dkafka.version)
#   EXACTLY_ONCE=1 compat/ecosystem/connect/run.sh               # worker with exactly.once.source.support=enabled
#
# Progress on stderr; the last line of stdout is
#   {"scenario": "connect.file_pipeline" (EXACTLY_ONCE=1: "connect.file_pipeline_eos"), "status": "pass"|"fail", "detail": "..."}
# exit 0 on pass, 1 on fail. Logs (worker, broker, files) of the last run:
# compat/.cache/ecosystem/connect/last-run/. Jars: Maven (pom.xml here), cached in
# compat/.cache/ecosystem/connect/jars[-VERSION], Maven repository compat/.cache/m2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
CACHE="$REPO/compat/.cache"
ECO="$CACHE/ecosystem/connect"
KAFKA_VERSION="${KAFKA_VERSION:-}" # empty: the version pinned in pom.xml
JARS="$ECO/jars${KAFKA_VERSION:+-$KAFKA_VERSION}"
STAMP="$JARS.stamp"
RUN="$ECO/last-run"
BROOK_BIN="${BROOK_BIN:-$REPO/target/debug/brook}"
SCENARIO="connect.file_pipeline${EXACTLY_ONCE:+_eos}"
N1="${N1:-500}" N2="${N2:-300}" N3="${N3:-200}"
TOPIC="file-lines"
JVM_OPTS=(-Xshare:auto -XX:+UseSerialGC -Xmx512m -XX:TieredStopAtLevel=1)

T0="$(date +%s.%N)"
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[connect %6ss] %s\n' "$(elapsed)" "$*" >&2; }
NOTES=()
note() { NOTES+=("$*"); log "$*"; }

BROKER_PID="" WORKER_PID=""
finish() { # status detail
  local status="$1" detail="$2"
  stop_worker_quietly
  if [[ -n "$BROKER_PID" ]]; then kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; BROKER_PID=""; fi
  python3 -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "status": sys.argv[2], "detail": sys.argv[3]}))' \
    "$SCENARIO" "$status" "$detail"
  log "$status in $(elapsed)s (logs: $RUN)"
  [[ "$status" == pass ]] && exit 0 || exit 1
}
fail() {
  local msg="$*" extra
  extra="$(worker_problems)"
  [[ -n "$extra" ]] && msg="$msg; $extra"
  ((${#NOTES[@]})) && msg="$msg; notes: $(IFS=';'; echo "${NOTES[*]}")"
  log "FAIL: $msg"
  finish fail "$msg"
}
stop_worker_quietly() {
  if [[ -n "$WORKER_PID" ]]; then kill -9 "$WORKER_PID" 2>/dev/null || true; wait "$WORKER_PID" 2>/dev/null || true; WORKER_PID=""; fi
}
trap 'stop_worker_quietly; [[ -n "$BROKER_PID" ]] && kill "$BROKER_PID" 2>/dev/null; true' EXIT
trap 'fail "interrupted"' INT TERM

# Errors and warnings from the worker logs that point at the broker (protocol-level trouble).
worker_problems() {
  local f hits
  hits="$(cat "$RUN"/worker-*.log 2>/dev/null | grep -E 'UnsupportedVersion|UNSUPPORTED_VERSION|InvalidRequest|CorruptRecord|UnknownServerException|UNKNOWN_SERVER_ERROR|InvalidConfiguration|PolicyViolation|Unexpected error code' \
    | sed -E 's/^\[[^]]*\] //' | sort | uniq -c | sort -rn | head -5 | sed -E 's/^ +//' | cut -c1-300 || true)"
  [[ -n "$hits" ]] && echo "worker log: $(echo "$hits" | tr '\n' '|')"
  true
}

# ---- jars (cached) ----------------------------------------------------------------------
command -v java >/dev/null || { RUN=/tmp; fail "java not found"; }
command -v curl >/dev/null || { RUN=/tmp; fail "curl not found"; }
[[ -x "$BROOK_BIN" ]] || { RUN=/tmp; fail "no brook binary at $BROOK_BIN"; }
mkdir -p "$ECO"
h="$( (cat "$HERE/pom.xml"; echo "$KAFKA_VERSION") | sha256sum | cut -c1-32)"
if ! [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" ]]; then
  exec 9>"$ECO/.lock"
  flock -w 600 9 || fail "timed out waiting for another jar download"
  if ! [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" ]]; then
    log "fetching Connect jars (mvn dependency:copy-dependencies, repository $CACHE/m2)"
    rm -rf "$JARS" && mkdir -p "$JARS"
    timeout 600 mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
      ${KAFKA_VERSION:+-Dkafka.version="$KAFKA_VERSION"} dependency:copy-dependencies -DoutputDirectory="$JARS" >&2 || fail "mvn dependency:copy-dependencies failed"
    echo "$h" >"$STAMP"
  fi
  exec 9>&-
fi
log "jars: $(ls "$JARS" | grep -E '^(connect-(runtime|file)|kafka-clients)-' | tr '\n' ' ')"

# ---- broker ------------------------------------------------------------------------------
rm -rf "$RUN" && mkdir -p "$RUN"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
BPORT="$(free_port)"
BOOT="127.0.0.1:$BPORT"
NO_COLOR=1 BROOK_LOG="${BROOK_LOG:-info}" "$BROOK_BIN" serve --listen "$BOOT" --data-dir "$RUN/brook-data" \
  --set log.cleaner.backoff.ms=500 --set group.initial.rebalance.delay.ms=0 --set admin.listeners= >"$RUN/broker.log" 2>&1 &
BROKER_PID=$!
for i in $(seq 200); do
  grep -q ready "$RUN/broker.log" 2>/dev/null && break
  kill -0 "$BROKER_PID" 2>/dev/null || { BROKER_PID=""; fail "brook exited at startup: $(tail -3 "$RUN/broker.log" | tr '\n' ' ')"; }
  ((i == 200)) && fail "brook not ready after 20s"
  sleep 0.1
done
log "brook ready on $BOOT ($BROOK_BIN)"

# ---- worker ------------------------------------------------------------------------------
RPORT="$(free_port)"
REST="http://127.0.0.1:$RPORT"
IN="$RUN/input.txt" OUT="$RUN/output.txt"
: >"$IN"
cat >"$RUN/worker.properties" <<EOF
bootstrap.servers=$BOOT
group.id=brook-connect
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
config.storage.topic=brook-connect-configs
offset.storage.topic=brook-connect-offsets
status.storage.topic=brook-connect-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:$RPORT
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$RPORT
plugin.discovery=only_scan
# one worker, restarted: do not hold the lost tasks back for the default 5 minutes
scheduled.rebalance.max.delay.ms=0
session.timeout.ms=6000
heartbeat.interval.ms=2000
# the sink's consumer: a killed member is dropped after 6 s instead of 45 s
consumer.session.timeout.ms=6000
consumer.heartbeat.interval.ms=2000
EOF
if [[ -n "${EXACTLY_ONCE:-}" ]]; then
  # KIP-618: transactional source tasks (records + source offsets in one transaction),
  # transactional config-topic writes by the leader, producer fencing on task reassignment
  printf 'exactly.once.source.support=enabled\nconsumer.isolation.level=read_committed\n' >>"$RUN/worker.properties"
  log "exactly.once.source.support=enabled"
fi
WORKER_N=0
start_worker() {
  WORKER_N=$((WORKER_N + 1))
  java "${JVM_OPTS[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
    -Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn \
    -Dorg.slf4j.simpleLogger.log.org.reflections=warn -Dorg.slf4j.simpleLogger.log.org.eclipse.jetty=warn \
    -cp "$JARS/*" org.apache.kafka.connect.cli.ConnectDistributed "$RUN/worker.properties" \
    >"$RUN/worker-$WORKER_N.log" 2>&1 &
  WORKER_PID=$!
  local i
  for i in $(seq 120); do
    kill -0 "$WORKER_PID" 2>/dev/null || { WORKER_PID=""; fail "worker $WORKER_N exited: $(grep -E 'ERROR|Exception' "$RUN/worker-$WORKER_N.log" | head -3 | cut -c1-300 | tr '\n' ' ')"; }
    # GET /connectors answers only once the worker has joined the group and read the config topic
    if curl -sf -m 5 "$REST/connectors" >/dev/null 2>&1; then
      log "worker $WORKER_N (pid $WORKER_PID) serving REST on $REST"
      return 0
    fi
    ((i == 120)) && fail "worker $WORKER_N: REST not answering after 60s"
    sleep 0.5
  done
}

put_connector() { # name json
  local code
  code="$(curl -s -m 20 -o "$RUN/put-$1.json" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data "$2" "$REST/connectors/$1/config")" || true
  [[ "$code" == 200 || "$code" == 201 ]] || fail "PUT /connectors/$1/config: HTTP $code $(head -c 300 "$RUN/put-$1.json" 2>/dev/null)"
  log "connector $1 created (HTTP $code)"
}

wait_running() { # name -> both the connector and task 0 RUNNING, 90 s
  local s i
  for i in $(seq 180); do
    s="$(curl -s -m 5 "$REST/connectors/$1/status" 2>/dev/null || true)"
    if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["connector"]["state"]=="RUNNING" and d["tasks"] and all(t["state"]=="RUNNING" for t in d["tasks"]) else 1)' "$s" 2>/dev/null; then
      return 0
    fi
    if [[ "$s" == *FAILED* ]]; then fail "connector $1 FAILED: $(echo "$s" | cut -c1-600)"; fi
    ((i == 180)) && fail "connector $1 not RUNNING after 90s: $(echo "$s" | cut -c1-300)"
    sleep 0.5
  done
}

append_lines() { # from to
  local i
  for ((i = $1; i <= $2; i++)); do printf 'line-%05d the quick brown fox %d\n' "$i" "$((i * 7919 % 10007))"; done >>"$IN"
}

# Compare the sink file with the input file. Prints a JSON summary; exit 0 when every input
# line is there, in first-occurrence order, and nothing else.
CHECK_PY='
import json, sys
exp = open(sys.argv[1]).read().splitlines()
got = open(sys.argv[2]).read().splitlines() if __import__("os").path.exists(sys.argv[2]) else []
want = set(exp)
seen, order = set(), []
for l in got:
    if l not in seen:
        seen.add(l); order.append(l)
unexpected = [l for l in order if l not in want]
missing = [l for l in exp if l not in seen]
order_ok = [l for l in order if l in want] == [l for l in exp if l in seen]
dups = len(got) - len(order)
# duplicated input lines (1-based line numbers) as ranges, e.g. "740-800": at-least-once
# redelivery shows up as a replay of the lines after the last committed source offset
idx = {l: i + 1 for i, l in enumerate(exp)}
counts = {}
for l in got:
    counts[l] = counts.get(l, 0) + 1
dl = sorted(idx[l] for l, c in counts.items() if c > 1 and l in idx)
ranges = []
for n in dl:
    if ranges and ranges[-1][1] == n - 1: ranges[-1][1] = n
    else: ranges.append([n, n])
r = {"expected": len(exp), "lines": len(got), "distinct": len(order), "missing": len(missing),
     "duplicates": dups, "duplicated_lines": ",".join("%d-%d" % (a, b) if a != b else str(a) for a, b in ranges),
     "unexpected": len(unexpected), "in_order": order_ok,
     "first_missing": missing[:2], "first_unexpected": unexpected[:2]}
print(json.dumps(r))
sys.exit(0 if not missing and not unexpected and order_ok else 1)
'
LAST_CHECK=""
wait_delivered() { # phase label, 90 s
  local i
  for i in $(seq 180); do
    if LAST_CHECK="$(python3 -c "$CHECK_PY" "$IN" "$OUT")"; then
      log "$1: all $(wc -l <"$IN") lines in the sink file: $LAST_CHECK"
      return 0
    fi
    ((i == 180)) && fail "$1: sink file incomplete after 90s: $LAST_CHECK"
    sleep 0.5
  done
}

SOURCE_CFG="$(printf '{"connector.class":"org.apache.kafka.connect.file.FileStreamSourceConnector","tasks.max":"1","file":"%s","topic":"%s"}' "$IN" "$TOPIC")"
SINK_CFG="$(printf '{"connector.class":"org.apache.kafka.connect.file.FileStreamSinkConnector","tasks.max":"1","file":"%s","topics":"%s"}' "$OUT" "$TOPIC")"

# ---- phase 1 -------------------------------------------------------------------------------
append_lines 1 "$N1"
start_worker
put_connector file-source "$SOURCE_CFG"
put_connector file-sink "$SINK_CFG"
wait_running file-source
wait_running file-sink
log "both connectors RUNNING"
wait_delivered "phase 1"
P1="$LAST_CHECK"

# ---- phase 2: SIGTERM, append, restart ------------------------------------------------------
sleep 1.5 # let one offset flush (offset.flush.interval.ms=1000) happen after delivery
log "stopping worker $WORKER_N with SIGTERM"
kill "$WORKER_PID"
stopped=""
for i in $(seq 60); do
  kill -0 "$WORKER_PID" 2>/dev/null || { stopped=1; break; }
  sleep 0.5
done
if [[ -z "$stopped" ]]; then
  note "worker did not exit within 30s of SIGTERM; kill -9"
  kill -9 "$WORKER_PID" 2>/dev/null || true
fi
wait "$WORKER_PID" 2>/dev/null || true
WORKER_PID=""
append_lines "$((N1 + 1))" "$((N1 + N2))"
start_worker
wait_running file-source
wait_running file-sink
wait_delivered "phase 2 (after SIGTERM + restart)"
P2="$LAST_CHECK"

# ---- phase 3: kill -9, append, restart ------------------------------------------------------
log "killing worker $WORKER_N with SIGKILL"
kill -9 "$WORKER_PID"
wait "$WORKER_PID" 2>/dev/null || true
WORKER_PID=""
append_lines "$((N1 + N2 + 1))" "$((N1 + N2 + N3))"
start_worker
wait_running file-source
wait_running file-sink
wait_delivered "phase 3 (after kill -9 + restart)"
P3="$LAST_CHECK"

# ---- internal topics ------------------------------------------------------------------------
check() { timeout 90 java "${JVM_OPTS[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$JARS/*" "$HERE/ConnectCheck.java" "$@" 2>>"$RUN/check.err"; }
TC="$(check configs "$BOOT" brook-connect-configs brook-connect-offsets brook-connect-status "$TOPIC")" || true
echo "$TC" >"$RUN/topic-configs.txt"
log "topics: $(echo "$TC" | tr '\n' ';')"
for t in brook-connect-configs brook-connect-offsets brook-connect-status; do
  echo "$TC" | grep -q "^$t .*cleanup.policy=compact" || fail "internal topic $t not compacted: $(echo "$TC" | grep "^$t" | head -1) $(grep -v '^\s*at ' "$RUN/check.err" 2>/dev/null | head -c 300)"
done

# the topic itself (read_committed): duplicates there come from the source side (re-read after
# a restart), duplicates only in the sink file from the sink side (re-delivery)
TR="$(check records "$BOOT" "$TOPIC")" || fail "reading topic $TOPIC: $TR $(grep -v '^\s*at ' "$RUN/check.err" | head -c 300)"
log "topic $TOPIC (read_committed): $TR"
tdup="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["duplicates"])' "$TR")"
tcount="$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["distinct"])' "$TR")"
((tcount == N1 + N2 + N3)) || fail "topic $TOPIC holds $tcount distinct lines, expected $((N1 + N2 + N3)): $TR"
if [[ -n "${EXACTLY_ONCE:-}" ]] && ((tdup > 0)); then
  fail "exactly.once.source.support=enabled but topic $TOPIC has $tdup duplicate records (read_committed): $TR"
fi

dups() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["duplicates"])' "$1"; }
dupl() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["duplicated_lines"])' "$1"; }
total=$((N1 + N2 + N3))
d2="$(dups "$P2")" d3="$(dups "$P3")"
p2dup="$d2"
((d2 == 0)) || p2dup="$d2, input lines $(dupl "$P2") twice"
if ((d3 == 0)); then
  sem="no duplicates (exactly once in this run)"
else
  sem="at least once: $d3 duplicate lines in the sink file, input lines $(dupl "$P3") twice"
  if ((tdup == d3)); then
    sem="$sem, all from the source side ($tdup duplicate records in the topic: re-read after kill -9, the worker died before its next source offset flush)"
  else
    sem="$sem ($tdup of them duplicated in the topic, the rest re-delivered by the sink)"
  fi
fi
[[ -n "${EXACTLY_ONCE:-}" ]] && sem="$sem; exactly.once.source.support=enabled: topic has 0 duplicates (read_committed)"
problems="$(worker_problems)"
detail="distributed worker, FileStreamSource->'$TOPIC'->FileStreamSink: phase1 $N1/$N1 lines; after SIGTERM+restart $((N1 + N2)) lines (duplicates: $p2dup); after kill -9+restart $total lines, all present in order, $sem; connectors restored from the config topic, source resumed from the offset topic; internal topics compacted ($(echo "$TC" | grep -E '^brook-connect' | awk '{print $1":"$2}' | sed 's/brook-connect-//' | tr '\n' ' ' | sed 's/ $//'))"
[[ -n "$problems" ]] && detail="$detail; $problems"
((${#NOTES[@]})) && detail="$detail; notes: $(IFS=';'; echo "${NOTES[*]}")"
finish pass "$detail"
