"""The ``recreate_container`` action: remove the container and create it again
from its own configuration (``medic.host.container_spec``).

The new container is created first, under a temporary name: when the engine
refuses it (the image is gone, a bad option), the old one is left as it was
and the step fails saying why. Then the old one is stopped and renamed aside,
the new one takes its name and starts; only once it runs is the old one
removed (never its volumes). When the new one cannot start, it is removed and
the old one gets its name back and is started again.
"""

from __future__ import annotations

import math
import secrets

from medic.config.actions import RecreateContainerOptions
from medic.heal.actions._containers import describe_target, require_container
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.host import HostError
from medic.host.container_spec import ContainerSpec, spec_of
from medic.host.docker import ContainerNotFound, DockerGateway


class RecreateContainer(Action[RecreateContainerOptions]):
    """``action: recreate_container``."""

    yaml_name = "recreate_container"
    options_model = RecreateContainerOptions
    default_timeout_s = 60.0

    def describe(self, ctx: ActionContext) -> str:
        return f"recreate container {describe_target(self.options.container, ctx)}"

    def _stop_timeout_s(self, ctx: ActionContext) -> int:
        own = "stop_timeout" in self.options.model_fields_set
        service = ctx.service.stop_timeout_s if ctx.service is not None else None
        return math.ceil(self.options.stop_timeout if own or service is None else service)

    async def run(self, ctx: ActionContext) -> ActionResult:
        name = require_container(self.options.container, ctx, self.yaml_name)
        docker = ctx.resources.docker
        stop_s = self._stop_timeout_s(ctx)
        old_id, new_id = await recreate(docker, name, self.options.network_mode, stop_s)
        return ActionResult(
            ok=True,
            detail=f"recreated container {name} ({old_id[:12]} -> {new_id[:12]})",
            data={"container": name, "old_id": old_id, "new_id": new_id},
        )


async def recreate(
    docker: DockerGateway, name: str, network_mode: str | None, stop_s: int
) -> tuple[str, str]:
    """Make container ``name`` again (``network_mode`` replaces its own); its old
    and new ids. ``ActionError`` says why not, the old container kept."""
    try:
        inspected = await docker.inspect_raw(name)
    except ContainerNotFound as exc:
        raise ActionError(f"container {name} does not exist") from exc
    spec = spec_of(inspected, network_mode)
    old_id = str(inspected["Id"])
    new_id = await _create(docker, spec)
    await _swap(docker, spec.name, old_id, new_id, stop_s)
    return old_id, new_id


async def _create(docker: DockerGateway, spec: ContainerSpec) -> str:
    """The new container, made beside the old one; the old one is untouched on failure."""
    temporary = f"{spec.name}-medic-new-{secrets.token_hex(3)}"
    try:
        new_id = await docker.create_from(temporary, spec.body)
    except Exception as exc:  # the engine's refusals are APIError, HostError...
        raise ActionError(
            f"cannot recreate container {spec.name}: the engine refused to create it"
            f" ({_why(exc)}); the old container is kept as it was"
        ) from exc
    try:
        for join in spec.later_networks:
            await docker.join_network(new_id, join.network, join.endpoint)
    except Exception as exc:
        await docker.remove(new_id)
        raise ActionError(
            f"cannot recreate container {spec.name}: joining its networks failed"
            f" ({_why(exc)}); the old container is kept as it was"
        ) from exc
    return new_id


async def _swap(docker: DockerGateway, name: str, old_id: str, new_id: str, stop_s: int) -> None:
    """The new container takes the old one's name and runs; else the old one is back."""
    aside = f"{name}-medic-old-{secrets.token_hex(3)}"
    await docker.stop(old_id, stop_s)
    await docker.rename(old_id, aside)
    try:
        await docker.rename(new_id, name)
        await docker.start(new_id)
    except Exception as exc:
        await _put_back(docker, name, old_id, new_id)
        raise ActionError(
            f"the recreated container {name} did not start ({_why(exc)});"
            " the old container was put back and started"
        ) from exc
    await docker.remove(old_id)


async def _put_back(docker: DockerGateway, name: str, old_id: str, new_id: str) -> None:
    try:
        await docker.remove(new_id)
    finally:
        await docker.rename(old_id, name)
        await docker.start(old_id)


def _why(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(exc, HostError) or not explanation:
        return str(exc) or type(exc).__name__
    return str(explanation)
