#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs the real servers the tests use, a Python
# virtualenv of its own (.venv: works on Debian's own Python too), the original Vaurien 1.9
# under Python 2.7 (the differential suite's oracle), then runs the cargo tests (without and
# with the python feature) and each fuzz target briefly, builds and installs the wheel, and
# runs pytest (tests_py), a 30 s soak (scripts/soak.sh) and the differential suite against the
# original (tests_compat).
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

START=$SECONDS
STEP_START=$SECONDS
STEP=""
log() {
  if [ -n "$STEP" ]; then
    printf '    (%s: %ds)\n' "$STEP" "$((SECONDS - STEP_START))"
  fi
  STEP=$1
  STEP_START=$SECONDS
  printf '\n==> %s  [+%ds]\n' "$1" "$((SECONDS - START))"
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "Debian packages (servers the tests talk to)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools memcached mariadb-server mariadb-client nginx ca-certificates \
    python3-venv >/dev/null
  # Node.js for the toxiproxy-node-client test: the machine's own (it ships npm) when present.
  if ! command -v npm >/dev/null; then
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
fi

log "Python virtualenv .venv and its packages"
BASE_PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$BASE_PY" -m venv .venv
fi
PY=.venv/bin/python
"$PY" -m pip install -q --disable-pip-version-check \
  "maturin>=1.7,<2" pytest pytest-timeout pytest-xdist redis pymemcache PyMySQL aiosmtpd toxiproxy-python

log "the original Vaurien 1.9 under Python 2.7 (oracle of tests_compat)"
bash scripts/setup_original.sh

log "cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
if grep -q '^python = ' Cargo.toml; then
  cargo clippy --all-targets --features python -- -D warnings
fi
# Layers only point down (ARCHITECTURE.md): no import cycle between the crate's top-level
# modules. The check ships in ../shared (CI has it beside the clone); it exits 1 on a cycle.
if [ -f ../shared/tools/module_cycles.py ]; then
  python3 ../shared/tools/module_cycles.py src
else
  echo "module cycle check skipped: ../shared/tools/module_cycles.py not found"
fi

log "cargo test"
cargo test
if [ -d src/python ]; then
  log "cargo test --features python"
  cargo test --features python --lib
fi

# Every fuzz target builds and runs a little from the seed corpus (a target that stops building,
# or a seed that crashes, fails here); long runs: bash scripts/fuzz.sh 600.
log "fuzz targets, 5 s each (scripts/fuzz.sh)"
bash scripts/fuzz.sh 5

log "the wheels (vaurien: maturin build --release; vaurienclient: pip wheel), installed in .venv"
rm -rf target/wheels
"$PY" -m maturin build --release --quiet --out target/wheels
WHEEL=$(ls target/wheels/vaurien-*abi3*.whl)
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w target/wheels clients/vaurienclient
# vaurienclient last: a .venv from before the split has it inside the old vaurien wheel.
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/vaurienclient-*.whl

log "pytest tests_py"
cargo build --quiet   # target/debug/vaurien, used by the subprocess tests
"$PY" -m pytest tests_py

log "the soak, 30 s (bash scripts/soak.sh: 600 s by default)"
bash scripts/soak.sh 30

log "the differential suite against the original (tests_compat)"
if [ -x .venv-original/bin/vaurien ]; then
  "$PY" -m pytest tests_compat -n 3
else
  echo "tests_compat skipped: no Python 2.7 for the original Vaurien (see scripts/setup_original.sh)"
fi

log "the page at /ui in headless Chromium (bash scripts/test_ui.sh)"
bash scripts/test_ui.sh

log "Chaos Toolkit experiment, Kubernetes manifests, Prometheus config (scripts/test_chaos.sh)"
bash scripts/test_chaos.sh

log "each way of installing, from a clean environment (scripts/test_install.sh)"
WHEEL="$WHEEL" PYTHON="$BASE_PY" bash scripts/test_install.sh

# The Python package's suite on the oldest and newest CPython available, with the same wheel.
if [ -x /root/.pyenv/versions/3.9.18/bin/python3 ] && [ -x /root/.pyenv/versions/3.13.0/bin/python3 ]; then
  log "the Python package on CPython 3.9 and 3.13"
  WHEEL="$WHEEL" MATURIN=.venv/bin/maturin bash tests_py/run_versions.sh
fi
log "done"
