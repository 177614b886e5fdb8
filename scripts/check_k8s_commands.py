"""Runs the vaurien containers of examples/kubernetes/*.yaml as the manifests start them, on
this machine: the container's command and args (and its -config from the ConfigMap), with the
addresses moved to free loopback ports and the backend to a local redis-server. Each must
start, answer its readiness probe, accept the requests of its Service's name as Host (through
the manifest's VAURIEN_API_HOSTS, since the API binds loopback here) and carry a redis PING.

Usage: python check_k8s_commands.py TARGET_DIR REDIS_PORT   (scripts/test_chaos.sh runs it)
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import yaml

MANIFESTS = ["examples/kubernetes/sidecar.yaml", "examples/kubernetes/standalone.yaml"]
LIMIT = 10.0
# Where the manifests without a namespace land.
NAMESPACE = "default"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc):
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {LIMIT} s")


def get(port, path, host):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=LIMIT)
    c.request("GET", path, headers={"Host": f"{host}:{port}"})
    r = c.getresponse()
    return r.status, r.read().decode()


def ping(port):
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(64)


def localize(argv, redis_port, tmp, configmaps):
    """The container's argv with its addresses on loopback; returns (argv, api port, proxy
    ports)."""
    api, proxies, out = free_port(), [], []
    it = iter(argv)
    for a in it:
        name, eq, val = a.partition("=")
        flag = name.lstrip("-")
        if flag in ("host", "http-host", "port", "http-port", "proxy", "backend", "config"):
            val = val if eq else next(it)
            if flag in ("host", "http-host"):
                val = "127.0.0.1"  # the manifests say 0.0.0.0: loopback only here
            elif flag in ("port", "http-port"):
                val = str(api)
            elif flag == "proxy":
                proxies.append(free_port())
                val = f"127.0.0.1:{proxies[-1]}"
            elif flag == "backend":
                val = f"127.0.0.1:{redis_port}"
            elif flag == "config":
                entries = json.loads(configmaps[os.path.basename(val)])
                for e in entries:
                    proxies.append(free_port())
                    e["listen"] = f"127.0.0.1:{proxies[-1]}"
                    e["upstream"] = f"127.0.0.1:{redis_port}"
                val = os.path.join(tmp, os.path.basename(val))
                with open(val, "w") as f:
                    json.dump(entries, f)
            out += [name, val]
        else:
            out.append(a)
    return out, api, proxies


def check(manifest, target, redis_port, tmp):
    docs = list(yaml.safe_load_all(open(manifest)))
    configmaps = {k: v for d in docs if d["kind"] == "ConfigMap" for k, v in d["data"].items()}
    services = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"]
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            if not re.search(r"/vaurien:", c["image"]):
                continue
            argv, api, proxies = localize(c["command"] + c["args"], redis_port, tmp, configmaps)
            env = dict(os.environ, **{e["name"]: e["value"] for e in c.get("env", [])})
            probe = c["readinessProbe"]["httpGet"]["path"]
            where = f"{manifest} {c['name']}: {' '.join(argv)}"
            proc = subprocess.Popen(
                [os.path.join(target, argv[0])] + argv[1:],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                wait_port(api, proc)
                assert get(api, probe, "127.0.0.1")[0] == 200, f"{where}: {probe} is not 200"
                # The Service's names, as seen from its namespace and from others.
                for svc in services:
                    fqdn = f"{svc}.{NAMESPACE}.svc"
                    for host in (svc, fqdn, f"{fqdn}.cluster.local"):
                        status, body = get(api, "/proxies", host)
                        assert status == 200, f"{where}: Host {host} got {status} {body}"
                assert proxies, f"{where}: no proxy"
                for p in proxies:
                    wait_port(p, proc)
                    got = ping(p)
                    assert got == b"+PONG\r\n", f"{where}: PING through {p} got {got!r}"
                proc.terminate()
                proc.wait(timeout=LIMIT)
            except BaseException as e:
                proc.kill()
                raise SystemExit(f"{e!r}\n{where}\n{proc.communicate()[1].decode()}")
            print(f"k8s: {manifest} container {c['name']!r} starts, answers and proxies")


def main():
    target, redis_port = sys.argv[1], int(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        for m in MANIFESTS:
            check(m, target, redis_port, tmp)


if __name__ == "__main__":
    main()
