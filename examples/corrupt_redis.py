"""A vaurien behavior that corrupts one redis reply in ten, on its way to the client.

It rewrites the traffic with ``on_response``: the engine hands it each whole reply (one RESP
value, as the redis protocol frames it) and sends what it returns instead. At random, one reply
in ``every`` has one field changed:

- a bulk string (``$5\\r\\nhello\\r\\n``) keeps its length and gets each byte's 0x20 bit
  flipped (``HELLO``): a value that is wrong but still well-formed RESP;
- an integer (``:41\\r\\n``) is off by one (``:42\\r\\n``).

Other replies (``+OK``, errors, nulls, arrays) go through unchanged, as does every request.

Use it by name once the module is imported: from an ini file (``[behavior:corrupt_replies]``
with ``callable = corrupt_redis:CorruptReplies``, the file next to the ini file), or in Python::

    import corrupt_redis  # registers it
    vaurien.Proxy(backend="127.0.0.1:6379", protocol="redis",
                  behavior="100:corrupt_replies", options=["--stay-connected"])
"""
from __future__ import annotations

import random
from typing import Any, Optional

from vaurien.behaviors import Behavior
from vaurien.behaviors.dummy import Dummy


def corrupt(reply: bytes) -> Optional[bytes]:
    """The reply with one field changed, or None when it has no bulk string nor integer."""
    if reply.startswith(b"$") and not reply.startswith(b"$-"):
        head, _, rest = reply.partition(b"\r\n")
        value = rest[:-2]  # without its CRLF
        return head + b"\r\n" + bytes(b ^ 0x20 for b in value) + b"\r\n"
    if reply.startswith(b":"):
        return b":%d\r\n" % (int(reply[1:-2]) + 1)
    return None


@Behavior.register
class CorruptReplies(Dummy):
    """Corrupts one field of one redis reply in EVERY, at random."""

    name = "corrupt_replies"
    options = {"every": ("corrupt one reply in EVERY, at random", int, 10)}

    def on_response(self, protocol: Any, data: bytes, to_backend: bool) -> Optional[bytes]:
        if protocol.name != "redis" or random.randrange(self.option("every")) != 0:
            return None  # unchanged
        return corrupt(data)
