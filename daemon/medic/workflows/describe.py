"""How a registered workflow reads in the API: its config (secrets masked),
status, next run and counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medic.config.models import WorkflowConfig
from medic.core.redact import redact_config
from medic.workflows.ports import NO_RUNS, RunCounts
from medic.workflows.run import WorkflowRun


@dataclass(frozen=True)
class WorkflowView:
    config: WorkflowConfig
    active: WorkflowRun | None
    stopped: bool
    next_run: object
    """APScheduler's ``next_run_time``: a datetime, or None while paused or unstarted."""

    @property
    def status(self) -> str:
        if self.active is not None:
            return "running"
        if not self.config.enabled:
            return "disabled"
        return "stopped" if self.stopped else "idle"

    def as_json(self, workflow_id: str, counts: RunCounts | None) -> dict[str, Any]:
        run = self.active
        next_run = self.next_run
        return {
            "id": workflow_id,
            "config": redact_config(self.config.model_dump(mode="json")),
            "status": self.status,
            "next_run_at": next_run.isoformat() if isinstance(next_run, datetime) else None,
            "run_id": run.run_id if run else None,
            "queued": bool(run and not run.admitted),
            **(NO_RUNS if counts is None else counts.as_json()),
        }
