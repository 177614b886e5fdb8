"""``smtp``: tcp with ``keep_alive`` always on (runs natively in the engine; this class is its
Python form, to subclass)."""
from __future__ import annotations

import copy
from typing import Any, Dict

from vaurien.protocols.tcp import TCP

__all__ = ["SMTP"]


class SMTP(TCP):
    """SMTP Protocol."""

    name = "smtp"
    options = copy.copy(TCP.options)
    del options["keep_alive"]

    def update_settings(self, settings: Dict[str, Any]) -> None:
        settings = {k: v for k, v in settings.items() if k != "keep_alive"}
        super().update_settings(settings)

    def option(self, name: str) -> Any:
        if name == "keep_alive":
            return True
        return super().option(name)
