#!/usr/bin/env bash
# The soak: for SECONDS (default 600) one vaurien process with several proxies carries, all at
# once, hashed bulk streams through an echo backend on `dummy` proxies, redis, memcache and
# http clients, connection churn, a behavior change (`PUT /behavior`) and a toxic change
# (Toxiproxy's toxics POST/DELETE) every 100 ms, a Python behavior, and a redis-server that
# restarts every 30 s. It fails (exit 1) unless no byte was lost or reordered on the dummy
# proxies, vaurien's log has no panic, its RSS and descriptors are back to their baseline
# (+10 MiB, +16 fds) and every API call was answered in under 100 ms; it prints the figures.
#
# Loopback only, ports picked at run time; it starts and stops everything it uses and installs
# nothing: it needs what scripts/test.sh installs (redis-server, memcached, the .venv with
# vaurien, redis and pymemcache). Usage: bash scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-600}
case "$SECS" in
  '' | *[!0-9]*) echo "usage: bash scripts/soak.sh [SECONDS]" >&2; exit 2 ;;
esac
PY=.venv/bin/python

find_bin() {
  command -v "$1" 2>/dev/null && return
  for d in /usr/sbin /usr/bin /usr/local/bin /usr/local/sbin; do
    if [ -x "$d/$1" ]; then echo "$d/$1"; return; fi
  done
  return 1
}
for b in redis-server memcached; do
  if ! find_bin "$b" >/dev/null; then
    echo "soak: $b not found (bash scripts/test.sh installs it)" >&2
    exit 2
  fi
done
PATH="$PATH:/usr/sbin:/usr/local/sbin"
if ! "$PY" -c 'import vaurien._vaurien, redis, pymemcache' 2>/dev/null; then
  echo "soak: $PY cannot import vaurien, redis and pymemcache: run bash scripts/test.sh first" \
       "(it installs the wheel into .venv), or .venv/bin/maturin develop --release" >&2
  exit 2
fi

WORK=$(mktemp -d -t vaurien-soak.XXXXXX)
# vaurien's log is kept in target/soak-vaurien.log.
trap 'mkdir -p target; cp "$WORK/vaurien.log" target/soak-vaurien.log 2>/dev/null || true; rm -rf "$WORK"' EXIT
# Bounded whatever happens: the load, a warm-up, the settling, and slack.
timeout --signal=TERM --kill-after=20 "$((SECS + 300))" "$PY" scripts/soak.py run "$SECS" "$WORK"
