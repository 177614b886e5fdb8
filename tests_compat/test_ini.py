"""The ini file (`--config`), through the original 1.9 and through this vaurien: every
`[vaurien]` key, typed values, multi-line values, `[DEFAULT] extends`, `[behavior:NAME]` and
`[protocol:NAME]` options, unknown keys and sections, and custom behaviors and protocols
loaded with `callable = ...` in every form the original accepted.

The original's `vaurien` is a console script: the current directory is not on its `sys.path`,
so a custom module next to the ini file needs `PYTHONPATH` (given to the original only, and
said in each such scenario); ours (`python -m vaurien.run`) finds it there by itself.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

from compat import Impl, Scenario, backend, converse, dead_port, free_port, listening, stop
from conftest import check

# A behavior and protocols valid in Python 2 and 3, for the `callable = ...` scenarios.
PLUGINS = '''
from vaurien.behaviors.dummy import Dummy
from vaurien.protocols.base import BaseProtocol


class Tagger(Dummy):
    """Sends "T:" to the client before each exchange."""
    name = 'tagger'
    options = {'tag': ('what to send first', str, 'T')}

    def on_before_handle(self, protocol, source, dest, to_backend):
        if to_backend:
            source.sendall((self.option('tag') + ':').encode('ascii'))
        return True

    def on_after_handle(self, protocol, source, dest, to_backend):
        return True


tagger = Tagger()


class Quiet(Dummy):
    """Hooks that return nothing from on_after_handle: the original ignores what it returns."""
    name = 'quiet'

    def on_before_handle(self, protocol, source, dest, to_backend):
        return True

    def on_after_handle(self, protocol, source, dest, to_backend):
        self.seen = to_backend


quiet = Quiet()


class AfterFalse(Quiet):
    """on_after_handle returns False: ignored by the original too."""
    name = 'after_false'

    def on_after_handle(self, protocol, source, dest, to_backend):
        return False


after_false = AfterFalse()


class Unjudgeable(object):
    def __bool__(self):
        raise ValueError('no truth value')
    __nonzero__ = __bool__


class AfterWeird(Quiet):
    """on_after_handle returns an object whose truth test raises: never tested by the original."""
    name = 'after_weird'

    def on_after_handle(self, protocol, source, dest, to_backend):
        return Unjudgeable()


after_weird = AfterWeird()


class Shout(BaseProtocol):
    """Upper-cases what the client sends; one exchange a connection."""
    name = 'shout'

    def _handle(self, source, dest, to_backend, *rest):
        data = self._get_data(source)
        if not data:
            return False
        dest.sendall(data.upper())
        source.sendall(self._get_data(dest))
        return False


shout = Shout()


class Shout19(BaseProtocol):
    """Shout, written for 1.9: `_handle` without the 2.0 `on_between_handle` argument."""
    name = 'shout19'

    def _handle(self, source, dest, to_backend):
        data = self._get_data(source)
        if not data:
            return False
        dest.sendall(data.upper())
        source.sendall(self._get_data(dest))
        return False


shout19 = Shout19()
'''

ANSWER = [("send", b"hello\n"), ("read", 0.3, 5), ("end", 5)]


def start(impl: Impl, ini: str, files: Optional[Dict[str, str]] = None, args: Sequence[str] = (),
          env: Optional[Dict[str, str]] = None, pythonpath_ini_dir: bool = False, cwd_ini_dir: bool = True,
          backend_port: Optional[int] = None, wait: float = 10.0):
    """Writes `ini` (and `files`) to a fresh directory, `{port}`, `{backend}` and `{dir}` filled
    in, and starts `vaurien --config DIR/vaurien.ini ARGS` in it (or in another empty directory
    when not `cwd_ini_dir`). Returns (process, port, dir) once it listens, or (process, None,
    dir) when it exited first."""
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="vaurien-ini-"))
    subst = {"port": port, "backend": backend_port or dead_port(), "dir": d}
    for name, text in (files or {}).items():
        (d / name).write_text(text.format(**subst) if "{port}" in text or "{backend}" in text else text)
    (d / "vaurien.ini").write_text(ini.format(**subst))
    e = impl.env()
    e.update(env or {})
    if pythonpath_ini_dir and impl.name == "original":
        e["PYTHONPATH"] = str(d)
    cwd = d if cwd_ini_dir else Path(tempfile.mkdtemp(prefix="vaurien-cwd-"))
    proc = subprocess.Popen([*impl.command, "--config", str(d / "vaurien.ini"), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(cwd), env=e)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, None, d
        if listening(port):
            return proc, port, d
        time.sleep(0.05)
    return proc, None, d


def finish(proc: subprocess.Popen, d: Path) -> bytes:
    stop(proc)
    out = proc.communicate()[0]
    shutil.rmtree(d, ignore_errors=True)
    return out or b""


BASE = "[vaurien]\nproxy = 127.0.0.1:{port}\nbackend = 127.0.0.1:{backend}\n"


def conversation(sid: str, ini: str, steps: Sequence[tuple] = ANSWER, kind: str = "answer", **kw: Any) -> Scenario:
    """Accepted or refused; when accepted, a client's conversation and what reached the backend."""

    def run(impl, ctx):
        with backend(kind) as b:
            proc, port, d = start(impl, ini, backend_port=b.port, **kw)
            try:
                if port is None:
                    return {"result": "refused"}
                obs = converse(port, steps)
            finally:
                finish(proc, d)
            got = [c.replace(b":%d" % b.port, b":BACKEND").replace(b":%d" % port, b":PROXY") for c in b.received()]
            return {"result": "accepted", "client": obs, "backend": got}

    return Scenario(sid, run)


def warned(sid: str, ini: str, word: str, **kw: Any) -> Scenario:
    """Accepted or refused, and whether the log names `word` (ours warns about what it
    ignores; the original said nothing: compared only for ours, see `ours_warns`)."""

    def run(impl, ctx):
        proc, port, d = start(impl, ini, **kw)
        time.sleep(0.3)
        out = finish(proc, d)
        res: Dict[str, Any] = {"result": "accepted" if port else "refused"}
        if impl.name == "ours":
            assert word.encode() in out, "ours does not warn about %r: %r" % (word, out)
        return res

    return Scenario(sid, run)


SCENARIOS: List[Scenario] = []
add = SCENARIOS.append

HANG_END = [("send", b"hello\n"), ("end", 6)]
TWO = [("send", b"a\n"), ("read", 0.2, 3), ("send", b"b\n"), ("read", 0.2, 3), ("end", 5)]

# [vaurien] keys.
add(conversation("vaurien/proxy-backend", BASE))
add(conversation("vaurien/protocol", BASE + "protocol = http\n",
                 [("send", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ("read", 0.3, 5), ("end", 5)]))
add(conversation("vaurien/behavior", BASE + "behavior = 100:blackout\n"))
add(conversation("vaurien/behavior-delay", BASE + "behavior = 100:delay\n"))
add(conversation("vaurien/behavior-quoted", BASE + 'behavior = "100:delay"\n'))
add(conversation("vaurien/timeout", BASE + "behavior = 100:hang\ntimeout = 1\n", HANG_END))
add(conversation("vaurien/stay_connected", BASE + "stay_connected = true\ntimeout = 2\n"))
add(conversation("vaurien/stay_connected-false", BASE + "stay_connected = false\n"))
for _k, _v in (("bufsize", "4"), ("pool_max_size", "5"), ("pool_timeout", "5"), ("sync", "true"), ("backlog", "16"),
               ("sync", "false")):
    add(conversation("vaurien/%s=%s" % (_k, _v), BASE + "%s = %s\n" % (_k, _v)))
add(conversation("vaurien/multi-line-behavior", BASE + "behavior = 50:delay\n    50:delay\n"))
add(conversation("vaurien/env", "[vaurien]\nproxy = 127.0.0.1:{port}\nbackend = ${{VAURIEN_COMPAT_HOST}}:{backend}\n",
                 env={"VAURIEN_COMPAT_HOST": "127.0.0.1"}))
add(conversation("vaurien/env-whole", "[vaurien]\nproxy = 127.0.0.1:{port}\nbackend = ${{VAURIEN_COMPAT_BACKEND}}\n",
                 env={"VAURIEN_COMPAT_BACKEND": "BACKEND"}))  # replaced in run below
add(conversation("vaurien/comments", "# a comment\n; another\n" + BASE + "behavior = 100:blackout\n"))
add(conversation("vaurien/spaces", "[vaurien]\nproxy=127.0.0.1:{port}\nbackend   =   127.0.0.1:{backend}\n"))
add(conversation("vaurien/colon", "[vaurien]\nproxy: 127.0.0.1:{port}\nbackend: 127.0.0.1:{backend}\n"))
add(conversation("vaurien/statsd-keys", BASE + "statsd.enabled = false\nstatsd.port = 9125\n"))
add(conversation("statsd-section", BASE + "[statsd]\nenabled = false\nport = 9125\n"))

def http_keys(sid: str, ini: str) -> Scenario:
    """`http`, `http_host`, `http_port` in [vaurien]: does a control API answer there?"""

    def run(impl, ctx):
        hp = free_port()
        proc, port, d = start(impl, ini.replace("HTTP_PORT", str(hp)))
        try:
            time.sleep(0.5)
            return {"result": "accepted" if port else "refused", "api": listening(hp),
                    "log file": (d / "out.log").exists()}
        finally:
            finish(proc, d)

    return Scenario(sid, run)


add(http_keys("vaurien/http-keys", BASE + "http = true\nhttp_host = 127.0.0.1\nhttp_port = HTTP_PORT\n"))
add(http_keys("vaurien/log-keys", BASE + "log_level = error\nlog_output = {dir}/out.log\n"))

# Unknown keys and sections: ignored by the original; ours warns.
add(warned("unknown/key", BASE + "colour = blue\n", "colour"))
add(warned("unknown/section", BASE + "[foo]\nx = 1\n", "foo"))
add(warned("unknown/section-colon", BASE + "[foo:bar]\nx = 1\n", "foo:bar"))
add(conversation("unknown/key-conversation", BASE + "colour = blue\n[foo]\nx = 1\n"))

# [DEFAULT] and extends.
add(conversation("default/extends", "[DEFAULT]\nextends = base.ini\n\n[vaurien]\nproxy = 127.0.0.1:{port}\n",
                 files={"base.ini": "[vaurien]\nbackend = 127.0.0.1:{backend}\nbehavior = 100:blackout\nproxy = 127.0.0.1:1\n"}))
add(conversation("default/extends-cwd-elsewhere", "[DEFAULT]\nextends = {dir}/base.ini\n\n[vaurien]\nproxy = 127.0.0.1:{port}\n",
                 files={"base.ini": "[vaurien]\nbackend = 127.0.0.1:{backend}\n"}, cwd_ini_dir=False))
add(conversation("default/extends-missing", BASE + "[DEFAULT]\nextends = nothere.ini\n"))
add(conversation("default/key", "[DEFAULT]\ntimeout = 1\n" + BASE + "behavior = 100:hang\n", HANG_END))

# [behavior:NAME] options (1.9 ignored them: a listed bug; they apply).
add(conversation("behavior-section/delay-sleep", BASE + "behavior = 100:delay\n[behavior:delay]\nsleep = 2\n"))
add(conversation("behavior-section/error-warmup", BASE + "behavior = 100:error\n[behavior:error]\nwarmup = 5\n"))
add(conversation("behavior-section/unknown-option", BASE + "[behavior:delay]\nnope = 1\n"))
add(conversation("behavior-section/bad-value", BASE + "[behavior:delay]\nsleep = soon\n"))
add(conversation("behavior-section/unknown-behavior", BASE + "[behavior:nothing]\nx = 1\n"))

# [protocol:NAME] options (1.9 applied those of the protocol in use).
add(conversation("protocol-section/tcp-buffer", BASE + "[protocol:tcp]\nbuffer = 4\n"))
add(conversation("protocol-section/tcp-keep-alive", BASE + "[protocol:tcp]\nkeep_alive = true\n", TWO, kind="answer_open"))
add(conversation("protocol-section/other-protocol", BASE + "[protocol:http]\nkeep_alive = true\n"))
add(conversation("protocol-section/http-overwrite-host", BASE + "protocol = http\n[protocol:http]\noverwrite_host_header = true\n",
                 [("send", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ("read", 0.3, 5), ("end", 5)]))

# Custom behaviors and protocols.
for _form, _callable, _pp in (("instance-dotted", "plugins_compat.tagger", True),
                              ("instance-colon", "plugins_compat:tagger", True),
                              ("class-dotted", "plugins_compat.Tagger", True),
                              ("class-colon", "plugins_compat:Tagger", True)):
    add(conversation("callable/behavior/%s" % _form, BASE + "behavior = 100:tagger\n[behavior:tagger]\ncallable = %s\n" % _callable,
                     files={"plugins_compat.py": PLUGINS}, pythonpath_ini_dir=_pp, cwd_ini_dir=False))
add(conversation("callable/behavior/in-mix", BASE + "behavior = 50:tagger,50:tagger\n[behavior:tagger]\ncallable = plugins_compat.tagger\n",
                 files={"plugins_compat.py": PLUGINS}, pythonpath_ini_dir=True, cwd_ini_dir=False))
add(conversation("callable/behavior/unused", BASE + "[behavior:tagger]\ncallable = plugins_compat.tagger\n",
                 files={"plugins_compat.py": PLUGINS}, pythonpath_ini_dir=True, cwd_ini_dir=False))
add(conversation("callable/behavior/no-callable", BASE + "behavior = 100:tagger\n[behavior:tagger]\ntag = X\n"))
add(conversation("callable/behavior/missing-module", BASE + "[behavior:tagger]\ncallable = no_such_module.Tagger\n"))
for _form, _callable in (("instance-dotted", "plugins_compat.shout"), ("instance-colon", "plugins_compat:shout"),
                         ("class-dotted", "plugins_compat.Shout")):
    add(conversation("callable/protocol/%s" % _form, BASE + "protocol = shout\n[protocol:shout]\ncallable = %s\n" % _callable,
                     files={"plugins_compat.py": PLUGINS}, pythonpath_ini_dir=True, cwd_ini_dir=False))
add(conversation("callable/protocol/1.9-handle", BASE + "protocol = shout19\n[protocol:shout19]\ncallable = plugins_compat.shout19\n",
                 files={"plugins_compat.py": PLUGINS}, pythonpath_ini_dir=True, cwd_ini_dir=False))
# What on_after_handle returns is ignored (the original's `finally:` calls it and drops it):
# a hook without `return`, or one that returns False, keeps the connection going.
for _name in ("quiet", "after_false", "after_weird"):
    for _ka, _steps, _kind in (("", ANSWER, "answer"), ("[protocol:tcp]\nkeep_alive = true\n", TWO, "answer_open")):
        add(conversation("callable/behavior/after-returns/%s%s" % (_name, "-keep-alive" if _ka else ""),
                         BASE + "behavior = 100:%s\n[behavior:%s]\ncallable = plugins_compat.%s\n%s"
                         % (_name, _name, _name, _ka), _steps, kind=_kind,
                         files={"plugins_compat.py": PLUGINS}, pythonpath_ini_dir=True, cwd_ini_dir=False))
# A module next to the ini file, in the current directory (the original still needs PYTHONPATH).
add(conversation("callable/next-to-ini-cwd", BASE + "behavior = 100:tagger\n[behavior:tagger]\ncallable = plugins_compat.tagger\n",
                 files={"plugins_compat.py": PLUGINS}, pythonpath_ini_dir=True, cwd_ini_dir=True))

# Flags and the file.
add(conversation("flags/file-and-other-flag", BASE, args=["--behavior", "100:blackout"]))
add(conversation("flags/over-file", BASE + "behavior = 100:delay\n", args=["--behavior", "100:blackout"]))
add(conversation("flags/missing-file-ok-flags", BASE, args=["--timeout", "2"]))


def _fix_env_whole() -> None:
    for i, sc in enumerate(SCENARIOS):
        if sc.id == "vaurien/env-whole":
            def run(impl, ctx):
                with backend("answer") as b:
                    proc, port, d = start(impl, "[vaurien]\nproxy = 127.0.0.1:{port}\nbackend = ${{VAURIEN_COMPAT_BACKEND}}\n",
                                          env={"VAURIEN_COMPAT_BACKEND": "127.0.0.1:%d" % b.port})
                    try:
                        if port is None:
                            return {"result": "refused"}
                        obs = converse(port, ANSWER)
                    finally:
                        finish(proc, d)
                    return {"result": "accepted", "client": obs, "backend": b.received()}
            SCENARIOS[i] = Scenario(sc.id, run)


_fix_env_whole()


def refused(sid: str, ini: Optional[str], path: Optional[str] = None, **kw: Any) -> Scenario:
    def run(impl, ctx):
        if ini is None:
            proc = subprocess.run([*impl.command, "--config", path or "/nonexistent/vaurien.ini"], stdin=subprocess.DEVNULL,
                                  capture_output=True, env=impl.env(), timeout=20)
            return {"result": "refused" if proc.returncode else "exited 0"}
        proc, port, d = start(impl, ini, **kw)
        finish(proc, d)
        return {"result": "accepted" if port else "refused"}

    return Scenario(sid, run)


add(refused("bad/missing-file", None))
add(refused("bad/env-unset", "[vaurien]\nproxy = 127.0.0.1:{port}\nbackend = ${{VAURIEN_SURELY_UNSET}}\n"))
add(refused("bad/behavior", BASE + "behavior = 120:delay\n"))
add(refused("bad/protocol", BASE + "protocol = gopher\n"))
add(refused("bad/proxy", "[vaurien]\nproxy = nocolon\nbackend = 127.0.0.1:1\n"))
add(refused("bad/not-ini", "this is not an ini file\n"))
add(refused("empty", "[vaurien]\nproxy = 127.0.0.1:{port}\n"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_ini(sc, impls):
    check(sc, impls, {})
