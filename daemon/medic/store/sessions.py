"""The ``step_sessions`` table: the sessions of step commands while they run,
so that the next start can end what a crash left running; and ``StepSessions``,
the tracker a recovery or a workflow run hands its commands."""

from __future__ import annotations

import shlex
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from medic.core.clock import utc
from medic.core.logging import get_logger
from medic.host.subprocesses import proc_start_time
from medic.store.db import DETAIL_CHARS, Database
from medic.store.records import SessionRecord

log = get_logger("Store")


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
        with self._tx() as db:
            db.execute(
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
            )

    def forget_session(self, pid: int, start_time: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM step_sessions WHERE pid=? AND start_time=?", (pid, start_time))

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
        with self._tx() as db:
            db.execute("DELETE FROM step_sessions")


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
        record = partial(
            self.store.record_session,
            *(pid, start_time, shlex.join(argv), kill_grace_s, self.recovery_id, self.run_id),
        )
        if not _write_or_log(record, "record", pid):
            return
        self._started[pid] = start_time

    def ended(self, pid: int) -> None:
        start_time = self._started.pop(pid, None)
        if start_time is None:
            return
        forget = partial(self.store.forget_session, pid, start_time)
        _write_or_log(forget, "forget", pid)


def _write_or_log(write: Callable[[], None], verb: str, pid: int) -> bool:
    """Run a session write (``verb``: record or forget); one that fails is
    logged, never raised: the step goes on."""
    try:
        write()
    except sqlite3.Error as exc:
        log.warning(
            "step_command.session_write_failed",
            message=f"Cannot {verb} a step command's session",
            write=verb,
            pid=pid,
            error=str(exc),
        )
        return False
    return True
