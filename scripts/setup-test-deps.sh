#!/usr/bin/env bash
# Installs what the client integration tests (tests/clients) need, only if missing:
#   Debian: kcat, librdkafka-dev
#   Python: confluent-kafka, kafka-python, prometheus-client, pytest, pytest-xdist,
#   PyJWT and
#   cryptography (OAUTHBEARER tokens) (pinned below)
# With --browser, also Debian's chromium for the console's browser tests
# (tests/browser; driven over the DevTools protocol, no browser download).
# Safe to run any number of times; does nothing when everything is already there.
set -euo pipefail

WANT_BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --browser) WANT_BROWSER=1 ;;
    *) echo "usage: $0 [--browser]" >&2; exit 2 ;;
  esac
done

CONFLUENT_KAFKA_VERSION=2.16.1
KAFKA_PYTHON_VERSION=2.3.3
PROMETHEUS_CLIENT_VERSION=0.26.0
PYTEST_VERSION=9.2.0
PYTEST_XDIST_VERSION=3.8.0
PYJWT_VERSION=2.10.1
CRYPTOGRAPHY_VERSION=48.0.0

APT_PACKAGES=(kcat librdkafka-dev)
if ((WANT_BROWSER)); then
  APT_PACKAGES+=(chromium)
fi
PY_REQUIREMENTS=(
  "confluent-kafka==${CONFLUENT_KAFKA_VERSION}"
  "kafka-python==${KAFKA_PYTHON_VERSION}"
  "prometheus-client==${PROMETHEUS_CLIENT_VERSION}"
  "pytest==${PYTEST_VERSION}"
  "pytest-xdist==${PYTEST_XDIST_VERSION}"
  "PyJWT==${PYJWT_VERSION}"
  "cryptography==${CRYPTOGRAPHY_VERSION}"
)

PYTHON="${PYTHON:-python3}"

log() { printf 'setup-test-deps: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing_apt+=("$pkg")
  fi
done

if ((${#missing_apt[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing_apt[*]} and apt-get is not available; install them by hand"
    exit 1
  fi
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      log "missing ${missing_apt[*]}; need root (or sudo) to install them"
      exit 1
    fi
  fi
  log "installing Debian packages: ${missing_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq >/dev/null
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
fi

if ! command -v kcat >/dev/null 2>&1; then
  log "kcat is still not on PATH after installing it"
  exit 1
fi

# --- Python packages -------------------------------------------------------
missing_py=()
for req in "${PY_REQUIREMENTS[@]}"; do
  name="${req%%==*}"
  want="${req##*==}"
  have="$("$PYTHON" - "$name" <<'PY' 2>/dev/null || true
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
PY
)"
  if [[ "$have" != "$want" ]]; then
    missing_py+=("$req")
  fi
done

if ((${#missing_py[@]})); then
  log "installing Python packages: ${missing_py[*]}"
  PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PYTHON" -m pip install --quiet "${missing_py[@]}"
fi

# Fail here, not in the middle of the test run, if an import is broken.
"$PYTHON" - <<'PY'
import confluent_kafka, cryptography, jwt, kafka, pytest  # noqa: F401
PY
