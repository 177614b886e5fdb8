"""The ``vaurien`` command, in-process: the engine's own CLI (same flags, messages and exit
statuses as the Rust binary), with Python plugins (ini ``callable = ...``) loaded.

``python -m vaurien.run --backend ... --proxy ...`` works as it did."""
from __future__ import annotations

import argparse
import fcntl
import logging
import signal
import sys
import threading
from typing import Any, Dict, Iterable, List, Optional, Tuple

from vaurien import _vaurien

__all__ = [
    "LOG_DATE_FMT",
    "LOG_FMT",
    "LOG_LEVELS",
    "build_args",
    "configure_logger",
    "get_statsd_from_settings",
    "main",
]

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

LOG_FMT = r"%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
LOG_DATE_FMT = r"%Y-%m-%d %H:%M:%S"


class DevNull:
    def write(self, msg: str) -> None:
        pass


def close_on_exec(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)


def configure_logger(logger: logging.Logger, level: str = "INFO", output: str = "-") -> None:
    """Sends ``logger``'s records at ``level`` and above to stderr (``-``) or a file, in the
    original's format."""
    logger.setLevel(LOG_LEVELS.get(level.lower(), logging.INFO))
    handler: logging.Handler
    if output == "-":
        handler = logging.StreamHandler()
    else:
        handler = logging.FileHandler(output)
        close_on_exec(handler.stream.fileno())  # type: ignore[union-attr]
    handler.setFormatter(logging.Formatter(LOG_FMT, LOG_DATE_FMT))
    logger.addHandler(handler)


def get_statsd_from_settings(settings: Dict[str, Any]) -> Any:
    """A ``statsd.StatsdClient`` for the ``statsd.*`` settings (their section, as
    ``SettingsDict.getsection('statsd')`` gives it), or None when not enabled. (The engine
    sends the proxy's counters itself; this is for code that used the original's.)"""
    if not settings["enabled"]:
        return None
    from statsd import StatsdClient  # type: ignore[import-not-found]

    return StatsdClient(
        host=settings["host"], port=settings["port"], prefix=settings["prefix"], sample_rate=settings["sample_rate"]
    )


def build_args(parser: argparse.ArgumentParser, items: Iterable[Tuple[str, Any]], prefix: str) -> None:
    """Adds ``--PREFIX-NAME-OPTION`` to ``parser`` for every option of ``items`` (``(name,
    behavior or protocol)`` pairs, e.g. ``get_behaviors().items()``)."""
    for name, klass in items:
        if klass is None:
            continue
        for option_name, option in klass.options.items():
            if len(option) == 3:
                description, type_, default = option
                choices = None
            else:
                description, type_, default, choices = option

            flag = "--%s-%s-%s" % (prefix, name, option_name.replace("_", "-"))
            kws: Dict[str, Any]
            if type_ is bool:
                kws = {"action": "store_true"}
            else:
                kws = {"action": "store", "type": type_}
            if choices is not None:
                kws = {"choices": choices}
            parser.add_argument(flag, default=default, help=description, **kws)


def _configure_logging(level: str, output: str) -> None:
    """``--log-level`` / ``--log-output`` of the in-process command: the engine's logs (logger
    ``vaurien``) go to stderr or to a file, in the original's format."""
    logger = logging.getLogger("vaurien")
    configure_logger(logger, "warning" if level.lower() == "warn" else level, output)
    logger.propagate = False


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: Optional[List[str]] = None) -> int:
    """Runs ``vaurien ARGS``; returns the exit status (0 after Ctrl-C or SIGTERM, 2 for bad
    input)."""
    argv = sys.argv[1:] if args is None else list(args)
    # Register the Python-side registries (and any plugin imported by them) before parsing.
    import vaurien.behaviors  # noqa: F401
    import vaurien.protocols  # noqa: F401

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    return _vaurien.cli_main(["vaurien", *argv])


if __name__ == "__main__":
    sys.exit(main())
