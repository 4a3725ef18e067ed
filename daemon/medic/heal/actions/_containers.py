"""Which container a container action acts on: the step's own, else the service's."""

from __future__ import annotations

from medic.heal.actions.base import ActionContext, ActionError
from medic.host.docker import ContainerNotFound, ContainerState, DockerGateway


def container_name(explicit: str | None, ctx: ActionContext) -> str | None:
    if explicit:
        return explicit
    return ctx.service.container if ctx.service is not None else None


def require_container(explicit: str | None, ctx: ActionContext, action: str) -> str:
    name = container_name(explicit, ctx)
    if name is None:
        raise ActionError(
            f"{action} needs a container: set `container:` on the step or on the service"
        )
    return name


async def inspect_existing(docker: DockerGateway, name: str) -> ContainerState:
    """Inspect ``name``; a missing container is an ``ActionError`` naming it."""
    try:
        return await docker.inspect(name)
    except ContainerNotFound as exc:
        raise ActionError(f"container {name} does not exist") from exc


def describe_target(explicit: str | None, ctx: ActionContext) -> str:
    return container_name(explicit, ctx) or "<no container configured>"
