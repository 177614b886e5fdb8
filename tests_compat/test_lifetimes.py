"""Every built-in behavior x every protocol (tcp in its modes, http, redis, memcache, smtp,
mysql), with and without `--stay-connected`: a client holds a conversation of two requests on
one connection, against a real server, through the original and through this vaurien."""
from __future__ import annotations

import re
from typing import Any, List

import pytest

from compat import Refused, Scenario, backend, converse, http_shape, normalise_random, proxy
from conftest import check

TIMEOUT = ["--timeout", "3"]

BEHAVIORS = {
    "dummy": [],
    "delay": ["--behavior", "100:delay", "--behavior-delay-sleep", "1"],
    "error": ["--behavior", "100:error"],
    "error-inject": ["--behavior", "100:error", "--behavior-error-inject"],
    "error-warmup": ["--behavior", "100:error", "--behavior-error-warmup", "1"],
    "hang": ["--behavior", "100:hang"],
    "blackout": ["--behavior", "100:blackout"],
    "transient": ["--behavior", "100:transient"],
    "abort": ["--behavior", "100:abort"],  # 2.0: 1.9 has no abort and refuses to start
}

MODES = {
    "tcp": ("echo", []),
    "tcp-keep-alive": ("echo", ["--protocol-tcp-keep-alive"]),
    "tcp-stay": ("echo", ["--stay-connected"]),
    "tcp-keep-alive-stay": ("echo", ["--protocol-tcp-keep-alive", "--stay-connected"]),
    "http": ("http", ["--protocol", "http"]),
    "http-stay": ("http", ["--protocol", "http", "--stay-connected"]),
    "http-keep-alive-reuse": ("http", ["--protocol", "http", "--protocol-http-keep-alive", "--protocol-http-reuse-socket"]),
    "redis": ("redis", ["--protocol", "redis"]),
    "redis-stay": ("redis", ["--protocol", "redis", "--stay-connected"]),
    "memcache": ("memcache", ["--protocol", "memcache"]),
    "memcache-stay": ("memcache", ["--protocol", "memcache", "--stay-connected"]),
    "smtp": ("smtp", ["--protocol", "smtp"]),
    "smtp-stay": ("smtp", ["--protocol", "smtp", "--stay-connected"]),
    "mysql": ("mysql", ["--protocol", "mysql"]),
    "mysql-stay": ("mysql", ["--protocol", "mysql", "--stay-connected"]),
}

SERVERS = {"redis": "redis_server", "memcache": "memcached_server", "smtp": "smtp_server",
           "mysql": "mariadb_server", "http": "custom_http_server"}

HTTP_GET = b"GET /hello HTTP/1.1\r\nHost: example.test\r\n\r\n"


def steps_for(kind: str) -> List[tuple]:
    if kind == "echo":
        return [("send", b"hello\n"), ("read", 0.2, 5), ("send", b"again\n"), ("read", 0.2, 5), ("end", 5)]
    if kind == "http":
        return [("send", HTTP_GET), ("read", 0.2, 5), ("send", HTTP_GET), ("read", 0.2, 5), ("end", 5)]
    if kind == "redis":
        return [("send", b"*1\r\n$4\r\nPING\r\n"), ("read", 0.2, 5), ("send", b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"),
                ("read", 0.2, 5), ("end", 5)]
    if kind == "memcache":
        return [("send", b"set compat 0 0 2\r\nhi\r\n"), ("read", 0.2, 5), ("send", b"get compat\r\n"),
                ("read", 0.2, 5), ("end", 5)]
    if kind == "smtp":
        return [("read", 0.2, 5), ("send", b"HELO compat\r\n"), ("read", 0.2, 5), ("send", b"NOOP\r\n"),
                ("read", 0.2, 5), ("end", 5)]
    raise ValueError(kind)


def shape(kind: str, data: bytes) -> Any:
    """What of the bytes is compared: exact, except what is random in either implementation."""
    if not data:
        return b""
    if kind == "http":
        return http_shape(data) if data.startswith(b"HTTP/") else normalise_random(data)
    return normalise_random(data)


def mysql_conversation(port: int) -> List[str]:
    import pymysql

    out = []
    try:
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=5, read_timeout=5)
    except Exception:  # noqa: BLE001 - which exception depends on the random bytes of `error`
        return ["connect failed"]
    out.append("connected")
    for q in ("SELECT 1", "SELECT 2"):
        try:
            with conn.cursor() as cur:
                cur.execute(q)
                out.append(repr(cur.fetchall()))
        except Exception as e:  # noqa: BLE001
            out.append("%s: %s" % (q, type(e).__name__))
            break
    try:
        conn.close()
    except Exception:  # noqa: BLE001
        pass
    return out


def lifetime(mode: str, behavior: str) -> Scenario:
    kind, mode_args = MODES[mode]
    args = [*mode_args, *BEHAVIORS[behavior], *TIMEOUT]

    def run(impl, ctx):
        try:
            return _run(impl, ctx)
        except Refused:
            return {"refused": "did not start"}

    def _run(impl, ctx):
        if kind == "echo":
            with backend("echo") as b:
                with proxy(impl, args, b.port) as p:
                    obs = converse(p.port, steps_for(kind))
                return {"client": _shape_steps(kind, obs), "backend": b.received()}
        port = ctx[kind]
        with proxy(impl, args, port) as p:
            if kind == "mysql":
                return {"client": mysql_conversation(p.port)}
            return {"client": _shape_steps(kind, converse(p.port, steps_for(kind)))}

    return Scenario("%s/%s" % (mode, behavior), run)


def _shape_steps(kind: str, obs: List[Any]) -> List[Any]:
    out = []
    for o in obs:
        if isinstance(o, list) and o and isinstance(o[0], bytes):
            out.append([shape(kind, o[0]), *o[1:]])
        else:
            out.append(o)
    return out


SCENARIOS = [lifetime(m, b) for m in MODES for b in BEHAVIORS]


@pytest.fixture
def ctx(request, sc):
    kind = MODES[sc.id.split("/")[0]][0]
    if kind not in SERVERS:
        return {}
    value = request.getfixturevalue(SERVERS[kind])
    return {kind: value[0] if isinstance(value, tuple) else value}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_lifetime(sc, impls, ctx):
    check(sc, impls, ctx)
