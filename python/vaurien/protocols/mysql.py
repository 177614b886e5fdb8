"""``mysql``: tcp with ``keep_alive`` always on (runs natively in the engine; this class is its
Python form, to subclass)."""
from __future__ import annotations

from vaurien.protocols.tcp import KeepAliveTCP

__all__ = ["MySql"]


class MySql(KeepAliveTCP):
    """MySQL protocol."""

    name = "mysql"
