"""Fixtures that start real backends on free loopback ports, and stop them in teardown.

Servers that take a while to start (redis, memcached, MariaDB, the SMTP server) are started
once per session; tests use their own keys, databases and mailboxes. The custom HTTP server
runs in a thread of the test process (it needs no package); the others are subprocesses.
A missing server binary skips its tests outside CI and fails them in CI (`which_or_skip`).
"""
from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from helpers import free_port, wait_port, which_or_skip


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def http_backend(tmp_path):
    """`python -m http.server` on a free port, serving a directory with a known file."""
    (tmp_path / "hello.txt").write_bytes(b"hello vaurien\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield port
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[int]:
    """redis-server on a free port, without persistence."""
    binary = which_or_skip("redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, proc=proc)
            yield port
        finally:
            _stop(proc)


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[int]:
    """memcached on a free loopback port (TCP only)."""
    binary = which_or_skip("memcached")
    port = free_port()
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc=proc)
        yield port
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[int]:
    """MariaDB (or MySQL) with a fresh data directory, on a free port, with grant tables
    skipped (any user, no password)."""
    server = which_or_skip("mariadbd", "mysqld")
    install = which_or_skip("mariadb-install-db", "mysql_install_db")
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="vaurien-mariadb-"))
    datadir = base / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    try:
        subprocess.run(
            [install, f"--datadir={datadir}", "--auth-root-authentication-method=normal",
             "--skip-test-db", *user],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={datadir}", f"--port={port}",
             "--bind-address=127.0.0.1", f"--socket={base / 'sock'}", f"--pid-file={base / 'pid'}",
             f"--log-error={base / 'err.log'}", "--skip-grant-tables", "--skip-name-resolve",
             "--innodb-buffer-pool-size=16M", "--skip-log-bin", *user],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, proc=proc, timeout=60)
            yield port
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(base, ignore_errors=True)


_SMTP_HANDLER = textwrap.dedent(
    """
    import os, uuid

    class Save:
        \"\"\"Saves every message it accepts into $VAURIEN_MAILDIR.\"\"\"
        async def handle_DATA(self, server, session, envelope):
            d = os.environ["VAURIEN_MAILDIR"]
            with open(os.path.join(d, uuid.uuid4().hex + ".eml"), "wb") as f:
                f.write(envelope.original_content or envelope.content)
            return "250 OK saved"
    """
)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[int, Path]]:
    """aiosmtpd in a subprocess on a free port; yields (port, the folder it saves mail in)."""
    import importlib.util

    if importlib.util.find_spec("aiosmtpd") is None:
        if os.environ.get("CI"):
            raise RuntimeError("aiosmtpd is required in CI but is not installed")
        pytest.skip("aiosmtpd is not installed")
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="vaurien-smtp-"))
    maildir = base / "mail"
    maildir.mkdir()
    (base / "vaurien_smtp_handler.py").write_text(_SMTP_HANDLER)
    env = dict(os.environ, VAURIEN_MAILDIR=str(maildir), PYTHONPATH=str(base))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "vaurien_smtp_handler.Save"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_port(port, proc=proc)
        yield port, maildir
    finally:
        _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, chunked responses with trailers, 100-continue, HEAD, 204,
    304, a body read until close, and a WebSocket-like Upgrade that echoes raw bytes."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _send(self, code: int, body: bytes, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            parts = [b"hello ", b"chunked\r\n", b"world" * 1000]
            for p in parts:
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(p), p))
            digest = hashlib.sha256(b"".join(parts)).hexdigest()
            self.wfile.write(b"0\r\nX-Checksum: " + digest.encode() + b"\r\n\r\n")
        elif path == "/empty":
            self.send_response(204)
            self.end_headers()
        elif path == "/cached":
            self.send_response(304)
            self.send_header("ETag", '"x"')
            self.end_headers()
        elif path == "/close":
            # No length: the body runs until the server closes.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until close " * 100)
            self.close_connection = True
        elif path == "/headers":
            # The request's headers as the server got them, one per line.
            body = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode()
            self._send(200, body, {"Content-Type": "text/plain"})
        elif path.startswith("/big/"):
            n = int(path.split("/")[2])
            block = hashlib.sha256(b"vaurien").digest() * 32
            body = (block * (n // len(block) + 1))[:n]
            self._send(200, body, {"Content-Type": "application/octet-stream"})
        elif path == "/ws":
            if self.headers.get("Upgrade", "").lower() != "websocket":
                self._send(400, b"no upgrade")
                return
            # The 101 and the first frame in one write, as the original dropped.
            self.wfile.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nWELCOME\n"
            )
            self.wfile.flush()
            sock = self.connection
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                sock.sendall(data)
            self.close_connection = True
        else:
            body = f"{self.command} {path} host={self.headers.get('Host')}\n".encode()
            self._send(200, body, {"Content-Type": "text/plain"})

    def do_POST(self) -> None:
        body = self._read_body()
        digest = hashlib.sha256(body).hexdigest()
        self._send(200, f"{len(body)} {digest}".encode(), {"Content-Type": "text/plain"})

    do_PUT = do_POST


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="session")
def custom_http_server() -> Iterator[int]:
    """The custom HTTP/1.1 server above, in a thread, on a free port."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def wait_gone(port: int, timeout: float = 5.0) -> None:
    """Waits until nothing accepts on the port any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.05)
        except OSError:
            return
