"""The routes about the daemon itself: the status page, metrics, health, the
seed's status, the audit trail, reload and this API's OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiohttp import web

from medic.api import listing
from medic.api.errors import error_response
from medic.api.inputs import caller, int_query
from medic.api.page import PAGE_HEADERS, render_status_page
from medic.api.state import RELOAD, SCOPES, SETTINGS, orchestrator
from medic.core.errors import ConfigFileError, ConfigInvalid
from medic.tell.metrics import CONTENT_TYPE


async def page(request: web.Request) -> web.Response:
    html = render_status_page(orchestrator(request))
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; ``?name[]=SAMPLE`` (repeatable) keeps only those samples."""
    # On the loop, a chunk of series at a time: see Metrics.render_async.
    names = request.query.getall("name[]", [])
    body = await orchestrator(request).metrics.render_async(names)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def health(request: web.Request) -> web.Response:
    """The daemon itself: ``status`` is ``healthy``, or ``degraded`` while history
    writes wait in memory (``history``: the state disk is full...). Always 200:
    the daemon still checks and heals, and a supervisor that restarted it on a
    degraded history would lose the writes that wait."""
    orch = orchestrator(request)
    history = orch.store.backlog.health()
    return web.json_response(
        {
            "status": "healthy" if history.status == "ok" else "degraded",
            "history": history.as_json(),
            "timestamp": datetime.now(UTC).isoformat(),
            "uptime_seconds": round(time.monotonic() - request.app[SETTINGS].started, 3),
            "dry_run": orch.dry_run,
            "config": str(orch.config.path),
            # Tasks on the daemon's event loop: flat in a steady state, so a leak shows here.
            "asyncio_tasks": len(asyncio.all_tasks()),
        }
    )


async def status(request: web.Request) -> web.Response:
    return web.json_response(listing.system_status(orchestrator(request)))


async def audit(request: web.Request) -> web.Response:
    """``GET /api/v1/audit?kind=&service=&limit=``: the audit trail, newest first.

    ``kind`` is exact (``operator.recover``) or a prefix ending in ``.*``
    (``operator.*``: every operator call; ``recovery.*``: held, approved,
    rejected recoveries...); ``limit`` 0..1000, default 100.
    Response 200: ``{"audit": [{"id": int, "at": ISO time, "kind": str,
    "service": str | null, "data": {...}}]}``; ``data.who`` names the caller of
    a control endpoint (``X-Medic-Operator`` header, else the client address),
    ``data.token`` the name of the token it used.
    400 ``INVALID_QUERY`` for a bad ``limit``.
    """
    limit = int_query(request, "limit", 100, 1000)
    entries = orchestrator(request).store.audit_entries(
        request.query.get("kind") or None, limit, request.query.get("service") or None
    )
    return web.json_response({"audit": [entry.as_json() for entry in entries]})


async def reload(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    orch.store.audit("operator.reload", None, **caller(request))
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


async def openapi_document(request: web.Request) -> web.Response:
    # The document's schemas are imported by the first request for it, not by
    # every start-up (issue 15's footprint).
    from medic.api.openapi import build_document

    routes = [
        (route.method, route.resource.canonical)
        for route in request.app.router.routes()
        if route.resource is not None
    ]
    return web.json_response(build_document(routes, request.app[SCOPES]))


__all__ = ["audit", "health", "metrics", "openapi_document", "page", "reload", "status"]
