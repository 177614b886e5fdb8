#!/usr/bin/env bash
# The tools teams already run, against vaurien (docs/kubernetes.md, examples/):
# - Chaos Toolkit: examples/chaostoolkit/experiment.json runs (chaostoolkit +
#   chaostoolkit-toxiproxy + chaostoolkit-prometheus, in a virtualenv of its own, .venv-chaos)
#   against vaurien's toxiproxy-server, then against `vaurien --http`, in front of a real
#   redis-server, with a real Prometheus scraping /metrics; it fails unless each journal says
#   completed, steady state met before and after, the toxics acted and the rollbacks ran
#   (examples/chaostoolkit/check_journal.py), and the proxy is gone afterwards. The Kubernetes Job of examples/kubernetes/chaos-job.yaml
#   runs too: its script and experiment, against two proxies here, pauses skipped.
# - Kubernetes: examples/kubernetes/*.yaml validate against the Kubernetes JSON schemas
#   (kubernetes-validate --strict, schemas bundled: no network), and their vaurien containers
#   run here as the manifests start them (scripts/check_k8s_commands.py).
# - Prometheus: promtool checks examples/prometheus/*.yml.
#
# Loopback only, ports picked at run time; it stops everything it started. As root with
# apt-get it installs redis-server, prometheus and curl (Debian) when missing; it builds
# target/debug/toxiproxy-server and target/debug/vaurien (scripts/test.sh has by then).
# Usage: bash scripts/test_chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PATH="$PATH:/usr/sbin:/usr/local/sbin"
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v curl >/dev/null || need+=(curl)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test_chaos: missing ${need[*]} (Debian packages; run as root to install them)" >&2
    exit 2
  fi
fi

# Chaos Toolkit and the validator: a virtualenv of their own (their dependencies are theirs),
# on the newest CPython at hand: chaostoolkit 1.20 and later need 3.12 (3.11 gets 1.19).
VENV=.venv-chaos
if [ ! -x "$VENV/bin/python" ]; then
  CHAOS_PY=${PYTHON:-python3}
  for p in /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3; do
    if [ -x "$p" ]; then CHAOS_PY=$p; break; fi
  done
  "$CHAOS_PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  "chaostoolkit>=1.19,<2" "chaostoolkit-lib>=1.44,<2" "chaostoolkit-toxiproxy==0.3.1" \
  "chaostoolkit-prometheus>=0.6,<0.7" "redis>=5,<8" "kubernetes-validate>=1.30,<2"

echo "-- Kubernetes manifests against the schemas (kubernetes-validate --strict)"
"$VENV/bin/kubernetes-validate" --strict examples/kubernetes/*.yaml

echo "-- Prometheus scrape config (promtool)"
promtool check config examples/prometheus/*.yml

cargo build --quiet --bin toxiproxy-server --bin vaurien

WORK=$(mktemp -d -t vaurien-chaos.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {  # PORT NAME LOG
  local i
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "test_chaos: $2 did not listen on 127.0.0.1:$1 in 10 s; its log:" >&2
  cat "$3" >&2
  exit 1
}
REDIS_PORT=$(free_port)
TOXIPROXY_PORT=$(free_port)
VAURIEN_API_PORT=$(free_port)
VAURIEN_PROXY_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
target/debug/toxiproxy-server -host 127.0.0.1 -port "$TOXIPROXY_PORT" >"$WORK/toxiproxy.log" 2>&1 &
PIDS+=($!)
# `vaurien --http` serves the same Toxiproxy API (with its own proxy, named vaurien).
target/debug/vaurien --proxy "127.0.0.1:$VAURIEN_PROXY_PORT" --backend "127.0.0.1:$REDIS_PORT" \
  --http --http-host 127.0.0.1 --http-port "$VAURIEN_API_PORT" >"$WORK/vaurien.log" 2>&1 &
PIDS+=($!)
# The shipped scrape config (every second), pointed at these two control APIs.
sed -e "s/targets: .*/targets: [\"127.0.0.1:$TOXIPROXY_PORT\", \"127.0.0.1:$VAURIEN_API_PORT\"]/" \
  examples/prometheus/prometheus.yml >"$WORK/prometheus.yml"
promtool check config "$WORK/prometheus.yml" >/dev/null
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT" redis-server "$WORK/redis.log"
wait_port "$TOXIPROXY_PORT" toxiproxy-server "$WORK/toxiproxy.log"
wait_port "$VAURIEN_API_PORT" "vaurien --http" "$WORK/vaurien.log"
wait_port "$PROMETHEUS_PORT" prometheus "$WORK/prometheus.log"

echo "-- the vaurien containers of examples/kubernetes/*.yaml, run here"
"$VENV/bin/python" scripts/check_k8s_commands.py target/debug "$REDIS_PORT"

API=http://127.0.0.1:$TOXIPROXY_PORT
chaos() {  # chaos run, bounded, its log and settings in $WORK
  timeout --kill-after=10 300 "$ROOT/$VENV/bin/chaos" --no-version-check \
    --log-file "$WORK/chaostoolkit.log" --settings "$WORK/settings.yaml" "$@"
}

for server in toxiproxy-server vaurien; do
  port=$TOXIPROXY_PORT
  if [ "$server" = vaurien ]; then port=$VAURIEN_API_PORT; fi
  echo "-- Chaos Toolkit: examples/chaostoolkit/experiment.json against $server"
  (
    cd examples/chaostoolkit
    TOXIPROXY_HOST=127.0.0.1 TOXIPROXY_PORT=$port REDIS_HOST=127.0.0.1 \
      REDIS_PORT=$REDIS_PORT PROXY_HOST=127.0.0.1 \
      PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT PYTHONPATH=. \
      chaos run --journal-path "$WORK/journal-$server.json" experiment.json
  ) || true   # the journal says what happened
  "$VENV/bin/python" examples/chaostoolkit/check_journal.py "$WORK/journal-$server.json"
  left=$(curl -sS "http://127.0.0.1:$port/proxies" | "$VENV/bin/python" -c \
    'import json, sys; print(" ".join(sorted(json.load(sys.stdin))))')
  expected=""
  if [ "$server" = vaurien ]; then expected=vaurien; fi
  if [ "$left" != "$expected" ]; then
    echo "test_chaos: proxies left on $server after the rollbacks: '$left'" >&2
    exit 1
  fi
done

echo "-- the Job of examples/kubernetes/chaos-job.yaml, its script run here (pauses skipped)"
# Its ConfigMap's files in $WORK/job (for /experiments), its targets moved to this
# toxiproxy-server under two names, its shell script as the container runs it.
JOB=$WORK/job
mkdir -p "$JOB/bin"
"$VENV/bin/python" - "$JOB" <<'EOF'
import sys, yaml
job = sys.argv[1]
for doc in yaml.safe_load_all(open("examples/kubernetes/chaos-job.yaml")):
    if doc["kind"] == "ConfigMap":
        for name, text in doc["data"].items():
            open(f"{job}/{name}", "w").write(text)
    if doc["kind"] == "Job":
        (c,) = doc["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["sh", "-c"], c["command"]
        script = c["args"][0].replace(c["volumeMounts"][0]["mountPath"], job)
        open(f"{job}/job.sh", "w").write(script)
with open(f"{job}/targets", "w") as f:
    f.write("127.0.0.1:redis\nlocalhost:vaurien\n")
EOF
# `pip install` finds everything installed in $VENV; `chaos run` gets --dry pause.
cat >"$JOB/bin/chaos" <<EOF
#!/bin/sh
for a; do shift; set -- "\$@" "\$a"; [ "\$a" = run ] && set -- "\$@" --dry pause; done
exec "$ROOT/$VENV/bin/chaos" --log-file "$WORK/job.log" --settings "$WORK/settings.yaml" "\$@"
EOF
chmod +x "$JOB/bin/chaos"
for name in redis vaurien; do
  curl -sSf -o /dev/null -X POST "$API/proxies" \
    -d "{\"name\":\"$name\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:$REDIS_PORT\"}"
done
(
  cd "$JOB"
  PATH="$JOB/bin:$ROOT/$VENV/bin:$PATH" TOXIPROXY_PORT=$TOXIPROXY_PORT \
    timeout --kill-after=10 300 sh job.sh
)
"$VENV/bin/python" - "$JOB"/journal-127.0.0.1.json "$JOB"/journal-localhost.json <<'EOF'
import json, sys
for path in sys.argv[1:]:
    j = json.load(open(path))
    ok = (
        j["status"] == "completed"
        and j["steady_states"]["before"]["steady_state_met"]
        and j["steady_states"]["after"]["steady_state_met"]
        and [r["status"] for r in j["run"] + j["rollbacks"]] == ["succeeded"] * 2
        and j["rollbacks"][0]["output"] is True
    )
    if not ok:
        sys.exit(f"{path}: " + json.dumps({k: j.get(k) for k in ("status", "run", "rollbacks")}))
print("job journals: completed for both targets, the toxic added and removed")
EOF
for name in redis vaurien; do
  toxics=$(curl -sS "$API/proxies/$name/toxics")
  if [ "$toxics" != "[]" ]; then
    echo "test_chaos: the job's rollback left toxics on $name: $toxics" >&2
    exit 1
  fi
done
echo "test_chaos: passed"
