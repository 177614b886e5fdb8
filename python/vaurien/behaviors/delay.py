"""``delay``: sleeps before or after the exchange (runs natively in the engine; this class is
its Python form, to subclass)."""
from __future__ import annotations

import time
from typing import Any

from vaurien.behaviors.dummy import Dummy

__all__ = ["Delay"]


class Delay(Dummy):
    """Adds a delay before or after the backend is called.

    The delay can happen *after* or *before* the backend is called.
    """

    name = "delay"
    options = {
        "sleep": ("Delay in seconds (float)", float, 1),
        "before": ("If True adds before the backend is called. Otherwise after", bool, True),
    }
    options.update(Dummy.options)

    def on_before_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        if self.option("before"):
            time.sleep(self.option("sleep"))
        return True

    def on_after_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        if not self.option("before"):
            time.sleep(self.option("sleep"))
        return True
