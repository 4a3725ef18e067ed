"""A playbook's steps through the daemon: a step's timeout really stops it, a
failed step ends the steps and runs ``on_failure``, and each step's outcome is
in the recovery history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory


def config(api_port: int) -> str:
    return f"""
api: {{listen: 127.0.0.1:{api_port}}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 1, window: 10m}}
playbooks_dir: playbooks
services:
  gone:
    check: {{type: tcp, port: {free_port()}}}
"""


def first_recovery(daemon: Any) -> dict[str, Any] | None:
    rows = daemon.get("/api/v1/recoveries")[1]["recoveries"]
    return rows[0] if rows and rows[0]["outcome"] not in ("running",) else None


def test_a_timed_out_step_fails_the_playbook_and_runs_on_failure(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    never = tmp_path / "never"
    cleanup = tmp_path / "cleanup"
    playbook = f"""
description: a fix that hangs, then a clean-up
failure_types: [service_crash]
steps:
  - {{action: run_command, command: [sleep, "30"], timeout: 500ms}}
  - {{action: run_command, command: [touch, "{never}"]}}
on_failure:
  - {{action: run_command, command: [touch, "{cleanup}"]}}
  - {{action: notify, event: recovery.failed, message: "the fix hung"}}
"""
    daemon = medic_daemon(config(free_port()), playbooks={"hangs": playbook})
    record = wait_for(lambda: first_recovery(daemon), 20, message="the recovery ends")
    assert record["outcome"] == "failed"
    assert "timed out after 0.5s" in record["detail"]
    steps = [(s["phase"], s["action"], s["outcome"]) for s in record["steps"]]
    assert steps == [
        ("steps", "run_command", "timed_out"),
        ("on_failure", "run_command", "succeeded"),
        ("on_failure", "notify", "succeeded"),
    ]
    assert record["steps"][0]["duration_seconds"] < 5, "the timeout did not stop the step"
    assert cleanup.exists()
    assert not never.exists(), "a step after the failed one ran"
    assert daemon.find_logs(
        event="recovery.notification",
        notify_event="recovery.failed",
        notice="the fix hung",
        service="gone",
    )


def test_continue_on_failure_lets_the_next_step_run(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    after = tmp_path / "after"
    playbook = f"""
description: a best-effort first step
failure_types: [service_crash]
steps:
  - {{action: run_command, command: ["false"], continue_on_failure: true}}
  - {{action: run_command, command: [touch, "{after}"]}}
"""
    daemon = medic_daemon(config(free_port()), playbooks={"best-effort": playbook})
    record = wait_for(lambda: first_recovery(daemon), 20, message="the recovery ends")
    assert [s["outcome"] for s in record["steps"]] == ["failed", "succeeded"]
    assert after.exists()
    # Every step worked or was allowed to fail, yet the port is still closed.
    assert record["outcome"] == "unresolved"
