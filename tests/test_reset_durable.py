"""``medic reset`` is durable, and a recovery that never acted never counts.

A reset gives a service its attempts back for good: after a restart of medic
the attempts before the reset are not counted again, so the next crash is
healed rather than met by a circuit that opens at once. A recovery that an
operator rejected, or that expired waiting for approval, ran no step: it does
not use up ``max_attempts``, neither while medic runs nor after a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_cli_client import run_cli

TOKEN = "reset-token"
ENV = {"MEDIC_API_TOKEN": TOKEN}

MARK = """
description: Leave a mark (and fix nothing), so a test can tell the playbook ran.
steps:
  - {action: run_command, command: [touch, "%s"]}
"""

APPROVAL = """
description: Waits for an operator first.
approval: required
approval_timeout: %s
steps:
  - {action: run_command, command: ["true"]}
"""


def service(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    code, body = daemon.get(f"/api/v1/services/{name}")
    assert code == 200, body
    return dict(body)


def reset_config(port: int, flag: Path) -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 200ms
  failure_threshold: 1
  recovery: {{max_attempts: 2, window: 10m, backoff: {{initial: 0s}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: command, command: [test, -e, "{flag}"]}}
    recovery: {{unhealthy_response: mark}}
"""


def test_a_reset_survives_a_restart_and_the_next_crash_is_healed(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag, marker, port = tmp_path / "up", tmp_path / "healed", free_port()
    playbooks = {"mark": MARK % marker}
    daemon = medic_daemon(reset_config(port, flag), env=ENV, playbooks=playbooks)
    wait_for(lambda: service(daemon, "web")["circuit"] == "open", 15, message="circuit opened")
    assert service(daemon, "web")["attempts_in_window"] == 2
    flag.touch()
    wait_for(lambda: service(daemon, "web")["status"] == "healthy", 10, message="web healthy")

    reset = run_cli("reset", "web", "--url", daemon.url, env=ENV)
    assert reset.returncode == 0, reset.stderr
    web = service(daemon, "web")
    assert (web["circuit"], web["attempts_in_window"]) == ("closed", 0)
    assert daemon.stop() == 0

    again = medic_daemon(reset_config(port, flag), env=ENV, playbooks=playbooks)
    wait_for(lambda: service(again, "web")["status"] == "healthy", 10, message="web healthy")
    web = service(again, "web")
    assert (web["circuit"], web["attempts_in_window"]) == ("closed", 0), web

    # The next crash gets its automatic recovery, not a circuit that opens at once.
    marker.unlink()
    flag.unlink()
    wait_for(marker.exists, 10, message="the playbook ran after the restart")


def all_healthy(daemon: DaemonProcess, *names: str) -> bool:
    return all(service(daemon, name)["status"] == "healthy" for name in names)


def approval_config(port: int, tmp: Path) -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 200ms
  failure_threshold: 1
  recovery: {{max_attempts: 3, window: 10m, backoff: {{initial: 5m}}}}
playbooks_dir: playbooks
services:
  gated:
    check: {{type: command, command: [test, -e, "{tmp / "gated-up"}"]}}
    recovery: {{unhealthy_response: careful}}
  late:
    check: {{type: command, command: [test, -e, "{tmp / "late-up"}"]}}
    recovery: {{unhealthy_response: hasty}}
"""


def test_rejected_and_expired_recoveries_use_up_no_attempt_even_after_a_restart(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    port = free_port()
    playbooks = {"careful": APPROVAL % "10m", "hasty": APPROVAL % "1s"}
    daemon = medic_daemon(approval_config(port, tmp_path), env=ENV, playbooks=playbooks)

    def outcomes(name: str) -> list[str]:
        _, body = daemon.get(f"/api/v1/recoveries?service={name}")
        return [r["outcome"] for r in body["recoveries"]]

    waiting = wait_for(
        lambda: next(
            (r for r in daemon.get("/api/v1/recoveries?service=gated")[1]["recoveries"]
             if r["outcome"] == "waiting_approval"),
            None,
        ),
        15,
        message="gated waits for approval",
    )  # fmt: skip
    code, answer = daemon.post(f"/api/v1/recoveries/{waiting['id']}/reject", token=TOKEN)
    assert (code, answer["outcome"]) == (200, "rejected")
    wait_for(lambda: outcomes("late") == ["expired"], 15, message="late's approval expired")

    assert service(daemon, "gated")["attempts_in_window"] == 0
    assert service(daemon, "late")["attempts_in_window"] == 0
    (tmp_path / "gated-up").touch()
    (tmp_path / "late-up").touch()
    wait_for(lambda: all_healthy(daemon, "gated", "late"), 10, message="both healthy")
    assert daemon.stop() == 0

    again = medic_daemon(approval_config(port, tmp_path), env=ENV, playbooks=playbooks)
    assert again.wait_for_log(event="daemon.running")
    for name in ("gated", "late"):
        assert service(again, name)["attempts_in_window"] == 0, name
