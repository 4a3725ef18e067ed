"""The fleet's routes (``fleet:``): its view, the emergency stop and resume.

Without ``fleet:`` every one answers 404 ``FLEET_NOT_CONFIGURED``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from medic.api.errors import ApiError
from medic.api.inputs import json_body, operator
from medic.api.state import orchestrator

_STR = {"type": "string"}


def _fleet(request: web.Request) -> Any:
    fleet = orchestrator(request).fleet
    if fleet is None:
        raise ApiError(404, "FLEET_NOT_CONFIGURED", "this medic has no fleet: section")
    return fleet


async def fleet_view(request: web.Request) -> web.Response:
    return web.json_response(await _fleet(request).status())


async def _scope(request: web.Request) -> tuple[str | None, str]:
    body = await json_body(request)
    group, reason = body.get("group"), body.get("reason", "")
    if group is not None and not isinstance(group, str):
        raise ApiError(422, "INVALID_BODY", "group must be a string")
    if not isinstance(reason, str):
        raise ApiError(422, "INVALID_BODY", "reason must be a string")
    return group, reason


async def fleet_stop(request: web.Request) -> web.Response:
    from medic.fleet.link import FleetUnavailable  # with fleet: only

    fleet = _fleet(request)
    group, reason = await _scope(request)
    try:
        stop = await fleet.emergency_stop(group, reason, operator(request))
    except FleetUnavailable as e:
        raise ApiError(409, "FLEET_UNAVAILABLE", str(e)) from e
    return web.json_response({"stopped": True, **stop})


async def fleet_resume(request: web.Request) -> web.Response:
    from medic.fleet.link import FleetUnavailable  # with fleet: only

    fleet = _fleet(request)
    group, _reason = await _scope(request)
    try:
        await fleet.resume(group)
    except FleetUnavailable as e:
        raise ApiError(409, "FLEET_UNAVAILABLE", str(e)) from e
    return web.json_response({"stopped": False, "group": group})


def _host() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "host": _STR,
            "group": _STR,
            "state": {"type": "string", "enum": ["ok", "failing", "stopping", "lost"]},
            "heartbeat_age_s": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        },
        "required": ["host", "group", "state"],
    }


def schemas() -> dict[str, Any]:
    """The fleet's component schemas (loose: a fleet view grows with the fleet)."""
    host = _host()
    return {
        "Fleet": {
            "type": "object",
            "properties": {
                "host": _STR,
                "group": _STR,
                "connected": {"type": "boolean"},
                "emergency_stop": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                "hold": {"anyOf": [_STR, {"type": "null"}]},
                "hosts": {"type": "array", "items": host},
                "locks": {"type": "array", "items": {"type": "object"}},
                "slots": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["host", "group", "connected", "hosts", "locks"],
            "example": {
                "host": "web-01",
                "group": "eu-1",
                "connected": True,
                "emergency_stop": None,
                "hold": None,
                "hosts": [
                    {"host": "web-01", "group": "eu-1", "state": "ok", "heartbeat_age_s": 1.0}
                ],
                "locks": [{"service": "db", "host": "web-02", "group": "eu-1", "fence": 812}],
                "slots": [],
            },
        },
        "FleetStopRequest": {
            "type": "object",
            "properties": {"group": _STR, "reason": _STR},
            "example": {"group": "eu-1", "reason": "bad deploy"},
        },
        "FleetStopResult": {
            "type": "object",
            "properties": {
                "stopped": {"type": "boolean"},
                "group": {"anyOf": [_STR, {"type": "null"}]},
            },
            "required": ["stopped"],
            "example": {"stopped": True, "group": "eu-1"},
        },
    }
