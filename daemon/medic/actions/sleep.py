"""The ``sleep`` action: pause a playbook or workflow for a while."""

from __future__ import annotations

import asyncio
from typing import Literal

from medic.actions.base import Action, ActionContext, ActionOptions, ActionResult
from medic.types import Duration


class Options(ActionOptions):
    action: Literal["sleep"]
    duration: Duration


class Sleep(Action[Options]):
    """``action: sleep``; it ends by itself, so the step timeout does not cut it."""

    name = "sleep"
    options_model = Options
    manages_own_timeout = True

    def describe(self, ctx: ActionContext) -> str:
        return f"sleep {self.options.duration:g}s"

    async def run(self, ctx: ActionContext) -> ActionResult:
        await asyncio.sleep(self.options.duration)
        return ActionResult(ok=True, detail=f"slept {self.options.duration:g}s")
