"""classify_exception: real socket failures, then exceptions no local socket can produce."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from medic.core.vocabulary import FailureType
from medic.host.docker import ContainerNotFound, DockerUnavailable
from medic.watch.classify import classify_exception
from tests.helpers import free_port


async def _raised_by(coro: object) -> BaseException:
    try:
        await coro  # type: ignore[misc]
    except BaseException as exc:  # noqa: BLE001 - the exception is what we test
        return exc
    raise AssertionError("expected an exception")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as client:
        yield client


@pytest.fixture
async def resetting_server() -> AsyncIterator[int]:
    """Accepts, then closes with SO_LINGER 0: the client sees a TCP RST."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await reader.read(1)  # wait for the request so the reset hits a live exchange
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
        for writer in held:
            writer.close()


async def test_refused_port_is_a_service_crash() -> None:
    exc = await _raised_by(asyncio.open_connection("127.0.0.1", free_port()))
    assert isinstance(exc, ConnectionRefusedError)
    assert classify_exception(exc) == (FailureType.SERVICE_CRASH, "connection refused")


async def test_refused_port_through_aiohttp_names_the_address(
    session: aiohttp.ClientSession,
) -> None:
    port = free_port()
    exc = await _raised_by(session.get(f"http://127.0.0.1:{port}/"))
    assert isinstance(exc, aiohttp.ClientConnectorError)
    assert classify_exception(exc) == (
        FailureType.SERVICE_CRASH,
        f"connection refused (127.0.0.1:{port})",
    )


async def test_unresolvable_name_is_a_network_failure() -> None:
    exc = await _raised_by(asyncio.open_connection("name.invalid", 80))
    assert isinstance(exc, socket.gaierror)
    failure_type, detail = classify_exception(exc)
    assert failure_type is FailureType.NETWORK_FAILURE
    assert detail.startswith("DNS lookup failed")


async def test_unresolvable_name_through_aiohttp(session: aiohttp.ClientSession) -> None:
    exc = await _raised_by(session.get("http://name.invalid/"))
    assert isinstance(exc, aiohttp.ClientConnectorDNSError)
    failure_type, detail = classify_exception(exc)
    assert failure_type is FailureType.NETWORK_FAILURE
    assert detail.startswith("DNS lookup failed")
    assert detail.endswith("(name.invalid:80)")


async def test_connection_reset_is_a_network_failure(resetting_server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", resetting_server)
    writer.write(b"hello")
    await writer.drain()
    exc = await _raised_by(reader.read(100))
    writer.close()
    assert isinstance(exc, ConnectionResetError)
    assert classify_exception(exc) == (FailureType.NETWORK_FAILURE, "connection reset")


async def test_connection_reset_through_aiohttp(
    session: aiohttp.ClientSession, resetting_server: int
) -> None:
    exc = await _raised_by(session.get(f"http://127.0.0.1:{resetting_server}/"))
    assert isinstance(exc, aiohttp.ClientError)
    failure_type, _ = classify_exception(exc)
    assert failure_type is FailureType.NETWORK_FAILURE


async def test_hung_server_is_a_connection_timeout(
    session: aiohttp.ClientSession, silent_server: int
) -> None:
    async def probe() -> None:
        async with asyncio.timeout(0.3):
            await session.get(f"http://127.0.0.1:{silent_server}/")

    exc = await _raised_by(probe())
    assert isinstance(exc, TimeoutError)
    failure_type, _ = classify_exception(exc)
    assert failure_type is FailureType.CONNECTION_TIMEOUT


async def test_aiohttp_read_timeout_is_a_connection_timeout(
    session: aiohttp.ClientSession, silent_server: int
) -> None:
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    exc = await _raised_by(session.get(f"http://127.0.0.1:{silent_server}/", timeout=timeout))
    assert isinstance(exc, aiohttp.ServerTimeoutError)
    assert classify_exception(exc)[0] is FailureType.CONNECTION_TIMEOUT


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), FailureType.CONNECTION_TIMEOUT),
        (aiohttp.ServerTimeoutError("read"), FailureType.CONNECTION_TIMEOUT),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), FailureType.CONNECTION_TIMEOUT),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), FailureType.NETWORK_FAILURE),
        (OSError(errno.EHOSTUNREACH, "No route to host"), FailureType.NETWORK_FAILURE),
        (
            OSError(errno.ECONNABORTED, "Software caused connection abort"),
            FailureType.NETWORK_FAILURE,
        ),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), FailureType.NETWORK_FAILURE),
        (ConnectionResetError(), FailureType.NETWORK_FAILURE),
        (aiohttp.ServerDisconnectedError(), FailureType.NETWORK_FAILURE),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            FailureType.NETWORK_FAILURE,
        ),
        (OSError(errno.ECONNREFUSED, "Connection refused"), FailureType.SERVICE_CRASH),
    ],
)
def test_exception_types(exc: BaseException, expected: FailureType) -> None:
    assert classify_exception(exc)[0] is expected


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.PostgresConnectionError("connection lost"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InvalidPasswordError('password authentication failed for user "medic"'),
        asyncpg.InvalidAuthorizationSpecificationError('role "nobody" does not exist'),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    ],
)
def test_database_connection_errors(exc: BaseException) -> None:
    failure_type, detail = classify_exception(exc)
    assert failure_type is FailureType.DATABASE_CONNECTION
    assert str(exc) in detail


def test_a_database_query_error_is_not_a_connection_problem() -> None:
    failure_type, detail = classify_exception(asyncpg.UndefinedTableError('no table "x"'))
    assert failure_type is None
    assert detail.startswith("check error: UndefinedTableError")


def test_missing_container_is_a_service_crash_naming_it() -> None:
    exc = ContainerNotFound("No such container: web")
    assert classify_exception(exc) == (FailureType.SERVICE_CRASH, "container web does not exist")


def test_docker_unavailable_means_cannot_tell() -> None:
    exc = DockerUnavailable("Docker engine unreachable: connection refused on /var/run/docker.sock")
    assert classify_exception(exc) == (None, str(exc))
    failure_type, detail = classify_exception(DockerUnavailable("socket gone"))
    assert failure_type is None
    assert detail == "Docker engine unreachable: socket gone"


def test_anything_else_is_a_check_error() -> None:
    assert classify_exception(ValueError("bad value")) == (
        None,
        "check error: ValueError: bad value",
    )
    assert classify_exception(RuntimeError()) == (None, "check error: RuntimeError")


def test_an_explicit_cause_is_looked_through() -> None:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("probe failed") from inner
    except RuntimeError as exc:
        assert classify_exception(exc) == (FailureType.SERVICE_CRASH, "connection refused")
