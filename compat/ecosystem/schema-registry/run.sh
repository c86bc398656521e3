#!/usr/bin/env bash
# A schema registry that keeps its state in a Kafka topic, against Brook: Apicurio Registry 3
# (Quarkus; Confluent-compatible REST API /apis/ccompat/v7 and its own /apis/registry/v3) with
# apicurio.storage.kind=kafkasql. KafkaSQL writes every change to a journal topic
# (kafkasql-journal) and keeps only an in-memory H2 database, rebuilt at each start by reading
# the journal from the beginning: all the registry's state is in Brook.
#
#   phase 1  start the registry: it creates its topics (journal, snapshots, events) through the
#            Admin API and checks their configs with DescribeConfigs (it refuses to start unless
#            the journal is cleanup.policy=delete, retention.ms=-1, retention.bytes=-1). Register
#            through the REST API (sr.py): a BACKWARD compatibility rule on orders-value, Avro
#            orders-value v1 and v2 (a compatible change), an incompatible v3 that must be
#            refused (409), a JSON Schema customers-value and a Protobuf payments-value; read it
#            all back.
#   phase 2  SIGTERM the registry (kill -9 after 30 s), start it again against the same Brook:
#            everything reads back identical (subjects, versions, schema ids, schemas by id, the
#            rule, v3 globalId/contentId/state; not createdOn/modifiedOn, which the journal does
#            not carry); the incompatible schema is still refused, an old schema keeps its id, a
#            new version gets a new id above the old ones.
#   phase 3  kill -9 the registry, start it again: everything, the phase 2 version included,
#            reads back identical again.
# Then Brook itself: the registry's topics exist (brook topic describe), the journal's
# cleanup.policy and record count are reported, and the journal holds the registered schemas
# (brook consume).
#
#   compat/ecosystem/schema-registry/run.sh
#   BROOK_BIN=/path/to/brook compat/ecosystem/schema-registry/run.sh   # default target/debug/brook
#   APICURIO_VERSION=3.3.2 compat/ecosystem/schema-registry/run.sh     # other Apicurio release
#   APICURIO_JAVA=/path/to/java ...                                     # a Java >= 21 (else found)
#
# Progress on stderr; the last line of stdout is
#   {"scenario": "schema_registry.apicurio_kafkasql", "status": "pass"|"fail", "detail": "..."}
# exit 0 on pass, 1 on fail. Logs (registry, broker, read-backs) of the last run:
# compat/.cache/ecosystem/schema-registry/last-run/. The registry: Maven artifact
# io.apicurio:apicurio-registry-app:<version>:tar.gz:all (pom.xml here; Maven repository
# compat/.cache/m2), unpacked once into compat/.cache/ecosystem/schema-registry/apicurio-<version>.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
CACHE="$REPO/compat/.cache"
ECO="$CACHE/ecosystem/schema-registry"
APICURIO_VERSION="${APICURIO_VERSION:-3.3.3}"
APP="$ECO/apicurio-$APICURIO_VERSION"
STAMP="$APP.stamp"
RUN="$ECO/last-run"
BROOK_BIN="${BROOK_BIN:-$REPO/target/debug/brook}"
SCENARIO="schema_registry.apicurio_kafkasql"
JOURNAL="kafkasql-journal"
JVM_OPTS=(-Xshare:auto -XX:+UseSerialGC -Xmx512m -XX:TieredStopAtLevel=1)

T0="$(date +%s.%N)"
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[schema-registry %6ss] %s\n' "$(elapsed)" "$*" >&2; }
NOTES=()
note() { NOTES+=("$*"); log "$*"; }

BROKER_PID="" REG_PID=""
stop_registry_quietly() {
  if [[ -n "$REG_PID" ]]; then kill -9 "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; REG_PID=""; fi
}
finish() { # status detail
  local status="$1" detail="$2"
  stop_registry_quietly
  if [[ -n "$BROKER_PID" ]]; then kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; BROKER_PID=""; fi
  python3 -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "status": sys.argv[2], "detail": sys.argv[3]}))' \
    "$SCENARIO" "$status" "$detail"
  log "$status in $(elapsed)s (logs: $RUN)"
  [[ "$status" == pass ]] && exit 0 || exit 1
}
# Errors and warnings from the registry logs that point at the broker (protocol-level trouble).
registry_problems() {
  local hits
  hits="$(cat "$RUN"/registry-*.log 2>/dev/null | grep -E 'UnsupportedVersion|UNSUPPORTED_VERSION|InvalidRequest|CorruptRecord|UnknownServerException|UNKNOWN_SERVER_ERROR|InvalidConfiguration|PolicyViolation|Unexpected error code|RuntimeAssertionFailed' \
    | sed -E 's/^[0-9-]+[^ ]* [0-9:]+ //' | sed -E 's/(clientId|groupId)=[^,]*/\1=…/g' \
    | sort | uniq -c | sort -rn | head -5 | sed -E 's/^ +//' | cut -c1-300 || true)"
  [[ -n "$hits" ]] && echo "registry log: $(echo "$hits" | tr '\n' '|')"
  true
}
fail() {
  local msg="$*" extra
  extra="$(registry_problems)"
  [[ -n "$extra" ]] && msg="$msg; $extra"
  ((${#NOTES[@]})) && msg="$msg; notes: $(IFS=';'; echo "${NOTES[*]}")"
  log "FAIL: $msg"
  finish fail "$msg"
}
trap 'stop_registry_quietly; [[ -n "$BROKER_PID" ]] && kill "$BROKER_PID" 2>/dev/null; true' EXIT
trap 'fail "interrupted"' INT TERM

# ---- tools, Java >= 21, the registry (cached) ----------------------------------------------
command -v curl >/dev/null || { RUN=/tmp; fail "curl not found"; }
command -v mvn >/dev/null || { RUN=/tmp; fail "mvn not found"; }
[[ -x "$BROOK_BIN" ]] || { RUN=/tmp; fail "no brook binary at $BROOK_BIN"; }
java_major() { "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ { split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit }'; }
JAVA=""
for j in "${APICURIO_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
  [[ -n "$j" && -x "$j" ]] || continue
  m="$(java_major "$j")"
  if [[ -n "$m" ]] && ((m >= 21)); then JAVA="$j"; break; fi
done
[[ -n "$JAVA" ]] || { RUN=/tmp; fail "Apicurio Registry 3 needs Java 21 or newer; none found (set APICURIO_JAVA)"; }

mkdir -p "$ECO"
h="$( (cat "$HERE/pom.xml"; echo "$APICURIO_VERSION") | sha256sum | cut -c1-32)"
if ! [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" && -f "$APP/quarkus-run.jar" ]]; then
  exec 9>"$ECO/.lock"
  flock -w 600 9 || fail "timed out waiting for another download"
  if ! [[ -f "$STAMP" && "$(cat "$STAMP")" == "$h" && -f "$APP/quarkus-run.jar" ]]; then
    log "fetching Apicurio Registry $APICURIO_VERSION (mvn dependency:unpack, repository $CACHE/m2)"
    rm -rf "$APP" "$APP.mvn" "$APP.jsa" && mkdir -p "$APP"
    timeout 600 mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
      -Dapicurio.version="$APICURIO_VERSION" -Dbuild.dir="$APP.mvn" -Dunpack.dir="$APP" dependency:unpack >&2 \
      || fail "mvn dependency:unpack of io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all failed"
    rm -rf "$APP.mvn"
    [[ -f "$APP/quarkus-run.jar" ]] || fail "no quarkus-run.jar in the unpacked Apicurio distribution ($APP)"
    echo "$h" >"$STAMP"
  fi
  exec 9>&-
fi
KCLIENTS="$(ls "$APP/lib/main" | sed -nE 's/^org\.apache\.kafka\.kafka-clients-(.*)\.jar$/\1/p' | head -1)"
# A class-data archive of the registry (JDK 19+: written at the first clean exit, used after;
# remade by the JVM when it does not match), 2-3 s off each start.
CDS_OPTS=(-XX:+AutoCreateSharedArchive -XX:SharedArchiveFile="$APP.jsa")
log "Apicurio Registry $APICURIO_VERSION (kafka-clients ${KCLIENTS:-?}) on $("$JAVA" -version 2>&1 | head -1)"

# ---- broker ------------------------------------------------------------------------------
rm -rf "$RUN" && mkdir -p "$RUN/tmp"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
BPORT="$(free_port)"
BOOT="127.0.0.1:$BPORT"
NO_COLOR=1 BROOK_LOG="${BROOK_LOG:-info}" "$BROOK_BIN" serve --listen "$BOOT" --data-dir "$RUN/brook-data" \
  --set group.initial.rebalance.delay.ms=0 --set admin.listeners= >"$RUN/broker.log" 2>&1 &
BROKER_PID=$!
for i in $(seq 200); do
  grep -q ready "$RUN/broker.log" 2>/dev/null && break
  kill -0 "$BROKER_PID" 2>/dev/null || { BROKER_PID=""; fail "brook exited at startup: $(tail -3 "$RUN/broker.log" | tr '\n' ' ')"; }
  ((i == 200)) && fail "brook not ready after 20s"
  sleep 0.1
done
log "brook ready on $BOOT ($BROOK_BIN)"

# ---- registry ----------------------------------------------------------------------------
HPORT="$(free_port)"
MPORT="$(free_port)"
BASE="http://127.0.0.1:$HPORT"
READY="http://127.0.0.1:$MPORT/health/ready"
REG_N=0
START_TIMES=()
start_registry() {
  REG_N=$((REG_N + 1))
  local t i
  t="$(date +%s.%N)"
  # apicurio.kafkasql.consumer.poll.timeout: the start reads the snapshots topic and checks the
  # journal's last records with polls that end on the first empty one (5 s each by default)
  "$JAVA" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" -Djava.io.tmpdir="$RUN/tmp" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$HPORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$MPORT" \
    -Dapicurio.storage.kind=kafkasql -Dapicurio.kafkasql.bootstrap.servers="$BOOT" \
    -Dapicurio.kafkasql.consumer.poll.timeout=500 \
    -Dapicurio.storage.snapshot.location="$RUN/tmp" -Dapicurio.import.work-dir="$RUN/tmp" \
    -jar "$APP/quarkus-run.jar" >"$RUN/registry-$REG_N.log" 2>&1 &
  REG_PID=$!
  for i in $(seq 180); do
    kill -0 "$REG_PID" 2>/dev/null || { REG_PID=""; fail "registry $REG_N exited: $(grep -E 'ERROR|Exception' "$RUN/registry-$REG_N.log" | head -3 | cut -c1-400 | tr '\n' ' ')"; }
    # ready = KafkaSQL has read the journal up to the bootstrap message it wrote at this start
    if curl -sf -m 2 "$READY" >/dev/null 2>&1; then
      t="$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
      START_TIMES+=("${t}s")
      log "registry $REG_N (pid $REG_PID) ready in ${t}s: REST on $BASE"
      return 0
    fi
    ((i == 180)) && fail "registry $REG_N not ready after 90s ($READY): $(curl -s -m 2 "$READY" | tr -d ' \n' | cut -c1-300)"
    sleep 0.5
  done
}
stop_registry() { # SIGTERM, kill -9 after 30 s
  local i stopped="" t
  t="$(date +%s.%N)"
  kill "$REG_PID"
  for i in $(seq 300); do
    kill -0 "$REG_PID" 2>/dev/null || { stopped=1; break; }
    sleep 0.1
  done
  if [[ -z "$stopped" ]]; then
    note "registry $REG_N did not exit within 30s of SIGTERM; kill -9"
    kill -9 "$REG_PID" 2>/dev/null || true
  fi
  wait "$REG_PID" 2>/dev/null || true
  REG_PID=""
  log "registry $REG_N stopped (SIGTERM) in $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"
}
sr() { timeout 120 python3 "$HERE/sr.py" "$@" 2>>"$RUN/sr.err"; }
sr_fail() { fail "$1: $(tail -3 "$RUN/sr.err" 2>/dev/null | tr '\n' ' ' | cut -c1-500)"; }

# ---- phase 1 -------------------------------------------------------------------------------
start_registry
REG1="$(sr register "$BASE")" || sr_fail "registering schemas"
log "registered: $REG1"
D1="$(sr dump "$BASE" "$RUN/state-1.json")" || sr_fail "reading back before the restart"
log "read back: $D1"

# ---- phase 2: SIGTERM, restart -------------------------------------------------------------
stop_registry
start_registry
D2="$(sr dump "$BASE" "$RUN/state-2.json")" || sr_fail "reading back after SIGTERM + restart"
cmp -s "$RUN/state-1.json" "$RUN/state-2.json" \
  || fail "state differs after SIGTERM + restart: $(diff "$RUN/state-1.json" "$RUN/state-2.json" | head -8 | tr '\n' ' ' | cut -c1-500)"
log "after SIGTERM + restart: identical ($D2)"
A2="$(sr after-restart "$BASE")" || sr_fail "writing after the restart"
log "after restart: $A2"
sr dump-final "$BASE" "$RUN/state-2b.json" >/dev/null || sr_fail "reading back after the post-restart write"

# ---- phase 3: kill -9, restart -------------------------------------------------------------
log "killing registry $REG_N with SIGKILL"
kill -9 "$REG_PID"
wait "$REG_PID" 2>/dev/null || true
REG_PID=""
start_registry
D3="$(sr dump-final "$BASE" "$RUN/state-3.json")" || sr_fail "reading back after kill -9 + restart"
cmp -s "$RUN/state-2b.json" "$RUN/state-3.json" \
  || fail "state differs after kill -9 + restart: $(diff "$RUN/state-2b.json" "$RUN/state-3.json" | head -8 | tr '\n' ' ' | cut -c1-500)"
log "after kill -9 + restart: identical ($D3)"
stop_registry

# ---- Brook's view: the registry's topics ------------------------------------------------------
TOPICS=""
for t in "$JOURNAL" kafkasql-snapshots registry-events; do
  out="$(timeout 30 "$BROOK_BIN" topic describe -b "$BOOT" --timeout 10 "$t" 2>&1)" || fail "brook topic describe $t: $(echo "$out" | head -2 | tr '\n' ' ')"
  echo "$out" >>"$RUN/topics.txt"
  cfg="$(echo "$out" | sed -nE 's/.*Configs: *//p' | head -1)"
  recs="$(echo "$out" | awk '$1 ~ /^[0-9]+$/ { n += $NF } END { print n + 0 }')"
  TOPICS="$TOPICS$t ($recs records; $cfg); "
done
TOPICS="${TOPICS%; }"
log "topics: $TOPICS"
jcfg="$(grep -A0 "Topic: $JOURNAL" "$RUN/topics.txt" | sed -nE 's/.*Configs: *//p')"
policy="$(echo "$jcfg" | tr ',' '\n' | sed -nE 's/^cleanup\.policy=//p')"
[[ "$policy" == delete ]] || fail "journal $JOURNAL: cleanup.policy '${policy:-?}' (Apicurio asked for delete): $jcfg"
timeout 60 "$BROOK_BIN" consume -b "$BOOT" --timeout 10 --from-beginning --timeout-ms 2000 --print-key "$JOURNAL" >"$RUN/journal.txt" 2>"$RUN/journal.err" \
  || fail "brook consume $JOURNAL: $(head -2 "$RUN/journal.err" | tr '\n' ' ')"
JSUM="$(python3 - "$RUN/journal.txt" <<'PY'
import collections, json, sys
types, arts = collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    key, _, value = line.rstrip("\n").partition("\t")
    try:
        t = json.loads(key).get("messageType", "?")
    except ValueError:
        t = "?"
    types[t] += 1
    try:
        v = json.loads(value) if value else {}
    except ValueError:
        v = {}
    if t.startswith("CreateArtifact") and "Rule" not in t and isinstance(v, dict):
        arts[v.get("artifactId")] += 1
print(json.dumps({"records": sum(types.values()), "types": dict(sorted(types.items())), "schema_writes": dict(sorted(arts.items()))}))
PY
)"
log "journal: $JSUM"
python3 -c 'import json,sys; a=json.loads(sys.argv[1])["schema_writes"]; sys.exit(0 if a.get("orders-value")==3 and a.get("customers-value")==1 and a.get("payments-value")==1 else 1)' "$JSUM" \
  || fail "journal $JOURNAL does not hold the registered schemas as expected (orders-value 3, customers-value 1, payments-value 1): $JSUM"

jrecs="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["records"])' "$JSUM")"
refused="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["incompatible_refused"].split(":")[0])' "$REG1")"
problems="$(registry_problems)"
# A consumer closing with a fetch in flight resets its fetch session handler first, so that
# response may be logged (INFO) and dropped. Harmless; counted, not failed (see README).
nfs="$(cat "$RUN"/registry-*.log | grep -c 'sent an invalid full fetch response' || true)"
((nfs > 0)) && note "$nfs consumer close(s) logged 'Node 1 sent an invalid full fetch response with extraIds=(<journal/snapshot topic id>), response=()' (INFO; a closing consumer's in-flight fetch, see README)"
detail="Apicurio Registry $APICURIO_VERSION (kafkasql storage, kafka-clients ${KCLIENTS:-?}): registered Avro orders-value v1+v2 (BACKWARD rule; incompatible v3 refused, $refused), JSON Schema customers-value, Protobuf payments-value; read back identical (ccompat subjects/versions/ids/schemas, v3 globalId/contentId/rules) after SIGTERM+restart and after kill -9+restart; after the restart the rule still refused the incompatible schema and a new version got a fresh id; registry ready in ${START_TIMES[*]}; topics on Brook: $TOPICS; journal $JOURNAL cleanup.policy=$policy, $jrecs records read back with brook consume"
[[ -n "$problems" ]] && detail="$detail; $problems"
((${#NOTES[@]})) && detail="$detail; notes: $(IFS=';'; echo "${NOTES[*]}")"
finish pass "$detail"
