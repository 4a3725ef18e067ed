"""medic and Docker's own behaviour on a real engine: Docker's restart policy
(no double restarts, counted from Docker's event stream), ``start_period``
after a start medic did not make, a paused container only unpaused, a crash
loop that reaches its open circuit quickly, and no stale ``failure_type`` or
``next_attempt_at``."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from medic.config.actions import RestartContainerOptions
from medic.heal.actions.base import ActionContext, ServiceTarget
from medic.heal.actions.restart_container import RestartContainer
from medic.host.resources import Resources
from tests.dockerwatch import StartCounter
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle, medic_test_labels
from tests.plugins.http import http_request

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"
Counter = Callable[..., StartCounter]
TOKEN = {"MEDIC_API_TOKEN": "tok"}
SLOW_HTTPD = "sleep 1.5; exec httpd -f -p 8080 -h /www"
"""Listens 1.5 s after each start: a check right after a start fails."""


def config(
    port: int, web: ContainerHandle, *, monitoring: str = "", interval: str = "300ms"
) -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: {interval}
  timeout: 1s
  recovery: {{max_attempts: 5, window: 10m, backoff: {{initial: 200ms}}}}
{monitoring}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  web:
    check: {{type: http, url: "{web.url}healthz", expect_status: [200]}}
    container: {web.name}
"""


def service(daemon: DaemonProcess) -> dict[str, Any]:
    code, body = daemon.get("/api/v1/services/web")
    assert code == 200, body
    return dict(body)


def wait_healthy(daemon: DaemonProcess, timeout: float = 20) -> dict[str, Any]:
    return wait_for(
        lambda: (s := service(daemon))["status"] == "healthy" and not s["recovering"] and s,
        timeout,
        interval=0.1,
        message="web is healthy",
    )


def recoveries(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return list(daemon.get("/api/v1/recoveries?service=web")[1]["recoveries"])


def answers_200(web: ContainerHandle) -> bool:
    try:
        return http_request(f"{web.url}healthz", timeout=1.0)[0] == 200
    except OSError:
        return False


def hold_still(counters: list[StartCounter], seconds: float) -> None:
    before = [len(c.starts) for c in counters]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert [len(c.starts) for c in counters] == before, "an unexpected Docker event"
        time.sleep(0.05)


def test_a_restart_always_container_is_started_exactly_once_per_crash(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory, start_counter: Counter
) -> None:
    web = container_factory(name="web", restart_policy="always")
    starts, restarts = start_counter(web.id), start_counter(web.id, "restart")
    # start_period: on a loaded machine httpd may need a moment after Docker's
    # start, and a check that fails then is not what this test is about.
    monitoring = "  failure_threshold: 2\n  start_period: 3s"
    daemon = medic_daemon(config(free_port(), web, monitoring=monitoring), env=TOKEN)
    wait_healthy(daemon)
    for crash in (1, 2, 3):
        web.kill_process()
        wait_for(lambda n=crash: len(starts.starts) >= n, 15, message=f"Docker restarts #{crash}")
        wait_for(lambda: answers_200(web), 15, message="web answers again")
        wait_healthy(daemon)
        hold_still([starts], 1.5)  # the interval five times over: medic adds nothing
        assert len(starts.starts) == crash
        time.sleep(0.5 * crash)  # vary where the crash falls in medic's check interval
    assert restarts.starts == [], "medic restarted a container Docker had restarted"
    assert recoveries(daemon) == []


def test_start_period_applies_after_docker_restarts_the_container(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory, start_counter: Counter
) -> None:
    # After each start the server needs 1.5 s: with start_period 4s those
    # failures do not count, whoever started the container.
    web = container_factory(name="web", command=SLOW_HTTPD, publish=True, restart_policy="always")
    starts = start_counter(web.id)
    monitoring = "  failure_threshold: 1\n  start_period: 4s"
    daemon = medic_daemon(config(free_port(), web, monitoring=monitoring), env=TOKEN)
    wait_healthy(daemon)
    time.sleep(4.5)  # past the daemon's own start_period
    web.kill_process()
    wait_for(lambda: len(starts.starts) == 1, 15, message="Docker restarts it")
    assert not answers_200(web)  # failing its check, inside its start_period
    wait_for(lambda: answers_200(web), 15, message="web answers again")
    wait_healthy(daemon)
    hold_still([starts], 1.0)
    assert recoveries(daemon) == []
    assert len(starts.starts) == 1


def test_a_crash_docker_will_not_repair_is_healed_from_the_die_event(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory, start_counter: Counter
) -> None:
    # on-failure:1 with its one retry used up: Docker gives up, medic acts.
    web = container_factory(
        name="web", restart_policy={"Name": "on-failure", "MaximumRetryCount": 1}
    )
    starts = start_counter(web.id)
    daemon = medic_daemon(config(free_port(), web, interval="30s"), env=TOKEN)
    wait_healthy(daemon)
    web.kill_process()  # Docker's one retry
    wait_for(lambda: len(starts.starts) == 1 and answers_200(web), 15, message="Docker's retry")
    wait_healthy(daemon)
    time.sleep(0.5)  # medic reads the policy again after each start
    web.kill_process()  # no retry left: medic's turn, from the die event (30 s interval)
    wait_for(lambda: recoveries(daemon), 10, interval=0.05, message="medic acts")
    wait_for(lambda: recoveries(daemon)[0]["outcome"] == "succeeded", 15, message="healed")
    record = recoveries(daemon)[0]
    assert record["failure_type"] == "service_crash"
    assert record["facts"]["exit_code"] == 137
    assert "Docker's die event" in record["facts"]["detail"]
    assert len(starts.starts) == 2
    assert len(recoveries(daemon)) == 1


async def test_restart_container_leaves_a_restarting_container_to_docker(
    container_factory: ContainerFactory,
    resources: Resources,
    tmp_path: Path,
    start_counter: Counter,
) -> None:
    looping = container_factory(
        name="loop", command="exit 3", publish=False, wait_ready=False, restart_policy="always"
    )
    restarts = start_counter(looping.id, "restart")
    # Docker's back-off doubles from 100 ms: after 4 restarts it waits 1.6 s.
    wait_for(
        lambda: looping.reload().attrs["RestartCount"] >= 4 and looping.status == "restarting",
        30,
        interval=0.02,
        message="Docker restarts the container again and again",
    )
    action = RestartContainer(RestartContainerOptions(action="restart_container"))
    ctx = ActionContext(
        resources=resources, state_dir=tmp_path, service=ServiceTarget("loop", looping.name)
    )
    result = await action.run(ctx)
    assert "Docker" in result.detail and "not restarted again" in result.detail, result
    hold_still([restarts], 0.5)
    assert restarts.starts == []


def test_a_paused_container_is_marked_at_once_and_only_unpaused(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory, start_counter: Counter
) -> None:
    web = container_factory(name="web")
    starts = start_counter(web.id)
    daemon = medic_daemon(config(free_port(), web, interval="30s"), env=TOKEN)
    wait_healthy(daemon)
    paused_at = time.monotonic()
    web.container.pause()
    # A 30 s interval: only Docker's pause event can explain a recovery now.
    wait_for(lambda: recoveries(daemon), 5, interval=0.02, message="the pause is acted on")
    assert time.monotonic() - paused_at < 4.0  # the pause call included, on a busy machine
    wait_for(lambda: recoveries(daemon)[0]["outcome"] == "succeeded", 15, message="healed")
    record = recoveries(daemon)[0]
    assert record["failure_type"] == "connection_timeout"
    assert record["steps"][0]["detail"] == f"unpaused container {web.name}"
    assert web.status == "running"
    assert starts.starts == []  # unpaused, never restarted


CRASH_LOOP = """
description: the shipped restart-container's steps, its 60 s wait_healthy included
failure_types: [service_crash]
steps:
  - {action: restart_container, timeout: 30s}
  - {action: wait_healthy, timeout: 60s}
"""


def test_a_crash_loop_reaches_its_open_circuit_quickly(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory, start_counter: Counter
) -> None:
    looping = container_factory(name="loop", command="exit 3", publish=False, wait_ready=False)
    looping.wait_status("exited")
    starts = start_counter(looping.id)
    port = free_port()
    daemon = medic_daemon(
        f"""
api: {{listen: 127.0.0.1:{port}}}
monitoring:
  health_check_interval: 300ms
  recovery: {{max_attempts: 3, window: 10m, backoff: {{initial: 500ms, factor: 1}}}}
playbooks_dir: playbooks
services:
  loop:
    check: {{type: container}}
    container: {looping.name}
""",
        playbooks={"restart-container": CRASH_LOOP},
    )
    began = time.monotonic()
    stale: list[str] = []

    def circuit_open() -> bool:
        body = daemon.get("/api/v1/services/loop")[1]
        due = body["next_attempt_at"]
        if due and body["circuit"] != "open":
            late = time.time() - datetime.fromisoformat(due).timestamp()
            if late > 1.0:
                stale.append(f"next attempt {late:.1f}s ago while {body['status']}")
        return bool(body["circuit"] == "open")

    wait_for(circuit_open, 30, interval=0.05, message="the circuit opens")
    assert time.monotonic() - began < 15  # 3 x 60 s of wait_healthy before
    assert stale == []
    rows = [r for r in daemon.get("/api/v1/recoveries")[1]["recoveries"]]
    assert len(rows) == 3
    # Each restart fails at wait_healthy's first probe that finds the container
    # exited again (on a loaded machine a probe may still catch it running).
    failed = [r for r in rows if r["outcome"] == "failed"]
    assert failed, rows
    assert all("definitive" in r["steps"][1]["detail"] for r in failed), rows
    assert len(starts.starts) == 3


def test_an_operators_recovery_leaves_no_stale_failure_type(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory
) -> None:
    web = container_factory(name="web")
    daemon = medic_daemon(config(free_port(), web), env=TOKEN)
    wait_healthy(daemon)
    code, body = daemon.post("/api/v1/services/web/recover", token="tok")
    assert code in (200, 202), body
    wait_for(
        lambda: (r := recoveries(daemon)) and r[0]["outcome"] == "succeeded",
        20,
        message="the operator's recovery ends",
    )
    time.sleep(1.0)  # the checks after medic's own restart
    assert service(daemon)["failure_type"] is None
    health = daemon.get("/api/v1/status")[1]["health_status"]["web"]
    assert (health["status"], health["failure_type"]) == ("healthy", None)


async def test_restart_container_uses_the_containers_own_stop_timeout(
    docker_client: Any, test_image: str, resources: Resources, tmp_path: Path
) -> None:
    # busybox httpd as PID 1 (no --init) ignores SIGTERM: a restart takes the
    # whole stop timeout. The container's own (1 s) wins over the step's 30 s.
    name = f"medic-test-stoptimeout-{secrets.token_hex(3)}"
    created = docker_client.api.create_container(
        test_image, name=name, stop_timeout=1, labels=medic_test_labels()
    )
    try:
        docker_client.api.start(created["Id"])
        options = RestartContainerOptions(action="restart_container", stop_timeout=30)
        ctx = ActionContext(
            resources=resources, state_dir=tmp_path, service=ServiceTarget("web", name)
        )
        began = time.monotonic()
        result = await RestartContainer(options).run(ctx)
        took = time.monotonic() - began
        assert result.ok and result.detail == f"restarted running container {name}", result
        assert 0.8 < took < 6.0, f"the restart took {took:.1f}s: not the container's 1 s"
    finally:
        docker_client.api.remove_container(created["Id"], force=True)
