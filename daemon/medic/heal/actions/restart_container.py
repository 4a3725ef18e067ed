"""The ``restart_container`` action: bring the service's container back, whatever its state.

A stopped or crashed container is simply started (nothing to stop); a paused
one is unpaused and restarted; a running one (hung, unhealthy) is restarted
with ``stop_timeout`` for a clean stop.
"""

from __future__ import annotations

import math

from medic.config.actions import RestartContainerOptions
from medic.heal.actions._containers import describe_target, inspect_existing, require_container
from medic.heal.actions.base import Action, ActionContext, ActionResult
from medic.host.docker import ContainerState, DockerGateway


class RestartContainer(Action[RestartContainerOptions]):
    """``action: restart_container``."""

    yaml_name = "restart_container"
    options_model = RestartContainerOptions
    default_timeout_s = 30.0

    def describe(self, ctx: ActionContext) -> str:
        target = describe_target(self.options.container, ctx)
        return f"restart container {target} (stop timeout {self._stop_timeout_s(ctx):g}s)"

    def _stop_timeout_s(self, ctx: ActionContext) -> float:
        """The step's ``stop_timeout``, else the service's (``stop_timeout``,
        ``medic.stop_timeout``, ``autoheal.stop.timeout``), else 10 s."""
        own = "stop_timeout" in self.options.model_fields_set
        service = ctx.service.stop_timeout_s if ctx.service is not None else None
        return self.options.stop_timeout if own or service is None else service

    async def run(self, ctx: ActionContext) -> ActionResult:
        name = require_container(self.options.container, ctx, self.yaml_name)
        docker = ctx.resources.docker
        state = await inspect_existing(docker, name)
        detail = await self._bring_back(docker, name, state, self._stop_timeout_s(ctx))
        return ActionResult(
            ok=True,
            detail=detail,
            data={"container": name, "was": state.status, "exit_code": state.exit_code},
        )

    async def _bring_back(
        self, docker: DockerGateway, name: str, state: ContainerState, stop_timeout: float
    ) -> str:
        stop_timeout_s = math.ceil(stop_timeout)
        if state.status == "paused":
            await docker.unpause(name)
            await docker.restart(name, stop_timeout_s)
            return f"unpaused and restarted container {name}"
        if state.status in ("running", "restarting"):
            await docker.restart(name, stop_timeout_s)
            return f"restarted {state.status} container {name}"
        await docker.start(name)
        return f"started {state.status} container {name} ({_previous_exit(state)})"


def _previous_exit(state: ContainerState) -> str:
    oom = ", OOM killed" if state.oom_killed else ""
    return f"was exit {state.exit_code}{oom}"
