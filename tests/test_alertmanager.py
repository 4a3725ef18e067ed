"""A real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``) sends
its webhook to medic's ``POST /api/v1/alerts``, configured as the README says:
a firing alert heals the service it names (trigger ``alert``); one for a
paused service is held with reason ``maintenance`` and heals nothing.

Alertmanager runs on a loopback port with clustering off, its data in the
test's folder; alerts are pushed to it through its own API v2, as Prometheus
would push them."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.processes import stop_process

TOKEN = "alertmanager-token"
BINARY = "prometheus-alertmanager"

FIX = """
description: write down which service was fixed, and why
failure_types: [unhealthy_response, connection_timeout]
steps:
  - action: run_command
    command: [sh, -c, 'echo "$MEDIC_SERVICE $MEDIC_FAILURE_TYPE" >> "$0/fixed"', "{dir}"]
"""

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Alertmanager:
    def __init__(self, root: Path, medic_url: str) -> None:
        self.port = free_port()
        self.root = root
        token_file = root / "medic-token"
        token_file.write_text(TOKEN + "\n")
        # The receiver as the README shows it; no waiting to group alerts.
        (root / "alertmanager.yml").write_text(
            f"""
route:
  receiver: medic
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: medic
    webhook_configs:
      - url: {medic_url}/api/v1/alerts
        send_resolved: true
        http_config:
          authorization: {{credentials_file: {token_file}}}
"""
        )
        self.log = (root / "alertmanager.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary(),
                f"--config.file={root / 'alertmanager.yml'}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: one Alertmanager, loopback only
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @staticmethod
    def binary() -> str:
        found = shutil.which(BINARY)
        assert found, f"{BINARY} is not installed: run scripts/setup-test-env.sh"
        return found

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        assert self.proc.poll() is None, (self.root / "alertmanager.log").read_text()
        try:
            with _http.open(self.url("/-/ready"), timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def fire(self, alertname: str, **labels: str) -> None:
        """Push a firing alert, as Prometheus does (POST /api/v2/alerts)."""
        body = [{"labels": {"alertname": alertname, **labels}, "annotations": {"summary": "x"}}]
        request = urllib.request.Request(
            self.url("/api/v2/alerts"),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with _http.open(request, timeout=5) as response:
            assert response.status == 200

    def stop(self) -> None:
        stop_process(self.proc, grace_s=10)
        self.log.close()


@pytest.fixture
def medic(medic_daemon: DaemonFactory, tmp_path: Path) -> DaemonProcess:
    """medic with two services whose checks pass: only an alert can heal them."""
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 1s
playbooks_dir: playbooks
services:
  web:
    check: {{type: command, command: ["true"]}}
    recovery: {{unhealthy_response: fix, connection_timeout: fix}}
  db:
    check: {{type: command, command: ["true"]}}
    recovery: {{unhealthy_response: fix}}
"""
    playbooks = {"fix": FIX.format(dir=tmp_path)}
    return medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN}, playbooks=playbooks)


@pytest.fixture
def alertmanager(medic: DaemonProcess, tmp_path: Path) -> Iterator[Alertmanager]:
    root = tmp_path / "alertmanager"
    root.mkdir()
    manager = Alertmanager(root, medic.url)
    try:
        wait_for(manager.ready, 30, message="Alertmanager is ready")
        yield manager
    finally:
        manager.stop()


def fixed(tmp_path: Path) -> list[str]:
    path = tmp_path / "fixed"
    return path.read_text().splitlines() if path.exists() else []


def test_a_firing_alert_from_alertmanager_heals_the_service_it_names(
    medic: DaemonProcess, alertmanager: Alertmanager, tmp_path: Path
) -> None:
    alertmanager.fire("SlowResponses", service="web", failure_type="connection_timeout")
    wait_for(lambda: fixed(tmp_path), 30, message="Alertmanager's webhook reached medic")
    assert fixed(tmp_path) == ["web connection_timeout"]
    (recovery,) = medic.get("/api/v1/recoveries?service=web")[1]["recoveries"]
    assert (recovery["trigger"], recovery["failure_type"]) == ("alert", "connection_timeout")
    wait_for(lambda: recovery_outcome(medic, "web") == "succeeded", 15, message="it succeeds")
    audit = medic.get("/api/v1/audit?limit=50", token=TOKEN)[1]["audit"]
    assert [e["kind"] for e in audit] == ["operator.alerts"], audit


def test_an_alert_for_a_paused_service_is_held_for_maintenance(
    medic: DaemonProcess, alertmanager: Alertmanager, tmp_path: Path
) -> None:
    status, body = medic.post(
        "/api/v1/services/db/pause", {"for": "10m", "reason": "vacuum"}, token=TOKEN
    )
    assert status == 200, body
    alertmanager.fire("DatabaseDown", service="db")
    wait_for(
        lambda: medic.find_logs(event="alert.recovery_held"),
        30,
        message="the alert for the paused service is held",
    )
    (held,) = medic.get("/api/v1/services/db")[1]["recent_holds"]  # one alert, one hold
    assert held["data"]["reason"] == "maintenance", held
    assert "(vacuum, paused by" in held["data"]["detail"]
    # Then a firing alert for another service is acted on: the hold was db's alone.
    alertmanager.fire("SlowResponses", service="web")
    wait_for(lambda: fixed(tmp_path), 30, message="web's alert is acted on")
    assert fixed(tmp_path) == ["web unhealthy_response"]
    assert medic.get("/api/v1/recoveries?service=db")[1]["recoveries"] == []


def recovery_outcome(medic: DaemonProcess, service: str) -> Any:
    rows = medic.get(f"/api/v1/recoveries?service={service}")[1]["recoveries"]
    return rows[0]["outcome"] if rows else None
