"""The ``wait_healthy`` action: probe the service until it is healthy again.

Probes start 50 ms apart and back off (x1.5) up to ``interval``, so a fast
recovery is seen at once and a slow one is not hammered. The action keeps its
own deadline and reports running out of time as a failed result with the last
probe's detail, rather than being cut off by the step runner.

A probe that finds the service crashed for certain (a definitive
``service_crash``: its container exited, its process is gone) ends the wait
at once as a failure: nothing in this step brings it back, and waiting out the
timeout would leave it down meanwhile (a playbook that only waits, chosen for a
network blip, while the container has died) when the next recovery would
restart it. The same holds when the container exited (or died) again after
the restart: a crash loop reaches its open circuit without waiting.
"""

from __future__ import annotations

import asyncio
import time

from medic.config.actions import WaitHealthyOptions
from medic.core.vocabulary import FailureType
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.watch.checks.base import CheckResult

_GONE = frozenset({"exited", "dead"})
FIRST_DELAY_S = 0.05
DELAY_FACTOR = 1.5


class WaitHealthy(Action[WaitHealthyOptions]):
    """``action: wait_healthy``."""

    yaml_name = "wait_healthy"
    options_model = WaitHealthyOptions
    default_timeout_s = 60.0
    manages_own_timeout = True

    def describe(self, ctx: ActionContext) -> str:
        service = ctx.service.name if ctx.service is not None else "the service"
        times = "once" if self.options.consecutive == 1 else f"{self.options.consecutive} times"
        return f"wait until {service} is healthy {times} in a row (up to {self.timeout_s:g}s)"

    async def run(self, ctx: ActionContext) -> ActionResult:
        if ctx.run_check is None:
            raise ActionError("wait_healthy needs the service's check to probe")
        poller = _Poller(self.options.consecutive, self.options.interval)
        started = time.monotonic()
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                healthy = await poller.until_healthy(ctx)
        except TimeoutError:
            if not deadline.expired():
                raise
            detail = f"still unhealthy after {self.timeout_s:g}s: {poller.summary()}"
            return ActionResult(ok=False, detail=detail, data={"probes": poller.probes})
        if not healthy:
            # Definitive: waiting out the timeout would only delay the next attempt.
            detail = f"crashed while waiting (definitive): {poller.last_detail}"
            return ActionResult(ok=False, detail=detail, data={"probes": poller.probes})
        elapsed = time.monotonic() - started
        return ActionResult(
            ok=True,
            detail=f"healthy after {elapsed:.1f}s ({poller.probes} probes): {poller.last_detail}",
            data={"probes": poller.probes, "elapsed_s": round(elapsed, 3)},
        )


class _Poller:
    def __init__(self, consecutive: int, max_delay_s: float) -> None:
        self.consecutive = consecutive
        self.max_delay_s = max_delay_s
        self.probes = 0
        self.streak = 0
        self.last_detail = "no probe finished"
        self.gone = False
        """The last probe found the container exited or dead: no point waiting."""

    async def until_healthy(self, ctx: ActionContext) -> bool:
        """True once healthy; False when a probe finds it crashed for certain."""
        assert ctx.run_check is not None
        delay = min(FIRST_DELAY_S, self.max_delay_s)
        while True:
            result = await ctx.run_check()
            self._record(result)
            if self.streak >= self.consecutive:
                return True
            if self.gone or (
                result.definitive and result.failure_type is FailureType.SERVICE_CRASH
            ):
                return False
            await asyncio.sleep(delay)
            delay = min(delay * DELAY_FACTOR, self.max_delay_s)

    def summary(self) -> str:
        if self.streak == 0:
            return self.last_detail
        return f"{self.last_detail} (healthy {self.streak} of {self.consecutive} in a row)"

    def _record(self, result: CheckResult) -> None:
        self.probes += 1
        self.last_detail = result.detail
        self.streak = self.streak + 1 if result.healthy else 0
        self.gone = _definitively_gone(result)


def _definitively_gone(result: CheckResult) -> bool:
    status = result.data.get("status")
    return not result.healthy and result.definitive and status in _GONE
