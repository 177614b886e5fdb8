#!/usr/bin/env bash
# The original Vaurien (1.9, the newest on PyPI) in a Python 2.7 virtualenv at .venv-original,
# the oracle of the differential suite (tests_compat/). Needs Python 2.7 (pyenv's 2.7.18 here,
# or python2.7 on PATH); without it, says so in one line and exits 0 (the suite then skips).
# Usage: bash scripts/setup_original.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-original
PY2=""
for c in "${PYTHON2:-}" /root/.pyenv/versions/2.7.18/bin/python2.7 "$(command -v python2.7 || true)"; do
  if [ -n "$c" ] && [ -x "$c" ]; then PY2=$c; break; fi
done
if [ -z "$PY2" ]; then
  echo "setup_original: no Python 2.7 found (set PYTHON2=...): the differential suite against the original is skipped"
  exit 0
fi
if [ -x "$VENV/bin/vaurien" ] && "$VENV/bin/python" -c 'import vaurien, vaurienclient; assert vaurien.__version__ == "1.9"' 2>/dev/null; then
  echo "setup_original: $VENV already holds vaurien 1.9"
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore
"$PY2" -m pip install -q --root-user-action=ignore "virtualenv<20.22" 2>/dev/null \
  || "$PY2" -m pip install -q "virtualenv<20.22"
rm -rf "$VENV"
"$PY2" -m virtualenv -q "$VENV"
# Pins known to resolve on Python 2.7 (an unpinned cornice needs Python 3).
"$VENV/bin/pip" install -q "vaurien==1.9" vaurienclient "gevent==1.2.2" "greenlet<2" \
  "cornice<1.0" "pyramid<1.6"
"$VENV/bin/python" -c 'import vaurien; print("setup_original: vaurien %s in '"$VENV"'" % vaurien.__version__)'
