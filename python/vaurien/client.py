"""The client of the control API (``--http``): ``vaurien.Client`` is ``vaurienclient.Client``,
from the vaurienclient distribution (clients/vaurienclient), which vaurien depends on."""
try:
    from vaurienclient import Client, HTTPError
except (ImportError, SyntaxError) as e:  # uninstalled, or 1.x (Python 2) installed over 2.x
    raise ImportError(
        "vaurien.Client is vaurienclient.Client, from vaurienclient 2.x: "
        "pip install 'vaurienclient>=2' (%s: %s)" % (type(e).__name__, e)
    ) from e

__all__ = ["Client", "HTTPError"]
