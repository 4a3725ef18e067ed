"""The http check against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from medic.config.checks import HttpCheckOptions, status_matches
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.http import MAX_BODY_BYTES, HttpCheck
from medic.watch.classify import classify_exception
from tests.helpers import free_port

TARGET = CheckTarget(service="web")


def _app() -> web.Application:
    never = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text='{"status": "ok", "db": "up"}')

    async def error(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom: database is gone")

    async def created(request: web.Request) -> web.Response:
        return web.Response(status=201, text="made")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="x" * (MAX_BODY_BYTES + 10) + "MARKER")

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    async def stalls_in_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"alive, and then")
        await never.wait()
        return response

    async def guarded(request: web.Request) -> web.Response:
        if request.headers.get("X-Token") != "secret":
            return web.Response(status=401, text="who are you")
        return web.Response(text=f"{request.method} welcome")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/error", error)
    app.router.add_get("/created", created)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/hang", hang)
    app.router.add_get("/stalls-in-body", stalls_in_body)
    app.router.add_route("*", "/guarded", guarded)
    return app


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    test_server = TestServer(_app(), host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


def _check(resources: Resources, url: str, **options: Any) -> HttpCheck:
    opts = HttpCheckOptions.model_validate({"type": "http", "url": url, **options})
    return HttpCheck(opts, TARGET, resources)


async def test_200_is_healthy(server: TestServer, resources: Resources) -> None:
    result = await _check(resources, str(server.make_url("/ok"))).probe()
    assert result.healthy
    assert result.detail == "HTTP 200 OK"
    assert result.data["status"] == 200


async def test_500_is_an_unhealthy_response(server: TestServer, resources: Resources) -> None:
    result = await _check(resources, str(server.make_url("/error"))).probe()
    assert not result.healthy
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert not result.definitive
    assert result.detail.startswith("HTTP 500 Internal Server Error (expected 2xx, 3xx)")
    assert "boom: database is gone" in result.detail
    assert result.data["status"] == 500


@pytest.mark.parametrize(
    ("expect_status", "healthy"),
    [
        ([201], True),
        ([200], False),
        (["2xx"], True),
        (["200-204"], True),
        (["4xx", "5xx"], False),
        ([200, "201-201"], True),
    ],
)
async def test_expect_status(
    server: TestServer, resources: Resources, expect_status: list[Any], healthy: bool
) -> None:
    check = _check(resources, str(server.make_url("/created")), expect_status=expect_status)
    result = await check.probe()
    assert result.healthy is healthy
    assert result.data["status"] == 201


async def test_expecting_an_error_status(server: TestServer, resources: Resources) -> None:
    check = _check(resources, str(server.make_url("/error")), expect_status=["5xx"])
    assert (await check.probe()).healthy


async def test_body_contains(server: TestServer, resources: Resources) -> None:
    url = str(server.make_url("/ok"))
    assert (await _check(resources, url, body_contains='"status": "ok"').probe()).healthy
    result = await _check(resources, url, body_contains="degraded").probe()
    assert not result.healthy
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert "does not contain 'degraded'" in result.detail


async def test_body_regex(server: TestServer, resources: Resources) -> None:
    url = str(server.make_url("/ok"))
    assert (await _check(resources, url, body_regex=r'"db":\s*"up"').probe()).healthy
    result = await _check(resources, url, body_regex=r'"db":\s*"down"').probe()
    assert not result.healthy
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert "does not match" in result.detail


async def test_reads_at_most_64_kib(server: TestServer, resources: Resources) -> None:
    result = await _check(resources, str(server.make_url("/big")), body_contains="MARKER").probe()
    assert not result.healthy, "the marker past 64 KiB must not have been read"
    within = await _check(resources, str(server.make_url("/big")), body_contains="xxx").probe()
    assert within.healthy


async def test_body_is_read_only_when_it_is_judged(
    server: TestServer, resources: Resources
) -> None:
    # Headers and part of the body arrive, the rest never does: the status is
    # the verdict unless a body match asks for the body.
    url = str(server.make_url("/stalls-in-body"))
    async with asyncio.timeout(2):
        result = await _check(resources, url).probe()
    assert result.healthy and result.detail == "HTTP 200 OK"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await _check(resources, url, body_contains="alive").probe()


async def test_redirect_followed(server: TestServer, resources: Resources) -> None:
    result = await _check(resources, str(server.make_url("/redirect")), expect_status=[200]).probe()
    assert result.healthy
    assert result.data["status"] == 200


async def test_redirect_not_followed(server: TestServer, resources: Resources) -> None:
    url = str(server.make_url("/redirect"))
    result = await _check(resources, url, follow_redirects=False).probe()
    assert result.healthy, "3xx is expected by default"
    assert result.data["status"] == 302
    strict = await _check(resources, url, follow_redirects=False, expect_status=[200]).probe()
    assert not strict.healthy
    assert strict.detail.startswith("HTTP 302 Found (expected 200)")


async def test_method_and_headers(server: TestServer, resources: Resources) -> None:
    url = str(server.make_url("/guarded"))
    denied = await _check(resources, url).probe()
    assert not denied.healthy and denied.data["status"] == 401
    check = _check(
        resources, url, method="post", headers={"X-Token": "secret"}, body_contains="POST welcome"
    )
    assert check.options.method == "POST"
    assert (await check.probe()).healthy


async def test_refused_raises_and_classifies_as_service_crash(resources: Resources) -> None:
    check = _check(resources, f"http://127.0.0.1:{free_port()}/healthz")
    with pytest.raises(aiohttp.ClientConnectorError) as raised:
        await check.probe()
    failure_type, detail = classify_exception(raised.value)
    assert failure_type is FailureType.SERVICE_CRASH
    assert detail.startswith("connection refused")


async def test_hung_server_times_out_as_connection_timeout(
    server: TestServer, resources: Resources
) -> None:
    check = _check(resources, str(server.make_url("/hang")))
    with pytest.raises(TimeoutError) as raised:
        async with asyncio.timeout(0.3):
            await check.probe()
    assert classify_exception(raised.value)[0] is FailureType.CONNECTION_TIMEOUT


async def test_uses_the_shared_session(server: TestServer, resources: Resources) -> None:
    session = resources.http
    check = _check(resources, str(server.make_url("/ok")))
    await check.probe()
    await check.probe()
    assert resources.http is session


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_url(self_signed: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed)
    runner = web.AppRunner(_app())
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{port}/ok"
    await runner.cleanup()


async def test_verify_tls(tls_url: str, resources: Resources) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _check(resources, tls_url).probe()
    result = await _check(resources, tls_url, verify_tls=False).probe()
    assert result.healthy


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://example.com/"}, "not an absolute http"),
        ({"url": "/healthz"}, "not an absolute http"),
        ({"url": "http://x/", "method": "FETCH"}, "unknown HTTP method"),
        ({"url": "http://x/", "expect_status": ["2xy"]}, "invalid status"),
        ({"url": "http://x/", "expect_status": [700]}, "not between 100 and 599"),
        ({"url": "http://x/", "expect_status": ["300-200"]}, "invalid status"),
        ({"url": "http://x/", "expect_status": []}, "at least 1"),
        ({"url": "http://x/", "body_regex": "(unclosed"}, "not a valid regular expression"),
        ({"url": "http://x/", "verb": "GET"}, "Extra inputs are not permitted"),
        ({}, "url"),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HttpCheckOptions.model_validate({"type": "http", **options})


def test_defaults() -> None:
    opts = HttpCheckOptions.model_validate({"type": "http", "url": "http://127.0.0.1/healthz"})
    assert opts.method == "GET"
    assert opts.expect_status == ["2xx", "3xx"]
    assert opts.verify_tls and opts.follow_redirects
    assert opts.timeout is None


@pytest.mark.parametrize(
    ("status", "spec", "matches"),
    [(200, 200, True), (204, "2xx", True), (301, "2xx", False), (404, "400-404", True)],
)
def test_status_matches(status: int, spec: int | str, matches: bool) -> None:
    assert status_matches(status, spec) is matches
