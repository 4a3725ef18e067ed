"""The recovery engine: guardrails around running playbooks.

Guardrails (design.md): one recovery per service at a time; ``max_attempts``
per ``window``, then the circuit opens; backoff with jitter between attempts;
host-wide ``concurrency``; a service whose dependency is failing is held while
the dependency is recovered first; dry run records each step and touches
nothing. Every held or refused recovery is published and recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from medic.actions.base import ActionContext, ActionOptions, ServiceTarget
from medic.checks.base import CheckResult
from medic.config import Playbook, RecoveryPolicy
from medic.events import EventBus
from medic.logging import get_logger
from medic.metrics import Metrics
from medic.playbooks import choose_playbook
from medic.resources import Resources
from medic.state import ServiceState, Transition
from medic.steps import StepOutcome, run_step
from medic.store import Store
from medic.types import CircuitState, FailureType, ServiceStatus

log = get_logger("RecoveryEngine")


class ServiceSource(Protocol):
    """What the engine needs from the monitor."""

    def state(self, name: str) -> ServiceState: ...

    def states(self) -> Mapping[str, ServiceState]: ...

    async def probe_now(self, name: str) -> CheckResult: ...

    def request_check(self, name: str) -> None: ...

    def apply_transition(self, transition: Transition | None) -> None: ...


@dataclass(frozen=True)
class RecoveryOutcome:
    recovery_id: int
    service: str
    playbook: str
    outcome: str
    detail: str
    duration_s: float


class RecoveryBusy(Exception):
    """A recovery for this service is already running."""


class RecoveryEngine:
    def __init__(
        self,
        *,
        policy: RecoveryPolicy,
        playbooks: Mapping[str, Playbook],
        services: ServiceSource,
        store: Store,
        bus: EventBus,
        metrics: Metrics,
        resources: Resources,
        state_dir: Path,
        dry_run: bool,
    ) -> None:
        self.policy = policy
        self.playbooks = dict(playbooks)
        self.services = services
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.resources = resources
        self.state_dir = state_dir
        self.dry_run = dry_run
        self._slots = asyncio.Semaphore(policy.concurrency)
        self._tasks: dict[str, asyncio.Task[RecoveryOutcome]] = {}
        self._wakeups: dict[str, asyncio.TimerHandle] = {}
        self._accepting = True

    def reconfigure(
        self, policy: RecoveryPolicy, playbooks: Mapping[str, Playbook], dry_run: bool
    ) -> None:
        if policy.concurrency != self.policy.concurrency:
            self._slots = asyncio.Semaphore(policy.concurrency)
        self.policy, self.playbooks, self.dry_run = policy, dict(playbooks), dry_run

    @property
    def running(self) -> dict[str, asyncio.Task[RecoveryOutcome]]:
        return dict(self._tasks)

    # automatic recovery --------------------------------------------------------

    def evaluate(self, state: ServiceState) -> None:
        """Decide whether a failing service gets a recovery now; never blocks."""
        if not self._accepting or state.recovering or state.name in self._tasks:
            return
        if state.status not in (ServiceStatus.UNHEALTHY, ServiceStatus.HELD):
            return
        if self._hold_for_dependency(state):
            return
        if state.circuit is CircuitState.OPEN:
            return
        now = time.time()
        self._prune_attempts(state, now)
        if len(state.attempts) >= self.policy.max_attempts:
            self._open_circuit(state)
            return
        if state.next_attempt_at is not None and now < state.next_attempt_at:
            self._wake_at(state.name, state.next_attempt_at)
            return
        self._spawn(state, state.failure_type, trigger="auto", dry_run=self.dry_run)

    def _prune_attempts(self, state: ServiceState, now: float) -> None:
        while state.attempts and state.attempts[0] < now - self.policy.window:
            state.attempts.popleft()

    def _hold_for_dependency(self, state: ServiceState) -> bool:
        failing = [d for d in state.spec.depends_on if self._dependency_failing(d)]
        if not failing:
            if state.status is ServiceStatus.HELD:
                self.services.apply_transition(
                    state.set_status(ServiceStatus.UNHEALTHY, "dependency healthy again")
                )
            return False
        reason = f"waiting for dependency {', '.join(failing)} to recover"
        if state.held_reason != reason:
            state.held_reason = reason
            self.services.apply_transition(
                state.set_status(ServiceStatus.HELD, reason, FailureType.DEPENDENCY_FAILURE)
            )
            self._record_held(state, "dependency", reason)
        return True

    def _dependency_failing(self, name: str) -> bool:
        states = self.services.states()
        return name in states and states[name].is_failing

    def _open_circuit(self, state: ServiceState) -> None:
        state.circuit = CircuitState.OPEN
        state.next_attempt_at = None
        self.metrics.circuit_open.labels(state.name).set(1)
        detail = f"{len(state.attempts)} recoveries within {self.policy.window:g}s did not heal it"
        self.store.audit("circuit.opened", state.name, detail=detail)
        self.bus.publish(
            "circuit.opened", service=state.name, detail=detail, failure_type=state.failure_type
        )
        log.warning("Circuit opened: no more automatic recovery", service=state.name, detail=detail)
        self._record_held(state, "circuit_open", detail, publish=False)

    def close_circuit(self, state: ServiceState, reason: str) -> None:
        if state.circuit is CircuitState.CLOSED:
            return
        state.circuit = CircuitState.CLOSED
        self.metrics.circuit_open.labels(state.name).set(0)
        self.store.audit("circuit.closed", state.name, reason=reason)
        self.bus.publish("circuit.closed", service=state.name, reason=reason)
        log.info("Circuit closed", service=state.name, reason=reason)

    def on_healthy(self, state: ServiceState) -> None:
        state.next_attempt_at = None
        self.close_circuit(state, "service healthy again")

    def reset(self, state: ServiceState, who: str = "operator") -> None:
        """An operator closes the circuit and gives the service its attempts back."""
        state.attempts.clear()
        state.next_attempt_at = None
        self.close_circuit(state, f"reset by {who}")
        self.services.request_check(state.name)

    def _record_held(
        self, state: ServiceState, reason: str, detail: str, publish: bool = True
    ) -> None:
        self.metrics.recoveries_held.labels(reason).inc()
        self.store.audit("recovery.held", state.name, reason=reason, detail=detail)
        if publish:
            self.bus.publish("recovery.held", service=state.name, reason=reason, detail=detail)
        log.info("Recovery held", service=state.name, reason=reason, detail=detail)

    def _wake_at(self, name: str, when: float) -> None:
        if name in self._wakeups:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - time.time())

        def wake() -> None:
            self._wakeups.pop(name, None)
            self.services.request_check(name)

        self._wakeups[name] = loop.call_later(delay, wake)

    def backoff_delay(self, attempt: int) -> float:
        b = self.policy.backoff
        delay = min(b.max, b.initial * b.factor ** max(0, attempt - 1))
        spread = delay * b.jitter
        return max(0.0, delay + random.uniform(-spread, spread))

    # running --------------------------------------------------------------------

    def recover_now(
        self,
        name: str,
        failure_type: FailureType | None,
        *,
        trigger: str,
        dry_run: bool | None = None,
    ) -> asyncio.Task[RecoveryOutcome]:
        """Start a recovery outside the automatic path (operator, API, alert)."""
        state = self.services.state(name)
        if name in self._tasks:
            raise RecoveryBusy(name)
        ft = failure_type or state.failure_type
        return self._spawn(
            state, ft, trigger=trigger, dry_run=self.dry_run if dry_run is None else dry_run
        )

    def _spawn(
        self, state: ServiceState, failure_type: FailureType | None, *, trigger: str, dry_run: bool
    ) -> asyncio.Task[RecoveryOutcome]:
        state.recovering = True
        task = asyncio.create_task(
            self._recover(state, failure_type, trigger, dry_run), name=f"recover:{state.name}"
        )
        self._tasks[state.name] = task
        task.add_done_callback(lambda _t: self._tasks.pop(state.name, None))
        return task

    async def _recover(
        self, state: ServiceState, failure_type: FailureType | None, trigger: str, dry_run: bool
    ) -> RecoveryOutcome:
        playbook = choose_playbook(state.spec, failure_type, self.playbooks)
        state.attempts.append(time.time())
        facts = dict(state.last_check.result.data) if state.last_check else {}
        if state.last_check:
            facts["detail"] = state.last_check.result.detail
        rec_id = self.store.start_recovery(
            state.name, failure_type, playbook.name, trigger, dry_run=dry_run, facts=facts
        )
        self.services.apply_transition(
            state.set_status(ServiceStatus.RECOVERING, f"playbook {playbook.name}", failure_type)
        )
        ctx_log = log.bind(service=state.name, playbook=playbook.name, recovery_id=rec_id)
        ctx_log.warning(
            "Recovery started", failure_type=failure_type, trigger=trigger, dry_run=dry_run
        )
        self.bus.publish(
            "recovery.started",
            service=state.name,
            playbook=playbook.name,
            recovery_id=rec_id,
            failure_type=failure_type,
            trigger=trigger,
            dry_run=dry_run,
        )
        t0 = time.monotonic()
        outcome, detail = "failed", ""
        try:
            async with self._slots:
                outcome, detail = await self._run_playbook(
                    state, playbook, rec_id, failure_type, facts, dry_run
                )
        except asyncio.CancelledError:
            outcome, detail = "interrupted", "cancelled by daemon shutdown"
            raise
        finally:
            duration = time.monotonic() - t0
            await asyncio.shield(self._finish(state, playbook, rec_id, outcome, detail, duration))
        return RecoveryOutcome(rec_id, state.name, playbook.name, outcome, detail, duration)

    async def _run_playbook(
        self,
        state: ServiceState,
        playbook: Playbook,
        rec_id: int,
        failure_type: FailureType | None,
        facts: dict[str, Any],
        dry_run: bool,
    ) -> tuple[str, str]:
        ctx = self._context(state, failure_type, facts, dry_run)
        failed = await self._run_steps(playbook.steps, "steps", ctx, rec_id, state.name)
        if failed is None:
            return ("dry_run" if dry_run else "succeeded"), f"playbook {playbook.name} completed"
        await self._run_steps(
            playbook.on_failure, "on_failure", ctx, rec_id, state.name, offset=100
        )
        return "failed", f"step {failed.action} {failed.outcome}: {failed.detail}"

    async def _run_steps(
        self,
        steps: list[ActionOptions],
        phase: str,
        ctx: ActionContext,
        rec_id: int,
        service: str,
        offset: int = 0,
    ) -> StepOutcome | None:
        for index, step in enumerate(steps):
            out = await run_step(step, ctx)
            self.store.add_recovery_step(
                rec_id,
                offset + index,
                phase,
                out.action,
                out.description,
                out.outcome,
                out.detail,
                out.output,
                out.started_at,
                out.duration_s,
            )
            self.bus.publish(
                "recovery.step",
                service=service,
                recovery_id=rec_id,
                phase=phase,
                action=out.action,
                outcome=out.outcome,
                detail=out.detail,
                duration_seconds=round(out.duration_s, 4),
            )
            log.info(
                "Recovery step",
                service=service,
                action=out.action,
                outcome=out.outcome,
                detail=out.detail,
                duration_s=round(out.duration_s, 3),
            )
            if not out.ok and not step.continue_on_failure:
                return out
        return None

    def _context(
        self,
        state: ServiceState,
        failure_type: FailureType | None,
        facts: dict[str, Any],
        dry_run: bool,
    ) -> ActionContext:
        spec = state.spec
        name = spec.name

        async def emit(event: str, data: dict[str, Any]) -> None:
            log.warning(
                f"Notification {event}: {data.get('message') or ''}".rstrip(": "),
                service=name,
                notify_event=event,
            )
            self.bus.publish(event, **{"service": name, **data})

        run_check: Callable[[], Awaitable[CheckResult]] = lambda: self.services.probe_now(name)  # noqa: E731
        return ActionContext(
            resources=self.resources,
            state_dir=self.state_dir,
            service=ServiceTarget(name=name, container=spec.container, unit=spec.unit),
            failure_type=failure_type.value if failure_type else None,
            dry_run=dry_run,
            run_check=run_check,
            emit=emit,
            facts=facts,
        )

    async def _finish(
        self,
        state: ServiceState,
        playbook: Playbook,
        rec_id: int,
        outcome: str,
        detail: str,
        duration: float,
    ) -> None:
        self.store.set_recovery_status(rec_id, outcome, detail)
        self.metrics.recoveries.labels(state.name, playbook.name, outcome).inc()
        self.metrics.recovery_duration.labels(state.name).observe(duration)
        state.recovering = False
        healthy = bool(state.last_check and state.last_check.result.healthy)
        payload = dict(
            service=state.name,
            playbook=playbook.name,
            recovery_id=rec_id,
            outcome=outcome,
            detail=detail,
            duration_seconds=round(duration, 3),
        )
        if outcome == "succeeded" and healthy:
            self.services.apply_transition(state.set_status(ServiceStatus.HEALTHY, detail))
            self.bus.publish("recovery.succeeded", **payload)
            log.info(
                "Recovery succeeded",
                service=state.name,
                playbook=playbook.name,
                duration_s=round(duration, 3),
            )
            return
        new_status = ServiceStatus.HEALTHY if healthy else ServiceStatus.UNHEALTHY
        self.services.apply_transition(state.set_status(new_status, detail))
        if outcome in ("failed", "interrupted"):
            self.bus.publish("recovery.failed", **payload)
            log.error("Recovery failed", service=state.name, playbook=playbook.name, detail=detail)
        else:
            self.bus.publish("recovery.finished", **payload)
        if not healthy and outcome != "interrupted":
            state.next_attempt_at = time.time() + self.backoff_delay(len(state.attempts))
            self._wake_at(state.name, state.next_attempt_at)

    # shutdown -------------------------------------------------------------------

    async def shutdown(self, grace_s: float) -> None:
        """Stop starting recoveries; wait up to ``grace_s`` for running ones, then cancel."""
        self._accepting = False
        for handle in self._wakeups.values():
            handle.cancel()
        self._wakeups.clear()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        log.info("Waiting for running recoveries", count=len(tasks), grace_s=grace_s)
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
