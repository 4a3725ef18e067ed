"""The ``step_sessions`` table: the sessions of step commands while they run,
so that the next start can end what a crash left running; and ``StepSessions``,
the tracker a recovery or a workflow run hands its commands."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from medic.core.clock import utc
from medic.host.subprocesses import proc_start_time
from medic.store.db import DETAIL_CHARS, Database
from medic.store.records import SessionRecord


class Sessions(Database):
    def record_session(
        self,
        pid: int,
        start_time: int,
        command: str,
        kill_grace: float,
        recovery_id: int | None,
        run_id: int | None,
    ) -> None:
        self._write(
            "step_session.record",
            (
                "INSERT OR REPLACE INTO step_sessions(pid, start_time, command, kill_grace,"
                " recovery_id, run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    pid,
                    start_time,
                    command[:DETAIL_CHARS],
                    kill_grace,
                    recovery_id,
                    run_id,
                    time.time(),
                ),
            ),
        )

    def forget_session(self, pid: int, start_time: int) -> None:
        sql = "DELETE FROM step_sessions WHERE pid=? AND start_time=?"
        self._write("step_session.forget", (sql, (pid, start_time)))

    def recorded_sessions(self) -> list[SessionRecord]:
        """Step command sessions recorded as running (by a daemon that did not end them)."""
        return [
            SessionRecord(
                pid=row["pid"],
                start_time=row["start_time"],
                command=row["command"],
                kill_grace=row["kill_grace"],
                recovery_id=row["recovery_id"],
                run_id=row["run_id"],
                recorded_at=utc(row["at"]),
            )
            for row in self._rows("SELECT * FROM step_sessions ORDER BY at")
        ]

    def step_sessions(
        self, *, recovery_id: int | None = None, run_id: int | None = None
    ) -> StepSessions:
        """A tracker that keeps the sessions of one recovery's (or run's) commands."""
        return StepSessions(self, recovery_id=recovery_id, run_id=run_id)

    def forget_sessions(self) -> None:
        self._write("step_session.forget_all", ("DELETE FROM step_sessions", ()))


@dataclass(frozen=True)
class StepSessions:
    """A ``SessionTracker`` that keeps the sessions of one recovery's or one
    workflow run's commands in the store while they run."""

    store: Sessions
    recovery_id: int | None = None
    run_id: int | None = None
    _started: dict[int, int] = field(default_factory=dict)

    def started(self, pid: int, argv: Sequence[str], kill_grace_s: float) -> None:
        start_time = proc_start_time(pid)
        if start_time is None:
            return  # already gone: nothing to end later
        self.store.record_session(
            *(pid, start_time, shlex.join(argv), kill_grace_s, self.recovery_id, self.run_id)
        )
        self._started[pid] = start_time

    def ended(self, pid: int) -> None:
        start_time = self._started.pop(pid, None)
        if start_time is None:
            return
        self.store.forget_session(pid, start_time)
