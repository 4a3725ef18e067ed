"""The catalogue of the HTTP API's operations, from which ``medic.api.openapi``
builds the OpenAPI document: one ``Operation`` per method and path, naming its
parameters (``components.parameters``), request body and success response
(``components.schemas``) and the error code it answers with for each status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OPENAPI_PATH = "/api/v1/openapi.json"

JSON = "application/json"

# Errors any POST can answer with (auth, body size); reads answer 401/403 only
# where reads are closed (``api.auth_reads``, or a non-loopback ``api.listen``).
_CONTROL_ERRORS = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 413: "REQUEST_ENTITY_TOO_LARGE"}
_READ_ERRORS = {401: "UNAUTHORIZED", 403: "FORBIDDEN"}
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
    media: str = JSON
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
    _get("/static/status.js", "The status page's script", "daemon", None, media="text/javascript"),
    _get("/static/status.css", "The status page's style", "daemon", None, media="text/css"),
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
        errors={400: "INVALID_QUERY", 503: "TOO_MANY_EVENT_CLIENTS"},
        description="Each event: `id`, `event` (its name, e.g. `service.state`,"
        " `recovery.step`, `workflow.succeeded`, `config.reloaded`,"
        " `config.reload_failed`, `discovery.changed`, `discovery.error`) and `data`"
        " (JSON: id, event, timestamp, data)."
        " The stream starts with `retry: 2000` (reconnect after 2 s). A client"
        " that reconnects with `Last-Event-ID: N` (or `?last_event_id=N`) first"
        " gets the events after N that the daemon still keeps (the last 1,000;"
        " a comment line says so when some were missed, or when N comes from an"
        " earlier run of the daemon), then live ones: none twice, none skipped."
        " A comment line keeps the stream alive every 15 s. At most"
        " `api.max_event_clients` streams (default 100) are open at once: one"
        " more is answered 503; a client that reads nothing for 30 s is dropped.",
    ),
    _post(
        "/api/v1/reload",
        "Re-read the config (same as SIGHUP)",
        "daemon",
        "ReloadResult",
        errors={422: "CONFIG_INVALID"},
    ),
    _post(
        "/api/v1/notifications/test",
        "Send a test message through every Apprise target, or one",
        "daemon",
        "NotifyTestResult",
        body="NotifyTestRequest",
        errors={**_BODY_ERRORS, 404: "NOTIFIER_NOT_FOUND"},
        description="Sent at once, past the queues and the notify_interval; one result per"
        " URL, named by its position and scheme only (URLs carry secrets).",
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
    _get(
        "/api/v1/services/{name}/checks",
        "The service's last check results, oldest first (at most 60, kept in memory)",
        "services",
        "RecentChecks",
        params=("ServiceName", "Limit60"),
        errors={**_SVC_404, 400: "INVALID_QUERY"},
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
    _post(
        "/api/v1/services/{name}/pause",
        "Maintenance: keep checking the service, never heal it (until `for` ends or a resume)",
        "services",
        "Service",
        params=("ServiceName",),
        body="PauseRequest",
        errors={**_BODY_ERRORS, **_SVC_404},
        description="Answers with the service, `status: paused`. No automatic recovery"
        " starts, Alertmanager alerts for it are held (reason `maintenance`) and no"
        " notification is sent about it but `maintenance.started`/`maintenance.ended`."
        " Pausing a paused service replaces its pause. The pause survives a restart.",
    ),
    _post(
        "/api/v1/services/{name}/resume",
        "End the service's maintenance: it is checked at once and healed if it fails",
        "services",
        "Service",
        params=("ServiceName",),
        errors={**_BODY_ERRORS, **_SVC_404},
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
        "Start a run now (and resume the schedule); `run: false` only resumes the schedule",
        "workflows",
        "WorkflowStarted",
        status=202,
        params=("WorkflowId",),
        body="WorkflowStartRequest",
        errors={**_BODY_ERRORS, **_WF_404, 409: "WORKFLOW_ALREADY_RUNNING", 503: "SHUTTING_DOWN"},
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
        "/api/v1/workflows/{id}/runs/{run}/resume",
        "Resume a failed or interrupted run at its first unfinished step",
        "workflows",
        "WorkflowStarted",
        status=202,
        params=("WorkflowId", "RunId"),
        errors={
            404: "RUN_NOT_FOUND",
            409: "RUN_NOT_RESUMABLE",
            503: "SHUTTING_DOWN",
        },
        description="The run keeps its id and the steps that ended well; the step that"
        " failed or was cut off, and every step after it, run again. 404 codes:"
        " WORKFLOW_NOT_FOUND, RUN_NOT_FOUND. 409 codes: RUN_NOT_RESUMABLE (the run"
        " succeeded, was cancelled or still runs), WORKFLOW_ALREADY_RUNNING.",
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
    _get(
        "/api/v1/fleet",
        "With fleet: the hosts (state, heartbeat age, holds), locks and their holders",
        "fleet",
        "Fleet",
        errors={404: "FLEET_NOT_CONFIGURED"},
    ),
    _post(
        "/api/v1/fleet/stop",
        "Emergency stop: hold all automatic recovery fleet-wide (or in one group)",
        "fleet",
        "FleetStopResult",
        body="FleetStopRequest",
        errors={**_BODY_ERRORS, 404: "FLEET_NOT_CONFIGURED", 409: "FLEET_UNAVAILABLE"},
    ),
    _post(
        "/api/v1/fleet/resume",
        "Lift an emergency stop",
        "fleet",
        "FleetStopResult",
        body="FleetStopRequest",
        errors={**_BODY_ERRORS, 404: "FLEET_NOT_CONFIGURED", 409: "FLEET_UNAVAILABLE"},
    ),
)


__all__ = ["JSON", "OPENAPI_PATH", "OPERATIONS", "Operation"]
