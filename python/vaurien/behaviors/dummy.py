"""``Dummy``: the transparent behavior, and the usual base class of custom behaviors."""
from __future__ import annotations

from typing import Any, Dict, Tuple

__all__ = ["Dummy"]


class Dummy:
    """Transparent behavior. Nothing's done.

    Subclasses set ``name`` and ``options`` (``{name: (description, type, default)}``, types
    ``int``, ``float``, ``bool`` or ``str``) and override the hooks they need; each hook gets
    ``(protocol, source, dest, to_backend)`` and returns True to carry on."""

    name = "dummy"
    options: Dict[str, Tuple[str, type, Any]] = {}

    def __init__(self) -> None:
        self.settings: Dict[str, Any] = {}

    def update_settings(self, settings: Dict[str, Any]) -> None:
        self.settings.update(settings)

    def _convert(self, value: Any, type_: type) -> Any:
        if isinstance(value, type_):
            return value
        if type_ is bool:
            if isinstance(value, (bytes, str)):
                text = value.decode() if isinstance(value, bytes) else value
                return text.lower() in ("y", "yes", "1", "on", "true")
            return bool(value)
        return type_(value)

    def option(self, name: str) -> Any:
        """The value of option ``name`` (converted to its declared type; strings ``y``,
        ``yes``, ``1``, ``on`` are true for booleans)."""
        type_, default = self.options[name][1:3]
        value = self.settings.get(name, default)
        return self._convert(value, type_)

    def on_before_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        return True

    def on_after_handle(self, protocol: Any, source: Any, dest: Any, to_backend: bool) -> bool:
        return True
