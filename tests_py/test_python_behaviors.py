"""Behaviors and protocols written in Python, running inside the engine."""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from helpers import free_port, wait_port
from pyhelpers import Backend, echo_lines, echo_once, exchange, swallow_lines, wait_until

import vaurien
from vaurien import _vaurien
from vaurien.behaviors import Behavior, get_behavior, get_behaviors
from vaurien.behaviors.dummy import Dummy
from vaurien.protocols import Protocol
from vaurien.protocols.base import BaseProtocol
from vaurien.util import get_data, start_proxy, stop_proxy


class Sleepy(Dummy):
    """Sleeps before each exchange."""

    name = "py_sleepy"
    options = {"sleep": ("seconds to sleep", float, 0.5)}

    def on_before_handle(self, protocol, source, dest, to_backend):
        time.sleep(self.option("sleep"))
        return True


class FirstSleeps(Dummy):
    """The first exchange of the proxy sleeps; the ones after it pass at once."""

    name = "py_first_sleeps"
    options = {}
    calls = 0

    def on_before_handle(self, protocol, source, dest, to_backend):
        type(self).calls += 1
        if type(self).calls == 1:
            self.hold()
        return True

    def hold(self):
        time.sleep(3)


class FirstSpins(FirstSleeps):
    """The first exchange of the proxy computes (a busy wait) for 3 s instead."""

    name = "py_first_spins"
    calls = 0

    def hold(self):
        until = time.monotonic() + 3
        while time.monotonic() < until:
            pass


class Order(Dummy):
    """Records each hook call; `stop` makes on_between_handle return False."""

    name = "py_order"
    options = {"stop": ("between returns False", bool, False)}
    seen = []

    def on_before_handle(self, protocol, source, dest, to_backend):
        Order.seen.append(("before", to_backend))
        return True

    def on_between_handle(self, protocol, source, dest, to_backend):
        Order.seen.append(("between", to_backend))
        return not self.option("stop")

    def on_after_handle(self, protocol, source, dest, to_backend):
        Order.seen.append(("after", to_backend))
        return True


class Refuse(Dummy):
    """Reads the request, answers an error itself and closes: the backend sees nothing."""

    name = "py_refuse"
    options = {"message": ("the answer", str, "ERROR")}

    def on_before_handle(self, protocol, source, dest, to_backend):
        get_data(source)
        source.sendall(self.option("message").encode() + b"\r\n")
        source.close()
        return False


class Prefix(Dummy):
    """Sends a prefix to the client before each exchange."""

    name = "py_prefix"
    options = {
        "text": ("the prefix", str, "default"),
        "twice": ("send it twice", bool, False),
        "count": ("how many bytes of it", int, 100),
    }

    def on_before_handle(self, protocol, source, dest, to_backend):
        text = self.option("text").encode()[: self.option("count")]
        source.sendall(text * (2 if self.option("twice") else 1) + b"|")
        return True


class Boom(Dummy):
    name = "py_boom"

    def on_before_handle(self, protocol, source, dest, to_backend):
        raise RuntimeError("boom in a hook")


class Plain:
    """A plain class (no Dummy), with only on_after_handle, as the original docs show."""

    name = "py_plain"
    options = {}
    calls = []

    def on_after_handle(self, protocol, source, dest, to_backend):
        Plain.calls.append((protocol.name, protocol.option("keep_alive"), to_backend, source.gettimeout()))
        return True


class BadInit(Dummy):
    """Cannot be built while `broken`: its constructor raises."""

    name = "py_bad_init"
    broken = False

    def __init__(self):
        if BadInit.broken:
            raise RuntimeError("no config for BadInit")
        super().__init__()


class BadSettings(Dummy):
    """Cannot be built with a `level` above 3: update_settings raises."""

    name = "py_bad_settings"
    options = {"level": ("a level, 3 at most", int, 1)}

    def update_settings(self, settings):
        super().update_settings(settings)
        if self.option("level") > 3:
            raise ValueError("level %d is over 3" % self.option("level"))


def thread_name():
    """The name the OS knows the calling thread by (the engine names its threads)."""
    with open("/proc/self/task/%d/comm" % threading.get_native_id()) as f:
        return f.read().strip()


class Where(Dummy):
    """Notes the thread each on_before_handle runs on; sleeps first when the test says so
    (`sleep[thread]` seconds, for at most `sleeps` calls), then lets the exchange through or
    answers by itself (reading the request, as `Refuse`)."""

    name = "py_where"
    options = {"answer": ("answer by itself", bool, False)}
    threads = []
    sleep = {}  # seconds, by thread name
    sleeps = None  # how many calls may still sleep (None: all)
    woke = []  # the calls that slept, as they end
    foreign = None  # when a list: a call in place has a thread of its own use `source`

    @classmethod
    def reset(cls, **sleep):
        cls.threads, cls.sleep, cls.sleeps, cls.woke, cls.foreign = [], sleep, None, [], None

    def on_before_handle(self, protocol, source, dest, to_backend):
        cls = type(self)
        where = thread_name()
        cls.threads.append(where)
        n = len(cls.threads)
        if cls.sleep.get(where) and cls.sleeps != 0:
            if cls.sleeps is not None:
                cls.sleeps -= 1
            time.sleep(cls.sleep[where])
            cls.woke.append(n)
        if cls.foreign is not None and where == "vaurien-lane":
            def use():
                try:
                    cls.foreign.append(source.recv(1))
                except OSError as e:
                    cls.foreign.append(e.errno)
            t = threading.Thread(target=use)
            t.start()
            t.join(5)
            cls.foreign.append("joined" if not t.is_alive() else "still waiting")
        if self.option("answer"):
            get_data(source)
            source.sendall(b"SELF\r\n")
            source.close()
            return False
        return True


for cls in (Sleepy, FirstSleeps, FirstSpins, Order, Refuse, Prefix, Boom, Plain, BadInit,
            BadSettings, Where):
    Behavior.register(cls)


@pytest.fixture
def echo_backend():
    b = Backend(echo_once)
    yield b
    b.close()


@pytest.fixture
def start(echo_backend):
    """start(behavior, *flags) → (port, client); everything stopped at the end."""
    pids = []

    def run(behavior="100:dummy", *flags, backend=None, protocol="tcp"):
        port, http_port = free_port(), free_port()
        pids.append(start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                                backend_port=(backend or echo_backend).port, protocol=protocol,
                                http_host="127.0.0.1", http_port=http_port,
                                options=["--behavior", behavior, *flags]))
        return port, vaurien.Client("127.0.0.1", http_port)

    yield run
    for pid in pids:
        stop_proxy(pid)


def test_registered_behaviors_are_listed_everywhere(start):
    names = get_behaviors()
    assert {"py_sleepy", "py_refuse", "dummy", "delay"} <= set(names)
    assert isinstance(get_behavior("py_sleepy"), Sleepy)
    assert get_behavior("delay").options["sleep"][1] is float
    with pytest.raises(KeyError):
        get_behavior("nosuch")
    port, client = start()
    assert "py_sleepy" in client.list_behaviors()


def test_a_behavior_that_sleeps(start):
    port, client = start("100:py_sleepy", "--behavior-py-sleepy-sleep", "0.4")
    t0 = time.monotonic()
    assert exchange(port, b"z") == b"echo:z"
    assert time.monotonic() - t0 >= 0.4


def test_a_behavior_that_answers_an_error_and_closes(start, echo_backend):
    port, client = start("100:py_refuse", "--behavior-py-refuse-message", "NOPE")
    assert exchange(port, b"GET x\r\n") == b"NOPE\r\n"
    time.sleep(0.1)
    assert [d for d in echo_backend.received if d] == [], "the request never reached the backend"


def test_options_from_flags_api_and_mixes(start):
    port, client = start("100:py_prefix", "--behavior-py-prefix-text", "flag", "--behavior-py-prefix-twice")
    assert exchange(port, b"a") == b"flagflag|echo:a"
    client.set_behavior("py_prefix", text="api", count=2)
    # Options given through the API apply on top of the configured ones (twice stays on).
    assert exchange(port, b"b") == b"apap|echo:b"
    with client.with_behavior("py_prefix", text="yes", twice="no"):
        assert exchange(port, b"c") == b"ye|echo:c"  # count=2 stays too
    # A bad option value does not fail the call (the original took any value): it is skipped,
    # with a warning in the log (tests_compat/test_api.py, options/bad-value).
    client.set_behavior("py_prefix", count="many")
    assert client.get_behavior() == "py_prefix"


def test_options_from_an_ini_file_and_a_callable(tmp_path, monkeypatch, echo_backend):
    (tmp_path / "myplugins.py").write_text(textwrap.dedent('''
        class Tagger(object):
            """Tags each answer (a plain class, loaded from the ini file)."""
            name = "tagger"
            options = {"tag": ("the tag", str, "none")}

            def update_settings(self, settings):
                self.settings = settings

            def on_before_handle(self, protocol, source, dest, to_backend):
                source.sendall(self.settings["tag"].encode() + b"|")
                return True
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    port = free_port()
    ini = tmp_path / "v.ini"
    ini.write_text(
        "[vaurien]\nproxy = 127.0.0.1:%d\nbackend = 127.0.0.1:%d\nbehavior = 100:tagger\n\n"
        "[behavior:tagger]\ncallable = myplugins:Tagger\ntag = from-ini\n\n"
        "[behavior:py_prefix]\ntext = ini-prefix\n" % (port, echo_backend.port)
    )
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=echo_backend.port, http=False, options=["--config", str(ini)])
    try:
        assert exchange(port, b"q") == b"from-ini|echo:q"
    finally:
        stop_proxy(pid)
    # Flags win over the file.
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=echo_backend.port, http=False,
                      options=["--config", str(ini), "--behavior-tagger-tag", "from-flag"])
    try:
        assert exchange(port, b"q") == b"from-flag|echo:q"
    finally:
        stop_proxy(pid)


@pytest.mark.timeout(60)
def test_the_vaurien_command_finds_a_callable_in_the_current_directory(tmp_path, echo_backend):
    """Issue 18: `callable = mybeh.Tag` failed under the `vaurien` command (`No module named
    'mybeh'`) unless PYTHONPATH=. was given: the module is found in the current directory, and
    next to the ini file, wherever that is."""
    vaurien_cmd = os.path.join(os.path.dirname(sys.executable), "vaurien")
    if not os.path.exists(vaurien_cmd):
        pytest.skip("the vaurien command is not installed beside this Python")
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    for where, tag in ((here, "cwd"), (elsewhere, "ini")):
        (where / f"mybeh_{tag}.py").write_text(textwrap.dedent(f'''
            from vaurien.behaviors.dummy import Dummy

            class Tag(Dummy):
                name = "tag_{tag}"

                def on_before_handle(self, protocol, source, dest, to_backend):
                    source.sendall(b"{tag}|")
                    return True
        '''))
    for tag in ("cwd", "ini"):
        port = free_port()
        ini = elsewhere / f"{tag}.ini"
        ini.write_text(
            f"[vaurien]\nproxy = 127.0.0.1:{port}\nbackend = 127.0.0.1:{echo_backend.port}\n"
            f"behavior = 100:tag_{tag}\n\n[behavior:tag_{tag}]\ncallable = mybeh_{tag}.Tag\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.Popen([vaurien_cmd, "--config", str(ini)], cwd=here, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_port(port, proc=proc)
            assert exchange(port, b"q") == f"{tag}|echo:q".encode()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            proc.stderr.close()


def test_a_plain_class_with_one_hook_and_the_protocol_view(start):
    Plain.calls.clear()
    port, client = start("100:py_plain", "--timeout", "7")
    assert exchange(port, b"p") == b"echo:p"
    assert wait_until(lambda: Plain.calls)
    assert Plain.calls[0] == ("tcp", False, True, 7.0)


def test_a_hook_that_raises_closes_only_that_connection(start, caplog):
    port, client = start()
    with caplog.at_level(logging.ERROR, logger="vaurien.python"):
        with client.with_behavior("py_boom"):
            assert exchange(port, b"x") == b""
        assert exchange(port, b"y") == b"echo:y"
    assert wait_until(lambda: any("boom in a hook" in (r.exc_text or "") or r.exc_info for r in caplog.records))
    rec = [r for r in caplog.records if r.name == "vaurien.python"][0]
    assert "py_boom" in rec.getMessage() and "on_before_handle" in rec.getMessage()


def test_fifty_connections_in_python_hooks_at_once(start):
    port, client = start("100:py_sleepy", "--behavior-py-sleepy-sleep", "0.5")
    results = [None] * 50
    barrier = threading.Barrier(50)

    def one(i):
        barrier.wait()
        results[i] = exchange(port, b"c%d" % i, timeout=30)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    took = time.monotonic() - t0
    assert results == [b"echo:c%d" % i for i in range(50)]
    assert took < 5.0, "hooks must run concurrently (50 x 0.5 s took %.1fs)" % took


@pytest.mark.parametrize("cls", [FirstSleeps, FirstSpins], ids=["sleeps", "computes"])
def test_a_slow_hook_does_not_hold_up_the_hooks_queued_behind_it(start, cls):
    # One pool thread runs the queued hook calls back to back; while it is held in a hook,
    # asleep or computing (a busy wait holds the GIL but lets it go every 5 ms), the calls
    # behind it are taken over by another thread.
    port, client = start("100:" + cls.name)
    done = {}

    def slow():
        done["slow"] = exchange(port, b"slow", timeout=30)
        done["slow_at"] = time.monotonic()

    t = threading.Thread(target=slow)
    t.start()
    assert wait_until(lambda: cls.calls >= 1)
    assert exchange(port, b"fast", timeout=30) == b"echo:fast"
    fast_at = time.monotonic()
    t.join(60)
    assert done["slow"] == b"echo:slow"
    assert fast_at < done["slow_at"], "the quick exchange waited for the slow hook"


def test_streaming_calls_before_between_after_per_chunk_in_order(start):
    # tcp keep-alive + stay-connected streams: each chunk is an exchange, and its between and
    # after hooks are made in one trip to Python; the order stays before, between, after.
    backend = Backend(echo_lines)
    try:
        Order.seen = []
        port, _ = start("100:py_order", "--protocol-tcp-keep-alive", "--stay-connected",
                        backend=backend)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for i in range(3):
                s.sendall(b"line%d\n" % i)
                got = b""
                while not got.endswith(b"\n"):
                    got += s.recv(100)
                assert got == b"echo:line%d\n" % i
        # the between and after hooks of the last exchanges may still be running
        assert wait_until(lambda: all(len([h for h, up in Order.seen if up is d]) >= 9
                                      for d in (True, False)))
        for direction in (True, False):
            hooks = [h for h, up in Order.seen if up is direction]
            assert hooks[:9] == ["before", "between", "after"] * 3, (direction, Order.seen)
    finally:
        backend.close()


def test_streaming_between_false_still_calls_after_and_closes(start):
    backend = Backend(echo_lines)
    try:
        Order.seen = []
        port, _ = start("100:py_order", "--behavior-py-order-stop", "--protocol-tcp-keep-alive",
                        "--stay-connected", backend=backend)
        # The exchange that carried the line ends the connection (between returned False).
        assert exchange(port, b"one\n") in (b"", b"echo:one\n")
        # The line was forwarded before the hook ran, but the backend's thread may record it
        # after the client saw the connection close.
        assert wait_until(lambda: backend.received[:1] == [b"one"]), backend.received
        up = lambda: [h for h, d in Order.seen if d][:3]  # noqa: E731
        assert wait_until(lambda: up() == ["before", "between", "after"]), Order.seen
    finally:
        backend.close()


class LateAfter(Dummy):
    """on_after_handle of a streaming exchange, which the engine leaves running while the
    connection waits for the next chunk: it may sleep (`sleep`, upstream), write to the client
    (`send`, downstream), close the client (`close`, upstream) or raise (`boom`, upstream)."""

    name = "py_late_after"
    options = {
        "sleep": ("seconds the upstream after hook sleeps", float, 0.0),
        "send": ("bytes the downstream after hook sends the client", str, ""),
        "close": ("the upstream after hook closes the client", bool, False),
        "boom": ("the upstream after hook raises", bool, False),
    }
    seen = []

    def on_before_handle(self, protocol, source, dest, to_backend):
        LateAfter.seen.append(("before", to_backend))
        return True

    def on_after_handle(self, protocol, source, dest, to_backend):
        if to_backend:
            time.sleep(self.option("sleep"))
            if self.option("boom"):
                raise RuntimeError("late boom")
            if self.option("close"):
                source.close()
        elif self.option("send"):
            dest.sendall(self.option("send").encode())
        LateAfter.seen.append(("after", to_backend))


Behavior.register(LateAfter)

STREAM = ("--protocol-tcp-keep-alive", "--stay-connected", "--timeout", "60")


def read_until(s: socket.socket, end: bytes) -> bytes:
    got = b""
    while not got.endswith(end):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    return got


def test_a_late_after_hook_ends_before_the_next_exchange_of_its_direction(start):
    # The upstream after hook sleeps 0.5 s; the next line arrives meanwhile: its exchange
    # waits for the hook, as it did when the hook was awaited (and in the original).
    backend = Backend(echo_lines)
    try:
        LateAfter.seen = []
        port, _ = start("100:py_late_after", "--behavior-py-late-after-sleep", "0.5", *STREAM,
                        backend=backend)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"one\n")
            assert read_until(s, b"\n") == b"echo:one\n"
            t0 = time.monotonic()
            s.sendall(b"two\n")
            assert read_until(s, b"\n") == b"echo:two\n"
            assert time.monotonic() - t0 >= 0.3, "the second line went past a running hook"
        # "after" is recorded when the hook ends: before the next exchange's "before".
        up = [h for h, d in LateAfter.seen if d]
        assert up[:3] == ["before", "after", "before"], LateAfter.seen
    finally:
        backend.close()


def test_a_late_after_hook_that_writes_is_served_at_once(start):
    # The downstream after hook writes to the client while the connection waits for the next
    # chunk: its write is served then (the client gets it before it sends anything else).
    backend = Backend(echo_lines)
    try:
        port, _ = start("100:py_late_after", "--behavior-py-late-after-send", "[after]", *STREAM,
                        backend=backend)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for i in range(3):
                s.sendall(b"line%d\n" % i)
                assert read_until(s, b"[after]") == b"echo:line%d\n[after]" % i
    finally:
        backend.close()


@pytest.mark.parametrize("option", ["close", "boom"])
def test_a_late_after_hook_that_closes_or_raises_ends_the_connection_at_once(start, option):
    # Nothing else comes from the client, nor from the backend (it never answers): the hook's
    # close (or its error) must end the connection by itself, long before --timeout (60 s).
    backend = Backend(swallow_lines)
    try:
        port, _ = start("100:py_late_after", "--behavior-py-late-after-" + option, *STREAM,
                        backend=backend)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"one\n")
            got = b""
            t0 = time.monotonic()
            while True:
                try:
                    chunk = s.recv(100)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                got += chunk
            assert time.monotonic() - t0 < 8
            assert got == b""
        # The proxy goes on serving other connections.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"two\n")
            assert wait_until(lambda: b"two" in backend.received), backend.received
    finally:
        backend.close()


class AfterReturnsNothing(Dummy):
    """on_after_handle without `return` (None) or returning False: the original dropped what it
    returned, so neither ends the connection."""

    name = "py_after_nothing"
    options = {"false": ("return False instead of nothing", bool, False)}
    calls = 0

    def on_before_handle(self, protocol, source, dest, to_backend):
        return True

    def on_after_handle(self, protocol, source, dest, to_backend):
        AfterReturnsNothing.calls += 1
        if self.option("false"):
            return False


Behavior.register(AfterReturnsNothing)


@pytest.mark.parametrize("flags", [(), ("--behavior-py-after-nothing-false",)], ids=["none", "false"])
def test_what_on_after_handle_returns_is_ignored(start, flags):
    backend = Backend(echo_lines)
    try:
        AfterReturnsNothing.calls = 0
        port, _ = start("100:py_after_nothing", *flags, "--protocol-tcp-keep-alive",
                        "--stay-connected", backend=backend)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for i in range(3):
                s.sendall(b"line%d\n" % i)
                got = b""
                while not got.endswith(b"\n"):
                    chunk = s.recv(100)
                    assert chunk, "the connection closed after %d round trips" % i
                    got += chunk
                assert got == b"echo:line%d\n" % i
        # the after hooks of the last exchanges may still be running when the answer is in
        assert wait_until(lambda: AfterReturnsNothing.calls >= 5), AfterReturnsNothing.calls
    finally:
        backend.close()


class SocketProbe(Dummy):
    """Exercises the socket objects."""

    name = "py_probe"
    seen = {}

    def on_before_handle(self, protocol, source, dest, to_backend):
        s = SocketProbe.seen
        s["fileno"] = source.fileno() > 0 and dest.fileno() > 0
        s["timeout"] = source.gettimeout()
        source.settimeout(0.2)
        s["peek"] = source.recv(3)
        s["rest"] = source.recv(100)
        assert dest.send(s["peek"] + s["rest"]) == 6
        try:
            source.recv(10)
        except socket.timeout:
            s["timed_out"] = True
        source.setblocking(False)
        try:
            source.recv(10)
        except BlockingIOError:
            s["would_block"] = True
        s["answer"] = get_data(dest, 100)
        source.sendall(b"[" + s["answer"] + b"]")
        dest._closed = True
        return True


Behavior.register(SocketProbe)


def test_socket_objects(start):
    port, client = start("100:py_probe")
    assert exchange(port, b"abcdef") == b"[echo:abcdef]"
    seen = SocketProbe.seen
    assert seen["fileno"] and seen["timeout"] == 30.0
    assert seen["peek"] == b"abc" and seen["rest"] == b"def"
    assert seen.get("timed_out") and seen.get("would_block")


def test_dummy_option_conversions():
    class Opt(Dummy):
        options = {"flag": ("", bool, False), "n": ("", int, 1), "x": ("", float, 0.5)}

    o = Opt()
    assert o.option("flag") is False and o.option("n") == 1
    for text in ("y", "yes", "1", "on", "Yes"):
        o.update_settings({"flag": text})
        assert o.option("flag") is True
    o.update_settings({"flag": "off", "n": "7", "x": "2.5"})
    assert o.option("flag") is False and o.option("n") == 7 and o.option("x") == 2.5


def test_bad_registrations():
    class BadType(Dummy):
        name = "py_badtype"
        options = {"x": ("", list, [])}

    with pytest.raises(ValueError, match="type"):
        Behavior.register(BadType)

    class BadName(Dummy):
        name = "bad name"

    with pytest.raises(ValueError, match="name"):
        Behavior.register(BadName)


# -- a protocol written in Python ----------------------------------------------------------

class Lines(BaseProtocol):
    """One line is one exchange."""

    name = "py_lines"
    options = dict(BaseProtocol.options, upper=("upper-case the answers", bool, False))

    def _read_line(self, sock):
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(1)
            if not chunk:
                return line
            line += chunk
        return line

    def _handle(self, source, dest, to_backend, on_between_handle):
        line = self._read_line(source)
        if not line:
            return False
        dest.sendall(line)
        if not on_between_handle():
            return False
        answer = self._read_line(dest)
        source.sendall(answer.upper() if self.option("upper") else answer)
        return True


Protocol.register(Lines)


class Between(Dummy):
    name = "py_between"
    calls = []

    def on_between_handle(self, protocol, source, dest, to_backend):
        Between.calls.append(protocol.name)
        return True


Behavior.register(Between)


@pytest.fixture
def line_backend():
    b = Backend(echo_lines)
    yield b
    b.close()


def test_a_python_protocol(start, line_backend):
    Between.calls.clear()
    port, client = start("100:py_between", "--stay-connected", "--protocol-py-lines-upper",
                         backend=line_backend, protocol="py_lines")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        s.sendall(b"one\n")
        assert f.readline() == b"ECHO:ONE\n"
        s.sendall(b"two\nthree\n")
        assert f.readline() == b"ECHO:TWO\n"
        assert f.readline() == b"ECHO:THREE\n"
        f.close()
    assert line_backend.received == [b"one", b"two", b"three"]
    assert Between.calls == ["py_lines"] * 3
    assert "py_lines" in dict((k[0], k) for k in _vaurien.protocol_kinds())
    # A built-in behavior around a Python protocol.
    with client.with_behavior("delay", sleep=0.3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            f = s.makefile("rb")
            t0 = time.monotonic()
            s.sendall(b"four\n")
            assert f.readline() == b"ECHO:FOUR\n"
            assert time.monotonic() - t0 >= 0.3
            f.close()


@pytest.fixture
def broken_init():
    BadInit.broken = True
    yield
    BadInit.broken = False


def test_a_behavior_that_cannot_be_built_is_refused_where_it_is_named(start, echo_backend, broken_init):
    # At start (without --http): the proxy does not start, with the exception in the message.
    # (Under --http the original ignored the mix: a mix that cannot be built is then a warning
    # and the proxy starts with dummy.)
    def start_plain(*options):
        return start_proxy(proxy_host="127.0.0.1", proxy_port=free_port(), backend_host="127.0.0.1",
                           backend_port=echo_backend.port, http=False, options=list(options))

    with pytest.raises(ValueError, match="no config for BadInit"):
        start_plain("--behavior", "100:py_bad_init")
    with pytest.raises(ValueError, match="level 5 is over 3"):
        start_plain("--behavior", "100:py_bad_settings", "--behavior-py-bad-settings-level", "5")
    # Through the API: a 400 (ValueError in the client), and the active behavior is unchanged.
    port, client = start("100:py_bad_settings")
    assert exchange(port, b"a") == b"echo:a"
    with pytest.raises(ValueError, match="level 9 is over 3"):
        client.set_behavior("py_bad_settings", level=9)
    with pytest.raises(ValueError, match="no config for BadInit"):
        client.set_behavior("py_bad_init")
    assert client.get_behavior() == "100:py_bad_settings" or client.get_behavior() == "py_bad_settings"
    assert exchange(port, b"b") == b"echo:b"
    client.set_behavior("py_bad_settings", level=2)
    assert exchange(port, b"c") == b"echo:c"


class HugeRecv(Dummy):
    """Asks for far more than there is: recv(10**12) reserves at most 1 MiB (it used to abort
    the process on allocation)."""

    name = "py_huge_recv"

    def on_before_handle(self, protocol, source, dest, to_backend):
        data = source.recv(10**12)
        dest.sendall(data)
        source.sendall(b"[" + get_data(dest, 10**12) + b"]")
        dest._closed = True
        return True


Behavior.register(HugeRecv)


def test_a_huge_recv_is_clamped_not_fatal(start):
    port, client = start("100:py_huge_recv")
    assert exchange(port, b"abc") == b"[echo:abc]"
    # The process is fine: another exchange works.
    assert exchange(port, b"def") == b"[echo:def]"


class Passes(Dummy):
    """Carries on: every chunk of a streaming connection goes through Python."""

    name = "py_passes"

    def on_before_handle(self, protocol, source, dest, to_backend):
        return True


Behavior.register(Passes)


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(120)
def test_memory_stays_bounded_under_a_python_behavior(start):
    """A client that stops reading while the backend streams, through a Python behavior on
    every chunk: backpressure reaches the backend and the process's memory stays bounded
    (64 MiB + 256 KiB per connection)."""
    conns, offer = 100, 1 << 30
    moved = [0]
    lock = threading.Lock()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(conns)
    stop = threading.Event()

    def stream(s):
        chunk = b"z" * 65536
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sent = 0
        with s:
            try:
                while sent < offer and not stop.is_set():
                    s.sendall(chunk)
                    sent += len(chunk)
                    with lock:
                        moved[0] += len(chunk)
            except OSError:
                pass

    streams = []

    def accept():
        while not stop.is_set():
            try:
                s, _ = lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=stream, args=(s,), daemon=True)
            t.start()
            streams.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()

    class Addr:
        port = lsock.getsockname()[1]

    port, _ = start("100:py_passes", "--protocol-tcp-keep-alive", "--stay-connected", backend=Addr)
    before = _rss()
    clients = []
    for _ in range(conns):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.connect(("127.0.0.1", port))
        clients.append(c)
    last, quiet, t0 = -1, 0, time.monotonic()
    while quiet < 5 and time.monotonic() - t0 < 60:
        time.sleep(0.2)
        with lock:
            now = moved[0]
        quiet = quiet + 1 if now == last else 0
        last = now
    grown = _rss() - before
    try:
        assert last > 0, "traffic flowed before the stall"
        assert last < conns * (64 << 20), f"backpressure reached the backend ({last} bytes moved)"
        bound = (64 << 20) + conns * (256 << 10)
        assert grown < bound, f"RSS grew by {grown >> 20} MiB (bound {bound >> 20} MiB)"
    finally:
        stop.set()
        for c in clients:
            c.close()
        lsock.close()
        acceptor.join(5)
        for t in streams:
            t.join(5)


# -- the lane: connections of a proxy with a Python behavior, hooks called in place ----------
# A hook goes in place after PROBATION quick calls in a row on the pool; on a loaded machine a
# quick call may be preempted past the 1 ms mark, so the tests do not count on the exact call
# where that happens.

LANE, POOL = "vaurien-lane", "vaurien-python"
PROBATION = 4  # quick calls in a row on the pool before a hook is called in place (behavior.rs)


def until_in_place(port, most=40):
    """Quick exchanges until the hook runs in place (on the lane)."""
    for i in range(most):
        assert exchange(port, b"q%d" % i) == b"echo:q%d" % i
        if Where.threads[-1] == LANE:
            return
    raise AssertionError("never called in place: %r" % Where.threads)


def test_hooks_proven_quick_are_called_in_place_on_the_lane(start):
    Where.reset()
    port, client = start("100:py_where")
    until_in_place(port)
    assert Where.threads[:PROBATION] == [POOL] * PROBATION


def test_a_hook_called_in_place_is_served_its_socket_requests(start, echo_backend):
    Where.reset()
    port, client = start("100:py_where", "--behavior-py-where-answer")
    for i in range(40):
        assert exchange(port, b"GET x%d\r\n" % i) == b"SELF\r\n"
        if Where.threads[-1] == LANE:
            break
    assert Where.threads[:PROBATION] == [POOL] * PROBATION
    assert Where.threads[-1] == LANE
    time.sleep(0.1)
    assert [d for d in echo_backend.received if d] == [], "the request never reached the backend"


def test_a_hook_that_sleeps_each_time_is_never_called_in_place(start):
    Where.reset(**{POOL: 0.05, LANE: 0.05})
    port, client = start("100:py_where")
    for i in range(PROBATION + 2):
        assert exchange(port, b"s%d" % i) == b"echo:s%d" % i
    assert Where.threads == [POOL] * (PROBATION + 2)


def test_a_hook_slow_in_place_three_times_in_a_row_goes_back_to_the_pool(start):
    Where.reset(**{LANE: 0.05})  # quick on the pool, slow in place
    port, client = start("100:py_where")
    until_in_place(port)
    first = len(Where.threads) - 1
    for i in range(4):
        assert exchange(port, b"s%d" % i) == b"echo:s%d" % i
    assert Where.threads[first:] == [LANE] * 3 + [POOL] * 2


def test_a_hook_held_in_place_does_not_hold_up_the_other_connections(start):
    # One lane thread at a time calls in place: while the first slow call holds one, the
    # second slow call goes to the pool, and the other lane thread carries the quick exchange.
    Where.reset()
    port, client = start("100:py_where")
    until_in_place(port)
    seen = len(Where.threads)
    Where.sleep, Where.sleeps = {LANE: 2, POOL: 2}, 2
    done = {}

    def slow(i):
        done[i] = exchange(port, b"slow%d" % i, timeout=30)
        done["at%d" % i] = time.monotonic()

    threads = [threading.Thread(target=slow, args=(i,)) for i in (1, 2)]
    threads[0].start()
    assert wait_until(lambda: len(Where.threads) >= seen + 1)
    threads[1].start()
    assert wait_until(lambda: len(Where.threads) >= seen + 2)
    assert exchange(port, b"fast", timeout=30) == b"echo:fast"
    fast_at = time.monotonic()
    for t in threads:
        t.join(60)
    assert done[1] == b"echo:slow1" and done[2] == b"echo:slow2"
    assert fast_at < min(done["at1"], done["at2"]), "the quick exchange waited for a slow hook"
    assert Where.threads[seen:seen + 2] == [LANE, POOL]


WHO_CHILD = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    from vaurien.behaviors import Behavior
    from vaurien.behaviors.dummy import Dummy
    from vaurien.util import get_data, start_proxy

    def thread_name():
        with open("/proc/self/task/%d/comm" % threading.get_native_id()) as f:
            return f.read().strip()

    class Who(Dummy):
        # Answers with the name of the thread its hook ran on; "hold" sleeps first (the GIL
        # released), after it tells the test so by making the file `marker`.
        name = "py_who"

        def on_before_handle(self, protocol, source, dest, to_backend):
            data = get_data(source)
            if data.startswith(b"hold"):
                open(cfg["marker"], "w").close()
                time.sleep(1.0)
            source.sendall(thread_name().encode())
            source.close()
            return False

    Behavior.register(Who)
    cfg = json.loads(sys.argv[1])
    start_proxy(proxy_host="127.0.0.1", proxy_port=cfg["port"], backend_host="127.0.0.1",
                backend_port=cfg["backend"], protocol="tcp", http=False,
                options=["--behavior", "100:py_who"])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        time.sleep(1)
""")


def test_a_call_that_finds_the_turn_taken_waits_for_it_on_the_lane(tmp_path, echo_backend):
    # One lane thread sleeps in a hook in place, holding the turn (the GIL released). A call
    # on the other lane thread waits for the turn (here up to 5 s: VAURIEN_LANE_WAIT_US) and
    # runs in place once the first returns, instead of going to the pool at once.
    script, marker = tmp_path / "who.py", tmp_path / "holding"
    script.write_text(WHO_CHILD)
    port = free_port()
    env = dict(os.environ, VAURIEN_LANE_WAIT_US="5000000")
    cfg = json.dumps(dict(port=port, backend=echo_backend.port, marker=str(marker)))
    child = subprocess.Popen([sys.executable, str(script), cfg], cwd=str(tmp_path), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc=child)
        for i in range(40):
            if exchange(port, b"q%d" % i) == LANE.encode():
                break
        else:
            raise AssertionError("never called in place")
        held = {}
        holder = threading.Thread(target=lambda: held.update(a=exchange(port, b"hold", 30)))
        holder.start()
        assert wait_until(marker.exists, timeout=20), "the hold never began"
        t0 = time.monotonic()
        second = exchange(port, b"second", timeout=30)
        waited = time.monotonic() - t0
        holder.join(30)
        assert held.get("a") == LANE.encode()
        assert second == LANE.encode(), "the second call did not wait for the turn"
        assert waited > 0.2, "the second call ran while the first held the turn"
    finally:
        child.terminate()
        child.wait(10)
        child.stderr.close()


def test_a_thread_of_a_hook_in_place_gets_ebadf_from_its_sockets(start):
    # The sockets of a call made in place are served on the lane thread that makes it; another
    # Python thread gets EBADF at once (as after a call) instead of waiting for the call's end.
    Where.reset()
    port, client = start("100:py_where")
    until_in_place(port)
    Where.foreign = []
    assert exchange(port, b"whole") == b"echo:whole", "the request lost a byte"
    assert Where.foreign == [errno.EBADF, "joined"]


def test_stop_proxy_does_not_wait_for_a_hook_asleep_in_place(echo_backend):
    # Killed connections end at once, but not one whose thread sleeps in a hook: stop_proxy
    # returns anyway (after a short wait), and that connection closes when the hook returns.
    Where.reset()
    port = free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                      backend_port=echo_backend.port, protocol="tcp",
                      options=["--behavior", "100:py_where"])
    stopped = threading.Event()
    try:
        until_in_place(port)
        seen = len(Where.threads)
        Where.sleep, Where.sleeps = {LANE: 5}, 1
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"held")
        assert wait_until(lambda: len(Where.threads) >= seen + 1)
        assert Where.threads[-1] == LANE
        t = threading.Thread(target=lambda: (stop_proxy(pid), stopped.set()))
        t.start()
        t.join(30)
        assert stopped.is_set()
        assert Where.woke == [], "stop_proxy waited for the hook asleep in place"
        c.close()
    finally:
        if not stopped.is_set():
            stop_proxy(pid)
        # the hook's thread is the lane's: let it go before the next test
        assert wait_until(lambda: Where.woke, timeout=15)
