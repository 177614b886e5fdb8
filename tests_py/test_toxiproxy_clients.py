"""Third-party Toxiproxy clients drive vaurien: toxiproxy-python (PyPI `toxiproxy-python`,
import `toxiproxy`) and toxiproxy-node-client (npm, run by `tests_py/node/test.js`), each
against this repository's `toxiproxy-server` and `vaurien --http`, with real traffic through
the proxies they create. Loopback only, free ports chosen at run time."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import free_port, run_vaurien, toxiproxy_server_bin, wait_port

toxiproxy = pytest.importorskip("toxiproxy", reason="pip install toxiproxy-python")
from toxiproxy.exceptions import NotFound  # noqa: E402

NODE_DIR = Path(__file__).resolve().parent / "node"

BODY = b"0123456789" * 1000  # 10 kB, served by the http backend


@pytest.fixture
def backend(tmp_path):
    """`python -m http.server` serving `big.bin` (10 kB) and `hello.txt`."""
    (tmp_path / "big.bin").write_bytes(BODY)
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


@pytest.fixture(params=["toxiproxy-server", "vaurien"])
def api_port(request, backend):
    """A control server serving Toxiproxy's API: this repo's `toxiproxy-server`, or
    `vaurien --http` (which also runs its own proxy, named `vaurien`)."""
    port = free_port()
    if request.param == "toxiproxy-server":
        args = ["-host", "127.0.0.1", "-port", str(port)]
        with run_vaurien(args, http_port=port, binary=toxiproxy_server_bin()):
            yield port
    else:
        pport = free_port()
        args = [
            "--proxy", f"127.0.0.1:{pport}", "--backend", f"127.0.0.1:{backend}",
            "--http", "--http-host", "127.0.0.1", "--http-port", str(port),
        ]
        with run_vaurien(args, port=pport, http_port=port):
            yield port


@pytest.fixture
def server(api_port):
    """toxiproxy-python's server object, pointed at the control server."""
    t = toxiproxy.Toxiproxy()
    t.update_api_consumer("127.0.0.1", api_port)
    yield t


def fetch(port: int, path: str = "/hello.txt", timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read()


def raw_get(port: int, path: str, timeout: float = 10.0) -> bytes:
    """Sends a GET and reads until the proxy closes: what actually came through."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
        return out


def port_of(proxy) -> int:
    return int(proxy.listen.rsplit(":", 1)[1])


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


# -- toxiproxy-python ---------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_python_client_create_latency_remove(server, backend):
    assert server.running()
    assert b"version" in server.version()
    proxy = server.create(upstream=f"127.0.0.1:{backend}", name="web")
    assert proxy.enabled is True
    assert "web" in server.proxies()
    port = port_of(proxy)
    assert fetch(port) == b"hello vaurien\n"

    proxy.add_toxic(type="latency", attributes={"latency": 300})
    toxic = proxy.get_toxic("latency_downstream")
    assert toxic is not None
    assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1.0)
    assert toxic.attributes == {"latency": 300, "jitter": 0}
    t0 = time.monotonic()
    assert fetch(port) == b"hello vaurien\n"
    assert time.monotonic() - t0 >= 0.3

    assert proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    assert fetch(port) == b"hello vaurien\n"

    with pytest.raises(NotFound):
        proxy.destroy_toxic("latency_downstream")
    assert server.destroy(proxy)
    assert server.get_proxy("web") is None
    assert refused(port)


@pytest.mark.timeout(60)
def test_python_client_limit_data_and_timeout(server, backend):
    proxy = server.create(upstream=f"127.0.0.1:{backend}", name="web", listen="127.0.0.1:0")
    port = port_of(proxy)
    full = raw_get(port, "/big.bin")
    assert full.endswith(BODY)

    proxy.add_toxic(name="cut", type="limit_data", attributes={"bytes": 100})
    assert len(raw_get(port, "/big.bin")) == 100
    proxy.destroy_toxic("cut")
    assert raw_get(port, "/big.bin").endswith(BODY)

    # timeout: no data goes through, the connection is closed after `timeout` ms.
    proxy.add_toxic(name="t", type="timeout", stream="upstream", attributes={"timeout": 200})
    t0 = time.monotonic()
    assert raw_get(port, "/big.bin") == b""
    assert time.monotonic() - t0 >= 0.2
    proxy.destroy_toxic("t")
    assert raw_get(port, "/big.bin").endswith(BODY)


@pytest.mark.timeout(60)
def test_python_client_disable_enable_reset(server, backend):
    proxy = server.create(upstream=f"127.0.0.1:{backend}", name="web")
    port = port_of(proxy)
    with proxy.down():
        assert refused(port)
        assert server.get_proxy("web").enabled is False
    assert server.get_proxy("web").enabled is True
    assert fetch(port) == b"hello vaurien\n"

    proxy.add_toxic(name="slow", type="latency", stream="upstream", toxicity=1.0, attributes={"latency": 200})
    proxy.disable()
    assert refused(port)
    assert server.reset()
    again = server.get_proxy("web")
    assert again.enabled is True
    assert again.toxics() == {}
    t0 = time.monotonic()
    assert fetch(port) == b"hello vaurien\n"
    assert time.monotonic() - t0 < 5  # no latency left (generous bound)


@pytest.mark.timeout(60)
def test_python_client_populate_and_destroy_all(server, backend):
    listen_a, listen_b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    made = server.populate([
        {"name": "a", "upstream": f"127.0.0.1:{backend}", "listen": listen_a},
        {"name": "b", "upstream": f"127.0.0.1:{backend}", "listen": listen_b},
    ])
    assert sorted(p.name for p in made) == ["a", "b"]
    # Same entries again: the client compares and keeps them.
    assert server.populate([{"name": "a", "upstream": f"127.0.0.1:{backend}", "listen": listen_a}]) == []
    for listen in (listen_a, listen_b):
        assert fetch(int(listen.rsplit(":", 1)[1])) == b"hello vaurien\n"
    server.destroy_all()
    assert server.proxies() == {}


# -- toxiproxy-node-client ----------------------------------------------------------------

def npm_or_skip() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    if os.environ.get("CI"):
        raise RuntimeError("node and npm are required in CI (apt-get install nodejs npm)")
    pytest.skip("node/npm not installed: the toxiproxy-node-client test needs them")
    raise AssertionError  # unreachable


@pytest.fixture(scope="module")
def node_modules():
    node, npm = npm_or_skip()
    # Installs from the registry what package.json/package-lock.json pin (quick when present).
    subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    return node


@pytest.mark.timeout(400)
def test_node_client(node_modules, api_port, backend):
    r = subprocess.run(
        [node_modules, "test.js", str(api_port), str(backend)],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "ok" in r.stdout
