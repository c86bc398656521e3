#!/usr/bin/env bash
# End-to-end: a real Kafka Streams 4.4.0 exactly_once_v2 word count (repartition + RocksDB
# store with a compacted changelog) against one `brook serve`, killed with SIGKILL part-way
# and restarted; the read_committed output must hold exactly the right final count per word.
#
#   compat/ecosystem/streams/run.sh
#   BROOK_BIN=/path/to/brook compat/ecosystem/streams/run.sh
#   STREAMS_LINES=20000 THROTTLE_MS_PER_100_LINES=15 STREAM_THREADS=1 compat/ecosystem/streams/run.sh
#   RESTART_FRESH_STATE=1 ...      # restart with a new state dir (new transactional.id)
#   PROCESSING_GUARANTEE=at_least_once ...   # negative control: the crash usually shows
#
# Progress on stderr; the last line of stdout is
#   {"scenario": "streams.eos_wordcount", "status": "pass"|"fail", "detail": "..."}
# exit 0 on pass, 1 on fail. Logs of the last run (broker, both app runs, driver) are in
# compat/.cache/ecosystem/streams/last-run/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
CACHE="$REPO/compat/.cache"
OUT="$CACHE/ecosystem/streams"
JARS="$OUT/jars"
CLASSES="$OUT/classes"
RUN="$OUT/last-run"
BROOK_BIN="${BROOK_BIN:-$REPO/target/debug/brook}"
LINES="${STREAMS_LINES:-20000}"
export THROTTLE_MS_PER_100_LINES="${THROTTLE_MS_PER_100_LINES:-15}"
export STREAM_THREADS="${STREAM_THREADS:-1}"
PYTHON="${PYTHON:-python3}"
JVM_OPTS=(-Xshare:auto -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx384m
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn
  -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS)
APP_JVM_OPTS=("${JVM_OPTS[@]}" -Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams.KafkaStreams=info)

T0="$(date +%s.%N)"
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '[%5ss] %s\n' "$(since)" "$*" >&2; }

BROKER_PID=""
APP_PID=""
cleanup() {
  [[ -n "$APP_PID" ]] && kill -9 "$APP_PID" 2>/dev/null || true
  [[ -n "$BROKER_PID" ]] && kill "$BROKER_PID" 2>/dev/null || true
  [[ -n "$BROKER_PID" ]] && { sleep 0.3; kill -9 "$BROKER_PID" 2>/dev/null || true; }
  return 0
}
trap cleanup EXIT

finish() { # status detail
  local status="$1" detail="$2"
  step "$status ($(since) s): $detail"
  "$PYTHON" -c 'import json, sys; print(json.dumps({"scenario": "streams.eos_wordcount", "status": sys.argv[1], "detail": sys.argv[2]}))' \
    "$status" "$detail"
  cleanup
  BROKER_PID="" APP_PID=""
  [[ "$status" == pass ]] && exit 0 || exit 1
}
fail() { finish fail "$*"; }

show_tail() { # file label
  [[ -s "$1" ]] || return 0
  echo "---- last lines of $2 ($1) ----" >&2
  tail -n "${3:-25}" "$1" >&2
  echo "----" >&2
}

# ---- build (cached) ---------------------------------------------------------------------
jv="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
[[ -n "$jv" && "${jv%%.*}" -ge 17 ]] || fail "Kafka Streams 4 needs Java 17+, found '${jv}'"
[[ -x "$BROOK_BIN" ]] || fail "no brook binary at $BROOK_BIN (set BROOK_BIN)"
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
jars_hash="$(sha256sum < "$HERE/pom.xml" | cut -c1-32)"
if [[ ! -f "$OUT/jars.stamp" || "$(cat "$OUT/jars.stamp")" != "$jars_hash" ]]; then
  step "fetching kafka-streams 4.4.0 jars (mvn dependency:copy-dependencies, repository $CACHE/m2)"
  rm -rf "$JARS" && mkdir -p "$JARS"
  timeout 900 mvn -q -B -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$JARS" >&2 || fail "mvn dependency:copy-dependencies failed"
  echo "$jars_hash" > "$OUT/jars.stamp"
fi
src_hash="$( { echo "$jars_hash"; cat "$HERE"/src/main/java/brook/streams/*.java; } | sha256sum | cut -c1-32)"
if [[ ! -f "$OUT/classes.stamp" || "$(cat "$OUT/classes.stamp")" != "$src_hash" ]]; then
  step "javac WordCountApp.java Driver.java"
  rm -rf "$CLASSES" && mkdir -p "$CLASSES"
  javac -nowarn -d "$CLASSES" -cp "$JARS/*" "$HERE"/src/main/java/brook/streams/*.java >&2 || fail "javac failed"
  echo "$src_hash" > "$OUT/classes.stamp"
fi
flock -u 9
CP="$JARS/*:$CLASSES"

# ---- broker -----------------------------------------------------------------------------
rm -rf "$RUN" && mkdir -p "$RUN/data" "$RUN/state"
BLOG="$RUN/broker.log"
port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BOOT="127.0.0.1:$port"
step "starting $BROOK_BIN on $BOOT (log $BLOG)"
NO_COLOR=1 BROOK_LOG="${BROOK_LOG:-info}" "$BROOK_BIN" serve --listen "$BOOT" --data-dir "$RUN/data" \
  --set log.cleaner.backoff.ms=500 --set group.initial.rebalance.delay.ms=0 --set admin.listeners= >"$BLOG" 2>&1 &
BROKER_PID=$!
for _ in $(seq 150); do
  grep -qw ready "$BLOG" 2>/dev/null && break
  kill -0 "$BROKER_PID" 2>/dev/null || { show_tail "$BLOG" broker; BROKER_PID=""; fail "brook exited at startup"; }
  sleep 0.1
done
grep -qw ready "$BLOG" || { show_tail "$BLOG" broker; fail "brook did not print ready within 15 s"; }
broker_alive() { kill -0 "$BROKER_PID" 2>/dev/null; }

driver() { # timeout_s cmd args... -> stdout: the driver's JSON line; stderr goes to the terminal and driver.log
  local t="$1"; shift
  timeout -k 5 "$t" java "${JVM_OPTS[@]}" -cp "$CP" brook.streams.Driver "$1" "$BOOT" "${@:2}" \
    2> >(tee -a "$RUN/driver.log" >&2)
}
json_get() { "$PYTHON" -c 'import json, sys; d = json.loads(sys.argv[1]); print(d.get(sys.argv[2]))' "$1" "$2" 2>/dev/null || echo "?"; }

start_app() { # n state-dir
  step "starting the Streams app (run $1, state $2, log $RUN/app$1.log)"
  java "${APP_JVM_OPTS[@]}" -cp "$CP" brook.streams.WordCountApp "$BOOT" "$2" >"$RUN/app$1.log" 2>&1 &
  APP_PID=$!
}

# ---- input ------------------------------------------------------------------------------
step "producing $LINES lines to wc-input"
produced="$(driver 60 produce "$LINES" | tail -n 1)" || { show_tail "$BLOG" broker; fail "producing the input failed: $produced"; }
WORDS="$(json_get "$produced" words)"

# ---- run 1, killed part-way -------------------------------------------------------------
start_app 1 "$RUN/state"
rc=0
progress="$(driver 90 wait-progress 0.25 0.90 75 | tail -n 1)" || rc=$?
if ((rc != 0)); then
  show_tail "$RUN/app1.log" "app run 1" 40
  show_tail "$BLOG" broker
  kill -0 "$APP_PID" 2>/dev/null || fail "the Streams app died before committing a quarter of the input (see app1.log)"
  ((rc == 3)) && fail "the app finished before it could be killed (raise STREAMS_LINES or THROTTLE_MS_PER_100_LINES): $progress"
  fail "the app did not commit a quarter of the input in time (rc $rc): $progress"
fi
KILLED_AT="$(json_get "$progress" committed)"
step "kill -9 the Streams app (pid $APP_PID) with $KILLED_AT/$LINES input records committed"
kill -9 "$APP_PID"
wait "$APP_PID" 2>/dev/null || true
APP_PID=""
grep -E "ERROR|Exception" "$RUN/app1.log" | head -n 5 >&2 || true

# ---- run 2, to the end ------------------------------------------------------------------
# The same state directory: the same process id, so the same transactional.id, whose
# InitProducerId fences the killed producer and aborts its open transaction.
# RESTART_FRESH_STATE=1: a new one (new transactional.id): the killed instance's open
# transaction is then only aborted by the broker's transaction timeout (Streams: 10 s).
STATE2="$RUN/state"
[[ "${RESTART_FRESH_STATE:-0}" == 1 ]] && STATE2="$RUN/state-fresh"
start_app 2 "$STATE2"
rc=0
verified="$(driver 150 verify "$LINES" 120 4 | tail -n 1)" || rc=$?
if ((rc != 0)); then
  show_tail "$RUN/app2.log" "app run 2" 40
  show_tail "$BLOG" broker
  broker_alive || fail "brook died (see $BLOG); verify: $verified"
  kill -0 "$APP_PID" 2>/dev/null || fail "the restarted Streams app died; verify: $verified"
  fail "read_committed output not exact: $verified"
fi
kill -0 "$APP_PID" 2>/dev/null || { show_tail "$RUN/app2.log" "app run 2" 40; fail "the restarted Streams app exited on its own"; }

# ---- the changelog ----------------------------------------------------------------------
CHANGELOG=brook-eos-wordcount-counts-changelog
compacted_lines() { grep -a "compacted log" "$BLOG" | grep -a -c "$CHANGELOG" || true; }
for _ in $(seq 40); do # the cleaner runs every 500 ms on closed segments; wait up to 10 s
  (( $(compacted_lines) > 0 )) && break
  sleep 0.25
done
COMPACTIONS="$(compacted_lines)"
REMOVED="$(grep -a "compacted log" "$BLOG" | grep -a "$CHANGELOG" | sed -n 's/.*records_removed=\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')"
step "brook log: $COMPACTIONS 'compacted log' lines for $CHANGELOG, $REMOVED records removed"
grep -a "compacted log" "$BLOG" | grep -a "$CHANGELOG" | head -n 3 >&2 || true
rc=0
changelog="$(driver 60 changelog "$LINES" | tail -n 1)" || rc=$?
((rc == 0)) || fail "changelog check failed: $changelog"

# ---- a clean shutdown, then the broker's health -----------------------------------------
step "stopping the Streams app (SIGTERM)"
kill -TERM "$APP_PID"
CLEAN_STOP=no
for _ in $(seq 150); do
  kill -0 "$APP_PID" 2>/dev/null || { CLEAN_STOP=yes; break; }
  sleep 0.1
done
if [[ "$CLEAN_STOP" == no ]]; then kill -9 "$APP_PID" 2>/dev/null || true; fi
wait "$APP_PID" 2>/dev/null || true
APP_PID=""
broker_alive || { show_tail "$BLOG" broker; fail "brook exited during the run"; }
# The SIGKILLed app's connections end in resets, which brook logs at WARN: counted apart.
RESETS="$(grep -a -E " (WARN|ERROR) " "$BLOG" | grep -a -c "Connection reset by peer" || true)"
BROKER_WARN="$(grep -a -E " (WARN|ERROR) " "$BLOG" | grep -a -v -c "Connection reset by peer" || true)"
if ((BROKER_WARN > 0)); then
  step "brook logged $BROKER_WARN WARN/ERROR lines (besides $RESETS connection resets):"
  grep -a -E " (WARN|ERROR) " "$BLOG" | grep -a -v "Connection reset by peer" | head -n 10 >&2
fi
# After a SIGKILL under EOS, Streams wipes the local stores it finds without a checkpoint and
# restores them from the changelog: TaskManager logs that TaskCorruptedException at ERROR. It is
# expected and shown as "restored"; any other ERROR line is counted.
RESTORED="$(grep -a -c "TaskCorruptedException" "$RUN/app2.log" || true)"
APP_ERRORS="$(cat "$RUN/app1.log" "$RUN/app2.log" | grep -a " ERROR " | grep -a -v -c "TaskCorruptedException" || true)"
((APP_ERRORS == 0)) || { step "the app logged $APP_ERRORS ERROR lines:"; cat "$RUN/app1.log" "$RUN/app2.log" | grep -a " ERROR " | grep -a -v "TaskCorruptedException" | head -n 5 | cut -c1-400 >&2; }

detail="$(V="$verified" C="$changelog" "$PYTHON" - "$LINES" "$WORDS" "$KILLED_AT" "$RESTORED" "$COMPACTIONS" "$REMOVED" \
  "$CLEAN_STOP" "$BROKER_WARN" "$RESETS" "$APP_ERRORS" "${RESTART_FRESH_STATE:-0}" <<'PY'
import json, os, sys
lines, words, killed, restored, compactions, removed, clean, bwarn, resets, aerr, fresh = sys.argv[1:]
stores = ("in a new state directory, restored from the changelog" if fresh == "1" else
          "wiped and restored from the changelog" if int(restored) else "reused")
v, c = json.loads(os.environ["V"]), json.loads(os.environ["C"])
print(f"{lines} input lines ({words} words, {v['words']} distinct); killed run 1 (SIGKILL) with {killed} input "
      f"records committed; run 2 (local stores {stores}) "
      f"finished: {v['committed_records']} committed output records, each word read 1..N with no repeat or gap, all "
      f"final counts exact, {v['aborted_visible_to_read_uncommitted']} more records only in aborted transactions "
      f"(read_uncommitted); changelog cleanup.policy={c['cleanup_policy']}, latest values exact, "
      f"{c['readable_records']} readable records for {c['keys']} keys (end offsets sum {c['end_offset_sum']}), brook "
      f"compacted it {compactions} times ({removed} records removed); repartition purged (DeleteRecords) to "
      f"{c['repartition_start_sum']} of {c['repartition_end_sum']}; clean stop {clean}; brook WARN/ERROR lines {bwarn} (+{resets} connection resets from the killed app), "
      f"other app ERROR lines {aerr}")
PY
)" || detail="(could not summarise: verify $verified changelog $changelog)"
[[ "$CLEAN_STOP" == yes ]] || { show_tail "$RUN/app2.log" "app run 2" 30; fail "the Streams app did not stop within 15 s of SIGTERM; $detail"; }
finish pass "$detail"
