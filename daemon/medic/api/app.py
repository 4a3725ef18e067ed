"""The HTTP status and control API (aiohttp), per design.md's table.

Reads are open on the loopback default (``api.auth_reads`` protects them);
every POST needs ``Authorization: Bearer <token>``. Every error is
``{"error": {"code", "message"}}`` with the matching status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from medic.api.alerts import AlertPayloadError, receive_alerts
from medic.api.openapi import OPENAPI_PATH, build_document
from medic.api.page import render_status_page
from medic.config.models import ApiConfig
from medic.core.bus import Event
from medic.core.errors import (
    ConfigFileError,
    ConfigInvalid,
    InvalidWorkflowError,
    MedicError,
    RecoveryNotFoundError,
    ServiceNotFoundError,
    WorkflowAlreadyRunningError,
    WorkflowNotFoundError,
    WorkflowsClosedError,
)
from medic.core.logging import get_logger
from medic.core.vocabulary import FailureType, Trigger
from medic.heal.errors import NotWaitingForApproval, RecoveryBusy
from medic.orchestrator import ControlPlaneOrchestrator
from medic.store import RecoveryRecord
from medic.tell.metrics import CONTENT_TYPE

log = get_logger("Api")


class ApiSettings:
    """The API's config, swapped in place when a reload changes it."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.started = time.monotonic()


ORCHESTRATOR = web.AppKey("orchestrator", ControlPlaneOrchestrator)
ReloadFn = Callable[[], Awaitable[dict[str, Any]]]
RELOAD: web.AppKey[ReloadFn] = web.AppKey("reload")
SETTINGS = web.AppKey("settings", ApiSettings)
CLOSING = web.AppKey("closing", asyncio.Event)
"""Set when the API shuts down: event streams end at once instead of holding the stop."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(MedicError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


_KNOWN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (ServiceNotFoundError, 404, "SERVICE_NOT_FOUND"),
    (WorkflowNotFoundError, 404, "WORKFLOW_NOT_FOUND"),
    (WorkflowAlreadyRunningError, 409, "WORKFLOW_ALREADY_RUNNING"),
    (InvalidWorkflowError, 422, "INVALID_WORKFLOW"),
    (WorkflowsClosedError, 503, "SHUTTING_DOWN"),
    (RecoveryBusy, 409, "RECOVERY_IN_PROGRESS"),
    (RecoveryNotFoundError, 404, "RECOVERY_NOT_FOUND"),
    (NotWaitingForApproval, 409, "NOT_WAITING_FOR_APPROVAL"),
    (AlertPayloadError, 422, "INVALID_ALERT_PAYLOAD"),
]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="medic"'
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception as exc:
        for kind, status, code in _KNOWN_ERRORS:
            if isinstance(exc, kind):
                return error_response(status, code, str(exc))
        # A bug: the caller still gets the JSON error shape; the traceback goes to the log.
        log.exception(
            "api.request_failed",
            message="API request failed",
            method=request.method,
            path=request.path,
        )
        return error_response(500, "INTERNAL_ERROR", "internal error; the daemon log has details")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = exc.reason.upper().replace(" ", "_")
    message = exc.text or exc.reason
    if isinstance(exc, web.HTTPNotFound) and request.match_info.http_exception is exc:
        message = f"no such endpoint: {request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
        response = error_response(exc.status, code, message)
        response.headers["Allow"] = allowed
        return response
    return error_response(exc.status, code, message)


def configured_token(config: ApiConfig) -> str | None:
    if config.token_file is not None:
        try:
            return config.token_file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    if config.token_env:
        return os.environ.get(config.token_env) or None
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[SETTINGS].config
    if request.match_info.http_exception is not None:
        return await handler(request)  # no such route or method: its 404/405, not a 401
    protected = request.method not in ("GET", "HEAD", "OPTIONS") or (
        config.auth_reads and request.path not in ("/api/v1/health",)
    )
    if protected:
        _authorize(request, config)
    _check_body_size(request, config)
    await _check_json_body(request)
    return await handler(request)


async def _check_json_body(request: web.Request) -> None:
    # Endpoints that take no body must not act on a request whose JSON is
    # broken either: the caller meant something, and it did not arrive.
    if request.body_exists and request.content_type == "application/json":
        await _json_body(request)


def _check_body_size(request: web.Request, config: ApiConfig) -> None:
    # aiohttp only refuses an oversized body when a handler reads it; refuse it
    # up front so endpoints that ignore their body refuse it the same way.
    length = request.content_length
    if length is not None and length > config.max_body_bytes:
        raise ApiError(
            413,
            "REQUEST_ENTITY_TOO_LARGE",
            f"the body is larger than api.max_body_bytes ({config.max_body_bytes} bytes)",
        )


def _authorize(request: web.Request, config: ApiConfig) -> None:
    token = configured_token(config)
    if token is None:
        how = (
            f"set the {config.token_env} environment variable"
            if config.token_env
            else ("set api.token_env or api.token_file in the config")
        )
        raise ApiError(
            403,
            "CONTROL_DISABLED",
            f"control endpoints are disabled: no API token is configured; {how}",
        )
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise ApiError(401, "UNAUTHORIZED", "missing or wrong bearer token")


def _orch(request: web.Request) -> ControlPlaneOrchestrator:
    return request.app[ORCHESTRATOR]


_PARSED_BODY = "medic.parsed_body"
"""The request's JSON body once parsed: the middleware checks it, the handler uses it."""


async def _json_body(request: web.Request) -> dict[str, Any]:
    if _PARSED_BODY not in request:
        request[_PARSED_BODY] = await _parse_json_body(request)
    parsed: dict[str, Any] = request[_PARSED_BODY]
    return parsed


async def _parse_json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "INVALID_JSON", f"the body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ApiError(400, "INVALID_JSON", "the body's JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(422, "INVALID_BODY", "the body must be a JSON object")
    return body


# reads ----------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    orch = _orch(request)
    return web.json_response(
        {
            "status": "healthy",
            "timestamp": datetime.now(UTC).isoformat(),
            "uptime_seconds": round(time.monotonic() - request.app[SETTINGS].started, 3),
            "dry_run": orch.dry_run,
            "config": str(orch.config.path),
        }
    )


async def status(request: web.Request) -> web.Response:
    return web.json_response(_orch(request).system_status())


async def services(request: web.Request) -> web.Response:
    orch = _orch(request)
    return web.json_response(
        {
            "services": [orch.service_status(n) for n in orch.monitor.states()],
            "recovery_hold": orch.engine.blast_hold,
        }
    )


async def service(request: web.Request) -> web.Response:
    return web.json_response(_orch(request).service_status(request.match_info["name"]))


def _int_query(request: web.Request, key: str, default: int, maximum: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "INVALID_QUERY", f"{key} must be an integer") from None
    if not 0 <= value <= maximum:
        raise ApiError(400, "INVALID_QUERY", f"{key} must be between 0 and {maximum}")
    return value


async def recoveries(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 50, 1000)
    offset = _int_query(request, "offset", 0, 10**9)
    rows, total = _orch(request).store.recoveries(
        request.query.get("service") or None, limit, offset
    )
    return web.json_response({"recoveries": [r.as_json() for r in rows], "total": total})


async def audit(request: web.Request) -> web.Response:
    """``GET /api/v1/audit?kind=&service=&limit=``: the audit trail, newest first.

    ``kind`` is exact (``operator.recover``) or a prefix ending in ``.*``
    (``operator.*``: every operator call; ``recovery.*``: held, approved,
    rejected recoveries...); ``limit`` 0..1000, default 100.
    Response 200: ``{"audit": [{"id": int, "at": ISO time, "kind": str,
    "service": str | null, "data": {...}}]}``; ``data.who`` names the caller of
    a control endpoint (``X-Medic-Operator`` header, else the client address).
    400 ``INVALID_QUERY`` for a bad ``limit``.
    """
    limit = _int_query(request, "limit", 100, 1000)
    entries = _orch(request).store.audit_entries(
        request.query.get("kind") or None, limit, request.query.get("service") or None
    )
    return web.json_response({"audit": [entry.as_json() for entry in entries]})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; ``?name[]=SAMPLE`` (repeatable) keeps only those samples."""
    # Rendering 1,000 services' 18,000 series takes 0.2-0.5 s of CPU. In a
    # thread the loop still runs, though slowed by the contention for the GIL
    # (checks falling due meanwhile start some tens of ms late; on the loop
    # itself they would all wait for the whole rendering).
    names = request.query.getall("name[]", [])
    body = await asyncio.to_thread(_orch(request).metrics.render, names)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def page(request: web.Request) -> web.Response:
    return web.Response(text=render_status_page(_orch(request)), content_type="text/html")


# control ----------------------------------------------------------------------------


def _operator(request: web.Request) -> str:
    return request.headers.get("X-Medic-Operator") or (request.remote or "unknown")


async def check_service(request: web.Request) -> web.Response:
    orch = _orch(request)
    name = request.match_info["name"]
    orch.monitor.state(name)
    orch.store.audit("operator.check", name, who=_operator(request))
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
    orch = _orch(request)
    name = request.match_info["name"]
    body = await _json_body(request)
    orch.monitor.state(name)
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
    orch.store.audit(
        "operator.recover", name, who=_operator(request), failure_type=failure_type, dry_run=dry_run
    )
    outcome = await orch.auto_recover(name, failure_type, dry_run=dry_run, trigger=Trigger.API)
    record = orch.store.recovery(outcome.recovery_id)
    return web.json_response(_or_null(record), status=200)


async def reset_service(request: web.Request) -> web.Response:
    orch = _orch(request)
    name = request.match_info["name"]
    orch.monitor.state(name)
    orch.store.audit("operator.reset", name, who=_operator(request))
    orch.engine.reset(name, who=_operator(request))
    return web.json_response(orch.service_status(name))


async def reload(request: web.Request) -> web.Response:
    orch = _orch(request)
    orch.store.audit("operator.reload", None, who=_operator(request))
    try:
        changes = await request.app[RELOAD]()
    except ConfigInvalid as exc:
        return web.json_response(
            {
                "error": {
                    "code": "CONFIG_INVALID",
                    "message": "the new config is invalid; the old one stays in force",
                    "issues": [str(i) for i in exc.issues],
                }
            },
            status=422,
        )
    except ConfigFileError as exc:
        return error_response(422, "CONFIG_UNREADABLE", str(exc))
    return web.json_response({"reloaded": True, "changes": changes})


async def alerts(request: web.Request) -> web.Response:
    """``POST /api/v1/alerts``: Prometheus Alertmanager's webhook receiver (bearer token).

    Request: Alertmanager's payload, ``{"version": "4", "status", "receiver",
    "groupKey", "alerts": [{"status": "firing" | "resolved", "labels": {"service",
    "failure_type"?, ...}, "annotations", "startsAt", "fingerprint", ...}], ...}``.
    Response 200: ``{"accepted": [{"service", "failure_type", "recovery_id"}],
    "held": [{"service", "failure_type", "reason", "detail"}], "unknown_services":
    [str], "ignored": [{"labels", "reason": "resolved" | "no service label" |
    "unknown failure_type", "detail"?}]}``. 422 ``INVALID_ALERT_PAYLOAD`` (or
    ``INVALID_BODY`` for a non-object), 400 ``INVALID_JSON``, 401/403 without a token.
    """
    body = await _json_body(request)
    return web.json_response(receive_alerts(_orch(request), body, _operator(request)))


def _recovery_id(request: web.Request) -> int:
    try:
        rec_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "RECOVERY_NOT_FOUND", "recovery ids are integers") from None
    if not 0 < rec_id < 2**63:  # SQLite's integer range; ids start at 1
        raise RecoveryNotFoundError(rec_id)
    return rec_id


async def approve_recovery(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


async def reject_recovery(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


DECISION_WAIT_S = 5.0
"""How long approve/reject wait for the recovery to act on the decision."""


async def _decide(request: web.Request, *, approve: bool) -> web.Response:
    """Approve or reject; answer with the recovery as it stands once the decision
    took effect: rejected and finished (with its detail), or approved and resumed."""
    orch = _orch(request)
    rec_id = _recovery_id(request)
    who = _operator(request)
    record = orch.store.recovery(rec_id)
    service = record.service if record else None
    queue = orch.bus.subscribe()  # before deciding: the events that follow are ours to see
    try:
        orch.engine.decide_approval(rec_id, approve, who)
        orch.store.audit(
            "operator.approve" if approve else "operator.reject", None, who=who, recovery_id=rec_id
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                _decision_taken(queue, rec_id, service, approve), DECISION_WAIT_S
            )
    finally:
        orch.bus.unsubscribe(queue)
    return web.json_response(_or_null(orch.store.recovery(rec_id)))


_RECOVERY_ENDS = ("recovery.succeeded", "recovery.failed", "recovery.finished")


async def _decision_taken(
    queue: asyncio.Queue[Event], rec_id: int, service: str | None, approve: bool
) -> None:
    """Return once the recovery acted on the decision: a rejected one has ended
    (its outcome and detail recorded); an approved one has resumed (its service
    is ``recovering``) or already ended."""
    while True:
        event = await queue.get()
        data = event.data
        if data.get("recovery_id") == rec_id and event.name in _RECOVERY_ENDS:
            return
        resumed = event.name == "service.state" and data.get("new") == "recovering"
        if approve and resumed and data.get("service") == service:
            return


async def recovery(request: web.Request) -> web.Response:
    record = _orch(request).store.recovery(_recovery_id(request))
    if record is None:
        raise RecoveryNotFoundError(_recovery_id(request))
    return web.json_response(record.as_json())


def _or_null(record: RecoveryRecord | None) -> dict[str, Any] | None:
    return record.as_json() if record is not None else None


# workflows --------------------------------------------------------------------------


async def workflows(request: web.Request) -> web.Response:
    return web.json_response({"workflows": _orch(request).workflows.list()})


async def workflow(request: web.Request) -> web.Response:
    return web.json_response(_orch(request).workflows.get(request.match_info["id"]))


async def workflow_start(request: web.Request) -> web.Response:
    wid = request.match_info["id"]
    _orch(request).store.audit(
        "operator.workflow_start", None, who=_operator(request), workflow=wid
    )
    run_id = await _orch(request).start_workflow(wid)
    return web.json_response({"workflow": wid, "run_id": run_id, "status": "running"}, status=202)


async def workflow_stop(request: web.Request) -> web.Response:
    wid = request.match_info["id"]
    _orch(request).store.audit("operator.workflow_stop", None, who=_operator(request), workflow=wid)
    cancelled = await _orch(request).stop_workflow(wid)
    return web.json_response({"workflow": wid, "cancelled_run": cancelled, "status": "stopped"})


async def workflow_run(request: web.Request) -> web.Response:
    wid = request.match_info["id"]
    _orch(request).store.audit("operator.workflow_run", None, who=_operator(request), workflow=wid)
    record = await _orch(request).workflows.run(wid)
    return web.json_response(record.as_json())


async def workflow_runs(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 20, 1000)
    wid = request.match_info["id"]
    runs = _orch(request).workflows.runs(wid, limit)
    return web.json_response({"workflow": wid, "runs": [run.as_json() for run in runs]})


async def openapi_document(request: web.Request) -> web.Response:
    routes = [
        (route.method, route.resource.canonical)
        for route in request.app.router.routes()
        if route.resource is not None
    ]
    return web.json_response(build_document(routes))


# events -------------------------------------------------------------------------------


SSE_RETRY_MS = 2000
"""Sent once as ``retry:``: how soon a client's EventSource reconnects."""


def _last_event_id(request: web.Request) -> int | None:
    """The id a reconnecting client saw last: the ``Last-Event-ID`` header
    (what EventSource sends) or ``?last_event_id=`` (for curl)."""
    raw = request.headers.get("Last-Event-ID")
    source = "the Last-Event-ID header"
    if raw is None or not raw.strip():
        raw = request.query.get("last_event_id")
        source = "last_event_id"
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "INVALID_QUERY", f"{source} must be an event id (an integer)") from None
    if value < 0:
        raise ApiError(400, "INVALID_QUERY", f"{source} must be 0 or more")
    return value


def _sse(event: Event) -> bytes:
    data = json.dumps(event.as_dict(), default=str)
    return f"id: {event.id}\nevent: {event.name}\ndata: {data}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/events``: server-sent events. A client that reconnects with
    ``Last-Event-ID: N`` (or ``?last_event_id=N``) first gets the kept events
    after N (the bus keeps the last 1,000), then live ones."""
    orch = _orch(request)
    after = _last_event_id(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    # Subscribed before the history is read (one step, no await between):
    # nothing published meanwhile is lost or sent twice.
    if after is None:
        queue, backlog, missed = orch.bus.subscribe(), [], False
    else:
        resumed = orch.bus.resume(after)
        queue, backlog, missed = resumed.queue, resumed.backlog, resumed.missed
    try:
        await response.write(f"retry: {SSE_RETRY_MS}\n: connected\n\n".encode())
        if missed:
            await response.write(
                f": events after id {after} were missed; sending the kept ones\n\n".encode()
            )
        for event in backlog:
            await response.write(_sse(event))
        seam = backlog[-1].id if backlog else 0
        closing = request.app[CLOSING]
        while not closing.is_set():
            live = await _next_event(queue, closing, keepalive_s=15)
            if live is None:
                if not closing.is_set():
                    await response.write(b": keep-alive\n\n")
                continue
            if live.id <= seam:
                continue  # already sent from the history
            await response.write(_sse(live))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        orch.bus.unsubscribe(queue)
    return response


async def _next_event(
    queue: asyncio.Queue[Event], closing: asyncio.Event, keepalive_s: float
) -> Event | None:
    """The next event; None after ``keepalive_s`` without one, or once the API closes."""
    if not queue.empty():
        return queue.get_nowait()
    getting = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({getting, stopping}, timeout=keepalive_s, return_when="FIRST_COMPLETED")
    finally:
        stopping.cancel()
        if not getting.done():
            getting.cancel()
    return getting.result() if getting.done() and not getting.cancelled() else None


async def _close_streams(app: web.Application) -> None:
    app[CLOSING].set()


def build_app(
    orchestrator: ControlPlaneOrchestrator,
    settings: ApiSettings,
    reload_config: Callable[[], Awaitable[dict[str, Any]]],
) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware],
        client_max_size=settings.config.max_body_bytes,
    )
    app[ORCHESTRATOR] = orchestrator
    app[RELOAD] = reload_config
    app[SETTINGS] = settings
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)
    r = app.router
    r.add_get("/", page)
    r.add_get("/metrics", metrics)
    r.add_get("/api/v1/health", health)
    r.add_get("/api/v1/status", status)
    r.add_get("/api/v1/services", services)
    r.add_get("/api/v1/services/{name}", service)
    r.add_post("/api/v1/services/{name}/check", check_service)
    r.add_post("/api/v1/services/{name}/recover", recover_service)
    r.add_post("/api/v1/services/{name}/reset", reset_service)
    r.add_get("/api/v1/recoveries", recoveries)
    r.add_get("/api/v1/audit", audit)
    r.add_post("/api/v1/alerts", alerts)
    r.add_get("/api/v1/recoveries/{id}", recovery)
    r.add_post("/api/v1/recoveries/{id}/approve", approve_recovery)
    r.add_post("/api/v1/recoveries/{id}/reject", reject_recovery)
    r.add_get("/api/v1/workflows", workflows)
    r.add_get("/api/v1/workflows/{id}", workflow)
    r.add_post("/api/v1/workflows/{id}/start", workflow_start)
    r.add_post("/api/v1/workflows/{id}/stop", workflow_stop)
    r.add_post("/api/v1/workflows/{id}/run", workflow_run)
    r.add_get("/api/v1/workflows/{id}/runs", workflow_runs)
    r.add_get("/api/v1/events", events)
    r.add_get(OPENAPI_PATH, openapi_document)
    r.add_post("/api/v1/reload", reload)
    return app


__all__ = ["ApiSettings", "build_app", "configured_token"]
