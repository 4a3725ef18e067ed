"""The start_service action: by command (real programs), by supervised process
(medic's real supervisor), by container (real Docker) and by unit (the
systemctl stand-in, as in test_systemd_units.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from medic.config.models import ProcessConfig
from medic.core.vocabulary import FailureType
from medic.heal.actions.base import ActionContext, ActionResult, ServiceTarget
from medic.heal.actions.start_service import StartService
from medic.host.resources import Resources
from medic.watch.checks.base import CheckResult
from tests.plugins.docker import ContainerFactory
from tests.systemd_stand_in import StandIn, stand_in_fixture  # noqa: F401  # the fixture


class Probe:
    """The service's check as the action sees it: counts its calls."""

    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy
        self.calls = 0

    async def __call__(self) -> CheckResult:
        self.calls += 1
        if self.healthy:
            return CheckResult.ok("SELECT 1 answered 1")
        return CheckResult.fail(FailureType.DATABASE_CONNECTION, "connection refused")


def _ctx(
    resources: Resources,
    tmp_path: Path,
    run_check: Callable[[], Awaitable[CheckResult]] | None = None,
    **service: Any,
) -> ActionContext:
    return ActionContext(
        resources=resources,
        state_dir=tmp_path,
        service=ServiceTarget(name="database", **service),
        run_check=run_check,
    )


def _action(**options: Any) -> StartService:
    return StartService(
        StartService.options_model.model_validate({"action": "start_service", **options})
    )


async def _run(ctx: ActionContext, **options: Any) -> ActionResult:
    return await _action(**options).run(ctx)


# -- by command --------------------------------------------------------------------


async def test_start_command_runs_when_the_check_fails(
    resources: Resources, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    probe = Probe(healthy=False)
    ctx = _ctx(resources, tmp_path, probe, start_command=("touch", str(marker)))
    assert _action().describe(ctx) == f"start database (start_command touch {marker}) if it is down"
    result = await _run(ctx)
    assert result.ok, result
    assert result.detail == f"started with touch {marker}"
    assert marker.exists()
    assert probe.calls == 1


async def test_start_command_is_skipped_when_the_service_answers(
    resources: Resources, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    ctx = _ctx(resources, tmp_path, Probe(healthy=True), start_command=("touch", str(marker)))
    result = await _run(ctx)
    assert result.ok
    assert result.detail == "already up: SELECT 1 answered 1"
    assert not marker.exists()


async def test_failing_start_command_fails_with_its_output(
    resources: Resources, tmp_path: Path
) -> None:
    command = ("sh", "-c", "echo 'Cluster is already running.' >&2; exit 2")
    ctx = _ctx(resources, tmp_path, Probe(healthy=False), start_command=command)
    result = await _run(ctx)
    assert not result.ok
    assert result.detail.startswith("exit 2 from sh -c")
    assert result.output == "Cluster is already running.\n"
    assert result.data["exit_code"] == 2


async def test_step_command_overrides_the_service(resources: Resources, tmp_path: Path) -> None:
    step_marker, service_marker = tmp_path / "step", tmp_path / "service"
    ctx = _ctx(
        resources,
        tmp_path,
        Probe(healthy=False),
        start_command=("touch", str(service_marker)),
        container="not-used",
    )
    result = await _run(ctx, command=["touch", str(step_marker)])
    assert result.ok
    assert step_marker.exists() and not service_marker.exists()


async def test_nothing_configured_is_said_and_not_a_failure(
    resources: Resources, tmp_path: Path
) -> None:
    ctx = _ctx(resources, tmp_path, Probe(healthy=False))
    assert _action().describe(ctx) == "start database: nothing configured to start it"
    result = await _run(ctx)
    assert result.ok
    assert result.detail == (
        "nothing to start: database names no container, unit, process or start_command"
        " (medic does not run it)"
    )


# -- by supervised process ---------------------------------------------------------


async def test_supervised_process_is_started_unless_it_runs(tmp_path: Path) -> None:
    resources = Resources(state_dir=tmp_path)
    try:
        config = ProcessConfig(command=["sleep", "60"])
        await resources.processes.apply({"database": config}, start=False)
        ctx = _ctx(resources, tmp_path, Probe(healthy=False), start_command=("false",))
        assert _action().describe(ctx) == (
            "start database (supervised process database) if it is down"
        )
        result = await _run(ctx)
        assert result.ok, result
        pid = result.data["pid"]
        assert result.detail == f"started the process of database (pid {pid})"
        assert resources.processes.alive("database")
        again = await _run(ctx)
        assert again.detail == f"the process of database already runs (pid {pid})"
    finally:
        await resources.close()  # stops what the supervisor started


# -- by unit -------------------------------------------------------------------------


async def test_inactive_unit_is_started(
    stand_in: StandIn, resources: Resources, tmp_path: Path
) -> None:
    stand_in.set_unit("postgresql@15-main.service", ActiveState="inactive", SubState="dead")
    result = await _run(_ctx(resources, tmp_path, unit="postgresql@15-main.service"))
    assert result.ok
    assert result.detail == "started unit postgresql@15-main.service: active (running), 0 restarts"
    assert stand_in.verbs() == ["show", "start", "show"]


async def test_active_unit_is_left_alone(
    stand_in: StandIn, resources: Resources, tmp_path: Path
) -> None:
    stand_in.set_unit("postgresql@15-main.service")
    result = await _run(_ctx(resources, tmp_path, unit="postgresql@15-main.service"))
    assert result.ok
    assert (
        result.detail == "unit postgresql@15-main.service is already active (running), 0 restarts"
    )
    assert stand_in.verbs() == ["show"]


# -- by container --------------------------------------------------------------------


@pytest.mark.docker
async def test_stopped_container_is_started(
    container_factory: ContainerFactory, resources: Resources, tmp_path: Path
) -> None:
    db = container_factory()
    db.container.stop(timeout=1)
    db.wait_status("exited")
    result = await _run(_ctx(resources, tmp_path, container=db.name))
    assert result.ok, result
    assert result.detail == f"started exited container {db.name}"
    db.wait_status("running")
    again = await _run(_ctx(resources, tmp_path, container=db.name))
    assert again.detail == f"container {db.name} is already running"
