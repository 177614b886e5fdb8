#!/usr/bin/env bash
# Each way of installing vaurien that the README gives, from a clean environment (fresh
# virtualenvs, an empty cargo root), each one proxying a real request to a real backend
# (python -m http.server); the checks themselves are scripts/install_check.py:
#   1. the wheel: auditwheel says manylinux; `pip install` it (vaurienclient 2.x from
#      --find-links, standing in for PyPI) and run vaurien, python -m vaurien, vaurienctl,
#      start_proxy/stop_proxy;
#   2. vaurienclient as an original user has it: 1.x (PyPI's) is replaced by 2.x when the wheel
#      is installed; then `pip install vaurienclient`, `pip install -U vaurienclient` keep 2.x;
#      uninstalled, the proxy still runs; reinstalled, it works again;
#   3. the source tree: `pip install ./clients/vaurienclient .` (the build reuses target/);
#   4. the standalone binary: `cargo install --path .` (reusing target/), `vaurien` on PATH.
# Usage: bash scripts/test_install.sh   (WHEEL=target/wheels/vaurien-...whl: the wheel to test;
# by default target/wheels', built first when missing; the vaurienclient wheel beside it too.)
# PyPI must be reachable (pip fetches maturin, setuptools and auditwheel, and asks it for
# vaurienclient).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE_PY=${PYTHON:-python3}
PIP_FLAGS=(-q --disable-pip-version-check)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vaurien-install.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "test_install.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR

step() { printf '  -- %s\n' "$*"; }
# expect REGEX COMMAND...: the command succeeds and its output matches.
expect() {
  local out
  out=$("${@:2}")
  grep -Eq -- "$1" <<<"$out" || { echo "expected /$1/ from: ${*:2}; got: $out" >&2; return 1; }
}
# A fresh virtualenv at $TMP/$1.
venv() { rm -rf "${TMP:?}/$1"; "$BASE_PY" -m venv "$TMP/$1"; }
check() { "$BASE_PY" scripts/install_check.py "$@"; }

WHEEL=${WHEEL:-$(ls target/wheels/vaurien-*abi3-manylinux*.whl 2>/dev/null || true)}
if [ -z "$WHEEL" ]; then
  step "no wheel: maturin build --release"
  venv build
  "$TMP/build/bin/pip" install "${PIP_FLAGS[@]}" "maturin>=1.7,<2"
  "$TMP/build/bin/maturin" build --release --quiet --out target/wheels
  WHEEL=$(ls target/wheels/vaurien-*abi3-manylinux*.whl)
fi
WHEELS=$(cd "$(dirname "$WHEEL")" && pwd)
if ! ls "$WHEELS"/vaurienclient-2.*.whl >/dev/null 2>&1; then
  step "no vaurienclient wheel: pip wheel clients/vaurienclient"
  venv build
  "$TMP/build/bin/pip" wheel "${PIP_FLAGS[@]}" --no-deps -w "$WHEELS" clients/vaurienclient
fi

# The backend: a directory served by python -m http.server.
mkdir -p "$TMP/www"
echo "vaurien install check" >"$TMP/www/index.html"
BACKEND=$(check free-port)
"$BASE_PY" -m http.server --bind 127.0.0.1 --directory "$TMP/www" "$BACKEND" >"$TMP/backend.log" 2>&1 &
PIDS+=($!)
check wait-port "$BACKEND"

echo "1. the wheel: $(basename "$WHEEL")"
venv audit
"$TMP/audit/bin/pip" install "${PIP_FLAGS[@]}" auditwheel
"$TMP/audit/bin/auditwheel" show "$WHEEL" >"$TMP/audit.txt"
# "... is consistent with the following platform tag: "manylinux_2_NN_x86_64"" (wrapped), and
# the file name says so too.
expect 'consistent with the following platform tag: "manylinux_2_[0-9]+_' tr -s ' \n' ' ' <"$TMP/audit.txt"
step "auditwheel show: $(tr -s ' \n' ' ' <"$TMP/audit.txt" | grep -Eo 'platform tag: "[^"]+"' | head -1)"
case "$(basename "$WHEEL")" in
  *manylinux_2_*) ;;
  *) echo "the wheel is not tagged manylinux_2_NN: $WHEEL" >&2; exit 1 ;;
esac
venv wheel
W=$TMP/wheel/bin
"$W/pip" install "${PIP_FLAGS[@]}" "$WHEEL" --find-links "$WHEELS"
expect '--backend' "$W/vaurien" --help
expect '^3\.' "$W/python" -m vaurien --version
expect '^vaurienctl 2\.' "$W/vaurienctl" --version
"$W/python" scripts/install_check.py client "$BACKEND"

echo "2. vaurienclient for an original user: 1.x replaced; install, upgrade, uninstall, reinstall"
venv upgrade
U=$TMP/upgrade/bin
step "pip install vaurienclient (PyPI's 1.x, Python 2 only), then the vaurien wheel: 2.x replaces it"
"$U/pip" install "${PIP_FLAGS[@]}" vaurienclient
expect '^Version: 1\.' "$U/pip" show vaurienclient
"$U/pip" install "${PIP_FLAGS[@]}" -U "$WHEEL" --find-links "$WHEELS"
"$U/python" scripts/install_check.py client "$BACKEND"
step "pip install vaurienclient, pip install -U vaurienclient (PyPI and --find-links): 2.x stays"
"$U/pip" install "${PIP_FLAGS[@]}" vaurienclient
"$U/pip" install "${PIP_FLAGS[@]}" -U vaurienclient
"$U/pip" install "${PIP_FLAGS[@]}" -U vaurienclient --find-links "$WHEELS"
expect '^vaurienctl 2\.' "$U/vaurienctl" --version
"$U/python" scripts/install_check.py client "$BACKEND"
step "pip uninstall vaurienclient: the proxy still runs"
"$U/pip" uninstall "${PIP_FLAGS[@]}" -y vaurienclient
"$U/python" scripts/install_check.py without-client "$BACKEND"
step "pip install vaurienclient --find-links: back"
"$U/pip" install "${PIP_FLAGS[@]}" vaurienclient --find-links "$WHEELS"
"$U/pip" check
"$U/python" scripts/install_check.py client "$BACKEND"

echo "3. the source tree: pip install ./clients/vaurienclient ."
venv source
t0=$SECONDS
touch "$TMP/source.start"
"$TMP/source/bin/pip" install "${PIP_FLAGS[@]}" ./clients/vaurienclient .
step "built and installed in $((SECONDS - t0)) s"
# maturin's PEP 517 build leaves a copy of its wheel (tagged linux_x86_64) in target/wheels.
find target/wheels -name 'vaurien-*-linux_*.whl' -newer "$TMP/source.start" -delete
expect '^vaurienctl 2\.' "$TMP/source/bin/vaurienctl" --version
"$TMP/source/bin/python" scripts/install_check.py client "$BACKEND"

echo "4. the standalone binary: cargo install --path . (CARGO_TARGET_DIR=target)"
t0=$SECONDS
CARGO_TARGET_DIR="$ROOT/target" cargo install --quiet --locked --path . --root "$TMP/cargo"
step "built and installed in $((SECONDS - t0)) s"
BIN=$TMP/cargo/bin
expect "^$BIN/vaurien\$" env PATH="$BIN:$PATH" sh -c 'command -v vaurien'
expect "^$BIN/toxiproxy-server\$" env PATH="$BIN:$PATH" sh -c 'command -v toxiproxy-server'
expect '^3\.' env PATH="$BIN:$PATH" vaurien --version
PROXY=$(check free-port)
env PATH="$BIN:$PATH" vaurien --proxy "127.0.0.1:$PROXY" --backend "127.0.0.1:$BACKEND" \
  --log-output "$TMP/vaurien.log" &
PIDS+=($!)
check wait-port "$PROXY"
check fetch "$PROXY"
echo "all the ways of installing work"
