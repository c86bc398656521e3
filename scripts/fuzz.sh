#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 45 s each).
#   scripts/fuzz.sh [seconds-per-target]
# Longer by hand: scripts/fuzz.sh 3600
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-45}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz needs nightly compiler flags; use a nightly toolchain when there is one,
# otherwise let stable accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
targets=$("${fuzz[@]}" list)
"${fuzz[@]}" build -O
for t in $targets; do
  echo "== fuzzing $t for ${seconds}s"
  "${fuzz[@]}" run -O "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::number_of_executed_units|Done|==[0-9]+==|SUMMARY)|panicked' || true
  # cargo fuzz exits non-zero on a crash; re-check artifacts to fail loudly.
  if compgen -G "fuzz/artifacts/$t/crash-*" >/dev/null || compgen -G "fuzz/artifacts/$t/oom-*" >/dev/null; then
    echo "fuzz target $t found a failure: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
