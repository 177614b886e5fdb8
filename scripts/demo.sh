#!/usr/bin/env bash
# Runs vaurien for real in front of a real backend on a fresh machine: installs redis-server,
# builds vaurien (release; progress shown), starts redis and vaurien (redis protocol, control API
# on), prints what to try next, and waits. Ctrl-C, or killing this script, stops everything it
# started. Environment: VAURIEN_BIN (a vaurien binary: skips the build), DEMO_REDIS_PORT (6379),
# DEMO_PROXY_PORT (8000), DEMO_API_PORT (8080), BEHAVIOR (100:dummy).
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${DEMO_REDIS_PORT:-6379}
PROXY_PORT=${DEMO_PROXY_PORT:-8000}
API_PORT=${DEMO_API_PORT:-8080}

if ! command -v redis-server >/dev/null; then
  echo "==> installing redis-server (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
BIN=${VAURIEN_BIN:-}
if [ -z "$BIN" ]; then
  echo "==> building vaurien (cargo build --release; a few minutes the first time)"
  cargo build --release
  BIN=./target/release/vaurien
fi

pids=()
stop() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >/tmp/vaurien-demo-redis.log 2>&1 &
pids+=($!)
"$BIN" --proxy "127.0.0.1:$PROXY_PORT" --backend "127.0.0.1:$REDIS_PORT" --protocol redis \
  --stay-connected --http --http-host 127.0.0.1 --http-port "$API_PORT" \
  --behavior "${BEHAVIOR:-100:dummy}" &
pids+=($!)

cat <<EOF

vaurien on 127.0.0.1:$PROXY_PORT -> redis 127.0.0.1:$REDIS_PORT, control API on 127.0.0.1:$API_PORT
Try, in another shell:
  redis-cli -p $PROXY_PORT set k v; redis-cli -p $PROXY_PORT get k
  curl -X PUT -d '{"name": "delay", "sleep": 1}' localhost:$API_PORT/behavior; time redis-cli -p $PROXY_PORT ping
  curl -X PUT -d '{"name": "error", "protocol_reply": true}' localhost:$API_PORT/behavior; redis-cli -p $PROXY_PORT ping
Watch and steer it in a browser: http://127.0.0.1:$API_PORT/ui
Ctrl-C stops both.
EOF
# Returns when either one stops (or a signal arrives: the traps stop both).
wait -n "${pids[@]}"
