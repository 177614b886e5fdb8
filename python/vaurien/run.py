"""The ``vaurien`` command, in-process: the engine's own CLI (same flags, messages and exit
statuses as the Rust binary), with Python plugins (ini ``callable = ...``) loaded.

``python -m vaurien.run --backend ... --proxy ...`` works as it did."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import List, Optional

from vaurien import _vaurien

__all__ = ["main"]

_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING, "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}


def _configure_logging(level: str, output: str) -> None:
    """``--log-level`` / ``--log-output``: the engine's logs (logger ``vaurien``) go to stderr
    or to a file."""
    logger = logging.getLogger("vaurien")
    logger.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    handler: logging.Handler
    if output == "-":
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(output)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] %(message)s"))
    logger.addHandler(handler)
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
