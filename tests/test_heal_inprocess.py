"""Healing real containers with the orchestrator in the test's own event loop.

The same stories as the end-to-end tests (test_heal_container.py,
test_guardrails_docker.py), told by the events medic publishes on its bus
rather than by its log and API: what happened, in which order, and what did
not happen within a bounded time. Docker's own event stream is the witness
for what was restarted. Only the orchestrator's public surface is used.
"""

from __future__ import annotations

import asyncio
from contextlib import closing
from typing import Any

import pytest
from structlog.testing import capture_logs

from medic.core.bus import Event
from medic.orchestrator import ControlPlaneOrchestrator
from tests.dockerwatch import StartCounter
from tests.helpers import async_wait_for
from tests.plugins.docker import ContainerFactory, ContainerHandle
from tests.plugins.inprocess import BusWatch, OrchestratorFactory

QUICK_RESTART = """
description: restart the container; give it a few seconds to become healthy
failure_types: [service_crash, connection_timeout, unhealthy_response]
steps:
  - {action: restart_container, timeout: 10s}
  - {action: wait_healthy, timeout: 5s}
"""

CRASH_LOOP_RESTART = """
description: restart the container; give it two seconds to become healthy
failure_types: [service_crash]
steps:
  - {action: restart_container, timeout: 10s}
  - {action: wait_healthy, timeout: 2s}
"""

QUIET_S = 3.0
"""How long "nothing more happens" is watched for: ten check intervals and more."""


def config(container: ContainerHandle, check: str, *, interval: str, recovery: str) -> str:
    return f"""
monitoring:
  health_check_interval: {interval}
  timeout: 1s
  failure_threshold: 1
  recovery: {recovery}
playbooks_dir: playbooks
services:
  web:
    check: {check}
    container: {container.name}
"""


def container_config(container: ContainerHandle, *, recovery: str) -> str:
    return config(container, "{type: container}", interval="300ms", recovery=recovery)


@pytest.fixture
def watched_web(
    container_factory: ContainerFactory, start_counter: Any
) -> tuple[ContainerHandle, StartCounter]:
    """A web container, and Docker's own count of its starts."""
    web = container_factory(name="web")
    return web, start_counter(web.id)


async def healthy(events: BusWatch, service: str) -> Event:
    return await events.next("service.state", service=service, new="healthy")


async def listening_to_docker(
    orchestrator: OrchestratorFactory, web: ContainerHandle
) -> ControlPlaneOrchestrator:
    """An HTTP check of ``web`` every 30 s, once medic listens to Docker's events."""
    check = f'{{type: http, url: "{web.url}healthz", expect_status: [200]}}'
    with capture_logs() as logs:
        orch = await orchestrator(
            config(web, check, interval="30s", recovery="{max_attempts: 5, window: 10m}"),
            playbooks={"restart-container": QUICK_RESTART},
        )
        await async_wait_for(
            lambda: any(e["event"] == "docker.connected" for e in logs),
            10,
            message="medic listens to Docker's events",
        )
    return orch


async def test_a_process_killed_from_the_host_is_restarted(
    orchestrator: OrchestratorFactory,
    watched_web: tuple[ContainerHandle, StartCounter],
) -> None:
    web, starts = watched_web
    # A 30 s interval: only Docker's die event can explain a heal within seconds.
    orch = await listening_to_docker(orchestrator, web)
    with closing(BusWatch(orch.bus, after=0)) as events:
        await healthy(events, "web")
        # The stream's connecting asks for a check of its own, a moment later: let
        # it end first, so that the kill meets no probe already on its way (whose
        # reset connection would read as a network failure before Docker says die).
        await async_wait_for(
            lambda: len(orch.monitor.state("web").recent_checks) >= 2,
            10,
            message="the first check and the one asked for on connecting",
        )

        killed = await asyncio.to_thread(web.kill_process)

        started = await events.next("recovery.started", service="web")
        assert (started.data["failure_type"], started.data["trigger"]) == ("service_crash", "auto")
        done = await events.next("recovery.succeeded", service="web")
        assert done.data["recovery_id"] == started.data["recovery_id"]
        assert done.data["playbook"] == "restart-container"
    await async_wait_for(lambda: starts.starts, 10, message="Docker saw the container start")
    assert len(starts.starts) == 1, "one restart, by medic"
    assert orch.service_status("web")["status"] == "healthy"
    running = await asyncio.to_thread(web.reload)
    assert running.attrs["State"]["Pid"] not in (0, killed)


async def test_docker_stop_by_an_operator_is_left_alone(
    orchestrator: OrchestratorFactory,
    watched_web: tuple[ContainerHandle, StartCounter],
) -> None:
    web, starts = watched_web
    orch = await orchestrator(
        container_config(web, recovery="{max_attempts: 5, window: 10m}"),
        playbooks={"restart-container": QUICK_RESTART},
    )
    with closing(BusWatch(orch.bus, after=0)) as events:
        await healthy(events, "web")

        await asyncio.to_thread(web.container.stop, timeout=5)

        stopped = await events.next("service.stopped_by_operator", service="web")
        assert stopped.data["detail"] == "stopped with docker stop"
        await events.none("recovery.started", service="web", within=QUIET_S, since=stopped)
        assert events.count("recovery.started") == 0, "not before the stop was noticed either"
        assert orch.service_status("web")["status"] == "stopped_by_operator"
        assert starts.starts == []

        # An operator who asks for a recovery gets one: that path bypasses the guardrails.
        outcome = await orch.auto_recover("web")
        assert outcome.outcome == "succeeded", outcome
        started = await events.next("recovery.started", service="web")
        assert started.data["trigger"] == "manual"
    await async_wait_for(lambda: starts.starts, 10, message="Docker saw the container start")
    assert len(starts.starts) == 1


async def test_a_crash_loop_opens_the_circuit_after_max_attempts(
    orchestrator: OrchestratorFactory,
    container_factory: ContainerFactory,
    start_counter: Any,
) -> None:
    max_attempts = 3
    looping = container_factory(name="loop", command="exit 3", publish=False)
    starts: StartCounter = start_counter(looping.id)
    recovery = (
        f"{{max_attempts: {max_attempts}, window: 10m, backoff: {{initial: 200ms, factor: 1}}}}"
    )
    orch = await orchestrator(
        container_config(looping, recovery=recovery),
        playbooks={"restart-container": CRASH_LOOP_RESTART},
    )
    with closing(BusWatch(orch.bus, after=0)) as events:
        opened = await events.next("circuit.opened", service="web", timeout=60)

        started = [e for e in events.seen if e.name == "recovery.started"]
        assert len(started) == max_attempts, [e.data for e in started]
        assert {(e.data["trigger"], e.data["failure_type"]) for e in started} == {
            ("auto", "service_crash")
        }
        ended = [e for e in events.seen if e.name in ("recovery.succeeded", "recovery.failed")]
        assert [e.data["recovery_id"] for e in ended] == [e.data["recovery_id"] for e in started]

        await events.none("recovery.started", service="web", within=QUIET_S, since=opened)
    assert orch.service_status("web")["circuit"] == "open"
    assert len(starts.starts) == max_attempts, "Docker saw one start per recovery, no more"


async def test_a_docker_stop_made_while_the_event_stream_was_away_is_left_alone(
    orchestrator: OrchestratorFactory,
    watched_web: tuple[ContainerHandle, StartCounter],
) -> None:
    web, starts = watched_web
    # A 30 s interval: only the stream's reconnection can tell medic anything.
    orch = await listening_to_docker(orchestrator, web)
    with closing(BusWatch(orch.bus, after=0)) as events:
        await healthy(events, "web")
        await orch.docker_events.stop()  # the stream breaks; the engine stays up
        await asyncio.to_thread(web.container.stop, timeout=5)
        orch.docker_events.start()

        # The engine replays the stop's events: an operator's stop, not a crash.
        stopped = await events.next("service.stopped_by_operator", service="web")
        assert stopped.data["detail"] == "stopped with docker stop"
        await events.none("recovery.started", service="web", within=QUIET_S, since=stopped)
        assert events.count("recovery.started") == 0
    assert orch.service_status("web")["status"] == "stopped_by_operator"
    assert starts.starts == []
