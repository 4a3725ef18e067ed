"""The control commands beyond one check or recovery: ``medic pause`` and
``resume`` (maintenance), ``reload``, ``history`` and ``logs``. Each calls the
running daemon's API through ``client``; ``logs`` then reads the output where
the daemon says it is (a ``process:`` service's log file, a container's
``docker logs``)."""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from medic.cli import render
from medic.cli.client import quote, request

COMMANDS = ("pause", "resume", "reload", "history", "logs")
FOLLOW_POLL_S = 0.25


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
    history = sub.add_parser(
        "history",
        help="recent recoveries: duration and outcome",
        epilog="examples:\n  medic history\n  medic history web -n 50",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client_args(history)
    history.add_argument("service", nargs="?", metavar="SERVICE")
    history.add_argument("-n", "--limit", type=int, default=20, help="how many (default: 20)")
    logs = sub.add_parser(
        "logs",
        help="a process: service's output, a container's docker logs",
        epilog="examples:\n  medic logs api -n 50\n  medic logs web -f",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client_args(logs)
    logs.add_argument("service", metavar="SERVICE")
    logs.add_argument("-n", "--lines", type=int, default=100, help="last N lines (default: 100)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output")


def _one_or_all(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", nargs="?", metavar="SERVICE")
    parser.add_argument("--all", action="store_true", help="every service")


def dispatch(args: argparse.Namespace, url: str) -> int:
    if args.command == "reload":
        return _reload(url)
    if args.command == "history":
        return _history(url, args)
    if args.command == "logs":
        return _logs(url, args)
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


def _history(url: str, args: argparse.Namespace) -> int:
    query = f"?limit={max(0, min(args.limit, 500))}"
    if args.service:
        query += f"&service={quote(args.service)}"
    data = request(f"{url}/api/v1/recoveries{query}")
    render.history(data["recoveries"], data["total"])
    return 0


def _logs(url: str, args: argparse.Namespace) -> int:
    svc = request(f"{url}/api/v1/services/{quote(args.service)}")
    log_file = (svc.get("process") or {}).get("log")
    lines = max(0, args.lines)
    if log_file:
        return _tail(Path(log_file), lines, args.follow)
    if svc.get("container"):
        argv = ["docker", "logs", "--tail", str(lines), *(["-f"] if args.follow else [])]
        try:
            return subprocess.call([*argv, str(svc["container"])])
        except FileNotFoundError:
            print("medic: the docker command is not installed here", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
    print(
        f"medic: {args.service} has no output medic keeps: it has neither a process:"
        " (whose output medic writes to a log file) nor a container:",
        file=sys.stderr,
    )
    return 1


def _tail(path: Path, lines: int, follow: bool) -> int:
    """The file's last ``lines`` lines; with ``follow``, then what is added (a
    file cut back or replaced is read again from its start)."""
    try:
        with path.open("rb") as f:
            for line in collections.deque(f, maxlen=lines) if lines else ():
                sys.stdout.buffer.write(line)
            sys.stdout.flush()
            position = f.tell()
    except OSError as exc:
        print(f"medic: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        while follow:
            position = _print_new(path, position)
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        pass
    return 0


def _print_new(path: Path, position: int) -> int:
    try:
        size = os.stat(path).st_size
        if size < position:
            position = 0  # rotated or truncated: the new file from its start
        if size == position:
            return position
        with path.open("rb") as f:
            f.seek(position)
            sys.stdout.buffer.write(f.read())
            sys.stdout.flush()
            return f.tell()
    except FileNotFoundError:
        return 0  # between a rotation's rename and the new file
