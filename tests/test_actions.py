"""Container actions on real containers, wait_healthy on a real HTTP server, notify, sleep,
and the registries."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from medic.config.actions import ACTION_OPTIONS
from medic.config.checks import CHECK_OPTIONS
from medic.config.checks import HttpCheckOptions as HttpOptions
from medic.core.errors import MedicError
from medic.core.vocabulary import FailureType
from medic.heal.actions import ACTION_TYPES
from medic.heal.actions.base import Action, ActionContext, ActionError, ServiceTarget
from medic.heal.actions.notify import Notify
from medic.heal.actions.restart_container import RestartContainer
from medic.heal.actions.sleep import Sleep
from medic.heal.actions.start_container import StartContainer
from medic.heal.actions.wait_healthy import WaitHealthy
from medic.host.resources import Resources
from medic.watch.checks import CHECK_TYPES, REFINERS
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.http import HttpCheck
from tests.helpers import wait_for
from tests.plugins.docker import ContainerFactory
from tests.plugins.http import http_request


def _ctx(resources: Resources, tmp_path: Path, container: str | None = None, **kw: Any) -> Any:
    service = ServiceTarget(name="web", container=container)
    return ActionContext(resources=resources, state_dir=tmp_path, service=service, **kw)


def _make(cls: type[Action[Any]], **options: Any) -> Any:
    return cls(cls.options_model.model_validate({"action": cls.yaml_name, **options}))


def _answers(url: str) -> bool:
    try:
        return http_request(url + "healthz", timeout=1.0)[0] == 200
    except OSError:
        return False


# -- restart_container / start_container -------------------------------------------


@pytest.mark.docker
async def test_restart_brings_back_a_crashed_container(
    container_factory: ContainerFactory, resources: Resources, tmp_path: Path
) -> None:
    web = container_factory()
    assert web.url is not None
    web.kill_process()
    web.wait_status("exited")
    result = await _make(RestartContainer).run(_ctx(resources, tmp_path, web.name))
    assert result.ok
    assert result.detail == f"started exited container {web.name} (was exit 137)"
    assert result.data["was"] == "exited"
    wait_for(lambda: _answers(web.url), 15, message="HTTP did not come back")


@pytest.mark.docker
async def test_restart_only_unpauses_a_paused_container(
    container_factory: ContainerFactory, resources: Resources, tmp_path: Path
) -> None:
    # Frozen, not broken: unpausing is the whole cure; a restart would only cost
    # its stop timeout (10 s for a server that ignores SIGTERM).
    web = container_factory()
    started_at = web.state()["StartedAt"]
    web.container.pause()
    web.wait_status("paused")
    action = _make(RestartContainer, container=web.name, stop_timeout="2s")
    result = await action.run(_ctx(resources, tmp_path))
    assert result.ok
    assert result.detail == f"unpaused container {web.name}"
    assert web.status == "running"
    assert web.state()["StartedAt"] == started_at


@pytest.mark.docker
async def test_restart_restarts_a_running_container(
    container_factory: ContainerFactory, resources: Resources, tmp_path: Path
) -> None:
    web = container_factory()
    assert web.url is not None
    started_at = web.state()["StartedAt"]
    action = _make(RestartContainer, stop_timeout="2s")
    result = await action.run(_ctx(resources, tmp_path, web.name))
    assert result.ok
    assert result.detail == f"restarted running container {web.name}"
    assert web.state()["StartedAt"] != started_at
    wait_for(lambda: _answers(web.url), 15, message="HTTP did not come back")


@pytest.mark.docker
async def test_restart_of_a_missing_container_is_an_error(
    docker_client: Any, resources: Resources, tmp_path: Path
) -> None:
    name = f"medic-test-absent-{secrets.token_hex(4)}"
    with pytest.raises(ActionError, match=f"container {name} does not exist"):
        await _make(RestartContainer).run(_ctx(resources, tmp_path, name))


async def test_container_actions_need_a_container(resources: Resources, tmp_path: Path) -> None:
    for cls in (RestartContainer, StartContainer):
        with pytest.raises(ActionError, match=f"{cls.yaml_name} needs a container"):
            await _make(cls).run(_ctx(resources, tmp_path))


def test_container_actions_describe_their_target(resources: Resources, tmp_path: Path) -> None:
    ctx = _ctx(resources, tmp_path, "web-1")
    assert _make(RestartContainer).describe(ctx) == (
        "restart container web-1 (stop timeout: its own, else 10s)"
    )
    assert _make(StartContainer, container="db").describe(ctx) == "start container db"
    assert _make(StartContainer).describe(_ctx(resources, tmp_path)) == (
        "start container <no container configured>"
    )


@pytest.mark.docker
async def test_start_container(
    container_factory: ContainerFactory, resources: Resources, tmp_path: Path
) -> None:
    web = container_factory()
    ctx = _ctx(resources, tmp_path, web.name)
    already = await _make(StartContainer).run(ctx)
    assert already.ok
    assert already.detail == f"container {web.name} is already running"
    web.kill_process()
    web.wait_status("exited")
    started = await _make(StartContainer).run(ctx)
    assert started.ok
    assert started.detail == f"started exited container {web.name}"
    assert web.status == "running"


# -- wait_healthy -------------------------------------------------------------------


async def _start_server(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def _flaky_app(unhealthy_requests: int) -> web.Application:
    """503 for the first ``unhealthy_requests`` requests, 200 afterwards (-1: never)."""
    seen = 0

    async def health(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if unhealthy_requests < 0 or seen <= unhealthy_requests:
            return web.Response(status=503, text="warming up")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", health)
    return app


@pytest.fixture
async def server_factory() -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def make(app: web.Application) -> TestServer:
        server = await _start_server(app)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


def _http_probe(resources: Resources, url: str) -> Any:
    opts = HttpOptions.model_validate({"type": "http", "url": url})
    return HttpCheck(opts, CheckTarget(service="web"), resources).probe


async def test_wait_healthy_returns_once_the_service_answers(
    server_factory: Any, resources: Resources, tmp_path: Path
) -> None:
    server = await server_factory(_flaky_app(unhealthy_requests=4))
    run_check = _http_probe(resources, str(server.make_url("/health")))
    action = _make(WaitHealthy, consecutive=2, interval="200ms")
    result = await action.run(_ctx(resources, tmp_path, run_check=run_check))
    assert result.ok, result.detail
    assert result.data["probes"] == 6
    assert result.detail.startswith("healthy after")


async def test_wait_healthy_gives_up_at_its_deadline(
    server_factory: Any, resources: Resources, tmp_path: Path
) -> None:
    server = await server_factory(_flaky_app(unhealthy_requests=-1))
    run_check = _http_probe(resources, str(server.make_url("/health")))
    action = _make(WaitHealthy, timeout="500ms", interval="100ms")
    started = time.monotonic()
    result = await action.run(_ctx(resources, tmp_path, run_check=run_check))
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.detail.startswith("still unhealthy after 0.5s: HTTP 503 Service Unavailable")
    assert result.data["probes"] >= 4
    assert 0.45 <= elapsed < 2


async def test_wait_healthy_deadline_cuts_a_hung_probe(
    server_factory: Any, resources: Resources, tmp_path: Path
) -> None:
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/health", hang)
    server = await server_factory(app)
    run_check = _http_probe(resources, str(server.make_url("/health")))
    result = await _make(WaitHealthy, timeout=0.3).run(
        _ctx(resources, tmp_path, run_check=run_check)
    )
    assert not result.ok
    assert result.detail == "still unhealthy after 0.3s: no probe finished"


async def test_wait_healthy_needs_a_check(resources: Resources, tmp_path: Path) -> None:
    assert WaitHealthy.manages_own_timeout
    with pytest.raises(ActionError, match="needs the service's check"):
        await _make(WaitHealthy).run(_ctx(resources, tmp_path))


def test_wait_healthy_describe(resources: Resources, tmp_path: Path) -> None:
    assert _make(WaitHealthy, consecutive=3).describe(_ctx(resources, tmp_path)) == (
        "wait until web is healthy 3 times in a row (up to 60s)"
    )


# -- notify / sleep -------------------------------------------------------------------


async def test_notify_emits_the_event_with_the_facts(resources: Resources, tmp_path: Path) -> None:
    emitted: list[tuple[str, dict[str, Any]]] = []

    async def emit(event: str, data: dict[str, Any]) -> None:
        emitted.append((event, data))

    ctx = _ctx(
        resources,
        tmp_path,
        emit=emit,
        failure_type=FailureType.SERVICE_CRASH.value,
        facts={"detail": "container exited with code 137"},
    )
    result = await _make(Notify, event="recovery.failed", message="web is down").run(ctx)
    assert result.ok
    assert emitted == [
        (
            "recovery.failed",
            {
                "message": "web is down",
                "service": "web",
                "failure_type": "service_crash",
                "detail": "container exited with code 137",
            },
        )
    ]
    await _make(Notify).run(ctx)
    assert emitted[1][0] == "notify"
    assert emitted[1][1]["message"] == "notify for web (service_crash)"


async def test_notify_without_a_sink_is_ok(resources: Resources, tmp_path: Path) -> None:
    result = await _make(Notify).run(_ctx(resources, tmp_path))
    assert result.ok


async def test_sleep(resources: Resources, tmp_path: Path) -> None:
    started = time.monotonic()
    result = await _make(Sleep, duration="50ms").run(_ctx(resources, tmp_path))
    assert result.ok
    assert time.monotonic() - started >= 0.05
    assert _make(Sleep, duration="2m").describe(_ctx(resources, tmp_path)) == "sleep 120s"
    with pytest.raises(ValidationError, match="duration"):
        Sleep.options_model.model_validate({"action": "sleep"})


# -- registries -----------------------------------------------------------------------


def _literal_of(model: Any, field: str) -> str:
    (value,) = get_args(model.model_fields[field].annotation)
    return str(value)


def test_action_registry_is_keyed_by_the_yaml_name() -> None:
    assert set(ACTION_TYPES) >= {
        "notify",
        "restart_container",
        "run_command",
        "sleep",
        "start_container",
        "wait_healthy",
    }
    for name, cls in ACTION_TYPES.items():
        assert cls.yaml_name == name
        assert _literal_of(cls.options_model, "action") == name
    assert set(ACTION_OPTIONS) == {cls.options_model for cls in ACTION_TYPES.values()}
    with pytest.raises(TypeError):
        ACTION_TYPES["x"] = Sleep  # type: ignore[index]


def test_check_registry_is_keyed_by_the_yaml_name() -> None:
    assert set(CHECK_TYPES) >= {"container", "http", "tcp"}
    for name, cls in CHECK_TYPES.items():
        assert cls.yaml_name == name
        assert _literal_of(cls.options_model, "type") == name
    assert set(CHECK_OPTIONS) == {cls.options_model for cls in CHECK_TYPES.values()}


def test_refiners_are_the_plugins_own_in_registry_order() -> None:
    assert [type(r).__name__ for r in REFINERS] == [
        "ContainerRefiner",
        "ProcessRefiner",
        "UnitRefiner",
    ]
    assert list(REFINERS) == [c.refiner for c in CHECK_TYPES.values() if c.refiner is not None]


def test_action_error_is_a_medic_error() -> None:
    assert issubclass(ActionError, MedicError)
