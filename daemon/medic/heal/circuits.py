"""Circuits: when automatic recovery stops for a service, and how it starts again.

A circuit opens when ``max_attempts`` did not heal the service within the
window (or a probation attempt did not hold). An open circuit allows one
probation attempt after its cooldown (doubling after each failed probation;
never with a cooldown of 0) and closes once the service has stayed healthy
for ``reset_after``, or when an operator resets it. Open circuits survive a
restart of the daemon: they are read back from the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from medic.core.vocabulary import CircuitState, HoldReason
from medic.heal.admission import Guardrails
from medic.heal.recording import HealRecorder
from medic.heal.state import HealState
from medic.watch.state import ServiceState

WakeAt = Callable[[str, float], None]
"""Asks for a check of the named service at a monotonic time."""


@dataclass(frozen=True)
class OpenedBefore:
    """A circuit the audit trail says was open when the daemon last stopped."""

    service: str
    opened_at: float
    """Monotonic, as the wall clock read at start."""
    detail: str | None


class Circuits:
    def __init__(self, guardrails: Guardrails, recorder: HealRecorder, wake_at: WakeAt) -> None:
        self._guardrails = guardrails
        self._recorder = recorder
        self._wake_at = wake_at

    def open(self, state: ServiceState, heal: HealState, detail: str, now: float) -> None:
        cooldown = self._mark_open(state, heal, now)
        self._recorder.circuit_opened(
            state.name, detail, state.failure_type, heal.probation_due_at, cooldown
        )
        self._recorder.held(state.name, HoldReason.CIRCUIT_OPEN, detail, publish=False)
        if heal.probation_due_at is not None:
            self._wake_at(state.name, heal.probation_due_at)

    def _mark_open(self, state: ServiceState, heal: HealState, opened_at: float) -> float | None:
        """The circuit is open since ``opened_at``; returns the cooldown."""
        heal.circuit = CircuitState.OPEN
        heal.next_attempt_at = None
        cooldown = self._guardrails.cooldown_after(heal.failed_probations, state.spec.policy)
        heal.probation_due_at = None if cooldown is None else opened_at + cooldown
        return cooldown

    def begin_probation(self, name: str, heal: HealState, recovery_id: int) -> None:
        heal.circuit = CircuitState.PROBATION
        self._recorder.circuit_probation(name, recovery_id)

    def probation_failed(
        self, state: ServiceState, heal: HealState, detail: str, now: float
    ) -> None:
        heal.failed_probations += 1
        self.open(state, heal, detail, now)

    def close(self, name: str, heal: HealState, reason: str) -> None:
        heal.probation_due_at = None
        heal.failed_probations = 0
        if heal.circuit is CircuitState.CLOSED:
            return
        heal.circuit = CircuitState.CLOSED
        self._recorder.circuit_closed(name, reason)

    def on_healthy_check(self, state: ServiceState, heal: HealState, now: float) -> None:
        """Close an open or probation circuit once the service has stayed healthy."""
        if heal.circuit is CircuitState.CLOSED or state.healthy_since is None:
            return
        if self._guardrails.attempts_given_back(state, now):
            heal.forget_attempts()
            self.close(state.name, heal, f"healthy for {state.spec.policy.reset_after:g}s")

    def reopen(
        self, state: ServiceState, heal: HealState, before: OpenedBefore, now: float
    ) -> None:
        """A circuit that was open when the daemon stopped is open again."""
        self._mark_open(state, heal, before.opened_at)
        if heal.probation_due_at is not None:
            heal.probation_due_at = max(now, heal.probation_due_at)
        self._recorder.circuit_reopened(before.service, before.detail)


def still_open(latest_first: Iterable[tuple[str, str, float, str | None]]) -> list[OpenedBefore]:
    """The circuits whose last word in the audit trail (kind, service, at, detail;
    newest first) is ``circuit.opened``."""
    seen: set[str] = set()
    found = []
    for kind, service, at, detail in latest_first:
        if service in seen:
            continue
        seen.add(service)
        if kind == "circuit.opened":
            found.append(OpenedBefore(service, at, detail))
    return found
