"""Resources come back: after 100,000 connections of every kind, the proxy holds what it held
before, and sits idle at no CPU.

One `vaurien` process (the installed package, run as the `vaurien` command is, with a Python
behavior registered) serves a proxy for each kind; its backends and clients are asyncio code in
this process, on loopback. The kinds, 10,000 connections each, 128 at a time:

- completed: 128 KiB echoed through a streaming proxy (which moves it with splice(2)), and
  the main proxy's exchange through a Python behavior's hook;
- reset by the client (SO_LINGER 0) while the echo comes back, or by the backend while the
  client uploads;
- timed out: `--timeout` (0.5 s) on a backend that never answers, 1,000 at a time;
- refused by the backend (a closed port);
- cut by `blackout` or `abort` (behaviors set with `PUT /behavior`), or by the `timeout` and
  `reset_peer` toxics (Toxiproxy's API).

A warm-up of 500 connections per kind and 64 concurrent 4 MB echoes (66 splice pipes in
flight) comes first, so that what the process keeps on purpose exists before the baseline: the
runtime's threads, each worker's pool of splice pipes, the Python hook threads.

The tolerances, over the baseline: descriptors other than splice pipes +8; splice pipes (pipe
descriptors other than stdin/stdout/stderr) no more than the pools' bound, 8 pipes per runtime
worker thread (or the baseline if higher); threads +2; Python thread states +1; idle CPU over
2 s (`utime + stime` of `/proc/PID/stat`) at most 4 clock ticks (2% of one core). Idle threads
leave on their own clocks (the Python hook threads after 30 s), so the counts are polled for up
to 40 s. Measured (2 cores shared with other builds, load 5-7): the 100,000 connections take
80-100 s; every count is back within 0.5-3.5 s, idle CPU 0 ticks (docs/soak.md).
"""
from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import struct
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from helpers import free_port, wait_port

PER_KIND = int(os.environ.get("VAURIEN_RESOURCES_PER_KIND", "10000"))
WARMUP_PER_KIND = 500
CONCURRENCY = 128
TIMEOUT = 0.5  # vaurien's --timeout, seconds
TIMED_OUT_CONCURRENCY = 1000  # connections that wait TIMEOUT each: many at once

# Tolerances, over the baseline.
FDS_TOLERANCE = 8  # descriptors other than splice pipes (sockets, files)
# Splice pipes: each runtime worker thread keeps up to POOL_MAX (8, src/io/splice.rs) empty
# pipes for reuse, so their count may rise up to that bound whatever the baseline; it must
# never pass it (two descriptors a pipe).
SPLICE_POOL_MAX = 8
THREADS_TOLERANCE = 2  # OS threads (a blocking-pool thread the runtime starts and stops)
PYTHON_THREADS_TOLERANCE = 1  # Python thread states
IDLE_CPU_TICKS = 4  # clock ticks over 2 s idle (4 ticks at 100 Hz: 2% of one core)
SETTLE = 40.0  # seconds for idle threads to leave (the Python hook threads: 30 s)

# The proxy process: registers a Python behavior, answers `stats` on stdin with its Python
# thread states (walked with the C API while no other thread can run), runs `vaurien ARGS`.
_PROXY = textwrap.dedent(
    """
    import ctypes, json, os, signal, sys, threading

    from vaurien.behaviors import Behavior
    from vaurien.behaviors.dummy import Dummy

    @Behavior.register
    class Counting(Dummy):
        name = "counting"
        options = {}

        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_before_handle(self, protocol, source, dest, to_backend):
            self.seen += 1
            return True

    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
    api.PyThreadState_Next.restype = ctypes.c_void_p
    api.PyThreadState_Next.argtypes = [ctypes.c_void_p]

    def python_threads():
        before = sys.getswitchinterval()
        sys.setswitchinterval(10.0)  # no other thread runs (or ends) during the walk
        try:
            n, t = 0, api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Get())
            while t:
                n += 1
                t = api.PyThreadState_Next(t)
            return n
        finally:
            sys.setswitchinterval(before)

    def serve():
        for line in sys.stdin:
            print(json.dumps({"python_threads": python_threads(),
                              "threading": threading.active_count()}), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)  # the test went away

    threading.Thread(target=serve, daemon=True).start()
    from vaurien.run import main
    sys.exit(main(sys.argv[1:]))
    """
)


class Vaurien:
    def __init__(self, tmp_path, backend: int):
        self.port, self.api_port = free_port(), free_port()
        script = tmp_path / "resources_proxy.py"
        script.write_text(_PROXY)
        self.log = tmp_path / "vaurien.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script),
             "--proxy", f"127.0.0.1:{self.port}", "--backend", f"127.0.0.1:{backend}",
             "--http", "--http-host", "127.0.0.1", "--http-port", str(self.api_port),
             "--timeout", str(TIMEOUT), "--log-level", "critical"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        wait_port(self.port, proc=self.proc)
        wait_port(self.api_port, proc=self.proc)
        self.pid = self.proc.pid

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self._log):
            f.close()
        return self.proc.returncode

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw) if raw else {}

    def python_threads(self) -> int:
        self.proc.stdin.write(b"stats\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert ready, "the proxy answers its stats"
        return json.loads(self.proc.stdout.readline())["python_threads"]

    def snapshot(self) -> dict:
        """Descriptors other than pipes, splice pipes' descriptors (pipes other than stdin,
        stdout and stderr), threads, Python thread states, RSS."""
        fd_dir = f"/proc/{self.pid}/fd"
        fds = pipes = 0
        for name in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{name}")
            except FileNotFoundError:
                continue
            if not target.startswith("pipe:"):
                fds += 1
            elif int(name) > 2:
                pipes += 1
        return {
            "fds": fds,
            "pipe_fds": pipes,
            "threads": len(os.listdir(f"/proc/{self.pid}/task")),
            "python_threads": self.python_threads(),
            "rss_kib": self.rss_kib(),
        }

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def cpu_ticks(self) -> int:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)

    def idle_cpu(self, seconds: float = 2.0) -> int:
        before = self.cpu_ticks()
        time.sleep(seconds)
        return self.cpu_ticks() - before


# ---------------------------------------------------------------------------------------------
# Backends (asyncio, this process)


async def _echo(reader, writer, once: bool = False):
    """Echoes until EOF, then closes; with `once`, answers the first read only, then closes
    (one exchange of `tcp`)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
            if once:
                break
    except OSError:
        pass
    finally:
        writer.close()


async def _reply_once(reader, writer):
    await _echo(reader, writer, once=True)


async def _silent(reader, writer):
    """Reads and never answers; closes when the other side does."""
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass
    finally:
        writer.close()


def _rst(writer) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _resets(reader, writer):
    """Reads the request, then resets the connection (TCP RST)."""
    try:
        await reader.read(65536)
    except OSError:
        pass
    _rst(writer)


# ---------------------------------------------------------------------------------------------
# Clients: one connection of a kind; returns how it ended.

PAYLOAD = b"resources come back\n"
# What the streaming kinds send: enough for a direction to leave the copy path for splice(2).
BULK = os.urandom(128 * 1024)


async def _until_end(reader) -> str:
    """Reads until EOF or a reset; 'eof' or 'reset'."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionResetError:
        return "reset"
    return "eof"


async def _one(kind: str, port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if kind == "completed":  # the whole bulk echoed, then a clean close
            writer.write(BULK)
            assert await reader.readexactly(len(BULK)) == BULK
            writer.close()
            return "completed"
        if kind == "client_reset":  # reset while the echo is still coming
            writer.write(BULK)
            await reader.readexactly(1024)
            _rst(writer)
            return "reset by the client"
        if kind == "backend_reset":  # the backend resets while the upload goes on
            writer.write(BULK)
            return await _until_end(reader)
        writer.write(PAYLOAD)
        if kind == "python":
            assert await reader.readexactly(len(PAYLOAD)) == PAYLOAD
            writer.close()
            return "completed"
        return await _until_end(reader)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except asyncio.IncompleteReadError:
        return "cut"
    finally:
        if not writer.transport.is_closing():
            writer.close()


async def _run_kind(kind: str, port: int, count: int, outcomes: dict) -> None:
    sem = asyncio.Semaphore(TIMED_OUT_CONCURRENCY if kind == "timed_out" else CONCURRENCY)

    async def one() -> None:
        async with sem:
            try:
                how = await asyncio.wait_for(_one(kind, port), 10)
            except (asyncio.TimeoutError, OSError) as e:
                how = f"client error {type(e).__name__}"
            outcomes[how] = outcomes.get(how, 0) + 1

    await asyncio.gather(*(one() for _ in range(count)))


_OPEN: set = set()  # the backends' connections still open (closed at the end of the test)


def _listen(handler):
    async def tracked(reader, writer):
        _OPEN.add(writer)
        try:
            await handler(reader, writer)
        finally:
            _OPEN.discard(writer)

    return asyncio.start_server(tracked, "127.0.0.1", 0, backlog=4096)


async def _saturate(port: int, conns: int = 64, size: int = 1 << 20) -> None:
    """Fills every worker's pool of splice pipes: many bulk echoes at once, each read only
    once all of it was sent, so that each direction's pipe stays full a while."""
    data = os.urandom(size)

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        assert await reader.readexactly(size) == data
        writer.close()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(conns))), 60)


@pytest.mark.timeout(400)
def test_resources_come_back_after_100000_connections_of_every_kind(tmp_path):
    """The file descriptors, pipes, threads and Python threads of the proxy after 100,000
    connections of ten kinds are those it had before, and its idle CPU is about zero."""

    async def main() -> dict:
        servers = {name: await _listen(h) for name, h in
                   (("echo", _echo), ("once", _reply_once), ("silent", _silent), ("rst", _resets))}
        port = {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
        closed = free_port()  # nothing listens there: refused by the backend
        v = Vaurien(tmp_path, port["once"])
        report: dict = {}
        try:
            proxies = {}
            for name, upstream, toxic in (
                ("plain", port["echo"], None),
                ("backend_rst", port["rst"], None),
                ("refused", closed, None),
                ("tox_timeout", port["echo"], {"type": "timeout", "attributes": {"timeout": 10}}),
                ("tox_reset_peer", port["echo"], {"type": "reset_peer", "attributes": {"timeout": 0}}),
            ):
                created = v.call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                                      "upstream": f"127.0.0.1:{upstream}"})
                proxies[name] = int(created["listen"].rsplit(":", 1)[1])
                if toxic:
                    v.call("POST", f"/proxies/{name}/toxics", toxic)

            # (kind, proxy port, the main proxy's behavior and backend when it is the one)
            kinds = [
                ("completed", proxies["plain"], None),
                ("client_reset", proxies["plain"], None),
                ("backend_reset", proxies["backend_rst"], None),
                ("refused", proxies["refused"], None),
                ("timeout_toxic", proxies["tox_timeout"], None),
                ("reset_peer_toxic", proxies["tox_reset_peer"], None),
                ("python", v.port, ("counting", port["once"])),
                ("blackout", v.port, ("blackout", port["once"])),
                ("abort", v.port, ("abort", port["once"])),
                ("timed_out", v.port, ("dummy", port["silent"])),
            ]

            async def run_all(count: int, outcomes: dict) -> None:
                for kind, kport, main_setup in kinds:
                    if main_setup:
                        behavior, backend = main_setup
                        await asyncio.to_thread(v.call, "PUT", "/behavior", {"name": behavior})
                        await asyncio.to_thread(v.call, "PUT", "/backend", {"backend": f"127.0.0.1:{backend}"})
                    ends: dict = {}
                    t0 = time.monotonic()
                    await _run_kind(kind, kport, count, ends)
                    outcomes[kind] = {"ends": ends, "seconds": round(time.monotonic() - t0, 2),
                                      "rss_kib": v.rss_kib()}

            await run_all(WARMUP_PER_KIND, {})
            await _saturate(proxies["plain"], conns=64, size=4_000_000)
            await asyncio.to_thread(v.call, "PUT", "/behavior", {"name": "dummy"})
            await asyncio.sleep(1)
            report["baseline"] = await asyncio.to_thread(v.snapshot)
            workers = len(os.sched_getaffinity(v.pid))  # tokio's default: one per core
            report["idle_cpu_before"] = await asyncio.to_thread(v.idle_cpu)

            outcomes: dict = {}
            start = time.monotonic()
            await run_all(PER_KIND, outcomes)
            report["run_seconds"] = time.monotonic() - start
            report["outcomes"] = outcomes
            await asyncio.to_thread(v.call, "PUT", "/behavior", {"name": "dummy"})

            # Poll until every count is back within its tolerance (idle threads leave on
            # their own clocks), at most SETTLE seconds.
            limits = {
                "fds": report["baseline"]["fds"] + FDS_TOLERANCE,
                "pipe_fds": max(report["baseline"]["pipe_fds"], 2 * SPLICE_POOL_MAX * workers),
                "threads": report["baseline"]["threads"] + THREADS_TOLERANCE,
                "python_threads": report["baseline"]["python_threads"] + PYTHON_THREADS_TOLERANCE,
            }
            settle_start = time.monotonic()
            while True:
                await asyncio.sleep(0.5)
                after = await asyncio.to_thread(v.snapshot)
                if all(after[k] <= limit for k, limit in limits.items()):
                    break
                if time.monotonic() - settle_start > SETTLE:
                    break
            report["after"] = after
            report["settled_in"] = time.monotonic() - settle_start
            report["limits"] = limits
            report["idle_cpu_after"] = await asyncio.to_thread(v.idle_cpu)
        finally:
            report["exit"] = v.stop()
            for s in servers.values():
                s.close()
            for w in list(_OPEN):
                w.close()
            await asyncio.sleep(0.1)
        report["log"] = v.log.read_text(errors="replace")
        return report

    report = asyncio.run(main())
    print(json.dumps({k: v for k, v in report.items() if k != "log"}, indent=1))
    ends = {kind: o["ends"] for kind, o in report["outcomes"].items()}
    assert sum(sum(e.values()) for e in ends.values()) == 10 * PER_KIND, ends
    for kind, e in ends.items():
        assert not any(k.startswith("client error") for k in e), (kind, e)
    # The kinds end as they should. A slow moment (the machine's other load) may let the
    # 0.5 s --timeout end an exchange before the backend's answer: at most 1 in 1,000.
    for kind, how, exact in (
        ("completed", "completed", True),
        ("client_reset", "reset by the client", True),
        ("python", "completed", False),
        ("reset_peer_toxic", "reset", False),
        ("abort", "reset", False),
    ):
        least = PER_KIND if exact else PER_KIND * 999 // 1000
        assert ends[kind].get(how, 0) >= least, (kind, ends[kind])
    assert "panic" not in report["log"], report["log"][-2000:]
    assert report["exit"] == 0
    after, limits = report["after"], report["limits"]
    for key, limit in limits.items():
        assert after[key] <= limit, f"{key}: {report['baseline'][key]} before, {after[key]} after"
    assert report["idle_cpu_after"] <= IDLE_CPU_TICKS, report["idle_cpu_after"]
