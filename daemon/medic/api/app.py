"""The HTTP status and control API (aiohttp), per design.md's table.

Reads are open on the loopback default (``api.auth_reads`` protects them);
every POST needs ``Authorization: Bearer <token>``. Every error is
``{"error": {"code", "message"}}`` with the matching status.

``build_app`` wires the parts: the middleware (``errors``, then ``auth``),
the app's state (``state``) and the routes below, whose handlers live in
``routes_daemon``, ``routes_services``, ``routes_recoveries``,
``routes_workflows`` and ``events``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from medic.api import routes_daemon as daemon
from medic.api import routes_fleet as fleet
from medic.api import routes_recoveries as recoveries
from medic.api import routes_services as services
from medic.api import routes_workflows as workflows
from medic.api.auth import auth_middleware
from medic.api.errors import errors_middleware
from medic.api.events import close_streams, events
from medic.api.openapi import OPENAPI_PATH
from medic.api.state import CLOSING, ORCHESTRATOR, RELOAD, SETTINGS, ApiSettings, Handler, ReloadFn
from medic.orchestrator import ControlPlaneOrchestrator

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/", daemon.page),
    ("GET", "/metrics", daemon.metrics),
    ("GET", "/api/v1/health", daemon.health),
    ("GET", "/api/v1/status", daemon.status),
    ("GET", "/api/v1/services", services.services),
    ("GET", "/api/v1/services/{name}", services.service),
    ("POST", "/api/v1/services/{name}/check", services.check_service),
    ("POST", "/api/v1/services/{name}/recover", services.recover_service),
    ("POST", "/api/v1/services/{name}/reset", services.reset_service),
    ("GET", "/api/v1/recoveries", recoveries.recoveries),
    ("GET", "/api/v1/audit", daemon.audit),
    ("POST", "/api/v1/alerts", recoveries.alerts),
    ("GET", "/api/v1/recoveries/{id}", recoveries.recovery),
    ("POST", "/api/v1/recoveries/{id}/approve", recoveries.approve_recovery),
    ("POST", "/api/v1/recoveries/{id}/reject", recoveries.reject_recovery),
    ("GET", "/api/v1/workflows", workflows.workflows),
    ("GET", "/api/v1/workflows/{id}", workflows.workflow),
    ("POST", "/api/v1/workflows/{id}/start", workflows.workflow_start),
    ("POST", "/api/v1/workflows/{id}/stop", workflows.workflow_stop),
    ("POST", "/api/v1/workflows/{id}/run", workflows.workflow_run),
    ("GET", "/api/v1/workflows/{id}/runs", workflows.workflow_runs),
    ("GET", "/api/v1/events", events),
    ("GET", OPENAPI_PATH, daemon.openapi_document),
    ("POST", "/api/v1/reload", daemon.reload),
    ("GET", "/api/v1/fleet", fleet.fleet_view),
    ("POST", "/api/v1/fleet/stop", fleet.fleet_stop),
    ("POST", "/api/v1/fleet/resume", fleet.fleet_resume),
)
"""Every route, in the order they are added: method, path, handler."""


def build_app(
    orchestrator: ControlPlaneOrchestrator, settings: ApiSettings, reload_config: ReloadFn
) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware],
        client_max_size=settings.config.max_body_bytes,
    )
    app[ORCHESTRATOR] = orchestrator
    app[RELOAD] = reload_config
    app[SETTINGS] = settings
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(close_streams)
    for method, path, handler in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)
        else:
            app.router.add_post(path, handler)
    return app


__all__ = ["ROUTES", "build_app"]
