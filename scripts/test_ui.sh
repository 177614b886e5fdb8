#!/usr/bin/env bash
# The page at /ui in a real browser: installs Debian's headless Chromium and its driver (as
# root, where apt-get exists; otherwise they must be there already), Selenium from PyPI into
# .venv, builds the binaries and runs tests_ui/ (real traffic through toxiproxy-server in front
# of `python -m http.server`). Screenshots of each state go to $VAURIEN_UI_SHOTS (default
# target/ui-shots). Usage: bash scripts/test_ui.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  fi
else
  echo "not root or no apt-get: Chromium and chromedriver are not installed by this script"
fi
if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
  echo "tests_ui skipped: no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check pytest pytest-timeout selenium

cargo build --quiet --bins
export VAURIEN_UI_SHOTS="${VAURIEN_UI_SHOTS:-$PWD/target/ui-shots}"
.venv/bin/python -m pytest tests_ui "$@"
echo "screenshots: $VAURIEN_UI_SHOTS"
