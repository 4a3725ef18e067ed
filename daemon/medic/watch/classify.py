"""Classification of probe errors into the failure-type vocabulary of design.md.

A check raises when it cannot reach its target; this module decides what the
exception means (``service_crash`` for a refused connection, ``network_failure``
for DNS and routing trouble, ...) and words a short detail for operators.
``None`` as the type means "cannot tell": the runner then reports the service
state as unknown and never recovers on it. Pure functions, no I/O.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterator

import aiohttp

from medic.core.vocabulary import FailureType
from medic.host.docker import ContainerNotFound, DockerUnavailable
from medic.host.postgres import database_connection_errors

Classification = tuple[FailureType | None, str]

_ERRNO_MEANINGS: dict[int, tuple[FailureType, str]] = {
    errno.ECONNREFUSED: (FailureType.SERVICE_CRASH, "connection refused"),
    errno.ETIMEDOUT: (FailureType.CONNECTION_TIMEOUT, "connection timed out"),
    errno.ENETUNREACH: (FailureType.NETWORK_FAILURE, "network unreachable"),
    errno.ENETDOWN: (FailureType.NETWORK_FAILURE, "network is down"),
    errno.EHOSTUNREACH: (FailureType.NETWORK_FAILURE, "host unreachable"),
    errno.EHOSTDOWN: (FailureType.NETWORK_FAILURE, "host is down"),
    errno.ECONNRESET: (FailureType.NETWORK_FAILURE, "connection reset"),
    errno.ECONNABORTED: (FailureType.NETWORK_FAILURE, "connection aborted"),
    errno.EPIPE: (FailureType.NETWORK_FAILURE, "broken pipe"),
}

_NO_SUCH_CONTAINER = re.compile(r"No such container:\s*(\S+)")

_MAX_CAUSE_DEPTH = 4


def classify_exception(exc: BaseException) -> Classification:
    """The failure type an exception from a probe stands for, and a short detail."""
    for candidate in _causes(exc):
        found = _classify_one(candidate)
        if found is not None:
            failure_type, detail = found
            return failure_type, detail + _address_suffix(exc)
    return None, f"check error: {_describe(exc)}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what aiohttp wrapped in it, and its explicit causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CAUSE_DEPTH:
        seen.add(id(current))
        yield current
        if isinstance(current, aiohttp.ClientConnectorError):
            yield current.os_error
        current = current.__cause__


def _classify_one(exc: BaseException) -> Classification | None:
    if isinstance(exc, DockerUnavailable):
        return _docker_unavailable(exc)
    if isinstance(exc, ContainerNotFound):
        return FailureType.SERVICE_CRASH, _missing_container(exc)
    if isinstance(exc, database_connection_errors()):
        return FailureType.DATABASE_CONNECTION, f"database connection: {_describe(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return FailureType.NETWORK_FAILURE, f"DNS lookup failed: {_strerror(exc)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return FailureType.NETWORK_FAILURE, "server disconnected without answering"
    return _classify_os_error(exc)


def _classify_os_error(exc: BaseException) -> Classification | None:
    if isinstance(exc, ConnectionRefusedError):
        return FailureType.SERVICE_CRASH, "connection refused"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_MEANINGS:
        return _ERRNO_MEANINGS[exc.errno]
    # TimeoutError covers asyncio.TimeoutError and aiohttp.ServerTimeoutError.
    if isinstance(exc, TimeoutError):
        return FailureType.CONNECTION_TIMEOUT, "timed out waiting for an answer"
    if isinstance(exc, ConnectionResetError):
        return FailureType.NETWORK_FAILURE, "connection reset"
    return None


def _docker_unavailable(exc: DockerUnavailable) -> Classification:
    message = str(exc)
    if message.startswith("Docker engine unreachable"):
        return None, message
    return None, f"Docker engine unreachable: {message}"


def _missing_container(exc: ContainerNotFound) -> str:
    match = _NO_SUCH_CONTAINER.search(str(exc))
    if match:
        return f"container {match.group(1)} does not exist"
    return f"container does not exist: {exc}"


def _address_suffix(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f" ({exc.host}:{exc.port})"
    return ""


def _strerror(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
