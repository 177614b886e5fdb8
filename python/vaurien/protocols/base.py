"""``BaseProtocol``: the base class of protocols written in Python."""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Optional, Tuple

from vaurien.util import get_data

__all__ = ["BaseProtocol"]


class BaseProtocol:
    """A protocol frames one exchange. Subclasses set ``name`` and ``options`` and implement
    ``_handle(source, dest, to_backend, on_between_handle)``: read the request from
    ``source``, send it to ``dest``, call ``on_between_handle()`` (the behavior's hook: False
    means stop), relay the answer; return True to keep the connection for another exchange.

    In the engine, the behavior's ``on_before_handle`` and ``on_after_handle`` run around
    ``_handle``; ``source``/``dest`` are socket-like objects (see ``vaurien._vaurien.Socket``)."""

    name = ""
    options: Dict[str, Tuple[str, type, Any]] = {
        "reuse_socket": ("If True, the socket is reused.", bool, False),
        "buffer": ("Buffer size", int, 8124),
        "keep_alive": ("Keep the connection alive", bool, False),
    }

    def __init__(self, settings: Optional[Dict[str, Any]] = None, proxy: Any = None) -> None:
        self.proxy = proxy
        self.logger = getattr(proxy, "_logger", None)
        self.settings: Dict[str, Any] = {} if settings is None else copy.copy(settings)

    def _abort_handling(self, to_backend: bool, backend_sock: Any) -> None:
        if not to_backend:
            # We want to close the socket if the backend sock is empty
            if not self.option("reuse_socket"):
                backend_sock.close()
                backend_sock._closed = True

    def update_settings(self, settings: Dict[str, Any]) -> None:
        self.settings.update(settings)

    def _convert(self, value: Any, type_: type) -> Any:
        if isinstance(value, type_):
            return value
        if type_ is bool:
            text = value.decode() if isinstance(value, bytes) else str(value)
            return text.lower() in ("y", "yes", "1", "on", "true")
        return type_(value)

    def option(self, name: str) -> Any:
        """The value of option ``name``, converted to its declared type."""
        type_, default = self.options[name][1:3]
        value = self.settings.get(name, default)
        return self._convert(value, type_)

    def _get_data(self, sock: Any, buffer: Optional[int] = None) -> bytes:
        if buffer is None:
            buffer = self.option("buffer")
        return get_data(sock, buffer)

    def _handle(self, source: Any, dest: Any, to_backend: bool, on_between_handle: Callable[[], bool]) -> bool:
        raise NotImplementedError

    def __call__(self, source: Any, dest: Any, to_backend: bool, behavior: Any) -> bool:
        """Runs one exchange with ``behavior``'s hooks (how the original proxy called it; the
        engine does the same around ``_handle``)."""
        if not behavior.on_before_handle(self, source, dest, to_backend):
            return True

        def on_between_handle(*_: Any) -> bool:
            hook = getattr(behavior, "on_between_handle", None)
            return True if hook is None else bool(hook(self, source, dest, to_backend))

        try:
            return self._handle(source, dest, to_backend, on_between_handle)
        finally:
            behavior.on_after_handle(self, source, dest, to_backend)
