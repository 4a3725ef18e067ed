"""The ``pauses`` table: the services in maintenance, so that a pause
survives a restart of medic (a row lives while its pause does)."""

from __future__ import annotations

from medic.core.records import Pause
from medic.store.db import DETAIL_CHARS, Database, sees_pending


class Pauses(Database):
    def save_pause(self, pause: Pause) -> None:
        self._write(
            "pause.save",
            (
                "INSERT OR REPLACE INTO pauses(service, until, reason, paused_by, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    pause.service,
                    pause.until,
                    pause.reason[:DETAIL_CHARS],
                    pause.by[:DETAIL_CHARS],
                    pause.started_at,
                ),
            ),
        )

    def forget_pause(self, service: str) -> None:
        self._write("pause.forget", ("DELETE FROM pauses WHERE service=?", (service,)))

    @sees_pending
    def recorded_pauses(self) -> list[Pause]:
        """The pauses in force when the last daemon stopped (some may have ended since)."""
        rows = self._rows("SELECT * FROM pauses ORDER BY service")
        return [
            Pause(
                service=row["service"],
                until=row["until"],
                reason=row["reason"] or "",
                by=row["paused_by"] or "",
                started_at=row["at"],
            )
            for row in rows
        ]
