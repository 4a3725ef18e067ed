"""The ``transitions`` table: every change of a service's status, and the
uptime computed from them."""

from __future__ import annotations

import sqlite3
import time

from medic.store.db import DETAIL_CHARS, Database, sees_pending

# Time the service was unobserved or deliberately stopped is not downtime.
_NOT_COUNTED = (None, "unknown", "stopped_by_operator")


class Transitions(Database):
    def record_transition(
        self, service: str, old: str, new: str, failure_type: str | None, detail: str
    ) -> None:
        self._write(
            "transition",
            (
                "INSERT INTO transitions(service, old, new, failure_type, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (service, old, new, failure_type, detail[:DETAIL_CHARS], time.time()),
            ),
        )

    @sees_pending
    def uptime_percentage(
        self, service: str, window_s: float, now: float | None = None
    ) -> float | None:
        """Share of the window the service was healthy, from recorded transitions.

        Time before the first recorded state in the window counts as the state
        the service was in then; unknown time is left out. None if nothing known.
        """
        now = time.time() if now is None else now
        start = now - window_s
        before = self._db.execute(
            "SELECT new, at FROM transitions WHERE service=? AND at<=?"
            " ORDER BY at DESC, id DESC LIMIT 1",
            (service, start),
        ).fetchone()
        rows = self._rows(
            "SELECT new, at FROM transitions WHERE service=? AND at>? ORDER BY at, id",
            (service, start),
        )
        return _healthy_share(before["new"] if before else None, start, rows, now)


def _healthy_share(
    state: str | None, start: float, rows: list[sqlite3.Row], now: float
) -> float | None:
    healthy = known = 0.0
    cursor = start
    for row in rows:
        span = row["at"] - cursor
        if state not in _NOT_COUNTED:
            known += span
            healthy += span if state == "healthy" else 0.0
        state, cursor = row["new"], row["at"]
    if state not in _NOT_COUNTED:
        known += now - cursor
        healthy += (now - cursor) if state == "healthy" else 0.0
    if known <= 0:
        return None
    return round(100.0 * healthy / known, 3)
