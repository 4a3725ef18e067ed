"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/v1/openapi.json``.

``OPERATIONS`` is the catalogue: one entry per method and path, naming its
parameters, request body, success response and the errors it can answer
with. ``build_document`` turns it into the document, keeping only the
operations the running app has routes for, so the document never promises
an endpoint that is not there. The schemas live in ``medic.api._schemas``.
Tests check that every route of the app is documented, that every example
validates, and that real responses validate against their schemas.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from medic.api._schema_base import Schema, ref
from medic.api._schemas import components

OPENAPI_PATH = "/api/v1/openapi.json"
API_VERSION = "1"
BEARER = "bearerAuth"

_JSON = "application/json"

# One example error per code; ``Operation.errors`` picks codes by status.
ERROR_EXAMPLES: dict[str, str] = {
    "INVALID_JSON": "the body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
    "INVALID_QUERY": "limit must be between 0 and 1000",
    "UNAUTHORIZED": "missing or wrong bearer token",
    "CONTROL_DISABLED": "control endpoints are disabled: no API token is configured;"
    " set the MEDIC_API_TOKEN environment variable",
    "SERVICE_NOT_FOUND": "no service named 'nope'",
    "WORKFLOW_NOT_FOUND": "no workflow registered as 'nope'",
    "RECOVERY_NOT_FOUND": "no recovery with id 99",
    "NOT_FOUND": "no such endpoint: GET /api/v1/nope",
    "RECOVERY_IN_PROGRESS": "a recovery of 'web' is already running",
    "NOT_WAITING_FOR_APPROVAL": "recovery 7 is not waiting for approval",
    "WORKFLOW_ALREADY_RUNNING": "workflow 'revenue-automation' is already running",
    "REQUEST_ENTITY_TOO_LARGE": "the body is larger than api.max_body_bytes (1048576 bytes)",
    "INVALID_BODY": "the body must be a JSON object",
    "INVALID_ALERT_PAYLOAD": "not an Alertmanager webhook payload: alerts: Field required",
    "CONFIG_INVALID": "the new config is invalid; the old one stays in force",
    "SHUTTING_DOWN": "the daemon is shutting down; no new workflow runs",
}

_STATUS_TEXT = {
    200: "OK",
    202: "Accepted",
    400: "Bad request: malformed JSON or query",
    401: "Missing or wrong bearer token",
    403: "Control endpoints are disabled: no API token is configured",
    404: "Not found",
    409: "Conflict with what is going on",
    413: "The body is larger than api.max_body_bytes",
    422: "The body is JSON but not acceptable",
    503: "The daemon is shutting down",
}

# Errors any POST can answer with (auth, body size); reads answer 401 only
# when ``api.auth_reads`` is on.
_CONTROL_ERRORS = {401: "UNAUTHORIZED", 403: "CONTROL_DISABLED", 413: "REQUEST_ENTITY_TOO_LARGE"}
_READ_ERRORS = {401: "UNAUTHORIZED"}
_BODY_ERRORS = {400: "INVALID_JSON", 422: "INVALID_BODY"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    schema: str | None
    """Success body: a component schema name (JSON), or None for a non-JSON body."""
    status: int = 200
    errors: dict[int, str] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    body: str | None = None
    media: str = _JSON
    description: str = ""

    @property
    def control(self) -> bool:
        return self.method == "POST"


def _get(path: str, summary: str, tag: str, schema: str | None, **kw: Any) -> Operation:
    errors = {**_READ_ERRORS, **kw.pop("errors", {})}
    return Operation("GET", path, summary, tag, schema, errors=errors, **kw)


def _post(path: str, summary: str, tag: str, schema: str, **kw: Any) -> Operation:
    errors = {**_CONTROL_ERRORS, **kw.pop("errors", {})}
    return Operation("POST", path, summary, tag, schema, errors=errors, **kw)


_SVC_404 = {404: "SERVICE_NOT_FOUND"}
_WF_404 = {404: "WORKFLOW_NOT_FOUND"}
_REC_404 = {404: "RECOVERY_NOT_FOUND"}

OPERATIONS: tuple[Operation, ...] = (
    _get("/", "The status page (self-contained HTML)", "daemon", None, media="text/html"),
    _get(
        "/metrics",
        "Prometheus metrics",
        "daemon",
        None,
        media="text/plain",
        params=("MetricNames",),
    ),
    _get(OPENAPI_PATH, "This document", "daemon", "OpenApiDocument"),
    Operation("GET", "/api/v1/health", "The daemon itself", "daemon", "Health"),
    _get("/api/v1/status", "The seed's system status", "daemon", "SystemStatus"),
    _get(
        "/api/v1/events",
        "Server-sent events: every state change as it happens",
        "daemon",
        None,
        media="text/event-stream",
        params=("LastEventIdHeader", "LastEventId"),
        errors={400: "INVALID_QUERY"},
        description="Each event: `id`, `event` (its name, e.g. `service.state`,"
        " `recovery.step`, `workflow.succeeded`, `config.reloaded`,"
        " `config.reload_failed`) and `data` (JSON: id, event, timestamp, data)."
        " The stream starts with `retry: 2000` (reconnect after 2 s). A client"
        " that reconnects with `Last-Event-ID: N` (or `?last_event_id=N`) first"
        " gets the events after N that the daemon still keeps (the last 1,000;"
        " a comment line says so when some were missed, or when N comes from an"
        " earlier run of the daemon), then live ones: none twice, none skipped."
        " A comment line keeps the stream alive every 15 s.",
    ),
    _post(
        "/api/v1/reload",
        "Re-read the config (same as SIGHUP)",
        "daemon",
        "ReloadResult",
        errors={422: "CONFIG_INVALID"},
    ),
    _get("/api/v1/services", "Every service's state", "services", "ServiceList"),
    _get(
        "/api/v1/services/{name}",
        "One service's state",
        "services",
        "Service",
        params=("ServiceName",),
        errors=_SVC_404,
    ),
    _post(
        "/api/v1/services/{name}/check",
        "Run the service's check now",
        "services",
        "CheckResult",
        params=("ServiceName",),
        errors=_SVC_404,
    ),
    _post(
        "/api/v1/services/{name}/recover",
        "Run the service's recovery now and wait for its end (the seed's auto_recover)",
        "services",
        "Recovery",
        params=("ServiceName",),
        body="RecoverRequest",
        errors={**_BODY_ERRORS, **_SVC_404, 409: "RECOVERY_IN_PROGRESS"},
        description="422 codes: INVALID_BODY (not an object, unknown key, dry_run not a"
        " boolean) and INVALID_FAILURE_TYPE.",
    ),
    _post(
        "/api/v1/services/{name}/reset",
        "Close an open circuit; attempts and backoff start over",
        "services",
        "Service",
        params=("ServiceName",),
        errors=_SVC_404,
    ),
    _get(
        "/api/v1/recoveries",
        "Recovery history, newest first, each with its steps",
        "recoveries",
        "RecoveryList",
        params=("ServiceFilter", "Limit50", "Offset"),
        errors={400: "INVALID_QUERY"},
    ),
    _get(
        "/api/v1/recoveries/{id}",
        "One recovery",
        "recoveries",
        "Recovery",
        params=("RecoveryId",),
        errors=_REC_404,
    ),
    _post(
        "/api/v1/recoveries/{id}/approve",
        "Approve a recovery that waits for approval",
        "recoveries",
        "Recovery",
        params=("RecoveryId",),
        errors={**_REC_404, 409: "NOT_WAITING_FOR_APPROVAL"},
        description="Answers once the recovery has resumed (its service `recovering`,"
        " the recovery `running`) or ended: the record as it stands then.",
    ),
    _post(
        "/api/v1/recoveries/{id}/reject",
        "Reject a recovery that waits for approval",
        "recoveries",
        "Recovery",
        params=("RecoveryId",),
        errors={**_REC_404, 409: "NOT_WAITING_FOR_APPROVAL"},
        description="Answers once the recovery has ended: outcome `rejected`, with its"
        " `detail` and `ended_at`, as a later GET shows it.",
    ),
    _get("/api/v1/workflows", "Every workflow", "workflows", "WorkflowList"),
    _get(
        "/api/v1/workflows/{id}",
        "One workflow: config, status, counts",
        "workflows",
        "Workflow",
        params=("WorkflowId",),
        errors=_WF_404,
    ),
    _post(
        "/api/v1/workflows/{id}/start",
        "Start a run now (and resume the schedule)",
        "workflows",
        "WorkflowStarted",
        status=202,
        params=("WorkflowId",),
        errors={**_WF_404, 409: "WORKFLOW_ALREADY_RUNNING", 503: "SHUTTING_DOWN"},
    ),
    _post(
        "/api/v1/workflows/{id}/stop",
        "Cancel the run in progress and pause the schedule",
        "workflows",
        "WorkflowStopped",
        params=("WorkflowId",),
        errors=_WF_404,
    ),
    _post(
        "/api/v1/workflows/{id}/run",
        "Run once now and wait for the end",
        "workflows",
        "WorkflowRun",
        params=("WorkflowId",),
        errors={**_WF_404, 409: "WORKFLOW_ALREADY_RUNNING", 503: "SHUTTING_DOWN"},
    ),
    _get(
        "/api/v1/workflows/{id}/runs",
        "Run history with per-step results",
        "workflows",
        "WorkflowRuns",
        params=("WorkflowId", "Limit20"),
        errors={**_WF_404, 400: "INVALID_QUERY"},
    ),
    _post(
        "/api/v1/alerts",
        "Alertmanager webhook receiver: labels `service` and `failure_type`",
        "recoveries",
        "AlertsResult",
        body="AlertmanagerPayload",
        errors={400: "INVALID_JSON", 422: "INVALID_ALERT_PAYLOAD"},
        description="Each firing alert whose `service` label names a watched service asks"
        " for its recovery under the guardrails. 422 codes: INVALID_ALERT_PAYLOAD,"
        " INVALID_BODY (not an object).",
    ),
    _get(
        "/api/v1/audit",
        "The audit trail: operator calls and held actions, newest first",
        "daemon",
        "AuditList",
        params=("AuditKind", "AuditService", "Limit100"),
        errors={400: "INVALID_QUERY"},
    ),
)


def _query_int(name: str, default: int, maximum: int, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": 0, "maximum": maximum, "default": default},
        "example": min(default, 10) if default else 0,
    }


def _path_param(name: str, schema: Schema, example: Any, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
        "example": example,
    }


def _parameters() -> dict[str, Schema]:
    return {
        "ServiceName": _path_param("name", {"type": "string"}, "web", "A service's name."),
        "WorkflowId": _path_param(
            "id", {"type": "string"}, "revenue-automation", "A workflow's id."
        ),
        "RecoveryId": _path_param(
            "id", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}, 7, "A recovery's id."
        ),
        "ServiceFilter": {
            "name": "service",
            "in": "query",
            "required": False,
            "description": "Only this service's recoveries.",
            "schema": {"type": "string"},
            "example": "web",
        },
        "MetricNames": {
            "name": "name[]",
            "in": "query",
            "required": False,
            "description": "Only these samples (repeat the parameter for more), e.g."
            " `medic_service_up` or `medic_check_duration_seconds_count`; all when absent.",
            "schema": {"type": "array", "items": {"type": "string"}},
            "style": "form",
            "explode": True,
            "example": ["medic_service_up"],
        },
        "AuditKind": {
            "name": "kind",
            "in": "query",
            "required": False,
            "description": "Exact kind (`operator.recover`) or a prefix ending in `.*`"
            " (`operator.*`).",
            "schema": {"type": "string"},
            "example": "operator.*",
        },
        "AuditService": {
            "name": "service",
            "in": "query",
            "required": False,
            "description": "Only this service's entries.",
            "schema": {"type": "string"},
            "example": "web",
        },
        "LastEventId": {
            "name": "last_event_id",
            "in": "query",
            "required": False,
            "description": "Resume after this event id (as the `Last-Event-ID` header does;"
            " the header wins when both are given).",
            "schema": {"type": "integer", "minimum": 0},
            "example": 42,
        },
        "LastEventIdHeader": {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "The last event id this client saw: sent by a reconnecting"
            " EventSource; the events after it that are still kept come first.",
            "schema": {"type": "integer", "minimum": 0},
            "example": 42,
        },
        "Limit20": _query_int("limit", 20, 1000, "At most this many runs."),
        "Limit50": _query_int("limit", 50, 1000, "At most this many recoveries."),
        "Limit100": _query_int("limit", 100, 1000, "At most this many entries."),
        "Offset": _query_int("offset", 0, 10**9, "Skip this many (newest first)."),
    }


_TEXT_EXAMPLES = {
    "text/html": '<!doctype html><html lang="en">...</html>',
    "text/plain": "# HELP medic_service_up 1 if the service's last state is healthy, else 0.\n"
    '# TYPE medic_service_up gauge\nmedic_service_up{service="web"} 1.0\n',
    "text/event-stream": 'id: 12\nevent: service.state\ndata: {"id": 12, "event":'
    ' "service.state", "timestamp": "2026-01-06T07:27:00+00:00", "data":'
    ' {"service": "web", "old": "healthy", "new": "unhealthy"}}\n\n',
}


def _content(op: Operation, schemas: dict[str, Schema]) -> dict[str, Any]:
    if op.schema is None:
        return {op.media: {"schema": {"type": "string"}, "example": _TEXT_EXAMPLES[op.media]}}
    return {op.media: {"schema": ref(op.schema), "example": schemas[op.schema]["example"]}}


def _error_response(status: int, code: str) -> dict[str, Any]:
    example = {"error": {"code": code, "message": ERROR_EXAMPLES[code]}}
    return {
        "description": _STATUS_TEXT[status],
        "content": {_JSON: {"schema": ref("Error"), "example": example}},
    }


def _operation(op: Operation, schemas: dict[str, Schema]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(op.status): {"description": _STATUS_TEXT[op.status], "content": _content(op, schemas)}
    }
    for status, code in sorted(op.errors.items()):
        responses[str(status)] = _error_response(status, code)
    doc: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if op.description:
        doc["description"] = op.description
    if op.params:
        doc["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in op.params]
    if op.body is not None:
        doc["requestBody"] = {
            "required": False,
            "content": {_JSON: {"schema": ref(op.body), "example": schemas[op.body]["example"]}},
        }
    doc["security"] = [{BEARER: []}] if op.control else []
    return doc


def _operation_id(op: Operation) -> str:
    words = [w.strip("{}") for w in op.path.split("/") if w and w not in ("api", "v1")]
    cleaned = "_".join(w.replace(".", "_") for w in words) or "status_page"
    return f"{op.method.lower()}_{cleaned}"


def _document_schema() -> Schema:
    return {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"type": "string"}, "info": {"type": "object"}},
        "example": {"openapi": "3.1.0", "info": {"title": "medic", "version": "1"}, "paths": {}},
    }


def build_document(routes: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The document; with ``routes`` ((METHOD, path) pairs), only operations routed there."""
    wanted = None if routes is None else {(m.upper(), p) for m, p in routes}
    schemas = {**components(), "OpenApiDocument": _document_schema()}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        if wanted is None or (op.method, op.path) in wanted:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "medic",
            "version": API_VERSION,
            "description": "The status and control API of medic, a self-healing monitoring"
            " daemon. Reads are open (unless api.auth_reads is on); every POST needs"
            " `Authorization: Bearer <token>`. Errors are"
            ' `{"error": {"code", "message"}}` with the matching status.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": _parameters(),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token from api.token_env or api.token_file.",
                }
            },
        },
    }


__all__ = ["OPENAPI_PATH", "OPERATIONS", "Operation", "build_document"]
