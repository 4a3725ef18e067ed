"""The recovery engine: runs playbooks for failing services, under the
guardrails of ``medic.heal.admission``.

One recovery per service at a time; host-wide ``concurrency``; a playbook with
``approval: required`` waits for an operator; every held, skipped or refused
recovery is recorded with its reason, published and counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medic.config.models import Playbook, RecoveryPolicy
from medic.core.bus import EventBus
from medic.core.clock import iso
from medic.core.errors import RecoveryNotFoundError
from medic.core.logging import get_logger
from medic.core.vocabulary import CircuitState, FailureType, ServiceStatus
from medic.heal.actions.base import ActionContext, ActionOptions, ServiceTarget
from medic.heal.admission import (
    MIN_SERVICES_FOR_BLAST_RADIUS,
    Decision,
    Guardrails,
    dependency_order,
)
from medic.heal.playbooks import choose_playbook
from medic.heal.steps import StepOutcome, run_step
from medic.host.resources import Resources
from medic.store import AuditEntry, StepSessions, Store
from medic.tell.metrics import Metrics
from medic.watch.checks.base import CheckResult
from medic.watch.state import ServiceState, Transition

log = get_logger("RecoveryEngine")

MANUAL_TRIGGERS = ("manual", "api", "cli")
"""An operator asking for a recovery is its approval."""
_CIRCUIT_HISTORY_ROWS = 10_000
"""How far back the audit is read at start for circuits left open."""


class ServiceSource(Protocol):
    """What the engine needs from the monitor."""

    def state(self, name: str) -> ServiceState: ...

    def states(self) -> Mapping[str, ServiceState]: ...

    async def probe_now(self, name: str) -> CheckResult: ...

    async def probe_fresh(self, name: str) -> CheckResult: ...

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


@dataclass(frozen=True)
class RecoveryRequest:
    """What became of a recovery asked for under the guardrails (an alert):
    started (``recovery_id``) or held (``reason``, ``detail``)."""

    service: str
    failure_type: FailureType
    recovery_id: int | None = None
    reason: str = ""
    detail: str = ""

    @property
    def started(self) -> bool:
        return self.recovery_id is not None


class RecoveryBusy(Exception):
    """A recovery for this service is already running."""


class NotWaitingForApproval(Exception):
    """The recovery exists but is not waiting for a decision."""


@dataclass
class _Run:
    """What one recovery carries from start to finish."""

    state: ServiceState
    playbook: Playbook
    failure_type: FailureType | None
    trigger: str
    dry_run: bool
    probation: bool
    facts: dict[str, Any]
    started_healthy: bool = False
    """An operator's recovery of a service that was healthy: it is not shown as down."""
    rec_id: int = 0
    task: asyncio.Task[RecoveryOutcome] = field(init=False)


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
        self.guardrails = Guardrails(policy)
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
        self._approvals: dict[int, asyncio.Future[tuple[bool, str]]] = {}
        self._blast_hold: str | None = None
        self._confirming: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._accepting = True

    @property
    def policy(self) -> RecoveryPolicy:
        return self.guardrails.policy

    def reconfigure(
        self, policy: RecoveryPolicy, playbooks: Mapping[str, Playbook], dry_run: bool
    ) -> None:
        if policy.concurrency != self.policy.concurrency:
            self._slots = asyncio.Semaphore(policy.concurrency)
        self.guardrails.policy = policy
        self.playbooks, self.dry_run = dict(playbooks), dry_run

    @property
    def running(self) -> dict[str, asyncio.Task[RecoveryOutcome]]:
        return dict(self._tasks)

    @property
    def blast_hold(self) -> str | None:
        """Why automatic recovery is held host-wide, or None."""
        return self._blast_hold

    # automatic recovery --------------------------------------------------------

    def evaluate(self, state: ServiceState) -> None:
        """Decide whether a failing service gets a recovery now; never blocks."""
        if not self._accepting or state.recovering or state.name in self._tasks:
            return
        if state.status not in (ServiceStatus.UNHEALTHY, ServiceStatus.HELD):
            return
        now = time.time()
        settle_until = self._settle_until(state)
        if settle_until is not None and now < settle_until:
            self._wake_at(state.name, settle_until)
            return
        decision = self.guardrails.decide(state, self.services.states(), now)
        self._act_on(state, decision, now)

    def _settle_until(self, state: ServiceState) -> float | None:
        # Failures that start together are judged together: a short pause lets
        # a host-wide problem show as one before anything is restarted.
        if state.unhealthy_since is None or self.policy.correlation_window <= 0:
            return None
        if len(self.services.states()) < MIN_SERVICES_FOR_BLAST_RADIUS:
            return None  # too few services for a host-wide hold: no reason to wait
        return state.unhealthy_since + self.policy.correlation_window

    def _act_on(self, state: ServiceState, decision: Decision, now: float) -> None:
        verdict = decision.verdict
        if verdict == "run" and state.spec.depends_on:
            self._confirm_dependencies_then_run(state, decision)
        elif verdict == "run":
            self._run_automatic(state, decision)
        elif verdict == "wait" and decision.wake_at is not None:
            self._release_hold(state)
            self._wake_at(state.name, decision.wake_at)
        elif verdict == "hold":
            self._hold(state, decision)
        elif verdict == "open_circuit":
            if decision.probation:
                state.failed_probations += 1
            self._open_circuit(state, decision.detail, now)

    def _run_automatic(self, state: ServiceState, decision: Decision) -> None:
        self._release_hold(state)
        self._spawn(
            state,
            state.failure_type,
            trigger="auto",
            dry_run=self.dry_run,
            probation=decision.probation,
        )

    def _confirm_dependencies_then_run(self, state: ServiceState, decision: Decision) -> None:
        """Probe the dependencies afresh before acting on a dependent.

        A database that just died may not have crossed its own failure
        threshold yet; restarting the web server that depends on it would be
        pointless, so a dependency failing its probe right now holds the
        dependent even before the dependency's status has changed.
        """
        if state.name in self._confirming:
            return
        self._confirming.add(state.name)

        async def confirm() -> None:
            try:
                deps = [d for d in state.spec.depends_on if d in self.services.states()]
                results = await asyncio.gather(*(self.services.probe_now(d) for d in deps))
            finally:
                self._confirming.discard(state.name)
            down = [d for d, r in zip(deps, results, strict=True) if not r.healthy]
            if down:
                detail = f"waiting for dependency {', '.join(down)} to recover"
                self._hold(state, Decision("hold", "dependency", detail))
                return
            if self.services.states().get(state.name) is state and not state.recovering:
                self._run_automatic(state, decision)

        task = asyncio.create_task(confirm(), name=f"confirm-deps:{state.name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _hold(self, state: ServiceState, decision: Decision) -> None:
        if decision.reason == "blast_radius":
            self._enter_blast_hold(decision.detail)
        if decision.wake_at is not None:
            self._wake_at(state.name, decision.wake_at)
        if state.held_reason == decision.detail and state.status is ServiceStatus.HELD:
            return
        failure = FailureType.DEPENDENCY_FAILURE if decision.reason == "dependency" else None
        state.held_reason = decision.detail
        self.services.apply_transition(
            state.set_status(ServiceStatus.HELD, decision.detail, failure)
        )
        self._record_held(
            state,
            decision.reason,
            decision.detail,
            publish=decision.reason not in ("blast_radius", "circuit_open"),
        )

    def _release_hold(self, state: ServiceState) -> None:
        if state.status is ServiceStatus.HELD:
            state.held_reason = None
            self.services.apply_transition(state.set_status(ServiceStatus.UNHEALTHY, "hold lifted"))

    def _enter_blast_hold(self, detail: str) -> None:
        if self._blast_hold is not None:
            self._blast_hold = detail
            return
        self._blast_hold = detail
        self.store.audit("recovery.held", None, reason="blast_radius", detail=detail)
        self.bus.publish("recovery.held", service=None, reason="blast_radius", detail=detail)
        log.error("Automatic recovery held host-wide", reason="blast_radius", detail=detail)

    def on_transition(self, _transition: Transition) -> None:
        """Lift a host-wide hold once the failing fraction has dropped."""
        if self._blast_hold is None:
            return
        if self.guardrails.blast_radius(self.services.states()) is not None:
            return
        detail = self._blast_hold
        self._blast_hold = None
        self.store.audit("recovery.resumed", None, reason="blast_radius", detail=detail)
        self.bus.publish(
            "recovery.resumed", reason="blast_radius", detail="failing fraction dropped"
        )
        log.warning("Automatic recovery resumed: the failing fraction dropped")
        states = self.services.states()
        for name in dependency_order(states):
            if states[name].is_failing:
                self.services.request_check(name)

    def _mark_circuit_open(self, state: ServiceState, opened_at: float) -> float | None:
        """The service's circuit is open since ``opened_at``; returns the cooldown."""
        state.circuit = CircuitState.OPEN
        state.next_attempt_at = None
        cooldown = self.guardrails.cooldown_after(state.failed_probations)
        state.probation_due_at = None if cooldown is None else opened_at + cooldown
        self.metrics.circuit_open.labels(state.name).set(1)
        return cooldown

    def _open_circuit(self, state: ServiceState, detail: str, now: float) -> None:
        cooldown = self._mark_circuit_open(state, now)
        after = "never (until an operator resets it)" if cooldown is None else f"{cooldown:g}s"
        self.store.audit("circuit.opened", state.name, detail=detail, probation_after=after)
        self.bus.publish(
            "circuit.opened",
            service=state.name,
            detail=detail,
            failure_type=state.failure_type,
            probation_at=iso(state.probation_due_at) if state.probation_due_at else None,
        )
        log.warning(
            "Circuit opened: no more automatic recovery",
            service=state.name,
            detail=detail,
            probation_after=after,
        )
        self._record_held(state, "circuit_open", detail, publish=False)
        if state.probation_due_at is not None:
            self._wake_at(state.name, state.probation_due_at)

    def close_circuit(self, state: ServiceState, reason: str) -> None:
        state.probation_due_at = None
        state.failed_probations = 0
        if state.circuit is CircuitState.CLOSED:
            return
        state.circuit = CircuitState.CLOSED
        self.metrics.circuit_open.labels(state.name).set(0)
        self.store.audit("circuit.closed", state.name, reason=reason)
        self.bus.publish("circuit.closed", service=state.name, reason=reason)
        log.info("Circuit closed", service=state.name, reason=reason)

    def on_healthy(self, state: ServiceState) -> None:
        state.next_attempt_at = None
        self.on_healthy_check(state)

    def on_healthy_check(self, state: ServiceState) -> None:
        """Close an open or probation circuit once the service has stayed healthy."""
        if state.circuit is CircuitState.CLOSED or state.healthy_since is None:
            return
        if time.time() - state.healthy_since >= self.policy.reset_after:
            state.forget_attempts()
            self.close_circuit(state, f"healthy for {self.policy.reset_after:g}s")

    def reset(self, state: ServiceState, who: str = "operator") -> None:
        """An operator closes the circuit, gives the service its attempts back and
        lifts the hold of a rejected recovery."""
        state.forget_attempts()
        state.rejected = None
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
        existing = self._wakeups.get(name)
        if existing is not None:
            if existing.when() <= asyncio.get_running_loop().time() + max(0.0, when - time.time()):
                return
            existing.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - time.time())

        def wake() -> None:
            self._wakeups.pop(name, None)
            self.services.request_check(name)

        self._wakeups[name] = loop.call_later(delay, wake)

    def restore_attempts(self, now: float | None = None) -> int:
        """Count the recoveries started within the window before this start again,
        so a daemon that crashes and restarts cannot exceed ``max_attempts`` or the
        host budget, and reopen the circuits that were open; returns how many
        attempts were restored."""
        now = time.time() if now is None else now
        states = self.services.states()
        recent = self.store.recovery_starts(now - self.policy.window)
        starts = [
            (start.service, start.at)
            for start in recent
            if counts_against_guardrails(start.trigger, start.dry_run)
        ]
        for service, at in starts:
            if service in states:
                states[service].attempts.append(at)
            self.guardrails.host_attempts.append(at)
        self._restore_open_circuits(now)
        return len(starts)

    def _restore_open_circuits(self, now: float) -> None:
        states = self.services.states()
        latest: dict[str, AuditEntry] = {}
        for entry in self.store.audit_entries("circuit.*", limit=_CIRCUIT_HISTORY_ROWS):
            service = entry.service
            if service is not None and service in states and service not in latest:
                latest[service] = entry  # newest first: the first one seen is the last word
        for service, entry in latest.items():
            if entry.kind != "circuit.opened":
                continue
            state = states[service]
            self._mark_circuit_open(state, entry.at.timestamp())
            if state.probation_due_at is not None:
                state.probation_due_at = max(now, state.probation_due_at)
            log.warning(
                "Circuit still open from before the restart",
                service=service,
                detail=entry.data.get("detail"),
            )

    def backoff_delay(self, attempt: int) -> float:
        return self.guardrails.backoff_delay(attempt)

    # approvals ------------------------------------------------------------------

    def decide_approval(self, recovery_id: int, approve: bool, who: str) -> None:
        """An operator approves or rejects a recovery that waits for approval."""
        future = self._approvals.get(recovery_id)
        if future is None or future.done():
            if self.store.recovery(recovery_id) is None:
                raise RecoveryNotFoundError(recovery_id)
            raise NotWaitingForApproval(f"recovery {recovery_id} is not waiting for approval")
        # Recorded before the recovery resumes, so the caller sees the decision at once.
        self.store.set_recovery_status(recovery_id, "running" if approve else "rejected")
        future.set_result((approve, who))

    async def _await_approval(self, run: _Run) -> str | None:
        """None when approved; else the outcome (rejected/expired) with the reason logged."""
        future: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        self._approvals[run.rec_id] = future
        timeout = run.playbook.approval_timeout
        reason = f"waiting for operator approval of recovery {run.rec_id}"
        run.state.held_reason = reason
        self.services.apply_transition(run.state.set_status(ServiceStatus.HELD, reason))
        self.store.set_recovery_status(run.rec_id, "waiting_approval")
        self.bus.publish(
            "recovery.approval_required",
            service=run.state.name,
            recovery_id=run.rec_id,
            playbook=run.playbook.name,
            failure_type=run.failure_type,
            timeout_seconds=timeout,
        )
        log.warning(
            "Recovery waits for approval",
            service=run.state.name,
            playbook=run.playbook.name,
            recovery_id=run.rec_id,
            timeout_s=timeout,
        )
        try:
            approved, who = await asyncio.wait_for(future, timeout)
        except asyncio.CancelledError:
            if future.cancelled() and not _current_task_cancelling():
                return "interrupted"
            raise
        except TimeoutError:
            self.store.audit("recovery.expired", run.state.name, recovery_id=run.rec_id)
            return "expired"
        finally:
            self._approvals.pop(run.rec_id, None)
        self.store.audit(
            "recovery.approved" if approved else "recovery.rejected",
            run.state.name,
            recovery_id=run.rec_id,
            who=who,
        )
        if not approved:
            return "rejected"
        self.store.set_recovery_status(run.rec_id, "running")
        self.services.apply_transition(
            run.state.set_status(ServiceStatus.RECOVERING, f"approved by {who}")
        )
        return None

    # running --------------------------------------------------------------------

    def recover_now(
        self,
        name: str,
        failure_type: FailureType | None,
        *,
        trigger: str,
        dry_run: bool | None = None,
    ) -> asyncio.Task[RecoveryOutcome]:
        """Start a recovery outside the automatic path (operator, API, alert).

        The failure type defaults to the service's own, then ``unhealthy_response``:
        an operator who asks to recover a service whose check passes has seen it
        misbehave, and wants its playbook, not a notification.
        """
        state = self.services.state(name)
        if name in self._tasks:
            raise RecoveryBusy(f"a recovery of {name} is already running")
        ft = failure_type or state.failure_type or FailureType.UNHEALTHY_RESPONSE
        return self._spawn(
            state, ft, trigger=trigger, dry_run=self.dry_run if dry_run is None else dry_run
        ).task

    def request_recovery(
        self, name: str, failure_type: FailureType | None, *, trigger: str = "alert"
    ) -> RecoveryRequest:
        """Start a recovery asked for from outside the checks if the guardrails
        allow it now (unlike ``recover_now``, an operator's bypass); else say why not.

        The failure type defaults to the service's own, then ``unhealthy_response``:
        whoever asks has seen the service misbehave even when its check passes.
        """
        state = self.services.state(name)
        ft = failure_type or state.failure_type or FailureType.UNHEALTHY_RESPONSE
        refusal = self._refusal(state)
        if refusal is None:
            now = time.time()
            decision = self.guardrails.decide(state, self.services.states(), now)
            if decision.verdict == "run":
                run = self._spawn(
                    state, ft, trigger=trigger, dry_run=self.dry_run, probation=decision.probation
                )
                return RecoveryRequest(name, ft, run.rec_id)
            if decision.verdict == "open_circuit":
                # The same as on the automatic path: the API and /metrics must
                # show the circuit open that this answer is held by.
                self._act_on(state, decision, now)
            refusal = _held_because(decision)
        reason, detail = refusal
        self._record_held(state, reason, detail)
        return RecoveryRequest(name, ft, None, reason, detail)

    def _refusal(self, state: ServiceState) -> tuple[str, str] | None:
        if not self._accepting:
            return "shutting_down", "the daemon is stopping"
        if state.recovering or state.name in self._tasks:
            return "already_recovering", f"a recovery of {state.name} is already running"
        return None

    def _spawn(
        self,
        state: ServiceState,
        failure_type: FailureType | None,
        *,
        trigger: str,
        dry_run: bool,
        probation: bool = False,
    ) -> _Run:
        state.recovering = True
        run = _Run(
            state=state,
            playbook=choose_playbook(state.spec, failure_type, self.playbooks),
            failure_type=failure_type,
            trigger=trigger,
            dry_run=dry_run,
            probation=probation,
            facts=_facts(state),
            started_healthy=state.status is ServiceStatus.HEALTHY,
        )
        if counts_against_guardrails(trigger, dry_run):
            self.guardrails.record_attempt(state, time.time())
        # Recorded before the task starts, so whoever asked has the id at once.
        run.rec_id = self.store.start_recovery(
            state.name,
            failure_type,
            run.playbook.name,
            trigger,
            dry_run=dry_run,
            facts=run.facts,
        )
        run.task = asyncio.create_task(self._recover(run), name=f"recover:{state.name}")
        self._tasks[state.name] = run.task
        run.task.add_done_callback(lambda _t: self._tasks.pop(state.name, None))
        return run

    async def _recover(self, run: _Run) -> RecoveryOutcome:
        state, playbook = run.state, run.playbook
        if run.probation:
            state.circuit = CircuitState.PROBATION
            self.bus.publish("circuit.probation", service=state.name, recovery_id=run.rec_id)
            log.warning("Circuit probation: one attempt", service=state.name)
        if not run.started_healthy:
            self.services.apply_transition(
                state.set_status(
                    ServiceStatus.RECOVERING, f"playbook {playbook.name}", run.failure_type
                )
            )
        log.warning(
            "Recovery started",
            service=state.name,
            playbook=playbook.name,
            recovery_id=run.rec_id,
            failure_type=run.failure_type,
            trigger=run.trigger,
            dry_run=run.dry_run,
        )
        self.bus.publish(
            "recovery.started",
            service=state.name,
            playbook=playbook.name,
            recovery_id=run.rec_id,
            failure_type=run.failure_type,
            trigger=run.trigger,
            dry_run=run.dry_run,
        )
        t0 = time.monotonic()
        outcome, detail = "failed", ""
        try:
            outcome, detail = await self._approved_then_run(run)
        except asyncio.CancelledError:
            outcome, detail = "interrupted", "cancelled by daemon shutdown"
            raise
        finally:
            duration = time.monotonic() - t0
            await asyncio.shield(self._finish(run, outcome, detail, duration))
        return RecoveryOutcome(run.rec_id, state.name, playbook.name, outcome, detail, duration)

    async def _approved_then_run(self, run: _Run) -> tuple[str, str]:
        needs_approval = run.playbook.approval == "required" and run.trigger not in MANUAL_TRIGGERS
        if needs_approval and not run.dry_run:
            refused = await self._await_approval(run)
            if refused is not None:
                return refused, _refusal_detail(refused, run.playbook.approval_timeout)
        async with self._slots:
            return await self._run_playbook(
                run.state, run.playbook, run.rec_id, run.failure_type, run.facts, run.dry_run
            )

    async def _run_playbook(
        self,
        state: ServiceState,
        playbook: Playbook,
        rec_id: int,
        failure_type: FailureType | None,
        facts: dict[str, Any],
        dry_run: bool,
    ) -> tuple[str, str]:
        ctx = self._context(state, failure_type, facts, dry_run, rec_id)
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
        rec_id: int,
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

        run_check: Callable[[], Awaitable[CheckResult]] = lambda: self.services.probe_fresh(name)  # noqa: E731
        return ActionContext(
            resources=self.resources,
            state_dir=self.state_dir,
            service=ServiceTarget(
                name=name,
                container=spec.container,
                unit=spec.unit,
                check=spec.check,
                start_command=spec.start_command,
            ),
            failure_type=failure_type.value if failure_type else None,
            dry_run=dry_run,
            run_check=run_check,
            emit=emit,
            facts=facts,
            sessions=StepSessions(self.store, recovery_id=rec_id),
        )

    async def _finish(self, run: _Run, outcome: str, detail: str, duration: float) -> None:
        state, playbook = run.state, run.playbook
        healthy = bool(state.last_check and state.last_check.result.healthy)
        if outcome == "succeeded" and not healthy:
            # Every step worked, yet the service still fails its check (e.g.
            # notify-only): the recovery did not resolve anything.
            outcome, detail = "unresolved", f"{detail}; the service still fails its check"
        self.store.set_recovery_status(run.rec_id, outcome, detail)
        self.metrics.recoveries.labels(state.name, playbook.name, outcome).inc()
        self.metrics.recovery_duration.labels(state.name).observe(duration)
        state.recovering = False
        state.held_reason = None
        payload = dict(
            service=state.name,
            playbook=playbook.name,
            recovery_id=run.rec_id,
            outcome=outcome,
            detail=detail,
            duration_seconds=round(duration, 3),
        )
        new_status = ServiceStatus.HEALTHY if healthy else ServiceStatus.UNHEALTHY
        self.services.apply_transition(state.set_status(new_status, detail))
        if outcome == "succeeded" and healthy:
            self.bus.publish("recovery.succeeded", **payload)
            log.info(
                "Recovery succeeded",
                service=state.name,
                playbook=playbook.name,
                duration_s=round(duration, 3),
            )
            return
        if outcome in ("failed", "unresolved", "interrupted", "rejected", "expired"):
            self.bus.publish("recovery.failed", reason=outcome, **payload)
            log.error(
                "Recovery failed",
                service=state.name,
                playbook=playbook.name,
                outcome=outcome,
                detail=detail,
            )
        else:
            self.bus.publish("recovery.finished", **payload)
        if outcome == "rejected" and not healthy:
            # The operator said no: asking again at every backoff would only
            # page them again. Held until healthy again, or a reset.
            state.rejected = (
                f"an operator rejected recovery {run.rec_id}; automatic recovery waits"
                " until the service is healthy again or `medic reset`"
            )
            self._hold(state, Decision("hold", "rejected", state.rejected))
        elif not healthy and outcome != "interrupted":
            self._after_failed_attempt(run)

    def _after_failed_attempt(self, run: _Run) -> None:
        state = run.state
        now = time.time()
        if run.probation:
            state.failed_probations += 1
            self._open_circuit(state, f"probation attempt {run.rec_id} did not heal it", now)
            return
        state.next_attempt_at = now + self.guardrails.backoff_delay(len(state.attempts))
        self._wake_at(state.name, state.next_attempt_at)

    # shutdown -------------------------------------------------------------------

    async def shutdown(self, grace_s: float) -> None:
        """Stop starting recoveries; wait up to ``grace_s`` for running ones, then cancel."""
        self._accepting = False
        for handle in self._wakeups.values():
            handle.cancel()
        self._wakeups.clear()
        for future in self._approvals.values():
            future.cancel()  # nobody will approve during shutdown: end those now
        tasks = list(self._tasks.values())
        if not tasks:
            return
        log.info("Waiting for running recoveries", count=len(tasks), grace_s=grace_s)
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)


def counts_against_guardrails(trigger: str, dry_run: bool) -> bool:
    """Only automatic recoveries that act count towards ``max_attempts`` and the
    budget: a dry run touches nothing, and an operator's own recovery is a
    decision, not a sign that the automatic ones are not working."""
    return not dry_run and trigger not in MANUAL_TRIGGERS


def _facts(state: ServiceState) -> dict[str, Any]:
    if state.last_check is None:
        return {}
    return {**state.last_check.result.data, "detail": state.last_check.result.detail}


def _held_because(decision: Decision) -> tuple[str, str]:
    """The reason and detail of a guardrail decision other than "run"."""
    reason = decision.reason or decision.verdict
    detail = decision.detail or reason
    if decision.wake_at is not None:
        detail = f"{detail}; next attempt allowed at {iso(decision.wake_at)}"
    return reason, detail


def _refusal_detail(outcome: str, timeout_s: float) -> str:
    if outcome == "expired":
        return f"nobody approved the recovery within {timeout_s:g}s"
    return "an operator rejected the recovery"


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
