"""One run of one workflow: its step graph under the workflow timeout, with
every step and the run's end recorded, counted and published.

``WorkflowRun`` is made and driven by ``medic.workflows.manager`` (which
decides when a run starts and cancels it); the rules of a run:

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
Dry run
    Every step is recorded as ``dry_run`` and nothing is executed.
Resumed runs
    A run resumed (``medic.workflows.resume``) keeps its id, its start and the
    steps it ``kept``; those are not run again and count as they ended.

The run records through the ``RunJournal`` and counts through the
``WorkflowMetrics`` ports (``medic.workflows.ports``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medic.config.actions import ActionOptions
from medic.config.models import WorkflowConfig
from medic.core.bus import EventBus
from medic.core.logging import get_logger
from medic.core.records import WorkflowStepEntry
from medic.heal.actions.base import ActionContext
from medic.heal.steps import run_step
from medic.host.resources import Resources
from medic.workflows.pacing import PriorityGate, retry_delay
from medic.workflows.ports import RunJournal, WorkflowMetrics

COMPONENT = "ControlPlaneOrchestrator"
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


@dataclass(frozen=True)
class RunDeps:
    """What every run of a manager shares."""

    journal: RunJournal
    bus: EventBus
    metrics: WorkflowMetrics
    resources: Resources
    state_dir: Path
    dry_run: bool
    rng: random.Random


@dataclass
class _InFlight:
    started_at: float
    t0: float
    attempts: int = 0


class WorkflowRun:
    """One run of one workflow: its step graph under the workflow timeout."""

    def __init__(
        self,
        workflow_id: str,
        config: WorkflowConfig,
        run_id: int,
        trigger: str,
        deps: RunDeps,
        kept: Mapping[str, str] | None = None,
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
        self._done: dict[str, str] = dict(kept or {})
        self.resumed = kept is not None
        self._in_flight: dict[str, _InFlight] = {}
        self._log = get_logger(COMPONENT, workflow=workflow_id, run_id=run_id)
        self._ctx = ActionContext(
            resources=deps.resources,
            state_dir=deps.state_dir,
            dry_run=deps.dry_run,
            emit=self._emit,
            sessions=deps.journal.step_sessions(run_id=run_id),
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
        if self.resumed:
            return  # its start is the first one; the manager told of the resume
        self.deps.journal.mark_run_started(self.run_id)
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
        if _name(step) in self._done:
            return  # kept from before the run was resumed
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
        entry = WorkflowStepEntry(
            name, step.action, outcome, attempts, detail, output, started_at, duration
        )
        self.deps.journal.add_workflow_step(self.run_id, entry)
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
        self.deps.journal.finish_run(self.run_id, outcome, detail)
        timed = None if self.admitted_t0 is None else time.monotonic() - self.admitted_t0
        self.deps.metrics.workflow_ended(self.workflow_id, outcome, timed)
        self._tell_end(outcome, detail, timed or 0.0)

    def _tell_end(self, outcome: str, detail: str, duration: float) -> None:
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
