"""What the heal side and the workflows hand the history for each step they
ran: one value each, so the port that takes it and the store that writes it
do not repeat a ten-argument signature."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecoveryStepEntry:
    """One step of a recovery (``phase`` ``steps`` or ``on_failure``, in order)."""

    position: int
    phase: str
    action: str
    description: str
    outcome: str
    detail: str
    output: str
    started_at: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class WorkflowStepEntry:
    """One step of a workflow run, after its retries (``started_at`` is the first try's)."""

    name: str
    action: str
    outcome: str
    attempts: int
    detail: str
    output: str
    started_at: float | None
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class Pause:
    """A service in maintenance: until when (None: until resumed), why and who
    paused it (a token's or operator's name, ``cli``, ``window``)."""

    service: str
    until: float | None
    reason: str
    by: str
    started_at: float


@dataclass(frozen=True, slots=True)
class HealthProbe:
    """One HEALTHCHECK run as Docker kept it (``State.Health.Log``)."""

    start: str
    exit_code: int
    output: str


@dataclass(frozen=True, slots=True)
class ContainerEvidence:
    """What a container showed before a recovery acted on it: what a restart
    or a recreate loses (the state) and what an operator wants to read (the
    log's tail), secrets masked."""

    container: str
    gathered_at: float
    """``time.time()`` when it was asked for, before any step ran."""
    status: str | None
    exit_code: int | None
    oom_killed: bool | None
    health_status: str | None
    health_log: tuple[HealthProbe, ...]
    log: str
    """The last lines of its log (stdout and stderr), at most ``LOG_BYTES``."""
    log_lines: int
    notes: tuple[str, ...] = ()
    """What could not be kept, and why (the engine did not answer in time...)."""
