#!/usr/bin/env python3
"""The proxy's CPU per connection under a `latency` toxic, servers side by side (A/B).

Every server speaks Toxiproxy's API (`target/release/toxiproxy-server`, a Toxiproxy binary):
for each round, each toxic and each server in turn, a fresh server and proxy, the toxic on
`downstream`, then `--conns` connections each sending one 64-byte message every period
(`bench/fidelity.py`'s pacing: one message per connection per `max(20 ms, latency + 4 ms,
conns / 2500 s)`, staggered) for `--seconds`; the server's CPU (utime + stime of all its
threads) over that time. The same paced load through every server, alternating, so that the
machine's drift falls on all of them alike:

    python3 bench/cpu_per_conn.py --server target/release/toxiproxy-server \\
        --server /path/to/toxiproxy-server [--conns 1000] [--toxics none,5,5+2] [--rounds 3]

Prints a markdown table (cores, milli-cores per connection, µs of CPU per round trip, the
round trip's p50) and the medians per server. Loopback only; every loop is bounded in count
and in time. Standard library only; Linux (`/proc`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity  # noqa: E402  (the backend, the server and the paced client)


def parse_toxic(text: str) -> tuple[int, int] | None:
    """`none`, `5` (latency ms) or `5+2` (latency ± jitter ms)."""
    if text == "none":
        return None
    lat, _, jit = text.partition("+")
    return int(lat), int(jit or 0)


def label(path: str) -> str:
    repo = str(fidelity.REPO) + os.sep
    return path[len(repo):] if path.startswith(repo) else path


def measure(server: str, backend: int, toxic, conns: int, seconds: float, tmp: Path) -> dict:
    tp = fidelity.Toxiproxy(server, tmp)
    try:
        port = tp.proxy("cpu", backend)
        lat, jit = toxic or (0, 0)
        if toxic:
            tp.add("cpu", "lat", "latency", {"latency": lat, "jitter": jit})
        period = fidelity.pace_period(conns, lat + jit)
        per = max(2, int(seconds / period))
        socks = fidelity.open_echo(port, conns)
        try:
            time.sleep(0.5)  # the connections' set-up is not measured
            t0 = time.monotonic()
            cpu = fidelity.CpuMeter(tp.pid)
            xs = fidelity.paced_rtts(socks, per, seconds * 3 + 10, b"x" * 64, period)
            cores = cpu.cores()
            wall = time.monotonic() - t0
        finally:
            fidelity.close_all(socks)
        return dict(version=tp.version, n=len(xs), cores=cores,
                    mcores_per_conn=1000 * cores / conns,
                    us_per_rtt=cores * wall * 1e6 / len(xs) if xs else float("nan"),
                    p50_ms=fidelity.pct(xs, 50) * 1000 if xs else float("nan"))
    finally:
        tp.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", default=[],
                    help="a Toxiproxy-API server binary (repeat; default: vaurien's)")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--toxics", default="none,5,5+2",
                    help="comma-separated: none, LATENCY_MS or LATENCY_MS+JITTER_MS")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each measurement")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    servers = [os.path.abspath(s) for s in (a.server or [str(fidelity.DEFAULT_SERVER)])]
    for s in servers:
        if not os.access(s, os.X_OK):
            print(f"error: {s} is not an executable", file=sys.stderr)
            return 2
    toxics = [parse_toxic(t) for t in a.toxics.split(",") if t]
    fidelity.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="vaurien-cpu-"))
    bport = fidelity.free_port()
    backend = fidelity.start_backend(bport)
    results: dict[tuple, list[dict]] = {}
    try:
        fidelity.wait_listening(bport, backend, "backend")
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load {load}: `python3 bench/cpu_per_conn.py "
              f"{' '.join(sys.argv[1:])}` ({a.conns} connections, {a.seconds:g} s each)\n")
        print("| round | toxic | server | cores | per connection (milli-cores) "
              "| CPU per round trip (µs) | round trip p50 (ms) |")
        print("|---:|---|---|---:|---:|---:|---:|")
        for rnd in range(1, a.rounds + 1):
            for toxic in toxics:
                for s in servers:
                    r = measure(s, bport, toxic, a.conns, a.seconds, tmp)
                    name = f"{label(s)} `{r['version']}`"
                    what = "none" if toxic is None else \
                        f"latency {toxic[0]} ms" + (f" ± {toxic[1]}" if toxic[1] else "")
                    results.setdefault((what, name), []).append(r)
                    print(f"| {rnd} | {what} | {name} | {r['cores']:.3f} "
                          f"| {r['mcores_per_conn']:.3f} | {r['us_per_rtt']:.1f} "
                          f"| {r['p50_ms']:.3f} |", flush=True)
        print("\nMedians over the rounds:\n")
        print("| toxic | server | per connection (milli-cores) | CPU per round trip (µs) |")
        print("|---|---|---:|---:|")
        for (what, name), rs in results.items():
            med = statistics.median
            print(f"| {what} | {name} | {med(r['mcores_per_conn'] for r in rs):.3f} "
                  f"| {med(r['us_per_rtt'] for r in rs):.1f} |")
    finally:
        fidelity.kill_group(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
