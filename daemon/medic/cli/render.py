"""How the control commands print the daemon's answers for an operator: the
tables of ``medic status`` (services, workflows, recent recoveries), the
workflow list and a workflow run's steps, with API times in local time."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def print_run(run: dict[str, Any]) -> None:
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


def workflow_table(workflows: list[dict[str, Any]]) -> None:
    table(
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


def history_line(history: dict[str, Any] | None) -> None:
    """``medic status``'s first line while history writes wait (the state disk is full)."""
    if not history or history.get("status") != "degraded":
        return
    dropped = history.get("dropped") or 0
    lost = f", {dropped} dropped" if dropped else ""
    print(
        f"history degraded: {history.get('pending_writes')} writes pending{lost}"
        f" ({history.get('last_error')})"
    )
    print()


def status(
    services: list[dict[str, Any]],
    hold: str | None,
    workflows: list[dict[str, Any]],
    recoveries: list[dict[str, Any]],
) -> None:
    """``medic status``: services (and their notes), workflows, recent recoveries."""
    _service_table(services)
    _service_notes(services, hold)
    print()
    workflow_table(workflows)
    print()
    _recovery_table(recoveries)


def _service_table(services: list[dict[str, Any]]) -> None:
    table(
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


def _recovery_table(recoveries: list[dict[str, Any]]) -> None:
    table(
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


def history(recoveries: list[dict[str, Any]], total: int) -> None:
    """``medic history``: recent recoveries, newest first, with their duration and outcome."""
    _recovery_table(recoveries)
    if total > len(recoveries):
        print(f"({len(recoveries)} of {total}; more with -n)")


def _service_notes(services: list[dict[str, Any]], hold: str | None) -> None:
    """What the table has no room for: pauses, holds and when recovery may try next."""
    if hold:
        print(f"! automatic recovery is held host-wide: {hold}")
    for s in services:
        if s.get("status") == "paused":
            until = _when(s.get("paused_until")) or "resumed"
            why = f"{s.get('pause_reason')}; by {s.get('paused_by')}"
            print(f"  {s['name']}: paused until {until} ({why})")
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


def table(headers: list[str], rows: list[list[Any]]) -> None:
    text = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    if not text:
        print("(none)")
    for row in text:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
