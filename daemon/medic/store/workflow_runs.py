"""The ``workflow_runs``, ``workflow_steps`` and ``workflow_control`` tables:
each run of a workflow with its steps, and the workflows an operator stopped."""

from __future__ import annotations

import sqlite3
import time

from medic.core.clock import utc_or_none
from medic.core.records import WorkflowStepEntry
from medic.core.vocabulary import StepOutcome, Trigger, WorkflowOutcome
from medic.store.db import DETAIL_CHARS, Database, StepWrite, sees_pending, span
from medic.store.records import WorkflowCounts, WorkflowRunRecord, WorkflowStepRecord

# Per workflow: its run count, its failed or timed-out runs, the start of its
# latest run and the status of its latest finished one.
_COUNTS = (
    "SELECT c.workflow, c.runs, c.errors, last.started_at AS last_at,"
    " (SELECT status FROM workflow_runs WHERE workflow=c.workflow AND ended_at IS NOT NULL"
    "  ORDER BY id DESC LIMIT 1) AS last_status"
    " FROM (SELECT workflow, COUNT(*) AS runs, SUM(status IN ('failed', 'timed_out'))"
    "  AS errors, MAX(id) AS last_id FROM workflow_runs GROUP BY workflow) AS c"
    " JOIN workflow_runs AS last ON last.id = c.last_id"
)


class WorkflowRuns(Database):
    def start_run(self, workflow: str, trigger: str) -> int:
        """Record a run as ``running`` from now (a queued run waits as running); its id."""
        run_id = self._new_id("workflow_runs")
        self._write(
            "workflow_run.start",
            (
                "INSERT INTO workflow_runs(id, workflow, trigger, status, started_at)"
                " VALUES (?, ?, ?, 'running', ?)",
                (run_id, workflow, trigger, time.time()),
            ),
        )
        return run_id

    def mark_run_started(self, run_id: int) -> None:
        """A queued run got its slot: its start time becomes now."""
        sql = "UPDATE workflow_runs SET started_at=? WHERE id=?"
        self._write("workflow_run.started", (sql, (time.time(), run_id)))

    def finish_run(self, run_id: int, status: str, detail: str) -> None:
        self._write(
            "workflow_run.finish",
            (
                "UPDATE workflow_runs SET status=?, ended_at=?, detail=? WHERE id=?",
                (status, time.time(), detail[:DETAIL_CHARS], run_id),
            ),
        )

    def resume_run(self, run_id: int, note: str) -> None:
        """A failed or interrupted run goes on: ``running`` again, its first start
        and its finished steps kept, ``note`` saying why."""
        with self._tx() as db:
            db.execute(
                "UPDATE workflow_runs SET status='running', ended_at=NULL, detail=? WHERE id=?",
                (note[:DETAIL_CHARS], run_id),
            )

    def unfinished_run_ids(self) -> list[int]:
        """Runs still ``running`` in the history: at start, those a crash cut off."""
        rows = self._rows("SELECT id FROM workflow_runs WHERE status='running' ORDER BY id")
        return [int(row[0]) for row in rows]

    def add_workflow_step(self, run_id: int, step: WorkflowStepEntry) -> None:
        own = ("name", "action", "outcome", "attempts")
        values = (step.name, step.action, step.outcome, step.attempts)
        row = StepWrite(own, values, step.detail, step.output, step.started_at, step.duration_s)
        self._insert_step("workflow_steps", ("run_id", run_id), row)

    def set_workflow_paused(self, workflow: str, paused: bool) -> None:
        """An operator's ``stop`` (paused) or ``start``; kept across restarts."""
        self._write(
            "workflow.paused",
            (
                "INSERT INTO workflow_control(workflow, paused, at) VALUES (?, ?, ?)"
                " ON CONFLICT(workflow) DO UPDATE SET paused=excluded.paused, at=excluded.at",
                (workflow, int(paused), time.time()),
            ),
        )

    @sees_pending
    def paused_workflows(self) -> set[str]:
        rows = self._rows("SELECT workflow FROM workflow_control WHERE paused=1")
        return {str(row[0]) for row in rows}

    @sees_pending
    def runs(self, workflow: str, limit: int = 20) -> list[WorkflowRunRecord]:
        """The workflow's runs, newest first, each with its steps."""
        rows = self._rows(
            "SELECT * FROM workflow_runs WHERE workflow=? ORDER BY id DESC LIMIT ?",
            (workflow, limit),
        )
        return [self._run(row) for row in rows]

    @sees_pending
    def workflow_run(self, run_id: int) -> WorkflowRunRecord | None:
        row = self._db.execute("SELECT * FROM workflow_runs WHERE id=?", (run_id,)).fetchone()
        return self._run(row) if row else None

    @sees_pending
    def workflow_counts(self) -> dict[str, WorkflowCounts]:
        """The counts of every workflow that has run at least once."""
        return {
            row["workflow"]: WorkflowCounts(
                run_count=int(row["runs"]),
                error_count=int(row["errors"] or 0),
                last_run=utc_or_none(row["last_at"]),
                last_outcome=_outcome_or_none(row["last_status"]),
            )
            for row in self._rows(_COUNTS)
        }

    def _run(self, row: sqlite3.Row) -> WorkflowRunRecord:
        steps = self._rows("SELECT * FROM workflow_steps WHERE run_id=? ORDER BY id", (row["id"],))
        return WorkflowRunRecord(
            id=row["id"],
            workflow=row["workflow"],
            trigger=Trigger(row["trigger"]),
            outcome=WorkflowOutcome(row["status"]),
            **span(row),
            detail=row["detail"],
            steps=tuple(_step(step) for step in steps),
        )


def _outcome_or_none(status: str | None) -> WorkflowOutcome | None:
    return WorkflowOutcome(status) if status is not None else None


def _step(row: sqlite3.Row) -> WorkflowStepRecord:
    duration = row["duration"]
    return WorkflowStepRecord(
        name=row["name"],
        action=row["action"],
        outcome=StepOutcome(row["outcome"]),
        attempts=row["attempts"],
        detail=row["detail"],
        output=row["output"],
        started_at=utc_or_none(row["started_at"]),
        duration_seconds=round(duration, 4) if duration is not None else None,
    )
