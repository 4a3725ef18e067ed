"""The ``http_request`` action: one HTTP request, ok when the status is expected.

Sent through the daemon's shared client session (``Resources.http``). The body
is ``json`` (sent as JSON) or ``body`` (sent as text), not both. The response
body's tail is kept as the step's output for the history. Network errors
(refused, DNS, reset) fail the step with the error.
"""

from __future__ import annotations

import aiohttp

from medic.config.actions import HttpRequestOptions
from medic.config.checks import status_matches
from medic.core.redact import redact_urls
from medic.heal.actions.base import Action, ActionContext, ActionResult

OUTPUT_TAIL_BYTES = 4 * 1024
MAX_READ_BYTES = 1 << 20
"""Bytes read from a response at most; the rest is not waited for."""


class HttpRequest(Action[HttpRequestOptions]):
    """``action: http_request``."""

    yaml_name = "http_request"
    options_model = HttpRequestOptions
    default_timeout_s = 30.0

    def describe(self, ctx: ActionContext) -> str:
        return f"{self.options.method} {redact_urls(self.options.url)}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        opts = self.options
        async with ctx.resources.http.request(
            opts.method,
            opts.url,
            headers=opts.headers,
            json=opts.json_body,
            data=opts.body,
            allow_redirects=opts.follow_redirects,
            ssl=opts.verify_tls,
        ) as response:
            tail = await _read_tail(response)
            text = tail.decode(response.charset or "utf-8", errors="replace")
            return self._judge(response.status, response.reason or "", text)

    def _judge(self, status: int, reason: str, body_tail: str) -> ActionResult:
        expected = self.options.expect_status
        ok = any(status_matches(status, spec) for spec in expected)
        detail = f"HTTP {status} {reason}".rstrip()
        if not ok:
            detail += f" (expected {', '.join(str(spec) for spec in expected)})"
        return ActionResult(ok=ok, detail=detail, output=body_tail, data={"status": status})


async def _read_tail(response: aiohttp.ClientResponse) -> bytes:
    """The last ``OUTPUT_TAIL_BYTES`` of the first ``MAX_READ_BYTES`` of the body."""
    tail = bytearray()
    read = 0
    while read < MAX_READ_BYTES:
        chunk = await response.content.read(64 * 1024)
        if not chunk:
            break
        read += len(chunk)
        tail += chunk
        del tail[:-OUTPUT_TAIL_BYTES]
    return bytes(tail)
