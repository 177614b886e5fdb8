"""The protocol registry. ``Protocol.register(cls)`` makes a Python protocol (a subclass of
``vaurien.protocols.base.BaseProtocol``) usable as ``--protocol NAME``, with
``--protocol-NAME-OPTION`` flags and ini ``[protocol:NAME]`` sections.

The built-in protocols run in the engine. Their Python forms, ported from the original
(``vaurien.protocols.tcp.TCP``, ``.http.Http``, ``.redis.Redis``, ``.memcache.Memcache``,
``.smtp.SMTP``, ``.mysql.MySql``), are what ``get_protocols()`` lists for them, and work as
base classes: a subclass registered under a name of its own runs in the engine."""
from __future__ import annotations

import inspect
from abc import ABCMeta
from typing import Any, Dict, Optional

from vaurien import _vaurien
from vaurien.behaviors import _schema

__all__ = ["Http", "Memcache", "MySql", "Protocol", "Redis", "SMTP", "TCP", "get_protocols", "get_protocol"]


class Protocol(metaclass=ABCMeta):
    """Registry of protocols."""

    _classes: Dict[str, type] = {}
    _cache: Dict[str, Any] = {}

    @classmethod
    def register(cls, subclass: type, name: Optional[str] = None) -> type:  # type: ignore[override]
        """Registers ``subclass`` (usable as a class decorator)."""
        name = name or getattr(subclass, "name", None) or subclass.__name__.lower()
        if not callable(getattr(subclass, "_handle", None)):
            raise ValueError(f"protocol {name!r}: the class needs a _handle(source, dest, to_backend, on_between_handle) method")
        ABCMeta.register(cls, subclass)
        doc = (subclass.__doc__ or "").strip().splitlines()
        engine_class = subclass
        if not _takes_between(subclass._handle):
            original = subclass._handle

            def _handle(self: Any, source: Any, dest: Any, to_backend: bool, on_between_handle: Any = None) -> Any:
                return original(self, source, dest, to_backend)

            engine_class = type(subclass.__name__, (subclass,), {
                "_handle": _handle, "__doc__": subclass.__doc__, "__module__": subclass.__module__})
        _vaurien.register_protocol(
            name,
            doc[0] if doc else "Python protocol %s" % subclass.__qualname__,
            _schema(name, getattr(subclass, "options", {})),
            engine_class,
        )
        cls._classes[name] = subclass
        cls._cache.pop(name, None)
        return subclass

    @classmethod
    def _class(cls, name: str) -> Optional[type]:
        return cls._classes.get(name) or _PORTED.get(name)

    @classmethod
    def get_protocols(cls) -> Dict[str, Any]:
        """``{name: instance}`` of every protocol: registered ones, and the Python forms of the
        built-ins (None for a built-in without one)."""
        out: Dict[str, Any] = {}
        for name, *_ in _vaurien.protocol_kinds():
            klass = cls._class(name)
            if klass is None:
                out[name] = None
            else:
                if type(cls._cache.get(name)) is not klass:
                    cls._cache[name] = klass()
                out[name] = cls._cache[name]
        return out

    @classmethod
    def get_protocol(cls, name: str) -> Any:
        """The instance of protocol ``name``; ``KeyError`` when there is none."""
        instance = cls.get_protocols().get(name)
        if instance is None:
            raise KeyError(name)
        return instance


get_protocols = Protocol.get_protocols


def get_protocol(name: str) -> Any:
    """The instance of protocol ``name``; ``KeyError`` when there is none."""
    return Protocol.get_protocol(name)


# The Python forms of the built-ins (the original registered them here). They are not given to
# the engine, which runs its own; `Protocol.register` of a subclass does.
_PORTED: Dict[str, type] = {}

from vaurien.protocols.http import Http  # noqa: E402
from vaurien.protocols.memcache import Memcache  # noqa: E402
from vaurien.protocols.mysql import MySql  # noqa: E402
from vaurien.protocols.redis import Redis  # noqa: E402
from vaurien.protocols.smtp import SMTP  # noqa: E402
from vaurien.protocols.tcp import TCP  # noqa: E402

for _klass in (Http, Memcache, MySql, Redis, SMTP, TCP):
    ABCMeta.register(Protocol, _klass)
    _PORTED[_klass.name] = _klass
del _klass


def _takes_between(handle: Any) -> bool:
    """Whether ``_handle`` takes 2.0's ``on_between_handle``: a protocol written for 1.9 has
    ``_handle(self, source, dest, to_backend)``, and is called that way."""
    try:
        params = list(inspect.signature(handle).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if inspect.ismethod(handle):
        return len(positional) >= 4
    return len(positional) >= 5
