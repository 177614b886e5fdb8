#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs the real servers and Python packages the
# tests use, then runs the cargo tests (without and with the python feature), installs the
# Python package and runs pytest. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools memcached mariadb-server mariadb-client nginx ca-certificates >/dev/null
  # Node.js for the toxiproxy-node-client test: the machine's own (it ships npm) when present.
  if ! command -v npm >/dev/null; then
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
fi

PY="${PYTHON:-python3}"
log "Python packages"
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  "maturin>=1.7,<2" pytest pytest-timeout redis pymemcache PyMySQL aiosmtpd toxiproxy-python

log "cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
if grep -q '^python = ' Cargo.toml; then
  cargo clippy --all-targets --features python -- -D warnings
fi

log "cargo test"
cargo test
if [ -d src/python ]; then
  log "cargo test --features python"
  cargo test --features python --lib
fi

log "the wheel (maturin build --release), installed as \`pip install vaurien\` would"
rm -rf target/wheels
"$PY" -m maturin build --release --quiet --out target/wheels
WHEEL=$(ls target/wheels/vaurien-*abi3*.whl)
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --force-reinstall --no-deps "$WHEEL"

log "pytest"
cargo build --quiet   # target/debug/vaurien, used by the subprocess tests
"$PY" -m pytest tests_py

# The Python package's suite on the oldest and newest CPython available, with the same wheel.
if [ -x /root/.pyenv/versions/3.9.18/bin/python3 ] && [ -x /root/.pyenv/versions/3.13.0/bin/python3 ]; then
  log "the Python package on CPython 3.9 and 3.13"
  WHEEL="$WHEEL" bash tests_py/run_versions.sh
fi
