"""The gate every request passes after routing: the bearer token (every POST;
reads too with ``api.auth_reads``, except health), the body size limit, and a
JSON body that must parse even where the endpoint ignores it."""

from __future__ import annotations

import hmac
import os

from aiohttp import web

from medic.api.errors import ApiError
from medic.api.inputs import json_body
from medic.api.state import SETTINGS, Handler
from medic.config.models import ApiConfig


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
        await json_body(request)


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


__all__ = ["auth_middleware", "configured_token"]
