"""The daemon's parts start in one order and stop in reverse: a start that
fails closes what it opened (no supervised process left behind, the state dir
usable by the next ``medic run``), a part that fails to close does not keep
the others open, and nothing opens before its part starts."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from medic.config.load import load_config
from medic.core.lifecycle import Lifecycle, Part, TeardownError
from medic.host.processes.pidfiles import pid_alive
from medic.orchestrator import ControlPlaneOrchestrator
from tests.plugins.daemon import DaemonFactory
from tests.processes import Spawner
from tests.test_cli_client import run_cli

SLEEPER = json.dumps([sys.executable, "-c", "import time; time.sleep(300)"])

ORDER = [
    "store",
    "last stop",
    "http session",
    "docker gateway",
    "postgres pools",
    "notifications",
    "scheduler",
    "processes",
    "api",
    "monitor",
    "workflows",
    "docker events",
    "work",
]


def config_text(listen_port: int) -> str:
    return f"""
api: {{listen: 127.0.0.1:{listen_port}}}
monitoring: {{health_check_interval: 1h}}
services:
  sleeper:
    check: {{type: process}}
    process: {{command: {SLEEPER}, stop_timeout: 5s}}
"""


def json_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def orchestrator(tmp_path: Path, listen_port: int) -> ControlPlaneOrchestrator:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(listen_port))
    return ControlPlaneOrchestrator(load_config(path, state_dir=tmp_path / "state"))


def supervised_pid(orch: ControlPlaneOrchestrator, spawn: Spawner) -> int:
    """The sleeper's PID, its session killed at the end should the test fail."""
    pid = orch.resources.processes.pid("sleeper")
    assert pid is not None and pid > 0
    return spawn.watch(pid)


@asynccontextmanager
async def failing_to_close() -> AsyncIterator[None]:
    try:
        yield
    finally:
        raise OSError("the listener would not close")


@asynccontextmanager
async def failing_to_start() -> AsyncIterator[None]:
    raise OSError("address already in use")
    yield  # pragma: no cover - never reached


def test_a_taken_api_address_stops_what_started_and_frees_the_state_dir(
    medic_daemon: DaemonFactory, listening_port: int, spawn: Spawner
) -> None:
    config = medic_daemon.dir / "taken.yaml"
    config.write_text(config_text(listening_port))

    result = run_cli("run", "--config", str(config), "--state-dir", str(medic_daemon.state_dir))

    assert result.returncode == 1
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1, result.stderr
    assert plain[0].startswith(f"medic: cannot listen on 127.0.0.1:{listening_port} (api.listen): ")
    assert "address already in use" in plain[0].lower()
    events = json_events(result.stderr)
    started = next(e for e in events if e["event"] == "process.started")
    pid = spawn.watch(started["pid"])  # killed at the end should this test fail
    assert not pid_alive(pid), "the supervised process outlived the failed start"
    names = [e["event"] for e in events]
    assert names.index("process.stopped") < names.index("orchestrator.stopped")
    assert not (medic_daemon.state_dir / "processes" / "sleeper.pid").exists()

    # The same state dir, a free address: the next daemon starts and starts its own process.
    daemon = medic_daemon(config_text(medic_daemon.new_port()))
    fresh = daemon.wait_for_log(event="process.started", service="sleeper")
    spawn.watch(fresh["pid"])


async def test_a_part_that_fails_to_close_leaves_the_others_closing(
    tmp_path: Path, listening_port: int, spawn: Spawner
) -> None:
    orch = orchestrator(tmp_path, listening_port)
    parts = Lifecycle()
    await parts.open(orch.parts(api=Part("api", failing_to_close())))
    assert parts.started == ORDER
    pid = supervised_pid(orch, spawn)
    assert pid_alive(pid)

    with capture_logs() as logs, pytest.raises(TeardownError) as caught:
        await parts.close()

    assert caught.value.parts == ["api"]
    failed = [e for e in logs if e["event"] == "lifecycle.close_failed"]
    assert [(e["part"], e["error"]) for e in failed] == [
        ("api", "OSError: the listener would not close")
    ]
    assert parts.started == []
    # The parts below the API closed after it all the same.
    assert not pid_alive(pid)
    with pytest.raises(sqlite3.ProgrammingError):
        orch.store.recoveries(limit=1)


async def test_a_part_that_fails_to_start_closes_those_before_it_in_reverse(
    tmp_path: Path, listening_port: int, spawn: Spawner
) -> None:
    orch = orchestrator(tmp_path, listening_port)
    parts = Lifecycle()

    with capture_logs() as logs, pytest.raises(OSError, match="address already in use"):
        await parts.open(orch.parts(api=Part("api", failing_to_start())))

    assert parts.started == []
    started = next(e for e in logs if e["event"] == "process.started")
    assert not pid_alive(spawn.watch(started["pid"]))
    assert not [e for e in logs if e["event"] == "lifecycle.close_failed"]
    with pytest.raises(sqlite3.ProgrammingError):
        orch.store.recoveries(limit=1)
    closing = ("process.stopped", "orchestrator.stopped")
    assert [e["event"] for e in logs if e["event"] in closing] == list(closing)


async def test_nothing_opens_before_its_part_starts(
    tmp_path: Path, listening_port: int, spawn: Spawner
) -> None:
    orch = orchestrator(tmp_path, listening_port)
    assert not (tmp_path / "state").exists(), "the constructor made the state dir"
    assert [part.name for part in orch.parts(api=Part("api", nullcontext()))] == ORDER
    assert "api" not in [part.name for part in orch.parts()]

    await orch.start()
    try:
        assert supervised_pid(orch, spawn) > 0
        assert (tmp_path / "state" / "medic.db").is_file()
        assert orch.scheduler.running
    finally:
        await orch.stop(grace_s=0)
    with pytest.raises(sqlite3.ProgrammingError):
        orch.store.recoveries(limit=1)


async def test_a_failed_start_reports_its_own_error_and_logs_a_failed_close() -> None:
    closed: list[str] = []

    @asynccontextmanager
    async def recorded(name: str) -> AsyncIterator[None]:
        try:
            yield
        finally:
            closed.append(name)

    parts = Lifecycle()
    with capture_logs() as logs, pytest.raises(OSError, match="address already in use"):
        await parts.open(
            [
                Part("first", recorded("first")),
                Part("breaks on close", failing_to_close()),
                Part("third", recorded("third")),
                Part("api", failing_to_start()),
            ]
        )

    assert closed == ["third", "first"]
    failed = [e for e in logs if e["event"] == "lifecycle.close_failed"]
    assert [(e["part"], e["error"]) for e in failed] == [
        ("breaks on close", "OSError: the listener would not close")
    ]
    await parts.close()  # nothing left open, nothing left to report
