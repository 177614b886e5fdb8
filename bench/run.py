#!/usr/bin/env python3
"""vaurien benchmark harness (issue 6).

One command measures every workload twice in the same run, directly against
a real backend and through vaurien, repeats it, and reports medians and the
ratio through/direct against the targets of issue 6:

    python3 bench/run.py [--quick] [--only WORKLOAD[,WORKLOAD]] [--vaurien PATH] [--peers]

Beside vaurien it measures bench/floor.c, a minimal C epoll forwarder built with
cc (--no-floor skips it): the floor of any user-space proxy on the machine.

It installs nothing: `bench/setup.sh` does (Debian packages + release build).
Everything it starts listens on 127.0.0.1 on ports picked at run time, every
load run is bounded in count and time, and every process it starts is killed
at the end, also on Ctrl-C or SIGTERM.

Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_VAURIEN = REPO / "target" / "release" / "vaurien"
HOST = "127.0.0.1"  # loopback only, everywhere

WORKLOADS = ["bulk", "redis", "http", "churn", "rss", "python"]

# How vaurien is run for each protocol (the original's CLI). The tcp protocol
# without keep-alive + stay-connected closes after one exchange (a quirk kept
# from the original), so a benchmark must always pass both.
PROTOCOL_FLAGS = {
    "tcp": ["--protocol", "tcp", "--protocol-tcp-keep-alive", "--stay-connected"],
    "redis": ["--protocol", "redis", "--stay-connected"],
    "http": ["--protocol", "http", "--protocol-http-keep-alive",
             "--protocol-http-reuse-socket", "--stay-connected"],
}

# Which package brings each tool (Debian bookworm).
TOOL_PACKAGES = {
    "iperf3": "iperf3",
    "redis-server": "redis-server",
    "redis-benchmark": "redis-tools",
    "nginx": "nginx",
    "wrk": "wrk",
}
WORKLOAD_TOOLS = {
    "bulk": ["iperf3"],
    "redis": ["redis-server", "redis-benchmark"],
    "http": ["nginx", "wrk"],
    "churn": ["nginx", "wrk"],
    "rss": [],
    "python": ["redis-server", "redis-benchmark"],
}


def settings_for(quick: bool) -> dict:
    """Sizes of every load run. Each run is bounded in count and in time."""
    if quick:
        return dict(reps=1, iperf_seconds=3, redis_n50=50_000, redis_n1=10_000,
                    wrk_seconds=3, python_n=10_000, wrk_threads=2, wrk_conns=50,
                    redis_clients=50)
    return dict(reps=3, iperf_seconds=5, redis_n50=150_000, redis_n1=20_000,
                wrk_seconds=5, python_n=30_000, wrk_threads=2, wrk_conns=50,
                redis_clients=50)


# --------------------------------------------------------------------------
# errors, logging


class BenchError(Exception):
    """A workload or subject failed; recorded in the results, the run goes on."""


class StallError(BenchError):
    """A load run gave no result in its time bound: the subject is not run again."""


def log(msg: str) -> None:
    try:
        print(msg, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError):
        pass  # the reader went away: keep going, and clean up at the end


# --------------------------------------------------------------------------
# resource limits


def raise_nofile() -> None:
    """Soft fd limit up to the hard limit (used here and in every child)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


# --------------------------------------------------------------------------
# process management


class Procs:
    """Every process the harness starts, so that all of them are stopped.

    Each child runs in its own session (process group == its pid); stopping
    it signals that group, which also reaches anything it forked, and
    nothing else.
    """

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.live: list[subprocess.Popen] = []
        self.count = 0

    def start(self, argv: list[str], name: str, cwd: str | None = None,
              env: dict | None = None) -> subprocess.Popen:
        self.count += 1
        logpath = self.logdir / f"{self.count:03d}-{name}.log"
        logf = open(logpath, "wb")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                 start_new_session=True, preexec_fn=raise_nofile)
        except OSError as e:
            raise BenchError(f"cannot start {argv[0]}: {e}") from None
        finally:
            logf.close()
        p.logpath = logpath  # type: ignore[attr-defined]
        p.name = name  # type: ignore[attr-defined]
        self.live.append(p)
        return p

    def stop(self, p: subprocess.Popen | None, grace: float = 3.0) -> None:
        if p is None:
            return
        try:
            if p.poll() is None:
                _signal_group(p.pid, signal.SIGTERM)
                try:
                    p.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            # the leader may be gone while forked children still live
            _signal_group(p.pid, signal.SIGKILL)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        finally:
            if p in self.live:
                self.live.remove(p)

    def stop_all(self) -> None:
        for p in list(reversed(self.live)):
            self.stop(p, grace=2.0)

    def run(self, argv: list[str], timeout: float, name: str,
            cwd: str | None = None) -> str:
        """Run a load generator to completion (bounded by `timeout`), return stdout."""
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=cwd, start_new_session=True,
                             preexec_fn=raise_nofile)
        self.live.append(p)
        try:
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop(p, grace=1.0)
                raise StallError(f"{name}: no result within {timeout:.0f}s (killed)") from None
        finally:
            self.stop(p, grace=1.0)
        text = out.decode(errors="replace")
        if p.returncode != 0:
            msg = (err.decode(errors="replace") or text).strip().splitlines()
            raise BenchError(f"{name}: exit {p.returncode}: {' | '.join(msg[-3:])}")
        p.stderr_text = err.decode(errors="replace")  # type: ignore[attr-defined]
        return text


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(p: subprocess.Popen, lines: int = 4) -> str:
    try:
        text = Path(p.logpath).read_text(errors="replace")  # type: ignore[attr-defined]
    except OSError:
        return ""
    tail = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


# --------------------------------------------------------------------------
# ports and readiness


_used_ports: set[int] = set()


def free_port() -> int:
    """A free loopback port, never the same one twice in a run."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise BenchError("no free port")


def _listening_ports() -> set[int]:
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":  # TCP_LISTEN
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except (OSError, StopIteration):
            continue
    return ports


def wait_listening(port: int, proc: subprocess.Popen | None, what: str,
                   deadline_s: float = 15.0) -> None:
    """Poll until something listens on `port` (no fixed sleep).

    Reads /proc/net/tcp rather than connecting, so that no stray connection
    reaches a backend (iperf3 treats one as a failed test); falls back to a
    connect probe where /proc is not readable.
    """
    use_proc = os.path.exists("/proc/net/tcp")
    end = time.monotonic() + deadline_s
    delay = 0.005
    while True:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before listening"
                             f" on {HOST}:{port}: {log_tail(proc)}")
        if use_proc:
            if port in _listening_ports():
                return
        else:
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return
            except OSError:
                pass
        if time.monotonic() > end:
            raise BenchError(f"{what} not listening on {HOST}:{port} after {deadline_s:.0f}s"
                             + (f": {log_tail(proc)}" if proc is not None else ""))
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


# --------------------------------------------------------------------------
# /proc readings: CPU time and resident memory of a process tree


CLK_TCK = os.sysconf("SC_CLK_TCK")
# A direct run that keeps this share of the cores busy is CPU-bound (see Bench.account_row).
CPU_BOUND = 0.85


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()  # fields from `state` on


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants (a forking proxy such as socat has many)."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def cpu_split(root: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the tree (all threads), reaped children included."""
    user = system = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields:
            # utime, stime, cutime, cstime are fields 14..17 of /proc/PID/stat
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
    return user / CLK_TCK, system / CLK_TCK


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (user, nice, system, irq, softirq; not idle,
    iowait or steal), all cores together."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / CLK_TCK


class CpuAccount:
    """Where the machine's CPU went during one measurement: the whole machine busy, the
    proxy's user-space and kernel time. The ceiling a proxy with no user-space cost at all
    would reach in a CPU-bound run is ratio × busy / (busy − proxy user)."""

    def __init__(self, run):
        self.pid = run.pid if run else None
        self.t0 = time.monotonic()
        self.b0 = machine_busy()
        self.p0 = cpu_split(self.pid) if self.pid else (0.0, 0.0)

    def record(self, c, label: str, key: str) -> float:
        """Records the shares under `key`; returns the proxy's CPU seconds (0 when direct)."""
        wall = time.monotonic() - self.t0
        busy = machine_busy() - self.b0
        c.add(label, f"acct_{key}_busy", busy / (wall * (os.cpu_count() or 1)))
        if not self.pid:
            return 0.0
        p1 = cpu_split(self.pid)
        user, system = p1[0] - self.p0[0], p1[1] - self.p0[1]
        c.add(label, f"acct_{key}_user", user / busy if busy else 0.0)
        c.add(label, f"acct_{key}_sys", system / busy if busy else 0.0)
        return user + system


def rss_kib(root: int) -> int:
    """VmRSS of the tree, KiB (for a single process: its VmRSS)."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_busy(seconds: float = 0.5) -> float:
    """Fraction of the machine's CPU time spent busy over `seconds` (0..1)."""
    def snap():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return vals[3] + (vals[4] if len(vals) > 4 else 0), sum(vals)  # idle+iowait, total
    try:
        i0, t0 = snap()
        time.sleep(seconds)
        i1, t1 = snap()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


BUSY_WARN = 0.25  # other processes using more than this share of the CPU: noisy ratios


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def settle_rss(pid: int, max_s: float = 5.0) -> int:
    """RSS once it stops moving (3 readings within 0.5%), at most max_s."""
    end = time.monotonic() + max_s
    readings = [rss_kib(pid)]
    while time.monotonic() < end:
        time.sleep(0.25)
        readings.append(rss_kib(pid))
        last = readings[-3:]
        if len(last) == 3 and max(last) - min(last) <= max(8, 0.005 * max(last)):
            break
    return readings[-1]


# --------------------------------------------------------------------------
# proxies under test


@dataclass
class Running:
    label: str
    port: int
    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid


class ProxyKind:
    """How to start one proxy implementation in front of a backend."""

    name = "proxy"
    protocols = ("tcp",)

    def start(self, procs: Procs, backend_port: int, protocol: str) -> Running:
        raise NotImplementedError


class VaurienProxy(ProxyKind):
    name = "vaurien"
    protocols = ("tcp", "redis", "http")

    def __init__(self, path: str, extra: list[str]):
        self.path = path
        self.extra = extra

    def argv(self, listen: int, backend: int, protocol: str) -> list[str]:
        return [self.path, "--proxy", f"{HOST}:{listen}", "--backend", f"{HOST}:{backend}",
                *PROTOCOL_FLAGS[protocol], "--behavior", "100:dummy",
                "--log-level", "warning", *self.extra]

    def start(self, procs, backend_port, protocol):
        port = free_port()
        p = procs.start(self.argv(port, backend_port, protocol), f"vaurien-{protocol}")
        wait_listening(port, p, f"vaurien ({protocol})")
        return Running(f"vaurien {protocol}", port, p)


class CommandProxy(ProxyKind):
    """A stand-in proxy from a command template (hidden option --proxy-cmd)."""

    name = "stand-in"
    protocols = ("tcp", "redis", "http")

    def __init__(self, template: str):
        self.template = template

    def start(self, procs, backend_port, protocol):
        port = free_port()
        cmd = self.template.format(listen_port=port, backend_port=backend_port,
                                   protocol=protocol, host=HOST)
        p = procs.start(shlex.split(cmd), f"standin-{protocol}")
        wait_listening(port, p, f"stand-in proxy ({protocol})")
        return Running(f"{self.name} {protocol}", port, p)


class ToxiproxyProxy(ProxyKind):
    """Shopify's Toxiproxy, when toxiproxy-server is on PATH (peer comparison)."""

    name = "toxiproxy"
    protocols = ("tcp",)

    def __init__(self, path: str):
        self.path = path

    def start(self, procs, backend_port, protocol):
        api = free_port()
        p = procs.start([self.path, "-host", HOST, "-port", str(api)], "toxiproxy")
        wait_listening(api, p, "toxiproxy-server")
        port = free_port()
        body = json.dumps({"name": f"bench{port}", "listen": f"{HOST}:{port}",
                           "upstream": f"{HOST}:{backend_port}", "enabled": True}).encode()
        req = urllib.request.Request(f"http://{HOST}:{api}/proxies", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                r.read()
        except OSError as e:
            procs.stop(p)
            raise BenchError(f"toxiproxy: cannot create proxy: {e}") from None
        wait_listening(port, p, "toxiproxy proxy")
        return Running("toxiproxy tcp", port, p)


class HaproxyProxy(ProxyKind):
    """HAProxy in `mode tcp` (Debian's haproxy): the usual fast TCP proxy (peer comparison)."""

    name = "haproxy"
    protocols = ("tcp",)

    def __init__(self, path: str):
        self.path = path

    def start(self, procs, backend_port, protocol):
        port = free_port()
        conf = procs.logdir.parent / f"haproxy-{port}.cfg"
        conf.write_text(f"""
global
    maxconn 9000
    nbthread {os.cpu_count() or 1}
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind {HOST}:{port}
    default_backend backend
backend backend
    server s1 {HOST}:{backend_port}
""")
        p = procs.start([self.path, "-db", "-f", str(conf)], "haproxy")
        wait_listening(port, p, "haproxy")
        return Running("haproxy tcp", port, p)


class NginxStreamProxy(ProxyKind):
    """nginx's stream module (Debian's libnginx-mod-stream): TCP proxying (peer comparison)."""

    name = "nginx-stream"
    protocols = ("tcp",)
    MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")

    def start(self, procs, backend_port, protocol):
        port = free_port()
        d = procs.logdir.parent / f"nginx-stream-{port}"
        d.mkdir(parents=True)
        conf = d / "nginx.conf"
        conf.write_text(f"""
load_module {self.MODULE};
worker_processes {os.cpu_count() or 1};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 16384; }}
stream {{
    server {{
        listen {HOST}:{port} backlog=4096;
        proxy_pass {HOST}:{backend_port};
    }}
}}
""")
        p = procs.start(["nginx", "-p", str(d), "-c", str(conf), "-e", str(d / "error.log"),
                         "-g", "daemon off;"], "nginx-stream")
        wait_listening(port, p, "nginx stream proxy")
        return Running("nginx-stream tcp", port, p)


class FloorProxy(ProxyKind):
    """bench/floor.c: the floor of a user-space proxy (one thread, epoll, recv+send).

    Not a peer but a reference point: where vaurien is close to it, the rest of
    the gap to a direct connection is the kernel's cost of the second TCP
    connection on this machine, which no user-space proxy avoids.
    """

    name = "floor"
    protocols = ("tcp",)

    def __init__(self, path: str):
        self.path = path

    @staticmethod
    def build(tmp: Path) -> str:
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise BenchError("no C compiler (cc) to build bench/floor.c")
        out = tmp / "floor"
        r = subprocess.run([cc, "-O2", "-o", str(out), str(BENCH_DIR / "floor.c")],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"cannot build bench/floor.c: {r.stderr.strip()[-300:]}")
        return str(out)

    def start(self, procs, backend_port, protocol):
        port = free_port()
        p = procs.start([self.path, str(port), str(backend_port)], "floor")
        wait_listening(port, p, "floor proxy (bench/floor.c)")
        return Running("floor tcp", port, p)


# A child Python process that starts the engine through the Python API with a
# trivial Python behavior (or the built-in dummy) and waits to be stopped.
def parse_redis_csv(out: str) -> dict[str, dict]:
    """redis-benchmark's `--csv` output: {test: {column: value}} for each test with a rate."""
    rows = {}
    for rec in csv.DictReader(io.StringIO(out)):
        if rec.get("test") and rec.get("rps"):
            rows[rec["test"]] = {k: float(v) for k, v in rec.items() if k != "test"}
    return rows


PY_PROXY_CHILD = r'''
import inspect, json, signal, sys, time
cfg = json.loads(sys.argv[1])
from vaurien.behaviors import Behavior
from vaurien.util import start_proxy, stop_proxy

class BenchPassThrough(object):
    """The most trivial Python behavior: every hook lets the exchange through."""
    name = "benchpass"
    options = {}

    def on_before_handle(self, protocol, source, dest, to_backend):
        return True

    def on_between_handle(self, protocol, source, dest, to_backend):
        return True

    def on_after_handle(self, protocol, source, dest, to_backend):
        return True

Behavior.register(BenchPassThrough)


class BenchBefore(object):
    """One hook, on_before_handle, that lets the exchange through."""
    name = "benchbefore"
    options = {}

    def on_before_handle(self, protocol, source, dest, to_backend):
        return True

Behavior.register(BenchBefore)

def _stop(*_):
    raise SystemExit(0)

signal.signal(signal.SIGTERM, _stop)
signal.signal(signal.SIGINT, _stop)
kwargs = dict(proxy_host=cfg["host"], proxy_port=cfg["port"], backend_host=cfg["host"],
              backend_port=cfg["backend_port"], protocol=cfg["protocol"], http=False,
              options=cfg["options"], log_level="warning")
try:
    params = inspect.signature(start_proxy).parameters
    if "warmup" in params:
        kwargs["warmup"] = 20  # the longest wait for the proxy to accept (harness polls too)
except (TypeError, ValueError):
    pass
handle = start_proxy(**kwargs)
print("started", handle, flush=True)
try:
    while True:
        signal.pause()
finally:
    try:
        stop_proxy(handle)
    except Exception:
        pass
'''


class PythonApiProxy(ProxyKind):
    name = "python"
    protocols = ("tcp", "redis", "http")

    def __init__(self, behavior: str, workdir: Path, extra: tuple[str, ...] = (), label: str = ""):
        self.behavior = behavior
        self.workdir = workdir
        self.extra = list(extra)
        self.label = label or behavior

    def start(self, procs, backend_port, protocol):
        port = free_port()
        script = self.workdir / "py_proxy_child.py"
        script.write_text(PY_PROXY_CHILD)
        flags = [f for f in PROTOCOL_FLAGS[protocol] if f not in ("--protocol", protocol)]
        cfg = dict(host=HOST, port=port, backend_port=backend_port, protocol=protocol,
                   options=["--behavior", f"100:{self.behavior}", *self.extra, *flags])
        # cwd outside the repo, so that `import vaurien` is the installed package
        p = procs.start([sys.executable, str(script), json.dumps(cfg)],
                        f"python-{self.label}", cwd=str(self.workdir))
        wait_listening(port, p, f"python start_proxy ({self.label})", deadline_s=30)
        return Running(f"python {self.label}", port, p)


# --------------------------------------------------------------------------
# samples, rows and targets


@dataclass
class Target:
    op: str            # ">=" or "<="
    value: float
    basis: str         # "direct", "value", or the label of another subject
    text: str

    def check(self, x: float | None) -> bool | None:
        if x is None:
            return None
        return x >= self.value if self.op == ">=" else x <= self.value


@dataclass
class Row:
    workload: str
    metric: str
    subject: str
    unit: str
    direct: float | None = None
    value: float | None = None
    ratio: float | None = None           # value / direct
    target: Target | None = None
    compared: float | None = None        # the number checked against the target
    passed: bool | None = None
    samples_direct: list = field(default_factory=list)
    samples_value: list = field(default_factory=list)
    note: str = ""
    detail: bool = False   # in the JSON, not in the Markdown table

    def as_json(self) -> dict:
        d = dict(workload=self.workload, metric=self.metric, subject=self.subject,
                 unit=self.unit, direct_median=self.direct, proxied_median=self.value,
                 ratio=self.ratio, samples_direct=self.samples_direct,
                 samples_proxied=self.samples_value)
        if self.target:
            d["target"] = dict(op=self.target.op, value=self.target.value,
                               basis=self.target.basis, text=self.target.text,
                               compared=self.compared,
                               result=None if self.passed is None
                               else ("pass" if self.passed else "fail"))
        if self.note:
            d["note"] = self.note
        if self.detail:
            d["detail"] = True
        return d


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Collector:
    """samples[subject][metric] -> list of values, per workload."""

    def __init__(self, workload: str):
        self.workload = workload
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.errors: dict[str, str] = {}
        self.dead: set[str] = set()   # subjects not to run again (proxy would not start/died)
        self.extra: dict = {}

    def add(self, subject: str, metric: str, value: float) -> None:
        self.samples.setdefault(subject, {}).setdefault(metric, []).append(value)

    def get(self, subject: str, metric: str) -> list[float]:
        return self.samples.get(subject, {}).get(metric, [])

    def fail(self, subject: str, err: str, fatal: bool = False) -> None:
        log(f"    ! {subject}: {err}")
        self.errors.setdefault(subject, err)
        if fatal:
            self.dead.add(subject)


def make_row(c: Collector, metric: str, label: str, subject: str, unit: str,
             target: Target | None = None, direct_subject: str | None = "direct") -> Row:
    sv = c.get(subject, metric)
    sd = c.get(direct_subject, metric) if direct_subject else []
    row = Row(c.workload, label, subject, unit, samples_value=sv, samples_direct=sd)
    row.value = median(sv)
    row.direct = median(sd) if direct_subject else None
    if row.value is not None and row.direct:
        row.ratio = row.value / row.direct
    if subject in c.errors and row.value is None:
        row.note = "error, see below"
    if target is not None:
        row.target = target
        if target.basis == "direct":
            row.compared = row.ratio
        elif target.basis == "value":
            row.compared = row.value
        else:  # ratio to another subject's median of the same metric
            other = median(c.get(target.basis, metric))
            row.compared = row.value / other if (row.value is not None and other) else None
        row.passed = target.check(row.compared)
    return row


# --------------------------------------------------------------------------
# the harness


class Bench:
    def __init__(self, args, settings: dict, procs: Procs, tmp: Path):
        self.args = args
        self.s = settings
        self.procs = procs
        self.tmp = tmp
        self.rows: list[Row] = []
        self.accounts: list[dict] = []   # where the CPU went, per workload and proxy
        self.workload_status: dict[str, str] = {}
        self.extra: dict = {}
        self.proxy: ProxyKind | None = None
        self.peers: list[ProxyKind] = []
        self.busy: dict[str, float] = {}   # CPU busy fraction before each workload

    # -- generic measurement loop --------------------------------------------

    def measure(self, c: Collector, backend_port: int,
                subjects: list[tuple[str, ProxyKind | None, str]], once,
                reps: int | None = None, fresh: bool = False) -> None:
        """Run `once(c, subject_label, port, running)` for every subject, `reps` times.

        Subjects are interleaved inside each repetition (direct, proxied,
        direct, ...), so that a drift of the machine hits both alike. A
        subject whose proxy does not start is recorded and skipped.
        """
        reps = reps or self.s["reps"]
        running: dict[str, Running] = {}
        try:
            for rep in range(reps):
                for label, kind, protocol in subjects:
                    if label in c.dead:
                        continue
                    run = None
                    if kind is not None:
                        if label not in running:
                            try:
                                running[label] = kind.start(self.procs, backend_port, protocol)
                            except BenchError as e:
                                c.fail(label, str(e), fatal=True)
                                continue
                        run = running[label]
                    port = run.port if run else backend_port
                    try:
                        once(c, label, port, run)
                    except StallError as e:
                        c.fail(label, str(e), fatal=True)
                        if label in running:  # a stalled proxy may spin: stop it now
                            self.procs.stop(running.pop(label).proc)
                    except BenchError as e:
                        c.fail(label, str(e))
                    if run is not None and run.proc.poll() is not None:
                        c.fail(label, f"proxy died (status {run.proc.returncode}): "
                                      f"{log_tail(run.proc)}", fatal=True)
                        running.pop(label, None)
                    if fresh and label in running:
                        self.procs.stop(running.pop(label).proc)
                if self.args.perf and rep == reps - 1:
                    for label, kind, _ in subjects:
                        if label in running and isinstance(kind, (VaurienProxy, PythonApiProxy)):
                            self.profile(c, label, running[label], backend_port, once)
        finally:
            for r in running.values():
                self.procs.stop(r.proc)

    def profile(self, c: Collector, label: str, run: Running, backend_port, once) -> None:
        """--perf: one extra, unmeasured run with `perf record -g` on the proxy."""
        perf = shutil.which("perf")
        if not perf:
            log("    (perf not found: no profile)")
            return
        data = self.tmp / f"perf-{c.workload}-{label.replace(' ', '-')}.data"
        p = self.procs.start([perf, "record", "-F", "999", "-g", "-p", str(run.pid),
                              "-o", str(data)], "perf")
        time.sleep(0.3)  # let perf attach before the load starts
        scratch = Collector(c.workload)
        try:
            once(scratch, label, run.port, run)
        except BenchError as e:
            log(f"    (profiled run failed: {e})")
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGINT)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    pass
            self.procs.stop(p)
        outdir = Path(self.args.output)
        outdir.mkdir(parents=True, exist_ok=True)
        out = outdir / f"perf-{c.workload}-{label.replace(' ', '-')}.txt"
        try:
            flat = self.procs.run([perf, "report", "--stdio", "--no-children", "-i", str(data),
                                   "-g", "none", "--percent-limit", "0.5",
                                   "--sort", "dso,symbol"], timeout=120, name="perf report")
            graph = self.procs.run([perf, "report", "--stdio", "--no-children", "-i", str(data),
                                    "-g", "caller,2", "--percent-limit", "3",
                                    "--sort", "symbol"], timeout=120, name="perf report")
            threads = self.procs.run([perf, "report", "--stdio", "--no-children", "-i",
                                      str(data), "-g", "none", "--percent-limit", "0.5",
                                      "--sort", "comm,dso"], timeout=120, name="perf report")
            out.write_text(f"# perf profile of {label} during the {c.workload} workload\n"
                           f"# (perf record -F 999 -g -p PID; one extra, unmeasured run)\n\n"
                           + flat + "\n\n# by thread (comm) and object\n\n" + threads
                           + "\n\n# call graphs (callers, >= 3%)\n\n" + graph)
            log(f"    profile: {out}")
        except BenchError as e:
            log(f"    (perf report failed: {e})")

    def subjects(self, protocols: list[str], peers: bool = True) -> list:
        subs: list[tuple[str, ProxyKind | None, str]] = [("direct", None, "tcp")]
        assert self.proxy is not None
        for proto in protocols:
            subs.append((f"{self.proxy.name} {proto}", self.proxy, proto))
        if peers:
            for peer in self.peers:
                subs.append((f"{peer.name} tcp", peer, "tcp"))
        return subs

    def proxied_labels(self, c: Collector) -> list[str]:
        """Subjects other than direct, with samples or with an error (shown as such)."""
        labels = [s for s in c.samples if s != "direct"]
        return labels + [s for s in c.errors if s != "direct" and s not in labels]

    # -- bulk throughput + CPU per GB ---------------------------------------

    def bulk(self) -> None:
        c = Collector("bulk")
        port = free_port()
        server = self.procs.start(["iperf3", "-s", "-B", HOST, "-p", str(port)], "iperf3-server")
        try:
            wait_listening(port, server, "iperf3 server")
            t = self.s["iperf_seconds"]
            variants = [("up1", []), ("down1", ["-R"]), ("up4", ["-P", "4"])]

            def once(c, label, p, run):
                for name, extra in variants:
                    argv = ["iperf3", "-c", HOST, "-p", str(p), "-t", str(t), "-J", *extra]
                    acct = CpuAccount(run)
                    j = self._iperf(argv, t)
                    cpu = acct.record(c, label, name)
                    s = j["end"]["sum_received"]
                    gbit = s["bits_per_second"] / 1e9
                    c.add(label, name, gbit)
                    if run:
                        c.add(label, "cpu_s", cpu)
                        c.add(label, "gb", s["bytes"] / 1e9)
                        c.add(label, f"cpu_{name}", cpu / (s["bytes"] / 1e9))
                    log(f"    {label:<16} {name:<6} {gbit:8.2f} Gbit/s"
                        + (f"   proxy cpu {cpu:.2f}s for {s['bytes'] / 1e9:.1f} GB"
                           if run else ""))

            self.measure(c, port, self.subjects(["tcp"]), once)
            for label in list(c.samples):
                gb = sum(c.get(label, "gb"))
                if gb > 0:
                    c.add(label, "cpu_per_gb_total", sum(c.get(label, "cpu_s")) / gb)
        finally:
            self.procs.stop(server)
        labels = {"up1": "bulk, 1 connection, client→server",
                  "down1": "bulk, 1 connection, server→client",
                  "up4": "bulk, 4 connections, client→server"}
        targets = {"up1": 0.8, "down1": 0.8, "up4": 0.85}
        for subj in self.proxied_labels(c):
            for name, text in labels.items():
                tgt = (Target(">=", targets[name], "direct", f"≥ {targets[name]:g}× direct")
                       if subj.startswith(self.proxy.name) else None)
                self.rows.append(make_row(c, name, text, subj, "Gbit/s", tgt))
                self.account_row(c, name, text, subj)
            tgt = (Target("<=", 0.3, "value", "≤ 0.3 s/GB")
                   if subj.startswith(self.proxy.name) else None)
            self.rows.append(make_row(c, "cpu_per_gb_total",
                                      "proxy CPU per GB forwarded (all bulk runs)", subj,
                                      "CPU s/GB", tgt, direct_subject=None))
        self.finish(c)

    def _iperf(self, argv: list[str], t: int) -> dict:
        last = ""
        for attempt in range(4):
            try:
                out = self.procs.run(argv, timeout=t + 20, name="iperf3")
            except BenchError as e:
                out = str(e)
            try:
                j = json.loads(out[out.find("{"):]) if "{" in out else {}
            except ValueError:
                j = {}
            if j and "error" not in j and j.get("end", {}).get("sum_received"):
                return j
            last = j.get("error") or out.strip()[-300:]
            if "busy" not in last:  # the server is still finishing the last test
                break
            time.sleep(0.2 * (attempt + 1))
        raise BenchError(f"iperf3: {last}")

    # -- redis ---------------------------------------------------------------

    def start_redis(self) -> tuple[subprocess.Popen, int]:
        port = free_port()
        rdir = self.tmp / f"redis-{port}"
        rdir.mkdir()
        p = self.procs.start(["redis-server", "--port", str(port), "--bind", HOST,
                              "--save", "", "--appendonly", "no", "--protected-mode", "no",
                              "--daemonize", "no", "--dir", str(rdir), "--maxclients", "10000"],
                             "redis-server")
        wait_listening(port, p, "redis-server")
        return p, port

    def redis_benchmark(self, port: int, clients: int, n: int,
                        floor: int | None = None) -> dict[str, dict]:
        argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-c", str(clients),
                "-n", str(n), "-t", "ping_mbulk,set,get", "--csv"]
        # bounded: a proxy slower than this floor is broken (or stalled)
        floor = floor or (5000 if clients > 1 else 1000)  # requests/s
        out = self.procs.run(argv, timeout=20 + 3 * n / floor, name="redis-benchmark")
        rows = parse_redis_csv(out)
        if len(rows) < 3:
            raise BenchError(f"redis-benchmark: unexpected output: {out.strip()[-200:]!r}")
        return rows

    def redis(self) -> None:
        c = Collector("redis")
        server, port = self.start_redis()
        n50, n1, cl = self.s["redis_n50"], self.s["redis_n1"], self.s["redis_clients"]

        def once(c, label, p, run):
            acct = CpuAccount(run)
            r50 = self.redis_benchmark(p, cl, n50)
            acct.record(c, label, "c50")
            r1 = self.redis_benchmark(p, 1, n1)
            for test, rec in r50.items():
                c.add(label, f"c50_{test}", rec["rps"])
            for test, rec in r1.items():
                c.add(label, f"c1_{test}", rec["rps"])
                c.add(label, f"c1p50_{test}", rec["p50_latency_ms"] * 1000)
                c.add(label, f"c1avg_{test}", rec["avg_latency_ms"] * 1000)
            # PING+SET+GET together: all requests over the time they took
            agg50 = len(r50) * n50 / sum(n50 / r["rps"] for r in r50.values())
            agg1 = len(r1) * n1 / sum(n1 / r["rps"] for r in r1.values())
            p50 = statistics.mean(r["p50_latency_ms"] * 1000 for r in r1.values())
            c.add(label, "c50", agg50)
            c.add(label, "c1", agg1)
            c.add(label, "c1p50", p50)
            log(f"    {label:<16} {cl} clients: {agg50:9,.0f} req/s ("
                + " ".join(f"{t.split('_')[0]} {r['rps']:,.0f}" for t, r in r50.items())
                + f")   1 client: {agg1:8,.0f} req/s, p50 {p50:.0f}µs")

        try:
            self.measure(c, port, self.subjects(["tcp", "redis"]), once)
        finally:
            self.procs.stop(server)
        ours_tcp = f"{self.proxy.name} tcp"
        for subj in self.proxied_labels(c):
            ours = subj.startswith(self.proxy.name)
            framing = ours and subj != ours_tcp
            t50 = t1 = tl = None
            if ours and not framing:
                t50 = Target(">=", 0.8, "direct", "≥ 0.8× direct")
                t1 = Target(">=", 0.85, "direct", "≥ 0.85× direct")
                tl = Target("<=", 1.15, "direct", "≤ 1.15× direct")
            elif framing:
                t50 = Target(">=", 0.8, ours_tcp, "≥ 0.8× tcp")
                t1 = Target(">=", 0.8, ours_tcp, "≥ 0.8× tcp")
            self.rows.append(make_row(c, "c50", f"redis PING+SET+GET, {cl} clients",
                                      subj, "req/s", t50))
            self.account_row(c, "c50", f"redis PING+SET+GET, {cl} clients", subj)
            self.rows.append(make_row(c, "c1", "redis PING+SET+GET, 1 client",
                                      subj, "req/s", t1))
            self.rows.append(make_row(c, "c1p50", "redis, 1 client, p50 latency",
                                      subj, "µs", tl))
            # per command, in the JSON only
            for test in ("PING_MBULK", "SET", "GET"):
                for key, text, unit in ((f"c50_{test}", f"redis {test}, {cl} clients", "req/s"),
                                        (f"c1_{test}", f"redis {test}, 1 client", "req/s"),
                                        (f"c1p50_{test}", f"redis {test}, 1 client, p50",
                                         "µs")):
                    r = make_row(c, key, text, subj, unit)
                    r.detail = True
                    self.rows.append(r)
        self.finish(c)

    # -- nginx + wrk ---------------------------------------------------------

    WRK_LUA = r'''
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
'''

    def start_nginx(self) -> tuple[subprocess.Popen, int]:
        port = free_port()
        d = self.tmp / f"nginx-{port}"
        (d / "html").mkdir(parents=True)
        # nginx workers run as `nobody` when started by root: let them read
        os.chmod(self.tmp, 0o755)
        os.chmod(d, 0o755)
        os.chmod(d / "html", 0o755)
        page = d / "html" / "index.html"
        body = "<!doctype html><title>vaurien bench</title>\n" + "v" * 960 + "\n"
        page.write_text(body)  # ~1 KiB static file
        os.chmod(page, 0o644)
        conf = d / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 16384; }}
http {{
    access_log {d}/access.log combined buffer=256k flush=2s;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/html;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    server {{
        listen {HOST}:{port} backlog=4096;
        root {d}/html;
    }}
}}
""")
        p = self.procs.start(["nginx", "-p", str(d), "-c", str(conf), "-e", str(d / "error.log"),
                              "-g", "daemon off;"], "nginx")
        wait_listening(port, p, "nginx")
        return p, port

    def wrk(self, port: int, extra: list[str]) -> dict:
        script = self.tmp / "report.lua"
        if not script.exists():
            script.write_text(self.WRK_LUA)
        d = self.s["wrk_seconds"]
        argv = ["wrk", "-t", str(self.s["wrk_threads"]), "-c", str(self.s["wrk_conns"]),
                "-d", f"{d}s", "--timeout", "5s", "--latency", "-s", str(script), *extra,
                f"http://{HOST}:{port}/index.html"]
        out = self.procs.run(argv, timeout=d + 30, name="wrk")
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
        if not line:
            raise BenchError(f"wrk: no summary in output: {out.strip()[-200:]!r}")
        j = json.loads(line[len("BENCHJSON "):])
        j["errors"] = sum(j[k] for k in ("connect", "read", "write", "status", "timeout"))
        j["rps"] = j["requests"] / (j["duration_us"] / 1e6) if j["duration_us"] else 0.0
        if j["requests"] == 0:
            raise BenchError(f"wrk: no request completed ({j['errors']} errors)")
        return j

    def _wrk_once(self, extra: list[str]):
        def once(c, label, p, run):
            acct = CpuAccount(run)
            j = self.wrk(p, extra)
            cpu = acct.record(c, label, "rps")
            if run:
                c.add(label, "cpu_us", cpu * 1e6 / j["requests"])
            c.add(label, "rps", j["rps"])
            c.add(label, "p50", j["p50_us"])
            c.add(label, "p99", j["p99_us"])
            c.add(label, "errors", j["errors"])
            c.add(label, "requests", j["requests"])
            log(f"    {label:<16} {j['rps']:10,.0f} req/s  p50 {j['p50_us']}µs  "
                f"p99 {j['p99_us']}µs" + (f"  errors {j['errors']}" if j["errors"] else ""))
        return once

    def _error_note(self, c: Collector, row: Row) -> None:
        errs, reqs = sum(c.get(row.subject, "errors")), sum(c.get(row.subject, "requests"))
        if errs:
            row.note = (row.note + "; " if row.note else "") + \
                f"{errs} socket/status errors in {reqs} requests"
            if reqs and errs > 0.001 * reqs and row.passed:
                row.passed = False
                row.note += " (over 0.1%: counted as a failure)"

    def http(self) -> None:
        c = Collector("http")
        server, port = self.start_nginx()
        try:
            self.measure(c, port, self.subjects(["tcp", "http"]), self._wrk_once([]))
        finally:
            self.procs.stop(server)
        ours_tcp = f"{self.proxy.name} tcp"
        w = f"{self.s['wrk_conns']} connections"
        for subj in self.proxied_labels(c):
            ours = subj.startswith(self.proxy.name)
            framing = ours and subj != ours_tcp
            trps = tp99 = None
            if ours and not framing:
                trps = Target(">=", 0.85, "direct", "≥ 0.85× direct")
                tp99 = Target("<=", 1.5, "direct", "≤ 1.5× direct")
            elif framing:
                trps = Target(">=", 0.8, ours_tcp, "≥ 0.8× tcp")
            r = make_row(c, "rps", f"HTTP keep-alive, {w}", subj, "req/s", trps)
            self._error_note(c, r)
            self.rows.append(r)
            self.account_row(c, "rps", f"HTTP keep-alive, {w}", subj)
            self.rows.append(make_row(c, "p50", "HTTP keep-alive, p50 latency", subj, "µs"))
            self.rows.append(make_row(c, "p99", "HTTP keep-alive, p99 latency", subj, "µs",
                                      tp99))
            self.rows.append(make_row(c, "cpu_us", "HTTP keep-alive, proxy CPU per request",
                                      subj, "CPU µs", direct_subject=None))
        self.finish(c)

    def churn(self) -> None:
        c = Collector("churn")
        server, port = self.start_nginx()
        try:
            self.measure(c, port, self.subjects(["tcp"]),
                         self._wrk_once(["-H", "Connection: close"]))
        finally:
            self.procs.stop(server)
        for subj in self.proxied_labels(c):
            ours = subj.startswith(self.proxy.name)
            t = Target(">=", 0.65, "direct", "≥ 0.65× direct") if ours else None
            r = make_row(c, "rps", "connection churn (HTTP, new connection per request)",
                         subj, "conn/s", t)
            self._error_note(c, r)
            self.rows.append(r)
            self.account_row(c, "rps", "connection churn", subj)
            self.rows.append(make_row(c, "cpu_us", "connection churn, proxy CPU per connection",
                                      subj, "CPU µs", direct_subject=None))
        self.finish(c)

    # -- memory per idle connection ------------------------------------------

    ECHO_BACKEND = r'''
import resource, selectors, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(4096)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is srv:
            while True:
                try:
                    conn, _ = srv.accept()
                except (BlockingIOError, OSError):
                    break
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
        else:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                try:
                    s.send(data)
                except OSError:
                    pass
            else:
                sel.unregister(s)
                s.close()
'''

    def idle_target(self) -> int:
        """As many idle connections as the descriptor limit allows (at most 9000).

        The proxy holds two descriptors per connection (client + backend) and
        the harness one; keep some headroom for everything else.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        fit = (min(soft, hard) - 256) // 2
        # a stand-in command may fork a process per connection (socat): stay small
        want = self.args.idle_conns or (500 if self.args.proxy_cmd else 9000)
        return max(1, min(fit, want))

    def rss(self) -> None:
        c = Collector("rss")
        script = self.tmp / "echo_backend.py"
        script.write_text(self.ECHO_BACKEND)
        bport = free_port()
        backend = self.procs.start([sys.executable, str(script), HOST, str(bport)], "echo-backend")
        n_target = self.idle_target()
        subjects = [s for s in self.subjects(["tcp"])
                    if s[1] is not None and not isinstance(s[1], FloorProxy)]
        try:
            wait_listening(bport, backend, "echo backend")
            base_fds = fd_count(backend.pid)

            def once(c, label, p, run):
                self._rss_once(c, label, run, backend, base_fds, n_target)

            # one fresh proxy per subject; memory is measured once (no reps)
            self.measure(c, bport, subjects, once, reps=1, fresh=True)
        finally:
            self.procs.stop(backend)
        for subj, _, _ in subjects:
            ours = subj.startswith(self.proxy.name)
            n = median(c.get(subj, "n")) or 0
            self.rows.append(make_row(c, "idle_mib", "proxy RSS, idle", subj, "MiB",
                                      direct_subject=None))
            r = make_row(c, "kib_per_conn_connected",
                         "RSS per idle connection, just connected", subj, "KiB",
                         direct_subject=None)
            if n:
                r.note = f"N = {n:.0f}" + (f"; {c.extra.get(subj + ' lazy')}"
                                           if c.extra.get(subj + " lazy") else "")
            self.rows.append(r)
            r = make_row(c, "kib_per_conn", "RSS per idle connection, after one exchange",
                         subj, "KiB", Target("<=", 4, "value", "≤ 4 KiB") if ours else None,
                         direct_subject=None)
            if n:
                r.note = f"N = {n:.0f} idle connections"
                if n < 0.9 * n_target:
                    r.note += f" (of {n_target} wanted)"
            self.rows.append(r)
        self.finish(c)

    def _rss_once(self, c: Collector, label: str, run: Running, backend, base_fds: int,
                  n_target: int) -> None:
        # warm up the path with one connection, then measure the idle process
        with socket.create_connection((HOST, run.port), timeout=10) as s:
            s.sendall(b"w")
            if s.recv(1) != b"w":
                raise BenchError("echo through the proxy failed")
        idle = settle_rss(run.pid)
        socks: list[socket.socket] = []
        note = ""
        t0 = time.monotonic()
        try:
            # phase 1: open the connections, no data
            for _ in range(n_target):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(10)
                try:
                    s.connect((HOST, run.port))
                except OSError as e:
                    s.close()
                    note = f"stopped at {len(socks)} connections: {e}"
                    break
                socks.append(s)
                if time.monotonic() - t0 > 120:
                    note = f"stopped at {len(socks)} connections: 120 s time bound"
                    break
            n = len(socks)
            if n == 0:
                raise BenchError(f"no connection through the proxy ({note})")
            # wait (bounded) for the proxy to have connected them all to the backend
            end = time.monotonic() + 10
            while fd_count(backend.pid) - base_fds < n and time.monotonic() < end:
                time.sleep(0.05)
            opened = fd_count(backend.pid) - base_fds
            if opened < n:
                c.extra[label + " lazy"] = (f"{max(opened, 0)} backend connections before "
                                            "any data (the proxy connects lazily)")
            connected = settle_rss(run.pid)
            # phase 2: one exchange on every connection, then idle
            for i in range(0, n, 256):
                batch = socks[i:i + 256]
                for s in batch:
                    s.sendall(b"x")
                for s in batch:
                    if s.recv(1) != b"x":
                        raise BenchError("echo through the proxy failed")
            exchanged = settle_rss(run.pid)
            fds = fd_count(run.pid)
        finally:
            for s in socks:
                s.close()
        c.add(label, "n", n)
        c.add(label, "idle_mib", idle / 1024)
        c.add(label, "kib_per_conn_connected", (connected - idle) / n)
        c.add(label, "kib_per_conn", (exchanged - idle) / n)
        c.extra[label] = dict(n=n, rss_idle_kib=idle, rss_connected_kib=connected,
                              rss_after_exchange_kib=exchanged, proxy_fds=fds,
                              seconds_to_open=round(time.monotonic() - t0, 2), note=note)
        log(f"    {label:<16} idle {idle / 1024:.1f} MiB; {n} connections: "
            f"{(connected - idle) / n:.2f} KiB/conn connected, "
            f"{(exchanged - idle) / n:.2f} KiB/conn after one exchange"
            + (f" ({note})" if note else ""))

    # -- a trivial Python behavior vs the built-in dummy ----------------------

    def python(self) -> None:
        c = Collector("python")
        probe = subprocess.run([sys.executable, "-c",
                                "import vaurien, vaurien.util, vaurien.behaviors"],
                               cwd=str(self.tmp), capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            self.workload_status["python"] = ("skipped: python package not installed "
                                              f"({last}); `pip install .` in the repo")
            log(f"  {self.workload_status['python']}")
            return
        server, port = self.start_redis()
        n = self.s["python_n"]
        # tcp with keep-alive + stay-connected, like every other target: the engine calls the
        # hooks once per chunk in each direction (a command, a reply), and with `dummy` it may
        # take its fast path, so the ratio is the whole cost of adding a Python behavior
        proto = "tcp"

        def once(c, label, p, run):
            r = self.redis_benchmark(p, self.s["redis_clients"], n, floor=1000)
            total = sum(n / rec["rps"] for rec in r.values())  # seconds for all tests
            c.add(label, "xps", len(r) * n / total)
            log(f"    {label:<16} {len(r) * n / total:10,.0f} requests/s")

        subjects = [("direct", None, proto),
                    ("python dummy", PythonApiProxy("dummy", self.tmp), proto),
                    # the engine's per-exchange path with a built-in hook that does nothing
                    # (no Python): what is left to a Python behavior once its calls cost nothing
                    ("python delay0", PythonApiProxy("delay", self.tmp,
                                                     ("--behavior-delay-sleep", "0"), "delay0"),
                     proto),
                    ("python benchpass", PythonApiProxy("benchpass", self.tmp), proto)]
        try:
            self.measure(c, port, subjects, once)
        finally:
            self.procs.stop(server)
        self.rows.append(make_row(c, "xps", "requests/s via Python API, built-in dummy "
                                  "(redis-benchmark, 50 clients, tcp)",
                                  "python dummy", "req/s"))
        self.rows.append(make_row(c, "xps", "requests/s via Python API, built-in delay 0 s "
                                  "(hooks path, no Python)", "python delay0", "req/s"))
        self.rows.append(make_row(c, "xps", "requests/s via Python API, trivial Python behavior",
                                  "python benchpass", "req/s",
                                  Target(">=", 0.8, "python dummy", "≥ 0.8× dummy")))
        self.finish(c)

    # -- bookkeeping -----------------------------------------------------------

    def account_row(self, c: Collector, key: str, text: str, subj: str) -> None:
        """One line of "where the CPU goes": how busy the machine was directly and through
        `subj`, the proxy's user-space and kernel shares of it, and the ratio a proxy with no
        user-space cost at all would reach (only where the direct run kept the cores busy:
        otherwise the run is bound by latency, not CPU, and no ceiling is given)."""
        def med(s, m):
            return median(c.get(s, f"acct_{key}_{m}"))
        ratio_row = make_row(c, key, text, subj, "")
        d_busy, busy = med("direct", "busy"), med(subj, "busy")
        user, system = med(subj, "user"), med(subj, "sys")
        if None in (d_busy, busy, user, system, ratio_row.ratio):
            return
        ceiling = None
        if d_busy >= CPU_BOUND and user < 1:
            ceiling = ratio_row.ratio / (1 - user)
        self.accounts.append(dict(workload=text, subject=subj, direct_busy=d_busy, busy=busy,
                                  proxy_user=user, proxy_sys=system, ratio=ratio_row.ratio,
                                  ceiling=ceiling))

    def finish(self, c: Collector) -> None:
        self.extra[c.workload] = dict(samples=c.samples, errors=c.errors, extra=c.extra)
        if c.errors:
            self.workload_status[c.workload] = "errors: " + "; ".join(
                f"{k}: {v}" for k, v in c.errors.items())
        else:
            self.workload_status[c.workload] = "ok"


# --------------------------------------------------------------------------
# reporting


def fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if unit in ("Gbit/s", "MiB", "KiB", "CPU s/GB"):
        return f"{x:.2f}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}"


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    distro = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return dict(host=socket.gethostname(), nproc=os.cpu_count(),
                usable_cpus=len(os.sched_getaffinity(0)), cpu_model=cpu,
                kernel=platform.release(), os=distro, mem_gib=mem,
                python=platform.python_version(), nofile_soft=soft, nofile_hard=hard,
                loadavg_at_start=os.getloadavg())


def tool_versions() -> dict:
    cmds = {"iperf3": ["iperf3", "--version"], "redis-server": ["redis-server", "--version"],
            "redis-benchmark": ["redis-benchmark", "--version"], "nginx": ["nginx", "-v"],
            "wrk": ["wrk", "-v"]}
    out = {}
    for name, argv in cmds.items():
        if not shutil.which(argv[0]):
            continue
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (r.stdout + r.stderr).strip().splitlines()
            out[name] = text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            out[name] = "?"
    return out


def account_table(accounts: list[dict]) -> list[str]:
    """The "where the CPU goes" table (see Bench.account_row)."""
    if not accounts:
        return []
    lines = ["", "Where the CPU goes (machine busy: all cores together; proxy user / kernel: its "
             "share of that busy time; ceiling: the ratio with the proxy's user-space time "
             f"taken away, given where the direct run kept ≥ {CPU_BOUND:.0%} of the cores busy):",
             "", "| Workload | Through | Machine busy, direct | Machine busy, proxied "
             "| Proxy user | Proxy kernel | Ratio | Ceiling |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for a in accounts:
        ceiling = f"{a['ceiling']:.2f}" if a["ceiling"] is not None else "—"
        lines.append(f"| {a['workload']} | {a['subject']} | {a['direct_busy']:.0%} | "
                     f"{a['busy']:.0%} | {a['proxy_user']:.0%} | {a['proxy_sys']:.0%} | "
                     f"{a['ratio']:.2f} | {ceiling} |")
    return lines


def markdown(meta: dict, rows: list[Row], status: dict, accounts: list[dict]) -> str:
    m = meta["machine"]
    s = meta["settings"]
    lines = [
        f"### Benchmark results — {meta['date']}",
        "",
        f"- **Machine**: `{m['host']}`, {m['nproc']} × {m['cpu_model']}, "
        f"{m['mem_gib']} GiB, Linux {m['kernel']} ({m['os']}); client, proxy and "
        "backend share the cores",
        f"- **Proxy**: {meta['proxy']['description']}",
        f"- **Command**: `{meta['command']}`",
        f"- **Runs**: median of {s['reps']} repetition(s), direct and proxied interleaved; "
        f"iperf3 `-t {s['iperf_seconds']}`; redis-benchmark `-n {s['redis_n50']}` "
        f"(50 clients) / `-n {s['redis_n1']}` (1 client); wrk `-t {s['wrk_threads']} "
        f"-c {s['wrk_conns']} -d {s['wrk_seconds']}s` against nginx (1 worker, 1 KiB file)",
        "",
        "| Workload | Through | Direct | Through proxy | Unit | Ratio | Target | Result |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]
    for r in rows:
        if r.detail:
            continue
        target = "—"
        result = "—"
        if r.target:
            target = r.target.text
            if r.target.basis not in ("direct", "value") and r.compared is not None:
                target += f" ({r.compared:.2f})"
            result = {True: "pass", False: "**FAIL**", None: "n/a"}[r.passed]
        note = f" ({r.note})" if r.note else ""
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
        lines.append(f"| {r.metric}{note} | {r.subject} | {fmt(r.direct, r.unit)} | "
                     f"{fmt(r.value, r.unit)} | {r.unit} | {ratio} | {target} | {result} |")
    lines += account_table(accounts)
    busy = {k: v for k, v in meta.get("cpu_busy_before_workload", {}).items() if v > BUSY_WARN}
    if busy:
        lines.append("")
        lines.append("- **Warning**: the machine was busy with other work before "
                     + ", ".join(f"`{k}` ({v:.0%} CPU)" for k, v in busy.items())
                     + ": those ratios are noisy; run again on an idle machine.")
    skipped = {k: v for k, v in status.items() if v != "ok"}
    if skipped:
        lines.append("")
        for k, v in skipped.items():
            lines.append(f"- `{k}`: {v}")
    npass = sum(1 for r in rows if r.passed is True)
    nfail = sum(1 for r in rows if r.passed is False)
    lines += ["", f"Targets: {npass} passed, {nfail} failed."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="bench/run.py",
        description="vaurien benchmarks: each workload directly and through vaurien, "
                    "medians and ratios against the targets of issue 6.")
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition and shorter runs (1-2 minutes)")
    ap.add_argument("--only", action="append", metavar="WORKLOAD",
                    help=f"run only these workloads (comma list or repeated): "
                         f"{', '.join(WORKLOADS)}")
    ap.add_argument("--vaurien", metavar="PATH", default=str(DEFAULT_VAURIEN),
                    help="the vaurien binary (default: target/release/vaurien)")
    ap.add_argument("--peers", action="store_true",
                    help="also measure peer proxies that are installed (haproxy, nginx stream, "
                         "toxiproxy-server)")
    ap.add_argument("--no-floor", action="store_true",
                    help="do not measure the reference floor proxy (bench/floor.c, "
                         "a minimal C epoll forwarder built with cc)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--idle-conns", type=int, metavar="N",
                    help="idle connections for the memory workload "
                         "(default: as many as the fd limit allows, at most 9000)")
    ap.add_argument("--vaurien-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for vaurien (repeat), e.g. --vaurien-arg=--bufsize=65536")
    ap.add_argument("--perf", action="store_true",
                    help="after the measured runs, one extra profiled run per vaurien subject "
                         "(perf record -g); reports go to bench/results/perf-*.txt")
    ap.add_argument("--check", action="store_true",
                    help="exit with status 1 when a target is missed")
    ap.add_argument("--output", metavar="DIR", default=str(RESULTS_DIR),
                    help=argparse.SUPPRESS)
    # a stand-in proxy to test the harness itself, e.g.
    # 'socat TCP-LISTEN:{listen_port},bind=127.0.0.1,fork,reuseaddr TCP:127.0.0.1:{backend_port}'
    ap.add_argument("--proxy-cmd", metavar="TEMPLATE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    only = []
    for item in args.only or []:
        only += [w.strip() for w in item.split(",") if w.strip()]
    bad = [w for w in only if w not in WORKLOADS]
    if bad:
        ap.error(f"unknown workload {', '.join(bad)}; choose from {', '.join(WORKLOADS)}")
    args.workloads = [w for w in WORKLOADS if not only or w in only]
    return args


def check_vaurien(path: str) -> str:
    """Return `vaurien --version`, or raise BenchError saying what to do."""
    hint = ("build it with `cargo build --release` (bench/setup.sh does) "
            "or pass --vaurien PATH")
    if not os.path.isfile(path):
        raise BenchError(f"vaurien binary not found at {path}: {hint}")
    if not os.access(path, os.X_OK):
        raise BenchError(f"{path} is not executable: {hint}")
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"`{path} --version` failed: {e}") from None
    if r.returncode != 0:
        raise BenchError(f"`{path} --version` exited {r.returncode}: "
                         f"{(r.stderr or r.stdout).strip()[:200]}")
    return (r.stdout or r.stderr).strip()


def is_vaurien_binary(path: str) -> bool:
    """True for a binary built from this repository (e.g. vaurien's toxiproxy-server)."""
    real = os.path.realpath(path)
    if real.startswith(str(REPO) + os.sep):
        return True
    try:
        with open(real, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    return False
                if b"vaurien" in chunk:
                    return True
    except OSError:
        return False


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = settings_for(args.quick)
    if args.reps:
        settings["reps"] = max(1, args.reps)
    raise_nofile()

    # -- what is missing? ----------------------------------------------------
    status: dict[str, str] = {}
    missing_tools: dict[str, list[str]] = {}
    for w in args.workloads:
        miss = [t for t in WORKLOAD_TOOLS[w] if not shutil.which(t)]
        if miss:
            for t in miss:
                missing_tools.setdefault(t, []).append(w)
            pkgs = " ".join(sorted({TOOL_PACKAGES[t] for t in miss}))
            status[w] = f"skipped: missing {', '.join(miss)} (apt-get install {pkgs})"
    if missing_tools:
        log("Missing tools (install them with `bash bench/setup.sh`):")
        for t, ws in missing_tools.items():
            log(f"  - {t:<16} needed by {', '.join(ws):<20} Debian package: {TOOL_PACKAGES[t]}")
    runnable = [w for w in args.workloads if w not in status]

    needs_binary = any(w != "python" for w in runnable)
    if args.proxy_cmd:
        proxy: ProxyKind = CommandProxy(args.proxy_cmd)
        proxy_desc = f"stand-in command `{args.proxy_cmd}`"
        version = None
    else:
        proxy = VaurienProxy(os.path.abspath(args.vaurien), args.vaurien_arg)
        version = None
        if needs_binary:
            try:
                version = check_vaurien(proxy.path)
            except BenchError as e:
                log(f"error: {e}")
                return 2
        shown = (os.path.relpath(proxy.path, REPO) if proxy.path.startswith(str(REPO) + os.sep)
                 else proxy.path)
        proxy_desc = f"`{version or 'vaurien'}` ({shown})" + \
            (f" with {' '.join(args.vaurien_arg)}" if args.vaurien_arg else "") + \
            ", tcp with keep-alive + stay-connected, behavior `100:dummy`"
    if not runnable:
        log("error: no workload can run (see the missing tools above)")
        return 2

    peers: list[ProxyKind] = []
    if args.peers:
        tp = shutil.which("toxiproxy-server")
        if tp and is_vaurien_binary(tp):
            log(f"peers: {tp} is vaurien's own toxiproxy-server, not Shopify's Toxiproxy: "
                "skipped (put the real toxiproxy-server first on PATH)")
        elif tp:
            peers.append(ToxiproxyProxy(tp))
        else:
            log("peers: toxiproxy-server not found on PATH: skipped (it is not packaged in "
                "Debian, PyPI, npm or crates.io; put a toxiproxy-server binary on PATH)")
        ha = shutil.which("haproxy")
        if ha:
            peers.append(HaproxyProxy(ha))
        else:
            log("peers: haproxy not found: skipped (apt-get install haproxy)")
        if shutil.which("nginx") and NginxStreamProxy.MODULE.exists():
            peers.append(NginxStreamProxy())
        else:
            log("peers: nginx stream module not found: skipped "
                "(apt-get install nginx libnginx-mod-stream)")

    # -- run --------------------------------------------------------------------
    started = time.monotonic()
    date = _dt.datetime.now().astimezone()
    tmp = Path(tempfile.mkdtemp(prefix="vaurien-bench-"))
    (tmp / "logs").mkdir()
    procs = Procs(tmp / "logs")
    bench = Bench(args, settings, procs, tmp)
    bench.proxy = proxy
    if not args.no_floor and not args.proxy_cmd and any(
            w in runnable for w in ("bulk", "redis", "http", "churn")):
        try:
            peers.insert(0, FloorProxy(FloorProxy.build(tmp)))
        except (BenchError, OSError, subprocess.SubprocessError) as e:
            log(f"floor: skipped ({e})")
    bench.peers = peers
    bench.workload_status = status
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops the run even where SIGINT was inherited as ignored
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupted = False
    try:
        for w in runnable:
            busy = cpu_busy()
            bench.busy[w] = round(busy, 3)
            log(f"== {w}" + (f"   (warning: the machine is {busy:.0%} busy before it starts: "
                             "other processes compete for the CPU, ratios are noisy)"
                             if busy > BUSY_WARN else ""))
            t0 = time.monotonic()
            try:
                getattr(bench, w)()
            except BenchError as e:
                status[w] = f"error: {e}"
                log(f"  ! {w}: {e}")
            log(f"   ({time.monotonic() - t0:.0f}s)")
    except KeyboardInterrupt:
        interrupted = True
        log("\ninterrupted: stopping every process started")
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if not interrupted:
            shutil.rmtree(tmp, ignore_errors=True)
    if interrupted:
        shutil.rmtree(tmp, ignore_errors=True)
        return 130

    # -- report -------------------------------------------------------------------
    machine = machine_info()
    meta = dict(
        date=date.strftime("%Y-%m-%d %H:%M %Z"),
        command="python3 bench/run.py" + "".join(
            f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])),
        machine=machine,
        proxy=dict(kind=proxy.name, description=proxy_desc, version=version,
                   path=getattr(proxy, "path", None), template=args.proxy_cmd),
        settings=settings,
        tools=tool_versions(),
        cpu_busy_before_workload=bench.busy,
        duration_s=round(time.monotonic() - started, 1),
    )
    doc = dict(meta, workloads=status,
               rows=[r.as_json() for r in bench.rows], details=bench.extra,
               cpu_accounts=bench.accounts,
               summary=dict(passed=sum(1 for r in bench.rows if r.passed is True),
                            failed=sum(1 for r in bench.rows if r.passed is False)))
    host = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in machine["host"])
    suffix = ("-quick" if args.quick else "") + ("-standin" if args.proxy_cmd else "")
    json_path = out_dir / f"{date.strftime('%Y-%m-%d')}-{host}{suffix}.json"
    json_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    md = markdown(meta, bench.rows, status, bench.accounts)
    md_path = out_dir / ("latest-standin.md" if args.proxy_cmd else "latest.md")
    md_path.write_text(md)
    print(md)
    log(f"results: {json_path}\ntable:   {md_path}\n"
        f"({meta['duration_s']:.0f}s in all)")
    if args.check and doc["summary"]["failed"]:
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
