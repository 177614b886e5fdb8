#!/usr/bin/env bash
# Builds one abi3 wheel and runs the Python package's tests with it on the oldest and newest
# CPython available (3.9 and 3.13 under pyenv by default; PYTHONS overrides).
#   tests_py/run_versions.sh            # debug build of the wheel (quick)
#   RELEASE=1 tests_py/run_versions.sh  # the release wheel
#   WHEEL=path.whl tests_py/run_versions.sh  # a wheel built already (vaurienclient's beside it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONS=${PYTHONS:-"/root/.pyenv/versions/3.9.18/bin/python3 /root/.pyenv/versions/3.13.0/bin/python3"}
OUT=target/wheels-versions
MATURIN=${MATURIN:-$(command -v maturin || echo .venv/bin/maturin)}
if [ -z "${WHEEL:-}" ]; then
  rm -rf "$OUT"
  "$MATURIN" build ${RELEASE:+--release} --out "$OUT"
  WHEEL=$(ls "$OUT"/vaurien-*abi3*.whl)
fi
# vaurien depends on vaurienclient 2.x: its wheel beside vaurien's (scripts/test.sh builds it), else
# the source tree's clients/vaurienclient.
CLIENT=$(ls "$(dirname "$WHEEL")"/vaurienclient-2.*.whl 2>/dev/null || echo ./clients/vaurienclient)
echo "wheel: $WHEEL, $CLIENT"
status=0
for py in $PYTHONS; do
  version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=target/venv-py$version
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "$WHEEL" "$CLIENT" pytest pytest-timeout
  echo "== CPython $version"
  # Run from the checkout (pyproject's pytest options) but import the installed wheel.
  if ! (PATH="$PWD/$venv/bin:$PATH" "$venv/bin/python" -m pytest -q tests_py/test_python_*.py); then
    status=1
  fi
done
exit $status
