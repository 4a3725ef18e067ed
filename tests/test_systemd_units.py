"""systemctl argv building and ``systemctl show`` parsing on fixture output, and
the ``restart_unit`` action.

systemd is not PID 1 on the test host, so the action's call sequence is run
against the stand-in ``tests/fixtures/systemd/bin/systemctl`` (see the README
beside it), and once against the real ``systemctl`` to see how medic reports a
systemctl that cannot operate. A real systemd is exercised in a container by
the systemd tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medic.heal.actions.base import ActionContext, ActionError, ActionResult, ServiceTarget
from medic.heal.actions.restart_unit import RestartUnit
from medic.heal.steps import run_step
from medic.host import systemd as units
from medic.host.resources import Resources
from medic.host.systemd import SystemctlError, UnitState, parse_show, show_argv, systemctl_argv
from tests.systemd_stand_in import StandIn, stand_in_fixture  # noqa: F401  # the fixture

FIXTURES = Path(__file__).parent / "fixtures" / "systemd"


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- argv and parsing ----------------------------------------------------------------


def test_argv() -> None:
    assert systemctl_argv("restart", "web.service") == [
        "systemctl",
        "--no-ask-password",
        "restart",
        "--",
        "web.service",
    ]
    assert show_argv("-odd.service") == [
        "systemctl",
        "--no-ask-password",
        "show",
        "--property=LoadState,ActiveState,SubState,NRestarts,Result,ExecMainCode,ExecMainStatus",
        "--",
        "-odd.service",
    ]


def test_parse_active_unit() -> None:
    state = UnitState.from_properties("web.service", parse_show(_fixture("show-active.txt")))
    assert state == UnitState("web.service", "loaded", "active", "running", "success", 0)
    assert state.exists and state.up and not state.failed and not state.start_limit_hit
    assert state.summary() == "active (running), 0 restarts"


def test_parse_start_limit_hit() -> None:
    state = UnitState.from_properties(
        "web.service", parse_show(_fixture("show-start-limit-hit.txt"))
    )
    assert state.failed and state.start_limit_hit and not state.up
    assert state.n_restarts == 5
    assert state.summary() == "failed (failed), result start-limit-hit, 5 restarts"
    assert state.as_dict() == {
        "ActiveState": "failed",
        "SubState": "failed",
        "NRestarts": 5,
        "Result": "start-limit-hit",
        "LoadState": "loaded",
    }


def test_parse_not_found() -> None:
    state = UnitState.from_properties("nope.service", parse_show(_fixture("show-not-found.txt")))
    assert not state.exists


def test_parse_skips_warnings_on_stderr() -> None:
    properties = parse_show(_fixture("show-with-warning.txt"))
    assert properties == {
        "NRestarts": "2",
        "Result": "exit-code",
        "LoadState": "loaded",
        "ActiveState": "activating",
        "SubState": "auto-restart",
    }
    state = UnitState.from_properties("web.service", properties)
    assert state.up
    assert state.summary() == "activating (auto-restart), result exit-code, 2 restarts"


def test_parse_without_systemd_has_no_state() -> None:
    assert parse_show(_fixture("show-no-systemd.txt")) == {}


def test_missing_nrestarts_is_unknown_not_zero() -> None:
    state = UnitState.from_properties("old.service", {"ActiveState": "active", "NRestarts": ""})
    assert state.n_restarts is None
    assert state.summary() == "active (unknown)"


# -- the real systemctl on this host ---------------------------------------------------


async def test_real_systemctl_failure_is_an_action_error(tmp_path: Path) -> None:
    unit = "medic-test-no-such-unit.service"
    with pytest.raises(ActionError) as caught:
        await RestartUnit(_options()).run(_ctx(tmp_path, unit))
    message = str(caught.value)
    # Where systemd runs, the unit is unknown; where it does not (this test host), systemctl
    # cannot operate. Either way the operator reads systemctl's own words.
    assert (
        f"unit {unit} does not exist" in message
        or "System has not been booted with systemd" in message
    ), message


# -- restart_unit against the stand-in ---------------------------------------------------


def _options(**options: Any) -> Any:
    return RestartUnit.options_model.model_validate({"action": "restart_unit", **options})


def _ctx(tmp_path: Path, unit: str | None) -> ActionContext:
    # No client of Resources is used by these actions: nothing to close.
    return ActionContext(
        resources=Resources(),
        state_dir=tmp_path,
        service=ServiceTarget(name="web", unit=unit),
    )


async def _restart(tmp_path: Path, service_unit: str | None, **options: Any) -> ActionResult:
    return await RestartUnit(_options(**options)).run(_ctx(tmp_path, service_unit))


async def test_restart_an_active_unit(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.set_unit("web.service", NRestarts="2")
    result = await _restart(tmp_path, "web.service")
    assert result.ok
    assert result.detail == "restarted web.service: active (running), 2 restarts"
    assert stand_in.verbs() == ["show", "restart", "show"]
    assert result.data["after"]["ActiveState"] == "active"
    assert result.data["reset_failed"] is False


async def test_start_limit_hit_is_reset_first(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.set_unit(
        "web.service",
        ActiveState="failed",
        SubState="failed",
        Result="start-limit-hit",
        NRestarts="5",
    )
    result = await _restart(tmp_path, "web.service")
    assert result.ok, result
    assert stand_in.verbs() == ["show", "reset-failed", "restart", "show"]
    assert result.detail == (
        "restarted web.service: active (running), 5 restarts;"
        " reset-failed first (was failed (failed), result start-limit-hit, 5 restarts)"
    )
    assert result.data["before"]["Result"] == "start-limit-hit"
    assert result.data["reset_failed"] is True


async def test_start_limit_hit_without_reset_is_reported_clearly(
    stand_in: StandIn, tmp_path: Path
) -> None:
    stand_in.set_unit(
        "web.service", ActiveState="failed", SubState="failed", Result="start-limit-hit"
    )
    result = await _restart(tmp_path, "web.service", reset_failed=False)
    assert not result.ok
    assert stand_in.verbs() == ["show", "restart", "show"]
    assert result.detail == (
        "systemd refuses to start web.service: start limit hit"
        " (failed (failed), result start-limit-hit, 0 restarts); reset_failed is off"
    )
    assert "attempted to start too often" in result.output


async def test_unit_from_the_step_overrides_the_service(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.set_unit("worker.service", ActiveState="inactive", SubState="dead")
    result = await _restart(tmp_path, "web.service", unit="worker.service")
    assert result.detail == "restarted worker.service: active (running), 0 restarts"


async def test_unknown_unit(stand_in: StandIn, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"unit ghost\.service does not exist"):
        await _restart(tmp_path, "ghost.service")
    assert stand_in.verbs() == ["show"]


async def test_no_unit_anywhere_fails_the_step_before_running_anything(
    stand_in: StandIn, tmp_path: Path
) -> None:
    outcome = await run_step(_options(), _ctx(tmp_path, None))
    assert outcome.outcome == "failed"
    assert outcome.detail == (
        "restart_unit needs a unit: set `unit:` on the step or on the service"
    )
    assert stand_in.verbs() == []


async def test_describe(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "web.service")
    assert RestartUnit(_options()).describe(ctx) == (
        "reset-failed if failed, then systemctl restart web.service"
    )
    assert RestartUnit(_options(reset_failed=False)).describe(ctx) == (
        "systemctl restart web.service"
    )


async def test_show_raises_when_systemctl_prints_no_state(
    stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(units, "SYSTEMCTL", "false")
    with pytest.raises(SystemctlError, match="exited 1: no output"):
        await units.show("web.service")
