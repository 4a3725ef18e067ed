"""The ``type: container`` check: the Docker state of a container and its HEALTHCHECK.

An exited, dead or never-started container is a definitive ``service_crash``;
a paused (frozen) one cannot answer, so it reads as ``connection_timeout``; an
``unhealthy`` HEALTHCHECK is an ``unhealthy_response``. Engine errors are
raised for ``medic.watch.classify`` (an unreachable engine means "cannot tell").

Its refiner looks at the ``container:`` of a service whose other check
failed: a container that crashed (or is gone) decides the verdict.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from medic.config.checks import ContainerCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.docker import ContainerNotFound, ContainerState, DockerUnavailable
from medic.watch.checks.base import REFINE_TIMEOUT_S, Check, CheckResult, CheckTarget, Refiner

if TYPE_CHECKING:
    from medic.config.models import ServiceSpec
    from medic.host.resources import Resources

_HEALTH_OUTPUT_CHARS = 300
_STOPPED = frozenset({"exited", "dead", "created"})


def resolve_container(options: ContainerCheckOptions, target: CheckTarget) -> str:
    """The container to inspect (``medic validate`` rejects a check without one)."""
    name = options.container or target.container
    if not name:
        raise ValueError(
            f"service {target.service!r}: a container check needs `container:` "
            "on the check or on the service"
        )
    return name


class ContainerRefiner(Refiner):
    """A service with a ``container:`` whose own probe failed: an exited
    container is a certain crash, whatever the probe saw."""

    def applies(self, spec: ServiceSpec) -> bool:
        return bool(spec.container) and spec.check.type != ContainerCheck.yaml_name

    async def refine(
        self, spec: ServiceSpec, result: CheckResult, resources: Resources
    ) -> CheckResult:
        container = spec.container
        if not container or result.failure_type is FailureType.UNHEALTHY_RESPONSE:
            return result  # a wrong answer came from a running server: nothing to inspect
        try:
            async with asyncio.timeout(REFINE_TIMEOUT_S):
                state = await resources.docker.inspect(container)
        except (TimeoutError, DockerUnavailable):
            return result
        except ContainerNotFound:
            return CheckResult.fail(
                FailureType.SERVICE_CRASH, f"container {container} does not exist", definitive=True
            )
        verdict = judge_state(state)
        if verdict.failure_type is FailureType.SERVICE_CRASH:
            return verdict
        return result


class ContainerCheck(Check[ContainerCheckOptions]):
    """``type: container``: healthy when the container runs and its HEALTHCHECK agrees."""

    yaml_name = "container"
    options_model = ContainerCheckOptions
    refiner = ContainerRefiner()

    async def probe(self) -> CheckResult:
        name = resolve_container(self.options, self.target)
        state = await self.resources.docker.inspect(name)
        return judge_state(state, require_healthy=self.options.require_healthy)


def judge_state(state: ContainerState, *, require_healthy: bool = False) -> CheckResult:
    """The verdict on one inspected container state."""
    data = _state_data(state)
    if state.status == "running":
        return _judge_running(state, require_healthy, data)
    if state.status == "paused":
        return CheckResult.fail(
            FailureType.CONNECTION_TIMEOUT, "container is paused (frozen)", **data
        )
    if state.status in _STOPPED:
        return CheckResult.fail(
            FailureType.SERVICE_CRASH, _stopped_detail(state), definitive=True, **data
        )
    if state.status == "restarting":
        detail = f"container is restarting (restart count {state.restart_count})"
        return CheckResult.fail(FailureType.SERVICE_CRASH, detail, **data)
    return CheckResult.fail(FailureType.SERVICE_CRASH, f"container is {state.status}", **data)


def _judge_running(
    state: ContainerState, require_healthy: bool, data: dict[str, Any]
) -> CheckResult:
    if state.health in (None, "healthy"):
        detail = "running" if state.health is None else "running, health: healthy"
        return CheckResult.ok(detail, **data)
    if state.health == "unhealthy":
        detail = "running, health: unhealthy" + _health_output(state)
        return CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, detail, **data)
    detail = f"running, health: {state.health}"
    if require_healthy:
        return CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, detail, **data)
    return CheckResult.ok(detail, **data)


def _stopped_detail(state: ContainerState) -> str:
    oom = " (OOM killed)" if state.oom_killed else ""
    if state.status == "created":
        return "container was created but never started"
    if state.status == "dead":
        return f"container is dead (exit code {state.exit_code}){oom}"
    return f"container exited with code {state.exit_code}{oom}"


def _health_output(state: ContainerState) -> str:
    output = " ".join(state.health_output.split())
    if not output:
        return ""
    return f" (last probe: {output[-_HEALTH_OUTPUT_CHARS:]})"


def _state_data(state: ContainerState) -> dict[str, Any]:
    return {
        "container": state.name,
        "status": state.status,
        "health": state.health,
        "exit_code": state.exit_code,
        "oom_killed": state.oom_killed,
        "restart_count": state.restart_count,
    }
