"""The ``reconnect`` action: drop medic's own connections to a database and
reopen them until it answers ``SELECT 1``.

The database is the step's ``dsn`` / ``dsn_env`` / ``dsn_file``, else the one
behind the service's ``postgres`` check. Each attempt closes the pool for that
DSN (its connections may be dead) and connects afresh; attempts back off
exponentially from ``initial_delay`` to ``max_delay`` with jitter, until the
database answers or the step's ``timeout`` runs out, which is reported as a
failed result with the attempts made and the last error.
"""

from __future__ import annotations

import asyncio
import random
import time

from medic.config.actions import ReconnectOptions
from medic.config.checks import DsnSource, PostgresCheckOptions, dsn_sources_given
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.host.postgres import (
    DsnUnavailable,
    PostgresPools,
    connect_errors,
    connection_failure_reason,
    describe_error,
    dsn_label,
    resolve_dsn,
)

BACKOFF_FACTOR = 2.0
PROBE_QUERY = "SELECT 1"


class Reconnect(Action[ReconnectOptions]):
    """``action: reconnect``."""

    yaml_name = "reconnect"
    options_model = ReconnectOptions
    default_timeout_s = 60.0
    manages_own_timeout = True

    def describe(self, ctx: ActionContext) -> str:
        label = dsn_label(self._dsn(ctx))
        return (
            f"drop and reopen medic's connection to {label} until it answers"
            f" (up to {self.timeout_s:g}s)"
        )

    async def run(self, ctx: ActionContext) -> ActionResult:
        dsn = self._dsn(ctx)
        label = dsn_label(dsn)
        attempts = _Attempts(ctx.resources.postgres, dsn, self.options)
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                await attempts.until_answered()
        except TimeoutError:
            if not deadline.expired():
                raise
            detail = (
                f"{label} still not answering after {attempts.count} attempts"
                f" in {attempts.elapsed_s:.1f}s: {attempts.last_error}"
            )
            return ActionResult(ok=False, detail=detail, data=attempts.data())
        detail = (
            f"reconnected to {label}: {PROBE_QUERY} answered on attempt {attempts.count}"
            f" after {attempts.elapsed_s:.1f}s"
        )
        return ActionResult(ok=True, detail=detail, data=attempts.data())

    def _dsn(self, ctx: ActionContext) -> str:
        try:
            return resolve_dsn(self._source(ctx))
        except DsnUnavailable as exc:
            raise ActionError(f"reconnect: {exc}") from exc

    def _source(self, ctx: ActionContext) -> DsnSource:
        if dsn_sources_given(self.options):
            return self.options
        check = ctx.service.check if ctx.service is not None else None
        if isinstance(check, PostgresCheckOptions):
            return check
        raise ActionError(
            "reconnect needs a database: set dsn, dsn_env or dsn_file on the step,"
            " or use it for a service with a postgres check"
        )


class _Attempts:
    """Drop-and-reopen attempts with exponential backoff and jitter."""

    def __init__(self, pools: PostgresPools, dsn: str, options: ReconnectOptions) -> None:
        self.pools = pools
        self.dsn = dsn
        self.initial_delay_s = options.initial_delay
        self.max_delay_s = max(options.max_delay, options.initial_delay)
        self.count = 0
        self.last_error = "no attempt finished"
        self.started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def data(self) -> dict[str, object]:
        return {"attempts": self.count, "elapsed_s": round(self.elapsed_s, 3)}

    async def until_answered(self) -> None:
        delay = self.initial_delay_s
        while not await self._attempt():
            # Jitter spreads the reconnects of many clients, so a database that
            # has just come back is not hit by all of them at the same instant.
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * BACKOFF_FACTOR, self.max_delay_s)

    async def _attempt(self) -> bool:
        self.count += 1
        await self.pools.drop(self.dsn)
        try:
            await self.pools.fetchval(self.dsn, PROBE_QUERY)
        except connect_errors() as exc:
            reason = connection_failure_reason(exc) or "error"
            self.last_error = f"{reason}: {describe_error(exc)}"
            return False
        return True
