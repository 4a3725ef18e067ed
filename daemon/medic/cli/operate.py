"""The control commands beyond one check or recovery: ``medic pause`` and
``resume`` (maintenance), ``reload``, ``history`` and ``logs``. Each calls the
running daemon's API through ``client`` (``logs`` reads what the daemon
says where a service's output is)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from medic.cli.client import quote, request

COMMANDS = ("pause", "resume", "reload")


def add_arguments(sub: Any, client_args: Any) -> None:
    """The parsers of ``pause``, ``resume`` and ``reload``."""
    pause = sub.add_parser(
        "pause",
        help="maintenance: keep checking a service, never heal it",
        epilog="examples:\n  medic pause web --for 30m --reason 'db vacuum'\n"
        "  medic pause --all --for 1h",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client_args(pause)
    _one_or_all(pause)
    pause.add_argument(
        "--for", dest="for_", metavar="DURATION", help="e.g. 30m (default: until resumed)"
    )
    pause.add_argument("--reason", help="shown with the pause")
    resume = sub.add_parser(
        "resume",
        help="end a service's maintenance (it is checked at once, and healed if it fails)",
        epilog="examples:\n  medic resume web\n  medic resume --all",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client_args(resume)
    _one_or_all(resume)
    reload = sub.add_parser("reload", help="re-read the config (same as SIGHUP)")
    client_args(reload)


def _one_or_all(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", nargs="?", metavar="SERVICE")
    parser.add_argument("--all", action="store_true", help="every service")


def dispatch(args: argparse.Namespace, url: str) -> int:
    if args.command == "reload":
        return _reload(url)
    names = _targets(args, url)
    if names is None:
        return 2
    body: dict[str, Any] = {}
    if args.command == "pause":
        if args.for_:
            body["for"] = args.for_
        if args.reason:
            body["reason"] = args.reason
    for name in names:
        state = request(f"{url}/api/v1/services/{quote(name)}/{args.command}", "POST", body)
        print(_describe(state))
    return 0


def _targets(args: argparse.Namespace, url: str) -> list[str] | None:
    if bool(args.all) == bool(args.service):
        print(f"medic: {args.command} needs a SERVICE or --all (not both)", file=sys.stderr)
        return None
    if args.service:
        return [args.service]
    return [s["name"] for s in request(f"{url}/api/v1/services")["services"]]


def _describe(state: dict[str, Any]) -> str:
    if state.get("status") != "paused":
        return f"{state['name']}: not paused; status {state['status']}"
    until = state.get("paused_until")
    return (
        f"{state['name']}: paused {'until ' + until if until else 'until resumed'}"
        f" ({state.get('pause_reason')}; by {state.get('paused_by')})"
    )


def _reload(url: str) -> int:
    result = request(f"{url}/api/v1/reload", "POST")
    changes = [
        f"{kind} {verb}: {', '.join(names)}"
        for kind, change in sorted(result.get("changes", {}).items())
        if isinstance(change, dict)
        for verb, names in sorted(change.items())
        if isinstance(names, list) and names
    ]
    print("config reloaded" + (f" ({'; '.join(changes)})" if changes else ": nothing changed"))
    return 0
