"""The container check against real containers on the Docker engine."""

from __future__ import annotations

import os
import secrets
from typing import Any

import docker
import docker.errors
import pytest

from medic.config.checks import ContainerCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.docker import ContainerNotFound, ContainerState, DockerGateway, DockerUnavailable
from medic.host.resources import Resources
from medic.watch.checks.base import CheckResult, CheckTarget
from medic.watch.checks.container import ContainerCheck, judge_state, resolve_container
from medic.watch.classify import classify_exception
from tests.plugins.docker import ContainerFactory

SECOND_NS = 1_000_000_000


async def _probe(resources: Resources, container: str, **options: Any) -> CheckResult:
    opts = ContainerCheckOptions.model_validate({"type": "container", **options})
    check = ContainerCheck(opts, CheckTarget(service="web", container=container), resources)
    return await check.probe()


@pytest.mark.docker
async def test_running_without_healthcheck_is_healthy(
    container_factory: ContainerFactory, resources: Resources
) -> None:
    web = container_factory()
    result = await _probe(resources, web.name)
    assert result.healthy
    assert result.detail == "running"
    assert result.data["status"] == "running"
    assert result.data["health"] is None


@pytest.mark.docker
async def test_healthy_healthcheck(
    container_factory: ContainerFactory, resources: Resources
) -> None:
    web = container_factory(health_cmd=["true"], health_interval=0.2)
    web.wait_health("healthy")
    result = await _probe(resources, web.name)
    assert result.healthy
    assert result.detail == "running, health: healthy"


@pytest.mark.docker
async def test_starting_healthcheck_is_healthy_for_now_unless_required(
    container_factory: ContainerFactory, resources: Resources
) -> None:
    # The first probe runs after the interval: health stays "starting" for a minute.
    web = container_factory(health_cmd=["true"], health_interval=60)
    assert web.health == "starting"
    relaxed = await _probe(resources, web.name)
    assert relaxed.healthy
    assert relaxed.detail == "running, health: starting"
    strict = await _probe(resources, web.name, require_healthy=True)
    assert not strict.healthy
    assert strict.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert not strict.definitive


@pytest.mark.docker
async def test_unhealthy_healthcheck_is_an_unhealthy_response_with_its_output(
    container_factory: ContainerFactory, resources: Resources
) -> None:
    web = container_factory(
        healthcheck={
            "test": ["CMD-SHELL", "echo database unreachable; exit 1"],
            "interval": SECOND_NS // 5,
            "retries": 1,
        }
    )
    web.wait_health("unhealthy")
    result = await _probe(resources, web.name)
    assert not result.healthy
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert not result.definitive
    assert result.detail.startswith("running, health: unhealthy")
    assert "database unreachable" in result.detail


@pytest.mark.docker
async def test_false_healthcheck_is_unhealthy(
    container_factory: ContainerFactory, resources: Resources
) -> None:
    web = container_factory(
        healthcheck={"test": ["CMD", "false"], "interval": SECOND_NS // 5, "retries": 1}
    )
    web.wait_health("unhealthy")
    result = await _probe(resources, web.name)
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE


@pytest.mark.docker
async def test_paused_is_a_connection_timeout(
    container_factory: ContainerFactory, resources: Resources
) -> None:
    web = container_factory()
    web.container.pause()
    web.wait_status("paused")
    result = await _probe(resources, web.name)
    assert not result.healthy
    assert result.failure_type is FailureType.CONNECTION_TIMEOUT
    assert result.detail == "container is paused (frozen)"
    web.container.unpause()


@pytest.mark.docker
async def test_exited_after_a_crash_is_a_definitive_service_crash(
    container_factory: ContainerFactory, resources: Resources
) -> None:
    web = container_factory()
    web.kill_process()
    web.wait_status("exited")
    result = await _probe(resources, web.name)
    assert not result.healthy
    assert result.failure_type is FailureType.SERVICE_CRASH
    assert result.definitive
    assert result.detail == "container exited with code 137"
    assert result.data["exit_code"] == 137
    assert result.data["oom_killed"] is False


@pytest.mark.docker
async def test_created_but_never_started_is_a_service_crash(
    docker_client: docker.DockerClient, test_image: str, resources: Resources
) -> None:
    container = docker_client.containers.create(
        test_image,
        name=f"medic-test-created-{secrets.token_hex(3)}",
        labels={"medic.test": "1", "medic.test.owner-pid": str(os.getpid())},
    )
    try:
        result = await _probe(resources, str(container.name))
    finally:
        container.remove(force=True)
    assert result.failure_type is FailureType.SERVICE_CRASH
    assert result.definitive
    assert result.detail == "container was created but never started"


@pytest.mark.docker
async def test_missing_container_raises_and_classifies_as_service_crash(
    docker_client: docker.DockerClient, resources: Resources
) -> None:
    name = f"medic-test-absent-{secrets.token_hex(4)}"
    with pytest.raises(ContainerNotFound) as raised:
        await _probe(resources, name)
    assert classify_exception(raised.value) == (
        FailureType.SERVICE_CRASH,
        f"container {name} does not exist",
    )


async def test_unreachable_engine_means_cannot_tell(tmp_path: Any) -> None:
    resources = Resources()
    resources.docker.close()
    resources.docker = DockerGateway(base_url=f"unix://{tmp_path}/no-docker.sock")
    try:
        with pytest.raises(DockerUnavailable) as raised:
            await _probe(resources, "web")
    finally:
        await resources.close()
    failure_type, detail = classify_exception(raised.value)
    assert failure_type is None
    assert detail.startswith("Docker engine unreachable")


def _inspected(status: str, **state: Any) -> ContainerState:
    return ContainerState.from_inspect(
        {"Name": "/web", "Id": "abc", "State": {"Status": status, **state}, "RestartCount": 4}
    )


def test_oom_killed_is_said() -> None:
    result = judge_state(_inspected("exited", ExitCode=137, OOMKilled=True))
    assert result.definitive
    assert result.detail == "container exited with code 137 (OOM killed)"
    assert result.data["oom_killed"] is True


def test_dead_container() -> None:
    result = judge_state(_inspected("dead", ExitCode=1))
    assert result.failure_type is FailureType.SERVICE_CRASH
    assert result.definitive
    assert result.detail == "container is dead (exit code 1)"


def test_restarting_is_a_crash_but_not_definitive() -> None:
    result = judge_state(_inspected("restarting", ExitCode=1))
    assert result.failure_type is FailureType.SERVICE_CRASH
    assert not result.definitive
    assert result.detail == "container is restarting (restart count 4)"


def test_health_output_is_taken_from_the_last_log_entry() -> None:
    state = _inspected(
        "running",
        Health={
            "Status": "unhealthy",
            "Log": [{"Output": "old failure"}, {"Output": "  new failure\n"}],
        },
    )
    assert state.health_output == "new failure"
    assert judge_state(state).detail == "running, health: unhealthy (last probe: new failure)"


def test_resolve_container() -> None:
    opts = ContainerCheckOptions.model_validate({"type": "container"})
    assert resolve_container(opts, CheckTarget(service="web", container="web-1")) == "web-1"
    named = ContainerCheckOptions.model_validate({"type": "container", "container": "other"})
    assert resolve_container(named, CheckTarget(service="web", container="web-1")) == "other"
    with pytest.raises(ValueError, match="service 'web': a container check needs `container:`"):
        resolve_container(opts, CheckTarget(service="web"))
