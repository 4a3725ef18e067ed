"""The shared HTTP session keeps idle connections: checks reuse them, and a
server that died or restarted is still seen at the next check."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from medic.config.checks import HttpCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.http import HttpCheck
from medic.watch.classify import classify_exception
from tests.helpers import free_port


class _Server:
    """A tiny HTTP/1.1 keep-alive server that can crash (RST) and come back."""

    def __init__(self, port: int, body: bytes = b"old") -> None:
        self.port = port
        self.body = body
        self.hang = False
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if self.hang:
                    await asyncio.Event().wait()
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.body)
                writer.write(head + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)

    async def crash(self) -> None:
        """Like a killed process: the port closes and every connection is reset."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()


def _check(resources: Resources, port: int, **options: Any) -> HttpCheck:
    url = f"http://127.0.0.1:{port}/healthz"
    opts = HttpCheckOptions.model_validate({"type": "http", "url": url, **options})
    return HttpCheck(opts, CheckTarget(service="web"), resources)


async def test_checks_reuse_an_idle_connection(resources: Resources) -> None:
    server = _Server(free_port())
    await server.start()
    check = _check(resources, server.port)
    for _ in range(3):
        assert (await check.probe()).healthy
    assert server.connections == 1
    await server.crash()


async def test_a_crashed_server_is_seen_at_the_next_check(resources: Resources) -> None:
    server = _Server(free_port())
    await server.start()
    check = _check(resources, server.port)
    assert (await check.probe()).healthy
    await server.crash()
    with pytest.raises(aiohttp.ClientConnectorError) as raised:
        await check.probe()
    assert classify_exception(raised.value)[0] is FailureType.SERVICE_CRASH


async def test_a_restarted_server_is_asked_afresh(resources: Resources) -> None:
    port = free_port()
    old = _Server(port, b"old")
    await old.start()
    check = _check(resources, port, body_contains="new")
    assert not (await check.probe()).healthy
    await old.crash()
    new = _Server(port, b"new")
    await new.start()
    assert (await check.probe()).healthy
    assert new.connections == 1
    await new.crash()


async def test_a_server_that_hangs_on_a_kept_connection_times_out(
    resources: Resources,
) -> None:
    server = _Server(free_port())
    await server.start()
    check = _check(resources, server.port)
    assert (await check.probe()).healthy
    server.hang = True
    with pytest.raises(TimeoutError) as raised:
        async with asyncio.timeout(0.3):
            await check.probe()
    assert classify_exception(raised.value)[0] is FailureType.CONNECTION_TIMEOUT
    await server.crash()
