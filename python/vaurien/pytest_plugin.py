"""The pytest plugin (registered through the ``pytest11`` entry point: installing vaurien is
enough). Fixture ``vaurien_proxy``: a factory of proxies in front of a backend, on free
ports, stopped at teardown even when the test fails::

    def test_slow_redis(vaurien_proxy):
        proxy = vaurien_proxy(backend="127.0.0.1:6379", protocol="redis")
        r = redis.Redis(proxy.host, proxy.port)
        with proxy.behavior("delay", sleep=0.5):
            ...
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, List, Sequence, Tuple, Union

import pytest

from vaurien.util import _DEFAULT, Proxy

__all__ = ["vaurien_proxy"]


@pytest.fixture
def vaurien_proxy() -> Iterator[Callable[..., Proxy]]:
    """A factory: ``vaurien_proxy(backend, protocol="tcp", behavior=None, options=(),
    http=True)`` starts a :class:`vaurien.Proxy` on free loopback ports and returns it
    (``.host``, ``.port``, ``.address``, ``.client``, ``.behavior(name, **options)``)."""
    started: List[Proxy] = []

    def start(
        backend: Union[str, Tuple[str, int]],
        protocol: str = _DEFAULT["protocol"],
        behavior: Union[str, None] = None,
        options: Sequence[str] = (),
        http: bool = True,
        **kwargs: Any,
    ) -> Proxy:
        proxy = Proxy(backend=backend, protocol=protocol, behavior=behavior, options=options, http=http, **kwargs)
        started.append(proxy)
        return proxy.start()

    try:
        yield start
    finally:
        for proxy in reversed(started):
            proxy.stop()
