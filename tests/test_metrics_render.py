"""medic writes its per-service families itself (``medic.tell.per_service``):
the text must say exactly what prometheus-client would have said for the same
updates, read back with prometheus-client's own parser, and ``?name[]=`` must
keep the same samples as prometheus-client's ``restricted_registry``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from medic.core.vocabulary import FailureType
from medic.tell.metrics import _CHECK_BUCKETS, _LAG_BUCKETS, _RECOVERY_BUCKETS, Metrics

# Label values an operator may write (quotes, a backslash) and durations on,
# between and past the bucket bounds.
SERVICES = ("web", 'odd "name" \\ here', "db")
DURATIONS = (0.0, 0.005, 0.0051, 0.3, 2.5, 29.9, 30.0, 31.0, 1e7)


class Reference:
    """The same families on prometheus-client, as medic had them before."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.up = Gauge("medic_service_up", "up", ["service"], registry=r)
        self.duration = Histogram(
            "medic_check_duration_seconds", "d", ["service", "type"], buckets=_CHECK_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.lag = Histogram("medic_check_start_lag_seconds", "l", buckets=_LAG_BUCKETS, registry=r)
        self.failures = Counter(
            "medic_check_failures_total", "f", ["service", "failure_type"], registry=r
        )
        self.circuit = Gauge("medic_circuit_open", "c", ["service"], registry=r)
        self.recoveries = Counter(
            "medic_recoveries_total", "r", ["service", "playbook", "outcome"], registry=r
        )
        self.recovery_duration = Histogram(
            "medic_recovery_duration_seconds", "rd", ["service"], buckets=_RECOVERY_BUCKETS,
            registry=r,
        )  # fmt: skip


def feed(metrics: Metrics, ref: Reference) -> None:
    for i, service in enumerate(SERVICES):
        metrics.service_added(service)
        ref.up.labels(service).set(0)
        ref.circuit.labels(service).set(0)
        for duration in DURATIONS[i:]:
            failure = FailureType.SERVICE_CRASH if duration > 1 else None
            metrics.check_done(service, "http", duration, failure)
            ref.duration.labels(service, "http").observe(duration)
            if failure is not None:
                ref.failures.labels(service, failure.value).inc()
            metrics.start_lag(duration / 100)
            ref.lag.observe(duration / 100)
    metrics.set_up("web", True)
    ref.up.labels("web").set(1)
    metrics.set_circuit_open("db", True)
    ref.circuit.labels("db").set(1)
    for outcome, seconds in (("succeeded", 1.5), ("failed", 600.0), ("succeeded", 0.1)):
        metrics.recovery_ended("web", "restart-container", outcome, seconds)
        ref.recoveries.labels("web", "restart-container", outcome).inc()
        ref.recovery_duration.labels("web").observe(seconds)
    metrics.service_removed("db")
    ref.up.remove("db")
    ref.circuit.remove("db")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def families(text: str) -> dict[str, str]:
    return {
        f.name: f.type
        for f in text_string_to_metric_families(text)
        if not f.name.endswith("_created")  # prometheus-client's own; medic writes none
    }


def test_the_text_says_what_prometheus_client_would_say() -> None:
    metrics, ref = Metrics(), Reference()
    feed(metrics, ref)
    ours, theirs = metrics.render().decode(), generate_latest(ref.registry).decode()
    expected = samples(theirs)
    got = {key: value for key, value in samples(ours).items() if key[0] in {k[0] for k in expected}}
    assert got == expected
    assert {n: t for n, t in families(ours).items() if n in families(theirs)} == families(theirs)


def test_the_name_filter_keeps_the_same_samples() -> None:
    metrics, ref = Metrics(), Reference()
    feed(metrics, ref)
    for names in (
        ["medic_service_up", "medic_check_duration_seconds_count"],
        ["medic_check_start_lag_seconds_bucket", "medic_check_start_lag_seconds_sum"],
        ["medic_check_failures_total"],
    ):
        ours = metrics.render(names).decode()
        theirs = generate_latest(ref.registry.restricted_registry(names)).decode()
        assert samples(ours) == samples(theirs), names
    assert metrics.render(["medic_no_such_metric"]) == b""


def test_a_family_without_series_still_says_what_it_is() -> None:
    text = Metrics().render().decode()
    assert "# TYPE medic_check_duration_seconds histogram" in text
    assert "# TYPE medic_check_failures_total counter" in text
    assert "# HELP medic_service_up " in text


async def test_rendering_on_the_loop_gives_the_same_text() -> None:
    metrics, ref = Metrics(), Reference()
    feed(metrics, ref)
    for i in range(350):  # several chunks
        metrics.check_done(f"svc-{i}", "tcp", 0.01, None)
    assert await metrics.render_async() == metrics.render()
    names = ["medic_check_duration_seconds_sum"]
    assert await metrics.render_async(names) == metrics.render(names)
