"""The differential suite: every scenario runs through the original Vaurien 1.9 (a Python 2.7
virtualenv set up by `scripts/setup_original.sh`) and through this vaurien, and what a client,
the backend or an operator observes must be the same, or be one of the listed differences
(`Scenario.why`)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests_py"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compat import Impl, Scenario, implementations, original_venv  # noqa: E402
from servers import custom_http_server, mariadb_server, memcached_server, redis_server, smtp_server  # noqa: E402,F401

from differences import DIFFERENCES  # noqa: E402

# When set, every scenario whose observations differ is appended to this file (one JSON line:
# id, the original's and ours), to review and list in differences.py.
RECORD = os.environ.get("VAURIEN_COMPAT_RECORD")


@pytest.fixture(scope="session")
def impls() -> dict:
    """{"original": Impl, "ours": Impl}; skips when the original is not installed (outside CI)."""
    if original_venv() is None:
        pytest.skip("the original Vaurien (Python 2.7 virtualenv) is not set up: bash scripts/setup_original.sh")
    return {i.name: i for i in implementations()}


def check(sc: Scenario, impls: dict, ctx: dict) -> None:
    """Runs `sc` through both implementations and compares. A scenario listed in
    `differences.py` must show exactly the listed difference (or none): the original's
    observation (or those its races give) and ours are both pinned there, with the reason."""
    original = sc.run(impls["original"], ctx)
    ours = sc.run(impls["ours"], ctx)
    listed = DIFFERENCES.get(sc.id)
    if RECORD and (repr(ours) != repr(original)) and (listed is None or listed["ours"] != repr(ours)):
        with open(RECORD, "a") as f:
            f.write(json.dumps({"id": sc.id, "original": repr(original), "ours": repr(ours)}) + "\n")
    if ours == original:
        return
    if listed is None:
        assert ours == original, "%s differs from the original\n original: %r\n ours:     %r" % (sc.id, original, ours)
        return
    # A race of the original may give one of several observations (all listed).
    originals = listed["original"] if isinstance(listed["original"], (list, tuple)) else [listed["original"]]
    assert repr(original) in originals, "%s: the original no longer shows the listed difference\n original: %r\n listed:   %s" % (sc.id, original, originals)
    assert repr(ours) == listed["ours"], "%s: ours differs from the listed difference (%s)\n ours:   %r\n listed: %s" % (sc.id, listed["why"], ours, listed["ours"])
