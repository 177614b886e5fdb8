"""``redis``: one RESP command and its reply per exchange (runs natively in the engine; this
class is its Python form, to subclass)."""
from __future__ import annotations

import re
from typing import Any, Callable, Optional

from vaurien.protocols.base import BaseProtocol

__all__ = ["Redis"]

RE_LEN = re.compile(rb"Content-Length: (\d+)", re.M | re.I)
RE_KEEPALIVE = re.compile(rb"Connection: Keep-Alive")
RE_MEMCACHE_COMMAND = re.compile(rb"(.*)\r\n")

EOH = b"\r\n\r\n"
CRLF = b"\r\n"

# RESP types whose value is one line, a length-prefixed blob, or a count of nested values.
_LINE = b"+-:_#,("
_BLOB = b"$!="
_AGGREGATE = b"*~>"
_PAIRS = b"%|"


def value_end(buffer: bytes, pos: int = 0) -> Optional[int]:
    """Where the RESP value (RESP2 or RESP3, or an inline command) starting at ``pos`` ends;
    None while it is incomplete."""
    eol = buffer.find(CRLF, pos)
    if eol == -1:
        return None
    kind, head = buffer[pos:pos + 1], buffer[pos + 1:eol]
    end = eol + len(CRLF)
    if kind in (b"", b"\r") or kind not in _LINE + _BLOB + _AGGREGATE + _PAIRS or kind in _LINE:
        return end
    count = int(head)
    if kind in _BLOB:
        if count < 0:
            return end
        end += count + len(CRLF)
        return end if len(buffer) >= end else None
    if count < 0:
        return end
    for _ in range(count * (2 if kind in _PAIRS else 1)):
        next_end = value_end(buffer, end)
        if next_end is None:
            return None
        end = next_end
    return end


def count_values(buffer: bytes) -> Optional[int]:
    """How many whole values ``buffer`` holds; None when it ends inside one."""
    pos, count = 0, 0
    while pos < len(buffer):
        end = value_end(buffer, pos)
        if end is None:
            return None
        pos, count = end, count + 1
    return count


class Redis(BaseProtocol):
    """Redis protocol.

    Reads whole commands (by their declared lengths, so binary values pass) and forwards them,
    then as many whole replies (multi-bulk and RESP3 ones included)."""

    name = "redis"

    def _read_values(self, source: Any, dest: Any) -> int:
        """Forwards what ``source`` sends until it ends on a whole value; the count of values
        (0 when ``source`` closed first)."""
        buffer = b""
        while True:
            data = self._get_data(source)
            if not data:
                return 0
            dest.sendall(data)
            buffer += data
            count = count_values(buffer)
            if count:
                return count

    def _handle(self, source: Any, dest: Any, to_backend: bool, on_between_handle: Callable[[], bool]) -> bool:
        """see http://redis.io/topics/protocol"""
        commands = self._read_values(source, dest)
        if not commands:
            return False
        if not on_between_handle():
            return False
        replies = 0
        while replies < commands:
            got = self._read_values(dest, source)
            if not got:
                return False
            replies += got
        # The exchange is over. (The original returned False, and its loop went on with
        # --stay-connected; in the engine False ends the connection: True here, and the
        # connection still closes without --stay-connected, as the original's did.)
        return True
