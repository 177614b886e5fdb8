"""The checks of scripts/test_install.sh, run by the Python of each fresh virtualenv it makes:
the installed vaurien proxies one real request, the installed vaurienclient drives it.

    python install_check.py client BACKEND_PORT          # start_proxy, one GET, vaurienclient's
                                                         # with_behavior, stop_proxy
    python install_check.py without-client BACKEND_PORT  # vaurienclient uninstalled: still proxies
    python install_check.py fetch PROXY_PORT             # one GET through a running proxy
    python install_check.py free-port                    # prints a free port
    python install_check.py wait-port PORT               # waits until something listens there

The backend is any HTTP server on 127.0.0.1 whose / holds MARKER (test_install.sh runs
`python -m http.server`). Standard library only, and tests_py/helpers.py's ports."""
from __future__ import annotations

import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests_py"))
from helpers import free_port, wait_port  # noqa: E402 - after the path it lives on

MARKER = "vaurien install check"


def fetch(port: int) -> None:
    """One GET through 127.0.0.1:port; the backend's page must come back whole."""
    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as r:
        body = r.read().decode()
    assert MARKER in body, body[:200]


def installed(module: Any) -> None:
    """The module is the virtualenv's, not the checkout's."""
    where = Path(module.__file__).resolve()
    assert str(where).startswith(str(Path(sys.prefix).resolve())), "%s imported from %s" % (module.__name__, where)


def start(backend_port: int) -> Tuple[int, int, int]:
    """A proxy in this process in front of the backend, with its control API: (id, port, http port)."""
    import vaurien
    from vaurien.util import start_proxy

    installed(vaurien)
    port, http_port = free_port(), free_port()
    pid = start_proxy(proxy_host="127.0.0.1", proxy_port=port, backend_host="127.0.0.1", backend_port=backend_port,
                      http_host="127.0.0.1", http_port=http_port, warmup=10)
    return pid, port, http_port


def stop(pid: int, port: int) -> None:
    """stop_proxy, and its port is closed when it returns."""
    from vaurien.util import stop_proxy

    stop_proxy(pid)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return
    raise AssertionError("port %d still open after stop_proxy" % port)


def check_client(port: int, http_port: int) -> None:
    """vaurienclient 2.x drives the proxy: a delay set for a block, then the previous behavior."""
    import vaurienclient

    installed(vaurienclient)
    assert vaurienclient.__version__.startswith("2."), vaurienclient.__version__
    client = vaurienclient.Client("127.0.0.1", http_port)
    before = client.get_behavior()
    with client.with_behavior("delay", sleep=0.5):
        assert client.get_behavior() == "delay"
        t0 = time.monotonic()
        fetch(port)
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.45, "delay 0.5 s, the request took %.3f s" % elapsed
    assert client.get_behavior() == before


def check_without_client(backend_port: int) -> None:
    """vaurienclient uninstalled: the proxy still runs; vaurien.Client says what is missing."""
    try:
        import vaurienclient  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("vaurienclient still importable")
    try:
        from vaurien import Client  # noqa: F401
    except ImportError as e:
        assert "pip install 'vaurienclient>=2'" in str(e), e
    else:
        raise AssertionError("vaurien.Client without vaurienclient")
    pid, port, _ = start(backend_port)
    fetch(port)
    stop(pid, port)


def main(argv: list) -> None:
    mode, arg = argv[0], int(argv[1]) if len(argv) > 1 else 0
    if mode == "free-port":
        print(free_port())
        return
    if mode == "wait-port":
        wait_port(arg)
        return
    if mode == "fetch":
        fetch(arg)
    elif mode == "without-client":
        check_without_client(arg)
    elif mode == "client":
        pid, port, http_port = start(arg)
        fetch(port)
        check_client(port, http_port)
        stop(pid, port)
    else:
        raise SystemExit("install_check.py: unknown mode %r" % mode)
    print("    ok: %s %s (%s)" % (mode, arg, sys.prefix))


if __name__ == "__main__":
    main(sys.argv[1:])
