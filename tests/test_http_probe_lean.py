"""The lean client of the common http probe (``medic.host.http_probe``) against
raw HTTP servers on 127.0.0.1: what the check reports is what aiohttp's client
gave, whether the server closes every connection (HTTP/1.0, as Monit asks),
keeps it, closes a kept one under the probe, or answers without a length."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop

from medic.config.checks import HttpCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.http import HttpCheck
from medic.watch.classify import classify_exception
from tests.helpers import free_port

Answer = Callable[[bytes], bytes | list[bytes]]


class RawServer:
    """Answers each request head with ``answer(head)`` (a list: its pieces, one
    segment each, 20 ms apart); closes when it says so."""

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
                answer = self.answer(head)
                for piece in answer if isinstance(answer, list) else [answer]:
                    writer.write(piece)
                    await writer.drain()
                    if isinstance(answer, list):
                        await asyncio.sleep(0.02)
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


Scenario = Callable[[list[RawServer], Resources], Awaitable[None]]


def run_on(loop: str, tmp_path: Path, scenario: Scenario) -> None:
    """``scenario`` on asyncio's loop or on uvloop, the daemon's (their callbacks
    come in different orders around a new connection)."""

    async def main() -> None:
        started: list[RawServer] = []
        resources = Resources(state_dir=tmp_path / "state")
        try:
            await scenario(started, resources)
        finally:
            for server in started:
                await server.stop()
            await resources.close()

    (uvloop.run if loop == "uvloop" else asyncio.run)(main())


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


@LOOPS
def test_an_answer_split_inside_its_status_line_is_read_whole(loop: str, tmp_path: Path) -> None:
    async def scenario(servers: list[RawServer], resources: Resources) -> None:
        pieces = [b"HTT", b"P/1.0 20", b"0 O", b"K\r\nContent-Le", b"ngth: 2\r\n\r\n", b"ok"]
        server = await serve(servers, lambda _: pieces, close_after=True)
        probe = check(resources, server)
        for _ in range(2):
            result = await probe.probe()
            assert result.healthy and result.detail == "HTTP 200 OK"
        assert server.connections == 2

    run_on(loop, tmp_path, scenario)


@LOOPS
def test_a_server_that_closes_without_answering_is_a_disconnect(loop: str, tmp_path: Path) -> None:
    async def scenario(servers: list[RawServer], resources: Resources) -> None:
        server = await serve(servers, lambda _: b"", close_after=True)
        with pytest.raises(aiohttp.ServerDisconnectedError) as raised:
            await check(resources, server).probe()
        assert classify_exception(raised.value) == (
            FailureType.NETWORK_FAILURE,
            "server disconnected without answering",
        )
        assert len(server.heads) == 1, "the request went out on the new connection"

    run_on(loop, tmp_path, scenario)


@LOOPS
def test_a_probe_cancelled_while_connecting_leaves_no_stray_error(
    loop: str, tmp_path: Path
) -> None:
    """The deadline may fall after the connection is made and the request written,
    before the connecting coroutine resumes: no answer is left unread, nothing logged."""

    async def scenario(servers: list[RawServer], resources: Resources) -> None:
        server = await serve(servers, lambda _: HTTP10_CLOSE, close_after=True)
        probe = check(resources, server)
        running = asyncio.get_running_loop()
        stray: list[dict[str, Any]] = []
        running.set_exception_handler(lambda _, context: stray.append(context))
        for delay in [0.0] * 10 + [0.0002 * i for i in range(1, 21)]:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await probe.probe()
        await asyncio.sleep(0.05)
        gc.collect()
        assert (await probe.probe()).healthy
        assert stray == []

    run_on(loop, tmp_path, scenario)


@LOOPS
def test_a_closed_connection_is_freed_without_the_garbage_collector(
    loop: str, tmp_path: Path
) -> None:
    """No reference cycle is left per connection (the parser holds the protocol's
    callbacks): at a thousand checks a second, the collector would run for them."""

    async def scenario(servers: list[RawServer], resources: Resources) -> None:
        server = await serve(servers, lambda _: HTTP10_CLOSE, close_after=True)
        probe = check(resources, server)
        assert (await probe.probe()).healthy
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(5):
                assert (await probe.probe()).healthy
            await asyncio.sleep(0.05)  # every connection_lost has run
            gc.collect()
            left = [type(o).__name__ for o in gc.garbage if type(o).__module__.startswith("medic")]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert left == []

    run_on(loop, tmp_path, scenario)


@LOOPS
def test_a_refused_connection_is_a_connect_error_classified_as_a_crash(
    loop: str, tmp_path: Path
) -> None:
    async def scenario(servers: list[RawServer], resources: Resources) -> None:
        probe = check(resources, RawServer(lambda _: KEEP))  # made, never started
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            await probe.probe()
        assert raised.value.os_error.errno == errno.ECONNREFUSED
        assert classify_exception(raised.value)[0] is FailureType.SERVICE_CRASH
        assert resources._http is None, "the lean client failed it, not aiohttp's"

    run_on(loop, tmp_path, scenario)


@LOOPS
def test_an_ipv6_address_is_probed_with_its_bracketed_host_header(
    loop: str, tmp_path: Path
) -> None:
    async def scenario(servers: list[RawServer], resources: Resources) -> None:
        with socket.socket(socket.AF_INET6) as free:
            free.bind(("::1", 0))
            port = free.getsockname()[1]
        heads: list[bytes] = []

        async def serve6(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(HTTP10_CLOSE)
            writer.close()

        server = await asyncio.start_server(serve6, "::1", port)
        try:
            url = f"http://[::1]:{port}/health"
            options = HttpCheckOptions.model_validate({"type": "http", "url": url})
            result = await HttpCheck(options, CheckTarget(service="v6"), resources).probe()
        finally:
            server.close()
        assert result.healthy and result.detail == "HTTP 200 OK"
        assert f"Host: [::1]:{port}\r\n".encode() in heads[0]
        assert resources._http is None

    run_on(loop, tmp_path, scenario)


def _listen_overflows() -> int:
    lines = Path("/proc/net/netstat").read_text().splitlines()
    names, values = (line.split() for line in lines[:2])  # TcpExt: its names, its values
    return int(values[names.index("ListenOverflows")])


@LOOPS
def test_a_server_slow_to_accept_gets_the_request_once_connected(loop: str, tmp_path: Path) -> None:
    """A full accept queue drops the probe's SYN: the socket is still connecting when
    the request is due, so it goes out once the retried SYN is taken (about 1 s)."""

    async def scenario(servers: list[RawServer], resources: Resources) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))  # the queue is full now
        overflows = _listen_overflows()
        heads: list[bytes] = []

        def serve_once() -> None:
            deadline = time.monotonic() + 5
            while _listen_overflows() == overflows and time.monotonic() < deadline:
                time.sleep(0.01)  # until the probe's SYN was dropped
            listener.accept()[0].close()  # the filler
            conn, _ = listener.accept()
            with conn:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += conn.recv(4096)
                heads.append(head)
                conn.sendall(HTTP10_CLOSE)

        options = HttpCheckOptions.model_validate(
            {"type": "http", "url": f"http://127.0.0.1:{port}/slow"}
        )
        probe = HttpCheck(options, CheckTarget(service="slow"), resources)
        try:
            served = asyncio.get_running_loop().run_in_executor(None, serve_once)
            result = await asyncio.wait_for(probe.probe(), 10)
            await served
        finally:
            filler.close()
            listener.close()
        assert _listen_overflows() > overflows, "the probe's SYN was dropped at first"
        assert result.healthy and result.detail == "HTTP 200 OK"
        assert heads[0].startswith(b"GET /slow HTTP/1.1\r\n")

    run_on(loop, tmp_path, scenario)
