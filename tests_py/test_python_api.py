"""The original's Python API, run in-process: start_proxy/stop_proxy, the clients, the
original's scenarios (forwarding, blackout, abort, delay, http, config file), the console
scripts and the Proxy context manager."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

import pytest

from helpers import free_port, wait_port
from pyhelpers import Backend, echo_once, exchange, has_protocol, port_is_free

import vaurien
from vaurien import _vaurien
from vaurien.util import start_proxy, stop_proxy
from vaurienclient import Client


#: GET /behavior for the default mix.
DEFAULT = ("dummy",)


@pytest.fixture
def echo_backend():
    b = Backend(echo_once)
    yield b
    b.close()


@pytest.fixture
def proxy(echo_backend):
    """start_proxy as the original's users call it, on free ports; yields (pid, port, client)."""
    port, http_port = free_port(), free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=echo_backend.port, http_host="127.0.0.1", http_port=http_port)
    try:
        yield pid, port, Client(host="127.0.0.1", port=http_port)
    finally:
        stop_proxy(pid)


# -- start_proxy / stop_proxy -------------------------------------------------------------

def test_start_returns_fast_and_forwards(echo_backend):
    port, http_port = free_port(), free_port()
    t0 = time.monotonic()
    pid = start_proxy(proxy_port=port, backend_host="127.0.0.1", backend_port=echo_backend.port, http_port=http_port)
    took = time.monotonic() - t0
    try:
        assert isinstance(pid, int)
        assert took < 1.0, "start_proxy must not sleep `warmup`"
        assert exchange(port, b"abc", host="localhost") == b"echo:abc"
    finally:
        stop_proxy(pid)


def test_stop_frees_ports_and_unknown_id(echo_backend):
    port, http_port = free_port(), free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=echo_backend.port, http_host="127.0.0.1", http_port=http_port)
    assert not port_is_free(port)
    stop_proxy(pid)
    assert port_is_free(port) and port_is_free(http_port)
    with pytest.raises(ValueError, match="Not found"):
        stop_proxy(pid)
    with pytest.raises(ValueError, match="Not found"):
        stop_proxy(123456789)


def test_several_proxies_in_one_process(echo_backend):
    pids, ports = [], []
    try:
        for _ in range(3):
            port = free_port()
            pids.append(start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                                    backend_port=echo_backend.port, http=False))
            ports.append(port)
        assert len(set(pids)) == 3
        for i, port in enumerate(ports):
            assert exchange(port, b"n%d" % i) == b"echo:n%d" % i
    finally:
        for pid in pids:
            stop_proxy(pid)


def test_failures_raise_value_error_with_the_engine_message(echo_backend):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        with pytest.raises(ValueError, match="in use"):
            start_proxy(proxy_host="127.0.0.1", proxy_port=taken, backend_port=echo_backend.port, http=False)
    with pytest.raises(ValueError, match="percentage:name"):
        start_proxy(proxy_port=free_port(), http=False, options=["--behavior", "delay"])
    with pytest.raises(ValueError, match="does not exist|unknown|known"):
        start_proxy(proxy_port=free_port(), http=False, options=["--behavior", "100:nosuch"])
    with pytest.raises(ValueError, match="unexpected argument|--no-such-flag"):
        start_proxy(proxy_port=free_port(), http=False, options=["--no-such-flag"])
    with pytest.raises(ValueError):
        start_proxy(proxy_port=free_port(), http=False, protocol="nosuchprotocol")
    assert _vaurien.running() == [] or all(isinstance(i, int) for i in _vaurien.running())


# -- the original's scenarios ------------------------------------------------------------

def test_blackout(proxy):
    pid, port, client = proxy
    with client.with_behavior("blackout"):
        assert exchange(port, b"x") == b""
    assert exchange(port, b"y") == b"echo:y"


def test_abort(proxy, echo_backend):
    pid, port, client = proxy
    with client.with_behavior("abort"):
        assert exchange(port, b"x") == b""
    # The request reached the backend (its thread may record it a moment after the reset).
    deadline = time.monotonic() + 5
    while b"x" not in echo_backend.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"x" in echo_backend.received


def test_delay_lower_bound(proxy):
    pid, port, client = proxy
    with client.with_behavior("delay", sleep=0.5):
        t0 = time.monotonic()
        assert exchange(port, b"slow") == b"echo:slow"
        assert time.monotonic() - t0 >= 0.5
    t0 = time.monotonic()
    exchange(port, b"fast")
    assert time.monotonic() - t0 < 0.5


def test_error_sends_garbage_on_tcp(proxy):
    pid, port, client = proxy
    with client.with_behavior("error"):
        out = exchange(port, b"x")
    assert out != b"echo:x" and len(out) == 1000


def test_options_flags_reach_builtins(echo_backend):
    port = free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=echo_backend.port, http=False,
                      options=["--behavior", "100:delay", "--behavior-delay-sleep", "0.3"])
    try:
        t0 = time.monotonic()
        assert exchange(port, b"a") == b"echo:a"
        assert time.monotonic() - t0 >= 0.3
    finally:
        stop_proxy(pid)


def test_http_through_tcp(http_backend):
    port = free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=http_backend, http=False)
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/hello.txt" % port, timeout=10) as r:
            assert r.read() == b"hello vaurien\n"
    finally:
        stop_proxy(pid)


@pytest.mark.skipif(not has_protocol("http"), reason="the http protocol has not landed yet")
def test_http_protocol(http_backend):
    port, http_port = free_port(), free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=http_backend, protocol="http", http_host="127.0.0.1", http_port=http_port)
    try:
        url = "http://127.0.0.1:%d/hello.txt" % port
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.read() == b"hello vaurien\n"
        client = Client(host="127.0.0.1", port=http_port)
        with client.with_behavior("error"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(url, timeout=10)
            assert e.value.code in (500, 501, 502, 503)
            e.value.close()
    finally:
        stop_proxy(pid)


def test_config_file(echo_backend, tmp_path):
    port = free_port()
    ini = tmp_path / "vaurien.ini"
    ini.write_text(
        "[vaurien]\nbackend = 127.0.0.1:%d\nproxy = 127.0.0.1:%d\nbehavior = 100:delay\n\n"
        "[behavior:delay]\nsleep = 0.3\n" % (echo_backend.port, port)
    )
    pid = _vaurien.start(["--config", str(ini)])
    try:
        t0 = time.monotonic()
        assert exchange(port, b"ini") == b"echo:ini"
        assert time.monotonic() - t0 >= 0.3
    finally:
        stop_proxy(pid)


# -- clients -----------------------------------------------------------------------------

def test_client_api(proxy):
    pid, port, client = proxy
    assert client.get_behavior() in DEFAULT
    names = client.list_behaviors()
    for n in ["abort", "blackout", "delay", "dummy", "error", "hang", "transient"]:
        assert n in names
    client.set_behavior("delay", sleep=0.1)
    assert client.get_behavior() == "delay"
    with pytest.raises(ValueError, match="the 'nosuch' behavior does not exist"):
        client.set_behavior("nosuch")
    assert client.get_behavior() == "delay"
    backend = client.get_backend()
    assert backend.endswith(":%d" % port) is False and ":" in backend
    client.set_backend(backend)
    assert vaurien.Client is Client


def test_with_behavior_restores_even_when_the_block_raises(proxy):
    pid, port, client = proxy
    client.set_behavior("50:delay,10:blackout")
    with pytest.raises(RuntimeError):
        with client.with_behavior("blackout"):
            assert client.get_behavior() == "blackout"
            raise RuntimeError("boom")
    assert client.get_behavior() == "50:delay,10:blackout"


def test_vaurienctl(proxy, capsys):
    import vaurienclient

    pid, port, client = proxy
    host = "--host=http://127.0.0.1:%d" % client.port
    assert vaurienclient.main(["list-behaviors", host]) == 0
    assert "blackout" in capsys.readouterr().out
    assert vaurienclient.main(["set-behavior", "delay", host, "--sleep", "0.2"]) == 0
    assert 'Behavior changed to "delay"' in capsys.readouterr().out
    assert vaurienclient.main(["get-behavior", host]) == 0
    assert capsys.readouterr().out.strip() == "delay"
    assert vaurienclient.main(["set-behavior", "nosuch", host]) == 1
    assert "Please use one of" in capsys.readouterr().out
    # A bad option of a known behavior: the error lists that behavior's options, not the
    # behaviors.
    assert vaurienclient.main(["set-behavior", "bandwidth", host, "--rate", "0"]) == 1
    out = capsys.readouterr().out
    assert "the options of bandwidth: rate (int)" in out and "Please use one of" not in out, out
    # --version, and a bad --host: one line and status 2, no traceback.
    with pytest.raises(SystemExit) as e:
        vaurienclient.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == "vaurienctl " + vaurienclient.__version__
    for bad in ("http://127.0.0.1:99999", "http://127.0.0.1:port", "ftp://x:1", "http://:80"):
        with pytest.raises(SystemExit) as e:
            vaurienclient.main(["get-behavior", "--host", bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "--host" in err and "Traceback" not in err, (bad, err)


class TestAsTheOriginalDocsShow(unittest.TestCase):
    """The original Vaurien README's unittest example, unchanged but for the ports."""

    def setUp(self):
        self.backend = Backend(echo_once)
        self.port, self.http_port = free_port(), free_port()
        self.proxy_pid = start_proxy(proxy_port=self.port, backend_host="127.0.0.1", backend_port=self.backend.port,
                                     protocol="tcp", http_port=self.http_port)

    def tearDown(self):
        stop_proxy(self.proxy_pid)
        self.backend.close()

    def test_one(self):
        client = Client(host="localhost", port=self.http_port)
        with client.with_behavior("error"):
            self.assertNotEqual(exchange(self.port, b"q", host="localhost"), b"echo:q")
        self.assertEqual(exchange(self.port, b"q", host="localhost"), b"echo:q")


# -- the Proxy context manager -----------------------------------------------------------

def test_proxy_context_manager(echo_backend):
    with vaurien.Proxy(backend=echo_backend.address) as p:
        assert p.port and p.host == "127.0.0.1" and p.address == "127.0.0.1:%d" % p.port
        assert exchange(p.port, b"cm") == b"echo:cm"
        with p.behavior("blackout"):
            assert exchange(p.port, b"cm") == b""
        assert p.get_behavior() in DEFAULT
        assert p.client.get_behavior() in DEFAULT
        port = p.port
    assert port_is_free(port)
    # The same port again, at once.
    with vaurien.Proxy(backend=echo_backend.address, proxy="127.0.0.1:%d" % port, http=False) as again:
        assert exchange(again.port, b"again") == b"echo:again"


def test_proxy_without_http(echo_backend):
    with vaurien.Proxy(backend=("127.0.0.1", echo_backend.port), http=False, behavior="100:blackout") as p:
        assert exchange(p.port, b"x") == b""
        with pytest.raises(ValueError):
            p.client


# -- the console scripts -----------------------------------------------------------------

def _default_sigint() -> None:
    # A suite started in the background by a shell script inherits SIGINT ignored, and Python
    # keeps an ignored SIGINT ignored: give the child the disposition a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_module(args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "vaurien.run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, preexec_fn=_default_sigint)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_vaurien_run_stops_on_signals(echo_backend, sig):
    port, http_port = free_port(), free_port()
    proc = _run_module(["--proxy", "127.0.0.1:%d" % port, "--backend", echo_backend.address,
                        "--http", "--http-host", "127.0.0.1", "--http-port", str(http_port)])
    try:
        wait_port(port, proc=proc)
        wait_port(http_port, proc=proc)
        assert exchange(port, b"cli") == b"echo:cli"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        err = proc.stderr.read().decode()
        assert "vaurien is running" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_vaurien_run_bad_input_exits_2():
    proc = subprocess.run([sys.executable, "-m", "vaurien.run", "--behavior", "delay"], capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"percentage:name" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "vaurien.run", "--version"], capture_output=True, timeout=30)
    assert proc.returncode == 0 and vaurien.__version__.encode() in proc.stdout


def test_log_output_file_gets_the_proxys_lines(echo_backend, tmp_path):
    log = tmp_path / "vaurien.log"
    port = free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=echo_backend.port, http=False, log_level="info", log_output=str(log))
    try:
        assert exchange(port, b"x") == b"echo:x"
    finally:
        stop_proxy(pid)
    text = log.read_text()
    # From the first line on (the handler is there before the proxy starts).
    assert "listening" in text and "127.0.0.1:%d" % port in text, text


def test_a_change_from_python_is_logged_with_what_and_who(echo_backend, tmp_path):
    log = tmp_path / "vaurien.log"
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=free_port(), backend_host="127.0.0.1",
                      backend_port=echo_backend.port, http=False, log_level="info", log_output=str(log))
    try:
        _vaurien.set_behavior(pid, "delay", {"sleep": 0.2})
        deadline = time.monotonic() + 10
        while "behavior set to delay" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_proxy(pid)
    lines = [line for line in log.read_text().splitlines() if "behavior set to delay" in line]
    assert lines, log.read_text()
    assert "by=Python" in lines[0] and "proxy=vaurien" in lines[0] and "sleep" in lines[0], lines[0]
