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
