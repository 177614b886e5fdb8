"""``vaurienclient``: the client of vaurien's HTTP control API, and the ``vaurienctl`` command.

The original's import path and API (``from vaurienclient import Client``,
``Client.with_behavior``), for Python 3 and vaurien 3.x, on the standard library only::

    from vaurienclient import Client

    client = Client("localhost", 8080)
    with client.with_behavior("delay", sleep=0.5):
        ...  # every new exchange through the proxy is delayed here
"""
from __future__ import annotations

from vaurienclient._version import __version__
from vaurienclient.client import Client, HTTPError
from vaurienclient.ctl import main

__all__ = ["Client", "HTTPError", "__version__", "main"]
