"""GET /api/v1/audit: who called which control endpoint, and which actions
medic held back, filtered by kind (exact or ``prefix.*``) and service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "audit-token"


def control(daemon: DaemonProcess, path: str, who: str, body: Any = None) -> Any:
    code, answer = daemon.request(
        "POST", path, json_body=body, token=TOKEN, headers={"X-Medic-Operator": who}
    )
    assert code in (200, 202), answer
    return answer


def audit(daemon: DaemonProcess, query: str = "") -> list[dict[str, Any]]:
    code, body = daemon.get(f"/api/v1/audit{query}")
    assert code == 200, body
    return list(body["audit"])


def test_operator_calls_and_held_recoveries_are_in_the_audit_trail(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 200ms, failure_threshold: 1}}
playbooks_dir: playbooks
services:
  db:
    check: {{type: command, command: ["false"]}}
  app:
    check: {{type: command, command: ["true"]}}
    depends_on: [db]
"""
    playbooks = {"page": "failure_types: [disk_full]\nsteps: [{action: notify}]"}
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN}, playbooks=playbooks)
    control(daemon, "/api/v1/services/app/check", "alice")
    control(daemon, "/api/v1/services/app/recover", "bob", {"dry_run": True})
    control(daemon, "/api/v1/services/db/reset", "carol")
    control(daemon, "/api/v1/reload", "dave")

    calls = audit(daemon, "?kind=operator.*")
    assert [(e["kind"], e["service"], e["data"]["who"]) for e in calls] == [
        ("operator.reload", None, "dave"),
        ("operator.reset", "db", "carol"),
        ("operator.recover", "app", "bob"),
        ("operator.check", "app", "alice"),
    ]
    assert calls[2]["data"]["dry_run"] is True
    assert calls[0]["at"].endswith("+00:00")

    assert [e["kind"] for e in audit(daemon, "?kind=operator.*&service=app")] == [
        "operator.recover",
        "operator.check",
    ]
    assert [e["data"]["who"] for e in audit(daemon, "?kind=operator.reset")] == ["carol"]
    assert len(audit(daemon, "?kind=operator.*&limit=1")) == 1
    assert audit(daemon, "?kind=operator.nothing") == []

    # The app's own check passes, but a recovery asked for while db fails is held.
    wait_for(
        lambda: daemon.get("/api/v1/services/db")[1]["status"] != "unknown", 5, message="db checked"
    )
    code, answer = daemon.post(
        "/api/v1/alerts",
        json={"alerts": [{"status": "firing", "labels": {"service": "app"}}]},
        token=TOKEN,
    )
    assert code == 200 and answer["held"], answer
    held = wait_for(
        lambda: audit(daemon, "?kind=recovery.held&service=app"), 5, message="the hold is audited"
    )
    assert held[0]["data"]["reason"] == "dependency"
    everything = audit(daemon)
    assert {"operator.alerts", "recovery.held", "operator.check"} <= {e["kind"] for e in everything}


def test_a_bad_limit_is_a_400(medic_daemon: DaemonFactory) -> None:
    daemon = medic_daemon(f"api: {{listen: 127.0.0.1:{free_port()}}}\n")
    for limit in ("many", "-1", "100000"):
        code, body = daemon.get(f"/api/v1/audit?limit={limit}")
        assert (code, body["error"]["code"]) == (400, "INVALID_QUERY")
