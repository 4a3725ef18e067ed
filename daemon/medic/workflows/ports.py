"""What the workflows need from the stages above them: where runs are kept and
what is counted.

The workflows never import the store or the metrics: they record through the
``RunJournal`` and count through the ``WorkflowMetrics`` ports declared here,
which ``medic.store.Store`` and ``medic.tell.metrics.Metrics`` implement; the
orchestrator passes the real objects in. The records the journal returns are
handed on to the API as they are, so they are seen here only as something
that answers with its JSON (``RunRecord``, ``RunCounts``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from medic.core.records import WorkflowStepEntry
from medic.host.subprocesses import SessionTracker


class RunRecord(Protocol):
    """A run with its steps, as the history keeps it (``medic.store.WorkflowRunRecord``)."""

    def as_json(self) -> dict[str, Any]: ...


class RunCounts(Protocol):
    """A workflow's run history in numbers (``medic.store.WorkflowCounts``)."""

    def as_json(self) -> dict[str, Any]: ...


NO_RUNS: Mapping[str, Any] = {
    "run_count": 0,
    "error_count": 0,
    "last_run": None,
    "last_outcome": None,
}
"""The counts of a workflow that never ran, as JSON (``medic.store.NO_RUNS``)."""


class RunJournal(Protocol):
    """Where workflow runs, their steps and the operator's stops are kept (the store).

    Its writes never raise: one the disk refuses waits in memory and its reads
    see it (``medic.store.backlog``), so a run goes on on a full disk.
    """

    def start_run(self, workflow: str, trigger: str) -> int:
        """Record a run as ``running`` from now; its id."""

    def mark_run_started(self, run_id: int) -> None:
        """A queued run got its slot: its start time becomes now."""

    def add_workflow_step(self, run_id: int, step: WorkflowStepEntry) -> None: ...

    def resume_run(self, run_id: int, note: str) -> None:
        """A failed or interrupted run is ``running`` again (its steps kept)."""

    def finish_run(self, run_id: int, status: str, detail: str) -> None: ...

    def set_workflow_paused(self, workflow: str, paused: bool) -> None:
        """An operator's ``stop`` (paused) or ``start``; kept across restarts."""

    def paused_workflows(self) -> Collection[str]: ...

    def step_sessions(self, *, run_id: int) -> SessionTracker:
        """A tracker that keeps the sessions of one run's commands."""

    def workflow_run(self, run_id: int) -> RunRecord | None: ...

    def runs(self, workflow: str, limit: int = 20) -> Sequence[RunRecord]:
        """The workflow's runs, newest first, each with its steps."""

    def workflow_counts(self) -> Mapping[str, RunCounts]:
        """The counts of every workflow that has run at least once (see ``NO_RUNS``)."""


class WorkflowMetrics(Protocol):
    def workflow_ended(self, workflow: str, outcome: str, duration_s: float | None) -> None:
        """Count a finished run; ``duration_s`` is None for a run that never got a slot."""
