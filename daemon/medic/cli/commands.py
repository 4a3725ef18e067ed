"""The control commands, ``medic status|check|recover|reset|approve|reject|workflows|
notify-test`` (and, through ``operate``, ``pause|resume|reload|history|logs``):
each calls the running daemon's API through ``client`` and prints the answer
(the tables through ``render``). A call that fails becomes one message on
stderr, with a hint where one helps, and the command's exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from medic.cli import fleet, operate, render
from medic.cli.client import (
    EXIT_UNREACHABLE,
    READ_WAIT,
    TOKEN_ENV,
    ApiFailure,
    BadUrl,
    DaemonUnreachable,
    StillRunning,
    base_url,
    quote,
    request,
)

EXIT_NOT_HEALTHY = 3
"""``medic status``: some service is not healthy."""


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
        elif exc.code == "FORBIDDEN":
            print(
                f"hint: set {TOKEN_ENV} to a token whose api.tokens scopes allow this",
                file=sys.stderr,
            )
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
    return (
        f"{TOKEN_ENV} does not match any of the daemon's API tokens"
        " (api.token_env, api.token_file, api.tokens)"
    )


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
    if args.command in operate.COMMANDS:
        return operate.dispatch(args, url)
    if args.command == "notify-test":
        return _notify_test(url, args)
    if args.command == "fleet":
        return fleet.run(url, args)
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


def _notify_test(url: str, args: argparse.Namespace) -> int:
    body = {"name": args.name} if args.name else {}
    results = request(f"{url}/api/v1/notifications/test", "POST", body)["results"]
    if args.json:
        print(json.dumps({"results": results}, indent=2))
    elif not results:
        print("no notifier (notifications.apprise or .webhooks) is configured", file=sys.stderr)
    for row in [] if args.json else results:
        print(
            f"{row['name']:<16} {row['kind']:<8} {row['url']:<28}"
            f" {row['outcome']:<10} {row['detail']}"
        )
    return 0 if results and all(r["outcome"] == "delivered" for r in results) else 1


def _workflows(url: str, args: argparse.Namespace) -> int:
    if args.action == "list":
        data = request(f"{url}/api/v1/workflows")
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            render.workflow_table(data["workflows"])
        return 0
    if not args.id:
        what = "run ID" if args.action == "resume" else "workflow ID"
        print(f"medic: workflows {args.action} needs a {what}", file=sys.stderr)
        return 2
    if args.action == "resume":
        return _resume(url, args)
    body = {"run": bool(args.run_now)} if args.action == "start" else None
    result = request(
        f"{url}/api/v1/workflows/{quote(args.id)}/{args.action}",
        "POST",
        body,
        wait=args.timeout if args.action == "run" else READ_WAIT,
        doing=f"workflow {args.id}" if args.action == "run" else None,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.action == "start" and result["run_id"] is not None:
        print(f"workflow {args.id}: schedule resumed, started run {result['run_id']}")
    elif args.action == "start":
        what = "schedule resumed" if result["status"] == "resumed" else "schedule was not stopped"
        print(f"workflow {args.id}: {what}; no run started (--run-now starts one)")
    elif args.action == "stop":
        what = "cancelled the run in progress" if result["cancelled_run"] else "no run in progress"
        print(f"workflow {args.id}: stopped ({what}); its schedule waits for `workflows start`")
    else:
        render.print_run(result)
    return 0 if result.get("outcome", "succeeded") == "succeeded" else 1


def _resume(url: str, args: argparse.Namespace) -> int:
    if not args.id.isdigit():
        print(
            f"medic: workflows resume needs a run ID (a number), not {args.id!r}", file=sys.stderr
        )
        return 2
    run_id = int(args.id)
    workflow = args.workflow or _workflow_of_run(url, run_id)
    if workflow is None:
        print(f"medic: no workflow has a run {run_id} (give --workflow ID)", file=sys.stderr)
        return 1
    result = request(
        f"{url}/api/v1/workflows/{quote(workflow)}/runs/{run_id}/resume", "POST", wait=READ_WAIT
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"workflow {workflow}: resumed run {run_id} at its first unfinished step")
    return 0


def _workflow_of_run(url: str, run_id: int) -> str | None:
    """The workflow whose recent runs (the last 1,000) include ``run_id``."""
    for item in request(f"{url}/api/v1/workflows")["workflows"]:
        wid = str(item["id"])
        runs = request(f"{url}/api/v1/workflows/{quote(wid)}/runs?limit=1000")["runs"]
        if any(run["id"] == run_id for run in runs):
            return wid
    return None


def _status(url: str, as_json: bool) -> int:
    """Exit 0 when every service is healthy (or disabled), 3 when any is not
    (as ``systemctl is-active`` and ``supervisorctl status`` do)."""
    if as_json:
        document = request(f"{url}/api/v1/status")
        print(json.dumps(document, indent=2))
        return _status_code(s["status"] for s in document["health_status"].values())
    listing = request(f"{url}/api/v1/services")
    services = listing["services"]
    workflows = request(f"{url}/api/v1/workflows")["workflows"]
    recoveries = request(f"{url}/api/v1/recoveries?limit=10")["recoveries"]
    history = request(f"{url}/api/v1/health").get("history")
    render.history_line(history)
    render.status(services, listing.get("recovery_hold"), workflows, recoveries)
    return _status_code(s["status"] for s in services)


def _status_code(statuses: Iterable[str]) -> int:
    return 0 if all(status in ("healthy", "disabled") for status in statuses) else EXIT_NOT_HEALTHY
