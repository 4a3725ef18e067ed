"""A recovery that only waits ends at once when the container dies meanwhile,
so the next recovery restarts it (found by the soak, bench/soak.py: an OOM kill
first read as a reset connection, a ``network_failure``, left the container
exited for the whole two minutes of the network-failure playbook's wait)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory
from tests.plugins.http import http_request

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"

WAIT_ONLY = """
description: change nothing, wait for the service to come back by itself
failure_types: []
steps:
  - {action: wait_healthy, timeout: 60s, interval: 1s}
"""


def _recoveries(daemon: DaemonProcess) -> list[dict[str, Any]]:
    status, body = daemon.get("/api/v1/recoveries")
    assert status == 200
    return sorted(body["recoveries"], key=lambda r: r["id"])


def _answers_200(url: str) -> bool:
    try:
        status, _ = http_request(url, timeout=1.0)
    except OSError:
        return False
    return status == 200


def test_a_crash_during_a_waiting_recovery_is_restarted_at_once(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Any,
) -> None:
    web = container_factory(
        name="web", command="echo ok > /www/healthz; exec httpd -f -p 8080 -h /www", publish=True
    )
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 500ms
  timeout: 1s
  failure_threshold: 1
  recovery: {{max_attempts: 5, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: http, url: "{web.url}healthz"}}
    container: {web.name}
    recovery: {{unhealthy_response: wait-only}}
"""
    restart = (REPO_PLAYBOOKS / "restart-container.yaml").read_text()
    daemon = medic_daemon(config, playbooks={"wait-only": WAIT_ONLY, "restart-container": restart})
    wait_for(lambda: daemon.get("/api/v1/services/web")[1]["status"] == "healthy", 15)

    web.container.exec_run(["rm", "/www/healthz"])  # HTTP 404: the wait-only playbook runs
    wait_for(
        lambda: [r for r in _recoveries(daemon) if r["outcome"] == "running"],
        15,
        message="the wait-only recovery runs",
    )
    starts = start_counter(web.id)
    web.kill_process()
    killed_at = time.monotonic()

    wait_for(lambda: _answers_200(f"{web.url}healthz"), 20, message="web answers 200 again")
    assert time.monotonic() - killed_at < 20, "well before the 60 s wait would have ended"
    rows = wait_for(
        lambda: (rows := _recoveries(daemon)) and rows[-1]["outcome"] == "succeeded" and rows,
        15,
        message="the restart is recorded",
    )
    # A periodic probe that reached the container while it was restarted times
    # out after the restart was seen healthy: stale, it must not restart it again.
    time.sleep(3.0)
    assert len(_recoveries(daemon)) == 2, _recoveries(daemon)
    assert len(starts.starts) == 1, "Docker saw exactly one start: medic's restart"
    waited, restarted = rows[0], rows[-1]
    assert (waited["playbook"], waited["outcome"]) == ("wait-only", "failed")
    assert "crashed while waiting" in waited["steps"][0]["detail"]
    assert "exited with code 137" in waited["steps"][0]["detail"]
    assert (restarted["playbook"], restarted["failure_type"]) == (
        "restart-container",
        "service_crash",
    )
