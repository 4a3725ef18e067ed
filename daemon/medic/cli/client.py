"""The CLI's side of the API: ``medic status|check|recover|workflows`` talk to
the running daemon with the token from ``$MEDIC_API_TOKEN``."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from medic.cli import CliError
from medic.config.load import load_config
from medic.core.errors import ConfigFileError, ConfigInvalid

DEFAULT_URL = "http://127.0.0.1:8321"
TOKEN_ENV = "MEDIC_API_TOKEN"
CONNECT_TIMEOUT_S = 10.0
"""Making the connection; a daemon that cannot be reached in this long is not running."""
READ_TIMEOUT_S = 60.0
"""Answering a read (status, list): these never wait on work."""
EXIT_UNREACHABLE, EXIT_STILL_RUNNING = 3, 4
_READ = -1.0
"""``wait=`` default: READ_TIMEOUT_S, looked up at each call."""


class DaemonUnreachable(CliError):
    pass


class StillRunning(CliError):
    """The CLI stopped waiting (``--timeout``, Ctrl-C); the daemon goes on."""

    def __init__(self, message: str, exit_code: int = EXIT_STILL_RUNNING) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BadUrl(CliError):
    pass


class ApiFailure(CliError):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        raw = body.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        super().__init__(f"HTTP {status}: {error.get('message', body)}")
        self.status = status
        self.code = str(error.get("code") or "")


class Target:
    """Where the daemon's API is, and how that was found (for "not running")."""

    def __init__(self, url: str, note: str = "") -> None:
        self.url = url
        self.note = note


def normalize_url(raw: str) -> str:
    """``--url`` as given: ``http://host:port``, ``host:port`` (api.listen's
    form) or either with ``/api/v1`` on the end."""
    url = raw.strip()
    if "://" not in url:
        url = f"http://{url}"
    url = url.rstrip("/").removesuffix("/api/v1").rstrip("/")
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise BadUrl(f"--url must be like http://127.0.0.1:8321 or 127.0.0.1:8321 (got {raw!r})")
    return url


def base_url(args: argparse.Namespace, default_config: Callable[[], Path]) -> Target:
    if args.url:
        return Target(normalize_url(str(args.url)))
    path = args.config or default_config()
    fallback = DEFAULT_URL.removeprefix("http://")
    try:
        api = load_config(path).model.api
    except ConfigFileError:
        return Target(
            DEFAULT_URL,
            f"no config found at {Path(path).expanduser().resolve()}, tried {fallback};"
            " use --url or --config",
        )
    except ConfigInvalid:
        return Target(
            DEFAULT_URL,
            f"the config {Path(path).expanduser().resolve()} is invalid (see `medic validate`),"
            f" tried {fallback}; use --url or fix the config",
        )
    host = api.host if api.host not in ("0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return Target(f"http://{host}:{api.port}")


def quote(name: str) -> str:
    """A service or workflow name as one path segment ('a/b', 'my web', '50%')."""
    return urllib.parse.quote(name, safe="")


def request(
    url: str,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    *,
    wait: float | None = _READ,
    doing: str | None = None,
) -> Any:
    """One API call. ``wait`` bounds the answer once connected (None: as long as
    it takes); ``doing`` names the work the daemon goes on with if the CLI
    stops waiting ("workflow slow is still running ...")."""
    if wait == _READ:
        wait = READ_TIMEOUT_S
    parts = urllib.parse.urlsplit(url)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    token = os.environ.get(TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = _connect(parts)
    try:
        if conn.sock is not None:
            conn.sock.settimeout(wait)
        path = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        status, raw = _exchange(
            conn, method, path, data, headers, wait=wait, doing=doing, base=_base(parts)
        )
    finally:
        conn.close()
    try:
        payload = json.loads(raw or b"null")
    except json.JSONDecodeError:
        payload = None
    if status >= 400:
        raise ApiFailure(status, payload if isinstance(payload, dict) else {})
    return payload


def _base(parts: urllib.parse.SplitResult) -> str:
    return f"{parts.scheme}://{parts.netloc}"


def _connect(parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    """A connection, or DaemonUnreachable: the only case that says "not running"."""
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=CONNECT_TIMEOUT_S)
    try:
        conn.connect()
    except OSError as exc:
        conn.close()
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no connection within {CONNECT_TIMEOUT_S:g}s"
        raise DaemonUnreachable(
            f"the medic daemon is not running at {_base(parts)} ({reason.lower()})"
        ) from None
    return conn


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    data: bytes | None,
    headers: dict[str, str],
    *,
    wait: float | None,
    doing: str | None,
    base: str,
) -> tuple[int, bytes]:
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except TimeoutError:
        if doing:
            raise StillRunning(
                f"{doing} is still running in the daemon at {base}: the CLI stopped"
                f" waiting after {wait:g}s (--timeout) and the daemon goes on with it;"
            ) from None
        raise DaemonUnreachable(
            f"the medic daemon at {base} did not answer within {wait:g}s"
            " (it accepted the connection: busy or stuck?)"
        ) from None
    except KeyboardInterrupt:
        if doing:
            raise StillRunning(f"interrupted: {doing} goes on in the daemon;", 130) from None
        raise
    except (http.client.HTTPException, ConnectionError) as exc:
        raise DaemonUnreachable(
            f"the medic daemon at {base} closed the connection without an answer"
            f" ({type(exc).__name__}: did it stop or restart?)"
        ) from None


def main(args: argparse.Namespace, default_config: Callable[[], Path]) -> int:
    try:
        target = base_url(args, default_config)
    except BadUrl as exc:
        print(f"medic: {exc}", file=sys.stderr)
        return 2
    try:
        return _dispatch(args, target.url)
    except DaemonUnreachable as exc:
        note = f"; {target.note}" if target.note else ""
        print(f"medic: {exc}{note}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except StillRunning as exc:
        print(f"medic: {exc} {_follow_hint(args)}", file=sys.stderr)
        return exc.exit_code
    except ApiFailure as exc:
        print(f"medic: {exc}", file=sys.stderr)
        if exc.status == 401:
            print(f"hint: {_token_hint()}", file=sys.stderr)
        elif exc.code == "CONTROL_DISABLED":
            print(f"hint: {_control_disabled_hint()}", file=sys.stderr)
        return 1


def _follow_hint(args: argparse.Namespace) -> str:
    if args.command == "workflows":
        return "follow it with `medic workflows list` (or `medic status`)"
    if args.command == "recover":
        return f"follow it with `medic status` (recent recoveries) or `medic check {args.service}`"
    return "see `medic status` for the result"


def _token_hint() -> str:
    if not os.environ.get(TOKEN_ENV):
        return f"{TOKEN_ENV} is not set: export the daemon's API token as {TOKEN_ENV}"
    return f"{TOKEN_ENV} does not match the daemon's API token (api.token_env/token_file)"


def _control_disabled_hint() -> str:
    return (
        "the token must be set on both sides: in the daemon's environment (the variable"
        " its config names in api.token_env, or the file in api.token_file; restart or"
        f" reload the daemon after setting it) and, for this CLI, as ${TOKEN_ENV}"
    )


def _dispatch(args: argparse.Namespace, url: str) -> int:
    if args.command == "status":
        return _status(url, args.json)
    if args.command == "check":
        result = request(
            f"{url}/api/v1/services/{quote(args.service)}/check",
            "POST",
            wait=args.timeout,
            doing=f"the check of {args.service}",
        )
        print(
            f"{result['service']}: {'healthy' if result['healthy'] else 'FAILING'}"
            f" ({result.get('failure_type') or 'ok'}): {result['detail']}"
        )
        return 0 if result["healthy"] else 1
    if args.command == "recover":
        return _recover(url, args)
    if args.command == "reset":
        state = request(f"{url}/api/v1/services/{quote(args.service)}/reset", "POST")
        print(
            f"{state['name']}: circuit {state['circuit']}, recovery attempts given back;"
            f" status {state['status']} (a check runs now)"
        )
        return 0
    if args.command in ("approve", "reject"):
        rec = request(f"{url}/api/v1/recoveries/{args.recovery_id}/{args.command}", "POST")
        print(f"recovery {rec['id']} of {rec['service']} with {rec['playbook']}: {rec['outcome']}")
        return 0
    return _workflows(url, args)


def _recover(url: str, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"dry_run": bool(args.dry_run)}
    if args.failure_type:
        body["failure_type"] = args.failure_type
    rec = request(
        f"{url}/api/v1/services/{quote(args.service)}/recover",
        "POST",
        body,
        wait=args.timeout,
        doing=f"the recovery of {args.service}",
    )
    print(f"recovery {rec['id']} of {rec['service']} with {rec['playbook']}: {rec['outcome']}")
    for step in rec.get("steps", []):
        print(
            f"  {step['phase']:<10} {step['action']:<18} {step['outcome']:<10}"
            f" {step['detail'] or ''}"
        )
    return 0 if rec["outcome"] in ("succeeded", "dry_run") else 1


def _workflows(url: str, args: argparse.Namespace) -> int:
    if args.action == "list":
        data = request(f"{url}/api/v1/workflows")
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            _workflow_table(data["workflows"])
        return 0
    if not args.id:
        print(f"medic: workflows {args.action} needs a workflow ID", file=sys.stderr)
        return 2
    result = request(
        f"{url}/api/v1/workflows/{quote(args.id)}/{args.action}",
        "POST",
        wait=args.timeout if args.action == "run" else _READ,
        doing=f"workflow {args.id}" if args.action == "run" else None,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.action == "start":
        print(f"workflow {args.id}: started run {result['run_id']}")
    elif args.action == "stop":
        what = "cancelled the run in progress" if result["cancelled_run"] else "no run in progress"
        print(f"workflow {args.id}: stopped ({what}); its schedule waits for `workflows start`")
    else:
        _print_run(result)
    return 0 if result.get("outcome", "succeeded") == "succeeded" else 1


def _print_run(run: dict[str, Any]) -> None:
    print(
        f"run {run['id']} of {run['workflow']}: {run['outcome']}"
        f" in {run['duration_seconds']}s: {run['detail']}"
    )
    for step in run["steps"]:
        print(
            f"  {step['name']:<20} {step['outcome']:<10} attempts={step['attempts']}"
            f"  {step['detail'] or ''}"
        )
        for line in (step.get("output") or "").splitlines():
            print(f"    | {line}")


def _workflow_table(workflows: list[dict[str, Any]]) -> None:
    _table(
        ["WORKFLOW", "STATUS", "NEXT RUN", "LAST RUN", "RUNS", "ERRORS"],
        [
            [
                w.get("id"),
                w.get("status"),
                _when(w.get("next_run_at")),
                _when(w.get("last_run")),
                w.get("run_count"),
                w.get("error_count"),
            ]
            for w in workflows
        ],
    )


def _status(url: str, as_json: bool) -> int:
    listing = request(f"{url}/api/v1/services")
    services = listing["services"]
    workflows = request(f"{url}/api/v1/workflows")["workflows"]
    recoveries = request(f"{url}/api/v1/recoveries?limit=10")["recoveries"]
    if as_json:
        print(
            json.dumps(
                {"services": services, "workflows": workflows, "recoveries": recoveries}, indent=2
            )
        )
        return 0
    _table(
        ["SERVICE", "STATUS", "FAILURE", "CIRCUIT", "UPTIME", "LAST CHECK"],
        [
            [
                s["name"],
                s["status"],
                s["failure_type"],
                s["circuit"],
                f"{s['uptime_percentage']:.2f}%"
                if s.get("uptime_percentage") is not None
                else None,
                (s.get("last_check") or {}).get("detail"),
            ]
            for s in services
        ],
    )
    _service_notes(services, listing.get("recovery_hold"))
    print()
    _workflow_table(workflows)
    print()
    _table(
        ["STARTED", "SERVICE", "FAILURE", "PLAYBOOK", "OUTCOME", "SECONDS"],
        [
            [
                _when(r["started_at"]),
                r["service"],
                r["failure_type"],
                r["playbook"],
                r["outcome"],
                r["duration_seconds"],
            ]
            for r in recoveries
        ],
    )
    return 0


def _service_notes(services: list[dict[str, Any]], hold: str | None) -> None:
    """What the table has no room for: holds and when recovery may try next."""
    if hold:
        print(f"! automatic recovery is held host-wide: {hold}")
    for s in services:
        if s.get("held_reason") and s["held_reason"] != hold:
            print(f"! {s['name']}: held: {s['held_reason']}")
        if s.get("next_attempt_at"):
            what = "probation" if s.get("circuit") == "open" else "next recovery attempt"
            print(f"  {s['name']}: {what} at {_when(s['next_attempt_at'])}")


def _when(iso: str | None) -> str | None:
    """An API time as local ``YYYY-MM-DD HH:MM:SS`` (what an operator's clock shows)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    text = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    if not text:
        print("(none)")
    for row in text:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
