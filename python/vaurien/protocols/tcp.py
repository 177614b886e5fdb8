"""``tcp``: forwards what one side sent (runs natively in the engine; this class is its Python
form, to subclass)."""
from __future__ import annotations

import re
from typing import Any, Callable, Dict

from vaurien.protocols.base import BaseProtocol

__all__ = ["KeepAliveTCP", "TCP"]

RE_LEN = re.compile(rb"Content-Length: (\d+)", re.M | re.I)
RE_KEEPALIVE = re.compile(rb"Connection: Keep-Alive")
RE_MEMCACHE_COMMAND = re.compile(rb"(.*)\r\n")

EOH = b"\r\n\r\n"
CRLF = b"\r\n"


class TCP(BaseProtocol):
    """TCP handler."""

    name = "tcp"

    def _handle(self, source: Any, dest: Any, to_backend: bool, on_between_handle: Callable[[], bool]) -> bool:
        # default TCP behavior
        data = self._get_data(source)
        if data:
            dest.sendall(data)
            if not on_between_handle():
                return False

            # If we are not keeping the connection alive
            # we can suck the answer back and close the socket
            if not self.option("keep_alive"):
                # just suck it until it's empty
                while True:
                    data = self._get_data(dest)
                    if not data:
                        break
                    source.sendall(data)

                if not self.option("reuse_socket"):
                    dest.close()
                    dest._closed = True

                # we're done - False means we'll disconnect the client
                return False
        else:
            self._abort_handling(to_backend, dest)

        return bool(data)


class KeepAliveTCP(TCP):
    """tcp with ``keep_alive`` always on and not an option (the original's smtp and mysql)."""

    options = {k: v for k, v in TCP.options.items() if k != "keep_alive"}

    def update_settings(self, settings: Dict[str, Any]) -> None:
        settings = {k: v for k, v in settings.items() if k != "keep_alive"}
        super().update_settings(settings)

    def option(self, name: str) -> Any:
        if name == "keep_alive":
            return True
        return super().option(name)
