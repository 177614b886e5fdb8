#!/usr/bin/env python3
"""Where a `latency` toxic's extra time goes, on one connection (a diagnostic).

A round trip through a `downstream` latency toxic takes the latency plus what the proxy and
the two ends add. The backend stamps each message with the time it read it (one system-wide
monotonic clock), which splits every round trip into its way up (client → proxy → backend: no
toxic on it) and its way down (backend → proxy, held, → client):

    python3 bench/latency_split.py [--latency 0,1,5,20] [--n 400] [--spin-client | --conns 50]

For each latency (and direct, and the proxy with no toxic): p50 and p99 of the way up and of
the way down, ms. The way up growing with the latency means an end that sleeps longer wakes
later (the backend, idle for the whole latency); the way down minus the latency is the
proxy's hold plus the client's wake-up (`--spin-client` removes the latter).

Loopback only; every loop is bounded in count and in time. Standard library only; Linux.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity  # noqa: E402  (the backend, the server and their helpers)

SIZE = 64


def split_rtts(port: int, n: int, limit: float, spin: bool) -> tuple[list[float], list[float]]:
    """`n` back-to-back stamped round trips on one connection: (ups, downs), ms."""
    s = fidelity.connect(port, b"T\n")
    ups, downs = [], []
    msg = bytearray(SIZE)
    buf = bytearray(SIZE)
    end = time.monotonic() + limit
    try:
        s.settimeout(0.0 if spin else limit)
        for i in range(n + 5):  # the first 5 warm up
            if time.monotonic() > end:
                break
            t0 = time.monotonic_ns()
            s.sendall(msg)
            fidelity.recv_answer(s, buf, SIZE, end, spin)
            t1 = time.monotonic_ns()
            stamp = int.from_bytes(buf[:8], "big")
            if i >= 5:
                ups.append((stamp - t0) / 1e6)
                downs.append((t1 - stamp) / 1e6)
    finally:
        s.close()
    return ups, downs


def paced_split(port: int, conns: int, n: int, limit: float,
                period: float = 0.02) -> tuple[list[float], list[float]]:
    """`conns` connections, each sending one stamped message every `period` seconds
    (staggered, `bench/fidelity.py`'s pacing), `n` each: (ups, downs), ms."""
    socks = fidelity.open_echo(port, conns, b"T\n")
    answers: list = []
    try:
        fidelity.paced_rtts(socks, n, limit, bytes(SIZE), period, answers)
    finally:
        fidelity.close_all(socks)
    ups, downs = [], []
    for sent, got, data in answers:
        stamp = int.from_bytes(data[:8], "big") / 1e9
        ups.append((stamp - sent) * 1e3)
        downs.append((got - stamp) * 1e3)
    return ups, downs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=str(fidelity.DEFAULT_SERVER))
    ap.add_argument("--latency", default="0,1,5,20", help="latencies to measure, ms")
    ap.add_argument("--n", type=int, default=400, help="round trips per subject")
    ap.add_argument("--spin-client", action="store_true",
                    help="the client polls instead of sleeping in recv (one connection)")
    ap.add_argument("--conns", type=int, default=1,
                    help="connections; more than 1: each sends every 20 ms, staggered")
    a = ap.parse_args(argv)
    fidelity.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="vaurien-split-"))
    bport = fidelity.free_port()
    backend = fidelity.start_backend(bport)
    tp = None
    try:
        fidelity.wait_listening(bport, backend, "backend")
        tp = fidelity.Toxiproxy(os.path.abspath(a.server), tmp)
        port = tp.proxy("split", bport)
        limit = 60.0
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load {load}: `python3 bench/latency_split.py "
              f"{' '.join(sys.argv[1:])}` (ms; {a.n} round trips on each of {a.conns} connection(s))\n")
        print("| through | latency ms | up p50 | up p99 | down p50 | down p99 | down p50 − latency "
              "| round trip p50 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")

        def row(what: str, lat: float, ups, downs):
            p = fidelity.pct
            print(f"| {what} | {lat:g} | {p(ups, 50):.3f} | {p(ups, 99):.3f} | {p(downs, 50):.3f} "
                  f"| {p(downs, 99):.3f} | {p(downs, 50) - lat:.3f} "
                  f"| {p([u + d for u, d in zip(ups, downs)], 50):.3f} |", flush=True)

        def measure(p: int):
            if a.conns > 1:
                return paced_split(p, a.conns, a.n, limit)
            return split_rtts(p, a.n, limit, a.spin_client)

        row("direct", 0, *measure(bport))
        row("proxy, no toxic", 0, *measure(port))
        for lat in [int(x) for x in a.latency.split(",") if x]:
            tp.add("split", "lat", "latency", {"latency": lat})
            try:
                row("proxy, latency", lat, *measure(port))
            finally:
                tp.remove("split", "lat")
    finally:
        if tp:
            tp.stop()
        fidelity.kill_group(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
