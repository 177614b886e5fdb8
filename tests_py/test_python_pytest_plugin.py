"""The pytest plugin: the `vaurien_proxy` fixture, loaded through the pytest11 entry point."""
from __future__ import annotations

import pytest

from pyhelpers import Backend, echo_once, port_is_free

from vaurien import _vaurien

pytest_plugins = ["pytester"]


@pytest.fixture
def echo_backend():
    b = Backend(echo_once)
    yield b
    b.close()


def test_the_fixture_is_registered_by_the_entry_point(pytester):
    pytester.makepyfile(
        """
        def test_listed(request):
            request.getfixturevalue("vaurien_proxy")
        """
    )
    # -p no:cacheprovider: nothing written; the plugin comes from the installed entry point.
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_fixture_starts_drives_and_stops_proxies(pytester, echo_backend, tmp_path):
    ports_file = tmp_path / "ports"
    pytester.makepyfile(
        """
        import socket, time

        BACKEND = "%s"
        PORTS = %r

        def talk(port, payload):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(payload)
                out = b""
                while True:
                    chunk = s.recv(1000)
                    if not chunk:
                        return out
                    out += chunk

        def record(proxy):
            with open(PORTS, "a") as f:
                f.write("%%d %%d\\n" %% (proxy.port, proxy.client.port))

        def test_passes(vaurien_proxy):
            proxy = vaurien_proxy(backend=BACKEND, protocol="tcp")
            record(proxy)
            assert proxy.address == "%%s:%%d" %% (proxy.host, proxy.port)
            assert talk(proxy.port, b"hi") == b"echo:hi"
            with proxy.behavior("delay", sleep=0.3):
                t0 = time.monotonic()
                assert talk(proxy.port, b"slow") == b"echo:slow"
                assert time.monotonic() - t0 >= 0.3
            assert "delay" in proxy.client.list_behaviors()

        def test_fails_but_still_stops(vaurien_proxy):
            proxy = vaurien_proxy(backend=BACKEND, behavior="100:blackout")
            record(proxy)
            second = vaurien_proxy(backend=BACKEND, http=False)
            assert talk(proxy.port, b"x") == b""
            assert talk(second.port, b"y") == b"echo:y"
            raise AssertionError("this test fails on purpose")
        """
        % (echo_backend.address, str(ports_file))
    )
    before = set(_vaurien.running())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert set(_vaurien.running()) == before, "every proxy stopped at teardown"
    ports = [int(p) for line in ports_file.read_text().split("\n") if line for p in line.split()]
    assert len(ports) == 4
    assert all(port_is_free(p) for p in ports)
