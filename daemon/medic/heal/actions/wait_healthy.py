"""The ``wait_healthy`` action: probe the service until it is healthy again.

Probes start 50 ms apart and back off (x1.5) up to ``interval``, so a fast
recovery is seen at once and a slow one is not hammered. The action keeps its
own deadline and reports running out of time as a failed result with the last
probe's detail, rather than being cut off by the step runner. It ends at once,
failed, when the failure is definitive: the container exited (or died) again
after the restart, so waiting out the timeout would only delay the next attempt
(and a crash loop's open circuit).
"""

from __future__ import annotations

import asyncio
import time

from medic.config.actions import WaitHealthyOptions
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
                await poller.until_healthy(ctx)
        except TimeoutError:
            if not deadline.expired():
                raise
            detail = f"still unhealthy after {self.timeout_s:g}s: {poller.summary()}"
            return ActionResult(ok=False, detail=detail, data={"probes": poller.probes})
        elapsed = time.monotonic() - started
        if poller.gone:
            detail = (
                f"gave up after {elapsed:.1f}s, the failure is definitive: {poller.last_detail}"
            )
            return ActionResult(ok=False, detail=detail, data={"probes": poller.probes})
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

    async def until_healthy(self, ctx: ActionContext) -> None:
        assert ctx.run_check is not None
        delay = min(FIRST_DELAY_S, self.max_delay_s)
        while True:
            self._record(await ctx.run_check())
            if self.streak >= self.consecutive or self.gone:
                return
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
