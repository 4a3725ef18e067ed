"""Per-service health state: thresholds, grace periods, and the status it implies.

What the heal side keeps about a service (attempts, circuit, holds) is its own
(``medic.heal.state``); this is what a check tells."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from medic.config.models import ServiceSpec
from medic.core.vocabulary import FailureType, ServiceStatus
from medic.watch.checks.base import CheckResult

RECENT_CHECKS = 60
"""Each service keeps its last this many check results in memory (the page's strip)."""

_FAILING = frozenset({ServiceStatus.UNHEALTHY, ServiceStatus.RECOVERING, ServiceStatus.HELD})
"""Built once: the blast-radius rule asks every service's ``is_failing`` on each failed check."""


@dataclass(frozen=True)
class Transition:
    service: str
    old: ServiceStatus
    new: ServiceStatus
    failure_type: FailureType | None
    detail: str
    healthy_for_s: float | None = None
    """How long the service had been healthy when it left that status (None otherwise)."""

    def as_event(self) -> dict[str, object]:
        """The ``service.state`` event's fields."""
        return {
            "service": self.service,
            "old": self.old.value,
            "new": self.new.value,
            "failure_type": self.failure_type.value if self.failure_type else None,
            "detail": self.detail,
        }


@dataclass(slots=True)
class LastCheck:
    """One check's result as kept (the last ``RECENT_CHECKS`` per service): slotted,
    so each is one object for the garbage collector to scan, not two (with its
    ``__dict__``); with 10,000 services they are most of what it scans."""

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
    recent_checks: deque[LastCheck] = field(default_factory=lambda: deque(maxlen=RECENT_CHECKS))
    """The last ``RECENT_CHECKS`` results, oldest first (memory only, never the store)."""
    grace_until: float = 0.0
    """Monotonic time before which ordinary failures do not count (start_period)."""
    healthy_since: float | None = None
    """Start of the current healthy spell (monotonic); None while not healthy."""
    unhealthy_since: float | None = None
    """Start of the current failure episode (monotonic); None while healthy."""
    recovering: bool = False
    """A recovery owns the status while it runs: single checks do not change it."""
    recovery_ended_mono: float = 0.0
    """Monotonic time the last recovery ended: a check that began before it
    probed medic's own restart, not the service as it is now."""
    status_since: float = field(default_factory=time.time)
    """Wall-clock time of the last status change (shown, never measured)."""
    tally: WatchedStates | None = field(default=None, repr=False, compare=False)
    """The monitor's mapping this state belongs to: told of each change."""

    @property
    def name(self) -> str:
        return self.spec.name

    def record_check(self, check: LastCheck) -> None:
        self.last_check = check
        self.recent_checks.append(check)

    def start_grace(self, now_mono: float | None = None) -> None:
        """Begin the service's start_period (at daemon start and after each restart)."""
        now_mono = time.monotonic() if now_mono is None else now_mono
        self.grace_until = now_mono + self.spec.start_period_s

    def end_recovery(self, now_mono: float | None = None) -> None:
        self.recovering = False
        self.recovery_ended_mono = time.monotonic() if now_mono is None else now_mono

    def began_during_recovery(self, started_mono: float) -> bool:
        """Whether a probe that started at ``started_mono`` overlapped a recovery."""
        return self.recovering or started_mono < self.recovery_ended_mono

    def observe(self, result: CheckResult, now_mono: float | None = None) -> Transition | None:
        """Count one check result; return the status change it causes, if any."""
        if (
            result.healthy
            and self.status is ServiceStatus.HEALTHY
            and self.consecutive_failures == 0
            and self.failure_type is None
        ):
            # Healthy again, as before (nearly every check): nothing the tally
            # counts, nor the status, changes.
            self.consecutive_successes += 1
            return None
        now_mono = time.monotonic() if now_mono is None else now_mono
        if result.healthy:
            transition = self._observe_success(result)
        elif result.failure_type is None:
            return None  # cannot tell (e.g. Docker unreachable): neither count nor act
        else:
            transition = self._observe_failure(result, now_mono)
        if self.tally is not None:
            self.tally.refresh(self)
        return transition

    def _observe_success(self, result: CheckResult) -> Transition | None:
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if self.status is ServiceStatus.HEALTHY:
            self.failure_type = None
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
        if self.recovering:
            # medic's own restart passing through: it neither changes the status
            # nor the failure type the recovery was started for.
            return None
        self.consecutive_failures += 1
        # Below the threshold too: the blast-radius rule tells a service failing
        # on its own from one failing for its dependency by this; the next
        # passing check clears it.
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
        now = time.monotonic()
        spell = now - self.healthy_since if self.healthy_since is not None else None
        self.status = status
        self.status_since = time.time()
        self.healthy_since = now if status is ServiceStatus.HEALTHY else None
        if status is ServiceStatus.HEALTHY:
            self.unhealthy_since = None
        elif self.unhealthy_since is None and status is not ServiceStatus.STOPPED_BY_OPERATOR:
            self.unhealthy_since = now
        if status is ServiceStatus.HEALTHY:
            self.failure_type = None
        elif failure_type is not None:
            self.failure_type = failure_type
        healthy_for = spell if old is ServiceStatus.HEALTHY else None
        if self.tally is not None:
            self.tally.refresh(self)
        return Transition(self.name, old, status, self.failure_type, detail, healthy_for)

    @property
    def is_failing(self) -> bool:
        return self.status in _FAILING

    @property
    def failing_on_its_own(self) -> bool:
        """Failing now for a reason of its own: unhealthy, or its latest probe failed.

        Counting a failed latest probe, not only a crossed threshold, lets a
        host-wide problem show while the checks (each in its own phase of the
        interval) are still counting towards their thresholds.
        """
        failing = self.status in _FAILING or self.consecutive_failures > 0
        return failing and self.failure_type is not FailureType.DEPENDENCY_FAILURE

    def as_dict(self) -> dict[str, object]:
        spec = self.spec
        return {
            "name": spec.name,
            "description": spec.description,
            "status": self.status.value,
            "failure_type": self.failure_type,
            "check_type": spec.check.type,
            "interval_seconds": spec.interval_s,
            "consecutive_failures": self.consecutive_failures,
            "recovering": self.recovering,
            "last_check": self.last_check.as_dict() if self.last_check else None,
            "status_since": _iso(self.status_since),
            "container": spec.container,
            "unit": spec.unit,
            "depends_on": list(spec.depends_on),
            "source": spec.source,
        }


class WatchedStates(dict[str, ServiceState]):
    """The monitor's states by name, with the names of those failing on their own
    and of those stopped by an operator kept up to date as they change.

    The blast-radius rule counts both on every failed check of every service:
    with 10,000 services a pass over all of them each time kept the loop busy
    for good once a thousand failed together. A state tells its mapping of each
    change (``observe``, a status move); one no longer in the mapping (removed
    by a reload while its check ran) changes nothing here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.own: set[str] = set()
        """Services failing on their own (``ServiceState.failing_on_its_own``)."""
        self.stopped: set[str] = set()
        """Services stopped by an operator."""

    def __setitem__(self, name: str, state: ServiceState) -> None:
        super().__setitem__(name, state)
        state.tally = self
        self.refresh(state)

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self.own.discard(name)
        self.stopped.discard(name)

    def pop(self, name: str, default: ServiceState | None = None) -> ServiceState | None:  # type: ignore[override]
        if name in self:
            state = self[name]
            del self[name]
            return state
        return default

    def refresh(self, state: ServiceState) -> None:
        name = state.name
        if self.get(name) is not state:
            return
        _mark(self.own, name, state.failing_on_its_own)
        _mark(self.stopped, name, state.status is ServiceStatus.STOPPED_BY_OPERATOR)


def _mark(names: set[str], name: str, present: bool) -> None:
    if present:
        names.add(name)
    else:
        names.discard(name)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
