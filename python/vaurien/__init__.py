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

from vaurien import _vaurien
from vaurien._vaurien import __version__
from vaurien.client import Client, HTTPError
from vaurien.util import Proxy, start_proxy, stop_proxy

#: The engine's logs arrive on this logger (and its children, ``vaurien.proxy...``).
logger = logging.getLogger("vaurien")

# Stop every in-process proxy before the interpreter goes down, then never call into it again.
atexit.register(_vaurien.finalize)

__all__ = ["Client", "HTTPError", "Proxy", "__version__", "logger", "start_proxy", "stop_proxy"]
