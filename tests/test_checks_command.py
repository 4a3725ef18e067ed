"""The command check with real programs: exit codes, output tails, and the
runner's timeout ending the whole process tree."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from medic.config.checks import CommandCheckOptions
from medic.config.models import MonitoringConfig, ServiceConfig, ServiceSpec
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.tell.metrics import Metrics
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.command import CommandCheck
from medic.watch.classify import classify_exception
from medic.watch.runner import CheckRunner, build_check
from tests.helpers import async_wait_for


def _check(resources: Resources, command: list[str], **options: Any) -> CommandCheck:
    opts = CommandCheckOptions.model_validate({"type": "command", "command": command, **options})
    return CommandCheck(opts, CheckTarget(service="job"), resources)


async def test_exit_0_is_healthy(resources: Resources) -> None:
    result = await _check(resources, ["sh", "-c", "echo all good"]).probe()
    assert result.healthy
    assert result.detail == "sh -c 'echo all good': exit 0"
    assert result.data == {"exit_code": 0, "output": "all good"}


async def test_non_zero_is_an_unhealthy_response_with_the_output_tail(
    resources: Resources,
) -> None:
    script = "seq 1 500; echo 'replica lag 93s' >&2; exit 3"
    result = await _check(resources, ["sh", "-c", script]).probe()
    assert not result.healthy
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert result.detail.startswith(f"{shlex.join(['sh', '-c', script])}: exit 3: ...")
    assert result.detail.endswith("498 499 500 replica lag 93s")
    assert result.data["exit_code"] == 3
    assert result.data["output"].endswith("500\nreplica lag 93s")


async def test_no_output(resources: Resources) -> None:
    result = await _check(resources, ["false"]).probe()
    assert result.detail == "false: exit 1 (no output)"


async def test_killed_by_a_signal(resources: Resources) -> None:
    result = await _check(resources, ["sh", "-c", "kill -KILL $$"]).probe()
    assert result.failure_type is FailureType.UNHEALTHY_RESPONSE
    assert result.detail == "sh -c 'kill -KILL $$': killed by SIGKILL (no output)"


async def test_ok_exit_codes_cwd_and_env(resources: Resources, tmp_path: Path) -> None:
    (tmp_path / "flag").write_text("x")
    check = _check(
        resources,
        ["sh", "-c", 'test -f flag && echo "$GREETING" && exit 1'],
        cwd=str(tmp_path),
        env={"GREETING": "warning only"},
        ok_exit_codes=[0, 1],
    )
    result = await check.probe()
    assert result.healthy
    assert result.data["output"] == "warning only"


async def test_missing_program_is_a_check_error(resources: Resources) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        await _check(resources, ["/nonexistent/probe"]).probe()
    failure_type, _ = classify_exception(caught.value)
    assert failure_type is None


def test_command_must_be_a_non_empty_argv() -> None:
    with pytest.raises(ValidationError):
        CommandCheckOptions.model_validate({"type": "command", "command": []})
    with pytest.raises(ValidationError):
        CommandCheckOptions.model_validate({"type": "command", "command": "echo hi"})


async def test_runner_timeout_ends_the_whole_tree(resources: Resources, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The check starts a background child and hangs on it; the timeout must end both.
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    svc = ServiceConfig.model_validate(
        {"check": {"type": "command", "command": ["sh", "-c", script]}, "timeout": "500ms"}
    )
    spec = ServiceSpec.resolve("job", svc, MonitoringConfig())
    probe = await CheckRunner(resources, Metrics()).run(spec, build_check(spec, resources))
    assert probe.result.failure_type is FailureType.CONNECTION_TIMEOUT
    assert probe.result.detail == "no answer within 0.5s"
    child = int(pidfile.read_text())
    await async_wait_for(lambda: not _alive(child), 5, message=f"child {child} still runs")
    assert probe.duration_s < 3


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie runs nothing
