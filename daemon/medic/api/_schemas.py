"""The JSON schemas (OpenAPI 3.1, i.e. JSON Schema 2020-12) of the API's bodies,
each with an example; ``medic.api.openapi`` puts them under ``components.schemas``.

Those with a type behind them are generated from it (``medic.api._typed_schemas``:
the store's records, the workflow config, the Alertmanager payload); the rest
are written here and mirror what the handlers return: ``ServiceState.as_dict``
plus the orchestrator's additions (Service), ``WorkflowManager`` (Workflow),
the orchestrator's status. Objects allow extra properties so a field added
later does not break clients; the fields listed are the contract.
"""

from __future__ import annotations

from typing import Any

from medic.api._typed_schemas import (
    AUDIT_EXAMPLE,
    COUNTS_EXAMPLE,
    RECOVERY_EXAMPLE,
    T0,
    T1,
    WORKFLOW_RUN_EXAMPLE,
    properties,
    typed_components,
)
from medic.core.vocabulary import CircuitState, FailureType, ServiceStatus
from medic.store.records import RECOVERY_SUMMARY

Schema = dict[str, Any]

_T0 = T0.isoformat()
_T1 = T1.isoformat()
_T2 = "2026-01-06T07:37:00+00:00"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null (3.1 style: no ``nullable`` keyword)."""
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    required = [name for name in props if name not in optional]
    return {"type": "object", "properties": props, "required": required}


_STR: Schema = {"type": "string"}
_BOOL: Schema = {"type": "boolean"}
_INT: Schema = {"type": "integer", "minimum": 0}
_SECONDS: Schema = {"type": "number", "minimum": 0}
_TIME: Schema = {"type": "string", "format": "date-time"}
_OPT_TIME = nullable(_TIME)
_OPT_STR = nullable(_STR)
_NAMES: Schema = {"type": "array", "items": _STR}

# --- examples -----------------------------------------------------------------

_LAST_CHECK_EXAMPLE = {
    "time": _T0,
    "duration": 0.0021,
    "duration_seconds": 0.0021,
    "healthy": False,
    "failure_type": "service_crash",
    "detail": "connection refused",
}
_SERVICE_EXAMPLE = {
    "name": "web",
    "description": "the shop's front end",
    "status": "recovering",
    "failure_type": "service_crash",
    "circuit": "closed",
    "check_type": "http",
    "interval_seconds": 5.0,
    "consecutive_failures": 2,
    "recovering": True,
    "held_reason": None,
    "last_check": _LAST_CHECK_EXAMPLE,
    "next_attempt_at": None,
    "probation_at": None,
    "attempts_in_window": 1,
    "status_since": _T0,
    "container": "web",
    "unit": None,
    "depends_on": ["database"],
    "uptime_percentage": 99.82,
    "recovery_running": True,
}
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
    "next_run_at": _T2,
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
            "startsAt": _T0,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.internal:9090/graph",
            "fingerprint": "c6a6b5e4f0d1a2b3",
        }
    ],
}

# --- schemas ----------------------------------------------------------------------


def _error() -> Schema:
    detail = _obj(
        {
            "code": {"type": "string", "pattern": "^[A-Z][A-Z_]*$"},
            "message": {"type": "string", "minLength": 1},
            "issues": {"type": "array", "items": _STR},
        },
        optional=("issues",),
    )
    return {
        **_obj({"error": detail}),
        "description": "Every error: a stable upper-case code and a message for people."
        " A refused reload lists each config problem in ``issues``.",
        "example": {"error": {"code": "SERVICE_NOT_FOUND", "message": "no service named 'nope'"}},
    }


def _last_check() -> Schema:
    return {
        **_obj(
            {
                "time": _TIME,
                "duration": {**_SECONDS, "description": "Seconds (design.md's name)."},
                "duration_seconds": {**_SECONDS, "description": "The same, named for its unit."},
                "healthy": _BOOL,
                "failure_type": nullable(ref("FailureType")),
                "detail": _STR,
            }
        ),
        "example": _LAST_CHECK_EXAMPLE,
    }


def _service() -> Schema:
    props: dict[str, Schema] = {
        "name": _STR,
        "description": _STR,
        "status": ref("ServiceStatus"),
        "failure_type": nullable(ref("FailureType")),
        "circuit": ref("CircuitState"),
        "check_type": _STR,
        "interval_seconds": _SECONDS,
        "consecutive_failures": _INT,
        "recovering": _BOOL,
        "held_reason": {**_OPT_STR, "description": "Why recovery is held, while it is."},
        "last_check": nullable(ref("LastCheck")),
        "next_attempt_at": {
            **_OPT_TIME,
            "description": "When the next recovery attempt (or probation) may start.",
        },
        "probation_at": {**_OPT_TIME, "description": "When an open circuit allows probation."},
        "attempts_in_window": _INT,
        "status_since": _TIME,
        "container": _OPT_STR,
        "unit": _OPT_STR,
        "depends_on": _NAMES,
        "uptime_percentage": {
            **nullable({"type": "number", "minimum": 0, "maximum": 100}),
            "description": "Healthy share of the last 7 days; null when nothing is known.",
        },
        "recovery_running": _BOOL,
        "process": {**ref("ProcessInfo"), "description": "Only for a service with `process:`."},
        "recent_holds": {"type": "array", "items": ref("AuditEntry")},
    }
    return {
        **_obj(props, optional=("process", "recent_holds")),
        "example": _SERVICE_EXAMPLE,
    }


def _process_info() -> Schema:
    last_exit = _obj({"returncode": nullable({"type": "integer"}), "at": _OPT_TIME, "detail": _STR})
    return {
        **_obj(
            {
                "pid": nullable({"type": "integer"}),
                "alive": _BOOL,
                "owned": _BOOL,
                "started_at": _OPT_TIME,
                "starts": _INT,
                "last_exit": nullable(last_exit),
                "log": _OPT_STR,
            }
        ),
        "example": {
            "pid": 4242,
            "alive": True,
            "owned": True,
            "started_at": _T0,
            "starts": 2,
            "last_exit": {"returncode": -9, "at": _T0, "detail": "killed by SIGKILL"},
            "log": "/var/lib/medic/processes/api.log",
        },
    }


def _service_list() -> Schema:
    return {
        **_obj(
            {
                "services": {"type": "array", "items": ref("Service")},
                "recovery_hold": {
                    **_OPT_STR,
                    "description": "Why automatic recovery is held host-wide (too many"
                    " services failing at once), or null.",
                },
            },
            optional=("recovery_hold",),
        ),
        "example": {"services": [_SERVICE_EXAMPLE], "recovery_hold": None},
    }


def _check_result() -> Schema:
    return {
        **_obj(
            {
                "service": _STR,
                "healthy": _BOOL,
                "failure_type": nullable(ref("FailureType")),
                "detail": _STR,
                "status": ref("ServiceStatus"),
            }
        ),
        "example": {
            "service": "web",
            "healthy": True,
            "failure_type": None,
            "detail": "HTTP 200 in 3ms",
            "status": "healthy",
        },
    }


def _recover_request() -> Schema:
    return {
        "type": "object",
        "properties": {
            "failure_type": {
                **nullable(ref("FailureType")),
                "description": "Which failure to recover from; default: the current one.",
            },
            "dry_run": {
                **nullable(_BOOL),
                "description": "Record the steps, touch nothing; default: the daemon's mode.",
            },
        },
        "additionalProperties": False,
        "description": "Unknown keys are refused (422): a misspelt ``dry_run`` must not"
        " turn into a real recovery.",
        "example": {"failure_type": "service_crash", "dry_run": True},
    }


def _recovery_list() -> Schema:
    return {
        **_obj(
            {
                "recoveries": {"type": "array", "items": ref("Recovery")},
                "total": {**_INT, "description": "All matching recoveries, not only this page."},
            }
        ),
        "example": {"recoveries": [_RECOVERY_EXAMPLE], "total": 1},
    }


def _workflow(counts: Schema) -> Schema:
    return {
        **_obj(
            {
                "id": _STR,
                "config": {
                    **ref("WorkflowConfig"),
                    "description": "The workflow's config, defaults in.",
                },
                "status": {"enum": ["running", "idle", "stopped", "disabled"]},
                "next_run_at": _OPT_TIME,
                "run_id": nullable({"type": "integer"}),
                "queued": {**_BOOL, "description": "The run in progress waits for a slot."},
                **properties(counts),
            }
        ),
        "example": _WORKFLOW_EXAMPLE,
    }


def _workflow_list() -> Schema:
    return {
        **_obj({"workflows": {"type": "array", "items": ref("Workflow")}}),
        "example": {"workflows": [_WORKFLOW_EXAMPLE]},
    }


def _workflow_runs() -> Schema:
    return {
        **_obj({"workflow": _STR, "runs": {"type": "array", "items": ref("WorkflowRun")}}),
        "example": {"workflow": "revenue-automation", "runs": [_WORKFLOW_RUN_EXAMPLE]},
    }


def _workflow_started() -> Schema:
    return {
        **_obj({"workflow": _STR, "run_id": {"type": "integer"}, "status": {"const": "running"}}),
        "example": {"workflow": "revenue-automation", "run_id": 43, "status": "running"},
    }


def _workflow_stopped() -> Schema:
    return {
        **_obj({"workflow": _STR, "cancelled_run": _BOOL, "status": {"const": "stopped"}}),
        "example": {"workflow": "revenue-automation", "cancelled_run": True, "status": "stopped"},
    }


def _system_status(recovery: Schema, counts: Schema) -> Schema:
    workflow = _obj(
        {
            "status": _STR,
            **properties(counts, "last_run", "run_count", "error_count"),
            "next_run_at": _OPT_TIME,
        },
        optional=("next_run_at",),
    )
    health = _obj(
        {
            "status": ref("ServiceStatus"),
            "uptime_percentage": nullable({"type": "number", "minimum": 0, "maximum": 100}),
            "failure_type": nullable(ref("FailureType")),
            "circuit": ref("CircuitState"),
        },
        optional=("circuit",),
    )
    summary = _obj(properties(recovery, *RECOVERY_SUMMARY))
    return {
        **_obj(
            {
                "workflows": {"type": "object", "additionalProperties": workflow},
                "health_status": {"type": "object", "additionalProperties": health},
                "recovery_history": {"type": "array", "items": summary},
                "timestamp": _TIME,
            }
        ),
        "description": "The seed's get_system_status().",
        "example": {
            "workflows": {
                "revenue-automation": {
                    "status": "running",
                    "last_run": _T0,
                    "run_count": 42,
                    "error_count": 0,
                    "next_run_at": _T2,
                }
            },
            "health_status": {
                "web": {
                    "status": "healthy",
                    "uptime_percentage": 99.9,
                    "failure_type": None,
                    "circuit": "closed",
                }
            },
            "recovery_history": [
                {
                    "id": 7,
                    "service": "web",
                    "failure_type": "service_crash",
                    "playbook": "restart-container",
                    "outcome": "succeeded",
                    "started_at": _T0,
                    "duration_seconds": 0.8,
                    "trigger": "auto",
                    "dry_run": False,
                }
            ],
            "timestamp": _T1,
        },
    }


def _health() -> Schema:
    return {
        **_obj(
            {
                "status": {"const": "healthy"},
                "timestamp": _TIME,
                "uptime_seconds": _SECONDS,
                "dry_run": _BOOL,
                "config": _STR,
            },
            optional=("uptime_seconds", "dry_run", "config"),
        ),
        "example": {
            "status": "healthy",
            "timestamp": _T0,
            "uptime_seconds": 3600.5,
            "dry_run": False,
            "config": "/etc/medic/config.yaml",
        },
    }


def _reload_result() -> Schema:
    changes = {"type": "object", "additionalProperties": _NAMES}
    return {
        **_obj(
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


def _alerts_result() -> Schema:
    ignored = _obj(
        {
            "labels": {"type": "object", "additionalProperties": _STR},
            "reason": {**_STR, "description": "resolved, no service label, unknown failure_type"},
            "detail": _STR,
        },
        optional=("detail",),
    )
    accepted = _obj(
        {"service": _STR, "failure_type": ref("FailureType"), "recovery_id": {"type": "integer"}}
    )
    held = _obj(
        {"service": _STR, "failure_type": ref("FailureType"), "reason": _STR, "detail": _STR}
    )
    return {
        **_obj(
            {
                "accepted": {"type": "array", "items": accepted},
                "held": {"type": "array", "items": held},
                "unknown_services": _NAMES,
                "ignored": {"type": "array", "items": ignored},
            }
        ),
        "description": "What became of each alert: a recovery started, held by the"
        " guardrails (backoff, open circuit, running recovery...), a service medic does"
        " not watch, or ignored.",
        "example": {
            "accepted": [
                {"service": "web", "failure_type": "unhealthy_response", "recovery_id": 8}
            ],
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
        },
    }


def _audit_list() -> Schema:
    return {
        **_obj({"audit": {"type": "array", "items": ref("AuditEntry")}}),
        "example": {"audit": [AUDIT_EXAMPLE.as_json()]},
    }


def _enum(values: list[str], description: str) -> Schema:
    return {"type": "string", "enum": values, "description": description, "example": values[0]}


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
        "LastCheck": _last_check(),
        "ProcessInfo": _process_info(),
        "AuditEntry": typed["AuditEntry"],
        "Service": _service(),
        "ServiceList": _service_list(),
        "CheckResult": _check_result(),
        "RecoverRequest": _recover_request(),
        "RecoveryStep": typed["RecoveryStep"],
        "Recovery": typed["Recovery"],
        "RecoveryList": _recovery_list(),
        "Workflow": _workflow(counts),
        "WorkflowList": _workflow_list(),
        "WorkflowStep": typed["WorkflowStep"],
        "WorkflowRun": typed["WorkflowRun"],
        "WorkflowRuns": _workflow_runs(),
        "WorkflowStarted": _workflow_started(),
        "WorkflowStopped": _workflow_stopped(),
        "SystemStatus": _system_status(typed["Recovery"], counts),
        "Health": _health(),
        "ReloadResult": _reload_result(),
        "AlertmanagerPayload": {**typed["AlertmanagerPayload"], "example": _ALERT_EXAMPLE},
        "AlertsResult": _alerts_result(),
        "AuditList": _audit_list(),
    }
    return {**named, **{name: schema for name, schema in typed.items() if name not in named}}
