"""Per-service health state: thresholds, grace periods, and the status it implies."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from medic.config.models import ServiceSpec
from medic.core.vocabulary import CircuitState, FailureType, ServiceStatus
from medic.watch.checks.base import CheckResult

_FAILING = frozenset({ServiceStatus.UNHEALTHY, ServiceStatus.RECOVERING, ServiceStatus.HELD})
"""Built once: the blast-radius rule asks every service's ``is_failing`` on each failed check."""


@dataclass(frozen=True)
class Transition:
    service: str
    old: ServiceStatus
    new: ServiceStatus
    failure_type: FailureType | None
    detail: str


@dataclass
class LastCheck:
    at: datetime
    duration_s: float
    result: CheckResult

    def as_dict(self) -> dict[str, object]:
        return {
            "time": self.at.isoformat(),
            "duration": round(self.duration_s, 4),  # design.md's name, in seconds
            "duration_seconds": round(self.duration_s, 4),
            "healthy": self.result.healthy,
            "failure_type": self.result.failure_type,
            "detail": self.result.detail,
        }


@dataclass
class ServiceState:
    spec: ServiceSpec
    status: ServiceStatus = ServiceStatus.UNKNOWN
    failure_type: FailureType | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_check: LastCheck | None = None
    grace_until: float = 0.0
    """Monotonic time before which ordinary failures do not count (start_period)."""
    circuit: CircuitState = CircuitState.CLOSED
    attempts: deque[float] = field(default_factory=deque)
    """Wall-clock times of recovery attempts inside the current window."""
    next_attempt_at: float | None = None
    probation_due_at: float | None = None
    """When an open circuit allows its next probation attempt; None = never."""
    failed_probations: int = 0
    healthy_since: float | None = None
    """Start of the current healthy spell; None while not healthy."""
    unhealthy_since: float | None = None
    """Start of the current failure episode; None while healthy."""
    recovering: bool = False
    held_reason: str | None = None
    rejected: str | None = None
    """Why an operator's reject holds automatic recovery (until healthy or reset)."""
    status_since: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.spec.name

    def start_grace(self, now_mono: float | None = None) -> None:
        """Begin the service's start_period (at daemon start and after each restart)."""
        now_mono = time.monotonic() if now_mono is None else now_mono
        self.grace_until = now_mono + self.spec.start_period_s

    def observe(self, result: CheckResult, now_mono: float | None = None) -> Transition | None:
        """Count one check result; return the status change it causes, if any."""
        now_mono = time.monotonic() if now_mono is None else now_mono
        if result.healthy:
            return self._observe_success(result)
        if result.failure_type is None:
            return None  # cannot tell (e.g. Docker unreachable): neither count nor act
        return self._observe_failure(result, now_mono)

    def _observe_success(self, result: CheckResult) -> Transition | None:
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if self.status is ServiceStatus.HEALTHY:
            return None
        enough = self.consecutive_successes >= self.spec.success_threshold
        if self.status is ServiceStatus.UNKNOWN or (enough and self._may_change()):
            return self._move(ServiceStatus.HEALTHY, None, result.detail)
        return None

    def _observe_failure(self, result: CheckResult, now_mono: float) -> Transition | None:
        self.consecutive_successes = 0
        if self.status is ServiceStatus.STOPPED_BY_OPERATOR:
            return None  # stopped on purpose: failing checks are expected
        if now_mono < self.grace_until and not result.definitive:
            return None
        self.consecutive_failures += 1
        self.failure_type = result.failure_type
        tripped = result.definitive or self.consecutive_failures >= self.spec.failure_threshold
        if tripped and self.status in (ServiceStatus.UNKNOWN, ServiceStatus.HEALTHY):
            return self._move(ServiceStatus.UNHEALTHY, result.failure_type, result.detail)
        return None

    def _may_change(self) -> bool:
        # While a recovery runs, its outcome decides the status, not single checks.
        return not self.recovering

    def set_status(
        self, status: ServiceStatus, detail: str = "", failure_type: FailureType | None = None
    ) -> Transition | None:
        if status is self.status:
            return None
        return self._move(status, failure_type, detail)

    def _move(
        self, status: ServiceStatus, failure_type: FailureType | None, detail: str
    ) -> Transition:
        old = self.status
        now = time.time()
        spell = now - self.healthy_since if self.healthy_since is not None else 0.0
        if old is ServiceStatus.HEALTHY and spell >= self.spec.policy.reset_after:
            self.forget_attempts()
        self.status = status
        self.status_since = now
        self.healthy_since = now if status is ServiceStatus.HEALTHY else None
        if status is ServiceStatus.HEALTHY:
            self.unhealthy_since = None
        elif self.unhealthy_since is None and status is not ServiceStatus.STOPPED_BY_OPERATOR:
            self.unhealthy_since = now
        if status is ServiceStatus.HEALTHY:
            self.failure_type = None
            self.held_reason = None
            self.rejected = None
        elif failure_type is not None:
            self.failure_type = failure_type
        return Transition(self.name, old, status, self.failure_type, detail)

    def forget_attempts(self) -> None:
        """Attempts and backoff start over (after ``reset_after`` healthy, or a reset)."""
        self.attempts.clear()
        self.next_attempt_at = None
        self.failed_probations = 0

    @property
    def is_failing(self) -> bool:
        return self.status in _FAILING

    def _next_attempt(self) -> float | None:
        if self.circuit is CircuitState.OPEN:
            return self.probation_due_at
        return self.next_attempt_at

    def as_dict(self) -> dict[str, object]:
        spec = self.spec
        return {
            "name": spec.name,
            "description": spec.description,
            "status": self.status.value,
            "failure_type": self.failure_type,
            "circuit": self.circuit.value,
            "check_type": spec.check.type,
            "interval_seconds": spec.interval_s,
            "consecutive_failures": self.consecutive_failures,
            "recovering": self.recovering,
            "held_reason": self.held_reason,
            "last_check": self.last_check.as_dict() if self.last_check else None,
            "next_attempt_at": _iso(self._next_attempt()),
            "probation_at": _iso(self.probation_due_at),
            "attempts_in_window": len(self.attempts),
            "status_since": _iso(self.status_since),
            "container": spec.container,
            "unit": spec.unit,
            "depends_on": list(spec.depends_on),
        }


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
