"""Every module of the original Vaurien imports, with the names its users subclass, call or
read; the Python forms of the built-ins work as base classes through a real proxy; editing
``vaurien.behaviors.error``'s tables changes what the engine's ``error`` answers."""
from __future__ import annotations

import argparse
import http.client
import importlib
import inspect
import logging
import os
import re
import socket
import threading
import time

import pytest

from pyhelpers import Backend, echo_once, exchange, wait_until

import vaurien
from vaurien import _vaurien
from vaurien.behaviors import Behavior, get_behaviors
from vaurien.behaviors import error as error_module
from vaurien.behaviors.delay import Delay
from vaurien.behaviors.dummy import Dummy
from vaurien.behaviors.error import Error
from vaurien.protocols import Protocol, get_protocols
from vaurien.protocols.http import Http
from vaurien.protocols.memcache import Memcache
from vaurien.protocols.redis import Redis
from vaurien.protocols.tcp import TCP

pytestmark = pytest.mark.timeout(60)

MODULES = {
    "vaurien": ["Client", "start_proxy", "stop_proxy", "logger", "__version__"],
    "vaurien.behaviors": ["Behavior", "get_behaviors", "get_behavior"],
    "vaurien.behaviors.abort": ["Abort"],
    "vaurien.behaviors.blackout": ["Blackout"],
    "vaurien.behaviors.delay": ["Delay"],
    "vaurien.behaviors.dummy": ["Dummy"],
    "vaurien.behaviors.error": ["Error", "_ERRORS", "_ERROR_CODES", "_TMP", "random_http_error", "get_data"],
    "vaurien.behaviors.hang": ["Hang", "get_data"],
    "vaurien.behaviors.transient": ["Transient"],
    "vaurien.protocols": ["Protocol", "get_protocols", "get_protocol"],
    "vaurien.protocols.base": ["BaseProtocol", "get_data"],
    "vaurien.protocols.http": ["Http", "HOST_REPLACE", "CRLF"],
    "vaurien.protocols.memcache": ["Memcache", "RE_LEN", "RE_KEEPALIVE", "RE_MEMCACHE_COMMAND", "EOH", "CRLF"],
    "vaurien.protocols.mysql": ["MySql"],
    "vaurien.protocols.redis": ["Redis", "RE_LEN", "RE_KEEPALIVE", "RE_MEMCACHE_COMMAND", "EOH", "CRLF"],
    "vaurien.protocols.smtp": ["SMTP"],
    "vaurien.protocols.tcp": ["TCP", "RE_LEN", "RE_KEEPALIVE", "RE_MEMCACHE_COMMAND", "EOH", "CRLF"],
    "vaurien.util": [
        "start_proxy", "stop_proxy", "get_data", "import_string", "ImportStringError", "parse_address",
        "get_prefixed_sections", "extract_settings", "chunked",
    ],
    "vaurien.run": [
        "main", "LOG_LEVELS", "LOG_FMT", "LOG_DATE_FMT", "configure_logger", "build_args",
        "get_statsd_from_settings",
    ],
    "vaurien.config": ["Config", "SettingsDict", "DEFAULT_SETTINGS", "load_into_settings", "convert"],
    "vaurien.proxy": ["DefaultProxy", "RandomProxy", "OnTheFlyProxy"],
    "vaurien.client": ["Client"],
    "vaurienclient": ["Client", "main"],  # the vaurienclient 1.x distribution's, now clients/vaurienclient
}

ORIGINAL_BEHAVIORS = {"abort", "blackout", "delay", "dummy", "error", "hang", "transient"}
ORIGINAL_PROTOCOLS = {"http": "Http", "memcache": "Memcache", "mysql": "MySql", "redis": "Redis",
                      "smtp": "SMTP", "tcp": "TCP"}
HTTP_GET = b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports_with_its_names(module):
    mod = importlib.import_module(module)
    missing = [name for name in MODULES[module] if not hasattr(mod, name)]
    assert missing == []


def test_the_tables_are_the_originals():
    assert sorted(error_module._ERRORS) == [500, 501, 502, 503]
    assert sorted(error_module._ERROR_CODES) == [500, 501, 502, 503]
    assert error_module._ERRORS[503][0] == "Service Unavailable"
    page = error_module.random_http_error()
    code = int(page.split()[1])
    assert page.startswith("HTTP/1.1 %d %s\n" % (code, error_module._ERRORS[code][0]))
    assert error_module._ERRORS[code][1] in page
    assert Error.options["warmup"][1:] == (int, 0) and Error.options["inject"][1:] == (bool, False)
    assert Delay.options["sleep"][1:] == (float, 1) and Delay.options["before"][1:] == (bool, True)
    from vaurien.behaviors.transient import Transient
    assert set(Transient.options) == {"agitate", "inject", "warmup"}
    from vaurien.protocols.base import BaseProtocol
    assert BaseProtocol.options["buffer"][1:] == (int, 8124)
    from vaurien.protocols.smtp import SMTP
    assert "keep_alive" not in SMTP.options and SMTP().option("keep_alive") is True


def test_registries_list_the_python_forms_of_the_builtins():
    behaviors = get_behaviors()
    assert ORIGINAL_BEHAVIORS <= set(behaviors)
    for name in ORIGINAL_BEHAVIORS:
        assert type(behaviors[name]).__module__ == "vaurien.behaviors." + name
        assert isinstance(behaviors[name], Behavior)
    protocols = get_protocols()
    for name, cls in ORIGINAL_PROTOCOLS.items():
        assert type(protocols[name]).__name__ == cls
        assert isinstance(protocols[name], Protocol)
    # Importing the modules registered nothing in the engine: the built-ins are still native.
    origins = {k[0]: k[2] for k in _vaurien.behavior_kinds()}
    assert all(origins[name] == "vaurien" for name in ORIGINAL_BEHAVIORS)


# -- error's tables reach the engine ----------------------------------------------------------

@pytest.fixture
def pristine_tables():
    errors, _codes, tmp = error_module._PRISTINE
    yield
    error_module._ERRORS = error_module._Table(errors)
    error_module._ERROR_CODES = error_module._ERRORS.keys()
    error_module._TMP = tmp
    assert error_module._table() is None


def _pages(http_port, n, proxy):
    out = []
    for _ in range(n):
        out.append(exchange(proxy.port, HTTP_GET))
    return out


def test_the_engines_default_page_is_the_python_table_rendered(http_backend, pristine_tables):
    expected = {error_module.http_response(error_module._render(c)) for c in (500, 501, 502, 503)}
    with vaurien.Proxy(backend=("127.0.0.1", http_backend), protocol="http", behavior="100:error", http=False) as p:
        pages = _pages(http_backend, 12, p)
    assert set(pages) <= expected
    assert len(set(pages)) > 1  # picked at random
    head, _, body = pages[0].partition(b"\r\n\r\n")
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert int(re.search(rb"Content-Length: (\d+)", head).group(1)) == len(body)


def test_editing_errors_changes_the_engines_error(http_backend, pristine_tables):
    with vaurien.Proxy(backend=("127.0.0.1", http_backend), protocol="http", behavior="100:error", http=False) as p:
        # only 503, on a running proxy
        for code in (500, 501, 502):
            del error_module._ERRORS[code]
        pages = _pages(http_backend, 6, p)
        assert all(page.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") for page in pages)
        assert b"<h1>Service Unavailable</h1>" in pages[0]

        # a new table: _ERROR_CODES follows it, as the keys of the old one did
        error_module._ERRORS = {418: ("I'm a teapot", "<p>short and stout</p>")}
        assert list(error_module._ERROR_CODES) == [418]
        page = exchange(p.port, HTTP_GET)
        assert page.startswith(b"HTTP/1.1 418 I'm a teapot\r\n")
        assert page.endswith(b"<p>short and stout</p>\r\n")

        # the template
        error_module._TMP = "HTTP/1.1 %(code)s %(name)s\nX-Chaos: yes\n\n%(name)s!\n"
        page = exchange(p.port, HTTP_GET)
        assert page == b"HTTP/1.1 418 I'm a teapot\r\nX-Chaos: yes\r\nContent-Length: 15\r\n\r\nI'm a teapot!\r\n"

        # the codes picked from
        error_module._ERRORS[429] = ("Too Many Requests", "")
        error_module._ERROR_CODES = [429]
        assert exchange(p.port, HTTP_GET).startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        assert error_module.random_http_error().startswith("HTTP/1.1 429 ")


def test_a_plain_dict_edited_after_assignment_counts_at_start(http_backend, pristine_tables):
    table = {}
    error_module._ERRORS = table
    table[502] = ("Bad Gateway", "<p>late edit</p>")  # not seen yet: a plain dict
    with vaurien.Proxy(backend=("127.0.0.1", http_backend), protocol="http", behavior="100:error", http=False) as p:
        assert b"<p>late edit</p>" in exchange(p.port, HTTP_GET)


def test_transient_uses_the_table_too(http_backend, pristine_tables):
    error_module._ERROR_CODES = [501]
    with vaurien.Proxy(backend=("127.0.0.1", http_backend), protocol="http", http=False,
                       behavior="100:transient", options=["--behavior-transient-agitate", "2"]) as p:
        pages = _pages(http_backend, 3, p)
    assert [page[:12] for page in pages] == [b"HTTP/1.1 501", b"HTTP/1.1 501", b"HTTP/1.0 200"]


# -- subclasses of the Python forms, registered, through a real proxy ------------------------

class CountedError(Error):
    """Error, counting the exchanges it sees."""

    name = "py_counted_error"
    seen = []

    def on_before_handle(self, protocol, source, dest, to_backend):
        CountedError.seen.append(protocol.name)
        return super().on_before_handle(protocol, source, dest, to_backend)


class GarbageError(Error):
    """Error with nothing overridden but its name."""

    name = "py_garbage_error"


class LateDelay(Delay):
    """Delay that records its after hook."""

    name = "py_late_delay"
    after = []

    def on_after_handle(self, protocol, source, dest, to_backend):
        LateDelay.after.append(time.monotonic())
        return super().on_after_handle(protocol, source, dest, to_backend)


class Tally(Dummy):
    """Counts the exchanges; transparent."""

    name = "py_tally"
    count = 0

    def on_before_handle(self, protocol, source, dest, to_backend):
        Tally.count += 1
        return super().on_before_handle(protocol, source, dest, to_backend)


for _cls in (CountedError, GarbageError, LateDelay, Tally):
    Behavior.register(_cls)


@pytest.fixture
def echo():
    b = Backend(echo_once)
    yield b
    b.close()


def test_error_subclass_inherits_warmup_and_the_http_page(http_backend, pristine_tables):
    CountedError.seen.clear()
    error_module._ERROR_CODES = [502]  # the Python form reads the same tables
    with vaurien.Proxy(backend=("127.0.0.1", http_backend), protocol="http", http=False,
                       behavior="100:py_counted_error", options=["--behavior-py-counted-error-warmup", "1"]) as p:
        first = exchange(p.port, HTTP_GET)
        second = exchange(p.port, HTTP_GET)
    assert first.startswith(b"HTTP/1.0 200") and first.endswith(b"hello vaurien\n")
    head, _, body = second.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert int(re.search(rb"Content-Length: (\d+)", head).group(1)) == len(body)
    assert CountedError.seen == ["http", "http"]


def test_error_subclass_on_tcp_sends_garbage_after_the_request_reached_the_backend(echo):
    with vaurien.Proxy(backend=echo.address, behavior="100:py_garbage_error", http=False) as p:
        out = exchange(p.port, b"hello")
        assert wait_until(lambda: echo.received == [b"hello"])
        assert len(out) == 1000 and not out.startswith(b"echo:")
        p.set_behavior("py_garbage_error", inject=True)
        out = exchange(p.port, b"again")
    answer = b"echo:again"
    assert len(out) == len(answer) + 100
    assert out.startswith(answer[:5]) and out.endswith(answer[5:])


def test_delay_subclass_sleeps_after_with_its_options(echo):
    LateDelay.after.clear()
    with vaurien.Proxy(backend=echo.address, behavior="100:py_late_delay", http=False) as p:
        p.set_behavior("py_late_delay", sleep=0.4, before=False)
        t0 = time.monotonic()
        assert exchange(p.port, b"slow") == b"echo:slow"
        took = time.monotonic() - t0
        p.set_behavior("py_late_delay", sleep=0.4)  # before (the default): sleeps first
        t1 = time.monotonic()
        assert exchange(p.port, b"slow") == b"echo:slow"
        took_before = time.monotonic() - t1
    assert took >= 0.4 and took_before >= 0.4
    assert len(LateDelay.after) == 2


def test_dummy_subclass_is_transparent(echo):
    Tally.count = 0
    with vaurien.Proxy(backend=echo.address, behavior="100:py_tally", http=False) as p:
        assert [exchange(p.port, b"x%d" % i) for i in range(3)] == [b"echo:x0", b"echo:x1", b"echo:x2"]
    assert Tally.count == 3


def test_blackout_and_abort_forms_close_the_connection(echo):
    from vaurien.behaviors.abort import Abort
    from vaurien.behaviors.blackout import Blackout

    Behavior.register(type("PyBlackout", (Blackout,), {"name": "py_blackout"}))
    Behavior.register(type("PyAbort", (Abort,), {"name": "py_abort"}))
    with vaurien.Proxy(backend=echo.address, behavior="100:py_blackout", http=False) as p:
        assert exchange(p.port, b"lost") == b""
        p.set_behavior("py_abort")
        assert exchange(p.port, b"sent") == b""
        assert wait_until(lambda: b"sent" in echo.received)
    assert b"lost" not in echo.received


def test_hang_form_holds_the_client_until_the_timeout(echo):
    from vaurien.behaviors.hang import Hang

    Behavior.register(type("PyHang", (Hang,), {"name": "py_hang"}))
    with vaurien.Proxy(backend=echo.address, behavior="100:py_hang", http=False, options=["--timeout", "1"]) as p:
        t0 = time.monotonic()
        assert exchange(p.port, b"anyone?") == b""
        assert 0.9 <= time.monotonic() - t0 < 10
    assert b"anyone?" not in echo.received


# -- subclasses of the protocols ---------------------------------------------------------------

class LoggedTCP(TCP):
    """tcp, recording each request."""

    name = "py_logged_tcp"
    requests = []

    def _handle(self, source, dest, to_backend, on_between_handle):
        LoggedTCP.requests.append(to_backend)
        return super()._handle(source, dest, to_backend, on_between_handle)


class PyRedis(Redis):
    """The Python form of redis."""

    name = "py_redis"


class PyMemcache(Memcache):
    """The Python form of memcache."""

    name = "py_memcache"


class PyHttp(Http):
    """The Python form of http."""

    name = "py_http"


for _cls in (LoggedTCP, PyRedis, PyMemcache, PyHttp):
    Protocol.register(_cls)


def test_tcp_subclass(echo):
    LoggedTCP.requests.clear()
    with vaurien.Proxy(backend=echo.address, protocol="py_logged_tcp", http=False) as p:
        assert exchange(p.port, b"one") == b"echo:one"
        assert exchange(p.port, b"two") == b"echo:two"
    assert LoggedTCP.requests == [True, True]


def test_redis_form_with_real_redis(redis_server):
    redis = pytest.importorskip("redis")
    with vaurien.Proxy(backend=("127.0.0.1", redis_server), protocol="py_redis", http=False,
                       options=["--stay-connected"]) as p:
        r = redis.Redis("127.0.0.1", p.port, socket_timeout=10, protocol=2)
        assert r.ping()
        value = b"bin\r\nary\x00" * 1000
        r.set("pycompat:k", value)
        assert r.get("pycompat:k") == value
        assert r.get("pycompat:missing") is None
        r.delete("pycompat:l")
        r.rpush("pycompat:l", "a", "b", "c")
        assert r.lrange("pycompat:l", 0, -1) == [b"a", b"b", b"c"]
        pipe = r.pipeline(transaction=False)
        pipe.incr("pycompat:n").incr("pycompat:n").get("pycompat:k")
        assert pipe.execute()[2] == value


def test_memcache_form_with_real_memcached(memcached_server):
    pymemcache = pytest.importorskip("pymemcache.client.base")
    with vaurien.Proxy(backend=("127.0.0.1", memcached_server), protocol="py_memcache", http=False,
                       options=["--stay-connected"]) as p:
        c = pymemcache.Client(("127.0.0.1", p.port), timeout=10, connect_timeout=10)
        c.set("pycompat", b"x" * 20000, noreply=False)
        c.set("pycompat-quiet", b"q")  # noreply (pymemcache's default)
        assert c.get("pycompat") == b"x" * 20000
        assert c.get_many(["pycompat", "pycompat-quiet", "nope"]) == {"pycompat": b"x" * 20000, "pycompat-quiet": b"q"}
        c.close()


def test_http_form_with_a_real_http_server(http_backend):
    with vaurien.Proxy(backend=("127.0.0.1", http_backend), protocol="py_http", http=False) as p:
        for method, body in (("GET", b"hello vaurien\n"), ("HEAD", b"")):
            conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            conn.request(method, "/hello.txt")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == body
            conn.close()


# -- config, util, run -------------------------------------------------------------------------

def test_config_reads_an_ini_with_the_originals_typing(tmp_path, monkeypatch):
    from vaurien.config import DEFAULT_SETTINGS, Config, SettingsDict, load_into_settings

    monkeypatch.setenv("PYCOMPAT_BACKEND", "example.org:80")
    (tmp_path / "base.ini").write_text("[vaurien]\nbacklog = 12\nbehavior = 50:hang\n[extra]\nkey = value\n")
    ini = tmp_path / "vaurien.ini"
    ini.write_text(
        "[DEFAULT]\nextends = %s\n\n"
        "[vaurien]\nbackend = ${PYCOMPAT_BACKEND}\nproxy = localhost:8000   ; inline comment\n"
        "behavior = 20:delay\nstay_connected = true\ntimeout = -5\nquoted = \"007\"\nlist =\n    one\n    2\n\n"
        "[behavior:delay]\nsleep = 2\nbefore = false\n" % (tmp_path / "base.ini")
    )
    c = Config(str(ini))
    assert c.get("vaurien", "backend") == "example.org:80"
    assert c.get("vaurien", "proxy") == "localhost:8000"
    assert c.get("vaurien", "stay_connected") is True
    assert c.get("vaurien", "timeout") == -5
    assert c.get("vaurien", "quoted") == "007"
    assert c.get("vaurien", "list") == ["one", 2]
    assert c.mget("vaurien", "timeout") == [-5]
    assert c.get("vaurien", "behavior") == "20:delay"  # the file's own value wins over extends
    assert c.get("vaurien", "backlog") == 12 and c.get("extra", "key") == "value"
    assert c.get_map("behavior:delay") == {"extends": str(tmp_path / "base.ini"), "sleep": 2, "before": False}
    c.set("vaurien", "flag", False)
    assert c.get("vaurien", "flag") is False

    settings = DEFAULT_SETTINGS.copy()
    assert isinstance(settings, SettingsDict)
    load_into_settings(str(ini), settings)
    assert settings["vaurien.backend"] == "example.org:80" and settings["vaurien.bufsize"] == 8192
    assert settings.getsection("behavior.delay")["sleep"] == 2
    assert "behavior.delay" in settings.sections()
    assert isinstance(settings["config"], Config)
    with pytest.raises(ValueError, match="Unexistant filename"):
        load_into_settings(str(tmp_path / "nope.ini"), {})
    monkeypatch.delenv("PYCOMPAT_BACKEND")
    with pytest.raises(KeyError, match="PYCOMPAT_BACKEND"):
        Config(str(ini)).get("vaurien", "backend")


def test_the_settings_defaults_python_reads_from_the_engine_are_the_originals():
    """DEFAULT_SETTINGS and start_proxy's defaults come from the engine's settings table: they
    are still the original's, types included (``timeout`` an int, ``statsd.host`` localhost)."""
    from vaurien.config import DEFAULT_SETTINGS
    from vaurien.util import start_proxy

    original = {
        "vaurien.proxy": "localhost:8000", "vaurien.backend": "localhost:80", "vaurien.behavior": "100:dummy",
        "vaurien.bufsize": 8192, "vaurien.timeout": 30, "vaurien.stay_connected": False,
        "vaurien.pool_max_size": 100, "vaurien.pool_timeout": 30, "vaurien.sync": False, "vaurien.backlog": 8192,
        "statsd.enabled": False, "statsd.host": "localhost", "statsd.port": 8125, "statsd.prefix": "vaurien",
        "statsd.sample_rate": 1.0,
    }
    assert DEFAULT_SETTINGS == original
    assert {k: type(v) for k, v in DEFAULT_SETTINGS.items()} == {k: type(v) for k, v in original.items()}
    defaults = {name: p.default for name, p in inspect.signature(start_proxy).parameters.items()}
    assert defaults == {
        "proxy_host": "localhost", "proxy_port": 8000, "backend_host": "localhost", "backend_port": 8888,
        "protocol": "tcp", "http": True, "warmup": 2, "http_host": "localhost", "http_port": 8080,
        "options": None, "log_level": "info", "log_output": "-",
    }
    rows = {row["name"]: row for row in _vaurien.settings()}
    assert rows["pool_max_size"]["flag"] == "--pool-max-size" and rows["sync"]["switch"] is True
    assert rows["config"]["ini"] is False and rows["statsd_host"]["default"] == "127.0.0.1"


def test_util_helpers():
    from vaurien.config import SettingsDict
    from vaurien.util import (ImportStringError, chunked, extract_settings, get_prefixed_sections,
                              import_string, parse_address)

    assert import_string("os.path:join") is os.path.join
    assert import_string("os.path.join") is os.path.join
    assert import_string("vaurien.behaviors.error") is error_module
    assert import_string("nosuchmodule.thing", silent=True) is None
    with pytest.raises(ImportStringError) as e:
        import_string("vaurien.nosuchmodule.Thing")
    assert isinstance(e.value, ImportError) and e.value.import_name == "vaurien.nosuchmodule.Thing"
    assert "- 'vaurien.nosuchmodule' not found." in str(e.value)
    assert list(chunked(7634, 2049)) == [2049, 2049, 2049, 1487]
    assert list(chunked(10, 20)) == [10]
    assert parse_address("localhost:8000") == ("127.0.0.1", 8000)
    with pytest.raises(SystemExit):
        parse_address("nocolon")
    args = argparse.Namespace(behavior_delay_sleep=2, behavior_delay_before=True, behavior_error_warmup=1)
    assert extract_settings(args, "behavior", "delay") == {"sleep": 2, "before": True}
    settings = SettingsDict({"behavior.mine.callable": "vaurien.behaviors.delay.Delay", "behavior.mine.sleep": 1,
                             "behavior.nocallable.x": 1, "vaurien.backend": "x:1"})
    assert get_prefixed_sections(settings, "behavior", logging.getLogger("pycompat")) == {"mine": Delay}


def test_run_helpers(tmp_path):
    from vaurien import run

    parser = argparse.ArgumentParser()
    run.build_args(parser, get_behaviors().items(), "behavior")
    run.build_args(parser, get_protocols().items(), "protocol")
    args = parser.parse_args(["--behavior-delay-sleep", "2.5", "--behavior-delay-before",
                              "--protocol-http-overwrite-host-header"])
    assert args.behavior_delay_sleep == 2.5 and args.behavior_error_warmup == 0
    assert args.protocol_http_overwrite_host_header is True and args.protocol_tcp_keep_alive is False
    assert run.LOG_LEVELS["debug"] == logging.DEBUG
    logger = logging.getLogger("pycompat.run")
    log = tmp_path / "out.log"
    run.configure_logger(logger, "DEBUG", str(log))
    try:
        logger.debug("hello")
    finally:
        for h in logger.handlers[:]:
            logger.removeHandler(h)
            h.close()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[%d\] \[DEBUG\] hello$" % os.getpid(), log.read_text().strip())
    assert run.get_statsd_from_settings({"enabled": False}) is None


# -- vaurien.proxy -------------------------------------------------------------------------------

def test_random_proxy_takes_its_mix_and_options_from_settings(echo):
    from vaurien.proxy import DefaultProxy, RandomProxy

    settings = {"vaurien.behavior": "100:delay", "behavior.delay.sleep": 0.3, "behavior.delay.before": False}
    proxy = RandomProxy("127.0.0.1:0", echo.address, settings=settings)
    assert isinstance(proxy, DefaultProxy)
    assert proxy.get_behavior()[1] == "delay"
    with proxy:
        host, port = proxy.address
        t0 = time.monotonic()
        assert exchange(port, b"mix", host=host) == b"echo:mix"
        assert time.monotonic() - t0 >= 0.3
    with pytest.raises(ValueError, match="percentage:name"):
        RandomProxy("127.0.0.1:0", echo.address, settings={"vaurien.behavior": "delay"})


def test_on_the_fly_proxy_serves_forever_until_stopped(echo):
    from vaurien.proxy import OnTheFlyProxy

    proxy = OnTheFlyProxy("127.0.0.1:0", echo.address)
    server = threading.Thread(target=proxy.serve_forever, daemon=True)
    server.start()
    assert wait_until(lambda: proxy.started)
    host, port = proxy.address
    assert exchange(port, b"a", host=host) == b"echo:a"
    proxy.set_behavior(name="blackout")
    assert proxy.get_behavior()[1] == "blackout"
    assert exchange(port, b"b", host=host) == b""
    proxy.stop()
    server.join(10)
    assert not server.is_alive()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_a_proxy_subclass_overriding_the_connection_handler_is_refused(echo):
    from vaurien.proxy import DefaultProxy

    class Custom(DefaultProxy):
        def handle(self, client_sock, address):
            pass

    with pytest.raises(NotImplementedError, match="Behavior.register"):
        Custom("127.0.0.1:0", echo.address)
