"""Helpers: start and stop proxies in this process (``start_proxy``/``stop_proxy``, the
:class:`Proxy` context manager), ``get_data`` for behaviors, and the original's other helpers (``import_string``,
``parse_address``, ``get_prefixed_sections``, ``extract_settings``, ``chunked``)."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from vaurien import _vaurien

__all__ = [
    "ImportStringError",
    "Proxy",
    "chunked",
    "extract_settings",
    "get_data",
    "get_prefixed_sections",
    "import_string",
    "parse_address",
    "start_proxy",
    "stop_proxy",
]

_FILE_HANDLERS: Dict[str, logging.Handler] = {}


_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
           "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}


def _log_to(output: str, level: str) -> None:
    """``log_output``: ``-`` leaves the engine's logs to the application's logging setup (the
    ``vaurien`` logger); a path adds a file handler for them, before the proxy starts (so that
    its first lines are there too), at ``log_level`` (the ``vaurien`` logger is set to it when
    the application did not set a level of its own)."""
    if output in ("-", "", None) or output in _FILE_HANDLERS:
        return
    handler = logging.FileHandler(output)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] %(message)s"))
    handler.setLevel(_LEVELS.get(str(level).lower(), logging.INFO))
    logger = logging.getLogger("vaurien")
    if logger.level == logging.NOTSET:
        logger.setLevel(handler.level)
    logger.addHandler(handler)
    _FILE_HANDLERS[output] = handler


def _sync_tables() -> None:
    """Hands the engine ``vaurien.behaviors.error``'s tables as they are now (they are handed
    over as they change; this catches edits of a dict assigned to ``_ERRORS`` afterwards)."""
    module = sys.modules.get("vaurien.behaviors.error")
    if module is not None:
        module._sync()


def _split(address: str) -> Tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


#: The engine's settings table, one row a flag of the ``vaurien`` command (``vaurien --help``):
#: ``name`` → ``flag``, ``switch``, ``default``, ``help``, ... (see ``_vaurien.settings``).
_SETTINGS: Dict[str, Dict[str, Any]] = {row["name"]: row for row in _vaurien.settings()}
_DEFAULT: Dict[str, Any] = {name: row["default"] for name, row in _SETTINGS.items()}
_DEFAULT_PROXY_HOST, _DEFAULT_PROXY_PORT = _split(_DEFAULT["proxy"])


def _flags(**settings: Any) -> List[str]:
    """The command-line flags of settings named as in the engine's table: a switch is there
    when true, another setting is ``--flag value``."""
    args: List[str] = []
    for name, value in settings.items():
        row = _SETTINGS[name]
        if row["switch"]:
            args += [row["flag"]] if value else []
        else:
            args += [row["flag"], value]
    return args


def start_proxy(
    proxy_host: str = _DEFAULT_PROXY_HOST,
    proxy_port: int = _DEFAULT_PROXY_PORT,
    backend_host: str = "localhost",
    backend_port: int = 8888,
    protocol: str = _DEFAULT["protocol"],
    http: bool = True,
    warmup: float = 2,
    http_host: str = _DEFAULT["http_host"],
    http_port: int = _DEFAULT["http_port"],
    options: Optional[Sequence[str]] = None,
    log_level: str = _DEFAULT["log_level"],
    log_output: str = _DEFAULT["log_output"],
) -> int:
    """Starts a proxy in this process and returns its id (for :func:`stop_proxy`).

    Returns as soon as the proxy (and the control API when ``http`` is true) accept
    connections; ``warmup`` is the longest wait. ``options`` are extra command-line flags
    (``['--behavior', '50:delay', '--behavior-delay-sleep', '1']``), parsed by the CLI's own
    parser. Raises ``ValueError`` with the engine's message when the proxy cannot start (port
    in use, bad option, ...). The defaults are the command's (``vaurien --help``), but for
    the backend (``localhost:8888``) and ``http`` (on): the original ``start_proxy``'s."""
    args = _flags(
        proxy="%s:%d" % (proxy_host, int(proxy_port)),
        backend="%s:%d" % (backend_host, int(backend_port)),
        protocol=protocol,
        log_level=log_level,
        log_output=log_output,
    )
    if http:
        args += _flags(http=True, http_host=http_host, http_port=str(int(http_port)))
    if options is not None:
        args += [str(o) for o in options]
    _sync_tables()
    _log_to(log_output, log_level)
    return _vaurien.start(args, float(warmup))


def stop_proxy(pid: int) -> None:
    """Stops the proxy ``pid``; its ports are free when this returns.
    ``ValueError('Not found')`` for an unknown id."""
    _vaurien.stop(int(pid))


def _address(value: Union[str, Tuple[str, int]]) -> str:
    if isinstance(value, tuple):
        host, port = value
        return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    return value


class Proxy:
    """A proxy in this process, for new code::

        with Proxy(backend="127.0.0.1:6379", protocol="redis") as p:
            redis.Redis(p.host, p.port).ping()
            with p.behavior("delay", sleep=0.5):
                ...

    Listens on a free port by default (``p.host``, ``p.port``, ``p.address``); with ``http``
    (default) the control API listens on a free port too and ``p.client`` drives it."""

    def __init__(
        self,
        backend: Union[str, Tuple[str, int]],
        proxy: Union[str, Tuple[str, int]] = "127.0.0.1:0",
        protocol: str = _DEFAULT["protocol"],
        behavior: Optional[str] = None,
        http: bool = True,
        http_address: Union[str, Tuple[str, int]] = "127.0.0.1:0",
        options: Sequence[str] = (),
        warmup: float = 5,
        log_level: str = _DEFAULT["log_level"],
    ) -> None:
        self.backend = _address(backend)
        self.listen = _address(proxy)
        self.protocol = protocol
        self.initial_behavior = behavior
        self.http = http
        self.http_address = _address(http_address)
        self.options = list(options)
        self.warmup = warmup
        self.log_level = log_level
        self.id: Optional[int] = None
        self.host = ""
        self.port = 0
        self.http_host: Optional[str] = None
        self.http_port: Optional[int] = None

    def start(self) -> "Proxy":
        """Starts it; returns once it accepts connections."""
        if self.id is not None:
            return self
        args = _flags(proxy=self.listen, backend=self.backend, protocol=self.protocol, log_level=self.log_level)
        if self.initial_behavior:
            args += _flags(behavior=self.initial_behavior)
        if self.http:
            host, port = _split(self.http_address)
            args += _flags(http=True, http_host=host, http_port=str(port))
        args += self.options
        _sync_tables()
        self.id = _vaurien.start(args, float(self.warmup))
        proxy, api = _vaurien.addresses(self.id)
        if proxy:
            self.host, self.port = _split(proxy)
        if api:
            self.http_host, self.http_port = _split(api)
        return self

    def stop(self) -> None:
        """Stops it (idempotent); its ports are free when this returns."""
        if self.id is not None:
            pid, self.id = self.id, None
            with contextlib.suppress(ValueError):
                _vaurien.stop(pid)

    @property
    def address(self) -> str:
        """``host:port`` where clients connect."""
        return "%s:%d" % (self.host, self.port)

    @property
    def client(self) -> "Any":
        """A :class:`vaurien.Client` for the control API (``http=True``)."""
        from vaurien.client import Client

        if self.http_port is None:
            raise ValueError("this proxy was started without its control API (http=False)")
        return Client(self.http_host or "127.0.0.1", self.http_port)

    def set_behavior(self, name: str, **options: Any) -> None:
        """Sets the behavior (a name or a mix) directly, without the HTTP API."""
        if self.id is None:
            raise ValueError("the proxy is not running")
        _vaurien.set_behavior(self.id, name, options)

    def get_behavior(self) -> str:
        """The active behavior (a name or a mix)."""
        if self.id is None:
            raise ValueError("the proxy is not running")
        return _vaurien.get_behavior(self.id)

    @contextlib.contextmanager
    def behavior(self, name: str, **options: Any) -> Iterator["Proxy"]:
        """Sets ``name`` with ``options`` for the block, then restores the previous behavior
        (also when the block raises)."""
        previous = self.get_behavior()
        self.set_behavior(name, **options)
        try:
            yield self
        finally:
            if self.id is not None:
                self.set_behavior(previous)

    def __enter__(self) -> "Proxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running on %s" % self.address if self.id is not None else "stopped"
        return "<vaurien.Proxy %s -> %s, %s>" % (self.protocol, self.backend, state)


def get_data(sock: Any, buffer: int = 1024) -> bytes:
    """Reads at most ``buffer`` bytes from ``sock``; ``b''`` when it is closed or fails."""
    try:
        return sock.recv(buffer)
    except OSError:
        return b""


class ImportStringError(ImportError):
    """Provides information about a failed :func:`import_string` attempt."""

    #: String in dotted notation that failed to be imported.
    import_name: Optional[str] = None
    #: Wrapped exception.
    exception: Optional[BaseException] = None

    def __init__(self, import_name: str, exception: BaseException) -> None:
        self.import_name = import_name
        self.exception = exception

        msg = (
            "import_string() failed for %r. Possible reasons are:\n\n"
            "- missing __init__.py in a package;\n"
            "- package or module path not included in sys.path;\n"
            "- duplicated package or module name taking precedence in "
            "sys.path;\n"
            "- missing module, class, function or variable;\n\n"
            "Debugged import:\n\n%s\n\n"
            "Original exception:\n\n%s: %s"
        )

        name = ""
        tracked = []
        for part in import_name.replace(":", ".").split("."):
            name += (name and ".") + part
            imported = import_string(name, silent=True)
            if imported:
                tracked.append((name, getattr(imported, "__file__", None)))
            else:
                track = ["- %r found in %r." % (n, i) for n, i in tracked]
                track.append("- %r not found." % name)
                msg = msg % (import_name, "\n".join(track), exception.__class__.__name__, str(exception))
                break

        ImportError.__init__(self, msg)

    def __repr__(self) -> str:
        return "<%s(%r, %r)>" % (self.__class__.__name__, self.import_name, self.exception)


def import_string(import_name: str, silent: bool = False) -> Any:
    """Imports an object based on a string: dotted (``xml.sax.saxutils.escape``) or with a
    colon before the object (``xml.sax.saxutils:escape``). With ``silent``, None instead of
    :class:`ImportStringError` when the import fails."""
    import importlib

    try:
        if ":" in import_name:
            module, obj = import_name.split(":", 1)
        elif "." in import_name:
            module, obj = import_name.rsplit(".", 1)
        else:
            return importlib.import_module(import_name)
        try:
            return getattr(importlib.import_module(module), obj)
        except (ImportError, AttributeError):
            # support importing modules not yet set up by the parent module
            # (or package for that matter)
            return importlib.import_module(module + "." + obj)
    except ImportError as e:
        if not silent:
            raise ImportStringError(import_name, e).with_traceback(sys.exc_info()[2]) from None
    return None


def parse_address(address: str) -> Tuple[str, int]:
    """``host:port`` → ``(ip, port)``, the host resolved as the original did (an IPv6 literal
    is kept); exits with a message when malformed."""
    try:
        host, port = _split(address)
    except ValueError:
        sys.exit("Expected HOST:PORT: %r" % address)
    return (host if ":" in host else socket.gethostbyname(host)), port


def get_prefixed_sections(settings: Any, prefix: str, logger: Optional[logging.Logger] = None) -> Dict[str, Any]:
    """``{name: class}`` of the ``[PREFIX:NAME]`` sections (``PREFIX.NAME.*`` keys of a
    :class:`vaurien.config.SettingsDict`) that have a ``callable``."""
    behaviors: Dict[str, Any] = {}
    if logger is None:
        logger = logging.getLogger("vaurien")

    for section in settings.sections():
        if section.startswith("%s." % prefix):
            prefixed_name = section[len("%s." % prefix):]
            location = settings.getsection(section).get("callable", None)
            if not location:
                logger.warning("callable not found for %s" % prefixed_name)
                continue
            behaviors[prefixed_name] = import_string(location)
    return behaviors


def extract_settings(args: Any, prefix: str, name: str) -> Dict[str, Any]:
    """The ``PREFIX_NAME_*`` attributes of an argparse namespace, without the prefix."""
    settings = {}
    prefix = "%s_%s_" % (prefix, name)
    for arg in dir(args):
        if arg.startswith(prefix):
            settings[arg[len(prefix):]] = getattr(args, arg)
    return settings


def chunked(total: int, chunk: int) -> Iterator[int]:
    """Sizes of the reads of ``total`` bytes, ``chunk`` at a time (``total`` itself when it
    fits in one)."""
    if total <= chunk:
        yield total
        return
    while total > chunk:
        yield chunk
        total -= chunk
    yield total


def _shared_instance(obj: Any) -> type:
    """A class whose every "instance" is ``obj``: ``callable = module.instance`` names an object
    (the original used it as is, one for the whole proxy), where the engine makes instances of
    a class."""
    klass = type(obj)

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        return obj

    return type(klass.__name__, (klass,), {"__new__": __new__, "__doc__": klass.__doc__, "__module__": klass.__module__})


def _load_plugin(kind: str, name: str, callable: str, dir: Optional[str] = None) -> None:
    """Called by the engine for ``callable = ...`` in ``[behavior:NAME]`` / ``[protocol:NAME]``;
    ``dir`` is the ini file's directory: a module is found next to the file, or in the current
    directory (which the ``vaurien`` command's ``sys.path`` lacks)."""
    for where in (dir, os.getcwd()):
        if where is not None:
            where = os.path.abspath(where)
            if where not in sys.path:
                sys.path.append(where)
    try:
        klass = import_string(callable)
    except ImportStringError as e:
        raise ImportError(str(e.exception)) from None
    if not isinstance(klass, type):
        if kind == "protocol":
            from vaurien.protocols import _takes_between

            handle = getattr(klass, "_handle", None)
            if handle is not None and not _takes_between(handle):
                # A 1.9 protocol instance: called without on_between_handle.
                klass._handle = lambda source, dest, to_backend, on_between_handle=None, _h=handle: _h(source, dest, to_backend)
        klass = _shared_instance(klass)
    if kind == "behavior":
        from vaurien.behaviors import Behavior

        Behavior.register(klass, name=name)
    else:
        from vaurien.protocols import Protocol

        Protocol.register(klass, name=name)


