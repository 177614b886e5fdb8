"""``memcache``: the text protocol, one command (and its data block) and its reply per exchange
(runs natively in the engine; this class is its Python form, to subclass)."""
from __future__ import annotations

import re
from typing import Any, Callable

from vaurien.protocols.base import BaseProtocol

__all__ = ["Memcache"]

RE_LEN = re.compile(rb"Content-Length: (\d+)", re.M | re.I)
RE_KEEPALIVE = re.compile(rb"Connection: Keep-Alive")
RE_MEMCACHE_COMMAND = re.compile(rb"(.*)\r\n")

EOH = b"\r\n\r\n"
CRLF = b"\r\n"

_STORAGE = (b"set", b"add", b"replace", b"append", b"prepend", b"cas")


class Memcache(BaseProtocol):
    """Memcache protocol."""

    name = "memcache"

    def _handle(self, source: Any, dest: Any, to_backend: bool, on_between_handle: Callable[[], bool]) -> bool:
        # https://github.com/memcached/memcached/blob/master/doc/protocol.txt
        # Sending the query
        buffer = self._get_data(source)
        if not buffer:
            self._abort_handling(to_backend, dest)
            return False
        dest.sendall(buffer)

        # finding the command we sent (it may come in pieces)
        cmd = RE_MEMCACHE_COMMAND.search(buffer)
        while cmd is None:
            data = self._get_data(source)
            if not data:
                self._abort_handling(to_backend, dest)
                return False
            dest.sendall(data)
            buffer += data
            cmd = RE_MEMCACHE_COMMAND.search(buffer)

        cmd_parts = cmd.group(1).split()
        mcmd = cmd_parts[0] if cmd_parts else b""

        if mcmd in _STORAGE:
            # the data block: its size is the command's 5th word (noreply and cas come after)
            total_size = cmd.end() + int(cmd_parts[4]) + len(CRLF)
            while len(buffer) < total_size:
                data = self._get_data(source, min(self.option("buffer"), total_size - len(buffer)))
                if not data:
                    return False
                buffer += data
                dest.sendall(data)

        if not on_between_handle():
            return False
        if cmd_parts and cmd_parts[-1] == b"noreply":
            return True

        # Receiving the response now
        buffer = self._get_data(dest)
        source.sendall(buffer)
        # we're getting back values, or one line
        eow = b"END" + CRLF if buffer.startswith(b"VALUE") else CRLF
        while buffer and not buffer.endswith(eow):
            data = self._get_data(dest)
            if not data:
                return False
            buffer += data
            source.sendall(data)

        # we're done
        return True  # keeping connected
