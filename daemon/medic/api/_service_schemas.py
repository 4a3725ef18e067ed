"""The hand-written schemas of the answers about services and the daemon:
a service's state (``ServiceState.as_dict`` plus the orchestrator's
additions), its last check and supervised process, a check run now, the
request to recover, the seed's system status and the daemon's health."""

from __future__ import annotations

from medic.api._schema_base import (
    BOOL,
    INT,
    NAMES,
    OPT_STR,
    OPT_TIME,
    SECONDS,
    STR,
    T0_ISO,
    T1_ISO,
    T2_ISO,
    TIME,
    Schema,
    nullable,
    obj,
    properties,
    ref,
)
from medic.store.records import RECOVERY_SUMMARY

MAX_PAUSE_S = 366 * 86400
"""The longest ``for`` of a pause (longer: pause without ``for``)."""

LAST_CHECK_EXAMPLE = {
    "time": T0_ISO,
    "duration": 0.0021,
    "duration_seconds": 0.0021,
    "healthy": False,
    "failure_type": "service_crash",
    "detail": "connection refused",
}
SERVICE_EXAMPLE = {
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
    "last_check": LAST_CHECK_EXAMPLE,
    "next_attempt_at": None,
    "probation_at": None,
    "attempts_in_window": 1,
    "status_since": T0_ISO,
    "container": "web",
    "unit": None,
    "depends_on": ["database"],
    "source": "yaml",
    "uptime_percentage": 99.82,
    "uptime": {"24h": 99.5, "7d": 99.82},
    "recovery_running": True,
    "paused_until": None,
    "pause_reason": None,
    "paused_by": None,
}


def last_check() -> Schema:
    return {
        **obj(
            {
                "time": TIME,
                "duration": {**SECONDS, "description": "Seconds (design.md's name)."},
                "duration_seconds": {**SECONDS, "description": "The same, named for its unit."},
                "healthy": BOOL,
                "failure_type": nullable(ref("FailureType")),
                "detail": STR,
            }
        ),
        "example": LAST_CHECK_EXAMPLE,
    }


_PAUSE_PROPS: dict[str, Schema] = {
    "paused_until": {**OPT_TIME, "description": "When the pause ends (null: at a resume)."},
    "pause_reason": {**OPT_STR, "description": "Why the service is paused."},
    "paused_by": {
        **OPT_STR,
        "description": "Who paused it: the operator (`X-Medic-Operator`), `cli`, `window`.",
    },
}


_PERCENT = nullable({"type": "number", "minimum": 0, "maximum": 100})


def recent_checks() -> Schema:
    return {
        **obj({"service": STR, "checks": {"type": "array", "items": ref("LastCheck")}}),
        "example": {"service": "web", "checks": [LAST_CHECK_EXAMPLE]},
    }


def service() -> Schema:
    props: dict[str, Schema] = {
        "name": STR,
        "description": STR,
        "status": ref("ServiceStatus"),
        "failure_type": nullable(ref("FailureType")),
        "circuit": ref("CircuitState"),
        "check_type": STR,
        "interval_seconds": SECONDS,
        "consecutive_failures": INT,
        "recovering": BOOL,
        "held_reason": {**OPT_STR, "description": "Why recovery is held, while it is."},
        "last_check": nullable(ref("LastCheck")),
        "next_attempt_at": {
            **OPT_TIME,
            "description": "When the next recovery attempt (or probation) may start.",
        },
        "probation_at": {**OPT_TIME, "description": "When an open circuit allows probation."},
        "attempts_in_window": INT,
        "status_since": TIME,
        "container": OPT_STR,
        "unit": OPT_STR,
        "depends_on": NAMES,
        "source": {
            "enum": ["yaml", "docker"],
            "description": "Where the service is declared: the config file, or a"
            " container's labels (`docker.discover`).",
        },
        "uptime_percentage": {
            **nullable({"type": "number", "minimum": 0, "maximum": 100}),
            "description": "Healthy share of the last 7 days; null when nothing is known.",
        },
        "uptime": {
            **obj({"24h": _PERCENT, "7d": _PERCENT}),
            "description": "Healthy share of the last 24 hours and 7 days (null: nothing known).",
        },
        "recovery_running": BOOL,
        **_PAUSE_PROPS,
        "process": {**ref("ProcessInfo"), "description": "Only for a service with `process:`."},
        "recent_holds": {"type": "array", "items": ref("AuditEntry")},
    }
    return {
        **obj(props, optional=("process", "recent_holds")),
        "example": SERVICE_EXAMPLE,
    }


def process_info() -> Schema:
    last_exit = obj({"returncode": nullable({"type": "integer"}), "at": OPT_TIME, "detail": STR})
    return {
        **obj(
            {
                "pid": nullable({"type": "integer"}),
                "alive": BOOL,
                "owned": BOOL,
                "started_at": OPT_TIME,
                "starts": INT,
                "last_exit": nullable(last_exit),
                "log": OPT_STR,
            }
        ),
        "example": {
            "pid": 4242,
            "alive": True,
            "owned": True,
            "started_at": T0_ISO,
            "starts": 2,
            "last_exit": {"returncode": -9, "at": T0_ISO, "detail": "killed by SIGKILL"},
            "log": "/var/lib/medic/processes/api.log",
        },
    }


def service_list() -> Schema:
    return {
        **obj(
            {
                "services": {"type": "array", "items": ref("Service")},
                "recovery_hold": {
                    **OPT_STR,
                    "description": "Why automatic recovery is held host-wide (too many"
                    " services failing at once), or null.",
                },
                "discovery_errors": {
                    "type": "array",
                    "items": discovery_error(),
                    "description": "Containers that `docker.discover` leaves unwatched"
                    " because of a bad label (empty when discovery is off).",
                },
            },
            optional=("recovery_hold",),
        ),
        "example": {
            "services": [SERVICE_EXAMPLE],
            "recovery_hold": None,
            "discovery_errors": [DISCOVERY_ERROR_EXAMPLE],
        },
    }


DISCOVERY_ERROR_EXAMPLE = {
    "container": "shop-web-1",
    "label": "medic.interval",
    "message": "invalid duration 'soon': use a number of seconds or a string like '30s'",
}


def discovery_error() -> Schema:
    return {
        **obj({"container": STR, "label": STR, "message": STR}),
        "description": "A container that is not watched, the label that is why, and why.",
        "example": DISCOVERY_ERROR_EXAMPLE,
    }


def check_result() -> Schema:
    return {
        **obj(
            {
                "service": STR,
                "healthy": BOOL,
                "failure_type": nullable(ref("FailureType")),
                "detail": STR,
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


def recover_request() -> Schema:
    return {
        "type": "object",
        "properties": {
            "failure_type": {
                **nullable(ref("FailureType")),
                "description": "Which failure to recover from; default: the current one.",
            },
            "dry_run": {
                **nullable(BOOL),
                "description": "Record the steps, touch nothing; default: the daemon's mode.",
            },
        },
        "additionalProperties": False,
        "description": "Unknown keys are refused (422): a misspelt ``dry_run`` must not"
        " turn into a real recovery.",
        "example": {"failure_type": "service_crash", "dry_run": True},
    }


def pause_request() -> Schema:
    return {
        "type": "object",
        "properties": {
            "for": {
                **nullable(
                    {
                        "oneOf": [
                            {"type": "number", "minimum": 0, "maximum": MAX_PAUSE_S},
                            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
                        ]
                    }
                ),
                "description": "How long: seconds or a duration like `30m` (at most 366 days);"
                " default: until resumed.",
            },
            "reason": {
                **nullable({"type": "string", "minLength": 1, "maxLength": 500}),
                "description": "Shown with the pause; default: `paused by an operator`.",
            },
        },
        "additionalProperties": False,
        "example": {"for": "30m", "reason": "database vacuum"},
    }


SYSTEM_STATUS_EXAMPLE = {
    "workflows": {
        "revenue-automation": {
            "status": "running",
            "last_run": T0_ISO,
            "run_count": 42,
            "error_count": 0,
            "next_run_at": T2_ISO,
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
            "started_at": T0_ISO,
            "duration_seconds": 0.8,
            "trigger": "auto",
            "dry_run": False,
        }
    ],
    "timestamp": T1_ISO,
}


def system_status(recovery: Schema, counts: Schema) -> Schema:
    workflow = obj(
        {
            "status": STR,
            **properties(counts, "last_run", "run_count", "error_count"),
            "next_run_at": OPT_TIME,
        },
        optional=("next_run_at",),
    )
    health = obj(
        {
            "status": ref("ServiceStatus"),
            "uptime_percentage": nullable({"type": "number", "minimum": 0, "maximum": 100}),
            "failure_type": nullable(ref("FailureType")),
            "circuit": ref("CircuitState"),
        },
        optional=("circuit",),
    )
    summary = obj(properties(recovery, *RECOVERY_SUMMARY))
    return {
        **obj(
            {
                "workflows": {"type": "object", "additionalProperties": workflow},
                "health_status": {"type": "object", "additionalProperties": health},
                "recovery_history": {"type": "array", "items": summary},
                "timestamp": TIME,
            }
        ),
        "description": "The seed's get_system_status().",
        "example": SYSTEM_STATUS_EXAMPLE,
    }


def history_health() -> Schema:
    """How the history's writes fare: ``degraded`` while writes wait in memory."""
    return obj(
        {
            "status": {"enum": ["ok", "degraded"]},
            "pending_writes": INT,
            "dropped": INT,
            "write_errors": INT,
            "last_error": OPT_STR,
            "degraded_since": OPT_TIME,
        }
    )


HISTORY_OK = {
    "status": "ok",
    "pending_writes": 0,
    "dropped": 0,
    "write_errors": 0,
    "last_error": None,
    "degraded_since": None,
}


def health() -> Schema:
    """``degraded``: the daemon checks and heals, but its history writes wait in memory."""
    return {
        **obj(
            {
                "status": {"enum": ["healthy", "degraded"]},
                "history": history_health(),
                "timestamp": TIME,
                "uptime_seconds": SECONDS,
                "dry_run": BOOL,
                "config": STR,
                "asyncio_tasks": INT,
            },
            optional=("history", "uptime_seconds", "dry_run", "config", "asyncio_tasks"),
        ),
        "example": {
            "status": "healthy",
            "history": HISTORY_OK,
            "timestamp": T0_ISO,
            "uptime_seconds": 3600.5,
            "dry_run": False,
            "config": "/etc/medic/config.yaml",
            "asyncio_tasks": 42,
        },
    }
