"""The shipped Prometheus rules and Grafana dashboard (docs/prometheus, docs/grafana).

The rules pass ``promtool check rules`` and their own ``promtool test rules``
unit tests (series that fire each alert, and neighbours that must not); the
dashboard is valid JSON whose every panel queries the ``${DS_PROMETHEUS}``
input; and every metric the rules and the dashboard name is in the
``/metrics`` of a real daemon that checked, failed, recovered and held.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

RULES = REPO_ROOT / "docs" / "prometheus" / "medic-rules.yaml"
RULE_TESTS = REPO_ROOT / "docs" / "prometheus" / "medic-rules.test.yaml"
DASHBOARD = REPO_ROOT / "docs" / "grafana" / "medic.json"
METRIC = re.compile(r"\bmedic_[a-z0-9_]+\b")
SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count")
DS = "${DS_PROMETHEUS}"
REQUIRED_ALERTS = {
    "MedicDown",
    "MedicAbsent",
    "MedicCircuitOpen",
    "MedicRecoveryFailed",
    "MedicRecoveriesHeld",
    "MedicHistoryDegraded",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: run scripts/setup-test-env.sh (Debian package prometheus)"
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent, check=False
    )


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    return queries + [v["definition"] for v in board["templating"]["list"]]


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_rules_unit_tests_fire_every_alert() -> None:
    names = {rule["alert"] for rule in rules()}
    assert names >= REQUIRED_ALERTS
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every alert has a test in which it fires (an empty exp_alerts only says it does not).
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert fired == names


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert board["uid"] and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == DS, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == DS, panel["title"]
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
    titles = " ".join(panel["title"].lower() for panel in board["panels"])
    for wanted in ("services up", "check latency", "by outcome", "circuits open", "held", "mttr"):
        assert wanted in titles, f"no panel about {wanted}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule, Grafana's variables filled in)."""
    filled = {"$__rate_interval": "1m", "$instance": ".*", "$service": ".*"}
    records = []
    for number, query in enumerate(dashboard_queries(dashboard())):
        if query.startswith("label_values("):
            query = query.removeprefix("label_values(").rsplit(",", 1)[0]
        for variable, value in filled.items():
            query = query.replace(variable, value)
        records.append({"record": f"medic:dashboard_query_{number}", "expr": query})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def busy_daemon(medic_daemon: DaemonFactory, listening_port: int) -> Iterator[DaemonProcess]:
    """Checks passing and failing, recoveries that end unresolved, an open circuit
    and recoveries held behind it: samples for every family the docs query."""
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 200ms
  failure_threshold: 1
  recovery: {{max_attempts: 1}}
playbooks_dir: playbooks
services:
  up:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
  gone:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
"""
    playbook = (
        "failure_types: [service_crash]\nsteps:\n  - {action: run_command, command: ['true']}\n"
    )
    yield medic_daemon(config, playbooks={"harmless": playbook})


def exposed(daemon: DaemonProcess) -> tuple[set[str], set[str]]:
    """(the families /metrics declares, the sample names it has samples for)."""
    status, text = daemon.get("/metrics")
    assert status == 200
    declared = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    samples = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    return declared, samples


def test_every_metric_named_is_in_a_real_metrics(busy_daemon: DaemonProcess) -> None:
    queries = [str(rule["expr"]) for rule in rules()] + dashboard_queries(dashboard())
    named = {name for query in queries for name in METRIC.findall(query)}
    assert len(named) >= 8, named

    def missing() -> set[str]:
        declared, samples = exposed(busy_daemon)
        return {n for n in named if n not in samples or n.removesuffix(suffix(n)) not in declared}

    # Held recoveries and the open circuit come a moment after the first failures.
    last: set[str] = set()

    def settled() -> bool:
        nonlocal last
        last = missing()
        return not last

    try:
        wait_for(settled, 20, interval=0.3, message="metrics missing")
    except AssertionError:
        raise AssertionError(f"named in docs/ but not in /metrics: {sorted(last)}") from None


def family_labels(daemon: DaemonProcess) -> dict[str, set[str]]:
    """Sample name -> the label names its samples carry in /metrics."""
    _, text = daemon.get("/metrics")
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


SCRAPE_LABELS = {"instance", "job"}
"""Added by Prometheus to every series it scrapes."""


def query_labels(query: str) -> set[str]:
    """The label names a PromQL query groups by or matches on."""
    grouped = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", query)
    matched = re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"", query)
    return {label.strip() for group in grouped for label in group.split(",")} | set(matched)


def test_every_label_named_is_on_the_metrics_queried(busy_daemon: DaemonProcess) -> None:
    queries = [str(rule["expr"]) for rule in rules()] + dashboard_queries(dashboard())
    named = {name for query in queries for name in METRIC.findall(query)}
    labels = wait_for(
        lambda: (found := family_labels(busy_daemon)).keys() >= named and found,
        20,
        message="a sample of every metric the queries name",
    )
    problems = []
    for query in queries:
        names = METRIC.findall(query)
        if not names:
            continue  # up{job="medic"}: Prometheus's own
        known = SCRAPE_LABELS.union(*(labels.get(name, set()) for name in names))
        unknown = query_labels(query) - known
        if unknown:
            problems.append(f"{sorted(unknown)} not on {names}: {query}")
    assert not problems, "\n".join(problems)


def suffix(name: str) -> str:
    return next((s for s in SAMPLE_SUFFIXES if name.endswith(s)), "")


def test_every_family_of_metrics_is_on_the_dashboard_or_in_a_rule(
    busy_daemon: DaemonProcess,
) -> None:
    """What medic measures about health and healing is shown somewhere."""
    declared, _ = exposed(busy_daemon)
    text = "\n".join([RULES.read_text(), DASHBOARD.read_text()])
    shown = {name.removesuffix(suffix(name)) for name in METRIC.findall(text)}
    not_about_healing = {
        "medic_events_total",
        "medic_webhook_deliveries_total",
        "medic_notifications_total",
        "medic_workflow_runs_total",
        "medic_workflow_duration_seconds",
        "medic_history_write_errors_total",
    }
    # (prometheus-client's ``_created`` gauges are timestamps of the counters beside them)
    medic_families = {n for n in declared if n.startswith("medic_") and not n.endswith("_created")}
    unshown = sorted(medic_families - not_about_healing - shown)
    assert not unshown, (
        f"{unshown} are in /metrics but on no panel of docs/grafana/medic.json and in no rule"
        " of docs/prometheus/medic-rules.yaml: add them there, or to not_about_healing here"
    )
