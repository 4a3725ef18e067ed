"""``kill -9`` of the daemon, then a restart on the same state dir: nothing
already reported is lost, history and the counts derived from it continue,
and a recovery or workflow run that was cut off is marked ``interrupted``.

Prometheus counters live in the process and start from zero after any
restart (Prometheus' ``rate()`` copes with that); the counts the API reports
(workflow ``run_count``/``error_count``, recovery ``total``, uptime, the
guardrails' attempts in the window) come from SQLite and must carry on.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import DaemonFactory, DaemonProcess
from tests.helpers import free_port, wait_for

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

    first.kill()
    first.kill_group()
    # The steps ran in sessions of their own: the crash leaves them running,
    # orphaned; the `mark` fixture ends them.
    assert len(marked_processes(mark)) == 2

    flag.touch()
    second = medic_daemon(config, env=env, playbooks=playbooks)

    after = get(second, "/api/v1/recoveries")
    assert after["total"] == before["total"] == 2
    cut = next(r for r in after["recoveries"] if r["id"] == running["id"])
    assert cut["outcome"] == "interrupted"
    assert cut["ended_at"] is not None
    assert cut["detail"] == "cut off by a daemon stop or crash"
    finished = next(r for r in after["recoveries"] if r["id"] == done["id"])
    assert finished == done

    (long_run,) = get(second, "/api/v1/workflows/long/runs")["runs"]
    assert (long_run["id"], long_run["outcome"]) == (run_id, "interrupted")
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
