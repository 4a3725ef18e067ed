"""POST /api/v1/recoveries/{id}/approve and /reject answer with the recovery
as it stands once the decision took effect, not with a copy from before."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "approval-token"

SLOW_APPROVAL_PLAYBOOK = """
description: waits for an operator, then takes a while doing nothing harmful
approval: required
approval_timeout: 5m
steps:
  - {action: run_command, command: ["sleep", "3"]}
"""


def config() -> str:
    return f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 2, backoff: {{initial: 30s}}}}
playbooks_dir: playbooks
services:
  gated:
    check: {{type: tcp, port: {free_port()}}}
    recovery: {{service_crash: careful}}
"""


@pytest.fixture
def waiting(medic_daemon: DaemonFactory) -> tuple[DaemonProcess, dict[str, Any]]:
    """A daemon and the recovery of 'gated' that waits for an operator."""
    daemon = medic_daemon(
        config(),
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks={"careful": SLOW_APPROVAL_PLAYBOOK},
    )

    def held() -> dict[str, Any] | None:
        _, body = daemon.get("/api/v1/recoveries?service=gated")
        return next((r for r in body["recoveries"] if r["outcome"] == "waiting_approval"), None)

    return daemon, wait_for(held, 15, message="a recovery of 'gated' waits for approval")


def test_reject_answers_with_the_rejected_finished_recovery(
    waiting: tuple[DaemonProcess, dict[str, Any]],
) -> None:
    daemon, record = waiting
    status, answer = daemon.post(f"/api/v1/recoveries/{record['id']}/reject", token=TOKEN)
    assert status == 200, answer
    assert answer["outcome"] == "rejected"
    assert answer["detail"] == "an operator rejected the recovery"
    assert answer["ended_at"] is not None and answer["duration_seconds"] is not None
    assert daemon.get(f"/api/v1/recoveries/{record['id']}") == (200, answer)
    gated = daemon.get("/api/v1/services/gated")[1]
    # Held now by the operator's no, not waiting for approval any more.
    assert gated["status"] == "held"
    assert gated["held_reason"].startswith(f"an operator rejected recovery {record['id']}")


def test_approve_answers_with_the_resumed_recovery(
    waiting: tuple[DaemonProcess, dict[str, Any]],
) -> None:
    daemon, record = waiting
    status, answer = daemon.post(f"/api/v1/recoveries/{record['id']}/approve", token=TOKEN)
    assert status == 200, answer
    assert answer["outcome"] == "running" and answer["ended_at"] is None
    # The playbook's step sleeps 3 s: the recovery still runs, as the answer says.
    assert daemon.get(f"/api/v1/recoveries/{record['id']}")[1]["outcome"] == "running"
    assert daemon.get("/api/v1/services/gated")[1]["status"] == "recovering"
    assert daemon.post(f"/api/v1/recoveries/{record['id']}/reject", token=TOKEN)[0] == 409
