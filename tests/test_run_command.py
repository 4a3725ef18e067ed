"""run_command and medic.host.subprocesses with real processes: output, exit codes, and teardown.

Cancelled commands must leave nothing running; the processes of one test are
found by a unique environment variable that every descendant inherits.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import ValidationError

from medic.config.actions import RunCommandOptions
from medic.heal.actions.base import ActionContext, ActionError, ActionResult
from medic.heal.actions.run_command import RunCommand
from medic.host import subprocesses
from medic.host.resources import Resources
from medic.host.subprocesses import parse_proc_stat, run_captured
from tests.helpers import async_wait_for

TOKEN_VAR = "MEDIC_TEST_RUN_TOKEN"


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ActionContext]:
    resources = Resources()
    yield ActionContext(resources=resources, state_dir=tmp_path)
    await resources.close()


@pytest.fixture
def token() -> str:
    return secrets.token_hex(8)


def _tagged(token: str) -> list[psutil.Process]:
    """Live (non-zombie) processes carrying ``token`` in their environment."""
    found = []
    for proc in psutil.process_iter(["environ", "status"]):
        environ = proc.info["environ"] or {}
        if environ.get(TOKEN_VAR) == token and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def reap_tagged(token: str) -> Any:
    """Safety net: whatever a failing test left behind is killed afterwards."""
    yield
    for proc in _tagged(token):
        proc.kill()


def _action(**options: Any) -> RunCommand:
    return RunCommand(RunCommandOptions.model_validate({"action": "run_command", **options}))


async def _run(ctx: ActionContext, **options: Any) -> ActionResult:
    return await _action(**options).run(ctx)


async def test_success_with_output(ctx: ActionContext) -> None:
    result = await _run(ctx, command=["sh", "-c", "echo hello; echo oops >&2"])
    assert result.ok
    assert result.detail == "exit 0"
    assert result.output == "hello\noops\n"
    assert result.data["exit_code"] == 0
    assert result.data["duration_s"] >= 0


async def test_output_tail_is_the_last_4_kib(ctx: ActionContext) -> None:
    script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done"
    result = await _run(ctx, command=["sh", "-c", script])
    assert len(result.output.encode()) == 4096
    assert result.output.endswith("line2999\n")
    assert "line0\n" not in result.output


async def test_exit_codes(ctx: ActionContext) -> None:
    failed = await _run(ctx, command=["sh", "-c", "exit 3"])
    assert not failed.ok
    assert failed.detail == "exit 3 (expected 0)"
    allowed = await _run(ctx, command=["sh", "-c", "exit 3"], ok_exit_codes=[0, 3])
    assert allowed.ok


async def test_killed_by_a_signal(ctx: ActionContext) -> None:
    result = await _run(ctx, command=["sh", "-c", "kill -KILL $$"])
    assert not result.ok
    assert result.detail.startswith("killed by signal SIGKILL")
    assert result.data["exit_code"] == -signal.SIGKILL


async def test_shell_string(ctx: ActionContext) -> None:
    result = await _run(ctx, command="echo $((6 * 7)) | tr 4 X", shell=True)
    assert result.ok
    assert result.output == "X2\n"


def test_a_string_without_shell_is_rejected() -> None:
    with pytest.raises(ValidationError, match="command must be an argv list; set shell: true"):
        RunCommandOptions.model_validate({"action": "run_command", "command": "echo hi"})


def test_shell_wants_one_string_and_an_empty_command_is_rejected() -> None:
    with pytest.raises(ValidationError, match="with shell: true, command must be one string"):
        RunCommandOptions.model_validate(
            {"action": "run_command", "command": ["echo"], "shell": True}
        )
    with pytest.raises(ValidationError, match="must not be empty"):
        RunCommandOptions.model_validate({"action": "run_command", "command": []})


async def test_env_is_added_and_cwd_used(ctx: ActionContext, tmp_path: Path) -> None:
    result = await _run(
        ctx,
        command=["sh", "-c", 'echo "$GREETING $(pwd)"; test -n "$PATH"'],
        env={"GREETING": "hi"},
        cwd=str(tmp_path),
    )
    assert result.ok, result.output
    assert result.output == f"hi {tmp_path}\n"


async def test_the_state_dir_is_in_the_environment(ctx: ActionContext) -> None:
    result = await _run(ctx, command='echo "$MEDIC_STATE_DIR"', shell=True)
    assert result.ok and result.output == f"{ctx.state_dir}\n"


def test_a_relative_cwd_is_relative_to_the_config_file(tmp_path: Path) -> None:
    options = RunCommandOptions.model_validate(
        {"action": "run_command", "command": ["ls"], "cwd": "jobs"},
        context={"base_dir": tmp_path},
    )
    assert options.cwd == tmp_path / "jobs"


async def test_stdin_is_devnull(ctx: ActionContext) -> None:
    async with asyncio.timeout(10):
        result = await _run(ctx, command=["cat"])
    assert result.ok and result.output == ""


async def test_missing_program_is_an_action_error(ctx: ActionContext) -> None:
    with pytest.raises(ActionError, match="cannot run /nonexistent/tool"):
        await _run(ctx, command=["/nonexistent/tool"])


def test_describe() -> None:
    action = _action(command=["systemctl", "restart", "my app"], cwd="/srv")
    assert action.describe(ActionContext(resources=Resources(), state_dir=Path("/tmp"))) == (
        "run systemctl restart 'my app' in /srv"
    )


async def test_a_background_child_holding_stdout_does_not_hang_the_step(
    ctx: ActionContext, token: str, reap_tagged: None
) -> None:
    started = time.monotonic()
    result = await _run(
        ctx, command=["sh", "-c", "echo started; sleep 30 & exit 0"], env={TOKEN_VAR: token}
    )
    assert result.ok
    assert result.output == "started\n"
    assert time.monotonic() - started < 5


async def _start_and_find(
    ctx: ActionContext, token: str, script: str, count: int, kill_grace: str
) -> tuple[asyncio.Task[ActionResult], set[int]]:
    """Start ``script`` cut off after 0.5 s; return the task and the pids it started."""
    action = _action(command=["sh", "-c", script], env={TOKEN_VAR: token}, kill_grace=kill_grace)
    task = asyncio.ensure_future(asyncio.wait_for(action.run(ctx), 0.5))
    procs = await async_wait_for(
        lambda: len(_tagged(token)) >= count and _tagged(token),
        5,
        interval=0.02,
        message=f"the command did not start {count} processes",
    )
    return task, {p.pid for p in procs}


async def test_cancellation_leaves_no_process_behind(
    ctx: ActionContext, token: str, reap_tagged: None
) -> None:
    started = time.monotonic()
    task, pids = await _start_and_find(ctx, token, "sleep 1000 & sleep 1000", 3, "5s")
    sessions = {os.getsid(pid) for pid in pids}
    assert len(sessions) == 1 and sessions != {os.getsid(0)}, "not in a session of its own"
    with pytest.raises(TimeoutError):
        await task
    assert time.monotonic() - started < 3, "SIGTERM alone should have ended it quickly"
    await async_wait_for(lambda: not _alive(pids), 5, message="processes survived")
    assert not _tagged(token)


async def test_sigterm_ignored_means_sigkill_after_the_grace(
    ctx: ActionContext, token: str, reap_tagged: None
) -> None:
    started = time.monotonic()
    task, pids = await _start_and_find(ctx, token, 'trap "" TERM; sleep 1000 & sleep 1000', 3, "1s")
    with pytest.raises(TimeoutError):
        await task
    elapsed = time.monotonic() - started
    # Cut off at 0.5 s, then 1 s of grace before SIGKILL.
    assert 1.4 <= elapsed < 5, elapsed
    await async_wait_for(lambda: not _alive(pids), 5, message="processes survived SIGKILL")
    assert not _tagged(token)


async def test_run_captured_cancelled_twice_still_tears_down(token: str, reap_tagged: None) -> None:
    env = {TOKEN_VAR: token}
    task = asyncio.ensure_future(
        run_captured(["sh", "-c", 'trap "" TERM; sleep 1000'], env=env, kill_grace_s=0.3)
    )
    procs = await async_wait_for(
        lambda: len(_tagged(token)) >= 2 and _tagged(token), 5, interval=0.02
    )
    task.cancel()
    await async_wait_for(lambda: subprocesses._teardowns, 5, interval=0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pids = {p.pid for p in procs}
    await async_wait_for(lambda: not _alive(pids), 5, message="processes survived")


def test_parse_proc_stat() -> None:
    assert parse_proc_stat("4242 (my (odd) name) S 1 4242 4241 0 -1 4194560") == ("S", 4242, 4241)
    assert parse_proc_stat("1 (x) Z 0 1 1") == ("Z", 1, 1)
    assert parse_proc_stat("garbage") is None
