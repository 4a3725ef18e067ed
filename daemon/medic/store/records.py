"""What the store's reads return: frozen records, one type per kind of row.

A record's fields are the API's JSON keys, in the API's order, with Python
types: aware UTC datetimes for times, the vocabulary's enums for statuses,
outcomes and triggers, tuples of records for steps. ``as_json()`` gives the
exact JSON object the API has always answered with (ISO 8601 text for times,
plain strings for enums), and ``medic.api`` derives the OpenAPI schemas from
these types, so the answer, its record and its schema cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from annotated_types import Ge

from medic.core.vocabulary import (
    FailureType,
    RecoveryOutcome,
    StepOutcome,
    Trigger,
    WorkflowOutcome,
)

Count = Annotated[int, Ge(0)]
"""A count or a position: never negative."""
RowId = Annotated[int, Ge(1)]
"""A row's id (SQLite numbers rows from 1)."""
Seconds = Annotated[float, Ge(0)]
Phase = Literal["steps", "on_failure"]
"""Which list of a playbook a recovery step came from."""


def _json(value: Any) -> Any:
    if isinstance(value, JsonRecord):
        return value.as_json()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


class JsonRecord:
    """A record the API answers with: its fields, in order, as JSON values."""

    __slots__ = ()

    def as_json(self) -> dict[str, Any]:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RecoveryStepRecord(JsonRecord):
    """One step of a recovery, as it ran."""

    position: Count
    """0, 1, ... in ``steps``; ``on_failure`` steps count from 100."""
    phase: Phase
    action: str
    description: str | None
    outcome: StepOutcome
    detail: str | None
    output: str | None
    """The last 4 KiB of what the step printed."""
    started_at: datetime
    duration_seconds: Seconds | None


@dataclass(frozen=True, slots=True)
class HealthProbeRecord(JsonRecord):
    """One HEALTHCHECK run as Docker kept it."""

    start: str
    exit_code: int
    output: str


@dataclass(frozen=True, slots=True)
class EvidenceRecord(JsonRecord):
    """What the container showed before the recovery acted on it: what a restart
    or a recreate loses. Secrets medic knows are masked (``***``)."""

    container: str
    gathered_at: datetime
    status: str | None
    """Docker's state then: exited, running, restarting..."""
    exit_code: int | None
    oom_killed: bool | None
    health_status: str | None
    health_log: tuple[HealthProbeRecord, ...]
    """Docker's last HEALTHCHECK runs, oldest first."""
    log: str
    """The last lines of its log (stdout and stderr interleaved), at most 50 lines and 8 KiB."""
    log_lines: Count
    notes: tuple[str, ...]
    """What could not be kept, and why (e.g. the engine did not answer in time)."""


@dataclass(frozen=True, slots=True)
class RecoveryRecord(JsonRecord):
    """One recovery of a service: its playbook, trigger, outcome and steps."""

    id: RowId
    service: str
    failure_type: FailureType | None
    playbook: str
    trigger: Trigger
    outcome: RecoveryOutcome
    dry_run: bool
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: Seconds | None
    detail: str | None
    facts: Mapping[str, Any]
    """What medic knew when it started (the failing check's detail, ...)."""
    steps: tuple[RecoveryStepRecord, ...]
    evidence: EvidenceRecord | None = None
    """What the container showed before the recovery acted on it (None: the
    playbook did not act on a container, or nothing could be read)."""

    def summary_json(self) -> dict[str, Any]:
        """The recovery as ``get_system_status()["recovery_history"]`` lists it."""
        full = self.as_json()
        return {key: full[key] for key in RECOVERY_SUMMARY}


RECOVERY_SUMMARY = (
    "id",
    "service",
    "failure_type",
    "playbook",
    "outcome",
    "started_at",
    "duration_seconds",
    "trigger",
    "dry_run",
)
"""The keys of ``RecoveryRecord.summary_json()``, in order."""


@dataclass(frozen=True, slots=True)
class RecoveryStart:
    """A recovery's start, as the guardrails count attempts (not an API answer)."""

    service: str
    at: float
    """``time.time()`` of the start: the guardrails' clock."""
    trigger: Trigger
    dry_run: bool
    outcome: RecoveryOutcome


@dataclass(frozen=True, slots=True)
class WorkflowStepRecord(JsonRecord):
    """One step of a workflow run, after its retries."""

    name: str
    action: str
    outcome: StepOutcome
    attempts: Count
    detail: str | None
    output: str | None
    """The last 4 KiB of what the step printed."""
    started_at: datetime | None
    """None for a step that never started (``skipped``)."""
    duration_seconds: Seconds | None


@dataclass(frozen=True, slots=True)
class WorkflowRunRecord(JsonRecord):
    """One run of a workflow, with its steps."""

    id: RowId
    workflow: str
    trigger: Trigger
    outcome: WorkflowOutcome
    started_at: datetime
    """When the run got its slot (a queued run: when it was asked for, until then)."""
    ended_at: datetime | None
    duration_seconds: Seconds | None
    detail: str | None
    steps: tuple[WorkflowStepRecord, ...]


@dataclass(frozen=True, slots=True)
class WorkflowCounts(JsonRecord):
    """A workflow's run history in numbers."""

    run_count: Count
    error_count: Count
    """Runs that failed or timed out."""
    last_run: datetime | None
    """When the latest run started."""
    last_outcome: WorkflowOutcome | None
    """How the latest finished run ended."""


NO_RUNS = WorkflowCounts(run_count=0, error_count=0, last_run=None, last_outcome=None)


@dataclass(frozen=True, slots=True)
class AuditEntry(JsonRecord):
    """One entry of the audit trail: an operator's call or a held action."""

    id: RowId
    at: datetime
    kind: str
    """``operator.recover``, ``recovery.held``, ``circuit.opened``..."""
    service: str | None
    data: Mapping[str, Any]
    """The entry's details; ``who`` names the operator of a control call."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A step command's session recorded as running (not an API answer)."""

    pid: int
    start_time: int
    """The leader's start time in clock ticks since boot: tells a reused pid apart."""
    command: str | None
    kill_grace: float
    recovery_id: int | None
    run_id: int | None
    recorded_at: datetime
