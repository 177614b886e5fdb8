"""Helpers of the Python-package tests: small real backends on loopback, in threads."""
from __future__ import annotations

import socket
import threading
from typing import Callable, List, Optional


class Backend:
    """A TCP server on a free loopback port; `handler(conn)` serves each connection in a
    thread. Counts connections and records what it received."""

    def __init__(self, handler: Callable[["Backend", socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.received: List[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.port

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handler(self, conn)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def echo_once(backend: Backend, conn: socket.socket) -> None:
    """Reads one chunk, answers `echo:` + it, closes (what tcp without keep_alive expects)."""
    data = conn.recv(65536)
    with backend.lock:
        backend.received.append(data)
    if data:
        conn.sendall(b"echo:" + data)


def echo_lines(backend: Backend, conn: socket.socket, answer: bool = True) -> None:
    """Answers each line with `echo:` + the line (with `answer`), until the client closes."""
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            with backend.lock:
                backend.received.append(line)
            if answer:
                conn.sendall(b"echo:" + line + b"\n")


def swallow_lines(backend: Backend, conn: socket.socket) -> None:
    """Records each line and never answers, until the client closes."""
    echo_lines(backend, conn, answer=False)


def echo_raw(backend: Backend, conn: socket.socket) -> None:
    """Sends back every byte it gets, until the client closes."""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def exchange(port: int, payload: bytes = b"hello", timeout: float = 10.0, host: str = "127.0.0.1") -> bytes:
    """Sends `payload` through the proxy and reads until it closes. A reset counts as the end."""
    out = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except ConnectionResetError:
            pass
    return out


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server can listen on the port again (SO_REUSEADDR, as every server sets it:
    connections the proxy closed first may leave TIME_WAIT entries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
        return True


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def has_protocol(name: str) -> bool:
    from vaurien import _vaurien

    return any(k[0] == name for k in _vaurien.protocol_kinds())


__all__ = ["Backend", "echo_once", "echo_lines", "exchange", "port_is_free", "wait_until", "has_protocol", "Optional"]
