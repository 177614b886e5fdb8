"""The ``vaurienctl`` command: lists, shows and sets the behavior of a running vaurien."""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional
from urllib.parse import urlparse

from vaurienclient._version import __version__
from vaurienclient.client import Client

__all__ = ["main"]


def _options(extra: List[str]) -> Dict[str, str]:
    """``--sleep 2 --before=false`` → ``{"sleep": "2", "before": "false"}`` (the server types
    the values from the behavior's schema)."""
    out: Dict[str, str] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--"):
            raise SystemExit(f"vaurienctl: unexpected argument {arg!r}")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            i += 1
            value = extra[i]
        else:
            value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


def main(args: Optional[List[str]] = None) -> int:
    """Command-line tool to change the behavior that's being used by vaurien."""
    parser = argparse.ArgumentParser(
        prog="vaurienctl",
        description="Change the vaurien behavior",
        epilog="set-behavior takes the behavior's options as --NAME VALUE, e.g. "
        "`vaurienctl set-behavior delay --sleep 2`",
    )
    parser.add_argument("action", help="The action you want to do.", choices=["list-behaviors", "set-behavior", "get-behavior"])
    parser.add_argument("behavior", nargs="?", help="The vaurien behavior to set for the next calls")
    parser.add_argument("--host", dest="host", default="http://localhost:8080", help="The host to use. Provide the scheme.")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    ns, extra = parser.parse_known_args(args)
    parts = urlparse(ns.host if "://" in ns.host else "http://" + ns.host)
    try:
        port = parts.port
    except ValueError as e:  # a port that is not a number, or out of range
        parser.error("--host %s: %s" % (ns.host, e))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error("--host %s: expected http://HOST:PORT" % ns.host)
    client = Client(parts.hostname, port or 8080, parts.scheme)
    try:
        if ns.action == "list-behaviors":
            print(", ".join(client.list_behaviors()))
        elif ns.action == "set-behavior":
            if not ns.behavior:
                parser.error("set-behavior needs a behavior name")
            try:
                client.set_behavior(ns.behavior, **_options(extra))
                print('Behavior changed to "%s"' % ns.behavior)
            except ValueError as e:
                known = client.list_behaviors()
                if ns.behavior in known or ":" in ns.behavior:
                    # The behavior exists: the server's message names the option and lists the
                    # behavior's options.
                    print("The request failed (%s)." % e)
                else:
                    print("The request failed (%s). Please use one of %s" % (e, ", ".join(known)))
                return 1
        elif ns.action == "get-behavior":
            print(client.get_behavior())
    except OSError as e:
        print(f"vaurienctl: cannot reach {client.root_url}: {e}", file=sys.stderr)
        return 1
    return 0
