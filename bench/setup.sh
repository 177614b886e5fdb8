#!/usr/bin/env bash
# Installs what bench/run.py needs and builds vaurien in release mode.
#
#   bash bench/setup.sh            # Debian packages + cargo build --release
#   bash bench/setup.sh --python   # also `pip install .` (the Python behavior workload)
#
# Debian/Ubuntu only (apt-get). Run as root or with sudo available.
# Note: on a machine with systemd, installing redis-server and nginx may start
# their system services (ports 6379 and 80); the benchmark does not use them:
# it starts its own instances on free loopback ports.
set -euo pipefail

cd "$(dirname "$0")/.."
WITH_PYTHON=0
for arg in "$@"; do
    case "$arg" in
        --python) WITH_PYTHON=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "setup.sh: run as root (apt-get install needs it)" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive

echo "== Debian packages"
$SUDO apt-get update
# required: load generators and backends
$SUDO apt-get install -y --no-install-recommends \
    iperf3 redis-server redis-tools nginx wrk python3 procps
# optional: haproxy and nginx's stream module (--peers), socat (stand-in proxy for testing
# the harness), hyperfine, perf (--perf profiles)
for pkg in haproxy libnginx-mod-stream socat hyperfine linux-perf; do
    $SUDO apt-get install -y --no-install-recommends "$pkg" \
        || echo "setup.sh: optional package $pkg not installed (continuing)"
done

echo "== vaurien (release build)"
if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v cargo >/dev/null; then
    cargo build --release
    target/release/vaurien --version
else
    echo "setup.sh: cargo not found: install Rust (rustup), then run 'cargo build --release'" >&2
    exit 1
fi

if [ "$WITH_PYTHON" = 1 ]; then
    echo "== Python package (pip install .)"
    if [ -f pyproject.toml ]; then
        python3 -m pip install . \
            || python3 -m pip install --break-system-packages . \
            || echo "setup.sh: pip install . failed: the python workload will be skipped" >&2
    else
        echo "setup.sh: no pyproject.toml yet: the python workload will be skipped"
    fi
fi

echo "== ready: python3 bench/run.py --quick"
