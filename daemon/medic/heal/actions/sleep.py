"""The ``sleep`` action: pause a playbook or workflow for a while."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import model_validator

from medic.config.types import Duration
from medic.heal.actions.base import Action, ActionContext, ActionOptions, ActionResult


class Options(ActionOptions):
    action: Literal["sleep"]
    duration: Duration

    @model_validator(mode="after")
    def _fits_its_timeout(self) -> Options:
        if self.timeout is not None and self.duration > self.timeout:
            raise ValueError(
                f"the sleep ({self.duration:g}s) is longer than the step's timeout"
                f" ({self.timeout:g}s), so the step would always time out;"
                " raise the timeout or leave it out (a sleep is not cut short by default)"
            )
        return self


class Sleep(Action[Options]):
    """``action: sleep``; it ends by itself, so no default step timeout cuts it
    (an explicit step ``timeout`` or the workflow's ``timeout`` still does)."""

    name = "sleep"
    options_model = Options
    ends_by_itself = True

    def describe(self, ctx: ActionContext) -> str:
        return f"sleep {self.options.duration:g}s"

    async def run(self, ctx: ActionContext) -> ActionResult:
        await asyncio.sleep(self.options.duration)
        return ActionResult(ok=True, detail=f"slept {self.options.duration:g}s")
