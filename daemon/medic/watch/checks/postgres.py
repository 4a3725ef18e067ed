"""The ``type: postgres`` check: connect and run ``SELECT 1`` (or ``query``) in time.

It goes through medic's own pool for the DSN (``Resources.postgres``), so a
connection the server dropped is a failure of medic's connection, which
``reconnect`` heals. Refused, dropped, authentication, protocol and time-out
failures are ``database_connection`` with the reason in the detail; DNS and
routing trouble is left to ``medic.watch.classify`` (``network_failure``); a query
that reaches the server and fails is an ``unhealthy_response``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from medic.config.checks import PostgresCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.postgres import (
    DsnUnavailable,
    connect_errors,
    connection_failure_reason,
    describe_error,
    dsn_label,
    is_network_error,
    resolve_dsn,
)
from medic.watch.checks.base import Check, CheckResult

if TYPE_CHECKING:
    import asyncpg

OWN_DEADLINE_SHARE = 0.9
"""The check gives up at this share of the runner's timeout, so that a silent
database is reported as a database problem (``database_connection``, healed by
``reconnect-database``) rather than as a generic ``connection_timeout``."""
RELEASE_TIMEOUT_S = 1.0


class PostgresCheck(Check[PostgresCheckOptions]):
    """``type: postgres``: healthy when medic's own connection answers the query in time."""

    yaml_name = "postgres"
    options_model = PostgresCheckOptions

    async def probe(self) -> CheckResult:
        dsn = resolve_dsn(self.options)
        label = dsn_label(dsn)
        deadline_s = self._deadline_s()
        try:
            async with asyncio.timeout(deadline_s):
                return await self._query(dsn, label)
        except TimeoutError:
            detail = f"{label}: timeout: no answer within {deadline_s:g}s"
            return _connection_failed(detail, "timeout", label)

    def _deadline_s(self) -> float | None:
        timeout_s = self.options.timeout or self.target.timeout_s
        return None if timeout_s is None else timeout_s * OWN_DEADLINE_SHARE

    async def _query(self, dsn: str, label: str) -> CheckResult:
        pool = await self.resources.postgres.pool(dsn)
        try:
            conn = await pool.acquire()
        except connect_errors() as exc:
            return _cannot_connect(exc, label)
        try:
            value = await conn.fetchval(self.options.query)
        except connect_errors() as exc:
            return _query_failed(exc, label, self.options.query)
        finally:
            await _release(pool, conn)
        return CheckResult.ok(f"{label}: {self.options.query} answered {value!r}", database=label)

    async def close(self) -> None:
        """Close medic's connections to the database when the service goes away.

        Another service on the same DSN simply connects again on its next probe.
        """
        with contextlib.suppress(DsnUnavailable):
            await self.resources.postgres.drop(resolve_dsn(self.options))


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    # asyncpg terminates a connection it cannot reset in time; nothing more to do.
    with contextlib.suppress(*connect_errors()):
        await pool.release(conn, timeout=RELEASE_TIMEOUT_S)


def _connection_failed(detail: str, reason: str, label: str) -> CheckResult:
    return CheckResult.fail(FailureType.DATABASE_CONNECTION, detail, reason=reason, database=label)


def _cannot_connect(exc: BaseException, label: str) -> CheckResult:
    reason = connection_failure_reason(exc)
    if reason is None or is_network_error(exc):
        raise exc  # DNS, routing, a bad DSN: medic.watch.classify words it
    return _connection_failed(f"{label}: {reason}: {describe_error(exc)}", reason, label)


def _query_failed(exc: BaseException, label: str, query: str) -> CheckResult:
    reason = connection_failure_reason(exc)
    if reason is not None:
        detail = f"{label}: {reason} during the query: {describe_error(exc)}"
        return _connection_failed(detail, reason, label)
    import asyncpg  # the query ran on an asyncpg connection: loaded already

    if isinstance(exc, asyncpg.PostgresError):
        detail = f"{label}: {query} failed: {describe_error(exc)}"
        data: dict[str, Any] = {"database": label, "sqlstate": exc.sqlstate}
        return CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, detail, **data)
    raise exc
