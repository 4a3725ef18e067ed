"""Workflows: step graphs run on a schedule or on demand, one run at a time each,
under a host-wide limit, with every run and step recorded in the history.

``WorkflowManager`` owns the registered workflows, their APScheduler jobs and
their runs in progress; the orchestrator and the HTTP API call it. How one run
goes (steps, retries, timeouts, dry run) is ``medic.workflows.run``. The rules:

Schedule
    ``interval`` (the first run one interval after registration), ``cron``
    or ``at``, read by ``medic.config.schedules``. No schedule means manual only.
    ``enabled: false`` registers the workflow without scheduling it (status
    ``disabled``); ``start`` and ``run`` still run it by hand.
Misfires
    A run missed because the daemon was down or the loop was busy still runs
    once if it is late by less than ``schedule.misfire_grace`` (whole seconds,
    at least 1); several missed runs coalesce into that one. A run later than
    that is skipped: logged and published as ``workflow.skipped`` with reason
    ``misfired``.
No overlap
    A workflow never runs twice at once. A scheduled fire that finds the
    previous run still going (or waiting for a slot) is skipped with reason
    ``coalesced``; ``start``/``run`` raise ``WorkflowAlreadyRunningError``.
Priority
    At most ``max_concurrent`` runs execute at once on the host; waiting runs
    get a slot in priority order (high, normal, low), then first come first
    served (``medic.workflows.pacing``). A waiting run counts as running for
    the no-overlap rule; its ``started_at`` is when it got its slot.
Stop and reload
    ``stop`` cancels the run in progress and pauses the schedule until
    ``start``; the pause is kept in the history, so the workflow stays stopped
    across reloads and daemon restarts (even if it leaves the config and comes
    back). ``apply`` (a reload): an added workflow is registered and
    scheduled; a removed one is unscheduled and its run in progress is
    cancelled (a workflow no longer in the config should not keep acting on
    the host); a changed one is rescheduled, and its run in progress finishes
    under the definition it started with. Cancelled commands are torn down
    with their whole process group before the run is recorded.
Resume
    A failed, timed-out or interrupted run goes on at its first unfinished
    step (by hand, or at start after a crash: ``medic.workflows.resume``).

The manager keeps runs through the ``RunJournal`` port, counts them through
``WorkflowMetrics`` (``medic.workflows.ports``) and hands on the journal's records.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from medic.config.models import WorkflowConfig
from medic.config.schedules import build_trigger
from medic.core.bus import EventBus
from medic.core.errors import (
    InvalidWorkflowError,
    RunNotResumableError,
    WorkflowAlreadyRunningError,
    WorkflowNotFoundError,
    WorkflowRunNotFoundError,
    WorkflowsClosedError,
)
from medic.core.logging import get_logger
from medic.host.resources import Resources
from medic.workflows.describe import WorkflowView
from medic.workflows.pacing import PriorityGate
from medic.workflows.ports import RunCounts, RunJournal, RunRecord, WorkflowMetrics
from medic.workflows.resume import RESUMABLE_OUTCOMES, continues_by_itself, plan_resume
from medic.workflows.run import COMPONENT, RunDeps, WorkflowRun
from medic.workflows.validation import parse_workflow, validate_workflow

_JOB_PREFIX = "workflow:"

log = get_logger(COMPONENT)


@dataclass
class _Entry:
    config: WorkflowConfig
    stopped: bool = False
    run: WorkflowRun | None = field(default=None, repr=False)

    @property
    def active(self) -> WorkflowRun | None:
        """The run in progress (running or waiting for a slot), if any."""
        if self.run is not None and self.run.task is not None and not self.run.task.done():
            return self.run
        return None


class WorkflowManager:
    """Registers, schedules, runs, stops and reports workflows (see the module docs)."""

    def __init__(
        self,
        *,
        scheduler: AsyncIOScheduler,
        journal: RunJournal,
        bus: EventBus,
        metrics: WorkflowMetrics,
        resources: Resources,
        state_dir: Path,
        max_concurrent: int = 4,
        dry_run: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self.journal = journal
        self.bus = bus
        self._deps = RunDeps(journal, bus, metrics, resources, state_dir, dry_run, random.Random())
        self._gate = PriorityGate(max_concurrent)
        self._entries: dict[str, _Entry] = {}
        self._closing = False
        scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)

    @property
    def waiting_runs(self) -> int:
        """Runs waiting for a slot under ``max_concurrent``."""
        return self._gate.waiting

    def set_max_concurrent(self, limit: int) -> None:
        """A reloaded ``daemon.workflow_concurrency``: runs already going are not cut off."""
        self._gate.resize(limit)

    # configuration ---------------------------------------------------------------

    async def apply(self, workflows: Mapping[str, WorkflowConfig]) -> dict[str, list[str]]:
        """Bring the registered set in line with a (re)loaded config; all or nothing."""
        problems = [p for wid, cfg in workflows.items() for p in validate_workflow(wid, cfg)]
        if problems:
            raise InvalidWorkflowError(problems)
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for workflow_id in [w for w in self._entries if w not in workflows]:
            await self._remove(workflow_id)
            changes["removed"].append(workflow_id)
        for workflow_id, config in workflows.items():
            entry = self._entries.get(workflow_id)
            if entry is None or entry.config != config:
                changes["added" if entry is None else "changed"].append(workflow_id)
                self._put(workflow_id, config)
        return changes

    async def register(self, workflow_id: str, config: WorkflowConfig | Mapping[str, Any]) -> None:
        """The seed's ``register_workflow``; registering an id again replaces its config."""
        self._put(workflow_id, parse_workflow(workflow_id, config))

    def _put(self, workflow_id: str, config: WorkflowConfig) -> None:
        entry = self._entries.get(workflow_id)
        if entry is None:
            # An operator's stop outlives reloads and restarts (see the module docs).
            stopped = workflow_id in self.journal.paused_workflows()
            entry = self._entries[workflow_id] = _Entry(config, stopped=stopped)
        entry.config = config
        self._schedule(workflow_id, entry)
        log.info(
            "workflow.registered",
            message=f"Workflow registered: {workflow_id}",
            workflow=workflow_id,
        )

    async def _remove(self, workflow_id: str) -> None:
        self._unschedule(workflow_id)
        entry = self._entries.pop(workflow_id)
        run = entry.active
        if run is not None:
            await asyncio.wait([run.cancel("cancelled", "the workflow was removed")])
        log.info(
            "workflow.removed", message=f"Workflow removed: {workflow_id}", workflow=workflow_id
        )

    # control -----------------------------------------------------------------------

    async def start(self, workflow_id: str) -> int:
        """Start a run now and return its id; resumes the schedule after ``stop``."""
        entry = self._startable(workflow_id)
        self.resume_schedule(workflow_id)
        return self._launch(workflow_id, entry, "manual").run_id

    def resume_schedule(self, workflow_id: str) -> bool:
        """Resume the schedule after ``stop`` without starting a run; False if not stopped."""
        entry = self._entry(workflow_id)
        if not entry.stopped:
            return False
        self.journal.set_workflow_paused(workflow_id, False)
        entry.stopped = False
        self._job_call("resume_job", workflow_id)
        return True

    async def run(self, workflow_id: str) -> RunRecord:
        """Run once now and wait for the end; returns the run record."""
        run = self._launch(workflow_id, self._startable(workflow_id), "manual")
        assert run.task is not None
        await asyncio.wait([run.task])  # our caller going away does not cancel the run
        record = self.journal.workflow_run(run.run_id)
        assert record is not None
        return record

    async def resume(self, workflow_id: str, run_id: int, who: str = "an operator") -> int:
        """Resume a failed, timed-out or interrupted run at its first unfinished step."""
        entry = self._entry(workflow_id)
        run = self._run_json(workflow_id, run_id)
        if entry.active is not None:
            raise WorkflowAlreadyRunningError(workflow_id)
        if run["outcome"] not in RESUMABLE_OUTCOMES:
            raise RunNotResumableError(
                f"run {run_id} of {workflow_id!r} has outcome {run['outcome']}; only a"
                " failed, timed-out or interrupted run can be resumed"
            )
        self._startable(workflow_id)
        self._resume(workflow_id, entry, run, f"resumed by {who}")
        return run_id

    def resume_cut_off(self, run_ids: Sequence[int]) -> list[int]:
        """At start: resume the runs the last crash cut off, where that is safe."""
        resumed = []
        for run_id in run_ids:
            record = self.journal.workflow_run(run_id)
            run: dict[str, Any] = record.as_json() if record is not None else {}
            wid = str(run.get("workflow"))
            entry = self._entries.get(wid)
            if entry is None or entry.stopped or entry.active is not None:
                continue
            if continues_by_itself(entry.config, run):
                self._resume(wid, entry, run, "resumed after the daemon restarted")
                resumed.append(run_id)
        return resumed

    def _run_json(self, workflow_id: str, run_id: int) -> dict[str, Any]:
        record = self.journal.workflow_run(run_id)
        if record is None or record.as_json()["workflow"] != workflow_id:
            raise WorkflowRunNotFoundError(workflow_id, run_id)
        return record.as_json()

    def _resume(
        self, workflow_id: str, entry: _Entry, run: Mapping[str, Any], why: str
    ) -> WorkflowRun:
        plan = plan_resume(entry.config, run, why)
        self.journal.resume_run(plan.run_id, plan.note)
        plan.tell(self.bus)
        return self._launch(workflow_id, entry, plan.trigger, run_id=plan.run_id, kept=plan.kept)

    async def stop(self, workflow_id: str) -> bool:
        """Cancel the run in progress and pause the schedule; True if a run was cancelled."""
        entry = self._entry(workflow_id)
        self.journal.set_workflow_paused(workflow_id, True)
        entry.stopped = True
        self._job_call("pause_job", workflow_id)
        run = entry.active
        if run is None:
            return False
        await asyncio.wait([run.cancel("cancelled", "stopped by an operator")])
        return True

    async def shutdown(self, grace_s: float) -> None:
        """Stop scheduling; give running runs ``grace_s``, then cancel them (interrupted)."""
        self._closing = True
        self.scheduler.remove_listener(self._on_missed)
        for workflow_id in self._entries:
            self._unschedule(workflow_id)
        runs = [run for entry in self._entries.values() if (run := entry.active) is not None]
        for run in runs:
            if not run.admitted:
                run.cancel("cancelled", "the daemon stopped before the run got a slot")
        tasks = [run.task for run in runs if run.task is not None]
        running = [run.task for run in runs if run.admitted and run.task is not None]
        if running:
            await asyncio.wait(running, timeout=grace_s)
        for run in runs:
            if run.task is not None and not run.task.done():
                run.cancel("interrupted", f"cut off by the daemon stopping ({grace_s:g}s grace)")
        if tasks:
            await asyncio.wait(tasks)

    # reading -------------------------------------------------------------------------

    def get(self, workflow_id: str) -> dict[str, Any]:
        entry = self._entry(workflow_id)
        return self._describe(workflow_id, entry, self.journal.workflow_counts())

    def list(self) -> list[dict[str, Any]]:
        counts = self.journal.workflow_counts()
        return [self._describe(w, self._entries[w], counts) for w in sorted(self._entries)]

    def status(self) -> dict[str, dict[str, Any]]:
        """The seed's ``get_system_status()["workflows"]``, with ``next_run_at``."""
        keys = ("status", "last_run", "run_count", "error_count", "next_run_at")
        return {item["id"]: {k: item[k] for k in keys} for item in self.list()}

    def runs(self, workflow_id: str, limit: int = 20) -> Sequence[RunRecord]:
        """Run history, newest first, each with its steps."""
        self._entry(workflow_id)
        return self.journal.runs(workflow_id, limit)

    def _describe(
        self, workflow_id: str, entry: _Entry, counts: Mapping[str, RunCounts]
    ) -> dict[str, Any]:
        job = self.scheduler.get_job(_JOB_PREFIX + workflow_id)
        next_run = getattr(job, "next_run_time", None)  # unset until the scheduler starts
        view = WorkflowView(entry.config, entry.active, entry.stopped, next_run)
        return view.as_json(workflow_id, counts.get(workflow_id))

    # internals -------------------------------------------------------------------------

    def _entry(self, workflow_id: str) -> _Entry:
        try:
            return self._entries[workflow_id]
        except KeyError:
            raise WorkflowNotFoundError(workflow_id) from None

    def _startable(self, workflow_id: str) -> _Entry:
        entry = self._entry(workflow_id)
        if self._closing:
            raise WorkflowsClosedError("the daemon is shutting down; no new workflow runs")
        if entry.active is not None:
            raise WorkflowAlreadyRunningError(workflow_id)
        return entry

    def _launch(
        self,
        workflow_id: str,
        entry: _Entry,
        trigger: str,
        *,
        run_id: int | None = None,
        kept: Mapping[str, str] | None = None,
    ) -> WorkflowRun:
        """Start a new run, or go on with ``run_id`` (resumed) with its ``kept`` steps."""
        if run_id is None:
            run_id = self.journal.start_run(workflow_id, trigger)
        run = WorkflowRun(workflow_id, entry.config, run_id, trigger, self._deps, kept)
        run.task = asyncio.create_task(run.execute(self._gate), name=f"workflow:{workflow_id}")
        run.task.add_done_callback(lambda _task: _settle(run))
        entry.run = run
        return run

    async def _fire(self, workflow_id: str) -> None:
        """The scheduler's job: start a run unless one is still going."""
        entry = self._entries.get(workflow_id)
        if entry is None or entry.stopped or self._closing:
            return
        run = entry.active
        if run is not None:
            self._skip(workflow_id, "coalesced", f"run {run.run_id} is still in progress")
            return
        self._launch(workflow_id, entry, "schedule")

    def _on_missed(self, event: JobExecutionEvent) -> None:
        if event.job_id.startswith(_JOB_PREFIX):
            when = event.scheduled_run_time
            self._skip(
                event.job_id.removeprefix(_JOB_PREFIX),
                "misfired",
                f"the run due at {when.isoformat()} was missed by more than misfire_grace",
            )

    def _skip(self, workflow_id: str, reason: str, detail: str) -> None:
        log.info(
            "workflow.skipped",
            message=f"Workflow run skipped: {workflow_id}",
            workflow=workflow_id,
            reason=reason,
            detail=detail,
        )
        self.bus.publish("workflow.skipped", workflow=workflow_id, reason=reason, detail=detail)

    def _schedule(self, workflow_id: str, entry: _Entry) -> None:
        schedule = entry.config.schedule
        if schedule is None or not entry.config.enabled:
            self._unschedule(workflow_id)
            return
        paused: dict[str, Any] = {"next_run_time": None} if entry.stopped else {}
        self.scheduler.add_job(
            self._fire,
            build_trigger(schedule),
            args=[workflow_id],
            id=_JOB_PREFIX + workflow_id,
            name=f"workflow {workflow_id}",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, math.ceil(schedule.misfire_grace)),
            **paused,
        )

    def _unschedule(self, workflow_id: str) -> None:
        self._job_call("remove_job", workflow_id)

    def _job_call(self, method: str, workflow_id: str) -> None:
        """``pause_job``/``resume_job``/``remove_job`` on the workflow's job, if it has one."""
        job_id = _JOB_PREFIX + workflow_id
        if self.scheduler.get_job(job_id) is not None:
            getattr(self.scheduler, method)(job_id)


def _settle(run: WorkflowRun) -> None:
    # A task cancelled before its first step never entered execute(); end it here.
    run.finish(run.cancel_outcome, run.cancel_detail)
