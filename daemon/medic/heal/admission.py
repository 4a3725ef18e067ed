"""Deciding whether a failing service may be recovered now.

The rules, in the order they are applied (design.md, guardrails):

1. an operator's deliberate stop is left alone (``stopped_by_operator``), and
   so is a service whose last recovery an operator rejected, until it is
   healthy again or reset (``rejected``);
2. a service whose dependency is failing is held while the dependency is
   recovered first (``dependency``);
3. with at least 4 services watched, more than ``max_failing_fraction`` of
   them failing for reasons of their own is a host or network problem:
   automatic recovery is held until the fraction drops (``blast_radius``;
   services in maintenance are not counted: their failures are expected);
4. an open circuit allows one probation attempt after ``circuit_cooldown``
   (doubling after each failed probation, up to ``circuit_cooldown_max``);
   a cooldown of 0 keeps it open until an operator resets it (``circuit_open``).
   The circuit closes only once the service has stayed healthy for
   ``reset_after``: a crash loop that looks healthy for a moment after each
   start must not close it;
5. ``max_attempts`` within ``window`` opens the circuit;
6. backoff with jitter between attempts (wait, not held);
7. a host-wide budget of recoveries per window (``budget``).

Rules 4 to 6 follow the service's own policy (``spec.policy``:
``monitoring.recovery`` under the service's ``recovery_policy``); the
host-wide ones (3, 7, ``concurrency``) follow ``monitoring.recovery``.

``Guardrails.decide`` is a pure function of the states and the (monotonic) clock: it
changes nothing, so each rule is tested without running anything. Attempts
are counted (and old ones forgotten) by ``record_attempt``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from medic.config.models import RecoveryPolicy
from medic.core.clock import iso_mono
from medic.core.vocabulary import (
    CircuitState,
    FailureType,
    HoldReason,
    RecoveryOutcome,
    ServiceStatus,
    Trigger,
)
from medic.heal.state import HealState
from medic.watch.state import ServiceState, WatchedStates

MIN_SERVICES_FOR_BLAST_RADIUS = 4

NEVER_ACTED = frozenset({RecoveryOutcome.REJECTED, RecoveryOutcome.EXPIRED})
"""Recoveries that ran no step: an operator said no, or nobody answered in time."""


class Verdict(StrEnum):
    RUN = "run"
    WAIT = "wait"
    """Not yet (backoff, cooldown): a wake-up is due at ``wake_at``."""
    HOLD = "hold"
    OPEN_CIRCUIT = "open_circuit"
    SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: HoldReason | None = None
    detail: str = ""
    wake_at: float | None = None
    probation: bool = False


RUN = Decision(Verdict.RUN)


@dataclass(frozen=True)
class RecoveryRequest:
    """What became of a recovery asked for under the guardrails (an alert):
    started (``recovery_id``), held (``reason``, ``detail``) or, for a shared
    service of a fleet, asked of the fleet first (``pending`` says so)."""

    service: str
    failure_type: FailureType
    recovery_id: int | None = None
    reason: str = ""
    detail: str = ""
    pending: str = ""

    @property
    def started(self) -> bool:
        return self.recovery_id is not None


def held_because(decision: Decision) -> tuple[HoldReason, str]:
    """The reason and detail of a guardrail decision other than "run"."""
    reason = decision.reason or HoldReason.BACKOFF  # every verdict but "run" names its reason
    detail = decision.detail or reason.value
    if decision.wake_at is not None:
        detail = f"{detail}; next attempt allowed at {iso_mono(decision.wake_at)}"
    return reason, detail


class PauseSource(Protocol):
    """The services in maintenance (``medic.heal.maintenance.Maintenance``)."""

    def paused(self, name: str) -> object: ...

    def pauses(self) -> Mapping[str, object]: ...


class Guardrails:
    def __init__(self, policy: RecoveryPolicy) -> None:
        self.policy = policy
        self.host_attempts: deque[float] = deque()
        """Monotonic times of the host's counted recoveries, oldest first (``budget``)."""
        self.paused: Callable[[str], bool] = lambda _name: False
        """Whether a service is in maintenance: its failures are expected, so it
        is not counted towards the blast radius (set by the orchestrator)."""
        self.paused_names: Callable[[], Iterable[str]] | None = None
        """The services in maintenance (with ``paused``, by ``watch_pauses``):
        then the monitor's states are counted from their tallies, not a pass."""

    def watch_pauses(self, pauses: PauseSource) -> None:
        self.paused = lambda name: pauses.paused(name) is not None
        self.paused_names = lambda: pauses.pauses().keys()

    def decide(
        self,
        state: ServiceState,
        heal: HealState,
        states: Mapping[str, ServiceState],
        now: float,
    ) -> Decision:
        if state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            return Decision(Verdict.SKIP, HoldReason.OPERATOR_STOP, "stopped by an operator")
        if heal.rejected is not None:
            return Decision(Verdict.HOLD, HoldReason.REJECTED, heal.rejected)
        failing_deps = failing_dependencies(state, states)
        if failing_deps:
            detail = f"waiting for dependency {', '.join(failing_deps)} to recover"
            return Decision(Verdict.HOLD, HoldReason.DEPENDENCY, detail)
        blast = self.blast_radius(states)
        if blast is not None:
            return Decision(Verdict.HOLD, HoldReason.BLAST_RADIUS, blast)
        if heal.circuit is not CircuitState.CLOSED:
            return self._circuit_decision(heal, now)
        return self._attempts_decision(state, heal, now)

    def _attempts_decision(self, state: ServiceState, heal: HealState, now: float) -> Decision:
        policy = state.spec.policy
        given_back = self.attempts_given_back(state, now)
        counted = 0 if given_back else self.attempts_in_window(heal, now, policy)
        if counted >= policy.max_attempts:
            detail = f"failing again after {counted} automatic recoveries within {policy.window:g}s"
            return Decision(Verdict.OPEN_CIRCUIT, HoldReason.CIRCUIT_OPEN, detail)
        backoff_until = None if given_back else heal.next_attempt_at
        if backoff_until is not None and now < backoff_until:
            return Decision(Verdict.WAIT, HoldReason.BACKOFF, "backing off", wake_at=backoff_until)
        return self._budget_decision(now) or RUN

    def _circuit_decision(self, heal: HealState, now: float) -> Decision:
        if heal.circuit is CircuitState.PROBATION:
            # Failing again after the probation attempt: it did not hold.
            detail = "the probation attempt did not hold"
            return Decision(Verdict.OPEN_CIRCUIT, HoldReason.CIRCUIT_OPEN, detail, probation=True)
        if heal.probation_due_at is None:
            detail = "circuit open until an operator resets it"
            return Decision(Verdict.HOLD, HoldReason.CIRCUIT_OPEN, detail)
        if now < heal.probation_due_at:
            wake = heal.probation_due_at
            return Decision(Verdict.WAIT, HoldReason.CIRCUIT_OPEN, "circuit open", wake_at=wake)
        return self._budget_decision(now) or Decision(Verdict.RUN, probation=True)

    def _budget_decision(self, now: float) -> Decision | None:
        budget = self.policy.budget
        if budget is None:
            return None
        recent = [at for at in self.host_attempts if at >= now - self.policy.window]
        if len(recent) < budget:
            return None
        detail = f"host-wide budget of {budget} recoveries per {self.policy.window:g}s is spent"
        wake = recent[0] + self.policy.window
        return Decision(Verdict.HOLD, HoldReason.BUDGET, detail, wake_at=wake)

    def attempts_in_window(
        self, heal: HealState, now: float, policy: RecoveryPolicy | None = None
    ) -> int:
        """The service's counted attempts within its window (``policy``: the
        service's own, ``spec.policy``; the host's without one)."""
        window_start = now - (policy or self.policy).window
        return sum(1 for at in heal.attempts if at >= window_start)

    def attempts_given_back(self, state: ServiceState, now: float) -> bool:
        """Healthy for ``reset_after``: the attempts and the backoff start over."""
        since = state.healthy_since
        return since is not None and now - since >= state.spec.policy.reset_after

    def record_attempt(
        self, heal: HealState, now: float, policy: RecoveryPolicy | None = None
    ) -> None:
        """Count an attempt (service and host), forgetting those outside each one's
        window (the service's own ``policy``, the host's)."""
        windows = (
            (heal.attempts, (policy or self.policy).window),
            (self.host_attempts, self.policy.window),
        )
        for attempts, window in windows:
            while attempts and attempts[0] < now - window:
                attempts.popleft()
            attempts.append(now)

    def forget_attempt(self, heal: HealState, at: float | None) -> None:
        """Give back an attempt counted at ``at`` that never acted (rejected, expired)."""
        for attempts in (heal.attempts, self.host_attempts):
            if at is not None and at in attempts:
                attempts.remove(at)

    def blast_radius(self, states: Mapping[str, ServiceState]) -> str | None:
        """Why automatic recovery is held host-wide, or None."""
        if isinstance(states, WatchedStates) and self.paused_names is not None:
            watched, own = self._counts_from_tallies(states, self.paused_names())
        else:
            watched, own = self._counts_by_pass(states)
        if watched < MIN_SERVICES_FOR_BLAST_RADIUS:
            return None
        if own / watched <= self.policy.max_failing_fraction:
            return None
        return (
            f"{own} of {watched} services are failing at once"
            f" (more than {self.policy.max_failing_fraction:.0%}): a host or network problem;"
            " automatic recovery is held until it passes"
        )

    def _counts_by_pass(self, states: Mapping[str, ServiceState]) -> tuple[int, int]:
        """(watched, failing on their own): one pass over every service."""
        watched = own = 0
        for s in states.values():
            if s.status is not ServiceStatus.STOPPED_BY_OPERATOR and not self.paused(s.name):
                watched += 1
                own += s.failing_on_its_own
        return watched, own

    @staticmethod
    def _counts_from_tallies(states: WatchedStates, paused: Iterable[str]) -> tuple[int, int]:
        """The same counts as ``_counts_by_pass`` from the monitor's tallies: a
        step per stopped or paused service, not per service (this runs on every
        failed check)."""
        watched, own = len(states) - len(states.stopped), len(states.own)
        own -= sum(1 for name in states.stopped if name in states.own)
        for name in paused:
            if name in states and name not in states.stopped:
                watched -= 1
                own -= name in states.own
        return watched, own

    def backoff_delay(self, attempt: int, policy: RecoveryPolicy | None = None) -> float:
        b = (policy or self.policy).backoff
        delay = min(b.max, b.initial * b.factor ** max(0, attempt - 1))
        spread = delay * b.jitter
        return max(0.0, delay + random.uniform(-spread, spread))

    def cooldown_after(
        self, failed_probations: int, policy: RecoveryPolicy | None = None
    ) -> float | None:
        """The wait before the next probation; None when the circuit stays open."""
        policy = policy or self.policy
        base = policy.circuit_cooldown
        if base <= 0:
            return None
        return float(min(policy.circuit_cooldown_max, base * 2**failed_probations))


def counts_against_guardrails(trigger: str, dry_run: bool, outcome: str | None = None) -> bool:
    """Only automatic recoveries that act count towards ``max_attempts`` and the
    budget: a dry run touches nothing, an operator's own recovery is a
    decision, not a sign that the automatic ones are not working, and one that
    was rejected or expired waiting for approval never acted."""
    never_acted = outcome is not None and RecoveryOutcome(outcome) in NEVER_ACTED
    return not dry_run and not Trigger(trigger).by_operator and not never_acted


def failing_dependencies(state: ServiceState, states: Mapping[str, ServiceState]) -> list[str]:
    return [d for d in state.spec.depends_on if d in states and states[d].is_failing]


def dependency_order(states: Mapping[str, ServiceState]) -> list[str]:
    """Service names with every dependency before its dependents."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in states:
            return
        seen.add(name)
        for dep in states[name].spec.depends_on:
            visit(dep)
        ordered.append(name)

    for name in sorted(states):
        visit(name)
    return ordered
