"""What handlers read from a request besides its path: the JSON body (parsed
once), integer query parameters, and who is calling (for the audit trail)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from medic.api.errors import ApiError

PARSED_BODY: web.RequestKey[dict[str, Any]] = web.RequestKey("medic.parsed_body")
"""The request's JSON body once parsed: the middleware checks it, the handler uses it."""

TOKEN_NAME: web.RequestKey[str] = web.RequestKey("medic.token_name")
"""The name of the token the request was let in with (never its value)."""


async def json_body(request: web.Request) -> dict[str, Any]:
    if PARSED_BODY not in request:
        request[PARSED_BODY] = await _parse_json_body(request)
    return request[PARSED_BODY]


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


def int_query(request: web.Request, key: str, default: int, maximum: int) -> int:
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


def operator(request: web.Request) -> str:
    """Who calls a control endpoint: ``X-Medic-Operator``, else the client address."""
    return request.headers.get("X-Medic-Operator") or (request.remote or "unknown")


def caller(request: web.Request) -> dict[str, str | None]:
    """For the audit trail: who called, and the name of the token they used."""
    return {"who": operator(request), "token": request.get(TOKEN_NAME)}


__all__ = ["PARSED_BODY", "TOKEN_NAME", "caller", "int_query", "json_body", "operator"]
