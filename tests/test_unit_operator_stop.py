"""The daemon follows an operator's ``systemctl stop`` of a watched unit: left
alone with ``respect_manual_stop`` (the default), restarted without it.

systemctl is the stand-in of tests/fixtures/systemd/bin here; the same story
under a real systemd is in tests/systemd/test_medic_service.py.
"""

from __future__ import annotations

from typing import Any

from tests.helpers import REPO_ROOT, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.systemd_stand_in import StandIn, stand_in_fixture  # noqa: F401  # the fixture

UNIT = "web.service"


def config(listen: str, respect: bool) -> str:
    return f"""
api: {{listen: "{listen}"}}
monitoring:
  health_check_interval: 100ms
  failure_threshold: 2
  recovery:
    respect_manual_stop: {str(respect).lower()}
    backoff: {{initial: 100ms, factor: 1, max: 100ms}}
playbooks_dir: {REPO_ROOT / "recovery_playbooks"}
services:
  web:
    check: {{type: unit}}
    unit: {UNIT}
"""


def status(daemon: DaemonProcess) -> dict[str, Any]:
    code, body = daemon.get("/api/v1/services/web")
    assert code == 200, body
    return dict(body)


def wait_status(daemon: DaemonProcess, wanted: str) -> dict[str, Any]:
    return wait_for(
        lambda: (svc := status(daemon))["status"] == wanted and svc,
        timeout=10,
        message=f"web did not become {wanted}",
    )


def test_stopped_unit_is_left_alone_until_it_runs_again(
    medic_daemon: DaemonFactory, stand_in: StandIn
) -> None:
    stand_in.set_unit(UNIT)
    listen = f"127.0.0.1:{medic_daemon.new_port()}"
    daemon = medic_daemon(config(listen, respect=True))
    wait_status(daemon, "healthy")

    stand_in.set_unit(UNIT, ActiveState="inactive", SubState="dead")
    stopped = wait_status(daemon, "stopped_by_operator")
    assert "stopped cleanly" in stopped["last_check"]["detail"]
    checks_before = len(stand_in.verbs())
    wait_for(lambda: len(stand_in.verbs()) >= checks_before + 5, 10, message="no more checks")
    assert set(stand_in.verbs()) == {"show"}
    assert status(daemon)["status"] == "stopped_by_operator"

    stand_in.set_unit(UNIT)
    wait_status(daemon, "healthy")
    assert daemon.get("/api/v1/recoveries")[1]["total"] == 0


def test_stopped_unit_is_restarted_without_respect_manual_stop(
    medic_daemon: DaemonFactory, stand_in: StandIn
) -> None:
    stand_in.set_unit(UNIT)
    listen = f"127.0.0.1:{medic_daemon.new_port()}"
    daemon = medic_daemon(config(listen, respect=False))
    wait_status(daemon, "healthy")

    stand_in.set_unit(UNIT, ActiveState="inactive", SubState="dead")

    recovery = wait_for(
        lambda: (
            (body := daemon.get("/api/v1/recoveries")[1])["total"]
            and body["recoveries"][0]["ended_at"]
            and body["recoveries"][0]
        ),
        timeout=10,
        message="no finished recovery",
    )
    assert (recovery["playbook"], recovery["outcome"]) == ("restart-unit", "succeeded")
    assert "restart" in stand_in.verbs()
    wait_status(daemon, "healthy")
