"""Fixtures that start real backends on free loopback ports (filled in by the protocol tests)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import free_port, wait_port


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
        proc.terminate()
        proc.wait(timeout=10)
