"""The README's scripts, as a user runs them: `scripts/demo.sh` starts redis and vaurien, and
Ctrl-C or killing the script stops everything it started."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ROOT, free_port, vaurien_bin, wait_port, which_or_skip


def _listening(port: int) -> bool:
    want = ":%04X" % port
    with open("/proc/net/tcp") as f:
        return any(line.split()[1].endswith(want) and line.split()[3] == "0A" for line in list(f)[1:])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_stops_everything_it_started(sig, tmp_path: Path):
    which_or_skip("redis-server")
    ports = {"DEMO_REDIS_PORT": free_port(), "DEMO_PROXY_PORT": free_port(), "DEMO_API_PORT": free_port()}
    env = dict(os.environ, VAURIEN_BIN=vaurien_bin(), **{k: str(v) for k, v in ports.items()})
    out = open(tmp_path / "demo.log", "wb")
    # Its own process group, as a shell job: the signal goes to the script alone here (a
    # terminal's Ctrl-C would reach the whole group; the script must not rely on that).
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for p in ports.values():
            wait_port(p, proc=None, timeout=20)
        log = (tmp_path / "demo.log").read_text()
        assert "redis-cli -p %d" % ports["DEMO_PROXY_PORT"] in log
        proc.send_signal(sig)
        proc.wait(timeout=20)
        deadline = time.monotonic() + 10
        while any(_listening(p) for p in ports.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in ports.values() if _listening(p)], "a port is still held after the script stopped"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out.close()
        # Whatever the outcome, leave nothing behind.
        subprocess.run(["pkill", "-f", "--port %d" % ports["DEMO_REDIS_PORT"]], check=False)


@pytest.mark.timeout(60)
def test_python_dash_m_vaurien_runs_the_cli():
    import sys

    import vaurien

    out = subprocess.run([sys.executable, "-m", "vaurien", "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert vaurien.__version__ in out.stdout
    bad = subprocess.run([sys.executable, "-m", "vaurien", "--protocol", "nope"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2 and "nope" in bad.stderr
