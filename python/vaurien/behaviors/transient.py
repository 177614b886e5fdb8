"""``transient``: behaves as ``error`` for the first ``agitate`` exchanges, then as ``dummy``
(runs natively in the engine; this class is its Python form, to subclass)."""
from __future__ import annotations

from typing import Any

from vaurien.behaviors.error import Error

__all__ = ["Transient"]


class Transient(Error):
    """Fails the first ``agitate`` exchanges, then recovers."""

    name = "transient"
    options = {"agitate": ("Number of calls before succeeding", int, 1)}
    options.update(Error.options)

    def __init__(self) -> None:
        super().__init__()
        # The original shared Error's warmup counter (so a warmup hid the errors); apart here.
        self.agitated = 0

    def on_before_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        if self.agitated < self.option("agitate"):
            self.agitated += 1
            return super().on_before_handle(protocol, source, dest, to_backend)
        return True
