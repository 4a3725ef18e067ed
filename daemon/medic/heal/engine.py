"""The recovery engine: decides, for each failing service, whether a playbook
runs now, and starts it.

It listens to the monitor (``RecoveryListener``): every applied check result
and every status change. Admission (``admission``) says run, wait, hold or
open the circuit; holds, wake-ups and the host-wide hold (``holds``), circuits (``circuits``),
approval (``approval``), the run of a playbook (``run``) and what is
recorded (``recording``) each have their own module.
One recovery per service at a time; host-wide ``concurrency``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

from medic.config.models import Playbook, RecoveryPolicy
from medic.core.bus import EventBus
from medic.core.errors import MedicError
from medic.core.vocabulary import FailureType, HoldReason, RecoveryOutcome, ServiceStatus, Trigger
from medic.heal.admission import (
    MIN_SERVICES_FOR_BLAST_RADIUS,
    NEVER_ACTED,
    Decision,
    Guardrails,
    RecoveryRequest,
    Verdict,
    counts_against_guardrails,
    held_because,
)
from medic.heal.approval import Approvals
from medic.heal.circuits import Circuits
from medic.heal.dependencies import DependencyConfirmation
from medic.heal.errors import RecoveryBusy
from medic.heal.fleet_gate import FleetAdmission
from medic.heal.holds import Holds
from medic.heal.playbooks import choose_playbook
from medic.heal.recording import HealMetrics, HealRecorder, RecoveryJournal
from medic.heal.restore import restore_history
from medic.heal.run import Recovery, RecoveryResult, RunDeps, facts_of, run_recovery
from medic.heal.state import HealBook, HealState, ServiceSource
from medic.host.resources import Resources
from medic.watch.state import ServiceState, Transition


class RecoveryEngine:
    def __init__(
        self,
        *,
        policy: RecoveryPolicy,
        playbooks: Mapping[str, Playbook],
        journal: RecoveryJournal,
        bus: EventBus,
        metrics: HealMetrics,
        resources: Resources,
        state_dir: Path,
        dry_run: bool,
    ) -> None:
        self.guardrails = Guardrails(policy)
        self.playbooks = dict(playbooks)
        self.journal = journal
        self.recorder = HealRecorder(journal, bus, metrics)
        self.resources = resources
        self.state_dir = state_dir
        self.dry_run = dry_run
        self.book = HealBook()
        self.holds = Holds(lambda: self.services, self.guardrails, self.recorder)
        self.circuits = Circuits(self.guardrails, self.recorder, self.holds.wake_at)
        self._services: ServiceSource | None = None
        self.approvals = Approvals(lambda: self.services, self.recorder)
        self.dependencies = DependencyConfirmation(lambda: self.services, self.holds)
        self._slots = asyncio.Semaphore(policy.concurrency)
        self._tasks: dict[str, asyncio.Task[RecoveryResult]] = {}
        self._held: set[str] = set()
        """Services whose last transition was to held (every hold is one)."""
        self._accepting = True
        self.fleet: FleetAdmission | None = None
        """With ``fleet:``: asked before every automatic recovery (wired by the orchestrator)."""

    def attach(self, services: ServiceSource) -> None:
        """The monitor whose services this engine heals (it is built with the engine
        as its listener, so it comes second)."""
        self._services = services

    @property
    def services(self) -> ServiceSource:
        if self._services is None:
            raise MedicError("the recovery engine is not attached to a monitor")
        return self._services

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
    def running(self) -> dict[str, asyncio.Task[RecoveryResult]]:
        return dict(self._tasks)

    @property
    def blast_hold(self) -> str | None:
        """Why automatic recovery is held host-wide, or None."""
        return self.holds.host_hold

    def heal_state(self, name: str) -> HealState:
        return self.book.of(self.services.state(name))

    # the monitor's listener -------------------------------------------------------

    def on_result(self, state: ServiceState) -> None:
        result = state.last_check.result if state.last_check else None
        if state.status is ServiceStatus.HEALTHY and not state.recovering:
            self.circuits.on_healthy_check(state, self.book.of(state), time.monotonic())
        # A check that cannot tell (the Docker engine is away) is no reason to act:
        # a recovery now would fail against the same absent engine and use up an
        # attempt. The engine's return brings a check of its own.
        if result is not None and not result.healthy and result.failure_type is not None:
            self.evaluate(state)

    def on_transition(self, transition: Transition) -> None:
        if transition.new is ServiceStatus.HELD:
            self._held.add(transition.service)
        else:
            self._held.discard(transition.service)
        states = self.services.states()
        state = states.get(transition.service)
        if state is not None:
            self._after_transition(state, transition)
        self.holds.lift_host_hold()

    def _after_transition(self, state: ServiceState, t: Transition) -> None:
        heal = self.book.of(state)
        spell = t.healthy_for_s
        if spell is not None and spell >= state.spec.policy.reset_after:
            heal.forget_attempts()  # a long healthy spell gives the attempts back
        if t.new is not ServiceStatus.HEALTHY:
            return
        heal.held_reason = None
        heal.rejected = None
        heal.next_attempt_at = None
        self.circuits.on_healthy_check(state, heal, time.monotonic())
        # Only the held can be waiting for this one: a scan of every service per
        # transition was 10^8 steps for the first checks of 10,000 services.
        states = self.services.states()
        for other in [states[n] for n in self._held if n in states]:
            if state.name in other.spec.depends_on and other.status is ServiceStatus.HELD:
                self.services.request_check(other.name)

    def remediate(
        self, service: str, failure_type: FailureType | None, dry_run: bool | None
    ) -> asyncio.Task[RecoveryResult]:
        return self.recover_now(service, failure_type, trigger=Trigger.MANUAL, dry_run=dry_run)

    # automatic recovery -----------------------------------------------------------

    def evaluate(self, state: ServiceState) -> None:
        """Decide whether a failing service gets a recovery now; never blocks."""
        if not self._accepting or state.recovering or state.name in self._tasks:
            return
        failing = state.status in (ServiceStatus.UNHEALTHY, ServiceStatus.HELD)
        if not failing or self.holds.for_maintenance(state.name) is not None:
            return  # a paused service is held (recorded once per pause)
        now = time.monotonic()
        settle_until = self._settle_until(state)
        if settle_until is not None and now < settle_until:
            self.holds.wake_at(state.name, settle_until)
            return
        heal = self.book.of(state)
        decision = self.guardrails.decide(state, heal, self.services.states(), now)
        self._act_on(state, heal, decision, now)

    def _settle_until(self, state: ServiceState) -> float | None:
        # Failures that start together are judged together: a short pause lets
        # a host-wide problem show as one before anything is restarted.
        if state.unhealthy_since is None or self.policy.correlation_window <= 0:
            return None
        if len(self.services.states()) < MIN_SERVICES_FOR_BLAST_RADIUS:
            return None  # too few services for a host-wide hold: no reason to wait
        return state.unhealthy_since + self.policy.correlation_window

    def _act_on(self, state: ServiceState, heal: HealState, decision: Decision, now: float) -> None:
        verdict = decision.verdict
        if verdict is Verdict.RUN and state.spec.depends_on:
            self.dependencies.confirm_then(state, heal, decision, self._run_automatic)
        elif verdict is Verdict.RUN:
            self._run_automatic(state, heal, decision)
        elif verdict is Verdict.WAIT and decision.wake_at is not None:
            self.holds.release(state, heal)
            self.holds.wake_at(state.name, decision.wake_at)
        elif verdict is Verdict.HOLD:
            self.holds.hold(state, heal, decision)
        elif verdict is Verdict.OPEN_CIRCUIT and decision.probation:
            self.circuits.probation_failed(state, heal, decision.detail, now)
        elif verdict is Verdict.OPEN_CIRCUIT:
            self.circuits.open(state, heal, decision.detail, now)

    def _run_automatic(
        self, state: ServiceState, heal: HealState, decision: Decision,
        ft: FailureType | None = None, trigger: Trigger = Trigger.AUTO,
    ) -> None:  # fmt: skip
        def run() -> bool:
            return self._start_automatic(state, heal, decision, ft, trigger)

        if self.fleet is None:
            run()
        else:
            hold = lambda d: self.holds.hold(state, heal, d)  # noqa: E731
            self.fleet.run_when_admitted(state, run, hold, recheck=trigger is Trigger.AUTO)

    def _start_automatic(
        self, state: ServiceState, heal: HealState, decision: Decision,
        ft: FailureType | None, trigger: Trigger,
    ) -> bool:  # fmt: skip
        if not self._accepting or state.recovering or state.name in self._tasks:
            return False  # stopping meanwhile, or started while the fleet was asked
        self.holds.release(state, heal)
        self._spawn(
            state, ft or state.failure_type, trigger=trigger, dry_run=self.dry_run,
            probation=decision.probation,
        )  # fmt: skip
        return True

    # an operator's calls ----------------------------------------------------------

    def reset(self, name: str, who: str = "operator", token: str | None = None) -> None:
        """An operator closes the circuit, gives the service its attempts back and
        lifts the hold of a rejected recovery."""
        heal = self.heal_state(name)
        self.recorder.reset(name, who, token)  # so a restart does not count them again
        heal.forget_attempts()
        heal.rejected = None
        self.circuits.close(name, heal, f"reset by {who}")
        self.services.request_check(name)

    def decide_approval(self, recovery_id: int, approve: bool, who: str) -> None:
        self.approvals.decide(recovery_id, approve, who)

    def recover_now(
        self,
        name: str,
        failure_type: FailureType | None,
        *,
        trigger: Trigger,
        dry_run: bool | None = None,
    ) -> asyncio.Task[RecoveryResult]:
        """Start a recovery outside the automatic path (operator, API, alert); the
        failure type defaults to the service's own, then ``unhealthy_response``."""
        state = self.services.state(name)
        if not self._accepting:
            raise RecoveryBusy("the daemon is stopping: no recovery starts now")
        if name in self._tasks:
            raise RecoveryBusy(f"a recovery of {name} is already running")
        ft = failure_type or state.failure_type or FailureType.UNHEALTHY_RESPONSE
        dry = self.dry_run if dry_run is None else dry_run
        return self._spawn(state, ft, trigger=trigger, dry_run=dry).task

    def request_recovery(
        self, name: str, failure_type: FailureType | None, *, trigger: Trigger = Trigger.ALERT
    ) -> RecoveryRequest:
        """Start a recovery asked for from outside the checks if the guardrails
        allow it now (unlike ``recover_now``, an operator's bypass); else say why not."""
        state = self.services.state(name)
        heal = self.book.of(state)
        ft = failure_type or state.failure_type or FailureType.UNHEALTHY_RESPONSE
        refusal = self._refusal(state)
        if refusal is None:
            now = time.monotonic()
            decision = self.guardrails.decide(state, heal, self.services.states(), now)
            if decision.verdict is Verdict.RUN and self.fleet is not None and state.spec.shared:
                # One host heals a shared service, whoever asked: once it holds the lock.
                self._run_automatic(state, heal, decision, ft, trigger)
                pending = f"{name} is shared: its recovery starts once this host holds the lock"
                return RecoveryRequest(name, ft, None, pending=pending)
            if decision.verdict is Verdict.RUN:
                run = self._spawn(
                    state, ft, trigger=trigger, dry_run=self.dry_run, probation=decision.probation
                )
                return RecoveryRequest(name, ft, run.rec_id)
            if decision.verdict is Verdict.OPEN_CIRCUIT:
                # The same as on the automatic path: the API and /metrics must
                # show the circuit open that this answer is held by.
                self._act_on(state, heal, decision, now)
            refusal = held_because(decision)
        reason, detail = refusal
        self.recorder.held(name, reason, detail, publish=True)
        return RecoveryRequest(name, ft, None, reason, detail)

    def _refusal(self, state: ServiceState) -> tuple[HoldReason, str] | None:
        if not self._accepting:
            return HoldReason.SHUTTING_DOWN, "the daemon is stopping"
        if state.recovering or state.name in self._tasks:
            detail = f"a recovery of {state.name} is already running"
            return HoldReason.ALREADY_RECOVERING, detail
        return self.holds.for_maintenance(state.name, record=False)  # recorded by the caller

    # running ----------------------------------------------------------------------

    def _spawn(
        self,
        state: ServiceState,
        failure_type: FailureType | None,
        *,
        trigger: Trigger,
        dry_run: bool,
        probation: bool = False,
    ) -> Recovery:
        state.recovering = True
        heal = self.book.of(state)
        heal.next_attempt_at = None  # this is that attempt: the page must not show it as due
        run = Recovery(
            state=state,
            heal=heal,
            playbook=choose_playbook(state.spec, failure_type, self.playbooks),
            failure_type=failure_type,
            trigger=trigger,
            dry_run=dry_run,
            probation=probation,
            facts=facts_of(state),
            started_healthy=state.status is ServiceStatus.HEALTHY,
        )
        if counts_against_guardrails(trigger, dry_run):
            run.counted_at = time.monotonic()
            self.guardrails.record_attempt(heal, run.counted_at, state.spec.policy)
        # Recorded before the task starts, so whoever asked has the id at once.
        run.rec_id = self.journal.start_recovery(
            state.name,
            failure_type,
            run.playbook.name,
            trigger,
            dry_run=dry_run,
            facts=run.facts,
        )
        run.task = asyncio.create_task(
            run_recovery(run, self._run_deps()), name=f"recover:{state.name}"
        )
        self._tasks[state.name] = run.task
        run.task.add_done_callback(lambda _t: self._tasks.pop(state.name, None))
        return run

    def _run_deps(self) -> RunDeps:
        return RunDeps(
            services=self.services,
            recorder=self.recorder,
            approvals=self.approvals,
            circuits=self.circuits,
            resources=self.resources,
            state_dir=self.state_dir,
            slots=lambda: self._slots,
            ended=self._ended,
            fleet=None if self.fleet is None else self.fleet.port,
        )

    def _ended(self, run: Recovery, outcome: RecoveryOutcome, healthy: bool) -> None:
        """What a recovery's end means for the next attempt."""
        state, heal = run.state, run.heal
        if outcome in NEVER_ACTED or run.held is not None:
            # Refused, or stopped by the fleet before its disruptive step: the
            # fix was never tried, so it does not use up an attempt.
            self.guardrails.forget_attempt(heal, run.counted_at)
        if run.held is not None and not healthy:
            self.holds.hold(state, heal, Decision(Verdict.HOLD, *run.held))
        if healthy or outcome is RecoveryOutcome.INTERRUPTED:
            return
        now = time.monotonic()
        if outcome is RecoveryOutcome.REJECTED:
            # The operator said no: asking again at every backoff would only
            # page them again. Held until healthy again, or a reset.
            heal.rejected = (
                f"an operator rejected recovery {run.rec_id}; automatic recovery waits"
                " until the service is healthy again or `medic reset`"
            )
            decision = Decision(Verdict.HOLD, HoldReason.REJECTED, heal.rejected)
            self.holds.hold(state, heal, decision)
        elif run.probation:
            detail = f"probation attempt {run.rec_id} did not heal it"
            self.circuits.probation_failed(state, heal, detail, now)
        else:
            policy = state.spec.policy
            attempts = self.guardrails.attempts_in_window(heal, now, policy)
            heal.next_attempt_at = now + self.guardrails.backoff_delay(attempts, policy)
            self.holds.wake_at(state.name, heal.next_attempt_at)

    # start and stop ---------------------------------------------------------------

    def restore(self) -> int:
        """Take back what the history says about the last window (attempts that
        count, circuits left open); returns how many attempts were restored."""
        return restore_history(
            self.journal, self.book, self.guardrails, self.circuits, self.services.states()
        )

    async def shutdown(self, grace_s: float) -> None:
        """Stop starting recoveries; wait up to ``grace_s`` for running ones, then cancel."""
        self._accepting = False
        self.holds.cancel_wakeups()
        self.approvals.cancel_all()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        self.recorder.shutdown_wait(list(self._tasks), grace_s)
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
