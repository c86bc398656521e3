#!/usr/bin/env bash
# MirrorMaker 2 end to end against Brook: two `brook serve` brokers, a and b, and the dedicated
# MirrorMaker 2 driver (org.apache.kafka.connect.mirror.MirrorMaker; Kafka 4.3.1, see pom.xml
# for why not 4.4.0) with clusters = a, b and a->b enabled, everything else left at its
# default except replication factors (1) and short intervals.
#
#   1. on a: topic "orders" (3 partitions), N1 records; group "billing" (classic protocol)
#      reads C1 of them and commits.
#   2. MirrorMaker starts; b must get a.orders with exactly the N1 records (each partition
#      in order, no duplicates, nothing else).
#   3. N2 more records on a while MirrorMaker runs; b must get them too (N1+N2).
#   4. group offsets: the checkpoint connector (emit.checkpoints, sync.group.offsets) must
#      write "billing"'s committed offsets on b for a.orders, translated: they must appear,
#      and never be ahead of the offsets committed on a (partition offsets are the same on
#      both sides here). Exact or conservative (MM2 translates to the nearest offset sync at
#      or below) is reported. Then "billing" reads C2 more records on a and commits; the
#      offsets on b must move forward to the new translation.
#   5. MirrorMaker's own topics on b (a.checkpoints.internal, heartbeats, mm2-*.internal),
#      the offset-syncs topic on a, and topic config sync are reported.
#
#   compat/ecosystem/mirror/run.sh
#   BROOK_BIN=/path/to/brook compat/ecosystem/mirror/run.sh    # default target/debug/brook
#   KAFKA_VERSION=4.4.0 compat/ecosystem/mirror/run.sh          # other Kafka jars (-Dkafka.version)
#
# Progress on stderr; the last line of stdout is
#   {"scenario": "mirror.mm2", "status": "pass"|"fail", "detail": "..."}
# exit 0 on pass, 1 on fail. Logs of the last run (MirrorMaker, both brokers, the helper):
# compat/.cache/ecosystem/mirror/last-run/. Jars: Maven (pom.xml here), cached in
# compat/.cache/ecosystem/mirror/jars[-VERSION], Maven repository compat/.cache/m2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
CACHE="$REPO/compat/.cache"
ECO="$CACHE/ecosystem/mirror"
KAFKA_VERSION="${KAFKA_VERSION:-}" # empty: the version pinned in pom.xml
JARS="$ECO/jars${KAFKA_VERSION:+-$KAFKA_VERSION}"
STAMP="$JARS.stamp"
CLASSES="$JARS.classes"
RUN="$ECO/last-run"
BROOK_BIN="${BROOK_BIN:-$REPO/target/debug/brook}"
SCENARIO="mirror.mm2"
TOPIC="orders" PARTS=3 GROUP="billing"
N1="${N1:-600}" N2="${N2:-400}" C1="${C1:-250}" C2="${C2:-500}"
JVM_OPTS=(-Xshare:auto -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

T0="$(date +%s.%N)"
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[mirror %6ss] %s\n' "$(elapsed)" "$*" >&2; }
NOTES=()
note() { NOTES+=("$*"); log "note: $*"; }

PIDS=()
stop_all() { # newest first (MirrorMaker before the brokers), SIGTERM, then SIGKILL after 10 s
  local i p
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    p="${PIDS[i]}"
    kill "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}
finish() { # status detail
  stop_all
  python3 -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "status": sys.argv[2], "detail": sys.argv[3]}))' \
    "$SCENARIO" "$1" "$2"
  log "$1 in $(elapsed)s (logs: $RUN)"
  [[ "$1" == pass ]] && exit 0 || exit 1
}
mm2_problems() {
  local hits
  hits="$(cat "$RUN"/mm2.log 2>/dev/null | grep -E 'UnsupportedVersion|UNSUPPORTED_VERSION|InvalidRequest|CorruptRecord|UnknownServerException|UNKNOWN_SERVER_ERROR|Unexpected error code|InvalidConfiguration|NOT_CONTROLLER|UnsupportedForMessageFormat' \
    | grep -oE '(UnsupportedVersion|UNSUPPORTED_VERSION|InvalidRequest|CorruptRecord|UnknownServerException|UNKNOWN_SERVER_ERROR|Unexpected error code|InvalidConfiguration|NOT_CONTROLLER|UnsupportedForMessageFormat)[A-Za-z]*(: [^.]{0,160})?' \
    | sort | uniq -c | sort -rn | head -5 | sed -E 's/^ +//' || true)"
  [[ -n "$hits" ]] && echo "mm2 log: $(echo "$hits" | tr '\n' '|')"
  true
}
fail() {
  local msg="$*" extra
  extra="$(mm2_problems)"
  [[ -n "$extra" ]] && msg="$msg; $extra"
  ((${#NOTES[@]})) && msg="$msg; notes: $(IFS=';'; echo "${NOTES[*]}")"
  log "FAIL: $msg"
  finish fail "$msg"
}
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; true' EXIT
trap 'fail "interrupted"' INT TERM

# ---- jars + helper (cached) ---------------------------------------------------------------
command -v java >/dev/null || { RUN=/tmp; fail "java not found"; }
[[ -x "$BROOK_BIN" ]] || { RUN=/tmp; fail "no brook binary at $BROOK_BIN"; }
mkdir -p "$ECO"
h="$( (cat "$HERE/pom.xml"; echo "$KAFKA_VERSION") | sha256sum | cut -c1-32)"
hc="$( (echo "$h"; cat "$HERE/MirrorCheck.java") | sha256sum | cut -c1-32)"
if ! [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" && -f "$CLASSES/stamp" && "$(cat "$CLASSES/stamp")" == "$hc" ]]; then
  exec 9>"$ECO/.lock"
  flock -w 600 9 || fail "timed out waiting for another jar download"
  if ! [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" ]]; then
    log "fetching MirrorMaker jars (mvn dependency:copy-dependencies, repository $CACHE/m2)"
    rm -rf "$JARS" && mkdir -p "$JARS"
    timeout 600 mvn -q -B -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
      ${KAFKA_VERSION:+-Dkafka.version="$KAFKA_VERSION"} dependency:copy-dependencies -DoutputDirectory="$JARS" >&2 \
      || fail "mvn dependency:copy-dependencies failed"
    echo "$h" >"$STAMP"
  fi
  if ! [[ -f "$CLASSES/stamp" && "$(cat "$CLASSES/stamp")" == "$hc" ]]; then
    log "compiling MirrorCheck.java"
    rm -rf "$CLASSES" && mkdir -p "$CLASSES"
    javac -nowarn -cp "$JARS/*" -d "$CLASSES" "$HERE/MirrorCheck.java" >&2 || fail "javac MirrorCheck.java failed"
    echo "$hc" >"$CLASSES/stamp"
  fi
  exec 9>&-
fi
log "jars: $(ls "$JARS" | grep -E '^(connect-(runtime|mirror)|kafka-clients)-' | tr '\n' ' ')"

check() { # helper command, output (one JSON line) on stdout, its stack traces in check.log
  timeout 150 java "${JVM_OPTS[@]}" -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$CLASSES:$JARS/*" MirrorCheck "$@" 2>>"$RUN/check.log" | tail -1
  return "${PIPESTATUS[0]}"
}
jfield() { python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])[sys.argv[2]]))' "$1" "$2"; } # json key

# ---- brokers ----------------------------------------------------------------------------------
rm -rf "$RUN" && mkdir -p "$RUN"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_broker() { # name -> prints bootstrap
  local port
  port="$(free_port)"
  NO_COLOR=1 BROOK_LOG="${BROOK_LOG:-info}" "$BROOK_BIN" serve --listen "127.0.0.1:$port" --data-dir "$RUN/brook-$1" \
    --set log.cleaner.backoff.ms=500 --set group.initial.rebalance.delay.ms=0 --set admin.listeners= >"$RUN/broker-$1.log" 2>&1 &
  PIDS+=($!)
  local pid=$! i
  for i in $(seq 200); do
    grep -q ready "$RUN/broker-$1.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || fail "brook $1 exited at startup: $(tail -3 "$RUN/broker-$1.log" | tr '\n' ' ')"
    ((i == 200)) && fail "brook $1 not ready after 20s"
    sleep 0.1
  done
  eval "BOOT_$1=127.0.0.1:$port"
  log "brook $1 ready on 127.0.0.1:$port"
}
start_broker a
start_broker b

# ---- 1. data and a committed group on a ----------------------------------------------------------
r="$(check produce "$BOOT_a" "$TOPIC" "$PARTS" 0 "$N1")" || fail "produce on a: $r"
log "a: $N1 records in $TOPIC ($PARTS partitions)"
r="$(check set-config "$BOOT_a" "$TOPIC" retention.ms 86400000)" || fail "IncrementalAlterConfigs on a: $r"
r="$(check commit "$BOOT_a" "$TOPIC" "$GROUP" "$C1" 60)" || fail "group $GROUP on a: $r"
UP1="$(jfield "$r" committed)"
log "a: group $GROUP read $C1 records and committed $UP1"

# ---- 2. MirrorMaker ------------------------------------------------------------------------------
cat >"$RUN/mm2.properties" <<EOF
clusters = a, b
a.bootstrap.servers = $BOOT_a
b.bootstrap.servers = $BOOT_b
a->b.enabled = true
a->b.topics = $TOPIC
a->b.groups = .*
b->a.enabled = false
tasks.max = 1

replication.factor = 1
checkpoints.topic.replication.factor = 1
heartbeats.topic.replication.factor = 1
offset-syncs.topic.replication.factor = 1
offset.storage.replication.factor = 1
status.storage.replication.factor = 1
config.storage.replication.factor = 1

emit.checkpoints.enabled = true
emit.checkpoints.interval.seconds = 1
sync.group.offsets.enabled = true
sync.group.offsets.interval.seconds = 1
emit.heartbeats.interval.seconds = 1
refresh.topics.interval.seconds = 2
refresh.groups.interval.seconds = 2
sync.topic.configs.interval.seconds = 2
offset.lag.max = 0
offset.flush.interval.ms = 1000
EOF
java "${JVM_OPTS[@]}" -Xmx512m -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
  -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn -Dorg.slf4j.simpleLogger.log.org.eclipse.jetty=warn \
  -cp "$JARS/*" org.apache.kafka.connect.mirror.MirrorMaker "$RUN/mm2.properties" >"$RUN/mm2.log" 2>&1 &
MM2_PID=$!
PIDS+=($MM2_PID)
log "MirrorMaker started (pid $MM2_PID)"

wait_records() { # expected label
  local r
  r="$(check records "$BOOT_b" "a.$TOPIC" "$1" 90)" || {
    kill -0 "$MM2_PID" 2>/dev/null || fail "$2: MirrorMaker exited: $(grep -E 'ERROR' "$RUN/mm2.log" | head -2 | cut -c1-300 | tr '\n' ' ')"
    fail "$2: b/a.$TOPIC after 90s: $r"
  }
  log "$2: b has a.$TOPIC with all $1 records: $r"
  LAST="$r"
}
wait_records "$N1" "initial"
REC1="$LAST"

CFG_RESULT=""
r="$(check config "$BOOT_b" "a.$TOPIC" retention.ms 30 86400000)" || { CFG_RESULT="retention.ms=86400000 set on a before MM2 started NOT on b/a.$TOPIC: $r"; note "$CFG_RESULT"; }

# ---- 3. live -------------------------------------------------------------------------------------
r="$(check produce "$BOOT_a" "$TOPIC" "$PARTS" "$N1" "$N2")" || fail "produce on a (live): $r"
log "a: $N2 more records while MirrorMaker runs"
wait_records "$((N1 + N2))" "live"
REC2="$LAST"
if [[ -z "$CFG_RESULT" ]]; then
  r="$(check set-config "$BOOT_a" "$TOPIC" retention.ms 172800000)" || fail "IncrementalAlterConfigs on a: $r"
  if r="$(check config "$BOOT_b" "a.$TOPIC" retention.ms 30 172800000)"; then
    CFG_RESULT="topic config sync: retention.ms copied at creation and a live change on a followed on b"
    log "b: $r"
  else
    CFG_RESULT="topic config sync: retention.ms copied at creation, but a live change on a did NOT reach b within 30s ($r)"
    note "$CFG_RESULT"
  fi
fi

# ---- 4. group offsets -----------------------------------------------------------------------------
# translated offsets must appear on b and never be ahead of the committed ones on a
compare_offsets() { # upstream-json downstream-json end-offsets-json -> summary; exit 1 when ahead
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
up, down, end = (json.loads(x) for x in sys.argv[1:4])
parts, ahead = [], False
for p in sorted(up, key=int):
    u, d = up[p], down.get(p)
    full = " (fully consumed)" if end.get(p) == u else ""
    if d is None:
        parts.append("p%s %d->none%s" % (p, u, full))
    elif d > u:
        ahead = True; parts.append("p%s %d->%d AHEAD%s" % (p, u, d, full))
    elif d == u:
        parts.append("p%s %d->%d exact%s" % (p, u, d, full))
    else:
        parts.append("p%s %d->%d behind%s" % (p, u, d, full))
for p in down:
    if p not in up:
        ahead = True; parts.append("p%s none->%d AHEAD" % (p, down[p]))
print(", ".join(parts))
sys.exit(1 if ahead else 0)
PY
}
GROUP_RESULT=""
END1="$(jfield "$REC1" end_offsets)" END2="$(jfield "$REC2" end_offsets)"
r="$(check group "$BOOT_b" "$GROUP" "a.$TOPIC" 60)" || fail "group $GROUP: no translated offsets for a.$TOPIC on b within 60s (committed on a: $UP1): $r"
D1="$(jfield "$r" offsets)"
# give the translation a moment to settle on the newest offset syncs, then read again
sleep 3
r="$(check group "$BOOT_b" "$GROUP" "a.$TOPIC" 20)" && D1="$(jfield "$r" offsets)"
cmp1="$(compare_offsets "$UP1" "$D1" "$END1")" || fail "translated offsets on b are ahead of the committed offsets on a: $cmp1 (a: $UP1, b: $D1)"
log "b: group $GROUP offsets on a.$TOPIC = $D1 (committed on a: $UP1): $cmp1"
# move the group on a and see b follow
r="$(check commit "$BOOT_a" "$TOPIC" "$GROUP" "$C2" 60)" || fail "group $GROUP second commit on a: $r"
UP2="$(jfield "$r" committed)"
log "a: group $GROUP read $C2 more and committed $UP2"
sum1="$(python3 -c 'import json,sys; print(sum(json.loads(sys.argv[1]).values()))' "$D1")"
if r="$(check group "$BOOT_b" "$GROUP" "a.$TOPIC" 60 "+$sum1")"; then
  sleep 3
  r="$(check group "$BOOT_b" "$GROUP" "a.$TOPIC" 20 "+$sum1")" || true
  D2="$(jfield "$r" offsets)"
  cmp2="$(compare_offsets "$UP2" "$D2" "$END2")" || fail "translated offsets on b are ahead of the committed offsets on a after the second commit: $cmp2 (a: $UP2, b: $D2)"
  log "b: group $GROUP offsets on a.$TOPIC = $D2 (committed on a: $UP2): $cmp2"
  GROUP_RESULT="group '$GROUP' offsets on b (a->b per partition): commit 1: $cmp1; commit 2: $cmp2"
else
  GROUP_RESULT="group '$GROUP' offsets on b (a->b per partition): commit 1: $cmp1; did NOT follow the second commit (a=$UP2) within 60s: $r"
  note "$GROUP_RESULT"
fi

# ---- 5. MirrorMaker's topics, topic configs ------------------------------------------------------
TB="$(check topics "$BOOT_b")" || TB=""
TA="$(check topics "$BOOT_a")" || TA=""
log "b topics: $TB"
log "a topics: $TA"
for t in a.checkpoints.internal heartbeats mm2-configs.a.internal mm2-offsets.a.internal mm2-status.a.internal "a.$TOPIC"; do
  [[ "$TB" == *"\"$t\""* ]] || note "topic $t missing on b"
done
[[ "$TA" == *'"mm2-offset-syncs.b.internal"'* ]] || note "topic mm2-offset-syncs.b.internal missing on a"
kill -0 "$MM2_PID" 2>/dev/null || note "MirrorMaker exited before the end"

problems="$(mm2_problems)"
if grep -q 'does not support DESCRIBE_ACLS' "$RUN/mm2.log"; then
  # MirrorSourceConnector syncs topic ACLs (sync.topic.acls.enabled=true by default) with
  # Admin.describeAcls on a. Kafka without an authorizer answers SECURITY_DISABLED and MM2 logs
  # one INFO line; Brook does not advertise DescribeAcls (API 29) at all, so the client
  # raises UnsupportedVersionException and MM2 logs an ERROR with a stack trace each
  # sync.topic.acls.interval.seconds. Mirroring itself is unaffected.
  note "DescribeAcls (API 29) refused as unsupported -> MM2 'syncing topic ACLs' task fails with UnsupportedVersionException (Brook should answer SECURITY_DISABLED)"
fi
detail="MM2 a->b: a.$TOPIC on b has all $((N1 + N2)) records ($N1 before MM2 started, $N2 live; per-partition order kept, 0 duplicates); $GROUP_RESULT (MM2 translates to the nearest offset sync at or below, so 'behind'/'none' are expected where it throttled syncs; never ahead); $CFG_RESULT; internal topics on b: checkpoints, heartbeats, mm2-configs/offsets/status present"
[[ -n "$problems" ]] && detail="$detail; $problems"
((${#NOTES[@]})) && detail="$detail; notes: $(IFS=';'; echo "${NOTES[*]}")"
# pass = all records mirrored, translated group offsets present on b and never ahead of a;
# exactness and the topic-config sync are reported in detail
finish pass "$detail"
