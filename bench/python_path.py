"""Where a Python behavior's requests go: requests per second through `vaurien.util.start_proxy`
with each behavior, and the proxy's CPU per request by thread (tokio workers `vaurien`, the
Python pool `vaurien-python`, its watchdog, the event log).

redis-benchmark (PING, SET, GET; 50 clients) against redis-server, through a proxy started by
the Python API (tcp, keep-alive, stay-connected), the subjects interleaved round by round:

    python3 bench/python_path.py [--subjects dummy,delay,benchbefore,benchpass]
                                 [--requests 60000] [--rounds 3] [--out FILE.md]

`delay` runs with `--behavior-delay-sleep 0`: the engine's per-exchange hooks path with no
Python (what is left to a Python behavior whose calls would cost nothing); `benchbefore` has
one hook (`on_before_handle`), `benchpass` the three, each returning True (bench/run.py's
PY_PROXY_CHILD). A subject `NAME+VAR=VALUE` runs the proxy with that environment variable
(for A/B runs of experimental switches). Linux (`/proc`); loopback only; each run bounded.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (PY_PROXY_CHILD, free_port, wait_listening)

HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> collections.Counter:
    """CPU ticks (user + system) of each thread of `pid`, by thread name (digits dropped)."""
    out: collections.Counter = collections.Counter()
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            st = Path(f"/proc/{pid}/task/{t}/stat").read_text()
        except OSError:
            continue
        comm = re.sub(r"[-_ ]?\d+$", "", st[st.index("(") + 1:st.rindex(")")])
        f = st[st.rindex(")") + 2:].split()
        out[comm] += int(f[11]) + int(f[12])
    return out


def machine() -> tuple[int, int]:
    """(all ticks, idle ticks) of the machine."""
    v = list(map(int, Path("/proc/stat").read_text().splitlines()[0].split()[1:]))
    return sum(v), v[3] + v[4]


def redis_benchmark(port: int, n: int) -> tuple[float, int]:
    """(requests per second over the three tests, requests made)."""
    out = subprocess.run(["redis-benchmark", "-h", HOST, "-p", str(port), "-c", "50", "-n", str(n),
                          "-t", "ping_mbulk,set,get", "--csv"],
                         capture_output=True, text=True, timeout=30 + 3 * n / 1000).stdout
    rows = R.parse_redis_csv(out)
    if len(rows) < 3:
        raise SystemExit(f"redis-benchmark: unexpected output {out[-200:]!r}")
    return len(rows) * n / sum(n / r["rps"] for r in rows.values()), len(rows) * n


def measure(subject: str, backend: int, n: int, child: Path) -> dict:
    name, _, extra = subject.partition("+")
    env = dict(os.environ)
    for kv in filter(None, extra.split("+")):
        k, _, v = kv.partition("=")
        env[k] = v
    port = R.free_port()
    options = ["--behavior", "100:" + name, "--protocol-tcp-keep-alive", "--stay-connected"]
    if name == "delay":
        options += ["--behavior-delay-sleep", "0"]
    cfg = dict(host=HOST, port=port, backend_port=backend, protocol="tcp", options=options)
    # cwd outside the repository: `import vaurien` is the installed package
    p = subprocess.Popen([sys.executable, str(child), json.dumps(cfg)], cwd=str(child.parent),
                         env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        R.wait_listening(port, p, f"python start_proxy ({subject})", deadline_s=30)
        redis_benchmark(port, 5000)  # warm up
        t0, m0 = thread_cpu(p.pid), machine()
        rps, total = redis_benchmark(port, n)
        t1, m1 = thread_cpu(p.pid), machine()
    finally:
        p.terminate()
        p.wait(10)
    us = {k: (t1[k] - t0.get(k, 0)) / TICK * 1e6 / total for k in t1}
    return dict(rps=rps, us=sum(us.values()), threads=us,
                idle=(m1[1] - m0[1]) / max(1, m1[0] - m0[0]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", default="dummy,delay,benchbefore,benchpass")
    ap.add_argument("--requests", type=int, default=60000, help="per redis-benchmark test")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="write the markdown table here too")
    a = ap.parse_args(argv)
    subjects = a.subjects.split(",")
    with tempfile.TemporaryDirectory(prefix="vaurien-pypath-") as tmp:
        child = Path(tmp) / "py_proxy_child.py"
        child.write_text(R.PY_PROXY_CHILD)
        rport = R.free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", HOST, "--save", "",
                                  "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        results: dict[str, list] = collections.defaultdict(list)
        try:
            R.wait_listening(rport, redis, "redis-server")
            for r in range(a.rounds):
                for s in subjects:
                    m = measure(s, rport, a.requests, child)
                    results[s].append(m)
                    print(f"round {r + 1} {s:32} {m['rps']:8.0f} req/s  proxy {m['us']:5.1f} µs/req  "
                          f"idle {m['idle']:.2f}  " + " ".join(
                              f"{k}={v:.1f}" for k, v in sorted(m["threads"].items()) if v >= 0.2),
                          flush=True)
        finally:
            redis.terminate()
            redis.wait(10)
    med = lambda s, k: statistics.median(m[k] for m in results[s])  # noqa: E731
    base = med(subjects[0], "rps")
    names = sorted({k for s in subjects for m in results[s] for k, v in m["threads"].items() if v >= 0.2})
    lines = [f"# Python path — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"`python3 bench/python_path.py --subjects {a.subjects} --requests {a.requests} "
             f"--rounds {a.rounds}` (medians of {a.rounds}; redis-benchmark PING+SET+GET, 50 clients)", "",
             "| subject | req/s | × " + subjects[0] + " | proxy µs/request | " +
             " | ".join(names) + " |", "|---|---:|---:|---:|" + "---:|" * len(names)]
    for s in subjects:
        per = [f"{statistics.median(m['threads'].get(k, 0) for m in results[s]):.1f}" for k in names]
        lines.append(f"| {s} | {med(s, 'rps'):,.0f} | {med(s, 'rps') / base:.2f} | {med(s, 'us'):.1f} | "
                     + " | ".join(per) + " |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
