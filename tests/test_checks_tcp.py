"""The tcp check against real asyncio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from medic.config.checks import TcpCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.tcp import MAX_REPLY_BYTES, TcpCheck
from medic.watch.classify import classify_exception
from tests.helpers import async_wait_for, free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    port: int
    received: list[bytes] = field(default_factory=list)
    closed_by_client: int = 0


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    """Start a server whose per-connection behaviour the test provides."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> Server:
        state = Server(port=0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await handler(reader, writer)
            # Count the client closing its end: the check must not leak sockets.
            while True:
                data = await reader.read(1024)
                if not data:
                    state.closed_by_client += 1
                    return
                state.received.append(data)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


def _check(resources: Resources, port: int, **options: Any) -> TcpCheck:
    opts = TcpCheckOptions.model_validate({"type": "tcp", "port": port, **options})
    return TcpCheck(opts, CheckTarget(service="cache"), resources)


async def _nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return None


async def _pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR unknown\r\n")
    await writer.drain()


async def test_accepting_port_is_healthy_and_the_socket_is_closed(
    serve: Callable[[Handler], Awaitable[Server]], resources: Resources
) -> None:
    server = await serve(_nothing)
    result = await _check(resources, server.port).probe()
    assert result.healthy
    assert result.detail == f"connected to 127.0.0.1:{server.port}"
    await async_wait_for(lambda: server.closed_by_client == 1, 5, message="socket left open")


async def test_send_and_expect(
    serve: Callable[[Handler], Awaitable[Server]], resources: Resources
) -> None:
    server = await serve(_pong)
    result = await _check(resources, server.port, send="PING\r\n", expect="PONG").probe()
    assert result.healthy
    assert "PONG" in result.detail
    await async_wait_for(lambda: server.closed_by_client == 1, 5, message="socket left open")


async def test_wrong_reply_is_an_unhealthy_response(
    serve: Callable[[Handler], Awaitable[Server]], resources: Resources
) -> None:
    server = await serve(_pong)
    result = await _check(resources, server.port, send="HELLO\r\n", expect="PONG").probe()
    assert not result.healthy
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert "-ERR unknown" in result.detail
    assert result.data["reply"] == "-ERR unknown\r\n"


async def test_expect_a_banner_without_sending(
    serve: Callable[[Handler], Awaitable[Server]], resources: Resources
) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-fake\r\n")
        await writer.drain()

    server = await serve(banner)
    assert (await _check(resources, server.port, expect="SSH-2.0").probe()).healthy


async def test_peer_closing_without_the_text(
    serve: Callable[[Handler], Awaitable[Server]], resources: Resources
) -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await serve(close_at_once)
    result = await _check(resources, server.port, expect="READY").probe()
    assert not result.healthy
    assert result.detail.endswith("(got nothing)")


async def test_reply_is_read_up_to_4_kib(
    serve: Callable[[Handler], Awaitable[Server]], resources: Resources
) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"." * (MAX_REPLY_BYTES + 100) + b"READY")
        await writer.drain()

    server = await serve(chatty)
    result = await _check(resources, server.port, expect="READY").probe()
    assert not result.healthy, "the text past 4 KiB must not have been read"


async def test_silent_server_times_out(
    serve: Callable[[Handler], Awaitable[Server]], resources: Resources
) -> None:
    server = await serve(_nothing)
    check = _check(resources, server.port, send="PING\r\n", expect="PONG")
    with pytest.raises(TimeoutError) as raised:
        async with asyncio.timeout(0.3):
            await check.probe()
    assert classify_exception(raised.value)[0] is FailureType.CONNECTION_TIMEOUT
    await async_wait_for(lambda: server.closed_by_client == 1, 5, message="socket left open")


async def test_refused_raises_and_classifies_as_service_crash(resources: Resources) -> None:
    with pytest.raises(ConnectionRefusedError) as raised:
        await _check(resources, free_port()).probe()
    assert classify_exception(raised.value) == (FailureType.SERVICE_CRASH, "connection refused")


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_range(port: int) -> None:
    with pytest.raises(ValidationError, match="port"):
        TcpCheckOptions.model_validate({"type": "tcp", "port": port})


def test_port_is_required_and_host_defaults_to_loopback() -> None:
    with pytest.raises(ValidationError, match="port"):
        TcpCheckOptions.model_validate({"type": "tcp"})
    assert TcpCheckOptions.model_validate({"type": "tcp", "port": 6379}).host == "127.0.0.1"
