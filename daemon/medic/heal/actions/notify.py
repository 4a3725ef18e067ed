"""The ``notify`` action: publish an event (log, history, webhooks) about the service.

``message`` may name what the failure looked like: ``${service}``,
``${failure_type}``, ``${detail}`` and every figure of the check's data (e.g.
``${rss_mib}`` from a process check) are filled in; unknown names stay as written.
"""

from __future__ import annotations

from string import Template
from typing import Any

from medic.config.actions import NotifyOptions
from medic.heal.actions.base import Action, ActionContext, ActionResult


class Notify(Action[NotifyOptions]):
    """``action: notify``; succeeds even where nothing listens."""

    yaml_name = "notify"
    options_model = NotifyOptions

    def describe(self, ctx: ActionContext) -> str:
        return f"notify {self.options.event}: {self._message(ctx)}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        if ctx.emit is None:
            return ActionResult(ok=True, detail=f"no event sink; {self.options.event} not sent")
        payload: dict[str, Any] = {
            "message": self._message(ctx),
            "service": ctx.service.name if ctx.service is not None else None,
            "failure_type": ctx.failure_type,
            **ctx.facts,
        }
        await ctx.emit(self.options.event, payload)
        return ActionResult(ok=True, detail=f"sent {self.options.event}", data=payload)

    def _message(self, ctx: ActionContext) -> str:
        if self.options.message is not None:
            service = ctx.service.name if ctx.service is not None else None
            values = {"service": service, "failure_type": ctx.failure_type, **ctx.facts}
            return Template(self.options.message).safe_substitute(values)
        service = ctx.service.name if ctx.service is not None else "medic"
        cause = f" ({ctx.failure_type})" if ctx.failure_type else ""
        return f"{self.options.event} for {service}{cause}"
