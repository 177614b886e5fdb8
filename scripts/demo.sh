#!/usr/bin/env bash
# Runs vaurien for real in front of a real backend on a fresh machine: installs redis-server,
# builds vaurien, starts redis on 127.0.0.1:6379 and vaurien on 127.0.0.1:8000 with the control
# API on 127.0.0.1:8080, then waits (Ctrl-C stops both). Try, in another shell:
#   redis-cli -p 8000 set k v; redis-cli -p 8000 get k
#   curl -X PUT -d '{"name": "delay", "sleep": 1}' localhost:8080/behavior; redis-cli -p 8000 ping
#   curl -X PUT -d '{"name": "error"}' localhost:8080/behavior; redis-cli -p 8000 ping
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet
redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/tmp/vaurien-demo-redis.log 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true' EXIT
proto=redis
grep -q 'redis::kind' src/protocol/mod.rs || proto=tcp
flags=(--stay-connected)
[ "$proto" = tcp ] && flags+=(--protocol-tcp-keep-alive)
echo "vaurien on 127.0.0.1:8000 -> redis 127.0.0.1:6379 (protocol $proto), control API on 127.0.0.1:8080"
./target/release/vaurien --proxy 127.0.0.1:8000 --backend 127.0.0.1:6379 --protocol "$proto" \
  "${flags[@]}" --http --http-host 127.0.0.1 --http-port 8080 --behavior "${BEHAVIOR:-100:dummy}"
