"""Which supervised process a process action acts on: the service's own."""

from __future__ import annotations

from medic.heal.actions.base import ActionContext, ActionError


def require_process(ctx: ActionContext, action: str) -> str:
    """The service whose ``process:`` the action targets; an ``ActionError`` if it has none."""
    service = ctx.service.name if ctx.service is not None else None
    if service is None or service not in ctx.resources.processes:
        raise ActionError(f"{action} needs a process: set `process:` on the service")
    return service
