"""The ``start_container`` action: start the container if it is not running."""

from __future__ import annotations

from medic.config.actions import StartContainerOptions
from medic.heal.actions._containers import describe_target, inspect_existing, require_container
from medic.heal.actions.base import Action, ActionContext, ActionResult
from medic.host.docker import ContainerState, DockerGateway


class StartContainer(Action[StartContainerOptions]):
    """``action: start_container``; a running container is left alone."""

    yaml_name = "start_container"
    options_model = StartContainerOptions
    default_timeout_s = 30.0

    def describe(self, ctx: ActionContext) -> str:
        return f"start container {describe_target(self.options.container, ctx)}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        name = require_container(self.options.container, ctx, self.yaml_name)
        docker = ctx.resources.docker
        state = await inspect_existing(docker, name)
        detail = await _start(docker, name, state)
        return ActionResult(ok=True, detail=detail, data={"container": name, "was": state.status})


async def _start(docker: DockerGateway, name: str, state: ContainerState) -> str:
    if state.running:
        return f"container {name} is already running"
    if state.status == "paused":
        # Docker refuses to start a paused container; unpausing is what resumes it.
        await docker.unpause(name)
        return f"unpaused container {name}"
    await docker.start(name)
    return f"started {state.status} container {name}"
