"""One daemon per state dir: a second ``medic run`` on a state dir that a
running medic holds stops at once, names the holder's PID and exits 1, before
it touches the history or the step commands the first one is running. The
lock goes with the holder, however it ends (``kill -9`` included), and the
programs medic started never inherit it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_cli_client import run_cli

TOKEN = "lock-token"


def config(pidfile: Path) -> str:
    """A workflow whose one step runs for a minute and writes its PID first."""
    return f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
workflows:
  long:
    steps:
      - {{name: wait, action: run_command, command: [sh, -c, "echo $$ > {pidfile}; exec sleep 60"]}}
"""


def start_long_step(daemon: DaemonProcess, pidfile: Path) -> psutil.Process:
    code, body = daemon.post("/api/v1/workflows/long/start", token=TOKEN)
    assert code == 202, body
    text = wait_for(lambda: pidfile.read_text().strip(), 10, message="the step wrote its pid")
    return psutil.Process(int(text))


@pytest.fixture
def step_processes() -> Iterator[list[psutil.Process]]:
    started: list[psutil.Process] = []
    yield started
    for proc in started:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue


def second_run(factory: DaemonFactory, config_path: Path) -> tuple[int, str, float]:
    t0 = time.monotonic()
    result = run_cli(
        "run",
        "--config",
        str(config_path),
        "--state-dir",
        str(factory.state_dir),
        "--log-format",
        "json",
    )
    return result.returncode, result.stderr, time.monotonic() - t0


def test_a_second_daemon_on_the_same_state_dir_stops_at_once_naming_the_holder(
    medic_daemon: DaemonFactory, tmp_path: Path, step_processes: list[psutil.Process]
) -> None:
    pidfile = tmp_path / "step.pid"
    first = medic_daemon(config(pidfile), env={"MEDIC_API_TOKEN": TOKEN})
    step = start_long_step(first, pidfile)
    step_processes.append(step)
    db = first.state_dir / "medic.db"
    db_before = db.stat().st_mtime_ns

    # Its own free port: the lock, not the address, must be what stops it.
    other = tmp_path / "other.yaml"
    other.write_text(config(tmp_path / "other.pid"))
    code, stderr, elapsed = second_run(medic_daemon, other)

    assert code == 1, stderr
    plain = [line for line in stderr.splitlines() if not line.startswith("{")]
    assert plain == [
        f"medic: not starting: state dir {first.state_dir} is in use by medic PID {first.pid}"
    ], stderr
    assert elapsed < 10, f"the second start took {elapsed:.1f}s to give up"
    # It touched nothing of the first one's: no step ended, no run marked, no write.
    for event in ("step_command.ended", "history.marked_interrupted", "daemon.running"):
        assert f'"{event}"' not in stderr, stderr
    assert step.is_running() and step.status() != psutil.STATUS_ZOMBIE
    assert db.stat().st_mtime_ns == db_before
    code, body = first.get("/api/v1/workflows/long")
    assert code == 200 and body["status"] == "running", body
    assert first.running
    assert (first.state_dir / "medic.lock").read_text().strip() == str(first.pid)


def test_the_lock_goes_with_the_holder_even_when_killed(
    medic_daemon: DaemonFactory, tmp_path: Path, step_processes: list[psutil.Process]
) -> None:
    pidfile = tmp_path / "step.pid"
    first = medic_daemon(config(pidfile), env={"MEDIC_API_TOKEN": TOKEN})
    # A step command in a session of its own outlives the kill; it must not
    # have inherited the lock.
    step_processes.append(start_long_step(first, pidfile))
    first.kill()

    second = medic_daemon(config(tmp_path / "second.pid"), env={"MEDIC_API_TOKEN": TOKEN})
    second.wait_for_log(event="daemon.running")
    assert (second.state_dir / "medic.lock").read_text().strip() == str(second.pid)
    assert second.stop() == 0

    # A clean stop gives it up too.
    third = medic_daemon(config(tmp_path / "third.pid"), env={"MEDIC_API_TOKEN": TOKEN})
    assert third.running
