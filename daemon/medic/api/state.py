"""What the API's handlers share: its settings and the app's typed keys.

``build_app`` puts the orchestrator, the reload function, the settings and
the closing flag under these keys; handlers read them back through
``orchestrator(request)`` and ``request.app[...]``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from medic.config.models import ApiConfig, Scope
from medic.core.redact import SecretValues
from medic.orchestrator import ControlPlaneOrchestrator


class ApiSettings:
    """The API's config, swapped in place when a reload changes it."""

    def __init__(self, config: ApiConfig, secrets: SecretValues | None = None) -> None:
        self.config = config
        self.secrets = SecretValues() if secrets is None else secrets
        """Masked by value in every answer and event."""
        self.started = time.monotonic()
        self.event_clients = 0
        """Event streams open now (capped by ``api.max_event_clients``)."""


ORCHESTRATOR = web.AppKey("orchestrator", ControlPlaneOrchestrator)
ReloadFn = Callable[[], Awaitable[dict[str, Any]]]
RELOAD: web.AppKey[ReloadFn] = web.AppKey("reload")
SETTINGS = web.AppKey("settings", ApiSettings)
CLOSING = web.AppKey("closing", asyncio.Event)
"""Set when the API shuts down: event streams end at once instead of holding the stop."""

SCOPES: web.AppKey[dict[tuple[str, str], Scope]] = web.AppKey("scopes")
"""(method, path template) -> the scope a token needs there (``app.ROUTES``)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def orchestrator(request: web.Request) -> ControlPlaneOrchestrator:
    return request.app[ORCHESTRATOR]


__all__ = [
    "CLOSING",
    "ORCHESTRATOR",
    "RELOAD",
    "SCOPES",
    "SETTINGS",
    "ApiSettings",
    "Handler",
    "ReloadFn",
    "orchestrator",
]
