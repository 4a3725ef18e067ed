"""The notification routes: a test message through the Apprise targets and webhooks."""

from __future__ import annotations

import asyncio

from aiohttp import web

from medic.api.errors import ApiError
from medic.api.inputs import caller, json_body
from medic.api.state import orchestrator


async def notifications_test(request: web.Request) -> web.Response:
    """``POST /api/v1/notifications/test`` ``{"name": NAME}`` (optional): a test
    message through every Apprise target and webhook (or those named so), sent at
    once past the queues; 200 ``{"results": [{"name", "kind", "url", "outcome",
    "detail"}]}`` with one row per Apprise URL and per webhook (``url`` never shows
    a secret); 404 ``NOTIFIER_NOT_FOUND``."""
    body = await json_body(request)
    unknown = sorted(set(body) - {"name"})
    if unknown:
        raise ApiError(422, "INVALID_BODY", f"unknown key(s) {unknown}; the body is {{'name'}}")
    name = body.get("name")
    if "name" in body and not isinstance(name, str):
        raise ApiError(422, "INVALID_BODY", "name must be a string")
    orch = orchestrator(request)
    known = sorted({*orch.apprise.lanes, *orch.notifications.lanes})
    if name is not None and name not in known:
        raise ApiError(
            404,
            "NOTIFIER_NOT_FOUND",
            f"no notifier (notifications.apprise or .webhooks) named {name!r}"
            + (f"; configured: {', '.join(known)}" if known else "; none is configured"),
        )
    orch.store.audit("operator.notify_test", None, **caller(request), name=name)
    apprise, webhooks = await asyncio.gather(orch.apprise.test(name), orch.notifications.test(name))
    return web.json_response({"results": apprise + webhooks})


__all__ = ["notifications_test"]
