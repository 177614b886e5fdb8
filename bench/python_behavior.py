"""Exchanges per second through a trivial Python behavior, as a ratio to the built-in `dummy`.

One exchange = one client connection through the proxy (tcp protocol, the original's default:
the request is forwarded, the answer relayed until the backend closes). The backend (asyncio)
and the load generators run in processes of their own; the proxy runs in this process, as
`start_proxy` runs it. Run: `python bench/python_behavior.py [--seconds 3] [--clients 4]`.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import sys
import time

from vaurien import Proxy
from vaurien.behaviors import Behavior


class Trivial:
    """Every hook, each returning True at once."""

    name = "py_trivial"
    options = {}

    def on_before_handle(self, protocol, source, dest, to_backend):
        return True

    def on_between_handle(self, protocol, source, dest, to_backend):
        return True

    def on_after_handle(self, protocol, source, dest, to_backend):
        return True


class BeforeOnly:
    """Only on_before_handle."""

    name = "py_before"
    options = {}

    def on_before_handle(self, protocol, source, dest, to_backend):
        return True


def backend(port_out) -> None:
    import asyncio

    async def handle(reader, writer):
        data = await reader.read(65536)
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def client(port: int, seconds: float, out) -> None:
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"ping")
            data = b""
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
        if data == b"echo:ping":
            n += 1
    out.put(n)


def measure(backend_port: int, behavior: str, seconds: float, clients: int) -> float:
    with Proxy(backend="127.0.0.1:%d" % backend_port, behavior="100:" + behavior, http=False, log_level="error") as p:
        client(p.port, 0.3, mp.Queue())  # warm up
        out: "mp.Queue[int]" = mp.Queue()
        procs = [mp.Process(target=client, args=(p.port, seconds, out)) for _ in range(clients)]
        t0 = time.monotonic()
        for pr in procs:
            pr.start()
        total = sum(out.get() for _ in procs)
        for pr in procs:
            pr.join()
        return total / (time.monotonic() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    Behavior.register(Trivial)
    Behavior.register(BeforeOnly)
    q: "mp.Queue[int]" = mp.Queue()
    b = mp.Process(target=backend, args=(q,), daemon=True)
    b.start()
    port = q.get(timeout=10)
    try:
        results = {}
        for name in ("dummy", "py_before", "py_trivial", "dummy"):
            rate = measure(port, name, args.seconds, args.clients)
            results.setdefault(name, []).append(rate)
            print("%-11s %8.0f exchanges/s" % (name, rate), flush=True)
        dummy = max(results["dummy"])
        for name in ("py_before", "py_trivial"):
            print("ratio %-11s / dummy: %.2f" % (name, results[name][0] / dummy))
    finally:
        b.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
