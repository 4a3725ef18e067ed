"""``medic fleet status|stop|resume``: the fleet as the running daemon sees it
(through its API), and the emergency stop every medic of the fleet watches."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medic.cli.client import request
from medic.cli.render import table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "stop", "resume"])
    parser.add_argument("--group", help="stop or resume one group only (default: the fleet)")
    parser.add_argument("--reason", default="", help="why (shown on every host)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def run(url: str, args: argparse.Namespace) -> int:
    if args.action == "status":
        view = request(f"{url}/api/v1/fleet")
        if args.json:
            print(json.dumps(view, indent=2))
        else:
            print_view(view)
        return 0
    body: dict[str, Any] = {"reason": args.reason}
    if args.group:
        body["group"] = args.group
    result = request(f"{url}/api/v1/fleet/{args.action}", "POST", body)
    scope = f"group {args.group}" if args.group else "the whole fleet"
    if args.action == "stop":
        print(f"emergency stop written for {scope}: automatic recovery is held")
    else:
        print(f"emergency stop lifted for {scope}")
    return 0 if result.get("stopped") == (args.action == "stop") else 1


def print_view(view: dict[str, Any]) -> None:
    link = "connected" if view["connected"] else "NOT CONNECTED (shared heals held)"
    print(f"fleet: this host {view['host']} (group {view['group']}), etcd {link}")
    stop = view.get("emergency_stop")
    if stop:
        print(f"EMERGENCY STOP by {stop.get('by')}: {stop.get('reason') or '(no reason)'}")
    if view.get("hold"):
        print(f"HOLD: {view['hold']}")
    rows = []
    for host in view["hosts"]:
        services = host.get("services") or {}
        rows.append(
            [
                host["host"],
                host["group"],
                host["state"],
                host.get("heartbeat_age_s"),
                f"{services.get('up', 0)}/{services.get('down', 0)}/{services.get('held', 0)}",
                ", ".join(f"{k}: {v}" for k, v in (host.get("holds") or {}).items()) or None,
            ]
        )
    table(["HOST", "GROUP", "STATE", "HEARTBEAT_S", "UP/DOWN/HELD", "HOLDS"], rows)
    locks = [
        [lock["service"], lock.get("host"), lock.get("fence"), lock.get("age_s")]
        for lock in view["locks"]
    ]
    if locks:
        print()
        table(["SHARED SERVICE", "HEALED BY", "FENCE", "FOR_S"], locks)
