"""The control API (`--http`), through the original 1.9 and through this vaurien: `GET/PUT
/behavior` with and without options (its own, another behavior's, unknown keys, strings,
numbers, booleans, null), error answers (status and JSON body), `GET /behaviors`, content
types, a body without Content-Type (1.9's vaurienclient sends none), and what a client sees
through the proxy afterwards; driven with raw HTTP, with the original Python 2
`vaurienclient` (run by the original's interpreter against both servers) and with this
package's `vaurienclient`/`vaurien.Client`.
"""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Optional, Sequence

import pytest

from compat import ROOT, Scenario, backend, converse, original_venv, proxy
from conftest import check

TO = ["--timeout", "3"]
ANSWER = [("send", b"hello\n"), ("read", 0.3, 5), ("end", 5)]


def call(port: int, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None) -> List[Any]:
    """[status, media type, JSON body (or "<not json>")]."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        ctype = (r.getheader("Content-Type") or "").split(";")[0].strip()
        try:
            payload = json.loads(raw.decode())
        except ValueError:
            payload = "<not json>"
        return [r.status, ctype, payload]
    finally:
        c.close()


JSON = {"Content-Type": "application/json"}


def api(sid: str, calls: Sequence[tuple], args: Sequence[str] = (), traffic: Optional[Sequence[tuple]] = None,
        only: Optional[Any] = None) -> Scenario:
    """Runs `calls` ((method, path, body bytes or JSON-able, headers)) against the control API,
    then, with `traffic`, one client conversation through the proxy. `only` picks what of each
    answer is compared (e.g. the status alone)."""

    def run(impl, ctx):
        with backend("answer") as b:
            with proxy(impl, [*TO, *args], b.port, http=True) as p:
                out = []
                for c in calls:
                    method, path = c[0], c[1]
                    body = c[2] if len(c) > 2 else None
                    headers = c[3] if len(c) > 3 else (JSON if body is not None else {})
                    if body is not None and not isinstance(body, bytes):
                        body = json.dumps(body).encode()
                    res = call(p.http_port, method, path, body, headers)
                    out.append(only(res) if only else res)
                obs: Dict[str, Any] = {"api": out}
                if traffic:
                    obs["client"] = converse(p.port, traffic)
        return obs

    return Scenario(sid, run)


def status_only(res: List[Any]) -> Any:
    return res[0]


def sorted_names(res: List[Any]) -> Any:
    return res


SCENARIOS: List[Scenario] = []
add = SCENARIOS.append

GET_B = ("GET", "/behavior")

add(api("get-behavior", [GET_B]))
add(api("get-behavior/after-mix", [GET_B], args=["--behavior", "50:delay"]))
add(api("get-behaviors", [("GET", "/behaviors")]))
add(api("get-behaviors/has-originals", [("GET", "/behaviors")], only=lambda r: [r[0], r[1], sorted(
    set(r[2]["behaviors"]) & {"blackout", "delay", "dummy", "error", "hang", "transient"})]))
for _name in ("dummy", "delay", "error", "hang", "blackout", "transient"):
    add(api("put/%s" % _name, [("PUT", "/behavior", {"name": _name}), GET_B]))
add(api("put/delay-traffic", [("PUT", "/behavior", {"name": "delay"})], traffic=ANSWER))
add(api("put/blackout-traffic", [("PUT", "/behavior", {"name": "blackout"})], traffic=ANSWER))
add(api("put/back-to-dummy", [("PUT", "/behavior", {"name": "blackout"}), ("PUT", "/behavior", {"name": "dummy"})],
        traffic=ANSWER))

# Options.
add(api("options/own", [("PUT", "/behavior", {"name": "delay", "sleep": 2}), GET_B], traffic=ANSWER))
add(api("options/own-default-value", [("PUT", "/behavior", {"name": "delay", "sleep": 1}), GET_B], traffic=ANSWER))
add(api("options/string", [("PUT", "/behavior", {"name": "delay", "sleep": "2"})], traffic=ANSWER))
add(api("options/float", [("PUT", "/behavior", {"name": "delay", "sleep": 0.1})], traffic=ANSWER))
add(api("options/bool", [("PUT", "/behavior", {"name": "delay", "before": False})], traffic=ANSWER))
add(api("options/bool-string", [("PUT", "/behavior", {"name": "delay", "before": "false"})], traffic=ANSWER))
add(api("options/null", [("PUT", "/behavior", {"name": "delay", "sleep": None}), GET_B], traffic=ANSWER))
add(api("options/other-behavior", [("PUT", "/behavior", {"name": "delay", "warmup": 1}), GET_B], traffic=ANSWER))
add(api("options/unknown-key", [("PUT", "/behavior", {"name": "delay", "colour": "blue"}), GET_B], traffic=ANSWER))
add(api("options/bad-value", [("PUT", "/behavior", {"name": "delay", "sleep": "soon"}), GET_B], traffic=ANSWER))
add(api("options/nested", [("PUT", "/behavior", {"name": "delay", "sleep": {"a": 1}}), GET_B], traffic=ANSWER))
add(api("options/flag-then-api", [("PUT", "/behavior", {"name": "delay"})], args=["--behavior-delay-sleep", "2"],
        traffic=ANSWER))
add(api("options/error-warmup", [("PUT", "/behavior", {"name": "error", "warmup": 5})], traffic=ANSWER))

# Errors.
add(api("error/not-json", [("PUT", "/behavior", b"not json"), GET_B]))
add(api("error/empty-body", [("PUT", "/behavior", b""), GET_B]))
add(api("error/no-name", [("PUT", "/behavior", {}), GET_B]))
add(api("error/no-name-options", [("PUT", "/behavior", {"sleep": 1}), GET_B]))
add(api("error/unknown-name", [("PUT", "/behavior", {"name": "nope"}), GET_B]))
add(api("error/empty-name", [("PUT", "/behavior", {"name": ""}), GET_B]))
add(api("error/null-name", [("PUT", "/behavior", {"name": None}), GET_B]))
add(api("error/number-name", [("PUT", "/behavior", {"name": 1}), GET_B]))
add(api("error/mix-name", [("PUT", "/behavior", {"name": "50:delay"}), GET_B]))
add(api("error/json-list", [("PUT", "/behavior", b"[1, 2]"), GET_B], only=status_only))
add(api("error/json-string", [("PUT", "/behavior", b'"delay"'), GET_B], only=status_only))
add(api("error/after-error-unchanged", [("PUT", "/behavior", {"name": "delay"}), ("PUT", "/behavior", {"name": "nope"}), GET_B]))

# Content types and methods.
add(api("content-type/none", [("PUT", "/behavior", b'{"name": "delay"}', {}), GET_B]))
add(api("content-type/text", [("PUT", "/behavior", b'{"name": "delay"}', {"Content-Type": "text/plain"}), GET_B]))
add(api("content-type/form", [("PUT", "/behavior", b'{"name": "delay"}', {"Content-Type": "application/x-www-form-urlencoded"}), GET_B]))
add(api("content-type/json-charset", [("PUT", "/behavior", b'{"name": "delay"}', {"Content-Type": "application/json; charset=utf-8"}), GET_B]))
add(api("method/post", [("POST", "/behavior", {"name": "delay"}), GET_B], only=status_only))
add(api("method/delete", [("DELETE", "/behavior"), GET_B], only=status_only))
add(api("method/put-behaviors", [("PUT", "/behaviors", {"name": "delay"})], only=status_only))
add(api("route/unknown", [("GET", "/nope")], only=status_only))
add(api("route/trailing-slash", [("GET", "/behavior/")], only=status_only))
add(api("route/query", [("GET", "/behavior?x=1")]))
add(api("route/backend", [("GET", "/backend")], only=status_only))
add(api("head", [("HEAD", "/behavior")], only=status_only))

# ---------------------------------------------------------------------------------------------
# Clients: the original's vaurienclient (Python 2) and ours, against both servers.

CLIENT_SCRIPT = textwrap.dedent('''
    import json, sys
    try:
        from vaurienclient import Client
    except ImportError:
        from vaurien import Client
    port = int(sys.argv[1])
    c = Client(host='127.0.0.1', port=port)
    out = []
    def step(name, f):
        try:
            out.append([name, f()])
        except Exception as e:
            out.append([name, type(e).__name__, str(e)])
    step('get', c.get_behavior)
    step('list', lambda: sorted(set(c.list_behaviors()) & set(['blackout', 'delay', 'dummy', 'error', 'hang', 'transient'])))
    step('set', lambda: c.set_behavior('delay', sleep=2))
    step('get2', c.get_behavior)
    step('set-unknown', lambda: c.set_behavior('nope'))
    step('get3', c.get_behavior)
    def within():
        with c.with_behavior('blackout'):
            inside = c.get_behavior()
        return [inside, c.get_behavior()]
    step('with', within)
    def raising():
        try:
            with c.with_behavior('hang'):
                raise KeyError('boom')
        except KeyError:
            return c.get_behavior()
    step('with-raises', raising)
    step('set-dummy', lambda: c.set_behavior('dummy'))
    step('get4', c.get_behavior)
    print(json.dumps(out))
''')


def client_run(python: str, port: int, script: str = CLIENT_SCRIPT) -> Any:
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run([python, "-c", script, str(port)], capture_output=True, timeout=60, env=env, cwd=str(ROOT / "tests_compat"))
    if proc.returncode:
        return ["failed", proc.stderr.decode(errors="replace").strip().splitlines()[-1:]]
    return json.loads(proc.stdout.decode())


def with_client(sid: str, which: str, args: Sequence[str] = ()) -> Scenario:
    """`which`: "original-client" (1.9's vaurienclient under Python 2) or "our-client" (this
    package's, under this Python), against the implementation's server."""

    def run(impl, ctx):
        venv = original_venv()
        python = str(venv / "bin" / "python") if which == "original-client" else sys.executable
        with proxy(impl, [*TO, *args], http=True) as p:
            return client_run(python, p.http_port)

    return Scenario(sid, run)


add(with_client("client/original", "original-client"))
add(with_client("client/ours", "our-client"))
add(with_client("client/original-with-mix", "original-client", ["--behavior", "50:delay"]))
add(with_client("client/ours-with-mix", "our-client", ["--behavior", "50:delay"]))

# The original's vaurienctl-like CLI of vaurienclient (`main`), run as 1.9 users did.
CTL = textwrap.dedent('''
    import sys
    sys.argv = ['vaurienctl'] + sys.argv[2:]
    from vaurienclient import main
    main()
''')


def ctl(sid: str, which: str, argv: List[str]) -> Scenario:
    def run(impl, ctx):
        python = str(original_venv() / "bin" / "python") if which == "original-client" else sys.executable
        with proxy(impl, TO, http=True) as p:
            a = [x.replace("PORT", str(p.http_port)) for x in argv]
            proc = subprocess.run([python, "-c", CTL, "x", *a], capture_output=True, timeout=60,
                                  env={"PATH": "/usr/bin:/bin"}, cwd=str(ROOT / "tests_compat"))
            out = proc.stdout.decode().strip()
            if a[0] == "list-behaviors":
                out = sorted(set(out.split(", ")) & {"blackout", "delay", "dummy", "error", "hang", "transient"})
            after = call(p.http_port, "GET", "/behavior")
        return {"status": proc.returncode, "out": out, "after": after}

    return Scenario(sid, run)


for _who in ("original-client", "our-client"):
    add(ctl("ctl/%s/get" % _who, _who, ["get-behavior", "--host", "http://127.0.0.1:PORT"]))
    add(ctl("ctl/%s/set" % _who, _who, ["set-behavior", "delay", "--host", "http://127.0.0.1:PORT"]))
    add(ctl("ctl/%s/list" % _who, _who, ["list-behaviors", "--host", "http://127.0.0.1:PORT"]))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_api(sc, impls):
    check(sc, impls, {})
