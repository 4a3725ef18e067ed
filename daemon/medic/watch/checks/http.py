"""The ``type: http`` check: one HTTP request, judged by status and body.

Network errors are raised for ``medic.watch.classify``; only a response that arrived
but is wrong (status, body) becomes an ``unhealthy_response`` result here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

import aiohttp
from pydantic import AfterValidator, Field
from yarl import URL

from medic.config.types import Regex
from medic.core.vocabulary import FailureType
from medic.watch.checks.base import Check, CheckOptions, CheckResult, CheckTarget

if TYPE_CHECKING:
    from medic.host.resources import Resources

MAX_BODY_BYTES = 64 * 1024
_EXCERPT_CHARS = 200
_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_STATUS_RANGE = re.compile(r"^(\d{3})-(\d{3})$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNBOUNDED = aiohttp.ClientTimeout()
"""No aiohttp timers of its own: the runner's timeout already bounds every probe."""

StatusSpec = int | str


def status_matches(status: int, spec: StatusSpec) -> bool:
    """Whether ``status`` fits one entry of ``expect_status`` (200, "2xx", "200-204")."""
    if isinstance(spec, int):
        return status == spec
    if match := _STATUS_CLASS.match(spec):
        return status // 100 == int(match.group(1))
    if match := _STATUS_RANGE.match(spec):
        return int(match.group(1)) <= status <= int(match.group(2))
    return False


def validate_status_spec(spec: StatusSpec) -> StatusSpec:
    """``spec`` normalised (``2XX`` -> ``2xx``), or ValueError naming the three forms."""
    if isinstance(spec, int):
        if not 100 <= spec <= 599:
            raise ValueError(f"HTTP status {spec} is not between 100 and 599")
        return spec
    spec = spec.strip().lower()
    if _STATUS_CLASS.match(spec):
        return spec
    if (match := _STATUS_RANGE.match(spec)) and int(match.group(1)) <= int(match.group(2)):
        return spec
    raise ValueError(
        f"invalid status {spec!r}: use a code (200), a class ('2xx') or a range ('200-204')"
    )


def _default_expect_status() -> list[StatusSpec]:
    return ["2xx", "3xx"]


def _absolute_http_url(value: str) -> str:
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an absolute http:// or https:// URL")
    return value


def _known_method(value: str) -> str:
    method = value.upper()
    if method not in _METHODS:
        raise ValueError(f"unknown HTTP method {value!r}; known: {', '.join(sorted(_METHODS))}")
    return method


def _valid_statuses(value: list[StatusSpec]) -> list[StatusSpec]:
    return [validate_status_spec(spec) for spec in value]


HttpUrl = Annotated[str, AfterValidator(_absolute_http_url)]
"""An absolute http:// or https:// URL (shared by the check and http_request)."""
HttpMethod = Annotated[str, AfterValidator(_known_method)]
StatusList = Annotated[list[StatusSpec], Field(min_length=1), AfterValidator(_valid_statuses)]


class Options(CheckOptions):
    type: Literal["http"]
    url: HttpUrl
    method: HttpMethod = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: StatusList = Field(default_factory=_default_expect_status)
    body_contains: str | None = None
    body_regex: Regex | None = None
    verify_tls: bool = True
    follow_redirects: bool = True


class HttpCheck(Check[Options]):
    """``type: http``: healthy when the status is expected and the body matches."""

    type_name = "http"
    options_model = Options

    def __init__(self, options: Options, target: CheckTarget, resources: Resources) -> None:
        super().__init__(options, target, resources)
        self._url = URL(options.url)  # parsed once, not on every request
        self._body_regex = re.compile(options.body_regex) if options.body_regex else None
        self._matches_body = options.body_contains is not None or self._body_regex is not None

    async def probe(self) -> CheckResult:
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
        return CheckResult.ok(head, status=status)


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: a health endpoint must not flood the daemon."""
    body = bytearray()
    while len(body) < limit:
        chunk = await response.content.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _excerpt(body: str) -> str:
    text = " ".join(body.split())
    if not text:
        return ""
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "..."
    return f": {text}"
