#!/usr/bin/env bash
# The one test command: unit tests, then the client integration tests that drive a
# real `brook` process with kcat, confluent-kafka and kafka-python.
#
#   scripts/test.sh                      # everything
#   BROOK_PROFILE=release scripts/test.sh
#   scripts/test.sh -k kcat              # extra arguments go to pytest
#   BROOK_PYTEST_WORKERS=1 scripts/test.sh   # the client suite in one process
#
# The client suite runs its test files in BROOK_PYTEST_WORKERS parallel pytest-xdist
# workers (default 3: most tests wait on clients and timeouts, not on the CPU); the
# tests of one file stay together, in order, on one worker.
#
# Exits non-zero if anything fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

PYTHON="${PYTHON:-python3}"
PROFILE="${BROOK_PROFILE:-debug}"
# Hard cap on the client suite; it takes about 8 minutes on this 2-core machine with
# 3 workers (15 in one process).
PYTEST_TIMEOUT_S="${BROOK_PYTEST_TIMEOUT_S:-1800}"
PYTEST_WORKERS="${BROOK_PYTEST_WORKERS:-3}"

case "$PROFILE" in
  debug) cargo_flags=() ;;
  release) cargo_flags=(--release) ;;
  *) echo "BROOK_PROFILE must be debug or release, not '$PROFILE'" >&2; exit 2 ;;
esac

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies"
scripts/setup-test-deps.sh

step "cargo build --bin brook ${cargo_flags[*]}"
cargo build "${cargo_flags[@]}" --bin brook

target_dir="${CARGO_TARGET_DIR:-target}"
BROOK_BIN="$(cd "$target_dir/$PROFILE" && pwd)/brook"
if [[ ! -x "$BROOK_BIN" ]]; then
  echo "built binary not found at $BROOK_BIN" >&2
  exit 1
fi
export BROOK_BIN

step "cargo test --workspace ${cargo_flags[*]}"
cargo test "${cargo_flags[@]}" --workspace

step "client integration tests (BROOK_BIN=$BROOK_BIN)"
timeout --kill-after=30 "$PYTEST_TIMEOUT_S" \
  "$PYTHON" -m pytest -q -n "$PYTEST_WORKERS" --dist loadfile --durations=15 tests/clients "$@"
