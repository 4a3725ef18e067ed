"""The ``step_sessions`` table: the sessions of step commands while they run,
so that the next start can end what a crash left running
(``end_left_step_commands``); and ``StepSessions``, the tracker a recovery or
a workflow run hands its commands."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from medic.core.clock import utc
from medic.core.logging import get_logger
from medic.host.subprocesses import end_left_session, proc_start_time
from medic.store.db import DETAIL_CHARS, Database
from medic.store.records import SessionRecord

log = get_logger("ControlPlaneOrchestrator")


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

    async def end_left_step_commands(self, *, dry_run: bool) -> list[SessionRecord]:
        """End the step commands a crashed daemon left running; the records that were.

        A session counts only if its leader still runs with the recorded start
        time (pids get reused). ``process:`` services are not step commands:
        the supervisor adopts those. A dry run leaves them, and their records.
        """
        records = self.recorded_sessions()
        if not records:
            return []
        if dry_run:
            log.warning(
                "step_command.left_alone",
                message=(
                    "Step commands left running by the previous daemon are left alone (dry run)"
                ),
                count=len(records),
            )
            return []
        results = await asyncio.gather(
            *(end_left_session(r.pid, r.start_time, r.kill_grace) for r in records)
        )
        ended = [
            record for record, was_running in zip(records, results, strict=True) if was_running
        ]
        for record in ended:
            owner = (
                {"recovery_id": record.recovery_id}
                if record.recovery_id is not None
                else {"run_id": record.run_id}
            )
            log.warning(
                "step_command.ended",
                message="Ended a step command left running by the previous daemon",
                pid=record.pid,
                command=record.command,
                **owner,
            )
        self.forget_sessions()
        return ended


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
