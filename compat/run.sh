#!/usr/bin/env bash
# Brook client compatibility matrix: each real Kafka client runs the same scenarios
# (admin, keyed/header/compressed/idempotent produce, consume from earliest/latest/
# timestamp, consumer group commit/resume and describe with lag, transactions: commit/abort
# with read_committed, consume-transform-produce with offsets) against its own fresh
# `brook serve`; Kafka's Java KafkaShareConsumer and librdkafka's share consumer
# (confluent-kafka's ShareConsumer) run the KIP-932 share group scenarios. Writes
# compat/results.json and compat/RESULTS.md from the run and exits
# non-zero if any supported scenario failed.
#
#   compat/run.sh                       # every client
#   compat/run.sh kafkajs franz-go      # some of them
#   BROOK_BIN=/path/to/brook compat/run.sh
#   BROOK_LOG=debug compat/run.sh kafka-cli   # broker logs in compat/.cache/last-run/
#   compat/run.sh --secure [clients...]     # the secured run (COMPAT_SECURE=1 does the same):
#       SASL_SSL (PLAIN, SCRAM-SHA-512) and SSL (mTLS) listeners, the StandardAuthorizer;
#       each client is refused before its ACLs exist, works after the admin creates them,
#       is refused again after they are deleted. Writes compat/results-secure.json and
#       compat/RESULTS-secure.md; logs in compat/.cache/last-run-secure/.
#
# Clients: kafkajs franz-go franz-go-consumer java-classic java-consumer java-share kafka-cli
# confluent-kafka confluent-kafka-share kafka-python kcat. Pinned versions: compat/kafkajs/package-lock.json,
# compat/franz-go/go.mod + go.sum, compat/java/pom.xml, compat/python/requirements-codecs.txt,
# scripts/setup-test-deps.sh (confluent-kafka, kafka-python, kcat).
# Everything downloaded is cached under compat/.cache/ (npm cache, Go module and build
# caches, a Maven repository, pip wheels); a warm run installs nothing.
set -euo pipefail

COMPAT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$COMPAT/.." && pwd)"
CACHE="$COMPAT/.cache"
SECURE="${COMPAT_SECURE:-}"
[[ "$SECURE" == 0 ]] && SECURE=""
if [[ "${1:-}" == --secure ]]; then SECURE=1; shift; fi
[[ -n "$SECURE" ]] || unset COMPAT_SECURE  # the drivers' switch: set again below when secured
RUN_DIR="$CACHE/last-run${SECURE:+-secure}"
CLIENT_TIMEOUT_S="${COMPAT_CLIENT_TIMEOUT_S:-300}"
ALL_CLIENTS=(kafkajs franz-go franz-go-consumer java-classic java-consumer java-share kafka-cli confluent-kafka
             confluent-kafka-share kafka-python kcat)
JVM_OPTS=(-Xshare:auto -XX:+UseSerialGC -Xmx512m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)

export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
PYTHON="${PYTHON:-python3}"

step() { printf '\n==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- which clients --------------------------------------------------------------------
if (($#)); then
  CLIENTS=("$@")
  for c in "${CLIENTS[@]}"; do
    [[ " ${ALL_CLIENTS[*]} " == *" $c "* ]] || { echo "unknown client '$c' (known: ${ALL_CLIENTS[*]})" >&2; exit 2; }
  done
else
  CLIENTS=("${ALL_CLIENTS[@]}")
fi
wants() { local c; for c in "$@"; do [[ " ${CLIENTS[*]} " == *" $c "* ]] && return 0; done; return 1; }

# The secured run: java-consumer and franz-go-consumer differ from java-classic and
# franz-go only in their group protocol (KIP-848), so each client runs once, classic.
if [[ -n "$SECURE" ]]; then
  SECURE_CLIENTS=(kafkajs franz-go java-classic kafka-cli confluent-kafka kafka-python kcat)
  if (($# == 0)); then CLIENTS=("${SECURE_CLIENTS[@]}"); fi
  for c in "${CLIENTS[@]}"; do
    [[ " ${SECURE_CLIENTS[*]} " == *" $c "* ]] || { echo "no secured run for '$c' (secured: ${SECURE_CLIENTS[*]})" >&2; exit 2; }
  done
fi

T_START="$(now)"
STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR" "$CACHE"

declare -A SETUP_ERROR=()
fail_setup() { # client... message
  local msg="${*: -1}" c
  for c in "${@:1:$#-1}"; do SETUP_ERROR[$c]="setup failed: $msg"; done
  echo "setup failed for ${*:1:$#-1}: $msg" >&2
}
# A cache stamp: the hash of the inputs that a cached install was made from.
digest() { sha256sum | cut -c1-32; }
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# ---- brook ----------------------------------------------------------------------------
if [[ -z "${BROOK_BIN:-}" ]]; then
  step "cargo build --bin brook (debug)"
  (cd "$REPO" && cargo build --bin brook)
  BROOK_BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/brook"
  BROOK_PROFILE=debug
else
  BROOK_PROFILE="given by BROOK_BIN"
fi
[[ -x "$BROOK_BIN" ]] || { echo "no brook binary at $BROOK_BIN" >&2; exit 1; }
BROOK_BIN="$(cd "$(dirname "$BROOK_BIN")" && pwd)/$(basename "$BROOK_BIN")"

# ---- installs (cached) ------------------------------------------------------------------
T_SETUP="$(now)"
if wants confluent-kafka confluent-kafka-share kafka-python kcat; then
  step "kcat, confluent-kafka, kafka-python (scripts/setup-test-deps.sh)"
  "$REPO/scripts/setup-test-deps.sh" >&2 || fail_setup confluent-kafka confluent-kafka-share kafka-python kcat "scripts/setup-test-deps.sh exited $?"
fi

if wants kafkajs; then
  step "kafkajs: npm ci (cache $CACHE/npm)"
  h="$( { cat "$COMPAT/kafkajs/package.json" "$COMPAT/kafkajs/package-lock.json"; node --version; } | digest)"
  if stamp_ok "$COMPAT/kafkajs/node_modules/.compat-stamp" "$h"; then
    echo "node_modules up to date" >&2
  # kafkajs-lz4's `lz4` builds a native module with node-gyp at install: point node-gyp at
  # the system's Node headers (it cannot download them here).
  elif (cd "$COMPAT/kafkajs" && rm -rf node_modules &&
        { [[ ! -f /usr/include/node/node.h ]] || export npm_config_nodedir=/usr; } &&
        npm ci --cache "$CACHE/npm" --prefer-offline --no-audit --no-fund --loglevel=error >&2); then
    echo "$h" > "$COMPAT/kafkajs/node_modules/.compat-stamp"
  else
    fail_setup kafkajs "npm ci failed"
  fi
fi

if wants franz-go franz-go-consumer; then
  step "franz-go: go build (module and build caches in $CACHE/go)"
  if ! (cd "$COMPAT/franz-go" && GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOTOOLCHAIN=local \
          GOFLAGS="-mod=readonly -modcacherw -buildvcs=false" go build -o "$CACHE/bin/compat-franz-go" . >&2); then
    fail_setup franz-go franz-go-consumer "go build failed"
  fi
fi

JARS="$CACHE/java/jars"
CLASSES="$CACHE/java/classes"
if wants java-classic java-consumer java-share kafka-cli; then
  step "Java: kafka-clients + kafka-tools jars (mvn dependency:copy-dependencies, repository $CACHE/m2)"
  jv="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
  if [[ -z "$jv" || "${jv%%.*}" -lt 17 ]]; then
    fail_setup java-classic java-consumer java-share kafka-cli "Kafka 4 tools need Java 17+, found '${jv}'"
  else
    h="$(cat "$COMPAT/java/pom.xml" | digest)"
    if ! "$REPO/scripts/kafka-jars.sh" >/dev/null; then
      fail_setup java-classic java-consumer java-share kafka-cli "fetching the Kafka jars (scripts/kafka-jars.sh) failed"
    fi
    if stamp_ok "$CACHE/java/jars.stamp" "$h"; then
      JAVA_SRC=("$COMPAT/java/src/main/java/Compat.java" "$COMPAT/java/src/main/java/SecureCompat.java"
                "$COMPAT/java/src/main/java/ShareCompat.java")
      h2="$( { echo "$h"; cat "${JAVA_SRC[@]}"; } | digest)"
      if ! stamp_ok "$CLASSES/.compat-stamp" "$h2"; then
        rm -rf "$CLASSES" && mkdir -p "$CLASSES"
        if javac -nowarn -d "$CLASSES" -cp "$JARS/*" "${JAVA_SRC[@]}" >&2; then
          echo "$h2" > "$CLASSES/.compat-stamp"
        else
          fail_setup java-classic java-consumer java-share "javac Compat.java failed"
        fi
      fi
    fi
  fi
fi

if wants kafka-python; then
  step "kafka-python codec modules (pip --target $CACHE/python)"
  h="$( { cat "$COMPAT/python/requirements-codecs.txt"; "$PYTHON" --version; } | digest)"
  if ! stamp_ok "$CACHE/python/.compat-stamp" "$h"; then
    rm -rf "$CACHE/python"
    if PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet \
         --target "$CACHE/python" --cache-dir "$CACHE/pip" -r "$COMPAT/python/requirements-codecs.txt" >&2; then
      echo "$h" > "$CACHE/python/.compat-stamp"
    else
      fail_setup kafka-python "pip install -r requirements-codecs.txt failed"
    fi
  fi
fi
SECONDS_SETUP="$(since "$T_SETUP")"

# ---- versions ---------------------------------------------------------------------------
version_of() {
  case "$1" in
    kafkajs) node -p "require('$COMPAT/kafkajs/node_modules/kafkajs/package.json').version" ;;
    franz-go|franz-go-consumer) awk '$1=="github.com/twmb/franz-go" {k=$2} $1=="github.com/twmb/franz-go/pkg/kadm" {a=$2}
                   END {print "kgo " k ", kadm " a}' "$COMPAT/franz-go/go.mod" ;;
    java-classic|java-consumer|java-share) echo "kafka-clients $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$COMPAT/java/pom.xml")" ;;
    kafka-cli) echo "kafka-tools $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$COMPAT/java/pom.xml")" ;;
    confluent-kafka|confluent-kafka-share) "$PYTHON" -c 'import confluent_kafka as c; from importlib import metadata as m; print(m.version("confluent-kafka") + " (librdkafka " + c.libversion()[0] + ")")' ;;
    kafka-python) "$PYTHON" -c 'import kafka; print(kafka.__version__)' ;;
    kcat) kcat -V 2>&1 | sed -n 's/^kcat - .*//; s/^Version \([^ ]*\).*librdkafka \([^ ]*\).*/\1 (librdkafka \2)/p' | head -1 ;;
  esac 2>/dev/null || echo "?"
}

# ---- one broker per client ------------------------------------------------------------
BROKER_PID=""
stop_broker() {
  [[ -n "$BROKER_PID" ]] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
}
trap stop_broker EXIT

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the secured run's certificates, users and broker settings ---------------------------
CERTS="$RUN_DIR/certs"
# Users: admin (super user; PLAIN and SCRAM-SHA-512), alice (PLAIN), carol (SCRAM-SHA-512:
# made by the driver's admin with AlterUserScramCredentials, or with --add-scram for the
# clients that have no such API).
# mTLS: the client certificate's subject DN as Kafka prints it.
MTLS_PRINCIPAL="User:CN=compat-client,OU=compat,O=Brook"
PLAIN_JAAS='org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
make_certs() { # a CA, the broker's certificate (localhost, 127.0.0.1), a client certificate
  rm -rf "$CERTS" && mkdir -p "$CERTS"
  (
    cd "$CERTS"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Brook compat CA"
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost"
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile broker.ext -out broker.crt
    cat broker.key broker.crt > broker.keystore.pem
    openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/O=Brook/OU=compat/CN=compat-client"
    # An X.509 v3 certificate (with an extension): rustls refuses v1 ones (UnsupportedCertVersion).
    printf "extendedKeyUsage=clientAuth\n" > client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.crt
    cat client.key client.crt > client.keystore.pem
  ) >/dev/null 2>&1
}
secure_args() { # client -> ARGS: listeners and security settings for its broker
  local sasl_port ssl_port
  sasl_port="$(free_port)"; ssl_port="$(free_port)"
  while [[ "$ssl_port" == "$sasl_port" ]]; do ssl_port="$(free_port)"; done
  SASL_SSL_BOOTSTRAP="127.0.0.1:$sasl_port"; SSL_BOOTSTRAP="127.0.0.1:$ssl_port"
  ARGS=(--listen "SASL_SSL://127.0.0.1:$sasl_port,SSL://127.0.0.1:$ssl_port"
        --set ssl.keystore.type=PEM --set "ssl.keystore.location=$CERTS/broker.keystore.pem"
        --set ssl.truststore.type=PEM --set "ssl.truststore.location=$CERTS/ca.pem"
        --set listener.name.ssl.ssl.client.auth=required
        --set "listener.name.sasl_ssl.plain.sasl.jaas.config=$PLAIN_JAAS"
        --set listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
        --set authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
        --set super.users=User:admin
        --add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]')
  case "$1" in
    kafkajs|kafka-python|kcat) ARGS+=(--add-scram 'SCRAM-SHA-512=[name=carol,password=carol-secret]') ;;
  esac
  READY_PORT="$ssl_port"
}

start_broker() { # client -> sets BOOTSTRAP, or returns 1
  local port data="$RUN_DIR/$1.data" log="$RUN_DIR/$1.broker.log"
  rm -rf "$data" && mkdir -p "$data"
  if [[ -n "$SECURE" ]]; then
    secure_args "$1"
    port="$READY_PORT"
  else
    port="$(free_port)"
    ARGS=(--listen "127.0.0.1:$port")
  fi
  # Share groups: a 2 s acquisition lock and 3 deliveries at most, so lock expiry and
  # archiving show within seconds; members' heartbeats every 0.5 s, so they join fast.
  [[ "$1" == java-share || "$1" == confluent-kafka-share ]] && ARGS+=(--set group.share.record.lock.duration.ms=2000
    --set group.share.delivery.count.limit=3 --set group.share.heartbeat.interval.ms=500
    --set group.share.session.timeout.ms=6000)
  NO_COLOR=1 BROOK_LOG="${BROOK_LOG:-info}" "$BROOK_BIN" serve "${ARGS[@]}" --data-dir "$data" \
    --set group.initial.rebalance.delay.ms=0 --set admin.listeners= >"$log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 150); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      BROKER_PID=""
      return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      BOOTSTRAP="${SASL_SSL_BOOTSTRAP:-127.0.0.1:$port}"
      return 0
    fi
    sleep 0.1
  done
  stop_broker
  return 1
}

client_cmd() { # client bootstrap -> CMD
  case "$1" in
    kafkajs) CMD=(node "$COMPAT/kafkajs/compat.js" "$2") ;;
    franz-go) CMD=("$CACHE/bin/compat-franz-go" "$2") ;;
    franz-go-consumer) CMD=("$CACHE/bin/compat-franz-go" "$2" consumer) ;;
    java-classic) CMD=(java "${JVM_OPTS[@]}" -cp "$JARS/*:$CLASSES" Compat "$2" classic) ;;
    java-consumer) CMD=(java "${JVM_OPTS[@]}" -cp "$JARS/*:$CLASSES" Compat "$2" consumer) ;;
    java-share) CMD=(java "${JVM_OPTS[@]}" -cp "$JARS/*:$CLASSES" ShareCompat "$2") ;;
    kafka-cli) CMD=("$PYTHON" "$COMPAT/cli/cli_compat.py" "$2" "$JARS") ;;
    confluent-kafka) CMD=("$PYTHON" "$COMPAT/python/py_compat.py" confluent-kafka "$2") ;;
    confluent-kafka-share) CMD=("$PYTHON" "$COMPAT/python/share_compat.py" "$2") ;;
    kafka-python) CMD=(env "PYTHONPATH=$CACHE/python${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$COMPAT/python/py_compat.py" kafka-python "$2") ;;
    kcat) CMD=("$PYTHON" "$COMPAT/kcat/kcat_compat.py" "$2") ;;
  esac
}

write_meta() { # file, then key value pairs
  local file="$1"; shift
  "$PYTHON" - "$file" "$@" <<'PY'
import json, sys
file, kv = sys.argv[1], sys.argv[2:]
d = {}
for k, v in zip(kv[::2], kv[1::2]):
    if (k == "exit_code" or k.startswith("seconds")) and v.lstrip("-").replace(".", "", 1).isdigit():
        v = float(v) if "." in v else int(v)
    d[k] = v
json.dump({k: v for k, v in d.items() if v != ""}, open(file, "w"), indent=2)
PY
}

if [[ -n "$SECURE" ]]; then
  step "certificates (openssl): $CERTS"
  make_certs || { echo "openssl failed to make the certificates" >&2; exit 1; }
  # What the drivers read in the secured run (their bootstrap argument is SASL_SSL's).
  # kcat's driver makes its topics and ACLs with `brook topic create` and `brook acl`.
  export COMPAT_SECURE=1 COMPAT_CERTS="$CERTS" COMPAT_MTLS_PRINCIPAL="$MTLS_PRINCIPAL" BROOK_BIN
fi

T_CLIENTS="$(now)"
for c in "${CLIENTS[@]}"; do
  step "$c"
  t0="$(now)"
  rc=""
  err="${SETUP_ERROR[$c]:-}"
  : > "$RUN_DIR/$c.out"
  if [[ -z "$err" ]]; then
    if start_broker "$c"; then
      client_cmd "$c" "$BOOTSTRAP"
      export COMPAT_SSL_BOOTSTRAP="${SSL_BOOTSTRAP:-}"
      set +e
      (cd "$RUN_DIR" && timeout -k 10 "$CLIENT_TIMEOUT_S" "${CMD[@]}") >"$RUN_DIR/$c.out" 2>"$RUN_DIR/$c.err"
      rc=$?
      set -e
      [[ $rc -eq 124 || $rc -eq 137 ]] && err="client timed out after $CLIENT_TIMEOUT_S s"
      stop_broker
      rm -rf "$RUN_DIR/$c.data"
    else
      err="brook did not start: $(tail -5 "$RUN_DIR/$c.broker.log" | tr '\n' ' ')"
    fi
  fi
  grep '^RESULT ' "$RUN_DIR/$c.out" | sed 's/^RESULT //' | cut -c1-160 >&2 || true
  [[ -n "$err" ]] && echo "$c: $err" >&2
  write_meta "$RUN_DIR/$c.meta.json" exit_code "$rc" seconds "$(since "$t0")" version "$(version_of "$c")" \
    client_log "${RUN_DIR#"$REPO/"}/$c.out (+ .err)" broker_log "${RUN_DIR#"$REPO/"}/$c.broker.log" error "$err"
done
SECONDS_CLIENTS="$(since "$T_CLIENTS")"

write_meta "$RUN_DIR/run.meta.json" started_at "$STARTED_AT" seconds_total "$(since "$T_START")" \
  seconds_setup "$SECONDS_SETUP" seconds_clients "$SECONDS_CLIENTS" \
  brook_bin "${BROOK_BIN#"$REPO/"}" brook_profile "$BROOK_PROFILE" \
  git_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')" \
  host "$(nproc) cores, $(uname -sm)"

if [[ -n "$SECURE" ]]; then
  step "results: compat/results-secure.json, compat/RESULTS-secure.md"
  "$PYTHON" "$COMPAT/report.py" --secure "$RUN_DIR" "$COMPAT"
else
  step "results: compat/results.json, compat/RESULTS.md"
  "$PYTHON" "$COMPAT/report.py" "$RUN_DIR" "$COMPAT"
fi
