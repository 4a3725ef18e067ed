"""A real Prometheus (Debian's ``prometheus``) scrapes medic's ``/metrics`` and
evaluates the shipped rules (``docs/prometheus/medic-rules.yaml``), configured
as their header says: the target is up, the series answer what medic's own
API says, and a recovery that ends ``unresolved`` fires ``MedicRecoveryFailed``.

Prometheus runs on a loopback port with its data in the test's folder, scraping
and evaluating every second."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.processes import stop_process

RULES = REPO_ROOT / "docs" / "prometheus" / "medic-rules.yaml"

NO_FIX = """
description: does nothing useful, so the service still fails after it
failure_types: [unhealthy_response]
steps:
  - {action: run_command, command: ["true"]}
"""

POLL_S = 0.5
"""How often Prometheus is asked (a person's refresh, not a busy loop)."""

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Prometheus:
    def __init__(self, root: Path, target: str) -> None:
        self.port = free_port()
        self.root = root
        (root / "prometheus.yml").write_text(
            f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: medic
    static_configs: [{{targets: ["{target}"]}}]
"""
        )
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run scripts/setup-test-env.sh"
        self.log = (root / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **query: str) -> Any:
        assert self.proc.poll() is None, (self.root / "prometheus.log").read_text()[-3000:]
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(query)}"
        with _http.open(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def values(self, promql: str) -> dict[str, float]:
        """An instant query's result: the ``service`` label (or "") -> its value."""
        try:
            result = self.api("query", query=promql)["result"]
        except OSError:
            return {}  # not listening yet
        return {r["metric"].get("service", ""): float(r["value"][1]) for r in result}

    def stop(self) -> None:
        stop_process(self.proc, grace_s=15)
        self.log.close()


@pytest.fixture
def medic(medic_daemon: DaemonFactory) -> DaemonProcess:
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 1s
  failure_threshold: 1
  recovery: {{max_attempts: 1, window: 10m}}
playbooks_dir: playbooks
services:
  fine:
    check: {{type: command, command: ["true"]}}
  broken:
    check: {{type: command, command: ["false"]}}
    recovery: {{unhealthy_response: no-fix}}
"""
    return medic_daemon(config, playbooks={"no-fix": NO_FIX})


@pytest.fixture
def prometheus(medic: DaemonProcess, tmp_path: Path) -> Iterator[Prometheus]:
    root = tmp_path / "prometheus"
    root.mkdir()
    server = Prometheus(root, f"127.0.0.1:{medic.port}")
    try:
        yield server
    finally:
        server.stop()


def test_prometheus_scrapes_medic_and_the_shipped_rules_fire(
    medic: DaemonProcess, prometheus: Prometheus
) -> None:
    wait_for(
        lambda: prometheus.values('up{job="medic"}') == {"": 1.0},
        60,
        interval=POLL_S,
        message="Prometheus scrapes medic",
    )
    (target,) = prometheus.api("targets")["activeTargets"]
    assert (target["health"], target["lastError"]) == ("up", "")

    # What Prometheus holds is what medic's own API says.
    wait_for(
        lambda: prometheus.values("medic_circuit_open") == {"fine": 0.0, "broken": 1.0},
        30,
        interval=POLL_S,
        message="broken's circuit is open in Prometheus",
    )
    services = {s["name"]: s for s in medic.get("/api/v1/services")[1]["services"]}
    assert services["broken"]["circuit"] == "open"
    assert prometheus.values("medic_service_up") == {
        name: 1.0 if s["status"] == "healthy" else 0.0 for name, s in services.items()
    }

    # The shipped rules load, and the one without a `for:` fires at once.
    groups = prometheus.api("rules")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"MedicDown", "MedicCircuitOpen", "MedicRecoveryFailed"} <= loaded
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"]), groups

    def firing() -> list[dict[str, Any]]:
        alerts = prometheus.api("alerts")["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    (alert,) = wait_for(firing, 30, interval=POLL_S, message="MedicRecoveryFailed fires")
    assert alert["labels"]["alertname"] == "MedicRecoveryFailed"
    assert (alert["labels"]["service"], alert["labels"]["outcome"]) == ("broken", "unresolved")
    pending = {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]}
    assert "MedicCircuitOpen" in pending  # pending for its 5 minutes
