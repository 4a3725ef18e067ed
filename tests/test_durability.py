"""``kill -9`` of the daemon, then a restart on the same state dir: nothing
already reported is lost, history and the counts derived from it continue,
and a recovery or workflow run that was cut off is marked ``interrupted``.
The step commands such work left running (in sessions of their own, so the
crash does not take them along) are ended by the next start, not left
orphaned beside a rerun.

Prometheus counters live in the process and start from zero after any
restart (Prometheus' ``rate()`` copes with that); the counts the API reports
(workflow ``run_count``/``error_count``, recovery ``total``, uptime, the
guardrails' attempts in the window) come from SQLite and must carry on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from medic.host.subprocesses import proc_start_time, run_captured
from medic.store import StepSessions, Store
from tests.helpers import async_wait_for, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "durable-token"


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries MEDIC_TEST_MARK=mark."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MEDIC_TEST_MARK") == mark and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    """A mark for the steps' processes; whatever still carries it is killed at the end."""
    value = secrets.token_hex(6)
    yield value
    for proc in marked_processes(value):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue


SLOW_FIX = """
description: a fix that takes a while (long enough to be cut off)
failure_types: [unhealthy_response]
steps:
  - {action: run_command, command: [sleep, "30"], env: {MEDIC_TEST_MARK: "@MARK@"}, timeout: 2m}
"""


def durable_config(flag: Path, mark: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
daemon: {{shutdown_grace: 1s}}
monitoring:
  health_check_interval: 200ms
  failure_threshold: 1
playbooks_dir: playbooks
services:
  flaky:
    check: {{type: command, command: [test, -e, "{flag}"]}}
workflows:
  nightly:
    steps: [{{name: ok, action: run_command, command: ["true"]}}]
  long:
    timeout: 5m
    steps:
      - {{name: wait, action: run_command, command: [sleep, "30"], timeout: 2m,
          env: {{MEDIC_TEST_MARK: "{mark}"}}}}
"""


def get(daemon: DaemonProcess, path: str) -> Any:
    code, body = daemon.get(path)
    assert code == 200, (path, body)
    return body


def post(daemon: DaemonProcess, path: str, body: Any = None) -> Any:
    code, answer = daemon.post(path, json=body, token=TOKEN)
    assert code in (200, 202), (path, answer)
    return answer


def service_status(daemon: DaemonProcess) -> str:
    return str(get(daemon, "/api/v1/services/flaky")["status"])


def test_kill_9_loses_nothing_and_cut_off_work_is_interrupted(
    medic_daemon: DaemonFactory, tmp_path: Path, mark: str
) -> None:
    flag = tmp_path / "flaky.ok"
    flag.touch()
    config = durable_config(flag, mark)
    env = {"MEDIC_API_TOKEN": TOKEN}
    playbooks = {"slow-fix": SLOW_FIX.replace("@MARK@", mark)}
    first = medic_daemon(config, env=env, playbooks=playbooks)
    wait_for(lambda: service_status(first) == "healthy", 10, message="flaky is healthy")

    # Finished work before the crash: a dry-run recovery and a workflow run.
    done = post(first, "/api/v1/services/flaky/recover", {"dry_run": True})
    assert done["outcome"] == "dry_run"
    assert post(first, "/api/v1/workflows/nightly/run")["outcome"] == "succeeded"

    # Work in progress at the crash: an automatic recovery and a workflow run.
    flag.unlink()
    running = wait_for(
        lambda: [
            r for r in get(first, "/api/v1/recoveries")["recoveries"] if r["outcome"] == "running"
        ],
        10,
        message="the slow recovery runs",
    )[0]
    run_id = post(first, "/api/v1/workflows/long/start")["run_id"]
    wait_for(lambda: len(marked_processes(mark)) == 2, 10, message="both sleeps run")
    before = get(first, "/api/v1/recoveries")
    audit_before = get(first, "/api/v1/audit?kind=operator.*")["audit"]
    assert get(first, "/api/v1/workflows/nightly")["run_count"] == 1
    attempts = get(first, "/api/v1/services/flaky")["attempts_in_window"]
    assert attempts == 1, "the automatic recovery counts; the dry run does not"

    sleeps = {p.pid for p in marked_processes(mark)}

    first.kill()
    first.kill_group()
    # The steps ran in sessions of their own: the crash leaves them running.
    assert {p.pid for p in marked_processes(mark)} == sleeps

    flag.touch()
    second = medic_daemon(config, env=env, playbooks=playbooks)
    # The next start ends them, one warning each, naming whose step it was.
    wait_for(lambda: not marked_processes(mark), 10, message="the left sleeps are ended")
    ended = second.find_logs(event="step_command.ended")
    assert {r["pid"] for r in ended} == sleeps
    assert all(r["command"] == "sleep 30" for r in ended)
    assert {r.get("recovery_id") for r in ended} == {running["id"], None}
    assert {r.get("run_id") for r in ended} == {run_id, None}

    after = get(second, "/api/v1/recoveries")
    assert after["total"] == before["total"] == 2
    cut = next(r for r in after["recoveries"] if r["id"] == running["id"])
    assert cut["outcome"] == "interrupted"
    assert cut["ended_at"] is not None
    (recovery_sleep,) = (r["pid"] for r in ended if r.get("recovery_id") == running["id"])
    assert cut["detail"] == (
        "cut off by a daemon stop or crash;"
        f" ended the step command it left running: sleep 30 (pid {recovery_sleep})"
    )
    finished = next(r for r in after["recoveries"] if r["id"] == done["id"])
    assert finished == done

    (long_run,) = get(second, "/api/v1/workflows/long/runs")["runs"]
    assert (long_run["id"], long_run["outcome"]) == (run_id, "interrupted")
    assert "ended the step command it left running: sleep 30" in long_run["detail"]
    assert get(second, "/api/v1/workflows/long")["run_count"] == 1
    nightly = get(second, "/api/v1/workflows/nightly")
    assert (nightly["run_count"], nightly["error_count"]) == (1, 0)
    post(second, "/api/v1/workflows/nightly/run")
    assert get(second, "/api/v1/workflows/nightly")["run_count"] == 2
    assert get(second, "/api/v1/status")["workflows"]["nightly"]["run_count"] == 2

    # The guardrails still count the attempts made before the crash: a daemon
    # restarting in a loop cannot restart a service more than max_attempts.
    assert get(second, "/api/v1/services/flaky")["attempts_in_window"] == attempts
    # Transitions survived: the time flaky spent failing still counts against it.
    uptime = get(second, "/api/v1/status")["health_status"]["flaky"]["uptime_percentage"]
    assert uptime is not None and 0 < uptime < 100
    audit_after = get(second, "/api/v1/audit?kind=operator.*")["audit"]
    assert audit_after[-len(audit_before) :] == audit_before
    wait_for(lambda: service_status(second) == "healthy", 10, message="flaky is healthy again")


def sleeper(mark: str) -> subprocess.Popen[bytes]:
    """A ``sleep`` in a session of its own, as a step command runs."""
    return subprocess.Popen(
        ["sleep", "30"], start_new_session=True, env={**os.environ, "MEDIC_TEST_MARK": mark}
    )


def test_a_recorded_session_is_ended_only_if_its_leader_started_when_recorded(
    medic_daemon: DaemonFactory, mark: str
) -> None:
    # A daemon killed while these ran recorded them; one pid was reused since
    # (its start time differs): that process is someone else's and stays.
    left, stranger = sleeper(mark), sleeper(mark)
    try:
        started = {p.pid: proc_start_time(p.pid) for p in (left, stranger)}
        store = Store.in_state_dir(medic_daemon.state_dir)
        store.record_session(left.pid, started[left.pid] or 0, "sleep 30", 1.0, 4, None)
        store.record_session(
            stranger.pid, (started[stranger.pid] or 0) + 1, "sleep 30", 1.0, None, 9
        )
        gone = 99999999  # a pid that does not run at all is forgotten quietly
        store.record_session(gone, 1, "backup.sh", 1.0, None, 10)
        store.close()

        daemon = medic_daemon(
            f"api: {{listen: 127.0.0.1:{free_port()}}}\n"
            "workflows:\n  nightly:\n"
            '    steps: [{name: ok, action: run_command, command: ["true"]}]\n'
        )
        wait_for(lambda: left.poll() is not None, 10, message="the left session is ended")
        assert left.returncode == -signal.SIGTERM
        assert stranger.poll() is None, "a reused pid is not the recorded session"
        (ended,) = daemon.find_logs(event="step_command.ended")
        assert (ended["pid"], ended["command"], ended["recovery_id"]) == (left.pid, "sleep 30", 4)
        reopened = Store.in_state_dir(medic_daemon.state_dir)
        assert reopened.recorded_sessions() == []
        reopened.close()
    finally:
        for proc in (left, stranger):
            proc.kill()
            proc.wait()


async def test_a_step_command_session_is_recorded_while_it_runs(tmp_path: Path) -> None:
    store = Store.in_state_dir(tmp_path)
    try:
        task = asyncio.create_task(
            run_captured(["sleep", "0.5"], kill_grace_s=2.0, tracker=StepSessions(store, run_id=3))
        )
        (record,) = await async_wait_for(store.recorded_sessions, 5, message="recorded")
        assert (record.command, record.run_id, record.recovery_id) == ("sleep 0.5", 3, None)
        assert record.kill_grace == 2.0
        assert record.start_time == proc_start_time(record.pid)
        assert (await task).returncode == 0
        assert store.recorded_sessions() == []
    finally:
        store.close()
