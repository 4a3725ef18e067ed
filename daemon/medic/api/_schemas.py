"""The JSON schemas (OpenAPI 3.1, i.e. JSON Schema 2020-12) of the API's bodies,
each with an example; ``medic.api.openapi`` puts them under ``components.schemas``.

Those with a type behind them are generated from it (``_typed_schemas``: the
store's records, the workflow config, the Alertmanager payload); the others
are written by hand and mirror what the handlers return: services, status and
health in ``_service_schemas``; errors, lists, workflows (``WorkflowManager``),
controls and alerts here, which assembles them all. Objects allow extra
properties so a field added later does not break clients; the fields listed
are the contract.
"""

from __future__ import annotations

from medic.api import _service_schemas as svc
from medic.api._schema_base import (
    BOOL,
    INT,
    NAMES,
    OPT_TIME,
    STR,
    T0_ISO,
    T2_ISO,
    Schema,
    nullable,
    obj,
    properties,
    ref,
)
from medic.api._typed_schemas import (
    AUDIT_EXAMPLE,
    COUNTS_EXAMPLE,
    RECOVERY_EXAMPLE,
    WORKFLOW_RUN_EXAMPLE,
    typed_components,
)
from medic.api.routes_fleet import schemas as fleet_schemas
from medic.core.vocabulary import CircuitState, FailureType, ServiceStatus

_RECOVERY_EXAMPLE = RECOVERY_EXAMPLE.as_json()
_WORKFLOW_RUN_EXAMPLE = WORKFLOW_RUN_EXAMPLE.as_json()
_WORKFLOW_EXAMPLE = {
    "id": "revenue-automation",
    "config": {
        "description": "",
        "type": "async",
        "priority": "high",
        "timeout": 300.0,
        "schedule": {"interval": 600.0, "cron": None, "at": None},
        "enabled": True,
        "steps": [
            {"name": "extract", "action": "run_command", "command": ["python3", "extract.py"]}
        ],
    },
    "status": "idle",
    "next_run_at": T2_ISO,
    "run_id": None,
    "queued": False,
    **COUNTS_EXAMPLE.as_json(),
}
_ALERT_EXAMPLE = {
    "version": "4",
    "groupKey": '{}:{alertname="WebDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "medic",
    "groupLabels": {"alertname": "WebDown"},
    "commonLabels": {"alertname": "WebDown", "service": "web"},
    "commonAnnotations": {"summary": "web answers 5xx"},
    "externalURL": "http://alertmanager.internal:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "WebDown",
                "service": "web",
                "failure_type": "unhealthy_response",
            },
            "annotations": {"summary": "web answers 5xx"},
            "startsAt": T0_ISO,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.internal:9090/graph",
            "fingerprint": "c6a6b5e4f0d1a2b3",
        }
    ],
}


# --- schemas ----------------------------------------------------------------------


def _error() -> Schema:
    detail = obj(
        {
            "code": {"type": "string", "pattern": "^[A-Z][A-Z_]*$"},
            "message": {"type": "string", "minLength": 1},
            "issues": {"type": "array", "items": STR},
        },
        optional=("issues",),
    )
    return {
        **obj({"error": detail}),
        "description": "Every error: a stable upper-case code and a message for people."
        " A refused reload lists each config problem in ``issues``.",
        "example": {"error": {"code": "SERVICE_NOT_FOUND", "message": "no service named 'nope'"}},
    }


def _recovery_list() -> Schema:
    return {
        **obj(
            {
                "recoveries": {"type": "array", "items": ref("Recovery")},
                "total": {**INT, "description": "All matching recoveries, not only this page."},
            }
        ),
        "example": {"recoveries": [_RECOVERY_EXAMPLE], "total": 1},
    }


def _workflow(counts: Schema) -> Schema:
    return {
        **obj(
            {
                "id": STR,
                "config": {
                    **ref("WorkflowConfig"),
                    "description": "The workflow's config, defaults in.",
                },
                "status": {"enum": ["running", "idle", "stopped", "disabled"]},
                "next_run_at": OPT_TIME,
                "run_id": nullable({"type": "integer"}),
                "queued": {**BOOL, "description": "The run in progress waits for a slot."},
                **properties(counts),
            }
        ),
        "example": _WORKFLOW_EXAMPLE,
    }


def _workflow_list() -> Schema:
    return {
        **obj({"workflows": {"type": "array", "items": ref("Workflow")}}),
        "example": {"workflows": [_WORKFLOW_EXAMPLE]},
    }


def _workflow_runs() -> Schema:
    return {
        **obj({"workflow": STR, "runs": {"type": "array", "items": ref("WorkflowRun")}}),
        "example": {"workflow": "revenue-automation", "runs": [_WORKFLOW_RUN_EXAMPLE]},
    }


def _workflow_started() -> Schema:
    return {
        **obj(
            {
                "workflow": STR,
                "run_id": nullable({"type": "integer"}),
                "status": {
                    "enum": ["running", "resumed", "scheduled"],
                    "description": "`running`: a run started (`run_id`); with `run: false`,"
                    " `resumed` (the schedule was stopped) or `scheduled` (it was not).",
                },
            }
        ),
        "example": {"workflow": "revenue-automation", "run_id": 43, "status": "running"},
    }


def _workflow_stopped() -> Schema:
    return {
        **obj({"workflow": STR, "cancelled_run": BOOL, "status": {"const": "stopped"}}),
        "example": {"workflow": "revenue-automation", "cancelled_run": True, "status": "stopped"},
    }


def _reload_result() -> Schema:
    changes = {"type": "object", "additionalProperties": NAMES}
    return {
        **obj(
            {
                "reloaded": {"const": True},
                "changes": {"type": "object", "additionalProperties": changes},
            }
        ),
        "example": {
            "reloaded": True,
            "changes": {
                "services": {"added": ["cache"], "removed": [], "changed": ["web"]},
                "workflows": {"added": [], "removed": [], "changed": []},
            },
        },
    }


_ALERTS_RESULT_EXAMPLE = {
    "accepted": [{"service": "web", "failure_type": "unhealthy_response", "recovery_id": 8}],
    "held": [
        {
            "service": "api",
            "failure_type": "service_crash",
            "reason": "backoff",
            "detail": "next attempt in 20s",
        }
    ],
    "unknown_services": ["billing"],
    "ignored": [{"labels": {"alertname": "DiskWillFill"}, "reason": "no service label"}],
}


def _alerts_result() -> Schema:
    ignored = obj(
        {
            "labels": {"type": "object", "additionalProperties": STR},
            "reason": {**STR, "description": "resolved, no service label, unknown failure_type"},
            "detail": STR,
        },
        optional=("detail",),
    )
    accepted = obj(
        {
            "service": STR,
            "failure_type": ref("FailureType"),
            "recovery_id": {
                "type": ["integer", "null"],
                "description": "null for a shared service of a fleet: the fleet is asked"
                " first (detail says so); the recovery starts once this host holds the lock.",
            },
            "detail": STR,
        },
        optional=("detail",),
    )
    held = obj({"service": STR, "failure_type": ref("FailureType"), "reason": STR, "detail": STR})
    return {
        **obj(
            {
                "accepted": {"type": "array", "items": accepted},
                "held": {"type": "array", "items": held},
                "unknown_services": NAMES,
                "ignored": {"type": "array", "items": ignored},
            }
        ),
        "description": "What became of each alert: a recovery started, held by the"
        " guardrails (backoff, open circuit, running recovery...), a service medic does"
        " not watch, or ignored.",
        "example": _ALERTS_RESULT_EXAMPLE,
    }


def _audit_list() -> Schema:
    return {
        **obj({"audit": {"type": "array", "items": ref("AuditEntry")}}),
        "example": {"audit": [AUDIT_EXAMPLE.as_json()]},
    }


def _notify_test_request() -> Schema:
    return {
        **obj({"name": {**STR, "description": "Only this target; all when absent."}},
              optional=("name",)),
        "additionalProperties": False,
        "example": {"name": "chat"},
    }  # fmt: skip


def _notify_test_result() -> Schema:
    outcome = {"type": "string", "enum": ["delivered", "failed", "rejected"]}
    row = obj(
        {
            "name": {**STR, "description": "The notifications.apprise target or webhook."},
            "kind": {"type": "string", "enum": ["apprise", "webhook"]},
            "url": {
                **STR,
                "description": "An Apprise URL by position and scheme; a webhook's scheme "
                "and host. Never a secret.",
            },
            "outcome": outcome,
            "detail": STR,
        }
    )
    example = {
        "name": "chat",
        "kind": "apprise",
        "url": "url 1 (slack://)",
        "outcome": "delivered",
        "detail": "sent",
    }
    return {**obj({"results": {"type": "array", "items": row}}), "example": {"results": [example]}}


def _enum(values: list[str], description: str) -> Schema:
    return {"type": "string", "enum": values, "description": description, "example": values[0]}


def _workflow_start_request() -> Schema:
    return {
        "type": "object",
        "properties": {"run": {**BOOL, "description": "Start a run now (default: true)."}},
        "additionalProperties": False,
        "example": {"run": False},
    }


def components() -> dict[str, Schema]:
    """Every named schema, in a stable order: the hand-written ones with the
    generated ones where they belong, then the rest of the generated ones."""
    typed = typed_components()
    counts = typed.pop("WorkflowCounts")  # a workflow's answer includes them
    named = {
        "Error": _error(),
        "FailureType": _enum([t.value for t in FailureType], "The fixed failure vocabulary."),
        "ServiceStatus": _enum([s.value for s in ServiceStatus], "A service's status."),
        "CircuitState": _enum([c.value for c in CircuitState], "A service's circuit."),
        "LastCheck": svc.last_check(),
        "RecentChecks": svc.recent_checks(),
        "ProcessInfo": svc.process_info(),
        "AuditEntry": typed["AuditEntry"],
        "Service": svc.service(),
        "ServiceList": svc.service_list(),
        "CheckResult": svc.check_result(),
        "RecoverRequest": svc.recover_request(),
        "PauseRequest": svc.pause_request(),
        "RecoveryStep": typed["RecoveryStep"],
        "Recovery": typed["Recovery"],
        "RecoveryList": _recovery_list(),
        "Workflow": _workflow(counts),
        "WorkflowList": _workflow_list(),
        "WorkflowStep": typed["WorkflowStep"],
        "WorkflowRun": typed["WorkflowRun"],
        "WorkflowRuns": _workflow_runs(),
        "WorkflowStarted": _workflow_started(),
        "WorkflowStartRequest": _workflow_start_request(),
        "WorkflowStopped": _workflow_stopped(),
        "SystemStatus": svc.system_status(typed["Recovery"], counts),
        "Health": svc.health(),
        "ReloadResult": _reload_result(),
        "NotifyTestRequest": _notify_test_request(),
        "NotifyTestResult": _notify_test_result(),
        "AlertmanagerPayload": {**typed["AlertmanagerPayload"], "example": _ALERT_EXAMPLE},
        "AlertsResult": _alerts_result(),
        "AuditList": _audit_list(),
    }
    named.update(fleet_schemas())
    return {**named, **{name: schema for name, schema in typed.items() if name not in named}}
