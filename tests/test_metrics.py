"""``/metrics`` of a running daemon, read with prometheus-client's text parser:
every metric of design.md is there with its help text, type and labels, the
webhook delivery counter counts a real delivery, and every family follows the
Prometheus naming conventions (``medic_`` prefix, snake_case, counters end in
``_total``, durations in ``_seconds``, base units, snake_case label names)."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.webhook_receiver import Receiver, running_receiver

TOKEN = "metrics-test-token"


@dataclass(frozen=True)
class Expected:
    name: str
    """As exposed; the parser names a counter's family without ``_total``."""
    type: str
    labels: frozenset[str]

    @property
    def family(self) -> str:
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


def expect(name: str, kind: str, *labels: str) -> Expected:
    return Expected(name, kind, frozenset(labels))


DESIGN_METRICS = (
    expect("medic_service_up", "gauge", "service"),
    expect("medic_check_duration_seconds", "histogram", "service", "type"),
    expect("medic_check_failures_total", "counter", "service", "failure_type"),
    expect("medic_recoveries_total", "counter", "service", "playbook", "outcome"),
    expect("medic_recovery_duration_seconds", "histogram", "service"),
    expect("medic_circuit_open", "gauge", "service"),
    expect("medic_workflow_runs_total", "counter", "workflow", "outcome"),
    expect("medic_workflow_duration_seconds", "histogram", "workflow"),
    expect("medic_webhook_deliveries_total", "counter", "webhook", "outcome"),
)

NAME = re.compile(r"^medic_[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
LABEL = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
TIME_WORDS = re.compile(r"(?:^|_)(?:duration|latency|lag|time|age|delay|elapsed)(?:_|$)")
NON_BASE_UNITS = re.compile(
    r"_(?:milliseconds|microseconds|nanoseconds|minutes|hours|days|ms|us|ns|kilobytes|megabytes|percent)(?:_|$)"
)
HISTOGRAM_LABELS = {"le"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def daemon(medic_daemon: DaemonFactory, listening_port: int, receiver: Receiver) -> DaemonProcess:
    """Something for every metric: checks passing and failing, a recovery, an
    open circuit, a workflow run and a delivered webhook."""
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 1}}
playbooks_dir: playbooks
services:
  up:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
  gone:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
workflows:
  hello:
    steps:
      - {{name: greet, action: run_command, command: [echo, hello]}}
notifications:
  webhooks:
    - {{name: ops, url: "{receiver.url()}", events: [circuit.opened]}}
"""
    playbook = (
        "failure_types: [service_crash]\nsteps:\n  - {action: run_command, command: ['true']}\n"
    )
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN}, playbooks={"harmless": playbook})
    assert daemon.post("/api/v1/workflows/hello/run", token=TOKEN)[0] == 200
    receiver.wait("circuit.opened")
    # The counter moves once the receiver's answer is in, a moment after it got the post.
    wait_for(lambda: delivered(daemon) >= 1, 10, message="the delivery is counted")
    return daemon


def delivered(daemon: DaemonProcess) -> float:
    _, families = scrape(daemon)
    wanted = {"webhook": "ops", "outcome": "delivered"}
    samples = families["medic_webhook_deliveries"].samples
    return sum(s.value for s in samples if s.labels == wanted and s.name.endswith("_total"))


def scrape(daemon: DaemonProcess) -> tuple[str, dict[str, Metric]]:
    status, text = daemon.get("/metrics")
    assert status == 200
    return text, {family.name: family for family in text_string_to_metric_families(text)}


def sample_labels(family: Metric) -> set[str]:
    return {label for sample in family.samples for label in sample.labels} - HISTOGRAM_LABELS


def test_every_design_metric_is_there_with_help_type_and_labels(daemon: DaemonProcess) -> None:
    _, families = scrape(daemon)
    for metric in DESIGN_METRICS:
        family = families.get(metric.family)
        assert family is not None, f"{metric.name} is missing from /metrics"
        assert family.type == metric.type, (metric.name, family.type)
        assert len(family.documentation) > 10, f"{metric.name} has no real help text"
        assert family.samples, f"{metric.name} has no samples"
        assert sample_labels(family) == metric.labels, (metric.name, sample_labels(family))


def test_the_samples_tell_what_happened(daemon: DaemonProcess) -> None:
    _, families = scrape(daemon)

    def value(family: str, suffix: str = "", **labels: str) -> float:
        name = family + suffix
        found = [s.value for s in families[family].samples if s.name == name and s.labels == labels]
        assert found, (name, labels, families[family].samples)
        return float(found[0])

    assert value("medic_service_up", service="up") == 1.0
    assert value("medic_service_up", service="gone") == 0.0
    assert value("medic_circuit_open", service="gone") == 1.0
    assert (
        value("medic_check_failures", "_total", service="gone", failure_type="service_crash") >= 1
    )
    _, recoveries = daemon.get("/api/v1/recoveries?service=gone")
    outcome = recoveries["recoveries"][0]["outcome"]
    labels = {"service": "gone", "playbook": "harmless", "outcome": outcome}
    assert value("medic_recoveries", "_total", **labels) == 1
    assert value("medic_recovery_duration_seconds", "_count", service="gone") == 1
    assert value("medic_workflow_runs", "_total", workflow="hello", outcome="succeeded") == 1
    assert value("medic_workflow_duration_seconds", "_count", workflow="hello") == 1
    assert value("medic_check_duration_seconds", "_count", service="up", type="tcp") >= 1
    assert value("medic_webhook_deliveries", "_total", webhook="ops", outcome="delivered") >= 1


def test_served_in_the_classic_text_format(daemon: DaemonProcess) -> None:
    with urllib.request.urlopen(daemon.url + "/metrics", timeout=10) as response:
        content_type = response.headers["Content-Type"]
    assert content_type.replace(" ", "") == "text/plain;version=0.0.4;charset=utf-8"


def test_name_filter_keeps_only_the_named_samples(daemon: DaemonProcess) -> None:
    # The same query as prometheus-client's own exposition servers: a cheap
    # scrape of a few series out of thousands.
    query = "name[]=medic_service_up&name[]=medic_check_duration_seconds_count"
    status, text = daemon.get("/metrics?" + query)
    assert status == 200
    samples = {
        (sample.name, sample.labels.get("service"))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples == {
        ("medic_service_up", "up"),
        ("medic_service_up", "gone"),
        ("medic_check_duration_seconds_count", "up"),
        ("medic_check_duration_seconds_count", "gone"),
    }
    status, text = daemon.get("/metrics?name[]=medic_no_such_metric")
    assert status == 200 and not text


def test_names_and_labels_follow_prometheus_conventions(daemon: DaemonProcess) -> None:
    text, families = scrape(daemon)
    problems = [problem for family in families.values() for problem in lint(family)]
    problems += lint_text(text)
    assert not problems, "\n".join(problems)


def lint(family: Metric) -> list[str]:
    name, kind = family.name, family.type
    if kind == "gauge" and name.endswith("_created"):
        return []  # prometheus-client's creation timestamps of counters and histograms
    problems = []
    if not NAME.match(name):
        problems.append(f"{name}: not a snake_case name with the medic_ prefix")
    if not family.documentation.strip():
        problems.append(f"{name}: no help text")
    if kind != "counter" and name.endswith("_total"):
        problems.append(f"{name}: only counters end in _total ({kind})")
    problems += unit_problems(name, kind)
    for label in sample_labels(family):
        if not LABEL.match(label) or label.startswith("__"):
            problems.append(f"{name}: label {label!r} is not snake_case")
    return problems


def unit_problems(name: str, kind: str) -> list[str]:
    problems = []
    if TIME_WORDS.search(name) and not name.endswith("_seconds"):
        problems.append(f"{name}: a time should be in seconds (end in _seconds)")
    if NON_BASE_UNITS.search(name):
        problems.append(f"{name}: use base units (seconds, bytes, ratios)")
    if kind in ("histogram", "summary") and not name.endswith(("_seconds", "_bytes", "_ratio")):
        problems.append(f"{name}: a {kind} should name its unit (_seconds, _bytes)")
    if kind not in ("histogram", "summary") and name.endswith(("_count", "_sum", "_bucket")):
        problems.append(f"{name}: _count/_sum/_bucket are for histograms and summaries")
    return problems


def lint_text(text: str) -> list[str]:
    """On the exposed names (the parser renames counters to ``_total`` itself):
    every ``# TYPE`` follows its ``# HELP``; counters end in ``_total``."""
    lines = [line for line in text.splitlines() if line.startswith("# ")]
    problems = []
    for index, line in enumerate(lines):
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        previous = lines[index - 1] if index else ""
        if not previous.startswith(f"# HELP {name} "):
            problems.append(f"{name}: TYPE without a HELP line before it")
        if kind == "counter" and not name.endswith("_total"):
            problems.append(f"{name}: a counter's name does not end in _total")
        if "total" in name.removesuffix("_total").split("_"):
            problems.append(f"{name}: 'total' in the middle of a name")
    return problems


def test_the_lint_catches_bad_names() -> None:
    bad = """# HELP medic_checkDuration how long
# TYPE medic_checkDuration gauge
medic_checkDuration{Service="web"} 1
# HELP medic_restart_count restarts
# TYPE medic_restart_count counter
medic_restart_count 3
# HELP medic_probe_latency_ms latency
# TYPE medic_probe_latency_ms histogram
medic_probe_latency_ms_bucket{le="+Inf"} 1
medic_probe_latency_ms_count 1
medic_probe_latency_ms_sum 3
# TYPE medic_silent gauge
medic_silent 0
"""
    problems = [p for f in text_string_to_metric_families(bad) for p in lint(f)] + lint_text(bad)
    text = "\n".join(problems)
    for needle in (
        "medic_checkDuration: not a snake_case name",
        "label 'Service' is not snake_case",
        "medic_restart_count: a counter's name does not end in _total",
        "medic_probe_latency_ms: a time should be in seconds",
        "medic_probe_latency_ms: use base units",
        "medic_silent: no help text",
        "medic_silent: TYPE without a HELP line",
    ):
        assert needle in text, f"{needle!r} not in:\n{text}"
