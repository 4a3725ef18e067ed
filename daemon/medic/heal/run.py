"""The run of one recovery: approval if the playbook asks for it, a slot of
the host's ``concurrency``, the steps in order (``on_failure`` after a failed
one), and the record of how it ended.

What the outcome means for the next attempt (backoff, circuit, a rejection's
hold) is the engine's: the run reports it through ``RunEnded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medic.config.actions import ActionOptions
from medic.config.models import Playbook
from medic.core.records import ContainerEvidence
from medic.core.vocabulary import FailureType, HoldReason, RecoveryOutcome, ServiceStatus, Trigger
from medic.heal.actions.base import ActionContext, ServiceTarget
from medic.heal.approval import Approvals, refusal_detail
from medic.heal.circuits import Circuits
from medic.heal.evidence import brief, evidence_target, gather_evidence, known_secrets
from medic.heal.fleet_gate import FencedOut, FleetHeld, FleetPort, needs_slot
from medic.heal.recording import HealRecorder
from medic.heal.state import HealState, ServiceSource
from medic.heal.steps import StepRun, run_step
from medic.host.resources import Resources
from medic.watch.checks.base import CheckResult
from medic.watch.state import ServiceState

_ON_FAILURE_OFFSET = 100
"""Positions of ``on_failure`` steps start here, after the playbook's own."""


@dataclass(frozen=True)
class RecoveryResult:
    """What ``auto_recover`` (and ``remediate``) return once a recovery ended."""

    recovery_id: int
    service: str
    playbook: str
    outcome: RecoveryOutcome
    detail: str
    duration_s: float


@dataclass
class Recovery:
    """What one recovery carries from start to finish."""

    state: ServiceState
    heal: HealState
    playbook: Playbook
    failure_type: FailureType | None
    trigger: Trigger
    dry_run: bool
    probation: bool
    facts: dict[str, Any]
    started_healthy: bool = False
    """An operator's recovery of a service that was healthy: it is not shown as down."""
    rec_id: int = 0
    counted_at: float | None = None
    """When it was counted against the guardrails (None: it does not count)."""
    evidence: ContainerEvidence | None = None
    """What the container showed before the first step acted on it."""
    held: tuple[HoldReason, str] | None = None
    """Why the fleet stopped it before a step (no disruptive slot in time):
    the service is held with this once the recovery has ended."""
    task: asyncio.Task[RecoveryResult] = field(init=False)

    def fields(self) -> dict[str, Any]:
        """The ``recovery.started`` event's fields."""
        return {
            "service": self.state.name,
            "playbook": self.playbook.name,
            "recovery_id": self.rec_id,
            "failure_type": self.failure_type,
            "trigger": self.trigger,
            "dry_run": self.dry_run,
        }


RunEnded = Callable[[Recovery, RecoveryOutcome, bool], None]
"""Called once a recovery's end is recorded: (recovery, outcome, healthy now)."""


@dataclass(frozen=True)
class RunDeps:
    services: ServiceSource
    recorder: HealRecorder
    approvals: Approvals
    circuits: Circuits
    resources: Resources
    state_dir: Path
    slots: Callable[[], asyncio.Semaphore]
    """The host's ``concurrency``: replaced when a reload changes it."""
    ended: RunEnded
    fleet: FleetPort | None = None
    """With ``fleet:``: the fence checked before each step, told of the end."""


async def run_recovery(run: Recovery, deps: RunDeps) -> RecoveryResult:
    state, playbook = run.state, run.playbook
    if run.probation:
        deps.circuits.begin_probation(state.name, run.heal, run.rec_id)
    if not run.started_healthy:
        detail = f"playbook {playbook.name}"
        transition = state.set_status(ServiceStatus.RECOVERING, detail, run.failure_type)
        deps.services.apply_transition(transition)
    deps.recorder.recovery_started(run.fields())
    t0 = time.monotonic()
    outcome, detail = RecoveryOutcome.FAILED, ""
    try:
        outcome, detail = await _approved_then_run(run, deps)
    except asyncio.CancelledError:
        outcome, detail = RecoveryOutcome.INTERRUPTED, "cancelled by daemon shutdown"
        raise
    finally:
        duration = time.monotonic() - t0
        await asyncio.shield(_finish(run, deps, outcome, detail, duration))
    return RecoveryResult(run.rec_id, state.name, playbook.name, outcome, detail, duration)


async def _approved_then_run(run: Recovery, deps: RunDeps) -> tuple[RecoveryOutcome, str]:
    playbook = run.playbook
    needs_approval = playbook.approval == "required" and not run.trigger.by_operator
    if needs_approval and not run.dry_run:
        fields: dict[str, object] = {"playbook": playbook.name, "failure_type": run.failure_type}
        refused = await deps.approvals.wait(
            run.state, run.heal, run.rec_id, fields, playbook.approval_timeout
        )
        if refused is not None:
            return refused, refusal_detail(refused, playbook.approval_timeout)
    async with deps.slots():
        try:
            return await _run_playbook(run, deps)
        except FencedOut as lost:
            return RecoveryOutcome.FENCED_OUT, str(lost)
        except FleetHeld as held:
            run.held = held.reason, held.detail
            return RecoveryOutcome.INTERRUPTED, f"held {held.reason}: {held.detail}"


async def _run_playbook(run: Recovery, deps: RunDeps) -> tuple[RecoveryOutcome, str]:
    playbook = run.playbook
    ctx = _context(run, deps)
    keeping = await _start_evidence(run, deps, ctx)
    failed = await _run_steps(run, deps, playbook.steps, "steps", ctx)
    if keeping is not None:
        run.evidence = await keeping
        deps.recorder.evidence_kept(run.state.name, run.rec_id, run.evidence)
    if failed is None:
        done = RecoveryOutcome.DRY_RUN if run.dry_run else RecoveryOutcome.SUCCEEDED
        return done, f"playbook {playbook.name} completed"
    await _run_steps(run, deps, playbook.on_failure, "on_failure", ctx, _ON_FAILURE_OFFSET)
    return RecoveryOutcome.FAILED, f"step {failed.action} {failed.outcome}: {failed.detail}"


async def _start_evidence(
    run: Recovery, deps: RunDeps, ctx: ActionContext
) -> asyncio.Task[ContainerEvidence] | None:
    """Before a playbook acts on a container: start keeping what it will lose."""
    container = evidence_target(run.playbook, ctx.service)
    if container is None or run.dry_run:
        return None
    secrets = known_secrets(ctx.service)
    return await gather_evidence(deps.resources.docker, container, secrets)


async def _run_steps(
    run: Recovery,
    deps: RunDeps,
    steps: list[ActionOptions],
    phase: str,
    ctx: ActionContext,
    offset: int = 0,
) -> StepRun | None:
    """Run ``steps`` in order; the step that failed (and stopped them), if any."""
    for index, step in enumerate(steps):
        if deps.fleet is not None:
            await deps.fleet.fence(run.state.name)
        async with _fleet_slot(run, deps, step):
            out = await run_step(step, ctx)
        deps.recorder.step(run.state.name, run.rec_id, offset + index, phase, out)
        if not out.ok and not step.continue_on_failure:
            return out
    return None


def _fleet_slot(
    run: Recovery, deps: RunDeps, step: ActionOptions
) -> AbstractAsyncContextManager[object]:
    """With ``fleet:``, a disruptive step runs holding one of the group's slots."""
    fleet = deps.fleet
    if fleet is None or not needs_slot(
        step, dry_run=run.dry_run, by_operator=run.trigger.by_operator
    ):
        return contextlib.nullcontext()
    return fleet.disruptive_slot(run.state.name)


def _context(run: Recovery, deps: RunDeps) -> ActionContext:
    spec = run.state.spec
    name = spec.name

    async def emit(event: str, data: dict[str, Any]) -> None:
        deps.recorder.notification(name, event, data)

    run_check: Callable[[], Awaitable[CheckResult]] = lambda: deps.services.probe_fresh(name)  # noqa: E731
    return ActionContext(
        resources=deps.resources,
        state_dir=deps.state_dir,
        service=ServiceTarget(
            name=name,
            container=spec.container,
            unit=spec.unit,
            check=spec.check,
            start_command=spec.start_command,
            stop_timeout_s=spec.stop_timeout_s,
        ),
        failure_type=run.failure_type.value if run.failure_type else None,
        dry_run=run.dry_run,
        run_check=run_check,
        emit=emit,
        facts=run.facts,
        recovery_id=run.rec_id,
        sessions=deps.recorder.journal.step_sessions(recovery_id=run.rec_id),
    )


async def _finish(
    run: Recovery, deps: RunDeps, outcome: RecoveryOutcome, detail: str, duration: float
) -> None:
    state = run.state
    healthy = bool(state.last_check and state.last_check.result.healthy)
    if outcome is RecoveryOutcome.SUCCEEDED and not healthy:
        # Every step worked, yet the service still fails its check (e.g.
        # notify-only): the recovery did not resolve anything.
        outcome, detail = RecoveryOutcome.UNRESOLVED, f"{detail}; the service still fails its check"
    payload = {
        "service": state.name,
        "playbook": run.playbook.name,
        "recovery_id": run.rec_id,
        "outcome": outcome,
        "detail": detail,
        "duration_seconds": round(duration, 3),
    }
    if run.evidence is not None:
        payload["evidence"] = brief(run.evidence)
    deps.recorder.recovery_ended(payload, outcome, duration)
    state.end_recovery()
    run.heal.held_reason = None
    new_status = ServiceStatus.HEALTHY if healthy else ServiceStatus.UNHEALTHY
    deps.services.apply_transition(state.set_status(new_status, detail))
    deps.recorder.recovery_told(payload, outcome, held=run.held is not None)
    if deps.fleet is not None:
        deps.fleet.finished(state.name, outcome, healthy)
    deps.ended(run, outcome, healthy)


def facts_of(state: ServiceState) -> dict[str, Any]:
    last = state.last_check
    if last is None:
        return {}
    # When the failing check ran and how long it took: where a recovery's time went.
    timing = {"checked_at": last.at.isoformat(), "check_seconds": round(last.duration_s, 4)}
    return {**last.result.data, "detail": last.result.detail, **timing}
