"""The `vaurien` command line, through the original 1.9 and through this vaurien: every flag of
the original, in every form argparse accepts (`--flag value`, `--flag=value`, unambiguous
prefixes, a flag given twice), bad values, and which error comes first when several things
are wrong.

Observed: accepted (it listens) or refused (it exits non-zero; the original exits 2 for
argparse's errors and 1 with a traceback for the others, ours 2 for every refusal: an entry of
docs/differences.md, so the status number is not compared), what the refusal is about, and
the effect of an accepted flag on a client's conversation or on what the backend receives.
"""
from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

from compat import Impl, Scenario, backend, converse, dead_port, free_port, listening, proxy, stop
from conftest import check

# ---------------------------------------------------------------------------------------------
# Helpers.


def error_line(stderr: bytes) -> str:
    """The line of stderr that says what is wrong: the first one with `error:` in it (argparse's
    `vaurien: error: ...`, a traceback's `ValueError: ...`, ours `vaurien: error: ...` or clap's
    `error: ...`), else the last non-empty one (`sys.exit(message)`)."""
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln.lower():
            return ln.lower()
    return lines[-1].lower() if lines else ""


def attempt(impl: Impl, args: Sequence[str], keys: Sequence[str] = (), wait: float = 10.0,
            with_addresses: bool = True) -> Dict[str, Any]:
    """Starts `vaurien ARGS` (with `--proxy`/`--backend` on free loopback ports first, so that the
    ARGS may override them); `accepted` once it listens on the proxy port, `refused` when it
    exits first. For a refusal, `about` lists which of `keys` the error line names."""
    port = free_port()
    argv = [a.format(port=port) for a in args]
    if with_addresses:
        argv = ["--proxy", "127.0.0.1:%d" % port, "--backend", "127.0.0.1:%d" % dead_port(), *argv]
    tmp = Path(tempfile.mkdtemp(prefix="vaurien-cli-"))
    proc = subprocess.Popen([*impl.command, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(tmp), env=impl.env())
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out, err = proc.communicate()
                err = err + out  # the original printed a bad ini file's message on stdout
                res: Dict[str, Any] = {"result": "refused" if proc.returncode else "exited 0"}
                if keys:
                    line = error_line(err)
                    res["about"] = [k for k in keys if k in line]
                return res
            if listening(port):
                return {"result": "accepted"}
            time.sleep(0.05)
        return {"result": "neither listening nor exited"}
    finally:
        stop(proc)
        proc.communicate()


def accepts(sid: str, args: Sequence[str], keys: Sequence[str] = ()) -> Scenario:
    return Scenario(sid, lambda impl, ctx: attempt(impl, args, keys))


ECHO = [("send", b"hello\n"), ("read", 0.3, 6), ("end", 6)]


def effect(sid: str, args: Sequence[str], kind: str = "answer", steps: Sequence[tuple] = ECHO) -> Scenario:
    """A conversation through a proxy started with `args` (`{port}`/`{backend}` filled in):
    what the client saw and what reached the backend."""

    def run(impl, ctx):
        with backend(kind) as b:
            with proxy(impl, args, b.port) as p:
                obs = converse(p.port, steps)
            return {"client": obs, "backend": b.received()}

    return Scenario(sid, run)


SCENARIOS: List[Scenario] = []
add = SCENARIOS.append

# ---------------------------------------------------------------------------------------------
# Every flag of the original, accepted with a good value, in both `--flag value` and `--flag=value`.

GOOD = {
    "--http": [],
    "--http-host": ["127.0.0.1"],
    "--http-port": ["{port}0"],  # replaced below with a free port
    "--protocol": ["http"],
    "--behavior": ["50:delay,10:error"],
    "--bufsize": ["1024"],
    "--timeout": ["5"],
    "--stay-connected": [],
    "--pool-max-size": ["10"],
    "--pool-timeout": ["5"],
    "--sync": [],
    "--backlog": ["16"],
    "--statsd.enabled": [],
    "--statsd.host": ["127.0.0.1"],
    "--statsd.port": ["9125"],
    "--statsd.prefix": ["app"],
    "--statsd.sample-rate": ["0.5"],
    "--log-level": ["debug"],
    "--log-output": ["vaurien.log"],
    "--behavior-delay-sleep": ["2"],
    "--behavior-delay-before": [],
    "--behavior-error-inject": [],
    "--behavior-error-warmup": ["3"],
    "--behavior-transient-agitate": ["2"],
    "--behavior-transient-inject": [],
    "--behavior-transient-warmup": ["1"],
    "--protocol-http-buffer": ["4096"],
    "--protocol-http-keep-alive": [],
    "--protocol-http-overwrite-host-header": [],
    "--protocol-http-reuse-socket": [],
    "--protocol-memcache-buffer": ["4096"],
    "--protocol-memcache-keep-alive": [],
    "--protocol-memcache-reuse-socket": [],
    "--protocol-mysql-buffer": ["4096"],
    "--protocol-mysql-reuse-socket": [],
    "--protocol-redis-buffer": ["4096"],
    "--protocol-redis-keep-alive": [],
    "--protocol-redis-reuse-socket": [],
    "--protocol-smtp-buffer": ["4096"],
    "--protocol-smtp-reuse-socket": [],
    "--protocol-tcp-buffer": ["4096"],
    "--protocol-tcp-keep-alive": [],
    "--protocol-tcp-reuse-socket": [],
}


def flag_scenario(flag: str, value: List[str], eq: bool) -> Scenario:
    def run(impl, ctx):
        v = [str(free_port())] if flag == "--http-port" else value
        extra = ["--http", "--http-host", "127.0.0.1"] if flag == "--http-port" else []
        extra += ["--http-port", str(free_port())] if flag in ("--http", "--http-host") else []
        args = ["%s=%s" % (flag, v[0])] if (eq and v) else [flag, *v]
        return attempt(impl, [*extra, *args])

    return Scenario("flag/%s%s" % (flag.lstrip("-"), "/eq" if eq else ""), run)


for _flag, _value in GOOD.items():
    add(flag_scenario(_flag, _value, False))
    if _value:
        add(flag_scenario(_flag, _value, True))

add(Scenario("flag/version", lambda impl, ctx: (lambda r: {"status": r["status"], "one line": len(r["stdout"].splitlines()) == 1})(
    __import__("compat").run_command(impl, ["--version"]))))
add(Scenario("flag/help", lambda impl, ctx: (lambda r: {"status": r["status"], "mentions --behavior-delay-sleep": b"--behavior-delay-sleep" in r["stdout"]})(
    __import__("compat").run_command(impl, ["--help"]))))

# --log-level in any case the original's choices allow.
for _lvl in ("critical", "error", "warning", "info", "debug", "CRITICAL", "DEBUG", "WARNING"):
    add(accepts("log-level/%s" % _lvl, ["--log-level", _lvl]))

# ---------------------------------------------------------------------------------------------
# Prefixes (argparse's allow_abbrev): unambiguous ones work, ambiguous ones are refused.

for _args in (["--prox", "127.0.0.1:{port}"], ["--backe", "127.0.0.1:1"], ["--behavior-delay-sl", "1"], ["--tim", "3"],
              ["--stay"], ["--pool-m", "3"], ["--pool-t", "3"], ["--buf", "100"], ["--backl", "10"], ["--sy"],
              ["--protocol-tcp-k"], ["--protocol-http-o"], ["--behavior-error-w", "2"], ["--behavior-transient-a", "2"],
              ["--log-l", "info"], ["--log-o", "x.log"], ["--statsd.e"], ["--statsd.sa", "0.1"], ["--tim=3"],
              ["--behavior-delay-sl=1"]):
    add(accepts("prefix/%s" % " ".join(_args).replace("{port}", "P"), _args))

for _args in (["--back", "127.0.0.1:1"], ["--pro", "tcp"], ["--prot", "tcp"], ["--log", "info"], ["--pool", "3"],
              ["--statsd", ""], ["--behavior-error-", "1"], ["--behavior-d", "1"], ["--h"], ["--b", "x"]):
    add(accepts("prefix-ambiguous/%s" % " ".join(_args), [a for a in _args if a]))

# A flag given twice: the last one wins (and a switch twice is fine).
for _args in (["--timeout", "2", "--timeout", "3"], ["--stay-connected", "--stay-connected"], ["--sync", "--sync"],
              ["--protocol", "redis", "--protocol", "tcp"], ["--behavior", "120:delay", "--behavior", "50:delay"],
              ["--protocol-tcp-keep-alive", "--protocol-tcp-keep-alive"], ["--log-level", "nope", "--log-level", "info"],
              ["--behavior-delay-sleep", "1", "--behavior-delay-sleep", "2"]):
    add(accepts("twice/%s" % " ".join(_args), _args))

# ---------------------------------------------------------------------------------------------
# Values: what each implementation accepts and refuses.

VALUES = [
    ["--timeout", "x"], ["--timeout", "-1"], ["--timeout", "0"], ["--timeout", "1e3"],
    ["--bufsize", "0"], ["--bufsize", "x"], ["--bufsize", "-5"], ["--backlog", "-1"], ["--backlog", "0"], ["--backlog", "x"],
    ["--pool-max-size", "0"], ["--pool-max-size", "x"], ["--pool-timeout", "0"], ["--pool-timeout", "-1"],
    ["--pool-timeout", "x"], ["--http-port", "x"], ["--statsd.port", "x"], ["--statsd.sample-rate", "x"],
    ["--protocol", "foo"], ["--protocol", "HTTP"], ["--log-level", "nope"], ["--log-level", ""],
    ["--behavior", "delay"], ["--behavior", "120:delay"], ["--behavior", "10:nope"], ["--behavior", "x:delay"],
    ["--behavior", "50:delay,60:error"], ["--behavior", "100:delay"], ["--behavior", "0:delay"],
    ["--behavior", "20:delay,30:blackout,10:hang,10:error,10:transient"],
    ["--behavior-delay-sleep", "x"], ["--behavior-delay-sleep", "-1"], ["--behavior-delay-sleep", "0.5"],
    ["--behavior-error-warmup", "x"], ["--behavior-error-warmup", "-2"], ["--protocol-tcp-buffer", "x"],
    ["--proxy", "nocolon"], ["--proxy", "127.0.0.1:x"], ["--backend", "nocolon"], ["--backend", "127.0.0.1:x"],
    ["--config", "missing.ini"], ["--nope"], ["positional"], ["--behavior-delay-before", "false"],
    ["--http", "--behavior", "120:delay"], ["--http", "--behavior", "delay"], ["--http", "--behavior", "10:nope"],
    ["--statsd.enabled", "--statsd.port", "1"],
    ["--stay-connected=true"], ["--http=1"], ["--sync=yes"], ["--protocol-tcp-keep-alive=true"],
]
for _args in VALUES:
    def _run(impl, ctx, _args=_args):
        args = list(_args)
        if "--http" in args:
            args += ["--http-host", "127.0.0.1", "--http-port", str(free_port())]
        return attempt(impl, args)
    add(Scenario("value/%s" % " ".join(_args), _run))

# Which error comes first when several things are wrong.
ORDER = [
    (["--protocol", "foo", "--timeout", "x"], ("protocol", "timeout")),
    (["--timeout", "x", "--protocol", "foo"], ("protocol", "timeout")),
    (["--timeout", "x", "--bufsize", "y"], ("timeout", "bufsize")),
    (["--bufsize", "y", "--timeout", "x"], ("timeout", "bufsize")),
    (["--config", "missing.ini", "--protocol", "foo"], ("missing", "protocol")),
    (["--config", "missing.ini", "--behavior", "delay"], ("missing", "percentage")),
    (["--behavior", "delay", "--proxy", "nocolon"], ("percentage", "host:port")),
    (["--proxy", "nocolon", "--behavior", "delay"], ("percentage", "host:port")),
    (["--behavior", "120:delay", "--timeout", "x"], ("100", "timeout")),
    (["--version", "--timeout", "x"], ("timeout",)),
    (["--version", "--behavior", "delay"], ("percentage",)),
    (["--version", "--config", "missing.ini"], ("missing",)),
]
for _args, _keys in ORDER:
    add(Scenario("order/%s" % " ".join(_args), lambda impl, ctx, a=_args, k=_keys: (
        lambda r: r if r["result"] != "exited 0" else {"result": "exited 0"})(attempt(impl, a, k))))

# ---------------------------------------------------------------------------------------------
# Effects.

TO = ["--timeout", "3"]
DELAYED = ["--behavior", "100:delay"]
add(effect("effect/delay-sleep", [*TO, *DELAYED, "--behavior-delay-sleep", "1"]))
add(effect("effect/delay-sleep-eq", [*TO, "--behavior=100:delay", "--behavior-delay-sleep=1"]))
add(effect("effect/delay-sleep-prefix", [*TO, *DELAYED, "--behavior-delay-sl", "1"]))
add(effect("effect/delay-sleep-twice", [*TO, *DELAYED, "--behavior-delay-sleep", "3", "--behavior-delay-sleep", "1"]))
add(effect("effect/delay-sleep-fraction", [*TO, *DELAYED, "--behavior-delay-sleep", "0.1"]))
add(effect("effect/behavior-twice", [*TO, "--behavior", "100:blackout", "--behavior", "100:dummy"]))
# The connection of a `hang` exchange is closed after --timeout.
HANG = ["--behavior", "100:hang"]
add(effect("effect/timeout", [*HANG, "--timeout", "1"], "answer", [("send", b"hello\n"), ("end", 6)]))
add(effect("effect/timeout-twice", [*HANG, "--timeout", "3", "--timeout", "1"], "answer", [("send", b"hello\n"), ("end", 6)]))
add(effect("effect/timeout-prefix", [*HANG, "--tim", "1"], "answer", [("send", b"hello\n"), ("end", 6)]))
add(effect("effect/timeout-eq", [*HANG, "--timeout=1"], "answer", [("send", b"hello\n"), ("end", 6)]))
add(effect("effect/timeout-2", [*HANG, "--timeout", "2"], "answer", [("send", b"hello\n"), ("end", 6)]))
add(effect("effect/bufsize", [*TO, "--bufsize", "4"], "answer", [("send", b"hello world\n"), ("read", 0.3, 6), ("end", 6)]))
add(effect("effect/protocol-tcp-buffer", [*TO, "--protocol-tcp-buffer", "4"], "answer",
           [("send", b"hello world\n"), ("read", 0.3, 6), ("end", 6)]))
add(effect("effect/keep-alive", [*TO, "--protocol-tcp-keep-alive"], "echo",
           [("send", b"a\n"), ("read", 0.2, 3), ("send", b"b\n"), ("read", 0.2, 3), ("end", 6)]))
add(effect("effect/keep-alive-prefix", [*TO, "--protocol-tcp-k"], "echo",
           [("send", b"a\n"), ("read", 0.2, 3), ("send", b"b\n"), ("read", 0.2, 3), ("end", 6)]))
add(effect("effect/backend-twice", [*TO, "--backend", "127.0.0.1:1", "--backend", "127.0.0.1:{backend}"]))
add(effect("effect/backend-eq", [*TO, "--backend=127.0.0.1:{backend}"]))
add(effect("effect/stay-connected", [*TO, "--stay-connected"], "answer",
           [("send", b"a\n"), ("read", 0.2, 3), ("send", b"b\n"), ("read", 0.2, 3), ("end", 6)]))
add(effect("effect/blackout", [*TO, "--behavior", "100:blackout"]))
add(effect("effect/error-warmup", [*TO, "--behavior", "100:error", "--behavior-error-warmup", "5"]))
for _extra in (["--sync"], ["--pool-max-size", "1"], ["--pool-timeout", "1"], ["--backlog", "1"],
               ["--timeout", "0"], ["--bufsize", "0"], ["--backlog", "-1"], ["--pool-max-size", "0"]):
    add(effect("effect/%s" % " ".join(_extra), [*TO, *_extra]))


def http_host(sid: str, args: List[str]) -> Scenario:
    def run(impl, ctx):
        with backend("answer") as b:
            with proxy(impl, ["--protocol", "http", *TO, *args], b.port) as p:
                converse(p.port, [("send", b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"), ("read", 0.3, 5)])
            got = b.received()
        return {"host header": [ln for c in got for ln in c.split(b"\r\n") if ln.lower().startswith(b"host:")] and
                [ln.replace(str(b.port).encode(), b"PORT") for c in got for ln in c.split(b"\r\n") if ln.lower().startswith(b"host:")]}

    return Scenario(sid, run)


add(http_host("effect/http", []))
add(http_host("effect/http-overwrite-host", ["--protocol-http-overwrite-host-header"]))


def statsd(sid: str, args: List[str]) -> Scenario:
    """Counters sent to a UDP listener: which kinds arrived (start, end, to_backend, to_client)
    and under which prefix."""

    def run(impl, ctx):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(0.2)
        port = udp.getsockname()[1]
        got = []
        try:
            with backend("answer") as b:
                with proxy(impl, [*TO, *[a.replace("STATSD", str(port)) for a in args]], b.port) as p:
                    converse(p.port, [("send", b"hi\n"), ("read", 0.3, 5), ("end", 5)])
                    end = time.monotonic() + 1.5
                    while time.monotonic() < end:
                        try:
                            got.append(udp.recv(65536).decode())
                        except socket.timeout:
                            pass
        finally:
            udp.close()
        kinds = set()
        for pkt in got:
            for line in pkt.splitlines():
                name = line.split(":", 1)[0]
                parts = name.split(".")
                # The original's per-connection counters (PREFIX.PROTOCOL.ID.KIND); ours also
                # sends per-proxy ones (PREFIX.PROXY.KIND, a docs/toxiproxy.md extra), not compared.
                if len(parts) < 4 or parts[1] != "tcp":
                    continue
                kinds.add("%s...%s" % (".".join(parts[:2]), parts[-1]))
        return sorted(kinds)

    return Scenario(sid, run)


add(statsd("effect/statsd", ["--statsd.enabled", "--statsd.host", "127.0.0.1", "--statsd.port", "STATSD"]))
add(statsd("effect/statsd-prefix", ["--statsd.enabled", "--statsd.port", "STATSD", "--statsd.host", "127.0.0.1",
                                    "--statsd.prefix", "app"]))
add(statsd("effect/statsd-off", ["--statsd.port", "STATSD", "--statsd.host", "127.0.0.1"]))


def log_output(sid: str, args: List[str]) -> Scenario:
    def run(impl, ctx):
        with proxy(impl, [*TO, "--log-output", "{dir}/out.log", *args]) as p:
            time.sleep(0.5)
            path = Path(str(p.log).replace("log.txt", "out.log"))
            text = path.read_text() if path.exists() else None
            return {"file": text is not None, "has lines": bool(text), "stderr has lines": bool(p.log.read_text().strip())}

    return Scenario(sid, run)


def api_port(sid: str, form: str) -> Scenario:
    """The control API answers where --http-host/--http-port say, in each form."""

    def run(impl, ctx):
        import http.client
        import json as _json

        hp = free_port()
        args = {"plain": ["--http", "--http-host", "127.0.0.1", "--http-port", str(hp)],
                "eq": ["--http", "--http-host=127.0.0.1", "--http-port=%d" % hp],
                "prefix": ["--http", "--http-h", "127.0.0.1", "--http-p", str(hp)],
                "twice": ["--http", "--http", "--http-host", "127.0.0.1", "--http-port", "1", "--http-port", str(hp)]}[form]
        port = free_port()
        proc = subprocess.Popen([*impl.command, "--proxy", "127.0.0.1:%d" % port, "--backend", "127.0.0.1:1", *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=impl.env())
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not listening(hp) and proc.poll() is None:
                time.sleep(0.05)
            if not listening(hp):
                return "not listening"
            c = http.client.HTTPConnection("127.0.0.1", hp, timeout=5)
            try:
                c.request("GET", "/behavior")
                r = c.getresponse()
                return [r.status, _json.loads(r.read().decode())]
            finally:
                c.close()
        finally:
            stop(proc)

    return Scenario(sid, run)


for _form in ("plain", "eq", "prefix", "twice"):
    add(api_port("effect/http-port/%s" % _form, _form))

add(log_output("effect/log-output", []))
add(log_output("effect/log-output-critical", ["--log-level", "critical"]))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_cli(sc, impls):
    check(sc, impls, {})
