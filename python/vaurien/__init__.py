"""vaurien: a chaos TCP proxy, on a Rust engine, with the original Vaurien's Python API.

Existing code keeps working::

    from vaurien.util import start_proxy, stop_proxy
    from vaurienclient import Client      # or: from vaurien import Client

New code may use the :class:`Proxy` context manager. Behaviors and protocols written in Python
(``vaurien.behaviors.Behavior.register``, ``vaurien.protocols.Protocol.register``) run inside
the engine.
"""
from __future__ import annotations

import atexit
import logging
from typing import TYPE_CHECKING, Any

from vaurien import _vaurien
from vaurien._vaurien import __version__
from vaurien.util import Proxy, start_proxy, stop_proxy

if TYPE_CHECKING:  # for type checkers; at run time, __getattr__ below
    from vaurienclient import Client, HTTPError

#: The engine's logs arrive on this logger (and its children, ``vaurien.proxy...``).
logger = logging.getLogger("vaurien")

# Stop every in-process proxy before the interpreter goes down, then never call into it again.
atexit.register(_vaurien.finalize)


def __getattr__(name: str) -> Any:
    """``Client`` and ``HTTPError`` come from the vaurienclient distribution (a dependency),
    imported when first asked for: the proxy runs without it."""
    if name in ("Client", "HTTPError"):
        from vaurien import client

        return getattr(client, name)
    raise AttributeError(f"module 'vaurien' has no attribute {name!r}")


__all__ = ["Client", "HTTPError", "Proxy", "__version__", "logger", "start_proxy", "stop_proxy"]
