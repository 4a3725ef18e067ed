"""medic's own PostgreSQL connections: one small asyncpg pool per DSN, kept in
``Resources`` (``resources.postgres``).

The ``postgres`` check probes through these pools and the ``reconnect`` action
drops and reopens them, so a dropped connection is a failure of medic's own
connection, seen and healed like any other. Pools start empty
(``min_size=0``): creating one never touches the network, the first
``acquire`` connects.

Also here: reading a DSN from where the options say it is (``dsn`` /
``dsn_env`` / ``dsn_file``, the keys the check and the action share, see
``medic.config.checks``), a label for it that never shows the password, and
what a connection error means in words.

asyncpg (about 4 MiB and 20 ms of start-up) is imported when the first pool is
made, not with this module: a daemon whose config names no database never loads
it, and no exception of asyncpg's can exist before then.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from medic.config.checks import DsnSource
from medic.host import HostError

if TYPE_CHECKING:
    import asyncpg

MAX_CONNECTIONS = 2
"""A check and a workflow step at once; medic never needs more per database."""
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 5.0
APPLICATION_NAME = "medic"
"""Shown in ``pg_stat_activity`` unless the DSN names its own ``application_name``."""


class DsnUnavailable(HostError):
    """The variable or file that should hold the DSN is missing or empty."""


def resolve_dsn(options: DsnSource) -> str:
    """The DSN itself, read now (an environment variable or a file may change)."""
    if options.dsn is not None:
        return options.dsn
    if options.dsn_env is not None:
        value = os.environ.get(options.dsn_env, "").strip()
        if not value:
            raise DsnUnavailable(f"environment variable {options.dsn_env} is not set")
        return value
    if options.dsn_file is not None:
        return _read_dsn_file(options.dsn_file)
    raise DsnUnavailable("no dsn, dsn_env or dsn_file given")


def _read_dsn_file(path: Path) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise DsnUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not value:
        raise DsnUnavailable(f"{path} is empty")
    return value


def dsn_label(dsn: str) -> str:
    """``host:port/database`` for logs and details; the password never appears."""
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError:
        return "the database"
    if not parts.scheme.startswith("postgres"):
        return "the database"
    host = parts.hostname or "localhost"
    database = parts.path.lstrip("/") or parts.username or ""
    return f"{host}:{port or 5432}/{database}"


def _server_settings(dsn: str) -> dict[str, str] | None:
    # asyncpg lets keyword settings override the DSN's; an operator's own
    # application_name in the DSN must win, so ours is only a default.
    query = parse_qs(urlsplit(dsn).query)
    return None if "application_name" in query else {"application_name": APPLICATION_NAME}


class PostgresPools:
    """asyncpg pools by DSN, created on first use, dropped on demand."""

    def __init__(self) -> None:
        self._pools: dict[str, asyncpg.Pool] = {}
        self._lock = asyncio.Lock()

    async def pool(self, dsn: str) -> asyncpg.Pool:
        """The pool for ``dsn``; a new, empty one if there is none (never connects)."""
        async with self._lock:
            pool = self._pools.get(dsn)
            if pool is None:
                import asyncpg  # here, not at the top: see the module's docstring

                pool = await asyncpg.create_pool(
                    dsn,
                    min_size=0,
                    max_size=MAX_CONNECTIONS,
                    command_timeout=COMMAND_TIMEOUT_S,
                    timeout=CONNECT_TIMEOUT_S,
                    server_settings=_server_settings(dsn),
                )
                self._pools[dsn] = pool
            return pool

    async def fetchval(self, dsn: str, query: str) -> Any:
        """Run ``query`` on a connection of the pool; connects if the pool is empty."""
        pool = await self.pool(dsn)
        return await pool.fetchval(query)

    async def drop(self, dsn: str) -> bool:
        """Close every connection to ``dsn`` at once (they may be dead); True if any pool was open.

        The next ``pool(dsn)`` starts afresh.
        """
        async with self._lock:
            pool = self._pools.pop(dsn, None)
        if pool is None:
            return False
        pool.terminate()
        return True

    async def close(self) -> None:
        """Close every pool; connections still busy after a few seconds are cut."""
        async with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except connect_errors():
                pool.terminate()


# -- what a connection error means ------------------------------------------------


@functools.cache
def connect_errors() -> tuple[type[BaseException], ...]:
    """What acquiring a connection (connecting, logging in) may raise (imports asyncpg)."""
    import asyncpg

    return (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
        TimeoutError,
    )


def database_connection_errors() -> tuple[type[BaseException], ...]:
    """The driver's "cannot connect / lost the connection / cannot log in" errors.

    Empty while asyncpg is not imported: no exception of its can exist yet, and
    classifying a probe error must not load the driver.
    """
    if "asyncpg" not in sys.modules:
        return ()
    return _database_connection_errors()


@functools.cache
def _database_connection_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        asyncpg.PostgresConnectionError,
        asyncpg.InvalidAuthorizationSpecificationError,
        asyncpg.CannotConnectNowError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.TooManyConnectionsError,
    )


_NETWORK_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN}
)


@functools.cache
def _reasons() -> tuple[tuple[tuple[type[BaseException], ...], str], ...]:
    import asyncpg

    dropped: tuple[type[BaseException], ...] = (
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.ConnectionFailureError,
        asyncpg.AdminShutdownError,
        asyncpg.CrashShutdownError,
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
    )
    return (
        ((asyncpg.InvalidAuthorizationSpecificationError,), "authentication failed"),
        ((ConnectionRefusedError,), "connection refused"),
        (dropped, "connection dropped"),
        ((asyncpg.CannotConnectNowError,), "not accepting connections (starting or stopping)"),
        ((asyncpg.TooManyConnectionsError,), "too many connections"),
        ((asyncpg.InvalidCatalogNameError,), "no such database"),
        ((TimeoutError,), "timeout"),
        ((asyncpg.PostgresConnectionError, asyncpg.ProtocolError), "protocol error"),
    )


def is_network_error(exc: BaseException) -> bool:
    """DNS or routing trouble: a ``network_failure``, not the database's fault."""
    if isinstance(exc, socket.gaierror):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def connection_failure_reason(exc: BaseException) -> str | None:
    """Why a connection failed, in a few words; None when ``exc`` is not about the connection.

    A query's own error (a syntax error, a missing table) is not a connection failure.
    """
    import asyncpg  # a connection error came from a pool: asyncpg is loaded

    for types, reason in _reasons():
        if isinstance(exc, types):
            return reason
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(
        exc, asyncpg.ClientConfigurationError
    ):
        return "connection closed"  # "connection is closed", "pool is closing"
    if isinstance(exc, OSError) and not is_network_error(exc):
        return "cannot connect"
    return None


def describe_error(exc: BaseException) -> str:
    """The error's own message, short, without a class name operators cannot use."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split()) or type(exc).__name__
    detail = getattr(exc, "detail", None)  # the server's DETAIL line, when it sent one
    return f"{text} ({detail})" if detail else text
