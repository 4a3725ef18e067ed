"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/v1/openapi.json``.

``OPERATIONS`` (in ``medic.api._operations``) is the catalogue: one entry per
method and path, naming its parameters, request body, success response and
the errors it can answer with. ``build_document`` turns it into the document,
keeping only the operations the running app has routes for, so the document
never promises an endpoint that is not there. The parameters are here; the
schemas live in ``medic.api._schemas``.
Tests check that every route of the app is documented, that every example
validates, and that real responses validate against their schemas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from medic.api._operations import JSON, OPENAPI_PATH, OPERATIONS, Operation
from medic.api._schema_base import STR, Schema, ref
from medic.api._schemas import components

API_VERSION = "1"
BEARER = "bearerAuth"

# One example error per code; ``Operation.errors`` picks codes by status.
ERROR_EXAMPLES: dict[str, str] = {
    "INVALID_JSON": "the body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
    "INVALID_QUERY": "limit must be between 0 and 1000",
    "FLEET_NOT_CONFIGURED": "this medic has no fleet: section",
    "FLEET_UNAVAILABLE": "no etcd endpoint answered",
    "UNAUTHORIZED": "missing or wrong bearer token",
    "CONTROL_DISABLED": "control endpoints are disabled: no API token is configured;"
    " set the MEDIC_API_TOKEN environment variable",
    "FORBIDDEN": "the token 'grafana' does not have the 'operate' scope",
    "TOO_MANY_EVENT_CLIENTS": "already 100 event streams open (api.max_event_clients)",
    "SERVICE_NOT_FOUND": "no service named 'nope'",
    "WORKFLOW_NOT_FOUND": "no workflow registered as 'nope'",
    "RECOVERY_NOT_FOUND": "no recovery with id 99",
    "RUN_NOT_FOUND": "workflow 'revenue-automation' has no run 99",
    "RUN_NOT_RESUMABLE": "run 42 of 'revenue-automation' has outcome succeeded; only a"
    " failed, timed-out or interrupted run can be resumed",
    "NOT_FOUND": "no such endpoint: GET /api/v1/nope",
    "RECOVERY_IN_PROGRESS": "a recovery of 'web' is already running",
    "NOT_WAITING_FOR_APPROVAL": "recovery 7 is not waiting for approval",
    "WORKFLOW_ALREADY_RUNNING": "workflow 'revenue-automation' is already running",
    "REQUEST_ENTITY_TOO_LARGE": "the body is larger than api.max_body_bytes (1048576 bytes)",
    "INVALID_BODY": "the body must be a JSON object",
    "INVALID_ALERT_PAYLOAD": "not an Alertmanager webhook payload: alerts: Field required",
    "CONFIG_INVALID": "the new config is invalid; the old one stays in force",
    "SHUTTING_DOWN": "the daemon is shutting down; no new workflow runs",
    "NOTIFIER_NOT_FOUND": "no notifications.apprise target named 'pager'; configured: chat",
}

_STATUS_TEXT = {
    200: "OK",
    202: "Accepted",
    400: "Bad request: malformed JSON or query",
    401: "Missing or wrong bearer token",
    403: "No API token is configured (CONTROL_DISABLED), or the token lacks the scope"
    " this endpoint needs (FORBIDDEN)",
    404: "Not found",
    409: "Conflict with what is going on",
    413: "The body is larger than api.max_body_bytes",
    422: "The body is JSON but not acceptable",
    503: "The daemon is shutting down, or too many event streams are open",
}


def _param(
    name: str, where: str, description: str, schema: Schema, example: Any, **extra: Any
) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
        **extra,
        "example": example,
    }


def _query_int(name: str, default: int, maximum: int, description: str) -> Schema:
    schema = {"type": "integer", "minimum": 0, "maximum": maximum, "default": default}
    return _param(name, "query", description, schema, min(default, 10) if default else 0)


def _path_parameters() -> dict[str, Schema]:
    recovery_id = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    return {
        "ServiceName": _param("name", "path", "A service's name.", STR, "web"),
        "WorkflowId": _param("id", "path", "A workflow's id.", STR, "revenue-automation"),
        "RecoveryId": _param("id", "path", "A recovery's id.", recovery_id, 7),
        "RunId": _param("run", "path", "A workflow run's id.", recovery_id, 42),
    }


def _filter_parameters() -> dict[str, Schema]:
    names = {"type": "array", "items": STR}
    return {
        "ServiceFilter": _param("service", "query", "Only this service's recoveries.", STR, "web"),
        "MetricNames": _param(
            "name[]",
            "query",
            "Only these samples (repeat the parameter for more), e.g."
            " `medic_service_up` or `medic_check_duration_seconds_count`; all when absent.",
            names,
            ["medic_service_up"],
            style="form",
            explode=True,
        ),
        "AuditKind": _param(
            "kind",
            "query",
            "Exact kind (`operator.recover`) or a prefix ending in `.*` (`operator.*`).",
            STR,
            "operator.*",
        ),
        "AuditService": _param("service", "query", "Only this service's entries.", STR, "web"),
    }


def _event_parameters() -> dict[str, Schema]:
    event_id = {"type": "integer", "minimum": 0}
    return {
        "LastEventId": _param(
            "last_event_id",
            "query",
            "Resume after this event id (as the `Last-Event-ID` header does;"
            " the header wins when both are given).",
            event_id,
            42,
        ),
        "LastEventIdHeader": _param(
            "Last-Event-ID",
            "header",
            "The last event id this client saw: sent by a reconnecting"
            " EventSource; the events after it that are still kept come first.",
            event_id,
            42,
        ),
    }


def _page_parameters() -> dict[str, Schema]:
    return {
        "Limit20": _query_int("limit", 20, 1000, "At most this many runs."),
        "Limit60": _query_int("limit", 60, 60, "At most this many (the newest)."),
        "Limit50": _query_int("limit", 50, 1000, "At most this many recoveries."),
        "Limit100": _query_int("limit", 100, 1000, "At most this many entries."),
        "Offset": _query_int("offset", 0, 10**9, "Skip this many (newest first)."),
    }


def _parameters() -> dict[str, Schema]:
    """``components.parameters``: what ``Operation.params`` names."""
    return {
        **_path_parameters(),
        **_filter_parameters(),
        **_event_parameters(),
        **_page_parameters(),
    }


_TEXT_EXAMPLES = {
    "text/html": '<!doctype html><html lang="en">...</html>',
    "text/javascript": '"use strict";\n...',
    "text/css": ":root { color-scheme: light dark; }\n...",
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
        "content": {JSON: {"schema": ref("Error"), "example": example}},
    }


def _operation(op: Operation, schemas: dict[str, Schema], scope: str | None) -> dict[str, Any]:
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
            "content": {JSON: {"schema": ref(op.body), "example": schemas[op.body]["example"]}},
        }
    # OpenAPI 3.1 lets a bearer requirement list role names: the token's scope.
    doc["security"] = [{BEARER: [scope] if scope else []}] if op.control else []
    if scope is not None:
        doc["x-medic-scope"] = scope
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


def build_document(
    routes: Iterable[tuple[str, str]] | None = None,
    scopes: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """The document; with ``routes`` ((METHOD, path) pairs), only operations
    routed there; with ``scopes`` ((METHOD, path) -> scope), the token scope
    each one needs."""
    wanted = None if routes is None else {(m.upper(), p) for m, p in routes}
    schemas = {**components(), "OpenApiDocument": _document_schema()}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        if wanted is None or (op.method, op.path) in wanted:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(
                op, schemas, (scopes or {}).get((op.method, op.path))
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "medic",
            "version": API_VERSION,
            "description": "The status and control API of medic, a self-healing monitoring"
            " daemon. Reads are open on a loopback api.listen (unless api.auth_reads is on)"
            " and need a token with the `read` scope elsewhere (unless"
            " api.allow_unauthenticated_reads is on); every POST needs"
            " `Authorization: Bearer <token>` with the scope its operation names in"
            " `security` and `x-medic-scope` (`read` < `operate` < `admin`). Errors are"
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
                    "description": "A token from api.tokens (with its scopes), or the"
                    " one from api.token_env or api.token_file (every scope).",
                }
            },
        },
    }


__all__ = ["OPENAPI_PATH", "OPERATIONS", "Operation", "build_document"]
