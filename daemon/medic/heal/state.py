"""What the heal side keeps about each service: attempts, backoff, circuit, holds.

The watch side's ``ServiceState`` says what the checks tell (status,
thresholds, the last result); this says what healing it has cost and what
holds it back. A service replaced by a reload starts both afresh.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from medic.core.clock import iso_mono
from medic.core.vocabulary import CircuitState

if TYPE_CHECKING:
    from medic.watch.checks.base import CheckResult
    from medic.watch.state import ServiceState, Transition


@dataclass
class HealState:
    circuit: CircuitState = CircuitState.CLOSED
    attempts: deque[float] = field(default_factory=deque)
    """Monotonic times of the automatic recoveries that count, oldest first."""
    next_attempt_at: float | None = None
    """The end of the backoff after a failed attempt (monotonic)."""
    probation_due_at: float | None = None
    """When an open circuit allows its next probation attempt (monotonic); None = never."""
    failed_probations: int = 0
    held_reason: str | None = None
    rejected: str | None = None
    """Why an operator's reject holds automatic recovery (until healthy or reset)."""

    def forget_attempts(self) -> None:
        """Attempts and backoff start over (after ``reset_after`` healthy, or a reset)."""
        self.attempts.clear()
        self.next_attempt_at = None
        self.failed_probations = 0

    def next_attempt(self) -> float | None:
        if self.circuit is CircuitState.OPEN:
            return self.probation_due_at
        return self.next_attempt_at

    def as_dict(self) -> dict[str, object]:
        """The heal side's fields of ``GET /api/v1/services/{name}``."""
        return {
            "circuit": self.circuit.value,
            "held_reason": self.held_reason,
            "next_attempt_at": iso_mono(self.next_attempt()),
            "probation_at": iso_mono(self.probation_due_at),
            "attempts_in_window": len(self.attempts),
        }


class HealBook:
    """Each watched service's ``HealState``, keyed by the watch side's state object."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[ServiceState, HealState]] = {}

    def of(self, state: ServiceState) -> HealState:
        entry = self._entries.get(state.name)
        if entry is not None and entry[0] is state:
            return entry[1]
        heal = HealState()
        self._entries[state.name] = (state, heal)
        return heal


class ServiceSource(Protocol):
    """What the heal side asks of the watch side (the monitor)."""

    def state(self, name: str) -> ServiceState: ...

    def states(self) -> Mapping[str, ServiceState]: ...

    async def probe_now(self, name: str) -> CheckResult: ...

    async def probe_fresh(self, name: str) -> CheckResult: ...

    def request_check(self, name: str, delay_s: float = 0.0) -> None: ...

    def apply_transition(self, transition: Transition | None) -> None: ...
