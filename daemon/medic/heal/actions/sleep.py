"""The ``sleep`` action: pause a playbook or workflow for a while."""

from __future__ import annotations

import asyncio

from medic.config.actions import SleepOptions
from medic.heal.actions.base import Action, ActionContext, ActionResult


class Sleep(Action[SleepOptions]):
    """``action: sleep``; it ends by itself, so no default step timeout cuts it
    (an explicit step ``timeout`` or the workflow's ``timeout`` still does)."""

    yaml_name = "sleep"
    options_model = SleepOptions
    ends_by_itself = True

    def describe(self, ctx: ActionContext) -> str:
        return f"sleep {self.options.duration:g}s"

    async def run(self, ctx: ActionContext) -> ActionResult:
        await asyncio.sleep(self.options.duration)
        return ActionResult(ok=True, detail=f"slept {self.options.duration:g}s")
