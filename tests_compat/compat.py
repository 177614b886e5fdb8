"""The differential harness: run one scenario through the original Vaurien (1.9, Python 2.7,
installed by `scripts/setup_original.sh`) and through this vaurien, and compare what a client,
the backend and an operator observe.

An observation is plain data (bytes, strings, numbers) so that two of them compare with `==`
and a difference prints readably. What is observed:

- the bytes each client step received (normalised where the original is random: the 1000
  random bytes of `error`, the random 50x of http);
- how the connection ended: `eof`, `reset`, or `open` when it was still open at the step's
  time limit;
- a timing class per step: `now` (under 0.5 s) or the number of whole seconds it took, so that
  a 1 s delay and a 2 s `--timeout` are told apart, and noise is not;
- what reached the backend (every connection's bytes, in order);
- for a command line: accepted (listening) or refused (exit status non-zero), and for the API:
  status codes and JSON bodies.

Loopback only; every wait is bounded.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent


def original_venv() -> Optional[Path]:
    """The Python 2.7 virtualenv holding vaurien 1.9, or None when it is not set up."""
    env = os.environ.get("VAURIEN_ORIGINAL_VENV")
    venv = Path(env) if env else ROOT / ".venv-original"
    return venv if (venv / "bin" / "vaurien").exists() else None


def ours_command() -> List[str]:
    """How this vaurien is started: the installed package's `vaurien` command, in-process
    Python face (it loads ini `callable = ...` plugins), as a migrating user runs it."""
    env = os.environ.get("VAURIEN_COMPAT_OURS")
    if env:
        return env.split()
    return [sys.executable, "-m", "vaurien.run"]


@dataclasses.dataclass(frozen=True)
class Impl:
    name: str  # "original" or "ours"
    command: tuple  # argv prefix of the `vaurien` command
    python: str  # the interpreter that runs Python snippets against this implementation

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        # A user's PYTHONPATH would leak this project's Python 3 package into Python 2.
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        return env


def implementations() -> List[Impl]:
    venv = original_venv()
    out = []
    if venv is not None:
        out.append(Impl("original", (str(venv / "bin" / "vaurien"),), str(venv / "bin" / "python")))
    out.append(Impl("ours", tuple(ours_command()), sys.executable))
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_DEAD: List[socket.socket] = []


def dead_port() -> int:
    """A loopback port where nothing listens and nothing will: a socket of this process stays
    bound to it without listening (a connect is refused). A port that `free_port` gave back
    could be handed by the kernel to another worker's backend meanwhile, and a proxy pointed
    at "nowhere" would then open a connection that backend records."""
    if not _DEAD:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        _DEAD.append(s)
    return _DEAD[0].getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on the TCP port (read from /proc: a probe connection would
    reach the backend and show up in what it records)."""
    want = ":%04X" % port
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except FileNotFoundError:
            continue
    return False


# ---------------------------------------------------------------------------------------------
# Backends: small servers in threads of the test process that record what they receive.


class Backend:
    """A TCP server on a free loopback port; `conns` holds each connection's received bytes.

    `kind` picks what it does with a connection:
    - `echo`: sends back every chunk;
    - `greet`: sends `220 hello\\r\\n` first, then echoes;
    - `answer`: reads one chunk, answers `reply:<chunk>`, closes;
    - `answer_open`: answers each chunk with `reply:<chunk>` and stays open;
    - `stream`: reads one chunk, then sends 200 KB (a known pattern) and closes;
    - `silent`: reads, never answers;
    - `close`: closes at once;
    - `late_close`: answers the first chunk, waits 0.3 s, closes.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.conns: List[bytearray] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.threads: List[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = bytearray()
            with self.lock:
                self.conns.append(rec)
            t = threading.Thread(target=self._serve, args=(c, rec), daemon=True)
            t.start()
            self.threads.append(t)

    def _recv(self, c: socket.socket, rec: bytearray) -> bytes:
        while not self.stopping.is_set():
            try:
                data = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return b""
            with self.lock:
                rec.extend(data)
            return data
        return b""

    def _serve(self, c: socket.socket, rec: bytearray) -> None:
        c.settimeout(0.1)
        k = self.kind
        try:
            if k == "close":
                return
            if k == "greet":
                c.sendall(b"220 hello\r\n")
            if k in ("answer", "stream", "late_close"):
                data = self._recv(c, rec)
                if not data:
                    return
                if k == "stream":
                    c.sendall(STREAM)
                    return
                c.sendall(b"reply:" + data)
                if k == "late_close":
                    time.sleep(0.3)
                return
            while True:
                data = self._recv(c, rec)
                if not data:
                    return
                if k in ("echo", "greet"):
                    c.sendall(data)
                elif k == "answer_open":
                    c.sendall(b"reply:" + data)
        except OSError:
            pass
        finally:
            c.close()

    def received(self) -> List[bytes]:
        """Every connection's bytes, once the connections the proxy made are over (call it
        after the proxy stopped: a connection may still wait in the accept queue)."""
        time.sleep(0.3)
        for t in list(self.threads):
            t.join(2)
        with self.lock:
            return [bytes(r) for r in self.conns]

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()
        self.accepter.join(2)
        for t in self.threads:
            t.join(2)


STREAM = bytes(range(256)) * 800  # 200 KB


@contextlib.contextmanager
def backend(kind: str) -> Iterator[Backend]:
    b = Backend(kind)
    try:
        yield b
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# Running a proxy.


class Refused(RuntimeError):
    """The command exited instead of listening (bad flag, unknown behavior...)."""


@dataclasses.dataclass
class Running:
    impl: Impl
    proc: subprocess.Popen
    port: int
    http_port: Optional[int]
    log: Path


@contextlib.contextmanager
def proxy(
    impl: Impl,
    args: Sequence[str],
    backend_port: Optional[int] = None,
    http: bool = False,
    ini: Optional[str] = None,
    files: Optional[Dict[str, str]] = None,
    cwd: Optional[Path] = None,
    wait: float = 15.0,
) -> Iterator[Running]:
    """Starts `vaurien` of `impl` on a free port; `{port}`, `{backend}`, `{http_port}` and
    `{dir}` in `args`, `ini` and `files` are filled in. Yields once it listens (and its control
    API too when `http`); stops it after."""
    port = free_port()
    http_port = free_port() if http else None
    tmp = Path(tempfile.mkdtemp(prefix="vaurien-compat-"))
    subst = {"port": port, "backend": backend_port or dead_port(), "http_port": http_port, "dir": tmp}
    argv = [a.format(**subst) for a in args]
    for name, text in (files or {}).items():
        (tmp / name).write_text(text.format(**subst))
    if ini is not None:
        (tmp / "vaurien.ini").write_text(ini.format(**subst))
    if not any(a.startswith("--proxy") for a in argv) and ini is None:
        argv = ["--proxy", "127.0.0.1:%d" % port, *argv]
    if not any(a.startswith("--backend") for a in argv) and ini is None:
        argv = ["--backend", "127.0.0.1:%d" % subst["backend"], *argv]
    if http and "--http" not in argv:
        argv += ["--http", "--http-host", "127.0.0.1", "--http-port", str(http_port)]
    log = tmp / "log.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*impl.command, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(cwd or tmp),
            env=impl.env(),
        )
    try:
        deadline = time.monotonic() + wait
        while not (listening(port) and (http_port is None or listening(http_port))):
            if proc.poll() is not None:
                raise Refused("%s exited with %s: %s" % (impl.name, proc.returncode, log.read_text(errors="replace")))
            if time.monotonic() > deadline:
                raise TimeoutError("%s did not listen within %ss: %s" % (impl.name, wait, log.read_text(errors="replace")))
            time.sleep(0.02)
        yield Running(impl, proc, port, http_port, log)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_command(impl: Impl, args: Sequence[str], timeout: float = 3.0, cwd: Optional[Path] = None) -> Dict[str, Any]:
    """Runs `vaurien ARGS` that is expected to stop by itself (a refusal) or to start (then it
    is stopped after `timeout`): returns whether it was accepted, and its exit status class."""
    proc = subprocess.Popen(
        [*impl.command, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(cwd) if cwd else None,
        env=impl.env(),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return {"ran": "exited", "status": "ok" if proc.returncode == 0 else "error", "stdout": out, "stderr": err}
    except subprocess.TimeoutExpired:
        stop(proc)
        out, err = proc.communicate()
        return {"ran": "kept running", "status": None, "stdout": out, "stderr": err}


# ---------------------------------------------------------------------------------------------
# The client side: a conversation made of steps.


def timing(seconds: float) -> str:
    """`now` under 0.5 s, else the whole seconds it took (1 for 0.5-1.5 s, 2 for 1.5-2.5 s...)."""
    if seconds < 0.5:
        return "now"
    return "%ds" % int(seconds + 0.5)


def _read(sock: socket.socket, quiet: float, limit: float, want: Optional[int]) -> tuple:
    """Reads until `want` bytes arrived, the peer ended the connection, nothing came for
    `quiet` seconds after something came, or `limit` seconds passed."""
    data = bytearray()
    start = time.monotonic()
    end = "open"
    while True:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            break
        sock.settimeout(min(left, quiet) if data else left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            if data:
                break
            continue
        except ConnectionResetError:
            end = "reset"
            break
        except OSError as e:
            end = "reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else "error:%s" % e.errno
            break
        if not chunk:
            end = "eof"
            break
        data.extend(chunk)
        if want is not None and len(data) >= want:
            break
    return bytes(data), end, time.monotonic() - start


def converse(port: int, steps: Sequence[tuple], connect_timeout: float = 5.0) -> List[Any]:
    """Runs `steps` on one connection to 127.0.0.1:port; returns one result per step:

    - `("send", bytes)`: "sent", or the error once the connection is gone;
    - `("read", quiet, limit[, want])`: `[bytes, end, timing]` (end: open/eof/reset);
    - `("end", limit)`: how the connection ends within `limit` s, ignoring data: `[end, timing]`;
    - `("shut_wr",)`: half-close;
    - `("sleep", s)`.
    After a step saw the end of the connection, later reads return `[b"", <end>, "now"]`.
    """
    out: List[Any] = []
    # A connect may rarely fail with EPIPE/ECONNRESET on loopback (a race in the kernel with
    # a listener that closed a previous connection): try again, a few times.
    for attempt in range(3):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
            break
        except (BrokenPipeError, ConnectionResetError):
            if attempt == 2:
                raise
            time.sleep(0.05)
    ended: Optional[str] = None
    try:
        for step in steps:
            op = step[0]
            if op == "send":
                if ended:
                    out.append("gone")
                    continue
                try:
                    s.sendall(step[1])
                    out.append("sent")
                except OSError as e:
                    out.append("send failed: %s" % errno.errorcode.get(e.errno, e.errno))
            elif op == "read":
                if ended:
                    out.append([b"", ended, "now"])
                    continue
                want = step[3] if len(step) > 3 else None
                data, end, took = _read(s, step[1], step[2], want)
                if end != "open":
                    ended = end
                out.append([data, end, timing(took)])
            elif op == "end":
                if ended:
                    out.append([ended, "now"])
                    continue
                start = time.monotonic()
                end = "open"
                while time.monotonic() - start < step[1]:
                    _, end, _ = _read(s, 0.05, step[1] - (time.monotonic() - start), None)
                    if end != "open":
                        break
                ended = end if end != "open" else None
                out.append([end, timing(time.monotonic() - start)])
            elif op == "shut_wr":
                try:
                    s.shutdown(socket.SHUT_WR)
                    out.append("shut")
                except OSError:
                    out.append("gone")
            elif op == "sleep":
                time.sleep(step[1])
                out.append("slept")
            else:
                raise ValueError(op)
    finally:
        s.close()
    return out


# ---------------------------------------------------------------------------------------------
# Scenarios.


@dataclasses.dataclass
class Scenario:
    """One thing a user does, observed through both implementations.

    `run(impl)` returns the observation. `expect`, when set, is what this vaurien must give
    instead of the original's observation, with `why` saying which listed difference it is
    (an original bug in the reference, a deliberate departure, an entry of docs/differences.md,
    or a 2.0 change, where the reference wins over 1.9)."""

    id: str
    run: Callable[[Impl], Any]
    why: Optional[str] = None
    expect: Optional[Callable[[Any], Any]] = None  # original's observation -> ours expected
    v20: bool = False  # the difference is a change made in 2.0 (the reference wins)


def normalise_random(data: bytes) -> Any:
    """Bytes that are not printable text (the 1000 random bytes of `error`, or a real answer
    with 100 random bytes injected) become their length; text stays as it is."""
    if all(b in b"\t\r\n" or 32 <= b < 127 for b in data):
        return data
    return "<%d random bytes>" % len(data)


def http_shape(data: bytes) -> Any:
    """HTTP answers without their `Date:` headers; the random 50x page of `error` as its class."""
    if not data:
        return b""
    head = data.split(b"\n", 1)[0].strip()
    parts = head.split(b" ")
    if len(parts) > 1 and parts[1] in (b"500", b"501", b"502", b"503") and b"<title>" in data:
        return "random 50x error page"
    return re.sub(rb"Date: [^\r\n]*\r\n", b"", data)
