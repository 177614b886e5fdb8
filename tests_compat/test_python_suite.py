"""A user's unittest suite (`user_suite.py`: start_proxy / stop_proxy / Client /
with_behavior, behaviors changed mid-test, a real backend), unchanged, run with the original's
Python 2 (`-m unittest`, against the original package) and with this Python (against this
package): the per-test results must be the same."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

import pytest

from compat import ROOT, Scenario, backend, free_port, original_venv
from conftest import check

SUITE = ROOT / "tests_compat" / "user_suite.py"
HEADER = re.compile(r"^(test\w+) \([^)]*\) \.\.\. ", re.M)
STATUS = re.compile(r"(?:^|\A)(ok|FAIL|ERROR|expected failure|skipped)", re.M)


def parse(text: str) -> Dict[str, str]:
    """unittest -v's result of each test; the proxies' own tracebacks (the original's gevent
    prints them on stderr) may come between a test's name and its result."""
    heads = list(HEADER.finditer(text))
    out = {}
    for i, m in enumerate(heads):
        seg = text[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        st = STATUS.search(seg)
        out[m.group(1)] = st.group(1) if st else "unparsed"
    return out


def run_suite(impl, ctx) -> Dict[str, Any]:
    python = str(original_venv() / "bin" / "python") if impl.name == "original" else sys.executable
    d = Path(tempfile.mkdtemp(prefix="vaurien-suite-"))
    shutil.copy(SUITE, d / "test_user_suite.py")
    try:
        with backend("answer") as b:
            env = impl.env()
            env.update({"SUITE_BACKEND_PORT": str(b.port), "SUITE_PROXY_PORT": str(free_port()),
                        "SUITE_HTTP_PORT": str(free_port()), "SUITE_PROXY2_PORT": str(free_port()),
                        "SUITE_LOG": str(d / "proxy.log"), "PYTHONDONTWRITEBYTECODE": "1"})
            if impl.name == "ours" and os.environ.get("VAURIEN_COMPAT_OURS"):
                pass  # the suite imports the installed package either way
            proc = subprocess.run([python, "-m", "unittest", "-v", "test_user_suite"], cwd=str(d), env=env,
                                  capture_output=True, timeout=240)
        text = proc.stderr.decode(errors="replace")
        results = parse(text)
        summary = [ln for ln in text.splitlines() if ln.startswith(("Ran ", "OK", "FAILED"))]
        ran = [ln.split(" in ")[0] for ln in summary if ln.startswith("Ran ")]
        return {"tests": results, "ran": ran, "exit": "ok" if proc.returncode == 0 else "failed"}
    finally:
        shutil.rmtree(d, ignore_errors=True)


_RUNS: Dict[str, Dict[str, Any]] = {}


def suite_result(impl) -> Dict[str, Any]:
    """The suite runs once per implementation; each test is a scenario of its own."""
    if impl.name not in _RUNS:
        _RUNS[impl.name] = run_suite(impl, {})
    return _RUNS[impl.name]


def one_test(name: str) -> Scenario:
    return Scenario("user-suite/%s" % name, lambda impl, ctx: suite_result(impl)["tests"].get(name, "missing"))


TESTS = re.findall(r"^    def (test_\w+)\(", SUITE.read_text(), re.M)
SCENARIOS = [one_test(t) for t in TESTS] + [
    Scenario("user-suite/summary", lambda impl, ctx: {k: v for k, v in suite_result(impl).items() if k != "tests"})]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_python_suite(sc, impls):
    check(sc, impls, {})
