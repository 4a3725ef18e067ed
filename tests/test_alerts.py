"""POST /api/v1/alerts: Alertmanager's webhook payload starts recoveries under
the guardrails; unknown services, resolved alerts and alerts without a
service label are reported, never dropped silently; a bad payload is a 422."""

from __future__ import annotations

import json
from typing import Any

import pytest

from medic.api.alerts import AlertPayloadError, handle_alerts, parse_payload
from medic.core.vocabulary import FailureType
from medic.heal.admission import RecoveryRequest
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory
from tests.plugins.http import http_request
from tests.test_heal_container import REPO_PLAYBOOKS, finished_recoveries, wait_service

TOKEN = "alert-token"


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", **labels},
        "annotations": {"summary": "too many 5xx"},
        "startsAt": "2026-01-06T07:27:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "c0ffee",
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4), as it sends it."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "medic",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


# parsing and deciding, on their own ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "body: Input should be a valid dictionary"),
        ({"version": "4"}, "alerts: Field required"),
        ({"alerts": {"service": "web"}}, "alerts: Input should be a valid list"),
        ({"alerts": [{"labels": {}}]}, "alerts[0].status: Field required"),
        ({"alerts": [{"status": "burning", "labels": {}}]}, "alerts[0].status: Input should be"),
        ({"alerts": [{"status": "firing"}]}, "alerts[0].labels: Field required"),
        (
            {"alerts": [{"status": "firing", "labels": {"service": 3}}]},
            "alerts[0].labels.service: Input should be a valid string",
        ),
    ],
)
def test_a_malformed_payload_names_each_problem(body: Any, problem: str) -> None:
    with pytest.raises(AlertPayloadError) as caught:
        parse_payload(body)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_every_alert_is_accounted_for() -> None:
    asked: list[tuple[str, FailureType | None]] = []

    def request(service: str, failure_type: FailureType | None) -> RecoveryRequest:
        asked.append((service, failure_type))
        ft = failure_type or FailureType.UNHEALTHY_RESPONSE
        if service == "db":
            return RecoveryRequest(service, ft, None, "circuit_open", "circuit open")
        return RecoveryRequest(service, ft, 7)

    body = payload(
        alert(service="web", failure_type="connection_timeout"),
        alert("resolved", service="web"),
        alert(),
        alert(service="ghost"),
        alert(service="ghost", alertname="Other"),
        alert(service="web", failure_type="on_fire"),
        alert(service="db"),
    )
    report = handle_alerts(parse_payload(body), {"web", "db"}, request).as_dict()
    assert asked == [("web", FailureType.CONNECTION_TIMEOUT), ("db", None)]
    assert report["accepted"] == [
        {"service": "web", "failure_type": "connection_timeout", "recovery_id": 7}
    ]
    assert report["held"] == [
        {
            "service": "db",
            "failure_type": "unhealthy_response",
            "reason": "circuit_open",
            "detail": "circuit open",
        }
    ]
    assert report["unknown_services"] == ["ghost"]
    assert [(i["reason"], i["labels"].get("service")) for i in report["ignored"]] == [
        ("resolved", "web"),
        ("no service label", None),
        ("unknown failure_type", "web"),
    ]
    assert "'on_fire' is not one of" in report["ignored"][2]["detail"]


# through the daemon ---------------------------------------------------------------------


def post_alerts(daemon: DaemonProcess, body: Any, token: str | None = TOKEN) -> tuple[int, Any]:
    return daemon.post("/api/v1/alerts", json=body, token=token)


def test_a_firing_alert_restarts_a_service_whose_check_still_passes(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Any,
) -> None:
    web = container_factory(name="web")
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 1s
  recovery: {{max_attempts: 1, window: 10m}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  web:
    check: {{type: http, url: "{web.url}healthz", expect_status: [200]}}
    container: {web.name}
"""
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})
    wait_service(daemon, "healthy")
    counter = start_counter(web.id)
    # Prometheus sees the 5xx rate that the health check cannot: medic acts on its word.
    body = payload(
        alert(service="web", failure_type="unhealthy_response"),
        alert(service="web", alertname="HighLatency"),
        alert("resolved", service="web", alertname="Old"),
        alert(service="db-replica"),
        alert(alertname="Watchdog"),
    )
    code, answer = post_alerts(daemon, body)
    assert code == 200, answer
    (accepted,) = answer["accepted"]
    assert accepted["service"] == "web"
    assert accepted["failure_type"] == "unhealthy_response"
    assert answer["held"] == [
        {
            "service": "web",
            "failure_type": "unhealthy_response",
            "reason": "already_recovering",
            "detail": "a recovery of web is already running",
        }
    ]
    assert answer["unknown_services"] == ["db-replica"]
    assert [i["reason"] for i in answer["ignored"]] == ["resolved", "no service label"]

    (record,) = finished_recoveries(daemon, 1)
    assert record["id"] == accepted["recovery_id"]
    assert (record["trigger"], record["playbook"], record["outcome"]) == (
        "alert",
        "restart-container",
        "succeeded",
    )
    wait_for(lambda: len(counter.starts) == 1, 10, message="Docker saw the restart")
    wait_service(daemon, "healthy")

    # max_attempts is 1: the next alert meets the same circuit an automatic recovery would.
    code, answer = post_alerts(daemon, payload(alert(service="web")))
    assert code == 200
    assert answer["accepted"] == []
    assert answer["held"][0]["reason"] == "circuit_open"
    _, audit = daemon.get("/api/v1/audit?kind=recovery.held&service=web")
    assert {e["data"]["reason"] for e in audit["audit"]} == {"already_recovering", "circuit_open"}
    _, calls = daemon.get("/api/v1/audit?kind=operator.alerts")
    assert len(calls["audit"]) == 2
    assert calls["audit"][1]["data"]["unknown_services"] == ["db-replica"]
    assert len(counter.starts) == 1


PAGE_ONLY = {"page": "failure_types: [disk_full]\nsteps: [{action: notify}]"}


def no_docker_config(port: int, flag: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 200ms, failure_threshold: 1}}
playbooks_dir: playbooks
services:
  db:
    check: {{type: command, command: [test, -e, "{flag}"]}}
  app:
    check: {{type: command, command: ["true"]}}
    depends_on: [db]
"""


def test_alerts_for_a_service_whose_dependency_fails_are_held(
    medic_daemon: DaemonFactory, tmp_path: Any
) -> None:
    daemon = medic_daemon(
        no_docker_config(free_port(), str(tmp_path / "absent")),
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks=PAGE_ONLY,
    )

    def db_failing() -> bool:
        _, body = daemon.get("/api/v1/services/db")
        return bool(body["status"] in ("unhealthy", "recovering"))

    wait_for(db_failing, 10, message="db fails")
    code, answer = post_alerts(daemon, payload(alert(service="app")))
    assert code == 200
    (held,) = answer["held"]
    assert held["reason"] == "dependency"
    assert "db" in held["detail"]
    _, recoveries = daemon.get("/api/v1/recoveries?service=app")
    assert recoveries["total"] == 0


def test_alerts_need_the_token_and_a_well_formed_payload(
    medic_daemon: DaemonFactory, tmp_path: Any
) -> None:
    daemon = medic_daemon(
        no_docker_config(free_port(), str(tmp_path)),
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks=PAGE_ONLY,
    )
    body = payload(alert(service="app"))
    code, answer = post_alerts(daemon, body, token=None)
    assert (code, answer["error"]["code"]) == (401, "UNAUTHORIZED")
    assert post_alerts(daemon, body, token="wrong")[0] == 401

    code, answer = post_alerts(daemon, {"alerts": [{"status": "burning", "labels": {}}]})
    assert code == 422
    assert answer["error"]["code"] == "INVALID_ALERT_PAYLOAD"
    assert "alerts[0].status" in answer["error"]["message"]
    code, answer = post_alerts(daemon, [body])
    assert (code, answer["error"]["code"]) == (422, "INVALID_BODY")
    status, raw = http_request(
        daemon.url + "/api/v1/alerts",
        method="POST",
        body=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert (status, json.loads(raw)["error"]["code"]) == (400, "INVALID_JSON")
    _, recoveries = daemon.get("/api/v1/recoveries")
    assert recoveries["total"] == 0
