"""The JSON schemas generated from types: the answers built from the store's
records (Recovery, RecoveryStep, WorkflowRun, WorkflowStep, AuditEntry, a
workflow's counts), the workflow config inside a workflow's answer, and the
Alertmanager payload that ``POST /api/v1/alerts`` reads.

pydantic's ``TypeAdapter`` writes them; this module names them (a record's
type without ``Record``, an action's ``Options`` after its action:
``RunCommandStep``), tidies them to the document's conventions (no titles;
objects allow extra properties, so a field added later breaks no client;
each enum has an example) and gives each answer its example. A record's
example is a record, so it is exactly the JSON ``as_json()`` answers with.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from medic.api._schema_base import T0, T1, Schema
from medic.api.alerts import AlertPayload
from medic.config.models import WorkflowConfig
from medic.core.vocabulary import (
    FailureType,
    RecoveryOutcome,
    StepOutcome,
    Trigger,
    WorkflowOutcome,
)
from medic.store import (
    AuditEntry,
    EvidenceRecord,
    HealthProbeRecord,
    RecoveryRecord,
    RecoveryStepRecord,
    WorkflowCounts,
    WorkflowRunRecord,
    WorkflowStepRecord,
)

_REF = "#/components/schemas/{model}"
_VERBATIM = ("default", "enum", "const", "example", "examples")
"""Keywords whose values are data, not schemas: kept as they are."""
_UNWRAPPED = re.compile(r"(?<!\n)\n(?!\n)")

# --- examples ------------------------------------------------------------------------

_STEP = RecoveryStepRecord(
    position=0,
    phase="steps",
    action="restart_container",
    description="restart container web",
    outcome=StepOutcome.SUCCEEDED,
    detail="restarted web in 0.41s",
    output="",
    started_at=T0,
    duration_seconds=0.4127,
)
RECOVERY_EXAMPLE = RecoveryRecord(
    id=7,
    service="web",
    failure_type=FailureType.SERVICE_CRASH,
    playbook="restart-container",
    trigger=Trigger.AUTO,
    outcome=RecoveryOutcome.SUCCEEDED,
    dry_run=False,
    started_at=T0,
    ended_at=T1,
    duration_seconds=1.83,
    detail="playbook restart-container completed",
    facts={"detail": "connection refused"},
    steps=(
        _STEP,
        replace(
            _STEP,
            position=1,
            action="wait_healthy",
            description="wait until web is healthy",
            detail="healthy after 1.4s",
            duration_seconds=1.4011,
        ),
    ),
    evidence=EvidenceRecord(
        container="web",
        gathered_at=T0,
        status="running",
        exit_code=0,
        oom_killed=False,
        health_status="unhealthy",
        health_log=(HealthProbeRecord("2026-01-01T12:00:00.0Z", 1, "curl: (7) Failed to connect"),),
        log="GET /healthz 500\npanic: pool exhausted\n",
        log_lines=2,
        notes=(),
    ),
)
_WORKFLOW_STEP = WorkflowStepRecord(
    name="extract",
    action="run_command",
    outcome=StepOutcome.SUCCEEDED,
    attempts=1,
    detail="exit 0",
    output="42 rows\n",
    started_at=T0,
    duration_seconds=1.2031,
)
WORKFLOW_RUN_EXAMPLE = WorkflowRunRecord(
    id=42,
    workflow="revenue-automation",
    trigger=Trigger.SCHEDULE,
    outcome=WorkflowOutcome.SUCCEEDED,
    started_at=T0,
    ended_at=T1,
    duration_seconds=1.83,
    detail="2 steps done",
    steps=(
        _WORKFLOW_STEP,
        replace(
            _WORKFLOW_STEP,
            name="load",
            action="http_request",
            detail="HTTP 200",
            output="",
            duration_seconds=0.5213,
        ),
    ),
)
AUDIT_EXAMPLE = AuditEntry(
    id=12,
    at=T0,
    kind="recovery.held",
    service="web",
    data={"reason": "backoff", "detail": "next attempt in 10s"},
)
COUNTS_EXAMPLE = WorkflowCounts(
    run_count=42, error_count=0, last_run=T0, last_outcome=WorkflowOutcome.SUCCEEDED
)

_EXAMPLES: dict[str, Any] = {
    "Recovery": RECOVERY_EXAMPLE.as_json(),
    "RecoveryStep": RECOVERY_EXAMPLE.steps[0].as_json(),
    "WorkflowRun": WORKFLOW_RUN_EXAMPLE.as_json(),
    "WorkflowStep": WORKFLOW_RUN_EXAMPLE.steps[0].as_json(),
    "AuditEntry": AUDIT_EXAMPLE.as_json(),
}

# --- generation ----------------------------------------------------------------------


class _Naming(GenerateJsonSchema):
    """``RecoveryRecord`` -> ``Recovery``; ``medic.heal.actions.run_command.Options``
    -> ``RunCommandStep`` (every action's options class is called ``Options``)."""

    def normalize_name(self, name: str) -> str:
        name = super().normalize_name(name)
        *module, last = name.split("__")
        if last == "Options" and module:
            return "".join(word.capitalize() for word in module[-1].split("_")) + "Step"
        return name.removesuffix("Record")


def _tidy(node: Any) -> Any:
    """The document's conventions: no titles, no ``additionalProperties: false``,
    descriptions as paragraphs."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    tidy: Schema = {}
    for key, value in node.items():
        if key == "title" or (key == "additionalProperties" and value is False):
            continue
        if key == "properties":
            tidy[key] = {name: _tidy(schema) for name, schema in value.items()}
        elif key == "description":
            tidy[key] = _UNWRAPPED.sub(" ", value)  # a docstring's lines become one paragraph
        else:
            tidy[key] = value if key in _VERBATIM else _tidy(value)
    return tidy


def _generate(types: list[Any], mode: JsonSchemaMode, *, by_alias: bool) -> dict[str, Schema]:
    _, top = TypeAdapter.json_schemas(
        [(t, mode, TypeAdapter(t)) for t in types],
        ref_template=_REF,
        schema_generator=_Naming,
        by_alias=by_alias,
    )
    schemas = {name: _tidy(schema) for name, schema in top.get("$defs", {}).items()}
    for schema in schemas.values():
        if "enum" in schema:
            schema["example"] = schema["enum"][0]
    return schemas


def typed_components() -> dict[str, Schema]:
    """Every generated schema by its component name, examples in (a new dict of
    the same schemas each time: they are generated once, and not to be changed).

    Answers are generated as they are serialized (a workflow's config as its
    ``model_dump``, by field name); the Alertmanager payload as it is read
    (by alias: ``startsAt``, ``groupKey``)."""
    return dict(_typed_components())


@cache
def _typed_components() -> dict[str, Schema]:
    answers = _generate(
        [RecoveryRecord, WorkflowRunRecord, AuditEntry, WorkflowCounts, WorkflowConfig],
        "serialization",
        by_alias=False,
    )
    payload = _generate([AlertPayload], "validation", by_alias=True)
    payload["AlertmanagerPayload"] = payload.pop("AlertPayload")
    clashes = sorted(name for name in payload if answers.get(name, payload[name]) != payload[name])
    if clashes:
        raise ValueError(f"two generated schemas share the names {clashes}")
    schemas = {**answers, **payload}
    for name, example in _EXAMPLES.items():
        schemas[name]["example"] = example
    return schemas
