"""The ``restart_container`` action: bring the service's container back, whatever its state.

A stopped or crashed container is simply started (nothing to stop); a paused
one is only unpaused (it was frozen, not broken: a restart would only cost its
stop timeout); a running one (hung, unhealthy) is restarted with its stop
timeout for a clean stop. A container Docker is already ``restarting`` under
its own restart policy is left to Docker: the action waits (bounded) for
Docker's attempt and starts it only if Docker gave up.

The stop timeout is the container's own (``Config.StopTimeout``), else the
step's ``stop_timeout``, else the service's, else 10 s: never a fixed value
over the container's own.
"""

from __future__ import annotations

import asyncio
import math
import time

from medic.config.actions import RestartContainerOptions
from medic.heal.actions._containers import describe_target, inspect_existing, require_container
from medic.heal.actions.base import Action, ActionContext, ActionResult
from medic.host.docker import ContainerState, DockerGateway

DEFAULT_STOP_TIMEOUT_S = 10.0
DOCKER_RESTART_WAIT_S = 15.0
"""How long a container that Docker is restarting is left to Docker."""
_POLL_S = 0.1


class RestartContainer(Action[RestartContainerOptions]):
    """``action: restart_container``."""

    yaml_name = "restart_container"
    options_model = RestartContainerOptions
    default_timeout_s = 30.0

    def describe(self, ctx: ActionContext) -> str:
        target = describe_target(self.options.container, ctx)
        fallback = self._fallback_stop_timeout(ctx)
        return f"restart container {target} (stop timeout: its own, else {fallback:g}s)"

    async def run(self, ctx: ActionContext) -> ActionResult:
        name = require_container(self.options.container, ctx, self.yaml_name)
        docker = ctx.resources.docker
        state = await inspect_existing(docker, name)
        if state.status == "restarting":
            state = await _left_to_docker(docker, name, state)
            if state.status in ("running", "restarting"):
                return _docker_restarts(name, state)
        detail = await self._bring_back(docker, name, state, ctx)
        return ActionResult(
            ok=True,
            detail=detail,
            data={"container": name, "was": state.status, "exit_code": state.exit_code},
        )

    def _fallback_stop_timeout(self, ctx: ActionContext) -> float:
        if self.options.stop_timeout is not None:
            return self.options.stop_timeout
        service = ctx.service.stop_timeout_s if ctx.service is not None else None
        return service if service is not None else DEFAULT_STOP_TIMEOUT_S

    def stop_timeout_s(self, state: ContainerState, ctx: ActionContext) -> int:
        if state.stop_timeout_s is not None:
            return state.stop_timeout_s
        return math.ceil(self._fallback_stop_timeout(ctx))

    async def _bring_back(
        self, docker: DockerGateway, name: str, state: ContainerState, ctx: ActionContext
    ) -> str:
        if state.status == "paused":
            await docker.unpause(name)
            return f"unpaused container {name}"
        if state.status == "running":
            await docker.restart(name, self.stop_timeout_s(state, ctx))
            return f"restarted running container {name}"
        await docker.start(name)
        return f"started {state.status} container {name} ({_previous_exit(state)})"


async def _left_to_docker(
    docker: DockerGateway, name: str, state: ContainerState
) -> ContainerState:
    """Wait while Docker's restart policy brings ``name`` back; its state after."""
    deadline = time.monotonic() + DOCKER_RESTART_WAIT_S
    while state.status == "restarting" and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)
        state = await inspect_existing(docker, name)
    return state


def _docker_restarts(name: str, state: ContainerState) -> ActionResult:
    data = {"container": name, "was": "restarting", "restart_count": state.restart_count}
    if state.status == "running":
        detail = f"Docker's restart policy restarted container {name} (not restarted again)"
        return ActionResult(ok=True, detail=detail, data=data)
    detail = (
        f"Docker is still restarting container {name} after {DOCKER_RESTART_WAIT_S:g}s"
        f" (restart count {state.restart_count}); not restarted again"
    )
    return ActionResult(ok=False, detail=detail, data=data)


def _previous_exit(state: ContainerState) -> str:
    oom = ", OOM killed" if state.oom_killed else ""
    return f"was exit {state.exit_code}{oom}"
