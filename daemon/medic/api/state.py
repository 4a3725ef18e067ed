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

from medic.config.models import ApiConfig
from medic.orchestrator import ControlPlaneOrchestrator


class ApiSettings:
    """The API's config, swapped in place when a reload changes it."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.started = time.monotonic()


ORCHESTRATOR = web.AppKey("orchestrator", ControlPlaneOrchestrator)
ReloadFn = Callable[[], Awaitable[dict[str, Any]]]
RELOAD: web.AppKey[ReloadFn] = web.AppKey("reload")
SETTINGS = web.AppKey("settings", ApiSettings)
CLOSING = web.AppKey("closing", asyncio.Event)
"""Set when the API shuts down: event streams end at once instead of holding the stop."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def orchestrator(request: web.Request) -> ControlPlaneOrchestrator:
    return request.app[ORCHESTRATOR]


__all__ = [
    "CLOSING",
    "ORCHESTRATOR",
    "RELOAD",
    "SETTINGS",
    "ApiSettings",
    "Handler",
    "ReloadFn",
    "orchestrator",
]
