"""The soak behind scripts/soak.sh: one vaurien process, several proxies, every kind of traffic
and live reconfiguration at once, for a set time; then checks that nothing was lost and that
the process is back to its baseline.

    python scripts/soak.py run SECONDS WORKDIR   the soak (what soak.sh runs)
    python scripts/soak.py vaurien ARGS...       the vaurien command with the soak's Python
                                                 behavior (`soakpy`) registered
    python scripts/soak.py echo PORT             the echo backend
    python scripts/soak.py worker ROLE JSON      one load worker; prints its figures as JSON

Loopback only; every port is picked at run time; every loop ends on a deadline. With
SOAK_TRACE=1 it prints vaurien's figures every second and its descriptors at the baseline and
at the end.
"""
from __future__ import annotations

import ctypes
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
PY = sys.executable

# What the end of the soak allows.
RSS_TOLERANCE_MIB = 10
FDS_TOLERANCE = 16  # descriptors other than splice pipes
# Splice pipes: each runtime worker thread keeps up to POOL_MAX (8, src/io/splice.rs) empty
# pipes for reuse, so their count may rise to that bound whatever the baseline, never above.
SPLICE_POOL_MAX = 8
API_BOUND_MS = 100.0
SETTLE_SECONDS = 15.0  # most the end waits for the descriptors to be back at the baseline

# The backend that restarts (redis-server), every RESTART_EVERY seconds (shorter runs restart
# it three times in all).
RESTART_EVERY = 30.0

# Bulk streams: sizes sent and echoed.
BULK_MAX = 4 << 20


# ---------------------------------------------------------------------------------------------
# Small helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def spawn(args: list[str], nice: int = 0, **kw) -> subprocess.Popen:
    """A child that gets SIGKILL when the soak's process goes away, whatever kills it. The
    load and the backends run at `nice` 10: on a busy machine they, not vaurien or the client
    that times the API, wait for the CPU."""

    def setup() -> None:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if nice:
            os.nice(nice)

    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(args, preexec_fn=setup, **kw)


LOAD_NICE = 10


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def rst_close(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


# ---------------------------------------------------------------------------------------------
# `soak.py vaurien ARGS`: the vaurien command, with a Python behavior registered


def run_vaurien(args: list[str]) -> int:
    from vaurien.behaviors import Behavior
    from vaurien.behaviors.dummy import Dummy
    from vaurien.util import get_data

    @Behavior.register
    class SoakPy(Dummy):
        """Counts exchanges; one in 50 sleeps 2 ms in the hook (another hook thread takes the
        queue over); with http, one in `every` is answered 503 here and the connection
        closes."""

        name = "soakpy"
        options = {"every": ("answer one exchange in EVERY with a 503 (http)", int, 7)}

        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_before_handle(self, protocol, source, dest, to_backend):
            self.seen += 1
            if self.seen % 50 == 0:
                time.sleep(0.002)
            every = max(1, self.option("every"))
            if getattr(protocol, "name", "") == "http" and self.seen % every == 0:
                get_data(source)
                source.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               b"X-Soak: python\r\nConnection: close\r\n\r\n")
                source.close()
                return False
            return True

    from vaurien.run import main

    return main(args)


# ---------------------------------------------------------------------------------------------
# `soak.py echo PORT`: echoes every connection until EOF, then closes


def run_echo(port: int) -> int:
    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            s = self.request
            buf = bytearray(256 * 1024)
            view = memoryview(buf)
            try:
                while True:
                    n = s.recv_into(buf)
                    if not n:
                        break
                    s.sendall(view[:n])
            except OSError:
                pass

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 1024

    with Server(("127.0.0.1", port), Echo) as srv:
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        srv.serve_forever()
    return 0


# ---------------------------------------------------------------------------------------------
# `soak.py worker ROLE JSON`: the load. Each worker runs `threads` threads until `until` (a
# time.time() deadline) and prints one JSON object of counts.


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.c: dict[str, float] = {}
        self.notes: list[str] = []

    def add(self, key: str, n: float = 1) -> None:
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def note(self, text: str) -> None:
        with self.lock:
            if len(self.notes) < 20:
                self.notes.append(text)


def bulk_stream(port: int, counts: Counts, rng: random.Random) -> None:
    """One hashed stream: N random bytes out in random writes, the echo back hashed; then a
    half-close, after which nothing more may come back."""
    size = rng.choice([1, rng.randrange(1, 4096), rng.randrange(4096, 256 << 10),
                       rng.randrange(256 << 10, BULK_MAX)])
    data = rng.randbytes(size)
    want = hashlib.sha256(data).hexdigest()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    failure: list[str] = []

    def send() -> None:
        view, off = memoryview(data), 0
        try:
            while off < size:
                n = rng.choice([1, 100, 1460, 16384, 65536, 1 << 20])
                s.sendall(view[off:off + n])
                off += n
        except OSError as e:
            failure.append(f"send: {e!r}")

    t = threading.Thread(target=send)
    t.start()
    h = hashlib.sha256()
    got = 0
    buf = bytearray(256 * 1024)
    try:
        while got < size:
            n = s.recv_into(buf, min(len(buf), size - got))
            if not n:
                break
            h.update(memoryview(buf)[:n])
            got += n
        t.join(30)
        if got == size:
            s.shutdown(socket.SHUT_WR)
            extra = s.recv(65536)
            if extra:
                failure.append(f"{len(extra)} bytes more than sent")
    except OSError as e:
        failure.append(f"recv: {e!r}")
    finally:
        t.join(30)
        s.close()
    counts.add("streams")
    counts.add("bytes", got)
    if got != size:
        counts.add("lost_bytes", size - got)
        failure.append(f"{got} of {size} bytes came back")
    elif h.hexdigest() != want:
        counts.add("reordered_streams")
        failure.append(f"sha256 differs on {size} bytes")
    if failure:
        counts.add("failed_streams")
        counts.note("; ".join(failure))


def worker_bulk(cfg: dict, counts: Counts, stop_at: float, rng: random.Random) -> None:
    while time.time() < stop_at:
        try:
            bulk_stream(cfg["port"], counts, rng)
        except OSError as e:
            counts.add("streams")
            counts.add("failed_streams")
            counts.note(f"connect: {e!r}")


def worker_redis(cfg: dict, counts: Counts, stop_at: float, rng: random.Random) -> None:
    import redis

    r = redis.Redis("127.0.0.1", cfg["port"], socket_timeout=1, socket_connect_timeout=1)
    i = 0
    while time.time() < stop_at:
        i += 1
        key = f"soak:{rng.randrange(1000)}"
        try:
            op = i % 4
            if op == 0:
                r.set(key, rng.randbytes(rng.choice([10, 1000, 50000])))
            elif op == 1:
                r.get(key)
            elif op == 2:
                p = r.pipeline(transaction=False)
                for j in range(10):
                    p.incr(f"{key}:{j}")
                p.execute()
            else:
                r.ping()
            counts.add("ok")
        except Exception as e:  # noqa: BLE001 - chaos: every client error is counted
            counts.add(f"error {type(e).__name__}")
            r.connection_pool.disconnect()
        if i % 50 == 0:
            r.connection_pool.disconnect()  # a new connection now and then


def worker_memcache(cfg: dict, counts: Counts, stop_at: float, rng: random.Random) -> None:
    from pymemcache.client.base import Client

    c = Client(("127.0.0.1", cfg["port"]), connect_timeout=1, timeout=1)
    i = 0
    while time.time() < stop_at:
        i += 1
        key = f"soak{rng.randrange(1000)}"
        try:
            if i % 2:
                c.set(key, rng.randbytes(rng.choice([10, 1000, 20000])), noreply=False)
            else:
                c.get(key)
            counts.add("ok")
        except Exception as e:  # noqa: BLE001
            counts.add(f"error {type(e).__name__}")
            c.close()
        if i % 50 == 0:
            c.close()


def worker_http(cfg: dict, counts: Counts, stop_at: float, rng: random.Random) -> None:
    while time.time() < stop_at:
        path = rng.choice(["/small.txt", "/big.bin", "/missing"])
        c = http.client.HTTPConnection("127.0.0.1", cfg["port"], timeout=3)
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            counts.add(f"status {r.status}")
            if r.getheader("X-Soak") == "python":
                counts.add("answered by the Python behavior")
        except Exception as e:  # noqa: BLE001
            counts.add(f"error {type(e).__name__}")
        finally:
            c.close()


def worker_churn(cfg: dict, counts: Counts, stop_at: float, rng: random.Random) -> None:
    """Connections opened and closed fast: at once, after a byte, with a reset, or after an
    echo."""
    while time.time() < stop_at:
        how = rng.randrange(4)
        try:
            s = socket.create_connection(("127.0.0.1", cfg["port"]), timeout=1)
            if how == 0:
                s.close()
            elif how == 1:
                s.sendall(b"x")
                s.close()
            elif how == 2:
                s.sendall(b"y")
                rst_close(s)
            else:
                s.sendall(b"ping")
                s.recv(16)
                s.close()
            counts.add("connections")
        except OSError as e:
            counts.add(f"error {type(e).__name__}")


MIXES = [
    {"name": "dummy"},
    {"name": "30:soakpy"},
    {"name": "100:soakpy", "every": 3},
    {"name": "50:soakpy,10:delay", "sleep": 0.005},
    {"name": "10:error"},
    {"name": "5:abort,5:blackout"},
    {"name": "20:transient", "agitate": 2},
    {"name": "30:soakpy,10:error,5:abort"},
    {"name": "20:latency", "latency": 5},
    {"name": "2:hang"},
]

# Toxics for the chaos proxies; lossless ones for the checked bulk_toxic proxy.
TOXICS = [
    ("latency", {"latency": 5, "jitter": 2}),
    ("bandwidth", {"rate": 2000}),
    ("slow_close", {"delay": 20}),
    ("timeout", {"timeout": 100}),
    ("reset_peer", {"timeout": 5}),
    ("slicer", {"average_size": 64, "size_variation": 32, "delay": 100}),
    ("limit_data", {"bytes": 2000}),
    ("noop", {}),
    ("packet_loss", {"loss_rate": 0.05}),
    ("delay", {"sleep": 0.005}),
    ("error", {"protocol_reply": True}),
    ("abort", {}),
    ("blackout", {}),
    ("transient", {"agitate": 2}),
    ("soakpy", {}),
]
LOSSLESS = [
    ("latency", {"latency": 3, "jitter": 1}),
    ("bandwidth", {"rate": 100000}),
    ("slicer", {"average_size": 4096, "size_variation": 1024, "delay": 0}),
    ("noop", {}),
]


class Api:
    """A keep-alive client of the control API that times every call."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.ms: list[float] = []
        self.statuses: dict[str, int] = {}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            self.ms.append((time.perf_counter() - t0) * 1000.0)
            key = f"{method} {path.split('/')[1]} {r.status}"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            return r.status, raw
        raise AssertionError


def worker_api(cfg: dict, counts: Counts, stop_at: float, rng: random.Random) -> None:
    """Every 100 ms: a `PUT /behavior` on the main proxy and a Toxiproxy toxic added or
    removed on one of the others; a read now and then."""
    api = Api(cfg["api"])
    toxics: dict[str, list[str]] = {name: [] for name in cfg["toxic_proxies"]}
    tick, n = 0.1, 0
    start = time.monotonic()
    while time.time() < stop_at:
        n += 1
        mix = rng.choice(MIXES)
        st, raw = api.call("PUT", "/behavior", mix)
        if st != 200:
            counts.note(f"PUT /behavior {mix}: {st} {raw[:200]!r}")
        proxy = rng.choice(list(toxics))
        held = toxics[proxy]
        if held and (len(held) >= 3 or rng.random() < 0.5):
            name = held.pop(rng.randrange(len(held)))
            st, raw = api.call("DELETE", f"/proxies/{proxy}/toxics/{name}")
            if st != 204:
                counts.note(f"DELETE {proxy}/{name}: {st} {raw[:200]!r}")
        else:
            kind, attrs = rng.choice(LOSSLESS if proxy == "bulk_toxic" else TOXICS)
            name = f"t{n}"
            body = {"name": name, "type": kind, "stream": rng.choice(["upstream", "downstream"]),
                    "toxicity": rng.choice([1.0, 0.5]), "attributes": attrs}
            st, raw = api.call("POST", f"/proxies/{proxy}/toxics", body)
            if st == 200:
                held.append(name)
            else:
                counts.note(f"POST {proxy} {kind}: {st} {raw[:200]!r}")
        if n % 10 == 0:
            api.call("GET", "/behavior")
            api.call("GET", f"/proxies/{proxy}/toxics")
        counts.add("ticks")
        time.sleep(max(0.0, start + n * tick - time.monotonic()))
    # Leave the proxies clean: no toxic, dummy behavior.
    for proxy, held in toxics.items():
        for name in held:
            api.call("DELETE", f"/proxies/{proxy}/toxics/{name}")
    api.call("PUT", "/behavior", {"name": "dummy"})
    counts.c["api_ms"] = api.ms  # type: ignore[assignment]
    counts.c["api_statuses"] = api.statuses  # type: ignore[assignment]


WORKERS = {
    "bulk": worker_bulk,
    "redis": worker_redis,
    "memcache": worker_memcache,
    "http": worker_http,
    "churn": worker_churn,
    "api": worker_api,
}


def run_worker(role: str, cfg: dict) -> int:
    counts = Counts()
    threads = [
        threading.Thread(target=WORKERS[role], args=(cfg, counts, cfg["until"], random.Random(cfg["seed"] + i)))
        for i in range(cfg.get("threads", 1))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"counts": counts.c, "notes": counts.notes}), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# `soak.py run SECONDS WORKDIR`: the orchestra


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def describe_fds(pid: int, names: dict[int, str]) -> list[str]:
    """What the process's descriptors are: TCP sockets with their ports (named) and state."""
    sockets = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    p = line.split()
                    lport, rport = int(p[1].rsplit(":", 1)[1], 16), int(p[2].rsplit(":", 1)[1], 16)
                    sockets[p[9]] = (f"{names.get(lport, lport)} -> {names.get(rport, rport)} "
                                     f"{TCP_STATES.get(p[3], p[3])}")
        except OSError:
            pass
    out: dict[str, int] = {}
    for target in fd_targets(pid):
        if target.startswith("socket:["):
            target = sockets.get(target[8:-1], "socket (not TCP)")
        elif target.startswith("pipe:"):
            target = "pipe"
        out[target] = out.get(target, 0) + 1
    return [f"{n} x {what}" for what, n in sorted(out.items(), key=lambda kv: -kv[1])]


def fd_targets(pid: int):
    """What each open descriptor of the process points at (`socket:[inode]`, `pipe:[...]`, a
    path)."""
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            yield os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            continue


def proc_figures(pid: int) -> dict:
    fds = pipes = 0  # descriptors other than pipes; pipes' descriptors (all splice pipes)
    for target in fd_targets(pid):
        if target.startswith("pipe:"):
            pipes += 1
        else:
            fds += 1
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"rss_mib": rss / 1024.0, "fds": fds, "pipes": pipes,
            "threads": len(os.listdir(f"/proc/{pid}/task"))}


class Soak:
    def __init__(self, seconds: float, workdir: Path) -> None:
        self.seconds = seconds
        self.work = workdir
        self.procs: list[subprocess.Popen] = []
        self.redis: subprocess.Popen | None = None
        self.vaurien: subprocess.Popen | None = None
        self.restarts = 0
        self.restart_ms: list[float] = []

    # -- servers --------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis = spawn([shutil.which("redis-server") or "/usr/bin/redis-server",
                            "--port", str(self.ports["redis"]), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", str(self.work)], nice=LOAD_NICE)
        wait_port(self.ports["redis"], proc=self.redis)

    def restart_redis(self) -> None:
        t0 = time.monotonic()
        stop(self.redis)
        self.start_redis()
        self.restart_ms.append((time.monotonic() - t0) * 1000.0)
        self.restarts += 1

    def start_servers(self) -> None:
        names = ["redis", "memcached", "http", "echo", "proxy", "api"]
        self.ports = {n: free_port() for n in names}
        self.start_redis()
        memcached = shutil.which("memcached") or "/usr/bin/memcached"
        args = [memcached, "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0", "-m", "64", "-c", "4096"]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.procs.append(spawn(args, nice=LOAD_NICE))
        wait_port(self.ports["memcached"], proc=self.procs[-1])
        www = self.work / "www"
        www.mkdir()
        (www / "small.txt").write_bytes(b"hello soak\n")
        (www / "big.bin").write_bytes(os.urandom(200_000))
        self.procs.append(self.http_server(www))
        wait_port(self.ports["http"], proc=self.procs[-1])
        self.procs.append(spawn([PY, str(HERE), "echo", str(self.ports["echo"])], nice=LOAD_NICE))
        wait_port(self.ports["echo"], proc=self.procs[-1])

    def http_server(self, www: Path) -> subprocess.Popen:
        """nginx (what scripts/test.sh installs), else `python -m http.server`."""
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
        if not nginx:
            self.http_kind = "python -m http.server"
            return spawn([PY, "-m", "http.server", str(self.ports["http"]), "--bind", "127.0.0.1",
                          "--directory", str(www)], nice=LOAD_NICE)
        self.http_kind = "nginx"
        tmp = self.work / "nginx"
        tmp.mkdir()
        conf = tmp / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(f"""
            daemon off; worker_processes 1; {user}
            pid {tmp}/nginx.pid; error_log {tmp}/error.log;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
                fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
                server {{ listen 127.0.0.1:{self.ports["http"]} backlog=4096; root {www}; }}
            }}
        """)
        return spawn([nginx, "-p", str(tmp), "-c", str(conf), "-e", f"{tmp}/error.log"], nice=LOAD_NICE)

    def start_vaurien(self) -> None:
        self.log = self.work / "vaurien.log"
        log = open(self.log, "wb")
        self.vaurien = spawn(
            [PY, str(HERE), "vaurien", "--protocol", "http",
             "--proxy", f"127.0.0.1:{self.ports['proxy']}", "--backend", f"127.0.0.1:{self.ports['http']}",
             "--http", "--http-host", "127.0.0.1", "--http-port", str(self.ports["api"]),
             "--behavior", "20:soakpy", "--timeout", "1", "--log-level", "warning"],
            stderr=log,
        )
        log.close()
        wait_port(self.ports["proxy"], proc=self.vaurien)
        wait_port(self.ports["api"], proc=self.vaurien)
        api = Api(self.ports["api"])
        self.proxy_ports = {"main": self.ports["proxy"]}
        for name, upstream, protocol in (
            ("bulk", self.ports["echo"], "tcp"),
            ("bulk_toxic", self.ports["echo"], "tcp"),
            ("redis", self.ports["redis"], "redis"),
            ("memcache", self.ports["memcached"], "memcache"),
            ("churn", self.ports["echo"], "tcp"),
        ):
            st, raw = api.call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                                   "upstream": f"127.0.0.1:{upstream}", "protocol": protocol})
            if st != 201:
                raise RuntimeError(f"POST /proxies {name}: {st} {raw!r}")
            self.proxy_ports[name] = int(json.loads(raw)["listen"].rsplit(":", 1)[1])

    # -- load -----------------------------------------------------------------------------

    def start_workers(self, seconds: float, seed: int) -> list[tuple[str, subprocess.Popen]]:
        until = time.time() + seconds
        p = self.proxy_ports
        plan = [
            ("bulk", "bulk", {"port": p["bulk"], "threads": 2}),
            ("bulk_toxic", "bulk", {"port": p["bulk_toxic"], "threads": 1}),
            ("redis", "redis", {"port": p["redis"], "threads": 2}),
            ("memcache", "memcache", {"port": p["memcache"], "threads": 2}),
            ("http", "http", {"port": p["main"], "threads": 3}),
            ("churn", "churn", {"port": p["churn"], "threads": 2}),
            ("api", "api", {"api": self.ports["api"],
                            "toxic_proxies": ["redis", "memcache", "churn", "bulk_toxic"]}),
        ]
        out = []
        for i, (label, role, cfg) in enumerate(plan):
            cfg = dict(cfg, until=until, seed=seed * 100 + i * 10)
            out.append((label, spawn([PY, str(HERE), "worker", role, json.dumps(cfg)],
                                     nice=0 if role == "api" else LOAD_NICE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
        return out

    def collect(self, workers: list[tuple[str, subprocess.Popen]], deadline: float) -> dict:
        results = {}
        for label, w in workers:
            try:
                out, err = w.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                out, err = w.communicate()
            try:
                results[label] = json.loads(out.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                results[label] = {"counts": {}, "notes": [f"worker failed: {err.decode(errors='replace')[-500:]}"]}
        return results

    def run(self) -> int:
        try:
            return self._run()
        finally:
            stop(self.vaurien)
            stop(self.redis)
            for p in self.procs:
                stop(p)

    def _run(self) -> int:
        t_start = time.monotonic()
        self.start_servers()
        self.start_vaurien()
        pid = self.vaurien.pid
        self.workers = len(os.sched_getaffinity(pid))

        # Warm-up: the same load for a little while, so that what the process keeps on
        # purpose (runtime threads, pooled splice pipes, hook threads) exists before the
        # baseline; then a quiet second.
        warm = min(10.0, max(5.0, self.seconds / 20))
        self.collect(self.start_workers(warm, seed=1), time.monotonic() + warm + 60)
        time.sleep(1.0)
        baseline = proc_figures(pid)
        if os.environ.get("SOAK_TRACE"):
            print("baseline descriptors:\n  " + "\n  ".join(describe_fds(pid, self.port_names())), flush=True)

        # The soak.
        restart_every = min(RESTART_EVERY, self.seconds / 3)
        workers = self.start_workers(self.seconds, seed=2)
        end = time.monotonic() + self.seconds
        next_restart = time.monotonic() + restart_every
        peak = dict(baseline)
        self.rss_series: list[float] = []
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            if self.vaurien.poll() is not None:
                break
            now = proc_figures(pid)
            if os.environ.get("SOAK_TRACE"):
                print(f"{time.monotonic() - end + self.seconds:5.0f}s {now}", flush=True)
            for k, v in now.items():
                peak[k] = max(peak[k], v)
            self.rss_series.append(now["rss_mib"])
            if time.monotonic() >= next_restart and time.monotonic() < end - 1:
                self.restart_redis()
                next_restart += restart_every
        results = self.collect(workers, time.monotonic() + 90)
        alive = self.vaurien.poll() is None

        # Settle: the connections that a hang, slow_close or timeout held close (within
        # --timeout, 1 s). Wait until the descriptors are back at the baseline itself, at most
        # SETTLE_SECONDS; the tolerances are for the verdict.
        settle_start = time.monotonic()
        after = baseline
        while alive and time.monotonic() - settle_start < SETTLE_SECONDS:
            time.sleep(0.5)
            after = proc_figures(pid)
            if after["fds"] <= baseline["fds"] and after["pipes"] <= self.pipes_bound(baseline):
                break
        settled = time.monotonic() - settle_start
        self.fds_at_end = describe_fds(pid, self.port_names())
        if os.environ.get("SOAK_TRACE"):
            print("descriptors at the end:\n  " + "\n  ".join(self.fds_at_end), flush=True)
        exit_code = stop(self.vaurien, timeout=15)
        log = self.log.read_text(errors="replace")
        return self.report(baseline, peak, after, settled, results, alive, exit_code, log,
                           time.monotonic() - t_start)

    def pipes_bound(self, baseline: dict) -> int:
        """Splice pipes' descriptors allowed at the end: each runtime worker thread (tokio's
        default, one per core) keeps up to SPLICE_POOL_MAX empty pipes for reuse."""
        return max(baseline["pipes"], 2 * SPLICE_POOL_MAX * self.workers)

    def port_names(self) -> dict[int, str]:
        names = {port: f"{name}(backend)" for name, port in self.ports.items() if name not in ("proxy", "api")}
        names.update({port: f"{name}(proxy)" for name, port in self.proxy_ports.items()})
        names[self.ports["api"]] = "api"
        return names

    # -- the end --------------------------------------------------------------------------

    def report(self, baseline, peak, after, settled, results, alive, exit_code, log, took) -> int:
        failures: list[str] = []
        lines: list[tuple[str, str, str]] = []

        def row(what: str, figure: str, ok: bool | None = None) -> None:
            lines.append((what, figure, "" if ok is None else ("ok" if ok else "FAIL")))
            if ok is False:
                failures.append(f"{what}: {figure}")

        def c(label: str) -> dict:
            return results.get(label, {}).get("counts", {})

        for label in ("bulk", "bulk_toxic"):
            b = c(label)
            streams, failed = int(b.get("streams", 0)), int(b.get("failed_streams", 0))
            row(f"dummy streams ({label})",
                f"{streams} streams, {b.get('bytes', 0) / 2**20:.0f} MiB echoed, "
                f"{int(b.get('lost_bytes', 0))} bytes lost, {int(b.get('reordered_streams', 0))} reordered, "
                f"{failed} failed", streams > 0 and failed == 0)
            for note in results.get(label, {}).get("notes", [])[:5]:
                lines.append(("", f"  {note}", ""))
        for label, good in (("redis", "ok"), ("memcache", "ok"), ("churn", "connections")):
            k = c(label)
            errors = sum(v for key, v in k.items() if key.startswith("error"))
            kinds = ", ".join(f"{key[6:]} {int(v)}" for key, v in sorted(k.items()) if key.startswith("error"))
            row(f"{label} clients", f"{int(k.get(good, 0))} ok, {int(errors)} errors ({kinds or 'none'})",
                k.get(good, 0) > 0)
        h = c("http")
        row("http clients", ", ".join(f"{key} {int(v)}" for key, v in sorted(h.items())
                                      if key.startswith(("status", "error"))) or "none",
            h.get("status 200", 0) > 0)
        row("Python behavior (soakpy)", f"{int(h.get('answered by the Python behavior', 0))} http answers "
                                        "of its own", h.get("answered by the Python behavior", 0) > 0)
        a = c("api")
        ms = a.get("api_ms", [])
        statuses = a.get("api_statuses", {})
        bad_status = {k: v for k, v in statuses.items() if not k.endswith((" 200", " 201", " 204"))}
        row("API calls", f"{len(ms)} calls in {int(a.get('ticks', 0))} ticks of 100 ms; "
                         f"p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
                         f"max {max(ms, default=0):.1f} ms (bound {API_BOUND_MS:.0f})",
            bool(ms) and max(ms) < API_BOUND_MS)
        row("API answers", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), not bad_status)
        for note in results.get("api", {}).get("notes", [])[:5]:
            lines.append(("", f"  {note}", ""))
        row("backend restarts (redis)", f"{self.restarts}, each {max(self.restart_ms, default=0):.0f} ms at most",
            self.restarts >= 1)
        panics = [line for line in log.splitlines() if "panic" in line.lower()]
        tracebacks = log.count("Traceback")
        row("vaurien alive to the end, exit status", f"{alive}, {exit_code}", alive and exit_code == 0)
        row("panics in vaurien's log", f"{len(panics)} ({len(log.splitlines())} lines, "
                                       f"{tracebacks} Python tracebacks)", not panics)
        row("RSS MiB baseline / peak / end",
            f"{baseline['rss_mib']:.1f} / {peak['rss_mib']:.1f} / {after['rss_mib']:.1f} "
            f"(end within +{RSS_TOLERANCE_MIB})",
            after["rss_mib"] <= baseline["rss_mib"] + RSS_TOLERANCE_MIB)
        q = self.rss_series or [0.0]
        row("RSS MiB at 1/4, 1/2, 3/4 of the run, its last second",
            ", ".join(f"{q[min(len(q) - 1, len(q) * i // 4)]:.1f}" for i in (1, 2, 3)) + f", {q[-1]:.1f}")
        row("fds (not pipes) baseline / peak / end",
            f"{baseline['fds']} / {peak['fds']} / {after['fds']} (end within +{FDS_TOLERANCE}; "
            f"{'back' if after['fds'] <= baseline['fds'] else 'still over'} after {settled:.1f} s)",
            after["fds"] <= baseline["fds"] + FDS_TOLERANCE)
        bound = self.pipes_bound(baseline)
        row("splice pipe fds baseline / peak / end",
            f"{baseline['pipes']} / {peak['pipes']} / {after['pipes']} (end within the pools' "
            f"bound, {bound})", after["pipes"] <= bound)
        row("threads baseline / peak / end", f"{baseline['threads']} / {peak['threads']} / {after['threads']}")

        width = max(len(w) for w, _, _ in lines)
        print(f"\nsoak: {self.seconds:.0f} s of load ({took:.0f} s in all), one vaurien process "
              f"(pid {self.vaurien.pid}, {self.workers} runtime workers), http backend {self.http_kind}, "
              f"load average {os.getloadavg()[0]:.1f}")
        for what, figure, verdict in lines:
            print(f"  {what:<{width}}  {verdict:<4}  {figure}")
        if panics:
            print("\n".join(panics[:10]))
        if failures:
            print("\nsoak FAILED:\n  " + "\n  ".join(failures))
            print("vaurien's descriptors at the end:\n  " + "\n  ".join(self.fds_at_end))
            print("vaurien's log (kept by soak.sh in target/soak-vaurien.log), its last lines:")
            print("\n".join(log.splitlines()[-30:]))
            return 1
        print("\nsoak passed")
        return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "vaurien":
        return run_vaurien(rest)
    if cmd == "echo":
        return run_echo(int(rest[0]))
    if cmd == "worker":
        return run_worker(rest[0], json.loads(rest[1]))
    if cmd == "run":
        # Ended from outside (soak.sh's time limit, Ctrl-C): stop everything on the way out.
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
        seconds = float(rest[0]) if rest else 600.0
        if len(rest) > 1:
            return Soak(seconds, Path(rest[1])).run()
        with tempfile.TemporaryDirectory(prefix="vaurien-soak-") as d:
            return Soak(seconds, Path(d)).run()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
