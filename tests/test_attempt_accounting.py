"""What counts towards ``max_attempts``, and circuits across a restart.

Only automatic recoveries that act count: a dry run touches nothing and an
operator's own recovery is a decision, so neither may use up the attempts
that automatic healing needs. An alert that finds a service's attempts spent
opens its circuit for real, and a circuit left open is still open after a
restart of medic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_alerts import alert, payload, post_alerts

TOKEN = "alert-token"
MARKER_PLAYBOOK = """
description: Leave a mark, so a test can tell the playbook ran for real.
failure_types: [service_crash, unhealthy_response]
steps:
  - {action: run_command, command: [touch, "%s"]}
"""


def config(port: int, flag: Path, max_attempts: int = 2) -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 200ms
  failure_threshold: 1
  recovery: {{max_attempts: {max_attempts}, window: 10m, backoff: {{initial: 0s}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: command, command: [test, -e, "{flag}"]}}
"""


def service(daemon: DaemonProcess) -> dict[str, Any]:
    code, body = daemon.get("/api/v1/services/web")
    assert code == 200
    return dict(body)


def recover(daemon: DaemonProcess, **body: Any) -> dict[str, Any]:
    code, record = daemon.post("/api/v1/services/web/recover", json=body, token=TOKEN)
    assert code == 200, record
    return dict(record)


def test_dry_runs_and_operator_recoveries_leave_the_attempts_to_automatic_healing(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag, marker = tmp_path / "up", tmp_path / "healed"
    flag.touch()
    daemon = medic_daemon(
        config(free_port(), flag),
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks={"mark": MARKER_PLAYBOOK % marker},
    )
    wait_for(lambda: service(daemon)["status"] == "healthy", 10, message="web healthy")

    assert recover(daemon, failure_type="service_crash", dry_run=True)["outcome"] == "dry_run"
    assert recover(daemon, failure_type="service_crash", dry_run=True)["outcome"] == "dry_run"
    assert recover(daemon, failure_type="service_crash")["outcome"] == "succeeded"
    state = service(daemon)
    assert (state["status"], state["circuit"], state["attempts_in_window"]) == (
        "healthy",
        "closed",
        0,
    )
    marker.unlink()

    flag.unlink()  # a lasting failure: automatic healing must still have both attempts
    wait_for(lambda: service(daemon)["circuit"] == "open", 15, message="the circuit opened")
    assert marker.exists(), "the playbook ran automatically"
    _, recoveries = daemon.get("/api/v1/recoveries?service=web")
    automatic = [r for r in recoveries["recoveries"] if r["trigger"] == "auto"]
    assert len(automatic) == 2, recoveries
    assert not any(r["dry_run"] for r in automatic)


def test_an_operator_recovery_of_a_healthy_service_does_not_report_it_down_and_back(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag = tmp_path / "up"
    flag.touch()
    daemon = medic_daemon(
        config(free_port(), flag),
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks={"mark": MARKER_PLAYBOOK % (tmp_path / "mark")},
    )
    wait_for(lambda: service(daemon)["status"] == "healthy", 10, message="web healthy")
    since = service(daemon)["status_since"]
    recover(daemon, failure_type="service_crash", dry_run=True)
    # No failure type, none observed: the playbook for unhealthy_response, not notify-only.
    record = recover(daemon)
    assert (record["failure_type"], record["playbook"]) == ("unhealthy_response", "mark")
    assert service(daemon)["status"] == "healthy"
    assert service(daemon)["status_since"] == since, "the status never changed"
    changes = [(line.get("event"), line.get("status")) for line in daemon.log_lines()]
    assert ("service.healthy", None) in changes
    assert ("service.state", "recovering") not in changes


def test_an_alert_that_finds_the_attempts_spent_opens_the_circuit(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag = tmp_path / "up"
    flag.touch()
    daemon = medic_daemon(
        config(free_port(), flag, max_attempts=1),
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks={"mark": MARKER_PLAYBOOK % (tmp_path / "mark")},
    )
    wait_for(lambda: service(daemon)["status"] == "healthy", 10, message="web healthy")
    body = payload(alert(service="web", failure_type="unhealthy_response"))
    code, first = post_alerts(daemon, body)
    assert code == 200 and len(first["accepted"]) == 1, first
    wait_for(lambda: not service(daemon)["recovering"], 10, message="the recovery ended")

    code, second = post_alerts(daemon, body)
    assert code == 200
    (held,) = second["held"]
    assert held["reason"] == "circuit_open"
    assert service(daemon)["circuit"] == "open", "the answer and the API must agree"
    _, metrics = daemon.get("/metrics?name[]=medic_circuit_open")
    assert 'medic_circuit_open{service="web"} 1.0' in metrics


def test_an_open_circuit_is_still_open_after_a_restart(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag = tmp_path / "up"  # never created: web fails from the start
    port = free_port()
    playbooks = {"mark": MARKER_PLAYBOOK % (tmp_path / "mark")}
    env = {"MEDIC_API_TOKEN": TOKEN}
    daemon = medic_daemon(config(port, flag, max_attempts=1), env=env, playbooks=playbooks)
    wait_for(lambda: service(daemon)["circuit"] == "open", 15, message="the circuit opened")
    assert daemon.stop() == 0

    again = medic_daemon(config(port, flag, max_attempts=1), env=env)
    state = service(again)
    assert state["circuit"] == "open"
    assert state["probation_at"] is not None
    _, metrics = again.get("/metrics?name[]=medic_circuit_open")
    assert 'medic_circuit_open{service="web"} 1.0' in metrics
    _, recoveries = again.get("/api/v1/recoveries?service=web")
    assert recoveries["total"] == 1, "no new attempt after the restart"
