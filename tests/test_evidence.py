"""Evidence before acting, on the real engine: before a playbook restarts a
container, medic keeps what the restart loses (exit code, OOMKilled, the
HEALTHCHECK runs) and the last lines of its log, with the recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"


def _config(container: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 30s
  failure_threshold: 1
  recovery: {{max_attempts: 3, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  app:
    check: {{type: container}}
    container: {container}
"""


def _first_evidence(daemon: DaemonProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first recovery with its evidence, by ``GET /api/v1/recoveries/{id}``; and the list's."""

    def kept() -> dict[str, Any] | None:
        _, body = daemon.get("/api/v1/recoveries")
        done = [r for r in body["recoveries"] if r["outcome"] != "running" and r["evidence"]]
        return done[-1] if done else None

    listed = wait_for(kept, 30, interval=0.1, message="a finished recovery with its evidence")
    status, one = daemon.get(f"/api/v1/recoveries/{listed['id']}")
    assert status == 200
    return one, listed


def test_a_killed_containers_last_lines_and_exit_code_are_kept(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory
) -> None:
    # 80 lines on stdout, one on stderr, one with a DSN password; each start
    # prints them again, so lines printed after the restart would show.
    script = (
        "for i in $(seq 1 80); do echo line-$i; done; echo to-stderr >&2;"
        " echo 'db at postgresql://app:hunter2@db/app';"
        " echo started-$(date +%s%N) ; exec sleep 3600"
    )
    app = container_factory(name="app", command=script, publish=False)
    wait_for(lambda: "started-" in app.logs(), 10, message="the container printed its lines")
    first_start = next(ln for ln in app.logs().splitlines() if ln.startswith("started-"))
    daemon = medic_daemon(_config(app.name))
    wait_for(
        lambda: daemon.get("/api/v1/services/app")[1]["status"] == "healthy",
        15,
        message="app healthy",
    )
    app.container.kill()
    record, listed = _first_evidence(daemon)
    assert record["outcome"] == "succeeded", record
    evidence = record["evidence"]
    assert listed["evidence"] == evidence
    assert evidence["container"] == app.name
    assert (evidence["exit_code"], evidence["oom_killed"]) == (137, False)
    assert evidence["status"] == "exited"
    lines = evidence["log"].splitlines()
    assert evidence["log_lines"] == len(lines) == 50
    # The last 50 lines before the restart, both streams, and none after it.
    assert lines[-1] == first_start
    assert "to-stderr" in lines and "line-80" in lines and "line-34" in lines
    assert "line-33" not in lines
    assert "db at postgresql://app:***@db/app" in lines
    assert "hunter2" not in evidence["log"]
    assert evidence["notes"] == []
    assert app.status == "running"
    # The log line that says so, and the bounded wait before the restart.
    kept = daemon.find_logs(event="recovery.evidence_kept")
    assert kept and kept[0]["exit_code"] == 137


def test_an_out_of_memory_kill_is_kept_as_oom_killed(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory
) -> None:
    # The first run eats memory past its 16 MiB limit; the restarted one sleeps.
    script = (
        "if [ -e /tmp/ate ]; then exec sleep 3600; fi; touch /tmp/ate;"
        " echo about-to-eat; sleep 2; tail /dev/zero"
    )
    app = container_factory(
        name="hog", command=script, publish=False, mem_limit="16m", memswap_limit="16m"
    )
    daemon = medic_daemon(_config(app.name))
    record, _ = _first_evidence(daemon)
    evidence = record["evidence"]
    assert (evidence["exit_code"], evidence["oom_killed"]) == (137, True), evidence
    assert "about-to-eat" in evidence["log"].splitlines()
    assert record["outcome"] == "succeeded", record
