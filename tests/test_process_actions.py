"""restart_process and signal_process through the step runner, on real processes."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from medic.config.actions import ActionOptions, parse_signal
from medic.config.actions import SignalProcessOptions as SignalOptions
from medic.config.models import MonitoringConfig, ProcessConfig, ServiceConfig, ServiceSpec
from medic.heal.actions import ACTION_TYPES
from medic.heal.actions.base import ActionContext, ServiceTarget
from medic.heal.playbooks import step_applies
from medic.heal.steps import run_step
from medic.host.resources import Resources
from tests.helpers import async_wait_for
from tests.processes import PYTHON, Spawner, alive, program

SLEEPER = [PYTHON, "-c", "import time; time.sleep(300)"]


def step(**options: Any) -> ActionOptions:
    model = ACTION_TYPES[options["action"]].options_model
    return model.model_validate(options, context={"base_dir": "/"})


def context(resources: Resources, tmp_path: Path, service: str | None = "svc") -> ActionContext:
    target = ServiceTarget(name=service) if service else None
    return ActionContext(resources=resources, state_dir=tmp_path, service=target)


async def test_signal_process_sends_hup_to_the_services_process(
    resources: Resources, tmp_path: Path
) -> None:
    out = tmp_path / "signals.txt"
    await resources.processes.apply({"svc": ProcessConfig(command=program("hup_recorder.py", out))})
    await async_wait_for(lambda: out.exists() and out.read_text() == "ready\n", 10, message="ready")
    pid = resources.processes.pid("svc")

    outcome = await run_step(
        step(action="signal_process", signal="HUP"), context(resources, tmp_path)
    )
    assert outcome.outcome == "succeeded", outcome.detail
    assert outcome.detail == f"sent SIGHUP to pid {pid}"
    await async_wait_for(
        lambda: out.read_text() == "ready\nHUP\n", 5, message="the program recorded the HUP"
    )
    assert resources.processes.pid("svc") == pid, "a HUP is not a restart"


async def test_signal_process_by_pid_and_pidfile(
    resources: Resources, spawn: Spawner, tmp_path: Path
) -> None:
    out = tmp_path / "signals.txt"
    proc = spawn(program("hup_recorder.py", out))
    await async_wait_for(lambda: out.exists(), 10, message="ready")
    pidfile = tmp_path / "rec.pid"
    pidfile.write_text(f"{proc.pid}\n")
    ctx = context(resources, tmp_path, service=None)
    by_pid = await run_step(step(action="signal_process", signal="SIGHUP", pid=proc.pid), ctx)
    assert by_pid.outcome == "succeeded", by_pid.detail
    # One at a time: two pending SIGHUPs merge into one in the kernel.
    await async_wait_for(lambda: out.read_text() == "ready\nHUP\n", 10, message="one HUP")
    by_file = await run_step(step(action="signal_process", signal="hup", pidfile=str(pidfile)), ctx)
    assert by_file.outcome == "succeeded", by_file.detail
    await async_wait_for(lambda: out.read_text() == "ready\nHUP\nHUP\n", 10, message="two HUPs")
    term = await run_step(step(action="signal_process", signal="TERM", pid=proc.pid), ctx)
    assert term.outcome == "succeeded"
    assert proc.wait(timeout=5) == -signal.SIGTERM
    gone = await run_step(step(action="signal_process", signal="HUP", pidfile=str(pidfile)), ctx)
    assert gone.outcome == "failed"
    assert "names no running process" in gone.detail


async def test_signal_process_without_a_target_fails_clearly(
    resources: Resources, tmp_path: Path
) -> None:
    outcome = await run_step(
        step(action="signal_process", signal="HUP"), context(resources, tmp_path)
    )
    assert outcome.outcome == "failed"
    assert "needs a process" in outcome.detail


def test_signal_names() -> None:
    assert parse_signal("USR1") is signal.SIGUSR1
    assert parse_signal("sigterm") is signal.SIGTERM
    assert parse_signal("9") is signal.SIGKILL
    with pytest.raises(ValueError, match="unknown signal 'BOGUS'"):
        parse_signal("BOGUS")
    with pytest.raises(ValidationError, match="unknown signal"):
        SignalOptions.model_validate({"action": "signal_process", "signal": "NOPE"})


async def test_restart_process_kills_what_ignores_sigterm_after_stop_timeout(
    resources: Resources, tmp_path: Path
) -> None:
    ready = tmp_path / "ready.pid"
    config = ProcessConfig(command=program("ignore_term.py", ready), stop_timeout=1.0)
    await resources.processes.apply({"svc": config})
    await async_wait_for(ready.exists, 10, message="SIGTERM ignored from now on")
    old = resources.processes.pid("svc")
    assert old is not None

    outcome = await run_step(step(action="restart_process"), context(resources, tmp_path))
    assert outcome.outcome == "succeeded", outcome.detail
    assert "SIGKILL: still running 1s after SIGTERM" in outcome.detail
    assert 1.0 <= outcome.duration_s < 5.0
    assert outcome.data["forced"] is True
    assert outcome.data["old_pid"] == old
    assert not alive(old)
    new = resources.processes.pid("svc")
    assert new is not None and new != old and alive(new)
    assert outcome.data["pid"] == new


async def test_restart_process_step_timeout_overrides_stop_timeout(
    resources: Resources, tmp_path: Path
) -> None:
    ready = tmp_path / "ready.pid"
    config = ProcessConfig(command=program("ignore_term.py", ready), stop_timeout=30.0)
    await resources.processes.apply({"svc": config})
    await async_wait_for(ready.exists, 10, message="SIGTERM ignored from now on")
    outcome = await run_step(
        step(action="restart_process", stop_timeout="300ms"), context(resources, tmp_path)
    )
    assert outcome.outcome == "succeeded"
    assert outcome.duration_s < 5.0


async def test_restart_process_describes_itself_for_dry_runs(
    resources: Resources, tmp_path: Path
) -> None:
    await resources.processes.apply({"svc": ProcessConfig(command=SLEEPER)})
    pid = resources.processes.pid("svc")
    ctx = context(resources, tmp_path)
    ctx.dry_run = True
    outcome = await run_step(step(action="restart_process"), ctx)
    assert outcome.outcome == "dry_run"
    assert (
        outcome.detail == f"would restart svc's process (pid {pid}): stop it, then start it again"
    )
    assert resources.processes.pid("svc") == pid


def test_a_step_with_its_own_pid_needs_no_process_on_the_service() -> None:
    service = ServiceConfig.model_validate({"check": {"type": "tcp", "port": 1}})
    spec = ServiceSpec.resolve("web", service, MonitoringConfig())
    assert step_applies(step(action="signal_process", signal="HUP", pid=1), spec)
    assert not step_applies(step(action="signal_process", signal="HUP"), spec)
    assert not step_applies(step(action="restart_process"), spec)


async def test_notify_fills_in_the_failure_figures(resources: Resources, tmp_path: Path) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    async def emit(event: str, data: dict[str, Any]) -> None:
        sent.append((event, data))

    ctx = context(resources, tmp_path)
    ctx.emit = emit
    ctx.failure_type = "memory_leak"
    ctx.facts = {"rss_mib": 81.5, "growth_mib_per_s": 19.8, "detail": "grew"}
    message = (
        "${service} ${failure_type}: ${rss_mib} MiB, ${growth_mib_per_s} MiB/s; ${unknown} $$5"
    )
    outcome = await run_step(
        step(action="notify", event="service.memory_leak", message=message), ctx
    )
    assert outcome.outcome == "succeeded"
    assert sent[0][1]["message"] == "svc memory_leak: 81.5 MiB, 19.8 MiB/s; ${unknown} $5"
    assert sent[0][1]["rss_mib"] == 81.5
