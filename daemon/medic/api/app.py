"""The HTTP status and control API (aiohttp), per design.md's table.

Reads are open on the loopback default (``api.auth_reads`` protects them)
and need a ``read`` token on any other address; every POST needs
``Authorization: Bearer <token>`` with the scope its route names below. Every error is
``{"error": {"code", "message"}}`` with the matching status.

``build_app`` wires the parts: the middleware (``errors``, then ``auth``),
the app's state (``state``) and the routes below, whose handlers live in
``routes_daemon``, ``routes_services``, ``routes_recoveries``,
``routes_workflows`` and ``events``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from medic.api import page
from medic.api import routes_daemon as daemon
from medic.api import routes_fleet as fleet
from medic.api import routes_notifications as notifications
from medic.api import routes_recoveries as recoveries
from medic.api import routes_services as services
from medic.api import routes_workflows as workflows
from medic.api._operations import OPENAPI_PATH
from medic.api.auth import auth_middleware
from medic.api.errors import errors_middleware
from medic.api.events import close_streams, events
from medic.api.state import (
    CLOSING,
    ORCHESTRATOR,
    RELOAD,
    SCOPES,
    SETTINGS,
    ApiSettings,
    Handler,
    ReloadFn,
)
from medic.config.models import Scope
from medic.orchestrator import ControlPlaneOrchestrator

READ: Scope = "read"
OPERATE: Scope = "operate"
ADMIN: Scope = "admin"

ROUTES: tuple[tuple[str, str, Handler, Scope], ...] = (
    ("GET", "/", daemon.page, READ),
    ("GET", "/static/status.js", page.script, READ),
    ("GET", "/static/status.css", page.stylesheet, READ),
    ("GET", "/metrics", daemon.metrics, READ),
    ("GET", "/api/v1/health", daemon.health, READ),
    ("GET", "/api/v1/status", daemon.status, READ),
    ("GET", "/api/v1/services", services.services, READ),
    ("GET", "/api/v1/services/{name}", services.service, READ),
    ("GET", "/api/v1/services/{name}/checks", services.checks, READ),
    ("POST", "/api/v1/services/{name}/check", services.check_service, OPERATE),
    ("POST", "/api/v1/services/{name}/recover", services.recover_service, OPERATE),
    ("POST", "/api/v1/services/{name}/reset", services.reset_service, OPERATE),
    ("POST", "/api/v1/services/{name}/pause", services.pause_service, OPERATE),
    ("POST", "/api/v1/services/{name}/resume", services.resume_service, OPERATE),
    ("GET", "/api/v1/recoveries", recoveries.recoveries, READ),
    ("GET", "/api/v1/audit", daemon.audit, READ),
    ("POST", "/api/v1/alerts", recoveries.alerts, OPERATE),
    ("GET", "/api/v1/recoveries/{id}", recoveries.recovery, READ),
    ("POST", "/api/v1/recoveries/{id}/approve", recoveries.approve_recovery, OPERATE),
    ("POST", "/api/v1/recoveries/{id}/reject", recoveries.reject_recovery, OPERATE),
    ("GET", "/api/v1/workflows", workflows.workflows, READ),
    ("GET", "/api/v1/workflows/{id}", workflows.workflow, READ),
    ("POST", "/api/v1/workflows/{id}/start", workflows.workflow_start, ADMIN),
    ("POST", "/api/v1/workflows/{id}/stop", workflows.workflow_stop, ADMIN),
    ("POST", "/api/v1/workflows/{id}/run", workflows.workflow_run, ADMIN),
    ("GET", "/api/v1/workflows/{id}/runs", workflows.workflow_runs, READ),
    ("POST", "/api/v1/workflows/{id}/runs/{run}/resume", workflows.workflow_run_resume, ADMIN),
    ("GET", "/api/v1/events", events, READ),
    ("GET", OPENAPI_PATH, daemon.openapi_document, READ),
    ("POST", "/api/v1/reload", daemon.reload, ADMIN),
    ("GET", "/api/v1/fleet", fleet.fleet_view, READ),
    ("POST", "/api/v1/fleet/stop", fleet.fleet_stop, ADMIN),
    ("POST", "/api/v1/fleet/resume", fleet.fleet_resume, ADMIN),
    ("POST", "/api/v1/notifications/test", notifications.notifications_test, OPERATE),
)
"""Every route, in the order they are added: method, path, handler, and the
scope a token needs there (reads need ``read`` only where reads are closed)."""


@web.middleware
async def redact_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer (JSON, the page, errors) with the secret values medic knows
    masked, whatever put them there (a step's output, a detail). Not /metrics:
    names and numbers only, and megabytes of them at 10,000 services."""
    response = await handler(request)
    if request.path == "/metrics":
        return response
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        text = response.body.decode("utf-8", "replace")
        masked = request.app[SETTINGS].secrets.redact(text)
        if masked != text:
            response.body = masked.encode()
    return response


def build_app(
    orchestrator: ControlPlaneOrchestrator, settings: ApiSettings, reload_config: ReloadFn
) -> web.Application:
    app = web.Application(
        middlewares=[redact_middleware, errors_middleware, auth_middleware],
        client_max_size=settings.config.max_body_bytes,
    )
    app[ORCHESTRATOR] = orchestrator
    app[RELOAD] = reload_config
    app[SETTINGS] = settings
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(close_streams)
    app[SCOPES] = {(method, path): scope for method, path, _, scope in ROUTES}
    for method, path, handler, _ in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)
        else:
            app.router.add_post(path, handler)
    return app


__all__ = ["ROUTES", "build_app"]
