"""``error``: answers with errors (runs natively in the engine; this class is its Python form,
to subclass).

The module's tables are the original's: ``_ERRORS`` (``{code: (reason, description)}``),
``_ERROR_CODES`` (the codes picked from; a live view of ``_ERRORS``' keys) and ``_TMP`` (the
response template). Editing them (``_ERRORS[503] = ...``, ``del _ERRORS[500]``, or assigning
``_ERRORS``, ``_ERROR_CODES`` or ``_TMP``) changes what the engine's ``error`` and
``transient`` answer with the http protocol, in every proxy of this process, at once."""
from __future__ import annotations

import os
import random
import sys
import types
from typing import Any, Dict, Iterable, List, Optional, Tuple

from vaurien import _vaurien
from vaurien.behaviors.dummy import Dummy
from vaurien.util import get_data

__all__ = ["Error", "random_http_error"]


class _Table(dict):  # type: ignore[type-arg]
    """``_ERRORS``: a dict that tells the engine when it changes."""

    def _changed(self) -> None:
        _sync()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> "_Table":  # type: ignore[misc,override]
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self._changed()

    def pop(self, *args: Any) -> Any:
        try:
            return super().pop(*args)
        finally:
            self._changed()

    def popitem(self) -> Any:
        try:
            return super().popitem()
        finally:
            self._changed()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        try:
            return super().setdefault(key, default)
        finally:
            self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()


_ERRORS: Dict[int, Tuple[str, str]] = _Table({
    500: ("Internal Server Error",
          ('<p>The server encountered an internal error and was unable to '
           'complete your request.  Either the server is overloaded or there '
           'is an error in the application.</p>')),

    501: ("Not Implemented",
          ('<p>The server does not support the action requested by the '
           'browser.</p>')),

    502: ("Bad Gateway",
          ('<p>The proxy server received an invalid response from an upstream'
           ' server.</p>')),

    503: ("Service Unavailable",
          ('<p>The server is temporarily unable to service your request due '
           'to maintenance downtime or capacity problems.  Please try again '
           'later.</p>'))
})

_ERROR_CODES: Iterable[int] = _ERRORS.keys()

_TMP = """\
HTTP/1.1 %(code)s %(name)s
Content-Type: text/html; charset=UTF-8
Connection: close

<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<title>%(code)s %(name)s</title>
<h1>%(name)s</h1>
%(description)s
"""

_PRISTINE = (dict(_ERRORS), list(_ERROR_CODES), _TMP)


def _codes() -> List[int]:
    """The codes picked from: ``_ERROR_CODES`` that ``_ERRORS`` describes."""
    return [code for code in list(_ERROR_CODES) if code in _ERRORS]


def _render(code: int) -> str:
    name, description = _ERRORS[code]
    return _TMP % {"code": code, "name": name, "description": description}


def random_http_error() -> str:
    """A random error page from the tables (as the original: ``_TMP`` filled in, ``\\n``
    line ends)."""
    return _render(random.choice(_codes()))


def http_response(text: str) -> bytes:
    """``text`` (a filled-in ``_TMP``) as sent: ``\\r\\n`` line ends and a ``Content-Length``
    when the template has none, so that clients read the whole page."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    payload = body.replace("\n", "\r\n").encode("utf-8")
    if not any(line.lower().startswith("content-length:") for line in lines):
        lines.append("Content-Length: %d" % len(payload))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + payload


def _table() -> Optional[List[bytes]]:
    """The responses the engine must use; None while the tables are the original ones (the
    engine has those built in)."""
    if (dict(_ERRORS), list(_ERROR_CODES), _TMP) == _PRISTINE:
        return None
    return [http_response(_render(code)) for code in _codes()]


def _sync() -> None:
    """Gives the engine the current tables; a table it cannot render yet (a ``_TMP`` naming
    an unknown key, while it is being edited) leaves the previous one in place."""
    try:
        table = _table()
    except (KeyError, TypeError, ValueError):
        return
    _vaurien.set_http_errors(table)


class _Module(types.ModuleType):
    """Assigning ``_ERRORS``, ``_ERROR_CODES`` or ``_TMP`` reaches the engine too."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_ERRORS" and hasattr(value, "keys"):
            old, codes = self.__dict__.get("_ERRORS"), self.__dict__.get("_ERROR_CODES")
            if isinstance(codes, _KEYS) and old is not None and codes == old.keys():
                # _ERROR_CODES was _ERRORS.keys(): it follows the new table.
                super().__setattr__("_ERROR_CODES", value.keys())
        super().__setattr__(name, value)
        if name in ("_ERRORS", "_ERROR_CODES", "_TMP"):
            _sync()


class Error(Dummy):
    """Reads the packets that have been sent then send back "errors".

    Used in cunjunction with the HTTP Procotol, it will randomly send back
    a 501, 502 or 503.

    For other protocols, it returns random data.

    The *inject* option can be used to inject data within valid data received
    from the backend. The Warmup option can be used to deactivate the random
    data injection for a number of calls. This is useful if you need the
    communication to settle in some speficic protocols before the ramdom
    data is injected.

    The *inject* option is deactivated when the *http* protocol is used.
    """

    name = "error"
    options = {
        "inject": ("Inject errors inside valid data", bool, False),
        "warmup": ("Number of calls before erroring out", int, 0),
    }
    options.update(Dummy.options)

    def __init__(self) -> None:
        super().__init__()
        self.current = 0

    def on_before_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        if self.current < self.option("warmup"):
            self.current += 1
            return super().on_before_handle(protocol, source, dest, to_backend)

        # read the data
        data = get_data(source)
        if not data:
            return False

        # error out
        if protocol.name == "http" and to_backend:
            # we'll just send back a random error
            source.sendall(http_response(random_http_error()))
            source.close()
            source._closed = True
            return False

        if not to_backend:
            # an answer from the backend: spoilt on its way to the client
            if self.option("inject"):
                middle = len(data) // 2
                dest.sendall(data[:middle] + os.urandom(100) + data[middle:])
            else:
                dest.sendall(os.urandom(1000))
            return True

        # A request: it reaches the backend, and the client gets garbage instead of the answer
        # (the original sent nothing here), or the answer's first read with 100 random bytes in
        # its middle. Then the connection ends, as the engine's error does.
        dest.sendall(data)
        if self.option("inject"):
            answer = get_data(dest, protocol.option("buffer"))
            middle = len(answer) // 2
            source.sendall(answer[:middle] + os.urandom(100) + answer[middle:])
        else:
            source.sendall(os.urandom(1000))
        source.close()
        source._closed = True
        return False


_KEYS: type = type({}.keys())
sys.modules[__name__].__class__ = _Module
_sync()  # a reload starts the engine from these tables again
