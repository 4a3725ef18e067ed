"""The test infrastructure itself: image, containers, crash simulation, PostgreSQL."""

from __future__ import annotations

import time

import asyncpg
import docker
import pytest

from tests.helpers import async_wait_for, free_port, kill_container_process, wait_for
from tests.plugins.docker import ContainerFactory
from tests.plugins.http import http_request


@pytest.mark.docker
def test_image_is_busybox_with_httpd(docker_client: docker.DockerClient, test_image: str) -> None:
    image = docker_client.images.get(test_image)
    assert image.labels.get("medic.recipe"), "image lacks its recipe label"
    assert image.attrs["Config"]["Cmd"] == ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
    out = docker_client.containers.run(
        test_image,
        ["sh", "-c", "busybox --list | grep -x httpd; ls /www; cat /www/healthz"],
        remove=True,
        labels={"medic.test": "1"},
    )
    assert out.decode().split() == ["httpd", "healthz", "index.html", "ok"]


@pytest.mark.docker
def test_container_answers_http_on_published_port(container_factory: ContainerFactory) -> None:
    web = container_factory()
    assert web.port is not None and web.url == f"http://127.0.0.1:{web.port}/"
    assert web.name.startswith(container_factory.prefix)
    assert web.container.labels["medic.test"] == "1"

    status, body = http_request(web.url)
    assert status == 200
    assert b"medic test container" in body
    assert http_request(web.url + "healthz") == (200, b"ok\n")
    assert http_request(web.url + "missing")[0] == 404


@pytest.mark.docker
def test_killing_the_main_process_is_a_crash(
    container_factory: ContainerFactory, docker_client: docker.DockerClient
) -> None:
    web = container_factory(restart_policy="no")
    pid = kill_container_process(docker_client, web.name)
    assert pid > 0
    wait_for(lambda: web.status == "exited", timeout=10, message="container did not exit")
    state = web.state()
    assert state["ExitCode"] == 137  # killed by SIGKILL
    assert state["OOMKilled"] is False
    assert docker_client.containers.get(web.name).attrs["RestartCount"] == 0


@pytest.mark.docker
def test_a_crash_under_restart_policy_is_restarted_by_docker(
    container_factory: ContainerFactory, docker_client: docker.DockerClient
) -> None:
    # Docker restarts a crashed container (unlike one stopped with docker kill/stop).
    web = container_factory(restart_policy="on-failure")
    old_pid = web.kill_process()
    wait_for(
        lambda: web.state()["Running"] and web.state()["Pid"] not in (0, old_pid),
        timeout=15,
        message="docker did not restart the crashed container",
    )
    assert web.reload().attrs["RestartCount"] == 1
    assert web.url is not None
    wait_for(lambda: http_request(web.url or "", timeout=1)[0] == 200, timeout=10)


@pytest.mark.docker
def test_docker_stop_is_quick_thanks_to_init(container_factory: ContainerFactory) -> None:
    web = container_factory()
    started = time.monotonic()
    web.container.stop(timeout=10)
    assert time.monotonic() - started < 5, "busybox httpd ignored SIGTERM (no --init?)"
    assert web.status == "exited"


@pytest.mark.docker
def test_healthcheck_becomes_healthy_then_unhealthy(container_factory: ContainerFactory) -> None:
    web = container_factory(
        health_cmd="wget -q -O /dev/null http://127.0.0.1:8080/healthz",
        health_interval=0.5,
        health_retries=1,
    )
    web.wait_health("healthy", timeout=15)
    web.container.exec_run(["rm", "/www/healthz"])
    web.wait_health("unhealthy", timeout=15)


@pytest.mark.docker
def test_container_without_port_runs_a_command(container_factory: ContainerFactory) -> None:
    worker = container_factory(command="echo started; exec sleep 1000", name="worker")
    assert worker.port is None and worker.url is None
    assert worker.name == f"{container_factory.prefix}worker"
    wait_for(lambda: "started" in worker.logs(), timeout=10)
    assert worker.status == "running"


@pytest.mark.docker
def test_fixed_host_port_is_reused_after_restart(container_factory: ContainerFactory) -> None:
    port = free_port()
    web = container_factory(host_port=port)
    assert web.port == port
    web.container.restart(timeout=5)
    wait_for(lambda: http_request(f"http://127.0.0.1:{port}/", timeout=1)[0] == 200, timeout=10)


@pytest.mark.postgres
async def test_postgres_answers_select_1(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn, timeout=10)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_user") == "medic"
    finally:
        await conn.close()


def test_wait_for_returns_value_or_raises_with_message() -> None:
    calls = iter([0, None, "done"])
    assert wait_for(lambda: next(calls), timeout=5, interval=0.01) == "done"
    with pytest.raises(AssertionError, match="never true"):
        wait_for(lambda: False, timeout=0.1, interval=0.01, message="never true")


async def test_async_wait_for_accepts_sync_and_async_predicates() -> None:
    state = {"n": 0}

    async def bump() -> bool:
        state["n"] += 1
        return state["n"] >= 3

    assert await async_wait_for(bump, timeout=5, interval=0.01) is True
    assert await async_wait_for(lambda: state["n"], timeout=1) == 3
    with pytest.raises(AssertionError, match="nope"):
        await async_wait_for(lambda: 0, timeout=0.1, interval=0.01, message="nope")
