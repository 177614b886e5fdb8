"""The original's proxy classes (``DefaultProxy``, ``RandomProxy``, ``OnTheFlyProxy``), on the
engine: each runs an in-process engine proxy (a :class:`vaurien.util.Proxy`) configured from
the same arguments and settings, with the gevent ``StreamServer`` methods code called
(``start``, ``serve_forever``, ``stop``, ``address``).

Connections are handled by the engine: a subclass that overrides ``handle`` or ``_weirdify``
is refused (write a behavior or a protocol instead, see :mod:`vaurien.behaviors`)."""
from __future__ import annotations

import logging
import os
import random
import tempfile
import threading
from typing import Any, Dict, List, Optional, Tuple

from vaurien.behaviors import Behavior, get_behaviors
from vaurien.config import DEFAULT_SETTINGS, SettingsDict
from vaurien.protocols import Protocol
from vaurien.util import _DEFAULT, Proxy, _flags, import_string

__all__ = ["DefaultProxy", "OnTheFlyProxy", "RandomProxy"]

# The [vaurien] settings the original's proxy classes read (DEFAULT_SETTINGS' vaurien.* keys),
# handed to the engine's ini file; proxy and backend are given as flags.
_VAURIEN_KEYS = tuple(
    key.split(".", 1)[1]
    for key in DEFAULT_SETTINGS
    if key.startswith("vaurien.") and key not in ("vaurien.proxy", "vaurien.backend")
)


def _ini_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "\n    ".join(_ini_value(v) for v in value)
    return str(value)


class DefaultProxy:
    """A proxy from ``proxy`` (``host:port``) to ``backend`` with ``protocol``, set up by
    ``settings`` (a :class:`vaurien.config.SettingsDict` as ``load_into_settings`` fills it:
    ``vaurien.*``, ``statsd.*``, ``behavior.NAME.*`` and ``protocol.NAME.*`` keys, a
    ``callable`` in the last two loading a class). Runs ``dummy``."""

    def __init__(
        self,
        proxy: str,
        backend: str,
        protocol: str = _DEFAULT["protocol"],
        behaviors: Optional[Dict[str, Any]] = None,
        settings: Optional[Dict[str, Any]] = None,
        statsd: Any = None,
        logger: Optional[logging.Logger] = None,
        **kwargs: Any,
    ) -> None:
        for method in ("handle", "_weirdify"):
            if getattr(type(self), method) is not getattr(DefaultProxy, method):
                raise NotImplementedError(
                    "%s overrides %s(): connections are handled by vaurien's engine; write a "
                    "behavior (vaurien.behaviors.Behavior.register) or a protocol "
                    "(vaurien.protocols.Protocol.register) instead" % (type(self).__name__, method)
                )
        self.settings = SettingsDict(DEFAULT_SETTINGS)
        self.settings.update(settings or {})
        cfg = self.settings.getsection("vaurien")
        self._logger = logger or logging.getLogger("vaurien")
        self._statsd = statsd
        self.proxy = proxy
        self.backend = backend
        self.protocol = cfg.get("protocol", protocol)
        # DEFAULT_SETTINGS has every one of these
        self.timeout = cfg["timeout"]
        self.stay_connected = cfg["stay_connected"]
        self.pool_max_size = cfg["pool_max_size"]
        self.pool_timeout = cfg["pool_timeout"]
        self.async_mode = not cfg["sync"]

        # behaviors and protocols given here or named by a `callable` become the engine's
        registered = get_behaviors()
        for name, behavior in (behaviors or {}).items():
            if name not in registered:
                Behavior.register(behavior if isinstance(behavior, type) else type(behavior), name=name)
        for prefix, registry in (("behavior", Behavior), ("protocol", Protocol)):
            for section in self.settings.sections():
                location = self.settings.getsection(section).get("callable")
                if section.startswith(prefix + ".") and location:
                    registry.register(import_string(location), name=section[len(prefix) + 1:])
        self.behaviors = get_behaviors()
        self.behavior = self.behaviors["dummy"]
        self.behavior_name = "dummy"
        self._engine: Optional[Proxy] = None
        self._stopped = threading.Event()

    # -- what the engine is given ------------------------------------------------------------
    def _initial_behavior(self) -> str:
        return "100:dummy"

    def _ini(self) -> str:
        """The settings as the engine's ini file."""
        sections: Dict[str, Dict[str, Any]] = {"vaurien": {}, "statsd": {}}
        for key, value in self.settings.items():
            if not isinstance(key, str) or "." not in key:
                continue  # 'config', 'args'
            section, option = key.rsplit(".", 1)
            if section == "vaurien":
                if option in _VAURIEN_KEYS:
                    sections["vaurien"][option] = value
            elif section == "statsd":
                sections["statsd"][option] = value
            elif section.startswith(("behavior.", "protocol.")) and option != "callable":
                sections.setdefault(section.replace(".", ":", 1), {})[option] = value
        return "".join(
            "[%s]\n%s\n" % (name, "".join("%s = %s\n" % (k, _ini_value(v)) for k, v in options.items()))
            for name, options in sections.items()
        )

    # -- gevent's StreamServer API -----------------------------------------------------------
    def start(self) -> None:
        """Starts the proxy; returns once it accepts connections (``ValueError`` with the
        engine's message when it cannot start)."""
        if self._engine is not None:
            return
        fd, path = tempfile.mkstemp(prefix="vaurien-", suffix=".ini")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self._ini())
            engine = Proxy(
                backend=self.backend,
                proxy=self.proxy,
                protocol=self.protocol,
                behavior=self._initial_behavior(),
                http=False,
                options=_flags(config=path),
            )
            engine.start()
        finally:
            os.unlink(path)
        self._engine = engine
        self._stopped.clear()

    def serve_forever(self) -> None:
        """Starts the proxy and serves until :meth:`stop` (from another thread) or Ctrl-C."""
        self.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        finally:
            self.stop()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stops the proxy; its port is free when this returns."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.stop()
        self._stopped.set()

    close = stop

    @property
    def started(self) -> bool:
        return self._engine is not None

    @property
    def address(self) -> Tuple[str, int]:
        """``(host, port)`` where the proxy listens (as bound, once started)."""
        if self._engine is not None:
            return self._engine.host, self._engine.port
        host, _, port = self.proxy.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def engine(self) -> Optional[Proxy]:
        """The running :class:`vaurien.util.Proxy` (None when stopped)."""
        return self._engine

    def __enter__(self) -> "DefaultProxy":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviors ---------------------------------------------------------------------------
    def get_behavior(self) -> Tuple[Any, str]:
        return self.behavior, self.behavior_name

    def get_behavior_names(self) -> List[str]:
        return sorted(get_behaviors())

    def handle(self, client_sock: Any, address: Any) -> None:
        raise NotImplementedError("connections are handled by vaurien's engine")

    def _weirdify(self, *args: Any) -> bool:
        raise NotImplementedError("exchanges are handled by vaurien's engine")

    def statsd_incr(self, counter: str) -> None:
        if self._statsd:
            self._statsd.incr(counter)
        else:
            self._logger.debug(counter)


class RandomProxy(DefaultProxy):
    """Picks a behavior per exchange from the ``vaurien.behavior`` mix (``20:delay,10:error``;
    the rest is ``dummy``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices: List[Tuple[Any, str]] = []
        self.initialize_choices()

    def initialize_choices(self) -> None:
        total = 0
        choices: Dict[str, int] = {}
        for spec in self.settings.getsection("vaurien")["behavior"].split(","):
            choice = spec.split(":")
            if len(choice) != 2:
                raise ValueError("You need to use percentage:name")
            percent, behavior_name = int(choice[0]), choice[1]
            if behavior_name not in self.behaviors:
                msg = "%r is an unknown behavior. Pick one of: %s."
                raise ValueError(msg % (behavior_name, ", ".join("%r" % name for name in self.behaviors)))
            choices[behavior_name] = choices.get(behavior_name, 0) + percent
            total += percent
        if total > 100:
            raise ValueError("The behavior total needs to be 100 or less")
        if total < 100:
            choices["dummy"] = choices.get("dummy", 0) + 100 - total
        self.choices = []
        for name, percent in choices.items():
            self.choices.extend([(self.behaviors[name], name)] * percent)

    def _initial_behavior(self) -> str:
        return str(self.settings.getsection("vaurien")["behavior"])

    def get_behavior(self) -> Tuple[Any, str]:
        return random.choice(self.choices)


class OnTheFlyProxy(DefaultProxy):
    """Starts with ``dummy``; :meth:`set_behavior` changes the behavior of new exchanges."""

    def set_behavior(self, **options: Any) -> None:
        """``set_behavior(name='delay', sleep=2)``."""
        behavior_name = options.pop("name")
        if behavior_name not in get_behaviors():
            raise KeyError(behavior_name)
        if self._engine is not None:
            self._engine.set_behavior(behavior_name, **options)
        self.behavior = get_behaviors()[behavior_name]
        self.behavior_name = behavior_name
        self.behavior.settings.update(options)
        self._options = options
        self._logger.info('Handler changed to "%s"' % behavior_name)

    def start(self) -> None:
        super().start()
        if self.behavior_name != "dummy" and self._engine is not None:
            self._engine.set_behavior(self.behavior_name, **getattr(self, "_options", {}))
