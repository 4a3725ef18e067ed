"""The notification routes: a test message through the Apprise targets."""

from __future__ import annotations

from aiohttp import web

from medic.api.errors import ApiError
from medic.api.inputs import caller, json_body
from medic.api.state import orchestrator


async def notifications_test(request: web.Request) -> web.Response:
    """``POST /api/v1/notifications/test`` ``{"name": NAME}`` (optional): a test
    message through every Apprise target (or the one named), sent at once past the
    queues; 200 ``{"results": [{"name", "url", "outcome", "detail"}]}`` with one row
    per URL (``url`` names it by position and scheme only); 404 ``NOTIFIER_NOT_FOUND``."""
    body = await json_body(request)
    unknown = sorted(set(body) - {"name"})
    if unknown:
        raise ApiError(422, "INVALID_BODY", f"unknown key(s) {unknown}; the body is {{'name'}}")
    name = body.get("name")
    if "name" in body and not isinstance(name, str):
        raise ApiError(422, "INVALID_BODY", "name must be a string")
    orch = orchestrator(request)
    known = sorted(orch.apprise.lanes)
    if name is not None and name not in known:
        raise ApiError(
            404,
            "NOTIFIER_NOT_FOUND",
            f"no notifications.apprise target named {name!r}"
            + (f"; configured: {', '.join(known)}" if known else "; none is configured"),
        )
    orch.store.audit("operator.notify_test", None, **caller(request), name=name)
    return web.json_response({"results": await orch.apprise.test(name)})


__all__ = ["notifications_test"]
