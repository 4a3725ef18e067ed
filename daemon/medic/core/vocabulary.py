"""The fixed vocabulary every stage speaks: failure types, service statuses,
circuit states, recovery, step and workflow run outcomes, triggers and hold
reasons.

Each is a ``StrEnum``, so a value is its own JSON and SQLite spelling.
"""

from __future__ import annotations

from enum import StrEnum


class FailureType(StrEnum):
    """The fixed vocabulary of design.md."""

    SERVICE_CRASH = "service_crash"
    CONNECTION_TIMEOUT = "connection_timeout"
    NETWORK_FAILURE = "network_failure"
    DATABASE_CONNECTION = "database_connection"
    MEMORY_LEAK = "memory_leak"
    UNHEALTHY_RESPONSE = "unhealthy_response"
    DISK_FULL = "disk_full"
    MEMORY_PRESSURE = "memory_pressure"
    CPU_SATURATION = "cpu_saturation"
    DEPENDENCY_FAILURE = "dependency_failure"


class ServiceStatus(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    RECOVERING = "recovering"
    HELD = "held"
    STOPPED_BY_OPERATOR = "stopped_by_operator"
    DISABLED = "disabled"
    """``enabled: false`` in the config: listed, never checked."""
    PAUSED = "paused"
    """In maintenance (``medic pause``, a ``maintenance:`` window): checked, never healed.
    Shown by the API; the checks' own status goes on underneath."""


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PROBATION = "probation"


class RecoveryOutcome(StrEnum):
    """A recovery's status in the history; all but the first two are how it ended."""

    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    UNRESOLVED = "unresolved"
    """Every step worked, but the service still fails its check."""
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    DRY_RUN = "dry_run"
    FENCED_OUT = "fenced_out"
    """A shared service's heal whose fleet lock was lost (its lease expired,
    e.g. the daemon was frozen): it stopped before its next step."""

    @property
    def finished(self) -> bool:
        return self not in (RecoveryOutcome.RUNNING, RecoveryOutcome.WAITING_APPROVAL)


class StepOutcome(StrEnum):
    """How one playbook or workflow step ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    DRY_RUN = "dry_run"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """A workflow step cut off by the daemon stopping."""

    @property
    def ok(self) -> bool:
        return self in (StepOutcome.SUCCEEDED, StepOutcome.DRY_RUN, StepOutcome.SKIPPED)


class WorkflowOutcome(StrEnum):
    """A workflow run's status in the history; all but ``running`` are how it ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """Cut off by a daemon stop or crash."""


class Trigger(StrEnum):
    """Who or what started a recovery or a workflow run."""

    AUTO = "auto"
    """medic's own checks (and Docker's events)."""
    ALERT = "alert"
    """An Alertmanager notification."""
    MANUAL = "manual"
    """The Python API (``auto_recover``, ``remediate``) or ``workflows start``."""
    API = "api"
    CLI = "cli"
    SCHEDULE = "schedule"

    @property
    def by_operator(self) -> bool:
        """An operator asking is the approval; it does not use up ``max_attempts``."""
        return self in (Trigger.MANUAL, Trigger.API, Trigger.CLI)


class HoldReason(StrEnum):
    """Why an automatic recovery did not run (``recovery.held`` and the audit)."""

    OPERATOR_STOP = "operator_stop"
    REJECTED = "rejected"
    DEPENDENCY = "dependency"
    BLAST_RADIUS = "blast_radius"
    CIRCUIT_OPEN = "circuit_open"
    BACKOFF = "backoff"
    BUDGET = "budget"
    ALREADY_RECOVERING = "already_recovering"
    SHUTTING_DOWN = "shutting_down"
    MAINTENANCE = "maintenance"
    HEALED_ELSEWHERE = "healed_elsewhere"
    """A ``shared: true`` service another host of the fleet is healing."""
    FLEET_CONCURRENCY = "fleet_concurrency"
    """No disruptive-action slot of the group came free in time."""
    FLEET_HOLD = "fleet_hold"
    """Emergency stop, or too many hosts of the group failing at once."""
    FLEET_UNAVAILABLE = "fleet_unavailable"
    """etcd cannot be reached: shared and fleet-limited actions never run unfenced."""
