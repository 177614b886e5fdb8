"""``hang``: reads what the client sends and never answers (runs natively in the engine; this
class is its Python form, to subclass)."""
from __future__ import annotations

from typing import Any

from vaurien.behaviors.dummy import Dummy
from vaurien.util import get_data

__all__ = ["Hang"]


class Hang(Dummy):
    """Reads the packets that have been sent then hangs.

    Acts like a *pdb.set_trace()* you'd forgot in your code ;)

    The connection ends when the client closes it or sends nothing for the proxy's
    ``--timeout`` (the original's greenlet slept on forever; a hook's thread does not)."""

    name = "hang"
    options = {}

    def on_before_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        while get_data(source):
            pass
        return False
