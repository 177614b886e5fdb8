"""Python behaviors that rewrite the traffic (`on_request`, `on_response`), and hooks that
misuse their sockets: real servers (redis-server, an HTTP/1.1 server, echo servers), real
clients (redis-py, http.client), through a proxy of this process."""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import sys
import threading

import pytest

from helpers import ROOT, free_port
from pyhelpers import Backend, echo_lines, echo_raw, exchange, wait_until

from vaurien.behaviors import Behavior
from vaurien.behaviors.dummy import Dummy
from vaurien.util import get_data, start_proxy, stop_proxy

redis = pytest.importorskip("redis")

sys.path.insert(0, str(ROOT / "examples"))
import corrupt_redis  # noqa: E402  (the example of docs/python.md; registers corrupt_replies)


class AddHeader(Dummy):
    """Adds a header to each HTTP request and to each response."""

    name = "py_add_header"

    def on_request(self, protocol, data, to_backend):
        head, sep, body = data.partition(b"\r\n\r\n")
        return head + b"\r\nX-Vaurien: request" + sep + body

    def on_response(self, protocol, data, to_backend):
        head, sep, body = data.partition(b"\r\n\r\n")
        return bytearray(head + b"\r\nX-Vaurien: response" + sep + body)


class Unchanged(Dummy):
    """Sees every message and changes none: None one time, the very bytes the next."""

    name = "py_unchanged"
    calls = {"request": 0, "response": 0}

    def on_request(self, protocol, data, to_backend):
        Unchanged.calls["request"] += 1
        return None

    def on_response(self, protocol, data, to_backend):
        Unchanged.calls["response"] += 1
        return data


class RaisesOnBoom(Dummy):
    """Raises on an answer that says boom."""

    name = "py_raises_on_boom"

    def on_response(self, protocol, data, to_backend):
        if b"boom" in data:
            raise RuntimeError("no booms here")
        return None


class ReturnsInt(Dummy):
    name = "py_returns_int"

    def on_response(self, protocol, data, to_backend):
        return 42


class Swallow(Dummy):
    """Sends nothing of the answers that say drop."""

    name = "py_swallow"

    def on_response(self, protocol, data, to_backend):
        return b"" if b"drop" in data else None


class ForwardsItself(Dummy):
    """The issue's behavior: reads the request in on_before_handle and forwards a copy with a
    header added by itself, then lets the exchange go on."""

    name = "py_forwards_itself"

    def on_before_handle(self, protocol, source, dest, to_backend):
        data = get_data(source, 65536)
        head, sep, body = data.partition(b"\r\n\r\n")
        dest.sendall(head + b"\r\nX-Added: yes" + sep + body)
        return True


class PeeksAtTheAnswer(Dummy):
    """Reads the answer in on_between_handle and sends it on itself."""

    name = "py_peeks_at_the_answer"

    def on_between_handle(self, protocol, source, dest, to_backend):
        source.sendall(get_data(dest, 65536))
        return True


class SendsOnAClosedSocket(Dummy):
    name = "py_sends_on_a_closed_socket"

    def on_before_handle(self, protocol, source, dest, to_backend):
        source.close()
        source.sendall(b"too late")
        return True


class AnswersAndClosesDest(Dummy):
    """Takes the request, answers it itself and closes the backend side: the exchange ends
    there, as the hook said (not a misuse)."""

    name = "py_answers_and_closes_dest"

    def on_before_handle(self, protocol, source, dest, to_backend):
        source.sendall(b"answered:" + get_data(source))
        dest._closed = True
        return True


for _cls in (AnswersAndClosesDest, AddHeader, Unchanged, RaisesOnBoom, ReturnsInt, Swallow, ForwardsItself, PeeksAtTheAnswer,
             SendsOnAClosedSocket):
    Behavior.register(_cls)


@pytest.fixture
def proxy():
    """proxy(backend_port, protocol, behavior, *flags) → the proxy's port; stopped at the end."""
    pids = []

    def start(backend_port, protocol, behavior, *flags):
        port = free_port()
        pids.append(start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1",
                                backend_port=backend_port, protocol=protocol, http=False,
                                options=["--behavior", behavior, *flags]))
        return port

    yield start
    for pid in pids:
        stop_proxy(pid)


@pytest.fixture
def raw_echo():
    b = Backend(echo_raw)
    yield b
    b.close()


@pytest.fixture
def line_echo():
    b = Backend(echo_lines)
    yield b
    b.close()


def closed(s: socket.socket) -> bool:
    """True when the proxy closed the connection (an EOF or a reset) before sending anything."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def python_log(caplog, *words):
    """True once a record of logger vaurien.python says every one of `words`."""
    return wait_until(lambda: any(r.name == "vaurien.python" and all(w in r.getMessage() for w in words)
                                  for r in caplog.records), timeout=10)


@pytest.mark.timeout(60)
def test_the_example_corrupts_about_one_redis_reply_in_ten(redis_server, proxy):
    direct = redis.Redis("127.0.0.1", redis_server)
    values = {f"rewrite:{i}": os.urandom(20) + b"value %d" % i for i in range(200)}
    direct.mset(values)
    port = proxy(redis_server, "redis", "100:corrupt_replies", "--stay-connected")
    r = redis.Redis("127.0.0.1", port, socket_timeout=10)
    corrupted = 0
    for key, value in values.items():
        got = r.get(key)
        if got != value:
            # One field changed, and only so: each byte's 0x20 bit flipped, the length kept.
            assert got == bytes(b ^ 0x20 for b in value), (key, got, value)
            corrupted += 1
    # One in ten at random: 20 expected; outside 3..50 has a chance below 1e-6.
    assert 3 <= corrupted <= 50, corrupted
    # Integer replies: off by one when corrupted, exact otherwise.
    direct.set("rewrite:counter", 0)
    seen = [r.incr("rewrite:counter") for _ in range(100)]
    assert all(got in (n, n + 1) for n, got in enumerate(seen, 1)), seen
    assert any(got == n + 1 for n, got in enumerate(seen, 1)) and any(got == n for n, got in enumerate(seen, 1))
    assert int(direct.get("rewrite:counter")) == 100  # the requests went through untouched


def test_the_corruption_of_one_reply():
    assert corrupt_redis.corrupt(b"$5\r\nhello\r\n") == b"$5\r\nHELLO\r\n"
    assert corrupt_redis.corrupt(b":41\r\n") == b":42\r\n"
    assert corrupt_redis.corrupt(b"+OK\r\n") is None and corrupt_redis.corrupt(b"$-1\r\n") is None


@pytest.mark.timeout(60)
def test_an_http_behavior_adds_a_header_to_the_request_and_to_the_response(custom_http_server, proxy):
    port = proxy(custom_http_server, "http", "100:py_add_header",
                 "--protocol-http-keep-alive", "--protocol-http-reuse-socket")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):  # one connection, several exchanges
        c.request("GET", "/headers")
        resp = c.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert b"X-Vaurien: request\n" in body  # the backend saw the added header
        assert resp.getheader("X-Vaurien") == "response"  # and the client the other one
    # A request with a body goes whole to the hook and whole to the backend.
    payload = os.urandom(300_000)
    c.request("POST", "/upload", body=payload, headers={"Content-Type": "application/octet-stream"})
    resp = c.getresponse()
    assert resp.read() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()
    # A chunked response is one message too.
    c.request("GET", "/chunked")
    resp = c.getresponse()
    assert resp.getheader("X-Vaurien") == "response" and resp.read().startswith(b"hello chunked")
    c.close()
    # A client that waits for 100 Continue before its body gets it from the proxy, which needs
    # the body for the hook.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        answer = b""
        while not answer.endswith(hashlib.sha256(b"hello").hexdigest().encode()):
            chunk = s.recv(65536)
            assert chunk, answer
            answer += chunk
        assert b"X-Vaurien: response" in answer and b"\r\n\r\n5 " in answer


@pytest.mark.timeout(60)
def test_hooks_that_return_none_or_their_data_change_no_byte(raw_echo, redis_server, proxy):
    Unchanged.calls.update(request=0, response=0)
    port = proxy(raw_echo.port, "tcp", "100:py_unchanged", "--protocol-tcp-keep-alive", "--stay-connected")
    payload = os.urandom(4 << 20)
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        while len(got) < len(payload):
            chunk = s.recv(1 << 20)
            assert chunk, "closed after %d bytes" % len(got)
            got += chunk
        sender.join()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()  # every byte, in order
    assert Unchanged.calls["request"] > 0 and Unchanged.calls["response"] > 0
    # The same through the redis framing: commands, a pipeline, a large value.
    port = proxy(redis_server, "redis", "100:py_unchanged", "--stay-connected")
    r = redis.Redis("127.0.0.1", port, socket_timeout=10)
    big = os.urandom(1 << 20)
    assert r.set("rewrite:big", big) and r.get("rewrite:big") == big
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"rewrite:p{i}", i).get(f"rewrite:p{i}")
    assert pipe.execute() == [x for i in range(50) for x in (True, str(i).encode())]


@pytest.mark.timeout(180)
def test_memcache_mysql_and_smtp_sessions_are_the_same_through_hooks_that_change_nothing(
        memcached_server, mariadb_server, smtp_server, proxy):
    """The sessions of test_protocols.py (real servers, real clients: every command, binary
    values, multi-result sets, 100 kB mails), each message read whole and handed to Python."""
    from test_protocols import MemcacheClient, memcache_session, mysql_session, send_mail

    Unchanged.calls.update(request=0, response=0)
    direct = MemcacheClient(("127.0.0.1", memcached_server), timeout=10)
    expected = memcache_session(direct, "rewrite")
    direct.close()
    port = proxy(memcached_server, "memcache", "100:py_unchanged", "--stay-connected")
    through = MemcacheClient(("127.0.0.1", port), timeout=10)
    assert memcache_session(through, "rewrite") == expected
    through.close()

    expected = mysql_session(mariadb_server)
    assert mysql_session(proxy(mariadb_server, "mysql", "100:py_unchanged")) == expected

    smtp_port, maildir = smtp_server
    before = set(maildir.iterdir())
    expected = send_mail(smtp_port, 2)
    direct_mail = sorted(p.read_bytes() for p in set(maildir.iterdir()) - before)
    before = set(maildir.iterdir())
    assert send_mail(proxy(smtp_port, "smtp", "100:py_unchanged"), 2) == expected
    assert sorted(p.read_bytes() for p in set(maildir.iterdir()) - before) == direct_mail
    assert Unchanged.calls["request"] > 20 and Unchanged.calls["response"] > 20


@pytest.mark.timeout(60)
def test_a_rewriting_hook_that_raises_closes_its_connection_only(line_echo, proxy, caplog):
    caplog.set_level(logging.ERROR, logger="vaurien.python")
    port = proxy(line_echo.port, "tcp", "100:py_raises_on_boom", "--protocol-tcp-keep-alive", "--stay-connected")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as other:
        other.sendall(b"one\n")
        assert other.recv(100) == b"echo:one\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"boom\n")
            assert closed(s)  # nothing of the answer sent
        assert python_log(caplog, "py_raises_on_boom.on_response raised")
        other.sendall(b"two\n")
        assert other.recv(100) == b"echo:two\n"


@pytest.mark.timeout(60)
def test_a_rewriting_hook_that_returns_no_bytes_is_said_in_one_line(line_echo, proxy, caplog):
    caplog.set_level(logging.ERROR, logger="vaurien.python")
    port = proxy(line_echo.port, "tcp", "100:py_returns_int", "--protocol-tcp-keep-alive")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"x\n")
        assert closed(s)
    assert python_log(caplog, "'py_returns_int'", "on_response", "returned int", "None")


@pytest.mark.timeout(60)
def test_an_empty_rewrite_sends_nothing(line_echo, proxy):
    port = proxy(line_echo.port, "tcp", "100:py_swallow", "--protocol-tcp-keep-alive", "--stay-connected")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"drop\n")
        assert wait_until(lambda: b"drop" in line_echo.received)  # answered, the answer dropped
        s.sendall(b"keep\n")
        assert s.recv(100) == b"echo:keep\n"  # the first thing the client gets


@pytest.mark.timeout(60)
def test_a_hook_that_forwards_the_request_itself_is_told_what_to_do_instead(custom_http_server, proxy, caplog):
    """Issue 18: a behavior that reads the request and forwards a modified copy with
    dest.sendall left the client with RemoteDisconnected after --timeout and nothing in the log.
    Now the connection closes at once, with one line naming the behavior, the hook, what it did
    and what to write instead."""
    caplog.set_level(logging.ERROR, logger="vaurien.python")
    port = proxy(custom_http_server, "http", "100:py_forwards_itself", "--timeout", "60")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        c.request("GET", "/headers")
        c.getresponse()
    c.close()
    assert python_log(caplog, "'py_forwards_itself'", "on_before_handle", "read", "bytes of the request",
                      "sent", "returned True", "on_request(protocol, data, to_backend)")


@pytest.mark.timeout(60)
def test_a_hook_that_takes_the_request_and_closes_a_side_is_not_told_anything(line_echo, proxy, caplog):
    caplog.set_level(logging.ERROR, logger="vaurien.python")
    port = proxy(line_echo.port, "tcp", "100:py_answers_and_closes_dest")
    assert exchange(port, b"x\n") == b"answered:x\n"
    assert exchange(port, b"y\n") == b"answered:y\n"
    assert not [r for r in caplog.records if r.name == "vaurien.python"]


@pytest.mark.timeout(60)
def test_a_hook_that_takes_the_answer_and_returns_true_is_said(redis_server, proxy, caplog):
    caplog.set_level(logging.ERROR, logger="vaurien.python")
    port = proxy(redis_server, "redis", "100:py_peeks_at_the_answer", "--timeout", "60", "--stay-connected")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(100) == b"+PONG\r\n"  # what the hook sent itself
        assert closed(s)  # then the connection ends at once, not after --timeout
    assert python_log(caplog, "'py_peeks_at_the_answer'", "on_between_handle", "of the answer", "on_response")


@pytest.mark.timeout(60)
def test_a_hook_that_sends_on_a_closed_socket_is_named(line_echo, proxy, caplog):
    caplog.set_level(logging.ERROR, logger="vaurien.python")
    port = proxy(line_echo.port, "tcp", "100:py_sends_on_a_closed_socket")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"x\n")
        assert closed(s)
    assert python_log(caplog, "py_sends_on_a_closed_socket.on_before_handle raised")
