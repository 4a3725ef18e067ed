"""The CLI's side of the API: ``medic status|check|recover|workflows`` talk to
the running daemon with the token from ``$MEDIC_API_TOKEN``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from medic.configload import load_config
from medic.errors import ConfigFileError, ConfigInvalid

DEFAULT_URL = "http://127.0.0.1:8321"
TOKEN_ENV = "MEDIC_API_TOKEN"
_TIMEOUT_S = 120

# The daemon is on this host: a proxy from the environment must not sit between.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DaemonUnreachable(Exception):
    pass


class ApiFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        raw = body.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        super().__init__(f"HTTP {status}: {error.get('message', body)}")
        self.status = status


def base_url(args: argparse.Namespace, default_config: Callable[[], Path]) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    path = args.config or default_config()
    try:
        api = load_config(path).model.api
    except (ConfigFileError, ConfigInvalid):
        return DEFAULT_URL
    host = api.host if api.host not in ("0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{api.port}"


def request(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    token = os.environ.get(TOKEN_ENV)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(req, timeout=_TIMEOUT_S) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"{}")
        except json.JSONDecodeError:
            payload = {}
        raise ApiFailure(exc.code, payload if isinstance(payload, dict) else {}) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DaemonUnreachable(
            f"the medic daemon is not running at {url.split('/api')[0]} ({reason})"
        ) from None


def main(args: argparse.Namespace, default_config: Callable[[], Path]) -> int:
    url = base_url(args, default_config)
    try:
        return _dispatch(args, url)
    except DaemonUnreachable as exc:
        print(f"medic: {exc}", file=sys.stderr)
        return 3
    except ApiFailure as exc:
        print(f"medic: {exc}", file=sys.stderr)
        if exc.status == 401:
            print(f"hint: {_token_hint()}", file=sys.stderr)
        return 1


def _token_hint() -> str:
    if not os.environ.get(TOKEN_ENV):
        return f"{TOKEN_ENV} is not set: export the daemon's API token as {TOKEN_ENV}"
    return f"{TOKEN_ENV} does not match the daemon's API token (api.token_env/token_file)"


def _dispatch(args: argparse.Namespace, url: str) -> int:
    if args.command == "status":
        return _status(url, args.json)
    if args.command == "check":
        result = request(f"{url}/api/v1/services/{args.service}/check", "POST")
        print(
            f"{result['service']}: {'healthy' if result['healthy'] else 'FAILING'}"
            f" ({result.get('failure_type') or 'ok'}): {result['detail']}"
        )
        return 0 if result["healthy"] else 1
    if args.command == "recover":
        return _recover(url, args)
    return _workflows(url, args)


def _recover(url: str, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"dry_run": bool(args.dry_run)}
    if args.failure_type:
        body["failure_type"] = args.failure_type
    rec = request(f"{url}/api/v1/services/{args.service}/recover", "POST", body)
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
    result = request(f"{url}/api/v1/workflows/{args.id}/{args.action}", "POST")
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
