"""The lean client of the common http probe (``medic.host.http_probe``) against
raw HTTP servers on 127.0.0.1: what the check reports is what aiohttp's client
gave, whether the server closes every connection (HTTP/1.0, as Monit asks),
keeps it, closes a kept one under the probe, or answers without a length."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from medic.config.checks import HttpCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.http import HttpCheck
from tests.helpers import free_port

Answer = Callable[[bytes], bytes]


class RawServer:
    """Answers each request head with ``answer(head)``; closes when it says so."""

    def __init__(self, answer: Answer, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.port = free_port()
        self.connections = 0
        self.heads: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.heads.append(head)
                writer.write(self.answer(head))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    def close_idle(self) -> None:
        """Close every open connection from the server's side (a keep-alive timeout)."""
        for writer in list(self._writers):
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.close_idle()
        await self._server.wait_closed()


@pytest.fixture
async def servers() -> AsyncIterator[list[RawServer]]:
    started: list[RawServer] = []
    yield started
    for server in started:
        await server.stop()


async def serve(servers: list[RawServer], answer: Answer, close_after: bool = False) -> RawServer:
    server = RawServer(answer, close_after)
    await server.start()
    servers.append(server)
    return server


def check(resources: Resources, server: RawServer, path: str = "/health", **opts: Any) -> HttpCheck:
    url = f"http://127.0.0.1:{server.port}{path}"
    options = HttpCheckOptions.model_validate({"type": "http", "url": url, **opts})
    return HttpCheck(options, CheckTarget(service="web"), resources)


HTTP10_CLOSE = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
KEEP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_a_server_that_closes_every_connection_is_asked_on_a_new_one_each_time(
    servers: list[RawServer], resources: Resources
) -> None:
    server = await serve(servers, lambda _: HTTP10_CLOSE, close_after=True)
    probe = check(resources, server)
    for _ in range(3):
        result = await probe.probe()
        assert result.healthy and result.detail == "HTTP 200 OK"
    assert server.connections == 3
    assert resources._http is None, "the lean client answered: aiohttp's session never opened"


async def test_a_kept_connection_closed_by_the_server_is_retried_on_a_new_one(
    servers: list[RawServer], resources: Resources
) -> None:
    server = await serve(servers, lambda _: KEEP)
    probe = check(resources, server)
    assert (await probe.probe()).healthy
    server.close_idle()
    await asyncio.sleep(0.05)
    assert (await probe.probe()).healthy
    assert server.connections == 2


async def test_an_unexpected_status_quotes_a_body_that_ends_with_the_connection(
    servers: list[RawServer], resources: Resources
) -> None:
    answer = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\ndb is down\n"
    server = await serve(servers, lambda _: answer, close_after=True)
    result = await check(resources, server).probe()
    assert not result.healthy
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert result.detail == "HTTP 503 Service Unavailable (expected 2xx, 3xx): db is down"
    assert result.data["status"] == 503


async def test_the_request_carries_the_checks_headers_and_the_path_with_its_query(
    servers: list[RawServer], resources: Resources
) -> None:
    server = await serve(servers, lambda _: KEEP)
    probe = check(resources, server, "/h?full=1", headers={"X-Token": "s3", "user-agent": "me"})
    assert (await probe.probe()).healthy
    head = server.heads[0].decode()
    assert head.startswith("GET /h?full=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head
    assert "X-Token: s3\r\n" in head and "user-agent: me\r\n" in head
    assert "User-Agent: Python" not in head


async def test_a_redirecting_url_is_followed_by_aiohttp_from_then_on(
    servers: list[RawServer], resources: Resources
) -> None:
    def answer(head: bytes) -> bytes:
        if head.startswith(b"GET /old "):
            return b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"
        return KEEP

    server = await serve(servers, answer)
    probe = check(resources, server, "/old", expect_status=[200])
    for _ in range(2):
        result = await probe.probe()
        assert result.healthy and result.data["status"] == 200
    paths = [head.split(b" ")[1] for head in server.heads]
    assert paths == [b"/old", b"/old", b"/new", b"/old", b"/new"]
