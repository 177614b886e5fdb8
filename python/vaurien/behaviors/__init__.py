"""The behavior registry. ``Behavior.register(cls)`` makes a Python class usable by name
everywhere a built-in is: ``--behavior`` mixes, ``--behavior-NAME-OPTION`` flags, ini
``[behavior:NAME]`` sections, ``PUT /behavior`` and ``GET /behaviors``.

The built-in behaviors run in the engine. Their Python forms, ported from the original
(``vaurien.behaviors.error.Error``, ``.delay.Delay``, ``.hang.Hang``, ``.blackout.Blackout``,
``.transient.Transient``, ``.abort.Abort``, ``.dummy.Dummy``), are what ``get_behaviors()``
lists for them, and work as base classes: a subclass registered under a name of its own runs
its hooks, inherited ones included, in the engine."""
from __future__ import annotations

from abc import ABCMeta
from typing import Any, Dict, List, Optional, Tuple

from vaurien import _vaurien
from vaurien.behaviors.dummy import Dummy

__all__ = ["Abort", "Behavior", "Blackout", "Delay", "Dummy", "Error", "Hang", "Transient", "get_behaviors", "get_behavior"]

#: The hooks a behavior class may have, in the engine's order: the three around an exchange
#: (``(protocol, source, dest, to_backend)``, True to carry on), then the two that rewrite its
#: messages (``(protocol, data, to_backend)``, the bytes to send or None): ``on_request`` gets
#: each whole message going to the backend, ``on_response`` each one going to the client.
HOOKS = ("on_before_handle", "on_between_handle", "on_after_handle", "on_request", "on_response")
_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


def _schema(owner: str, options: Dict[str, Any]) -> List[Tuple[str, str, Any, str]]:
    """``{name: (description, type, default)}`` → the engine's option schema."""
    out = []
    for name, spec in (options or {}).items():
        try:
            description, type_, default = spec[0], spec[1], spec[2]
        except (TypeError, IndexError):
            raise ValueError(f"{owner}: option {name!r} must be (description, type, default)") from None
        kind = _TYPES.get(type_)
        if kind is None:
            raise ValueError(f"{owner}: option {name!r} has type {type_!r}; use int, float, bool or str")
        out.append((name, kind, default, str(description)))
    return out


def _has_hook(klass: type, hook: str) -> bool:
    """A hook counts when the class has it and it is not Dummy's (which only returns True)."""
    method = getattr(klass, hook, None)
    return callable(method) and method is not getattr(Dummy, hook, None)


class Behavior(metaclass=ABCMeta):
    """Registry of behaviors (any class with a ``name``, ``options`` and some of the hooks).

    The hooks (each optional; one the class lacks is never called):

    - ``on_before_handle(protocol, source, dest, to_backend) -> bool``, ``on_between_handle``,
      ``on_after_handle``: around each exchange; True carries on, False ends the connection.
      What ``on_after_handle`` returns is ignored, as the original ignored it (a hook without
      ``return`` carries on); closing ``source`` or ``dest`` in it ends the connection.
    - ``on_request(protocol, data, to_backend) -> bytes | None``: each whole message going to
      the backend, as the protocol frames it (a redis command, an HTTP request with its body, a
      tcp read); returns the bytes to send instead, or None (or ``data`` itself) to send it
      unchanged; ``b""`` sends nothing.
    - ``on_response(protocol, data, to_backend) -> bytes | None``: the same for each message
      going to the client (a redis reply, an HTTP response with its body, a greeting).

    ``to_backend`` is the exchange's direction, as in the other hooks: True when the client
    started it."""

    _classes: Dict[str, type] = {}
    _cache: Dict[str, Any] = {}

    @classmethod
    def register(cls, subclass: type, name: Optional[str] = None) -> type:  # type: ignore[override]
        """Registers ``subclass`` (usable as a class decorator); replaces a behavior of the
        same name."""
        name = name or getattr(subclass, "name", None) or subclass.__name__.lower()
        ABCMeta.register(cls, subclass)
        doc = (subclass.__doc__ or "").strip().splitlines()
        _vaurien.register_behavior(
            name,
            doc[0] if doc else "Python behavior %s" % subclass.__qualname__,
            _schema(name, getattr(subclass, "options", {})),
            subclass,
            tuple(_has_hook(subclass, h) for h in HOOKS),
        )
        cls._classes[name] = subclass
        cls._cache.pop(name, None)
        return subclass

    @classmethod
    def _classes_by_name(cls) -> Dict[str, type]:
        out: Dict[str, type] = {}
        for name, _help, origin, options in _vaurien.behavior_kinds():
            if origin == "toxic":
                continue
            if name in cls._classes:
                out[name] = cls._classes[name]
            elif name in _PORTED:
                out[name] = _PORTED[name]
            else:
                out[name] = _builtin(name, _help, options)
        return out

    @classmethod
    def _get_instance(cls, klass: type, name: str) -> Any:
        if name not in cls._cache or type(cls._cache[name]) is not klass:
            cls._cache[name] = klass()
        return cls._cache[name]

    @classmethod
    def get_behaviors(cls) -> Dict[str, Any]:
        """``{name: instance}`` of every behavior (built-ins and registered ones)."""
        return {name: cls._get_instance(k, name) for name, k in cls._classes_by_name().items()}

    @classmethod
    def get_behavior(cls, name: str) -> Any:
        """The instance of behavior ``name``; ``KeyError`` when there is none."""
        classes = cls._classes_by_name()
        if name not in classes:
            raise KeyError(name)
        return cls._get_instance(classes[name], name)


_BUILTINS: Dict[str, type] = {}
#: The Python forms of the built-ins (filled in at the end of this module).
_PORTED: Dict[str, type] = {}
_PYTYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _builtin(name: str, help: str, options: List[Tuple[str, str, Any, str]]) -> type:
    """A stand-in class describing a built-in behavior (which runs in the engine)."""
    if name not in _BUILTINS:
        _BUILTINS[name] = type(
            name.capitalize(),
            (Dummy,),
            {
                "__doc__": help,
                "__module__": __name__,
                "name": name,
                "builtin": True,
                "options": {o: (h, _PYTYPES[k], d) for o, k, d, h in options},
            },
        )
    return _BUILTINS[name]


def get_behaviors() -> Dict[str, Any]:
    """``{name: instance}`` of every behavior."""
    return Behavior.get_behaviors()


def get_behavior(name: str) -> Any:
    """The instance of behavior ``name``; ``KeyError`` when there is none."""
    return Behavior.get_behavior(name)


# The Python forms of the built-ins (the original registered them here). They are not given to
# the engine, which runs its own; `Behavior.register` of a subclass does.
from vaurien.behaviors.abort import Abort  # noqa: E402
from vaurien.behaviors.blackout import Blackout  # noqa: E402
from vaurien.behaviors.delay import Delay  # noqa: E402
from vaurien.behaviors.error import Error  # noqa: E402
from vaurien.behaviors.hang import Hang  # noqa: E402
from vaurien.behaviors.transient import Transient  # noqa: E402

for _klass in (Abort, Blackout, Delay, Dummy, Error, Hang, Transient):
    ABCMeta.register(Behavior, _klass)
    _PORTED[_klass.name] = _klass
del _klass
