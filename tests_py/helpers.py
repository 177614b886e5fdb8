"""Shared helpers of the Python test-suite: free ports, waiting for a port, running the
`vaurien` binary. Real sockets only, loopback only."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Waits until something accepts on host:port (or raises)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"process exited with {proc.returncode}: {out}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _cargo_bin(name: str, env_var: str) -> str:
    """A binary of this repository: $ENV_VAR, else the cargo build, else PATH."""
    env = os.environ.get(env_var)
    if env:
        return env
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / name
        if p.exists():
            return str(p)
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"no {name} binary: run `cargo build` first or set {env_var}")


def vaurien_bin() -> str:
    """The vaurien binary under test: $VAURIEN_BIN, else the cargo build, else PATH."""
    return _cargo_bin("vaurien", "VAURIEN_BIN")


def toxiproxy_server_bin() -> str:
    """This repository's `toxiproxy-server`: $TOXIPROXY_SERVER_BIN, else the cargo build, else PATH."""
    return _cargo_bin("toxiproxy-server", "TOXIPROXY_SERVER_BIN")


@contextlib.contextmanager
def run_vaurien(
    args: Sequence[str], port: int | None = None, http_port: int | None = None, binary: str | None = None
) -> Iterator[subprocess.Popen]:
    """Runs `vaurien ARGS` (or `binary ARGS`) and waits for its proxy (and control API) ports;
    stops it after."""
    # The output goes to a file, not a pipe: nothing reads a pipe while the test runs, and a
    # chatty proxy (debug logs) would block on a full one. `proc.stderr.read()` gives it all
    # once the process is over (stdout and stderr both).
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [binary or vaurien_bin(), *args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    proc.stderr = _Output(proc, log)  # type: ignore[assignment]
    try:
        if port is not None:
            wait_port(port, proc=proc)
        if http_port is not None:
            wait_port(http_port, proc=proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


class _Output:
    """A finished process's output, read from its log file (as `Popen.stderr` was read)."""

    def __init__(self, proc: subprocess.Popen, log) -> None:
        self.proc, self.log = proc, log

    def read(self) -> bytes:
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        pass


def which_or_skip(name: str, *candidates: str) -> str:
    """The path of a server binary, looking in the usual Debian places too."""
    import pytest

    for c in (name, *candidates):
        p = shutil.which(c)
        if p:
            return p
        for d in ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"):
            if os.path.exists(os.path.join(d, c)):
                return os.path.join(d, c)
    if os.environ.get("CI"):
        raise RuntimeError(f"{name} is required in CI but was not found")
    pytest.skip(f"{name} is not installed")
    raise AssertionError  # unreachable


PYTHON = sys.executable
