"""The protocol registry. ``Protocol.register(cls)`` makes a Python protocol (a subclass of
``vaurien.protocols.base.BaseProtocol``) usable as ``--protocol NAME``, with
``--protocol-NAME-OPTION`` flags and ini ``[protocol:NAME]`` sections."""
from __future__ import annotations

from abc import ABCMeta
from typing import Any, Dict, Optional

from vaurien import _vaurien
from vaurien.behaviors import _schema

__all__ = ["Protocol", "get_protocols", "get_protocol"]


class Protocol(metaclass=ABCMeta):
    """Registry of protocols."""

    _classes: Dict[str, type] = {}

    @classmethod
    def register(cls, subclass: type, name: Optional[str] = None) -> type:  # type: ignore[override]
        """Registers ``subclass`` (usable as a class decorator)."""
        name = name or getattr(subclass, "name", None) or subclass.__name__.lower()
        if not callable(getattr(subclass, "_handle", None)):
            raise ValueError(f"protocol {name!r}: the class needs a _handle(source, dest, to_backend, on_between_handle) method")
        ABCMeta.register(cls, subclass)
        doc = (subclass.__doc__ or "").strip().splitlines()
        _vaurien.register_protocol(
            name,
            doc[0] if doc else "Python protocol %s" % subclass.__qualname__,
            _schema(name, getattr(subclass, "options", {})),
            subclass,
        )
        cls._classes[name] = subclass
        return subclass

    @classmethod
    def get_protocols(cls) -> Dict[str, Any]:
        """``{name: class or None}``: Python protocols by class; built-ins (which run in the
        engine) as None."""
        return {name: cls._classes.get(name) for name, *_ in _vaurien.protocol_kinds()}

    @classmethod
    def get_protocol(cls, name: str) -> Any:
        """An instance of Python protocol ``name``; ``KeyError`` when there is none."""
        return cls._classes[name]()


get_protocols = Protocol.get_protocols


def get_protocol(name: str) -> Any:
    """An instance of Python protocol ``name``."""
    return Protocol.get_protocol(name)
