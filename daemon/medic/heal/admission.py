"""Deciding whether a failing service may be recovered now.

The rules, in the order they are applied (design.md, guardrails):

1. an operator's deliberate stop is left alone (``stopped_by_operator``), and
   so is a service whose last recovery an operator rejected, until it is
   healthy again or reset (``rejected``);
2. a service whose dependency is failing is held while the dependency is
   recovered first (``dependency``);
3. with at least 4 services watched, more than ``max_failing_fraction`` of
   them failing for reasons of their own is a host or network problem:
   automatic recovery is held until the fraction drops (``blast_radius``);
4. an open circuit allows one probation attempt after ``circuit_cooldown``
   (doubling after each failed probation, up to ``circuit_cooldown_max``);
   a cooldown of 0 keeps it open until an operator resets it (``circuit_open``).
   The circuit closes only once the service has stayed healthy for
   ``reset_after``: a crash loop that looks healthy for a moment after each
   start must not close it;
5. ``max_attempts`` within ``window`` opens the circuit;
6. backoff with jitter between attempts (wait, not held);
7. a host-wide budget of recoveries per window (``budget``).

``Guardrails.decide`` is a pure function of the states and the clock, so each
rule is tested without running anything.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from medic.config.models import RecoveryPolicy
from medic.core.vocabulary import CircuitState, FailureType, ServiceStatus
from medic.watch.state import ServiceState

MIN_SERVICES_FOR_BLAST_RADIUS = 4

Verdict = Literal["run", "wait", "hold", "open_circuit", "skip"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    """For holds: circuit_open, dependency, blast_radius, budget, operator_stop."""
    detail: str = ""
    wake_at: float | None = None
    probation: bool = False


class Guardrails:
    def __init__(self, policy: RecoveryPolicy) -> None:
        self.policy = policy
        self.host_attempts: deque[float] = deque()

    def decide(
        self, state: ServiceState, states: Mapping[str, ServiceState], now: float
    ) -> Decision:
        if state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            return Decision("skip", "operator_stop", "stopped by an operator")
        if state.rejected is not None:
            return Decision("hold", "rejected", state.rejected)
        failing_deps = failing_dependencies(state, states)
        if failing_deps:
            detail = f"waiting for dependency {', '.join(failing_deps)} to recover"
            return Decision("hold", "dependency", detail)
        blast = self.blast_radius(states)
        if blast is not None:
            return Decision("hold", "blast_radius", blast)
        if state.circuit is not CircuitState.CLOSED:
            return self._circuit_decision(state, now)
        self.prune(state, now)
        if len(state.attempts) >= self.policy.max_attempts:
            return Decision("open_circuit", "circuit_open", self._exhausted(state))
        if state.next_attempt_at is not None and now < state.next_attempt_at:
            return Decision("wait", "backoff", "backing off", wake_at=state.next_attempt_at)
        return self._budget_decision(now) or Decision("run")

    def _circuit_decision(self, state: ServiceState, now: float) -> Decision:
        if state.circuit is CircuitState.PROBATION:
            # Failing again after the probation attempt: it did not hold.
            return Decision(
                "open_circuit", "circuit_open", "the probation attempt did not hold", probation=True
            )
        if state.probation_due_at is None:
            return Decision("hold", "circuit_open", "circuit open until an operator resets it")
        if now < state.probation_due_at:
            return Decision("wait", "circuit_open", "circuit open", wake_at=state.probation_due_at)
        return self._budget_decision(now) or Decision("run", probation=True)

    def _budget_decision(self, now: float) -> Decision | None:
        budget = self.policy.budget
        if budget is None:
            return None
        while self.host_attempts and self.host_attempts[0] < now - self.policy.window:
            self.host_attempts.popleft()
        if len(self.host_attempts) < budget:
            return None
        detail = f"host-wide budget of {budget} recoveries per {self.policy.window:g}s is spent"
        return Decision(
            "hold", "budget", detail, wake_at=self.host_attempts[0] + self.policy.window
        )

    def _exhausted(self, state: ServiceState) -> str:
        return (
            f"failing again after {len(state.attempts)} automatic recoveries"
            f" within {self.policy.window:g}s"
        )

    def prune(self, state: ServiceState, now: float) -> None:
        """Forget attempts outside the window, and all of them after a long healthy spell."""
        window_start = now - self.policy.window
        while state.attempts and state.attempts[0] < window_start:
            state.attempts.popleft()
        if state.healthy_since is not None and now - state.healthy_since >= self.policy.reset_after:
            state.attempts.clear()
            state.next_attempt_at = None
            state.failed_probations = 0

    def record_attempt(self, state: ServiceState, now: float) -> None:
        state.attempts.append(now)
        self.host_attempts.append(now)

    def blast_radius(self, states: Mapping[str, ServiceState]) -> str | None:
        """Why automatic recovery is held host-wide, or None."""
        # One pass, no lists: this runs on every failed check of every service.
        watched = own = 0
        for s in states.values():
            if s.status is not ServiceStatus.STOPPED_BY_OPERATOR:
                watched += 1
                own += failing_on_its_own(s)
        if watched < MIN_SERVICES_FOR_BLAST_RADIUS:
            return None
        if own / watched <= self.policy.max_failing_fraction:
            return None
        return (
            f"{own} of {watched} services are failing at once"
            f" (more than {self.policy.max_failing_fraction:.0%}): a host or network problem;"
            " automatic recovery is held until it passes"
        )

    def backoff_delay(self, attempt: int) -> float:
        b = self.policy.backoff
        delay = min(b.max, b.initial * b.factor ** max(0, attempt - 1))
        spread = delay * b.jitter
        return max(0.0, delay + random.uniform(-spread, spread))

    def cooldown_after(self, failed_probations: int) -> float | None:
        """The wait before the next probation; None when the circuit stays open."""
        base = self.policy.circuit_cooldown
        if base <= 0:
            return None
        return float(min(self.policy.circuit_cooldown_max, base * 2**failed_probations))


def failing_on_its_own(state: ServiceState) -> bool:
    """Failing now for a reason of its own: unhealthy, or its latest probe failed.

    Counting a failed latest probe, not only a crossed threshold, lets a
    host-wide problem show while the checks (each in its own phase of the
    interval) are still counting towards their thresholds.
    """
    failing = state.is_failing or state.consecutive_failures > 0
    return failing and state.failure_type is not FailureType.DEPENDENCY_FAILURE


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
