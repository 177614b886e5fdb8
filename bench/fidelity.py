#!/usr/bin/env python3
"""Toxic fidelity: does each toxic do exactly what it says?

Starts vaurien's `toxiproxy-server` (release build) on loopback with a
loopback echo/stream backend (a child Python process), drives toxics through
the Toxiproxy HTTP API, and reports what was asked against what a client
measured, every toxic `downstream`:

    python3 bench/fidelity.py [--quick] [--conns 1,50[,1000]] [--only latency,bandwidth,...]

- latency 0/1/5/20 ms, with and without jitter: p50/p99 added to a round trip
  against a direct connection measured in the same run (and against the
  proxy with no toxic); jitter's distribution against uniform
  [latency-jitter, latency+jitter] (Kolmogorov-Smirnov distance);
- bandwidth 10 KB/s ... 1 GB/s with several backend write sizes: achieved / asked;
- slicer, slow_close, timeout, limit_data, delay (vaurien behavior, seconds),
  packet_loss (achieved loss rate), toxicity below 1 (achieved share of
  connections);
- the proxy's CPU while a toxic is on (/proc/PID/stat), and what a round trip
  costs on a connection that was open while a toxic was on, once the toxic is
  removed.

Everything listens on 127.0.0.1 on ports picked at run time; every load loop is
bounded in count and time; every process started is stopped at the end. Results
go to bench/results/fidelity-<date>[-quick].md and .json.

Python 3.11, standard library only; Linux (/proc).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import random
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_SERVER = REPO / "target" / "release" / "toxiproxy-server"
HOST = "127.0.0.1"  # loopback only, everywhere
SECTIONS = ["latency", "removed", "bandwidth", "slicer", "slow_close", "timeout",
            "limit_data", "delay", "packet_loss", "toxicity"]
STEP_LIMIT = 60.0  # no single measurement runs longer than this (seconds)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    try:
        print(msg, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError):
        pass


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, what: str, limit: float = 15.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"{what} not listening on {port} after {limit:.0f}s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_share(seconds: float = 0.5) -> float:
    def snap():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return vals[3] + vals[4], sum(vals)
    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def slack(conns: int) -> int:
    """How much the targets widen: at 1,000 connections they hold within twice their bounds."""
    return 2 if conns >= 1000 else 1


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of xs."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


# --------------------------------------------------------------------------
# the backend: a child process (so that its work does not share the client's GIL)

PATTERN = bytes(range(256)) * 8192  # 2 MiB; byte i of a stream is i % 256


def start_backend(port: int, out=subprocess.DEVNULL) -> subprocess.Popen:
    """`serve_backend(port)` in a child process of its own session (output to `out`)."""
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-backend",
                             str(port)], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=raise_nofile)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to `proc`'s whole session, then reaps it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def serve_backend(port: int) -> None:
    """Thread per connection. The first line says what to do:
    E          echo everything after the line
    S T C K    send T bytes (byte i = i % 256) in writes of C bytes; K=1: close after
    M N Z G    send N messages of Z bytes (4-byte sequence number first), G µs apart; close
    H          hold: read and drop until the client closes
    T          stamp: each 64-byte message comes back with its first 8 bytes replaced by the
               time it was read (time.monotonic_ns(), big-endian): splits a round trip in two
    """
    threading.stack_size(256 * 1024)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(4096)

    def handle(c: socket.socket) -> None:
        try:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while b"\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            line, rest = buf.split(b"\n", 1)
            cmd = line.split()
            if cmd[0] == b"E":
                if rest:
                    c.sendall(rest)
                while True:
                    d = c.recv(65536)
                    if not d:
                        return
                    c.sendall(d)
            elif cmd[0] == b"S":
                total, chunk, close = int(cmd[1]), min(int(cmd[2]), 1 << 20), cmd[3] == b"1"
                view = memoryview(PATTERN)
                sent = 0
                while sent < total:
                    n = min(chunk, total - sent)
                    off = sent % 256
                    c.sendall(view[off:off + n])  # n <= 1 MiB
                    sent += n
                if close:
                    c.shutdown(socket.SHUT_WR)
                while c.recv(65536):
                    pass
            elif cmd[0] == b"M":
                n, size, gap = int(cmd[1]), int(cmd[2]), int(cmd[3]) / 1e6
                for i in range(n):
                    c.sendall(i.to_bytes(4, "big") + bytes(size - 4))
                    time.sleep(gap)
                c.shutdown(socket.SHUT_WR)
                while c.recv(65536):
                    pass
            elif cmd[0] == b"H":
                while c.recv(65536):
                    pass
            elif cmd[0] == b"T":
                while True:
                    while len(rest) < 64:
                        d = c.recv(65536)
                        if not d:
                            return
                        rest += d
                    t = time.monotonic_ns()
                    c.sendall(t.to_bytes(8, "big") + rest[8:64])
                    rest = rest[64:]
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


# --------------------------------------------------------------------------
# the proxy under test, through the Toxiproxy API


def parse_version(text: str) -> str:
    """The `/version` answer's version: JSON from vaurien and Toxiproxy 2.5+
    (`{"version": "3.0.0"}`), the bare text from earlier Toxiproxy (`2.1.4`)."""
    text = text.strip()
    try:
        return str(json.loads(text)["version"])
    except (ValueError, KeyError, TypeError):
        return text


class Toxiproxy:
    def __init__(self, path: str, logdir: Path):
        self.path = path
        self.api_port = free_port()
        self.log = open(logdir / "toxiproxy-server.log", "wb")
        self.proc = subprocess.Popen([path, "-host", HOST, "-port", str(self.api_port)],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=raise_nofile)
        wait_listening(self.api_port, self.proc, "toxiproxy-server")
        self.version = parse_version(self.call("GET", "/version", raw=True))

    def call(self, method: str, path: str, body=None, raw: bool = False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{HOST}:{self.api_port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise BenchError(f"{method} {path}: {e.code} {e.read().decode()[:200]}") from None
        if raw:
            return text
        return json.loads(text) if text.strip() else None

    def proxy(self, name: str, upstream_port: int) -> int:
        port = free_port()
        self.call("POST", "/proxies", {"name": name, "listen": f"{HOST}:{port}",
                                       "upstream": f"{HOST}:{upstream_port}"})
        return port

    def add(self, proxy: str, name: str, kind: str, attrs: dict, toxicity: float = 1.0):
        self.call("POST", f"/proxies/{proxy}/toxics",
                  {"name": name, "type": kind, "stream": "downstream", "toxicity": toxicity,
                   "attributes": attrs})

    def remove(self, proxy: str, name: str):
        self.call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def clear(self, proxy: str):
        for t in self.call("GET", f"/proxies/{proxy}/toxics") or []:
            self.remove(proxy, t["name"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


class CpuMeter:
    """The proxy's CPU (cores busy) over a measurement."""

    def __init__(self, pid: int | None):
        self.pid = pid
        self.t0 = time.monotonic()
        self.c0 = cpu_seconds(pid) if pid else 0.0

    def cores(self) -> float:
        if not self.pid:
            return 0.0
        wall = time.monotonic() - self.t0
        return (cpu_seconds(self.pid) - self.c0) / wall if wall > 0 else 0.0


# --------------------------------------------------------------------------
# client loops (every one bounded in count and in time)


def connect(port: int, header: bytes) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if header:
        s.sendall(header)
    return s


def open_echo(port: int, n: int, header: bytes = b"E\n") -> list[socket.socket]:
    """`n` connections whose backend answers each message (`E`: echoes; `T`: stamps)."""
    socks = [connect(port, header) for _ in range(n)]
    rtts(socks, 2, 10.0)  # warm: both ends and the proxy's connection set up
    return socks


# `--spin-client`: the one-connection client polls its socket instead of sleeping in recv().
SPIN_CLIENT = False


def spin_recv_into(s: socket.socket, buf: bytearray, end: float) -> int:
    """recv_into on a non-blocking socket, polling: the client's own wake-up after an idle
    spell (a halted vCPU) is then not part of the round trip."""
    while True:
        try:
            return s.recv_into(buf)
        except BlockingIOError:
            if time.monotonic() > end:
                raise BenchError("no answer in time")


def recv_answer(s: socket.socket, buf: bytearray, size: int, end: float, spin: bool) -> None:
    """Reads a `size`-byte answer into `buf` (at least `size` long): polling when `spin`."""
    view = memoryview(buf)
    got = 0
    while got < size:
        n = spin_recv_into(s, view[got:], end) if spin else s.recv_into(view[got:])
        if n == 0:
            raise BenchError("connection closed during a round trip")
        got += n


def rtts(socks: list[socket.socket], per_conn: int, limit: float, size: int = 64,
         period: float | None = None) -> list[float]:
    """Round trips of `size` bytes, `per_conn` on each connection (stops after `limit`
    seconds): back to back on one connection, paced every `period` seconds on several.
    Returns every round trip time, seconds."""
    msg = b"x" * size
    out: list[float] = []
    if len(socks) == 1:
        s = socks[0]
        s.settimeout(0.0 if SPIN_CLIENT else limit)  # 0: non-blocking, polled
        end = time.monotonic() + limit
        buf = bytearray(65536)
        for _ in range(per_conn):
            if time.monotonic() > end:
                break
            t = time.perf_counter()
            s.sendall(msg)
            recv_answer(s, buf, size, end, SPIN_CLIENT)
            out.append(time.perf_counter() - t)
        return out
    return paced_rtts(socks, per_conn, limit, msg, period or 0.01)


def pace_period(conns: int, max_ms: float) -> float:
    """Seconds between one connection's requests when `conns` connections are paced: one
    request per connection per period, at most 2500 a second in all, and at least the
    toxic's delay (`max_ms`) + 4 ms, at least 20 ms."""
    return max(0.02, max_ms / 1000 + 0.004, conns / 2500)


def paced_rtts(socks, per_conn: int, limit: float, msg: bytes, period: float,
               answers: list | None = None) -> list[float]:
    """Several connections: each sends one request every `period` seconds (staggered; a slot
    whose answer has not come yet is skipped), so that the offered load is the same direct and
    through the proxy and the client loop is never the bottleneck (closed loops on 50
    connections measure the client's own queueing, not the proxy). With `answers`, each
    round trip also appends (sent, received, the answer's bytes) to it; the times are
    `time.perf_counter()`, CLOCK_MONOTONIC on Linux, the clock of `time.monotonic_ns()`."""
    import heapq
    size = len(msg)
    n = len(socks)
    out: list[float] = []
    # select(2) takes its timeout in microseconds; epoll_wait in whole milliseconds, which
    # Python rounds up: a client that sleeps until the next send in epoll wakes up to 1 ms
    # late, and with answers held 1 ms that added 0.3-0.6 ms to the round trips through
    # either proxy (vaurien and Toxiproxy alike). epoll only where select cannot (fd >= 1024).
    small = max(s.fileno() for s in socks) < 1000
    sel = selectors.SelectSelector() if small else selectors.DefaultSelector()
    index = {}
    start = time.perf_counter() + 0.002
    due = [(start + i * period / n, i) for i in range(n)]
    heapq.heapify(due)
    sent_at = [0.0] * n
    got = [0] * n
    done = [0] * n
    kept = [b""] * n  # the answers' bytes, when they are asked for
    for i, s in enumerate(socks):
        s.setblocking(False)
        index[s.fileno()] = i
        sel.register(s, selectors.EVENT_READ)
    end = time.monotonic() + limit
    finished = 0
    try:
        while finished < n and time.monotonic() < end:
            now = time.perf_counter()
            while due and due[0][0] <= now:
                t, i = heapq.heappop(due)
                sent_at[i] = time.perf_counter()
                socks[i].send(msg)
            timeout = min(0.05, max(0.0, due[0][0] - time.perf_counter())) if due else 0.05
            for key, _ in sel.select(timeout=timeout):
                i = index[key.fd]
                try:
                    d = socks[i].recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    raise BenchError("connection closed during a round trip")
                got[i] += len(d)
                if answers is not None:
                    kept[i] += d
                if got[i] >= size:
                    now = time.perf_counter()
                    out.append(now - sent_at[i])
                    got[i] -= size
                    if answers is not None:
                        answers.append((sent_at[i], now, kept[i][:size]))
                        kept[i] = kept[i][size:]
                    done[i] += 1
                    if done[i] >= per_conn:
                        finished += 1
                        continue
                    # the next slot of this connection that is still ahead
                    nxt = sent_at[i] + period
                    while nxt <= now:
                        nxt += period
                    heapq.heappush(due, (nxt, i))
    finally:
        sel.close()
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
    return out


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def stream_read(port: int, conns: int, total: int, chunk: int, limit: float):
    """`conns` connections each receive `total` bytes from the backend; returns (per-connection
    seconds from request to EOF, all bytes exact)."""
    socks = [connect(port, b"") for _ in range(conns)]
    sel = selectors.DefaultSelector()
    st = {}
    t0 = time.perf_counter()
    for s in socks:
        s.sendall(f"S {total} {chunk} 1\n".encode())
        s.setblocking(False)
        st[s.fileno()] = [s, 0, None, True, None, 0]
        # sock, received, finished at, exact, first byte at, bytes of the first read
        sel.register(s, selectors.EVENT_READ)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    live = conns
    end = time.monotonic() + limit
    try:
        while live and time.monotonic() < end:
            for key, _ in sel.select(timeout=0.5):
                e = st[key.fd]
                try:
                    n = e[0].recv_into(buf)
                except BlockingIOError:
                    continue
                except OSError:
                    n = 0
                if n == 0:
                    e[2] = time.perf_counter()
                    sel.unregister(e[0])
                    live -= 1
                    continue
                if e[4] is None:
                    e[4], e[5] = time.perf_counter(), n
                off = e[1] % 256
                k = min(n, 512)  # a sample of every read: the tests check every byte
                if e[3] and view[:k] != PATTERN[off:off + k]:
                    e[3] = False
                e[1] += n
    finally:
        sel.close()
        close_all(socks)
    # From the first byte to the end (connection set-up is not the toxic's), the first
    # read's bytes left out; a connection that did not finish in time counts with what it
    # received by then.
    stop = time.perf_counter()
    rates = [((e[1] - e[5]) / ((e[2] or stop) - e[4])) if e[4] and e[1] > e[5]
             else (e[1] / ((e[2] or stop) - t0)) for e in st.values()]
    return rates, all(e[3] and e[1] == total for e in st.values())


# --------------------------------------------------------------------------
# the measurements


class Fidelity:
    def __init__(self, args, tp: Toxiproxy, backend_port: int):
        self.args = args
        self.tp = tp
        self.backend = backend_port
        self.rows: list[dict] = []
        self.n = 0

    def fresh_proxy(self) -> tuple[str, int]:
        self.n += 1
        name = f"fid{self.n}"
        return name, self.tp.proxy(name, self.backend)

    def row(self, **kw):
        self.rows.append(kw)
        log("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in kw.items()))

    # -- latency ----------------------------------------------------------------
    def rtt_plan(self, conns: int, max_ms: float) -> tuple[int, float, float | None]:
        """(round trips per connection, time bound, period) for round trips that each take
        up to `max_ms` of toxic delay."""
        budget = 1.2 if self.args.quick else 3.0
        if conns == 1:
            n = int(budget / (max_ms / 1000 + 0.0003))
            return max(60, min(2000, n)), budget * 3 + 5, None
        period = pace_period(conns, max_ms)
        n = int(budget / period)
        return max(10, min(400, n)), n * period * 2 + 10, period

    def measure_rtts(self, port: int, conns: int, max_ms: float, pid=None):
        per, limit, period = self.rtt_plan(conns, max_ms)
        socks = open_echo(port, conns)
        try:
            cpu = CpuMeter(pid)
            xs = rtts(socks, per, limit, period=period)
            return xs, cpu.cores()
        finally:
            close_all(socks)

    def reps(self) -> int:
        return self.args.reps or (1 if self.args.quick else 3)

    def latency(self, conns: int):
        name, port = self.fresh_proxy()
        cases = [(0, 0), (1, 0), (5, 0), (20, 0), (5, 2), (20, 5)]
        for lat, jit in cases:
            runs, pooled = [], []
            for _ in range(self.reps()):
                direct, _ = self.measure_rtts(self.backend, conns, lat + jit)
                bare, bare_cpu = self.measure_rtts(port, conns, lat + jit, self.tp.pid)
                self.tp.add(name, "lat", "latency", {"latency": lat, "jitter": jit})
                try:
                    tox, cpu = self.measure_rtts(port, conns, lat + jit, self.tp.pid)
                finally:
                    self.tp.remove(name, "lat")
                d50, b50 = pct(direct, 50), pct(bare, 50)
                r = dict(samples=len(tox), direct_p50_ms=d50 * 1000,
                         bare_added_p50_ms=(b50 - d50) * 1000,
                         added_p50_ms=(pct(tox, 50) - d50) * 1000,
                         vs_bare_p50_ms=(pct(tox, 50) - b50) * 1000,
                         vs_bare_p99_ms=(pct(tox, 99) - pct(bare, 99)) * 1000,
                         cpu_cores=cpu, bare_cpu_cores=bare_cpu)
                if jit:
                    # Each round trip's delay: its time less a typical one without the toxic.
                    pooled += [(x - b50) * 1000 for x in tox]
                runs.append(r)
            row = dict(section="latency", conns=conns, latency_ms=lat, jitter_ms=jit,
                       reps=len(runs), **medians(runs))
            k = slack(conns)
            if jit:
                # The distribution test runs on the round trips of every repetition pooled,
                # with bounds that widen for a small sample (see `jitter_bounds`).
                lo, hi = max(0.0, lat - jit), lat + jit
                expect_sd = (hi - lo) / math.sqrt(12)
                mean_bound, ks_bound = jitter_bounds(len(pooled), expect_sd, k)
                row.update(jitter_n=len(pooled), jitter_mean_ms=statistics.mean(pooled),
                           jitter_sd_ms=statistics.pstdev(pooled), expect_sd_ms=expect_sd,
                           ks=ks_uniform(pooled, lo, hi), mean_bound_ms=mean_bound,
                           ks_bound=ks_bound)
                row["ok"] = (abs(row["jitter_mean_ms"] - lat) <= mean_bound
                             and row["ks"] <= ks_bound)
            elif lat == 0:
                row["ok"] = row["vs_bare_p50_ms"] <= 0.05 * k
            else:
                row["ok"] = (abs(row["vs_bare_p50_ms"] - lat) <= 0.2 * k
                             and row["vs_bare_p99_ms"] <= lat + 1 * k)
            # The proxy's CPU per connection under the toxic (milli-cores).
            row["cpu_per_conn_mcores"] = 1000 * row["cpu_cores"] / conns
            self.row(**row)
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- a toxic just removed -----------------------------------------------------
    def removed(self, conns: int):
        name, port = self.fresh_proxy()
        per, limit, period = self.rtt_plan(conns, 0)
        for kind, attrs in (("latency", {"latency": 5}), ("bandwidth", {"rate": 20000}),
                            ("latency", {"latency": 0})):
            runs = []
            for _ in range(self.reps()):
                socks = open_echo(port, conns)
                try:
                    before = rtts(socks, per, limit, period=period)
                    self.tp.add(name, "t", kind, attrs)
                    rtts(socks, 20, 10.0, period=period and period + 0.005)
                    self.tp.remove(name, "t")
                    cpu = CpuMeter(self.tp.pid)
                    after = rtts(socks, per, limit, period=period)
                    cores = cpu.cores()
                finally:
                    close_all(socks)
                fresh = self.measure_rtts(port, conns, 0)[0]
                direct = self.measure_rtts(self.backend, conns, 0)[0]
                runs.append(dict(direct_p50_ms=pct(direct, 50) * 1000,
                                 before_p50_ms=pct(before, 50) * 1000,
                                 after_p50_ms=pct(after, 50) * 1000,
                                 fresh_p50_ms=pct(fresh, 50) * 1000,
                                 cost_ms=(pct(after, 50) - pct(before, 50)) * 1000,
                                 after_cpu_cores=cores))
            row = dict(section="removed", conns=conns, toxic=f"{kind} {json.dumps(attrs)}",
                       reps=len(runs), **medians(runs))
            row["ok"] = row["cost_ms"] <= 0.05 * slack(conns)
            self.row(**row)
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- bandwidth ----------------------------------------------------------------
    def bandwidth(self, conns: int):
        name, port = self.fresh_proxy()
        secs = 1.0 if self.args.quick else 2.0
        rates = [10, 100, 1000, 20000, 100000, 1000000]  # KB/s: 10 KB/s .. 1 GB/s
        # What the proxy can carry at all on the path a toxic puts a connection on (a copy
        # per chunk, no splice): a bandwidth toxic that never waits (1 TB/s).
        total = max(4_000_000, 400_000_000 // conns)
        self.tp.add(name, "bw", "bandwidth", {"rate": 10 ** 9})
        try:
            caps, _ = stream_read(port, conns, total, 65536, min(STEP_LIMIT, 30))
        finally:
            self.tp.remove(name, "bw")
        capacity = statistics.median(caps)
        self.row(section="bandwidth_capacity", conns=conns,
                 per_connection_mb_s=capacity / 1e6, all_mb_s=capacity * conns / 1e6)
        for rate in rates:
            for chunk in (1000, 65536):
                if chunk == 1000 and rate > 20000:
                    continue  # the backend (Python) cannot write 1000-byte pieces that fast
                total = max(20_000, int(rate * 1000 * secs))
                if conns * total > 2_000_000_000:
                    continue
                limit = min(STEP_LIMIT, secs * 4 + 10)
                direct, _ = stream_read(self.backend, conns, total, chunk, limit)
                self.tp.add(name, "bw", "bandwidth", {"rate": rate})
                try:
                    cpu = CpuMeter(self.tp.pid)
                    got, exact = stream_read(port, conns, total, chunk, limit)
                    cores = cpu.cores()
                finally:
                    self.tp.remove(name, "bw")
                asked = rate * 1000.0
                ratio = statistics.median(got) / asked if got else 0.0
                direct_ratio = statistics.median(direct) / asked if direct else 0.0
                # The machine itself (direct) or the proxy's copy path cannot go much faster.
                bound = direct_ratio < 1.5 or capacity < 1.2 * asked
                self.row(section="bandwidth", conns=conns, rate_kbs=rate, write_size=chunk,
                         bytes=total, achieved_ratio=ratio,
                         min_ratio=(min(got) / asked) if got else 0.0,
                         max_ratio=(max(got) / asked) if got else 0.0,
                         direct_ratio=direct_ratio,
                         exact=exact, cpu_cores=cores, machine_bound=bound,
                         ok=exact and (bound or abs(ratio - 1) <= 0.02 * slack(conns)))
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- slicer ---------------------------------------------------------------------
    def slicer(self, conns: int):
        if conns != 1:
            return
        name, port = self.fresh_proxy()
        size = 4000
        for avg, var, delay in ((100, 0, 500), (100, 50, 2000), (1000, 0, 10000)):
            self.tp.add(name, "sl", "slicer",
                        {"average_size": avg, "size_variation": var, "delay": delay})
            try:
                s = connect(port, f"S {size} {size} 1\n".encode())
                s.settimeout(10)
                pieces, got, first, last = 0, bytearray(), None, None
                end = time.monotonic() + 20
                while time.monotonic() < end:
                    d = s.recv(65536)
                    if not d:
                        break
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    pieces += 1
                    got += d
                s.close()
            finally:
                self.tp.remove(name, "sl")
            slices = n_slices(size, avg) if var == 0 else None
            span = ((last or 0) - (first or 0)) * 1000
            expect = (slices - 1) * delay / 1000 if slices else None
            exact = bytes(got) == PATTERN[:size]
            self.row(section="slicer", conns=conns, average_size=avg, size_variation=var,
                     delay_us=delay, reads=pieces, expect_slices=slices or "~",
                     span_ms=span, expect_span_ms=expect if expect is not None else "~",
                     exact=exact,
                     ok=exact and (expect is None or abs(span - expect) <= max(1.0, 0.1 * expect)))
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- slow_close ------------------------------------------------------------------
    def slow_close(self, conns: int):
        name, port = self.fresh_proxy()
        for delay in (0, 20, 100):
            if delay:
                self.tp.add(name, "sc", "slow_close", {"delay": delay})
            try:
                waits = run_conns(conns, lambda: last_byte_to_eof(port, 1000))
            finally:
                if delay:
                    self.tp.remove(name, "sc")
            w = [x * 1000 for x in waits if x is not None]
            self.row(section="slow_close", conns=conns, delay_ms=delay,
                     eof_after_p50_ms=pct(w, 50), eof_after_max_ms=max(w) if w else float("nan"),
                     finished=f"{len(w)}/{conns}",
                     ok=len(w) == conns and abs(pct(w, 50) - delay) <= 1.0 + 0.02 * delay)
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- timeout ------------------------------------------------------------------------
    def timeout(self, conns: int):
        name, port = self.fresh_proxy()
        for t in (50, 200):
            self.tp.add(name, "to", "timeout", {"timeout": t})
            try:
                res = run_conns(conns, lambda: open_to_close(port))
            finally:
                self.tp.remove(name, "to")
            w = [r[0] * 1000 for r in res if r]
            data = sum(r[1] for r in res if r)
            self.row(section="timeout", conns=conns, timeout_ms=t,
                     closed_after_p50_ms=pct(w, 50),
                     closed_after_max_ms=max(w) if w else float("nan"),
                     bytes_through=data, finished=f"{len(w)}/{conns}",
                     ok=len(w) == conns and data == 0 and abs(pct(w, 50) - t) <= 1.0 + 0.02 * t)
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- limit_data --------------------------------------------------------------------
    def limit_data(self, conns: int):
        name, port = self.fresh_proxy()
        for limit in (1, 10_000, 1_000_000):
            self.tp.add(name, "ld", "limit_data", {"bytes": limit})
            try:
                got = run_conns(conns, lambda: bytes_until_eof(port, 3_000_000))
            finally:
                self.tp.remove(name, "ld")
            counts = [g for g in got if g is not None]
            self.row(section="limit_data", conns=conns, bytes=limit,
                     received_min=min(counts) if counts else -1,
                     received_max=max(counts) if counts else -1,
                     ok=len(counts) == conns and all(c == limit for c in counts))
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- delay (vaurien behavior) ---------------------------------------------------------
    def delay(self, conns: int):
        name, port = self.fresh_proxy()
        for sleep in (0.002, 0.02):
            runs = []
            for _ in range(self.reps()):
                bare, _ = self.measure_rtts(port, conns, 2 * sleep * 1000)
                self.tp.add(name, "dl", "delay", {"sleep": sleep})
                try:
                    tox, cpu = self.measure_rtts(port, conns, 2 * sleep * 1000, self.tp.pid)
                finally:
                    self.tp.remove(name, "dl")
                runs.append(dict(vs_bare_p50_ms=(pct(tox, 50) - pct(bare, 50)) * 1000,
                                 vs_bare_p99_ms=(pct(tox, 99) - pct(bare, 99)) * 1000,
                                 cpu_cores=cpu))
            # A round trip is two exchanges (the request and the echo), each delayed once.
            expect = 2 * sleep * 1000
            row = dict(section="delay", conns=conns, sleep_s=sleep, expect_added_ms=expect,
                       **medians(runs))
            row["ok"] = abs(row["vs_bare_p50_ms"] - expect) <= 0.2 + 0.01 * expect
            self.row(**row)
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- packet_loss -------------------------------------------------------------------------
    def packet_loss(self, conns: int):
        if conns != 1:
            return
        name, port = self.fresh_proxy()
        n = 200 if self.args.quick else 500
        for rate in (0.1, 0.5):
            self.tp.add(name, "pl", "packet_loss", {"loss_rate": rate})
            try:
                s = connect(port, f"M {n} 64 1000\n".encode())
                s.settimeout(20)
                got = 0
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += len(d)
                s.close()
            finally:
                self.tp.remove(name, "pl")
            received = got // 64
            loss = 1 - received / n
            sd = math.sqrt(rate * (1 - rate) / n)
            self.row(section="packet_loss", conns=conns, loss_rate=rate, messages=n,
                     received=received, achieved_loss=loss, three_sigma=3 * sd,
                     ok=abs(loss - rate) <= 3 * sd)
        self.tp.call("DELETE", f"/proxies/{name}")

    # -- toxicity ------------------------------------------------------------------------------
    def toxicity(self, conns: int):
        if conns == 1:
            return
        name, port = self.fresh_proxy()
        total = 200
        for tox in (0.3, 0.7):
            # 100 ms against a 50 ms threshold: a slow set-up of many connections at once
            # is not taken for the toxic.
            self.tp.add(name, "lt", "latency", {"latency": 100}, toxicity=tox)
            hit = done = 0
            try:
                while done < total:
                    batch = min(conns, total - done)
                    socks = [connect(port, b"E\n") for _ in range(batch)]
                    try:
                        xs = rtts(socks, 1, 10.0, period=0.05)
                    finally:
                        close_all(socks)
                    hit += sum(1 for x in xs if x > 0.05)
                    done += batch
            finally:
                self.tp.remove(name, "lt")
            p = hit / total
            sd = math.sqrt(tox * (1 - tox) / total)
            self.row(section="toxicity", conns=conns, toxicity=tox, connections=total,
                     achieved=p, three_sigma=3 * sd, ok=abs(p - tox) <= 3 * sd)
        self.tp.call("DELETE", f"/proxies/{name}")


class FaultPeer:
    """fault-cli (`fault run FILE`, crates.io fault-cli 1.2.1) as a peer: one process per
    configuration, since it takes its faults from a file."""

    def __init__(self, path: str, tmp: Path, backend: int):
        self.path, self.tmp, self.backend = path, tmp, backend
        self.n = 0

    def start(self, faults: list[dict]):
        self.n += 1
        port = free_port()
        doc = {"schema_version": 1, "name": f"fidelity {self.n}",
               "proxies": [{"name": "p", "protocol": "tcp", "listen": f"{HOST}:{port}",
                            "upstream": f"{HOST}:{self.backend}"}],
               "phases": [{"name": "on", "proxies": [{"proxy": "p", "faults": faults}]}]}
        f = self.tmp / f"fault-{self.n}.json"
        f.write_text(json.dumps(doc))
        log_f = open(self.tmp / f"fault-{self.n}.log", "wb")
        proc = subprocess.Popen([self.path, "--output", "json", "--color", "never", "run",
                                 str(f)], stdin=subprocess.DEVNULL, stdout=log_f,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=raise_nofile)
        log_f.close()
        wait_listening(port, proc, "fault")
        return proc, port

    @staticmethod
    def stop(proc):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def fault_peer(f: "Fidelity", peer: FaultPeer, conns: int):
    """latency (fault's `jitter` with probability 1 and min = max: a delay per data
    operation; its `latency` delays only the first data of a stream) and bandwidth."""
    for lat in (1, 5, 20):
        runs = []
        for _ in range(f.reps()):
            proc, port = peer.start([])
            try:
                bare, bare_cpu = f.measure_rtts(port, conns, lat, proc.pid)
            finally:
                peer.stop(proc)
            proc, port = peer.start([{"type": "jitter", "flow": "to-client",
                                      "min_delay_ms": float(lat), "max_delay_ms": float(lat),
                                      "probability": 1.0}])
            try:
                tox, cpu = f.measure_rtts(port, conns, lat, proc.pid)
            finally:
                peer.stop(proc)
            runs.append(dict(vs_bare_p50_ms=(pct(tox, 50) - pct(bare, 50)) * 1000,
                             vs_bare_p99_ms=(pct(tox, 99) - pct(bare, 99)) * 1000,
                             cpu_cores=cpu, bare_cpu_cores=bare_cpu))
        f.row(section="fault_latency", conns=conns, latency_ms=lat, **medians(runs))
    secs = 1.0 if f.args.quick else 2.0
    for rate in (100, 1000, 20000, 100000):
        total = max(20_000, int(rate * 1000 * secs))
        if conns * total > 1_000_000_000:
            continue
        proc, port = peer.start([{"type": "bandwidth", "flow": "to-client",
                                  "bytes_per_second": rate * 1000}])
        try:
            cpu = CpuMeter(proc.pid)
            got, exact = stream_read(port, conns, total, 65536, min(STEP_LIMIT, secs * 4 + 10))
            cores = cpu.cores()
        finally:
            peer.stop(proc)
        f.row(section="fault_bandwidth", conns=conns, rate_kbs=rate,
              achieved_ratio=statistics.median(got) / (rate * 1000),
              min_ratio=min(got) / (rate * 1000), exact=exact, cpu_cores=cores)


def medians(runs: list[dict]) -> dict:
    """Per key, the median over the repetitions."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def n_slices(size: int, avg: int) -> int:
    """Toxiproxy's recursive halving with no variation."""
    if size <= max(avg, 1):
        return 1
    mid = size // 2
    return n_slices(mid, avg) + n_slices(size - mid, avg)


def jitter_bounds(n: int, expect_sd: float, k: float) -> tuple[float, float]:
    """Loose bounds of the jitter test for `n` round trips whose delays should be uniform
    with standard deviation `expect_sd` (ms), `k` the slack (2 at 1,000 connections):
    - the mean within 0.3 ms (times k) of the latency, plus three standard errors of the
      mean of n such delays (a sample of 120 round trips of 20 ± 5 ms has a standard error
      of 0.26 ms on its own: a fixed 0.3 ms would fail a perfect toxic one time in four);
    - the Kolmogorov-Smirnov distance at most 0.1 (times k), or the critical value at
      α = 0.001 for n (1.95 / √n) where that is larger: a perfectly uniform sample of 120
      has a distance above 0.1 one time in six."""
    n = max(1, n)
    return 0.3 * k + 3 * expect_sd / math.sqrt(n), max(0.1 * k, 1.95 / math.sqrt(n))


def ks_uniform(xs: list[float], lo: float, hi: float) -> float:
    """Kolmogorov-Smirnov distance between the sample and uniform [lo, hi]."""
    s = sorted(xs)
    n = len(s)
    d = 0.0
    for i, x in enumerate(s):
        f = min(1.0, max(0.0, (x - lo) / (hi - lo))) if hi > lo else float(x >= lo)
        d = max(d, abs(f - i / n), abs(f - (i + 1) / n))
    return d


def run_conns(n: int, fn):
    """fn() on n connections at once (threads); results in any order, None on error."""
    out = [None] * n

    def one(i):
        try:
            out[i] = fn()
        except (OSError, BenchError):
            out[i] = None
    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(STEP_LIMIT)
    return out


def last_byte_to_eof(port: int, size: int) -> float | None:
    s = connect(port, f"S {size} {size} 1\n".encode())
    s.settimeout(10)
    got, last = 0, None
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += len(d)
            last = time.perf_counter()
        return time.perf_counter() - last if got == size else None
    finally:
        s.close()


def open_to_close(port: int):
    t = time.perf_counter()
    s = connect(port, b"E\n")
    s.settimeout(10)
    got = 0
    try:
        s.sendall(b"hello")
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            got += len(d)
        return time.perf_counter() - t, got
    finally:
        s.close()


def bytes_until_eof(port: int, size: int) -> int:
    s = connect(port, f"S {size} 65536 1\n".encode())
    s.settimeout(10)
    got = 0
    try:
        while True:
            try:
                d = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not d:
                break
            got += len(d)
        return got
    finally:
        s.close()


# --------------------------------------------------------------------------
# report


def fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


TABLES = {
    "latency": ("latency ms", "jitter ms", "conns", "added p50 ms", "added p99 ms",
                "added p50 vs direct ms", "proxy without toxic adds, p50 ms",
                "jitter: mean (bound) / sd (expected sd) / KS (bound), n", "proxy CPU (cores)",
                "per connection (milli-cores)", "same, no toxic", "on target"),
    "removed": ("toxic, then removed", "conns", "direct p50 ms", "before p50 ms",
                "after removal p50 ms", "new connection p50 ms", "cost ms", "proxy CPU (cores)",
                "on target"),
    "bandwidth": ("rate KB/s", "backend write", "conns", "achieved / asked (median)",
                  "min .. max", "direct / asked", "bytes exact", "proxy CPU (cores)",
                  "on target"),
}


def markdown(meta: dict, rows: list[dict]) -> str:
    out = [f"# Toxic fidelity, {meta['date']}", "",
           f"Subject: {meta['server']} (`{meta['version']}`), every toxic `downstream`, "
           f"loopback backends. Machine: {meta['nproc']} cores, {meta['cpu']}, load "
           f"{meta['load']}, busy before start {meta['busy_before']:.0%}.", "",
           f"Command: `{meta['argv']}`", ""]
    by = {}
    for r in rows:
        by.setdefault(r["section"], []).append(r)
    if "latency" in by:
        out += ["## latency", "",
                "Added = p50 (p99) of the round trip through the proxy with the toxic minus "
                "the same percentile through the same proxy without it, measured just before "
                "(and, for reference, minus the p50 of a direct connection); medians over the "
                "repetitions. One connection: round trips back to back; several: each sends "
                "one every period (20 ms, or the toxic's delay + 4 ms), staggered, the same "
                "direct and proxied. Target: p50 within ±0.2 ms of the latency, p99 at most "
                "latency + 1 ms; 0 ms costs at most 0.05 ms; at 1,000 connections, twice these "
                "bounds. Jitter, on the round trips of all repetitions pooled (n): mean within "
                "0.3 ms (0.6 at 1,000) of the latency plus three standard errors of a uniform "
                "[l-j, l+j] sample of n, and a Kolmogorov-Smirnov distance to that uniform of "
                "at most 0.1 (0.2 at 1,000) or, where larger, the critical value at "
                "α = 0.001 for n (1.95 / √n).", "",
                "| " + " | ".join(TABLES["latency"]) + " |",
                "|" + "---|" * len(TABLES["latency"])]
        for r in by["latency"]:
            jit = (f"{r['jitter_mean_ms']:.2f} (±{r['mean_bound_ms']:.2f}) / "
                   f"{r['jitter_sd_ms']:.2f} ({r['expect_sd_ms']:.2f}) / {r['ks']:.3f} "
                   f"(≤ {r['ks_bound']:.3f}), n = {r['jitter_n']}") if r["jitter_ms"] else ""
            out.append("| " + " | ".join(fmt(x) for x in (
                r["latency_ms"], r["jitter_ms"], r["conns"], r["vs_bare_p50_ms"],
                r["vs_bare_p99_ms"], r["added_p50_ms"], r["bare_added_p50_ms"])) +
                f" | {jit} | {fmt(r['cpu_cores'])} | {fmt(r.get('cpu_per_conn_mcores'))}"
                f" | {fmt(r['bare_cpu_cores'])}"
                f" | {fmt(r['ok'])} |")
        out.append("")
    if "removed" in by:
        out += ["## a toxic just removed", "",
                "Connections opened before the toxic, a few round trips with it, then the "
                "toxic deleted: round trips on the same connections (p50) against before. "
                "Target: cost ≤ 0.05 ms.", "",
                "| " + " | ".join(TABLES["removed"]) + " |",
                "|" + "---|" * len(TABLES["removed"])]
        for r in by["removed"]:
            out.append("| " + " | ".join(fmt(r[k]) for k in (
                "toxic", "conns", "direct_p50_ms", "before_p50_ms", "after_p50_ms",
                "fresh_p50_ms", "cost_ms", "after_cpu_cores", "ok")) + " |")
        out.append("")
    if "bandwidth" in by:
        out += ["## bandwidth", "",
                "Each connection asks the backend for rate × the run's length, written in "
                "pieces of the given size; achieved = bytes / (first byte to EOF; the first "
                "read's bytes left out), per connection. Target ±2% (±4% at 1,000 connections). A row whose direct run reaches less than 1.5× the "
                "asked rate, or that asks more than the proxy's capacity on the toxic path "
                "allows (below), measures the machine, not the toxic (`bound`).", ""]
        for r in by.get("bandwidth_capacity", []):
            out.append(f"Capacity with a toxic that never waits, {r['conns']} connection(s): "
                       f"{r['per_connection_mb_s']:.0f} MB/s per connection, "
                       f"{r['all_mb_s']:.0f} MB/s in all.")
        out += ["",
                "| " + " | ".join(TABLES["bandwidth"]) + " |",
                "|" + "---|" * len(TABLES["bandwidth"])]
        for r in by["bandwidth"]:
            # A row near the machine's capacity that still delivers the rate is on target.
            within = abs(r["achieved_ratio"] - 1) <= 0.02 * slack(r["conns"])
            ok = ("bound" if r["machine_bound"] and r["exact"] and not within
                  else fmt(r["exact"] and within) if r["machine_bound"] else fmt(r["ok"]))
            out.append("| " + " | ".join(fmt(x) for x in (
                r["rate_kbs"], r["write_size"], r["conns"], r["achieved_ratio"])) +
                f" | {r['min_ratio']:.3f} .. {r['max_ratio']:.3f} | {fmt(r['direct_ratio'])}"
                f" | {fmt(r['exact'])} | {fmt(r['cpu_cores'])} | {ok} |")
        out.append("")
    for sec in ("slicer", "slow_close", "timeout", "limit_data", "delay", "packet_loss",
                "toxicity", "fault_latency", "fault_bandwidth", "error"):
        if sec not in by:
            continue
        keys = [k for k in by[sec][0] if k != "section"]
        out += [f"## {sec}", "", "| " + " | ".join(k.replace("_", " ") for k in keys) + " |",
                "|" + "---|" * len(keys)]
        for r in by[sec]:
            out.append("| " + " | ".join(fmt(r.get(k)) for k in keys) + " |")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=str(DEFAULT_SERVER),
                    help="the toxiproxy-server binary (default: target/release/toxiproxy-server)")
    ap.add_argument("--conns", default="1,50", help="connection counts, e.g. 1,50,1000")
    ap.add_argument("--only", default=",".join(SECTIONS), help="sections: " + ",".join(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="shorter runs, 1 repetition")
    ap.add_argument("--reps", type=int, default=0,
                    help="repetitions of the timing measurements (default 3, --quick 1)")
    ap.add_argument("--label", default="", help="suffix of the result files")
    ap.add_argument("--output", default=str(RESULTS_DIR))
    ap.add_argument("--fault", default="",
                    help="also measure fault-cli's `fault` binary (latency, bandwidth) as a peer")
    ap.add_argument("--spin-client", action="store_true",
                    help="the one-connection client polls instead of sleeping in recv (what the "
                         "proxy adds, without the client's wake-up from an idle vCPU)")
    ap.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.sections = [s for s in a.only.split(",") if s]
    bad = [s for s in a.sections if s not in SECTIONS]
    if bad:
        ap.error(f"unknown sections: {', '.join(bad)}")
    a.conn_counts = [int(x) for x in a.conns.split(",") if x]
    return a


def main(argv=None) -> int:
    global SPIN_CLIENT
    args = parse_args(argv)
    SPIN_CLIENT = args.spin_client
    raise_nofile()
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return 0
    server = os.path.abspath(args.server)
    if not os.access(server, os.X_OK):
        log(f"error: {server} not found: run `cargo build --release` first")
        return 2
    busy = machine_busy_share()
    if busy > 0.25:
        log(f"warning: the machine is already {busy:.0%} busy: figures will be noisy")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"vaurien-fidelity-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    bport = free_port()
    blog = open(tmp / "backend.log", "wb")
    backend = start_backend(bport, blog)
    tp = None

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    date = _dt.datetime.now().astimezone()
    try:
        wait_listening(bport, backend, "backend")
        tp = Toxiproxy(server, tmp)
        f = Fidelity(args, tp, bport)
        peer = FaultPeer(os.path.abspath(args.fault), tmp, bport) if args.fault else None
        for conns in args.conn_counts:
            for sec in args.sections + (["fault"] if peer else []):
                log(f"{sec}, {conns} connection(s)")
                try:
                    if sec == "fault":
                        fault_peer(f, peer, conns)
                    else:
                        getattr(f, sec)(conns)
                except (BenchError, OSError) as e:
                    log(f"  {sec} failed: {e}")
                    f.rows.append(dict(section="error", conns=conns, what=sec, error=str(e)))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if tp:
            tp.stop()
        kill_group(backend)
        blog.close()
    with open("/proc/cpuinfo") as fh:
        model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    meta = dict(date=date.isoformat(timespec="seconds"), nproc=os.cpu_count(), cpu=model,
                kernel=platform.release(), load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
                busy_before=busy, server=os.path.relpath(server, REPO)
                if server.startswith(str(REPO)) else server,
                version=tp.version if tp else "?",
                argv="python3 bench/fidelity.py " + " ".join(sys.argv[1:]),
                seconds=round(time.monotonic() - started, 1))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"fidelity-{date:%Y-%m-%d}" + ("-quick" if args.quick else "") + \
        (f"-{args.label}" if args.label else "")
    md = markdown(meta, f.rows)
    (out / f"{stem}.md").write_text(md + "\n")
    (out / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=f.rows), indent=1) + "\n")
    print(md)
    log(f"wrote {out / stem}.md and .json in {meta['seconds']} s")
    missed = [r for r in f.rows if r.get("ok") is False or r["section"] == "error"]
    log(f"{len(f.rows) - len(missed)} rows on target, {len(missed)} off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
