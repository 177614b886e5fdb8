"""``smtp``: tcp with ``keep_alive`` always on (runs natively in the engine; this class is its
Python form, to subclass)."""
from __future__ import annotations

from vaurien.protocols.tcp import KeepAliveTCP

__all__ = ["SMTP"]


class SMTP(KeepAliveTCP):
    """SMTP Protocol."""

    name = "smtp"
