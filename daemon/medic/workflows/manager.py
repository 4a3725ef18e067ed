"""Workflows: step graphs run on a schedule or on demand, one run at a time each,
under a host-wide limit, with every run and step recorded in SQLite.

``WorkflowManager`` owns the registered workflows, their APScheduler jobs and
their runs in progress; the orchestrator and the HTTP API call it. The rules:

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
Steps
    ``type: async`` runs the steps as a graph: a step starts once every step
    it ``depends_on`` has ended, independent steps run concurrently.
    ``type: sync`` runs one step at a time in list order (a step listed before
    one it depends on waits for it). A failed step is retried (its own
    ``retry`` or else the workflow's ``retry_policy``); when it still fails,
    the steps that depend on it are ``skipped`` and the run fails, while
    independent branches finish. ``continue_on_failure: true`` lets the
    dependents run and keeps that failure from failing the run. The workflow
    ``timeout`` cancels everything still running (``timed_out``).
Timeouts
    A step's own ``timeout`` bounds each attempt. A step without one is bounded
    by the workflow's ``timeout``; with neither, by ``STEP_TIMEOUT_S`` (1 h), so
    a hung command cannot hold its workflow forever. A ``sleep`` step is never
    cut shorter than its duration by a default (``medic.heal.steps.step_timeout``).
Stop and reload
    ``stop`` cancels the run in progress and pauses the schedule until
    ``start``; the pause is kept in the store, so the workflow stays stopped
    across reloads and daemon restarts (even if it leaves the config and comes
    back). ``apply`` (a reload): an added workflow is registered and
    scheduled; a removed one is unscheduled and its run in progress is
    cancelled (a workflow no longer in the config should not keep acting on
    the host); a changed one is rescheduled, and its run in progress finishes
    under the definition it started with. Cancelled commands are torn down
    with their whole process group before the run is recorded.
Dry run
    Every step is recorded as ``dry_run`` and nothing is executed.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from medic.config.actions import ActionOptions
from medic.config.models import WorkflowConfig
from medic.config.refs import step_graph_issues, step_timeout_issues
from medic.config.schedules import build_trigger, schedule_errors
from medic.core.bus import EventBus
from medic.core.errors import (
    ConfigIssue,
    InvalidWorkflowError,
    WorkflowAlreadyRunningError,
    WorkflowNotFoundError,
    WorkflowsClosedError,
)
from medic.core.logging import get_logger
from medic.heal.actions.base import ActionContext
from medic.heal.steps import run_step
from medic.host.resources import Resources
from medic.store import NO_RUNS, StepSessions, Store, WorkflowCounts, WorkflowRunRecord
from medic.tell.metrics import Metrics
from medic.workflows.pacing import PriorityGate, retry_delay

COMPONENT = "ControlPlaneOrchestrator"
_JOB_PREFIX = "workflow:"
_STEP_FAILED = ("failed", "timed_out")
_STEP_PASSED = ("succeeded", "dry_run")
_RUN_EVENTS = {
    "succeeded": "workflow.succeeded",
    "failed": "workflow.failed",
    "timed_out": "workflow.failed",
    "cancelled": "workflow.cancelled",
    "interrupted": "workflow.cancelled",
}
STEP_TIMEOUT_S = 3600.0
"""The bound on a step without a ``timeout`` in a workflow without one."""

log = get_logger(COMPONENT)


# validation ----------------------------------------------------------------------


def parse_workflow(workflow_id: str, config: WorkflowConfig | Mapping[str, Any]) -> WorkflowConfig:
    """A checked ``WorkflowConfig`` from a model or a plain dict (the seed's form)."""
    if isinstance(config, WorkflowConfig):
        model = config
    else:
        try:
            model = WorkflowConfig.model_validate(dict(config))
        except ValidationError as exc:
            raise InvalidWorkflowError(
                [f"workflow {workflow_id!r}: {_pydantic_problem(e)}" for e in exc.errors()]
            ) from None
    problems = validate_workflow(workflow_id, model)
    if problems:
        raise InvalidWorkflowError(problems)
    return model


def validate_workflow(workflow_id: str, config: WorkflowConfig) -> list[str]:
    """Problems with a parsed workflow: its step graph and its schedule."""
    issues = step_graph_issues(("steps",), config.steps, _issue)
    issues += step_timeout_issues(("steps",), config.timeout, config.steps, _issue)
    problems = [f"{i.dotted_path}: {i.message}" for i in issues]
    if config.schedule is not None:
        problems += [f"schedule.{e.key}: {e}" for e in schedule_errors(config.schedule)]
    return [f"workflow {workflow_id!r}: {p}" for p in problems]


def _issue(loc: tuple[str | int, ...], message: str) -> ConfigIssue:
    return ConfigIssue(file="", line=0, path=loc, message=message)


def _pydantic_problem(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{loc}: {error['msg']}"


# one run -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deps:
    store: Store
    bus: EventBus
    metrics: Metrics
    resources: Resources
    state_dir: Path
    dry_run: bool
    rng: random.Random


@dataclass
class _InFlight:
    started_at: float
    t0: float
    attempts: int = 0


class _Run:
    """One run of one workflow: its step graph under the workflow timeout."""

    def __init__(
        self, workflow_id: str, config: WorkflowConfig, run_id: int, trigger: str, deps: _Deps
    ) -> None:
        self.workflow_id = workflow_id
        self.config = config
        self.run_id = run_id
        self.trigger = trigger
        self.deps = deps
        self.task: asyncio.Task[None] | None = None
        self.cancel_outcome = "cancelled"
        self.cancel_detail = "cancelled"
        self.admitted_t0: float | None = None
        self.finished = False
        self._steps = {_name(s): s for s in config.steps}
        self._done: dict[str, str] = {}
        self._in_flight: dict[str, _InFlight] = {}
        self._log = get_logger(COMPONENT, workflow=workflow_id, run_id=run_id)
        self._ctx = ActionContext(
            resources=deps.resources,
            state_dir=deps.state_dir,
            dry_run=deps.dry_run,
            emit=self._emit,
            sessions=StepSessions(deps.store, run_id=run_id),
        )

    @property
    def admitted(self) -> bool:
        return self.admitted_t0 is not None

    def cancel(self, outcome: str, detail: str) -> asyncio.Task[None]:
        assert self.task is not None
        self.cancel_outcome, self.cancel_detail = outcome, detail
        self.task.cancel()
        return self.task

    async def execute(self, gate: PriorityGate) -> None:
        try:
            async with gate.slot(self.config.priority):
                self._admit()
                outcome, detail = await self._steps_within_timeout()
        except asyncio.CancelledError:
            if self.admitted:
                self._record_leftovers(self.cancel_outcome, self.cancel_detail)
            self.finish(self.cancel_outcome, self.cancel_detail)
            raise
        except Exception as exc:  # noqa: BLE001 - a bug here must still end the run on record
            self._log.exception(
                "workflow.crashed", message=f"Workflow run crashed: {self.workflow_id}"
            )
            self._record_leftovers("cancelled", "the run crashed")
            self.finish("failed", f"internal error: {type(exc).__name__}: {exc}")
            return
        self.finish(outcome, detail)

    def _admit(self) -> None:
        self.admitted_t0 = time.monotonic()
        self.deps.store.mark_run_started(self.run_id)
        self._log.info(
            "workflow.started",
            message=f"Starting workflow: {self.workflow_id}",
            trigger=self.trigger,
        )
        self.deps.bus.publish(
            "workflow.started", workflow=self.workflow_id, run_id=self.run_id, trigger=self.trigger
        )

    async def _steps_within_timeout(self) -> tuple[str, str]:
        timeout = self.config.timeout
        try:
            async with asyncio.timeout(timeout):
                await self._run_graph()
        except TimeoutError:
            detail = f"the workflow timed out after {timeout:g}s"
            self._record_leftovers("timed_out", detail)
            return "timed_out", detail
        return self._verdict()

    async def _run_graph(self) -> None:
        order = _execution_order(self.config.steps)
        if self.config.type == "sync":
            for step in order:
                await self._step(step)
            return
        tasks: dict[str, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as group:
            for step in order:
                needs = [tasks[dep] for dep in step.depends_on]
                tasks[_name(step)] = group.create_task(self._step_after(step, needs))

    async def _step_after(self, step: ActionOptions, needs: list[asyncio.Task[None]]) -> None:
        if needs:
            await asyncio.wait(needs)  # not ``await task``: that would cancel them with us
        await self._step(step)

    async def _step(self, step: ActionOptions) -> None:
        blocker = next((d for d in step.depends_on if self._blocks(d)), None)
        if blocker is not None:
            detail = f"not run: step {blocker!r} did not succeed"
            self._record(step, "skipped", 0, detail, "", None, None)
            return
        await self._attempts(step)

    def _blocks(self, dependency: str) -> bool:
        outcome = self._done[dependency]
        if outcome == "skipped":
            return True
        return outcome not in _STEP_PASSED and not self._steps[dependency].continue_on_failure

    async def _attempts(self, step: ActionOptions) -> None:
        name = _name(step)
        retry = step.retry or self.config.retry_policy
        flight = self._in_flight[name] = _InFlight(time.time(), time.monotonic())
        while True:
            flight.attempts += 1
            outcome = await run_step(step, self._ctx, default_timeout_s=self._step_default)
            if outcome.ok or flight.attempts > retry.max_retries:
                break
            delay = retry_delay(retry, flight.attempts, self.deps.rng)
            self._log.warning(
                "workflow.step_retrying",
                message=f"Workflow step failed, retrying: {name}",
                step=name,
                attempt=flight.attempts,
                retry_in_s=round(delay, 3),
                detail=outcome.detail,
            )
            await asyncio.sleep(delay)
        del self._in_flight[name]
        duration = time.monotonic() - flight.t0
        self._record(
            step, outcome.outcome, flight.attempts, outcome.detail, outcome.output,
            flight.started_at, duration,
        )  # fmt: skip

    def _record(
        self,
        step: ActionOptions,
        outcome: str,
        attempts: int,
        detail: str,
        output: str,
        started_at: float | None,
        duration: float | None,
    ) -> None:
        name = _name(step)
        self._done[name] = outcome
        self.deps.store.add_workflow_step(
            self.run_id, name, step.action, outcome, attempts, detail, output, started_at, duration
        )
        self.deps.bus.publish(
            "workflow.step",
            workflow=self.workflow_id,
            run_id=self.run_id,
            step=name,
            action=step.action,
            outcome=outcome,
            attempts=attempts,
            detail=detail,
        )

    def _record_leftovers(self, outcome: str, detail: str) -> None:
        """Steps cut off mid-way end as ``outcome``; steps never begun as ``skipped``."""
        for name, step in self._steps.items():
            if name in self._done:
                continue
            flight = self._in_flight.pop(name, None)
            if flight is None:
                self._record(step, "skipped", 0, f"not run: {detail}", "", None, None)
            else:
                duration = time.monotonic() - flight.t0
                self._record(
                    step, outcome, flight.attempts, detail, "", flight.started_at, duration
                )

    @property
    def _step_default(self) -> float:
        """A step without ``timeout`` is bounded by the workflow's (see the module docs)."""
        return self.config.timeout or STEP_TIMEOUT_S

    def _verdict(self) -> tuple[str, str]:
        failed = [
            name
            for name, outcome in self._done.items()
            if outcome in _STEP_FAILED and not self._steps[name].continue_on_failure
        ]
        if failed:
            noun = "step" if len(failed) == 1 else "steps"
            return "failed", f"{noun} {', '.join(repr(n) for n in failed)} failed"
        if self.deps.dry_run:
            return "succeeded", f"dry run: {len(self._done)} steps recorded, nothing run"
        return "succeeded", f"{len(self._done)} steps done"

    def finish(self, outcome: str, detail: str) -> None:
        """Record the end of the run once, then count and publish it."""
        if self.finished:
            return
        self.finished = True
        self.deps.store.finish_run(self.run_id, outcome, detail)
        self.deps.metrics.workflow_runs.labels(self.workflow_id, outcome).inc()
        duration = 0.0
        if self.admitted_t0 is not None:
            duration = time.monotonic() - self.admitted_t0
            self.deps.metrics.workflow_duration.labels(self.workflow_id).observe(duration)
        self.deps.bus.publish(
            _RUN_EVENTS[outcome],
            workflow=self.workflow_id,
            run_id=self.run_id,
            outcome=outcome,
            detail=detail,
            trigger=self.trigger,
            duration_seconds=round(duration, 3),
        )
        if outcome == "succeeded":
            self._log.info(
                "workflow.succeeded",
                message=f"Workflow succeeded: {self.workflow_id}",
                duration_s=round(duration, 3),
            )
        else:
            self._log.warning(
                "workflow.unsuccessful",
                message=f"Workflow {outcome.replace('_', ' ')}: {self.workflow_id}",
                outcome=outcome,
                detail=detail,
                duration_s=round(duration, 3),
            )

    async def _emit(self, event: str, data: dict[str, Any]) -> None:
        self.deps.bus.publish(
            event, **{"workflow": self.workflow_id, "run_id": self.run_id, **data}
        )


def _name(step: ActionOptions) -> str:
    assert step.name, "workflow steps are validated to have names"
    return step.name


def _execution_order(steps: Sequence[ActionOptions]) -> list[ActionOptions]:
    """List order, except that a step comes after every step it depends on."""
    placed: set[str] = set()
    order: list[ActionOptions] = []
    remaining = list(steps)
    while remaining:
        step = next(s for s in remaining if placed.issuperset(s.depends_on))
        remaining.remove(step)
        order.append(step)
        placed.add(_name(step))
    return order


# the manager -------------------------------------------------------------------


@dataclass
class _Entry:
    config: WorkflowConfig
    stopped: bool = False
    run: _Run | None = field(default=None, repr=False)

    @property
    def active(self) -> _Run | None:
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
        store: Store,
        bus: EventBus,
        metrics: Metrics,
        resources: Resources,
        state_dir: Path,
        max_concurrent: int = 4,
        dry_run: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self.bus = bus
        self._deps = _Deps(store, bus, metrics, resources, state_dir, dry_run, random.Random())
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
            stopped = workflow_id in self.store.paused_workflows()
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
        if entry.stopped:
            self.store.set_workflow_paused(workflow_id, False)
            entry.stopped = False
            self._job_call("resume_job", workflow_id)
        return self._launch(workflow_id, entry, "manual").run_id

    async def run(self, workflow_id: str) -> WorkflowRunRecord:
        """Run once now and wait for the end; returns the run record."""
        run = self._launch(workflow_id, self._startable(workflow_id), "manual")
        assert run.task is not None
        await asyncio.wait([run.task])  # our caller going away does not cancel the run
        record = self.store.workflow_run(run.run_id)
        assert record is not None
        return record

    async def stop(self, workflow_id: str) -> bool:
        """Cancel the run in progress and pause the schedule; True if a run was cancelled."""
        entry = self._entry(workflow_id)
        self.store.set_workflow_paused(workflow_id, True)
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
        return self._describe(workflow_id, entry, self.store.workflow_counts())

    def list(self) -> list[dict[str, Any]]:
        counts = self.store.workflow_counts()
        return [self._describe(w, self._entries[w], counts) for w in sorted(self._entries)]

    def status(self) -> dict[str, dict[str, Any]]:
        """The seed's ``get_system_status()["workflows"]``, with ``next_run_at``."""
        keys = ("status", "last_run", "run_count", "error_count", "next_run_at")
        return {item["id"]: {k: item[k] for k in keys} for item in self.list()}

    def runs(self, workflow_id: str, limit: int = 20) -> builtins.list[WorkflowRunRecord]:
        """Run history, newest first, each with its steps."""
        self._entry(workflow_id)
        return self.store.runs(workflow_id, limit)

    def _describe(
        self, workflow_id: str, entry: _Entry, counts: Mapping[str, WorkflowCounts]
    ) -> dict[str, Any]:
        run = entry.active
        return {
            "id": workflow_id,
            "config": entry.config.model_dump(mode="json"),
            "status": self._status_of(entry),
            "next_run_at": self._next_run_at(workflow_id),
            "run_id": run.run_id if run else None,
            "queued": bool(run and not run.admitted),
            **counts.get(workflow_id, NO_RUNS).as_json(),
        }

    @staticmethod
    def _status_of(entry: _Entry) -> str:
        if entry.active is not None:
            return "running"
        if not entry.config.enabled:
            return "disabled"
        return "stopped" if entry.stopped else "idle"

    def _next_run_at(self, workflow_id: str) -> str | None:
        job = self.scheduler.get_job(_JOB_PREFIX + workflow_id)
        when = getattr(job, "next_run_time", None)  # unset until the scheduler starts
        return when.isoformat() if isinstance(when, datetime) else None

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

    def _launch(self, workflow_id: str, entry: _Entry, trigger: str) -> _Run:
        run_id = self.store.start_run(workflow_id, trigger)
        run = _Run(workflow_id, entry.config, run_id, trigger, self._deps)
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


def _settle(run: _Run) -> None:
    # A task cancelled before its first step never entered execute(); end it here.
    run.finish(run.cancel_outcome, run.cancel_detail)
