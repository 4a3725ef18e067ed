"""The unit check's verdicts on ``systemctl show`` output captured from systemd 252,
and the refinement it lends to another check on a service with a ``unit:``.

How medic behaves under a real systemd is in tests/systemd/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medic.config.checks import UnitCheckOptions
from medic.config.load import load_config
from medic.core.errors import ConfigInvalid
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.host.systemd import UnitState, parse_show
from medic.watch.checks.base import CheckResult, CheckTarget
from medic.watch.checks.unit import OPERATOR_STOP, UnitCheck, judge_unit, refine
from tests.systemd_stand_in import StandIn, stand_in_fixture  # noqa: F401  # the fixture

FIXTURES = Path(__file__).parent / "fixtures" / "systemd"


def state(fixture: str, unit: str = "web.service") -> UnitState:
    text = (FIXTURES / f"show-{fixture}.txt").read_text()
    return UnitState.from_properties(unit, parse_show(text))


def test_active_unit_is_healthy() -> None:
    result = judge_unit(state("active"))
    assert result.healthy
    assert result.detail == "web.service is active (running), 0 restarts"
    assert result.data[OPERATOR_STOP] is False
    assert result.operator_stop is False


def test_killed_unit_is_a_definitive_crash() -> None:
    result = judge_unit(state("killed"))
    assert (result.healthy, result.failure_type, result.definitive) == (
        False,
        FailureType.SERVICE_CRASH,
        True,
    )
    assert result.detail == (
        "web.service is down: failed (failed), result signal, 0 restarts;"
        " main process killed by SIGKILL"
    )
    assert result.data[OPERATOR_STOP] is False
    assert result.operator_stop is False


def test_start_limit_hit_says_how_to_clear_it() -> None:
    result = judge_unit(state("start-limit-hit"))
    assert result.definitive
    assert result.failure_type is FailureType.SERVICE_CRASH
    assert "start limit hit: run systemctl reset-failed web.service" in result.detail


def test_clean_stop_is_an_operator_stop_not_yet_a_crash() -> None:
    result = judge_unit(state("stopped"))
    assert not result.healthy
    assert not result.definitive
    assert result.data[OPERATOR_STOP] is True
    assert result.operator_stop is True
    assert "stopped cleanly" in result.detail


def test_missing_unit_is_reported_as_not_loaded() -> None:
    result = judge_unit(state("not-found"))
    assert result.definitive
    assert result.detail == "unit web.service is not loaded (LoadState=not-found)"


def test_systemd_restarting_the_unit_itself_is_not_definitive() -> None:
    result = judge_unit(state("with-warning"))
    assert result.failure_type is FailureType.SERVICE_CRASH
    assert not result.definitive
    assert "systemd restarts it (Restart=)" in result.detail


def test_refine_takes_the_units_verdict_when_it_is_down() -> None:
    probe = CheckResult.fail(FailureType.SERVICE_CRASH, "connection refused")
    result = refine(probe, state("killed"))
    assert result.definitive
    assert result.detail.endswith("; the check saw: connection refused")


def test_refine_keeps_the_checks_verdict_while_the_unit_runs() -> None:
    probe = CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, "HTTP 500", status=500)
    result = refine(probe, state("active"))
    assert (result.failure_type, result.detail) == (FailureType.UNHEALTHY_RESPONSE, "HTTP 500")
    assert result.data == {"status": 500, OPERATOR_STOP: False}
    assert result.operator_stop is False


def test_refine_marks_an_operator_stop() -> None:
    probe = CheckResult.fail(FailureType.SERVICE_CRASH, "connection refused")
    assert refine(probe, state("stopped")).data[OPERATOR_STOP] is True
    assert refine(probe, state("stopped")).operator_stop is True


def test_a_check_that_knows_no_unit_says_nothing_of_a_stop() -> None:
    assert CheckResult.fail(FailureType.SERVICE_CRASH, "connection refused").operator_stop is None


async def test_probe_reads_systemctl(stand_in: StandIn) -> None:
    stand_in.set_unit("web.service", ActiveState="failed", SubState="failed", Result="signal")
    check = UnitCheck(
        UnitCheckOptions(type="unit"), CheckTarget(service="web", unit="web.service"), Resources()
    )
    result = await check.probe()
    assert result.definitive
    assert stand_in.verbs() == ["show"]


async def test_probe_cannot_tell_when_systemctl_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    check = UnitCheck(
        UnitCheckOptions(type="unit", unit="web.service"), CheckTarget(service="web"), Resources()
    )
    result = await check.probe()
    assert not result.healthy
    assert result.failure_type is None
    assert result.detail.startswith("cannot read web.service: ")


def test_config_rejects_a_unit_check_without_a_unit(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("services:\n  web:\n    check: {type: unit}\n")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(config)
    assert [str(i) for i in caught.value.issues] == [
        f"{config}:3: services.web.check: a unit check needs 'unit:' on the check or the service"
    ]


def test_main_process_exit_is_named() -> None:
    failed = {"LoadState": "loaded", "ActiveState": "failed", "SubState": "failed"}
    exited = UnitState.from_properties(
        "web.service", {**failed, "Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "3"}
    )
    assert judge_unit(exited).detail.endswith("; main process exited with status 3")
    dumped = UnitState.from_properties(
        "web.service", {**failed, "Result": "core-dump", "ExecMainCode": "3", "ExecMainStatus": "6"}
    )
    assert dumped.main_exit() == "killed by SIGABRT (core dumped)"
