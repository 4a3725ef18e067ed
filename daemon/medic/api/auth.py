"""The gate every request passes after routing: the bearer token and its
scope, the body size limit, and a JSON body that must parse even where the
endpoint ignores it.

Each route names the scope it needs in ``medic.api.app.ROUTES`` (one place):
``read`` for GETs, ``operate`` for what an on-call operator does to a service,
``admin`` for the rest. A scope includes the ones before it. GETs are open on a
loopback ``api.listen`` (unless ``api.auth_reads``) and need ``read`` elsewhere
(unless ``api.allow_unauthenticated_reads``); ``/api/v1/health`` is always open.
Tokens are compared in constant time; their values are never logged or echoed,
only their names (the audit trail's ``token``).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from medic.api.errors import ApiError
from medic.api.inputs import TOKEN_NAME, json_body
from medic.api.state import SCOPES, SETTINGS, Handler
from medic.config.models import ApiConfig, Scope

SCOPE_ORDER: tuple[Scope, ...] = ("read", "operate", "admin")
DEFAULT_TOKEN = "default"
"""The name the single ``api.token_env``/``api.token_file`` token goes by (scope admin)."""
OPEN_PATHS = frozenset({"/api/v1/health"})


@dataclass(frozen=True)
class Credential:
    name: str
    value: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        rank = SCOPE_ORDER.index(scope)
        return any(SCOPE_ORDER.index(s) >= rank for s in self.scopes)


def _secret(env: str | None, file: Path | None) -> str | None:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    if env:
        return os.environ.get(env) or None
    return None


def credentials(config: ApiConfig) -> Iterator[Credential]:
    """Every token that is configured and present now (read on each request:
    a rotated file or a changed environment takes effect at once)."""
    legacy = _secret(config.token_env, config.token_file)
    if legacy is not None:
        yield Credential(DEFAULT_TOKEN, legacy, frozenset({"admin"}))
    for token in config.tokens:
        value = _secret(token.token_env, token.token_file)
        if value is not None:
            yield Credential(token.name, value, frozenset(token.scopes))


def required_scope(request: web.Request) -> Scope | None:
    """The scope this request needs; None when it is open to anyone."""
    config = request.app[SETTINGS].config
    route = request.match_info.route
    named = request.app[SCOPES].get(
        (route.method, route.resource.canonical if route.resource else "")
    )
    if request.method in ("GET", "HEAD", "OPTIONS"):
        reads_closed = config.auth_reads or not (
            config.loopback or config.allow_unauthenticated_reads
        )
        if request.path in OPEN_PATHS or not reads_closed:
            return None
        return named or "read"
    return named or "admin"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[SETTINGS].config
    if request.match_info.http_exception is not None:
        return await handler(request)  # no such route or method: its 404/405, not a 401
    scope = required_scope(request)
    if scope is not None:
        request[TOKEN_NAME] = _authorize(request, config, scope)
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


def _authorize(request: web.Request, config: ApiConfig, scope: Scope) -> str:
    """The name of the token the request carries, if it has ``scope``."""
    known = list(credentials(config))
    if not known:
        raise ApiError(403, "CONTROL_DISABLED", _disabled_message(config))
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    match = _match(given.strip().encode(), known) if scheme.lower() == "bearer" else None
    if match is None:
        raise ApiError(401, "UNAUTHORIZED", "missing or wrong bearer token")
    if not match.allows(scope):
        raise ApiError(
            403, "FORBIDDEN", f"the token {match.name!r} does not have the {scope!r} scope"
        )
    return match.name


def _match(given: bytes, known: list[Credential]) -> Credential | None:
    # Every token is compared, each in constant time: neither the timing of
    # one comparison nor how many ran tells a caller how close it came.
    found = None
    for credential in known:
        if hmac.compare_digest(given, credential.value.encode()) and found is None:
            found = credential
    return found


def _disabled_message(config: ApiConfig) -> str:
    if config.token_env:
        how = f"set the {config.token_env} environment variable"
    elif config.tokens:
        how = "provide a token named in api.tokens (its token_env or token_file)"
    else:
        how = "set api.token_env, api.token_file or api.tokens in the config"
    return f"control endpoints are disabled: no API token is configured; {how}"


__all__ = [
    "DEFAULT_TOKEN",
    "SCOPE_ORDER",
    "Credential",
    "auth_middleware",
    "credentials",
    "required_scope",
]
