"""``blackout``: closes the client connection at once (runs natively in the engine; this class
is its Python form, to subclass)."""
from __future__ import annotations

from typing import Any

from vaurien.behaviors.dummy import Dummy

__all__ = ["Blackout"]


class Blackout(Dummy):
    """Immediately closes client socket, no other actions taken."""

    name = "blackout"
    options = {}

    def on_before_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        source.close()
        source._closed = True
        return False
