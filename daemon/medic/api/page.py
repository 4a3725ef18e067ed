"""The status page at ``GET /`` and the two files it loads from the daemon
(``/static/status.js``, ``/static/status.css``): no external assets, no inline
script or style, and a ``Content-Security-Policy`` that lets the page run
only the daemon's own script, so text a service puts on the page (names,
check details, logs) can never become markup that runs."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from aiohttp import web

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _static(name: str) -> str:
    return files("medic.api").joinpath(f"static/{name}").read_text(encoding="utf-8")


def render_status_page(_orchestrator: Any) -> str:
    return _static("status.html")


def _asset(name: str, content_type: str) -> web.Response:
    return web.Response(text=_static(name), content_type=content_type, headers=PAGE_HEADERS)


async def script(_request: web.Request) -> web.Response:
    return _asset("status.js", "text/javascript")


async def stylesheet(_request: web.Request) -> web.Response:
    return _asset("status.css", "text/css")


__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_HEADERS", "render_status_page", "script", "stylesheet"]
