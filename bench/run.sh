#!/usr/bin/env bash
# Brook vs Apache Kafka, side by side, on this machine. See bench/README.md.
#
#   bench/run.sh            full matrix, 3 repetitions, median (about 30-40 minutes)
#   bench/run.sh --quick    smoke run: 1 repetition, 2 cells, fewer records (about 3 minutes)
#
# Other options are passed to bench/bench.py (--reps N, --brokers kafka,brook,
# --skip-limits, --keep-data, --out PREFIX, --workdir DIR, --clients
# kafka-tools,brook-bench,librdkafka,franz-go); plus:
#   --no-build              use the existing target/release/brook (or $BROOK_BIN)
#   --latency-only          only the produce-latency phase (bench/latency.py, ~15 minutes);
#                           its options (--cluster, --reps, --rates, --acks, --producers,
#                           --brokers, --seconds, --no-linger0, --priority, --brook-set K=V,
#                           --out) follow
# Environment:
#   KAFKA_VERSION=4.x.y     pin the Kafka version (default: newest 4.x; cached after the
#                           first fetch, so reruns don't download)
#   BROOK_BIN=path          Brook binary to benchmark (implies --no-build)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="$HERE/.cache"

die() { echo "run.sh: error: $*" >&2; exit 1; }
say() { echo "[run.sh] $*" >&2; }

build=1
script=bench.py
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --latency-only) script=latency.py ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

for tool in java mvn python3 dd; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH (need Java 17+, Maven, Python 3)"
done
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
[ "${java_major:-0}" -ge 17 ] || die "Kafka 4.x needs Java 17+, found: $(java -version 2>&1 | head -1)"

# ---- Brook
if [ -n "${BROOK_BIN:-}" ]; then
  build=0
else
  BROOK_BIN="$ROOT/target/release/brook"
fi
if [ "$build" = 1 ]; then
  command -v cargo >/dev/null || die "cargo not found (or pass --no-build / BROOK_BIN)"
  say "building Brook (cargo build --release)"
  (cd "$ROOT" && timeout 3600 cargo build --release) || die "cargo build --release failed"
fi
[ -x "$BROOK_BIN" ] || die "no Brook binary at $BROOK_BIN"

# ---- Apache Kafka jars from Maven, cached in bench/.cache/kafka-<version>/libs
fetch_kafka() { # $1 = Maven version or range; prints the resolved version
  local tmp="$CACHE/kafka-fetch.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  say "fetching Apache Kafka $1 (kafka_2.13 + kafka-tools + runtime dependencies) with Maven"
  if ! timeout 900 mvn -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
        "-Dkafka.version=$1" -DincludeScope=runtime "-DoutputDirectory=$tmp" \
        > "$CACHE/maven.log" 2>&1; then
    rm -rf "$tmp"
    grep -E "ERROR|Could not" "$CACHE/maven.log" | head -5 >&2 || true
    die "Maven could not fetch org.apache.kafka:kafka_2.13:$1 (network? version?); log: $CACHE/maven.log"
  fi
  local jar v
  jar="$(ls "$tmp"/kafka_2.13-*.jar 2>/dev/null | head -1)"
  [ -n "$jar" ] || { rm -rf "$tmp"; die "no kafka_2.13 jar after the Maven fetch"; }
  v="$(basename "$jar" .jar)"; v="${v#kafka_2.13-}"
  [ -f "$tmp/kafka-tools-$v.jar" ] || { rm -rf "$tmp"; die "kafka-tools-$v.jar missing"; }
  rm -rf "$CACHE/kafka-$v"
  mkdir -p "$CACHE/kafka-$v"
  mv "$tmp" "$CACHE/kafka-$v/libs"
  echo "$v" > "$CACHE/kafka-$v/libs/.complete"
  echo "$v"
}

mkdir -p "$CACHE"
if [ -n "${KAFKA_VERSION:-}" ]; then
  if [ ! -f "$CACHE/kafka-$KAFKA_VERSION/libs/.complete" ]; then
    KAFKA_VERSION="$(fetch_kafka "$KAFKA_VERSION")"
  fi
else
  # Newest 4.x already cached, else ask Maven for the newest 4.x.
  KAFKA_VERSION="$(ls -d "$CACHE"/kafka-4.*/libs/.complete 2>/dev/null \
    | sed 's#.*/kafka-\(4[^/]*\)/libs/.complete#\1#' | sort -V | tail -1 || true)"
  if [ -z "$KAFKA_VERSION" ]; then
    KAFKA_VERSION="$(fetch_kafka '[4.0.0,5.0.0)')"
  else
    say "using cached Apache Kafka $KAFKA_VERSION (delete bench/.cache/kafka-* to refetch)"
  fi
fi
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"

# ---- run; bench.py stops every broker it started on exit or signal, and we forward signals.
py_pid=""
on_exit() {
  if [ -n "$py_pid" ] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM "$py_pid" 2>/dev/null || true
    wait "$py_pid" 2>/dev/null || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

say "Kafka $KAFKA_VERSION, Brook $("$BROOK_BIN" --version 2>/dev/null || echo '?')"
BENCH_COMMAND="bench/run.sh $*" python3 "$HERE/$script" --brook-bin "$BROOK_BIN" --kafka-libs "$KAFKA_LIBS" \
  --kafka-version "$KAFKA_VERSION" ${args[@]+"${args[@]}"} &
py_pid=$!
rc=0
wait "$py_pid" || rc=$?
py_pid=""
exit "$rc"
