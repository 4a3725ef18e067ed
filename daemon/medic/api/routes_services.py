"""The routes about watched services: their state, and the operator's
controls (check now, recover now, reset the circuit, pause and resume)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from medic.api import listing
from medic.api._service_schemas import MAX_PAUSE_S
from medic.api.errors import ApiError
from medic.api.inputs import caller, int_query, json_body, operator
from medic.api.state import orchestrator
from medic.config.types import parse_duration
from medic.core.vocabulary import FailureType, Trigger
from medic.watch.state import RECENT_CHECKS


async def services(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    return web.json_response(
        {
            "services": [listing.service_status(orch, n) for n in listing.service_names(orch)],
            "recovery_hold": orch.engine.blast_hold,
            "discovery_errors": orch.discovery_errors(),
        }
    )


async def service(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    return web.json_response(listing.service_status(orch, request.match_info["name"]))


async def checks(request: web.Request) -> web.Response:
    """The service's last check results, oldest first (kept in memory, at most 60)."""
    limit = int_query(request, "limit", RECENT_CHECKS, RECENT_CHECKS)
    name = request.match_info["name"]
    recent = list(orchestrator(request).monitor.state(name).recent_checks)
    kept = recent[len(recent) - limit :] if limit else []
    return web.json_response({"service": name, "checks": [c.as_dict() for c in kept]})


async def check_service(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    name = request.match_info["name"]
    orch.monitor.state(name)
    orch.store.audit("operator.check", name, **caller(request))
    result = await orch.monitor.probe_now(name)
    return web.json_response(
        {
            "service": name,
            "healthy": result.healthy,
            "failure_type": result.failure_type,
            "detail": result.detail,
            "status": orch.monitor.state(name).status.value,
        }
    )


async def recover_service(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    name = request.match_info["name"]
    body = await json_body(request)
    orch.monitor.state(name)
    failure_type, dry_run = _recover_request(body)
    orch.store.audit(
        "operator.recover", name, **caller(request), failure_type=failure_type, dry_run=dry_run
    )
    outcome = await orch.auto_recover(name, failure_type, dry_run=dry_run, trigger=Trigger.API)
    record = orch.store.recovery(outcome.recovery_id)
    return web.json_response(record.as_json() if record is not None else None, status=200)


def _recover_request(body: dict[str, Any]) -> tuple[FailureType | None, bool | None]:
    """The recover body's ``failure_type`` and ``dry_run``, each None when absent."""
    unknown = sorted(set(body) - {"failure_type", "dry_run"})
    if unknown:
        # A misspelt "dry_run" must not turn into a real recovery.
        raise ApiError(422, "INVALID_BODY", f"unknown keys {unknown}; known: failure_type, dry_run")
    failure_type = body.get("failure_type")
    if failure_type is not None:
        try:
            failure_type = FailureType(failure_type)
        except ValueError:
            known = ", ".join(t.value for t in FailureType)
            raise ApiError(
                422,
                "INVALID_FAILURE_TYPE",
                f"unknown failure_type {failure_type!r}; known: {known}",
            ) from None
    dry_run = body.get("dry_run")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise ApiError(422, "INVALID_BODY", "dry_run must be true or false")
    return failure_type, dry_run


async def reset_service(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    name = request.match_info["name"]
    orch.monitor.state(name)
    # The engine records it in the audit trail, naming the token used.
    orch.engine.reset(name, who=operator(request), token=caller(request)["token"])
    return web.json_response(orch.service_status(name))


async def pause_service(request: web.Request) -> web.Response:
    """Maintenance: checked and shown, never healed, until ``for`` ends or a resume."""
    orch = orchestrator(request)
    name = request.match_info["name"]
    body = await json_body(request)
    orch.monitor.state(name)
    for_s, reason = _pause_request(body)
    orch.maintenance.pause(name, for_s=for_s, reason=reason, by=operator(request))
    return web.json_response(orch.service_status(name))


def _pause_request(body: dict[str, Any]) -> tuple[float | None, str]:
    unknown = sorted(set(body) - {"for", "reason"})
    if unknown:
        raise ApiError(422, "INVALID_BODY", f"unknown keys {unknown}; known: for, reason")
    for_s = None
    if body.get("for") is not None:
        try:
            for_s = parse_duration(body["for"])
        except ValueError as exc:
            raise ApiError(422, "INVALID_BODY", f"for: {exc}") from None
        if for_s > MAX_PAUSE_S:
            raise ApiError(422, "INVALID_BODY", "for: at most 366 days (or leave it out)")
    reason = body.get("reason")
    if reason is None:
        return for_s, "paused by an operator"
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise ApiError(422, "INVALID_BODY", "reason must be a string of 1 to 500 characters")
    return for_s, reason


async def resume_service(request: web.Request) -> web.Response:
    """End a pause (an operator's or a window's); not paused is not an error."""
    orch = orchestrator(request)
    name = request.match_info["name"]
    await json_body(request)
    orch.monitor.state(name)
    orch.maintenance.resume(name, by=operator(request))
    return web.json_response(orch.service_status(name))


__all__ = [
    "check_service",
    "checks",
    "pause_service",
    "recover_service",
    "reset_service",
    "resume_service",
    "service",
    "services",
]
