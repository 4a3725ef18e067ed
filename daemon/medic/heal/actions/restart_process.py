"""The ``restart_process`` action: stop the service's process and start it again.

Stopping is SIGTERM, then SIGKILL once ``stop_timeout`` (the step's, else the
service's ``process.stop_timeout``) has passed; a process medic started loses
its whole session. It then starts again from ``process.command``. A process
adopted through ``process.pidfile`` without a ``command`` is only stopped:
medic cannot start it, and says so; whatever started it (or the next step,
``wait_healthy``) decides whether it comes back.
"""

from __future__ import annotations

from medic.config.actions import RestartProcessOptions
from medic.heal.actions._processes import require_process
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.host.processes import ProcessStartError


class RestartProcess(Action[RestartProcessOptions]):
    """``action: restart_process``."""

    yaml_name = "restart_process"
    options_model = RestartProcessOptions
    default_timeout_s = 60.0

    def describe(self, ctx: ActionContext) -> str:
        service = require_process(ctx, self.yaml_name)
        info = ctx.resources.processes.info(service)
        running = f"pid {info.pid}" if info.pid is not None else "not running"
        start = "start it again" if info.can_start else "medic cannot start it (no command)"
        return f"restart {service}'s process ({running}): stop it, then {start}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        service = require_process(ctx, self.yaml_name)
        try:
            report = await ctx.resources.processes.restart(service, self.options.stop_timeout)
        except ProcessStartError as exc:
            raise ActionError(str(exc)) from exc
        return ActionResult(
            ok=True,
            detail=report.detail,
            data={
                "old_pid": report.stop.pid,
                "pid": report.pid,
                "forced": report.stop.forced,
                "started": report.pid is not None,
            },
        )
