"""``abort``: shuts the connection down after the request reached the backend, before any
answer (runs natively in the engine; this class is its Python form, to subclass)."""
from __future__ import annotations

import socket
from typing import Any

from vaurien.behaviors.dummy import Dummy

__all__ = ["Abort"]


class Abort(Dummy):
    """Simulate an aborted connection by a client before receiving a response."""

    name = "abort"
    options = {}

    def on_between_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        dest.shutdown(socket.SHUT_RDWR)
        dest.close()
        return False
