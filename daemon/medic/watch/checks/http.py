"""The ``type: http`` check: one HTTP request, judged by status and body.

Network errors are raised for ``medic.watch.classify``; only a response that arrived
but is wrong (status, body) becomes an ``unhealthy_response`` result here.

The common probe (plain ``http`` to an IP address, ``GET``, no body match) goes
through the lean client of ``medic.host.http_probe``, at about half the CPU;
the rest (TLS, host names, other methods, body matches) through aiohttp's
client. A URL that answers with a redirect is followed by aiohttp's client,
from then on for good when ``follow_redirects`` is on.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from medic.config.checks import HttpCheckOptions, status_matches
from medic.core.vocabulary import FailureType
from medic.host.http_probe import HttpProbes
from medic.watch.checks.base import Check, CheckResult, CheckTarget

if TYPE_CHECKING:
    from medic.host.resources import Resources

MAX_BODY_BYTES = 64 * 1024
_EXCERPT_CHARS = 200
_UNBOUNDED = aiohttp.ClientTimeout()
"""No aiohttp timers of its own: the runner's timeout already bounds every probe."""


class HttpCheck(Check[HttpCheckOptions]):
    """``type: http``: healthy when the status is expected and the body matches."""

    yaml_name = "http"
    options_model = HttpCheckOptions

    def __init__(
        self, options: HttpCheckOptions, target: CheckTarget, resources: Resources
    ) -> None:
        super().__init__(options, target, resources)
        self._url = URL(options.url)  # parsed once, not on every request
        self._body_regex = re.compile(options.body_regex) if options.body_regex else None
        self._matches_body = options.body_contains is not None or self._body_regex is not None
        self._lean = self._lean_request()
        self._address = (self._url.host or "", self._url.port or 80)
        self._expected: dict[int, bool] = {}
        """Status -> expected, as the statuses come (a check sees one or two)."""
        self._last_ok: CheckResult | None = None
        """The last healthy result: the next one like it is this same (frozen) object."""

    def _lean_request(self) -> bytes | None:
        """The request the lean client sends, when this check's probe can take it."""
        url, opts = self._url, self.options
        if url.scheme != "http" or opts.method != "GET" or self._matches_body:
            return None
        host_header = url.host_port_subcomponent
        # Names go to aiohttp's client, which caches their lookups.
        if host_header is None or not _is_ip_address(url.host):
            return None
        target = url.raw_path_qs or "/"
        return HttpProbes.request_bytes("GET", host_header, target, opts.headers)

    def _unexpected(self, status: int) -> bool:
        expected = self._expected.get(status)
        if expected is None:
            specs = self.options.expect_status
            expected = self._expected[status] = any(status_matches(status, s) for s in specs)
        return not expected

    async def probe(self) -> CheckResult:
        if self._lean is not None:
            host, port = self._address
            answer = await self.resources.http_probes.probe(
                host, port, self._lean, self._unexpected, MAX_BODY_BYTES
            )
            if not (self.options.follow_redirects and 300 <= answer.status < 400):
                body = "" if answer.body is None else _decode(answer.body, answer.content_type)
                expected = answer.body is None
                return self._judge(answer.status, answer.reason, body, expected)
            self._lean = None  # it redirects: aiohttp's client follows, now and from now on
        return await self._probe_with_aiohttp()

    async def _probe_with_aiohttp(self) -> CheckResult:
        opts = self.options
        async with self.resources.http.request(
            opts.method,
            self._url,
            headers=opts.headers,
            allow_redirects=opts.follow_redirects,
            ssl=opts.verify_tls,
            timeout=_UNBOUNDED,
        ) as response:
            status = response.status
            expected = any(status_matches(status, spec) for spec in opts.expect_status)
            # The body is read only when it is judged or quoted: an unread
            # body that has not fully arrived costs its connection, not a wait.
            body = ""
            if self._matches_body or not expected:
                raw = await _read_limited(response, MAX_BODY_BYTES)
                body = raw.decode(response.charset or "utf-8", errors="replace")
            return self._judge(status, response.reason or "", body, expected)

    def _judge(self, status: int, reason: str, body: str, expected: bool) -> CheckResult:
        opts = self.options
        head = f"HTTP {status} {reason}".rstrip()
        if not expected:
            wanted = ", ".join(str(spec) for spec in opts.expect_status)
            detail = f"{head} (expected {wanted})" + _excerpt(body)
            return CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, detail, status=status)
        if opts.body_contains is not None and opts.body_contains not in body:
            detail = f"{head} but the body does not contain {opts.body_contains!r}" + _excerpt(body)
            return CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, detail, status=status)
        if self._body_regex is not None and not self._body_regex.search(body):
            detail = f"{head} but the body does not match /{opts.body_regex}/" + _excerpt(body)
            return CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, detail, status=status)
        last = self._last_ok
        if last is not None and last.detail == head:
            return last
        self._last_ok = CheckResult.ok(head, status=status)
        return self._last_ok


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: a health endpoint must not flood the daemon."""
    body = bytearray()
    while len(body) < limit:
        chunk = await response.content.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _is_ip_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return True


def _decode(body: bytes, content_type: str) -> str:
    """As aiohttp's ``response.charset``: the Content-Type's charset, else UTF-8."""
    charset = "utf-8"
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"'):
            charset = value.strip().strip('"')
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _excerpt(body: str) -> str:
    text = " ".join(body.split())
    if not text:
        return ""
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "..."
    return f": {text}"
