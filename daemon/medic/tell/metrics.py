"""Prometheus metrics, on a registry owned by the daemon (no global state).

The families updated on every check (per service, and the start lag) are kept
and written by ``medic.tell.per_service``: at 1,000 services prometheus-client
took 1.4-1.8 s to render them. The rest stay on prometheus-client's registry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

from medic.core.bus import Event
from medic.core.vocabulary import FailureType, HoldReason
from medic.tell.per_service import HistogramFamily, ValueFamily, render_chunks, text

__all__ = ["CONTENT_TYPE", "Metrics"]
# The classic text format (0.0.4) every scraper reads; all names here are legacy-safe,
# so the body is the same as 1.0.0's.

RENDER_SLICE_S = 0.005
"""How long ``render_async`` writes before it lets the loop run (checks due meanwhile)."""

_CHECK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5)
_RECOVERY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_WORKFLOW_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._add_check_series()
        self._add_recovery_series(self.registry)
        self._add_outbound_series(self.registry)
        self._add_history_series(self.registry)
        self._own = (
            self.service_up,
            self.check_duration,
            self.check_start_lag,
            self.check_failures,
            self.circuit_open,
            self.service_paused,
            self.recoveries,
            self.recovery_duration,
        )

    def _add_check_series(self) -> None:
        self.service_up = ValueFamily(
            "medic_service_up",
            "1 if the service's last state is healthy, else 0.",
            ["service"],
            "gauge",
        )
        self.check_duration = HistogramFamily(
            "medic_check_duration_seconds",
            "Time taken by each health check.",
            ["service", "type"],
            _CHECK_BUCKETS,
        )
        self.check_start_lag = HistogramFamily(
            "medic_check_start_lag_seconds",
            "Delay between a scheduled check's due time and its actual start"
            " (runs skipped because the previous check is still running are not counted).",
            [],
            _LAG_BUCKETS,
        )
        self.check_failures = ValueFamily(
            "medic_check_failures",
            "Failed health checks by failure type.",
            ["service", "failure_type"],
            "counter",
        )
        self.circuit_open = ValueFamily(
            "medic_circuit_open",
            "1 while the service's recovery circuit is open.",
            ["service"],
            "gauge",
        )
        self.service_paused = ValueFamily(
            "medic_service_paused",
            "1 while the service is in maintenance (paused: checked, never healed).",
            ["service"],
            "gauge",
        )

    def _add_recovery_series(self, r: CollectorRegistry) -> None:
        self.recoveries = ValueFamily(
            "medic_recoveries",
            "Recoveries run, by playbook and outcome.",
            ["service", "playbook", "outcome"],
            "counter",
        )
        self.recovery_duration = HistogramFamily(
            "medic_recovery_duration_seconds",
            "Time from a recovery's start to its end.",
            ["service"],
            _RECOVERY_BUCKETS,
        )
        self.recoveries_held = Counter(
            "medic_recoveries_held_total",
            "Automatic recoveries held back, by reason.",
            ["reason"],
            registry=r,
        )
        # Every reason from 0, so that the first hold is an increase a rate() sees.
        for reason in HoldReason:
            self.recoveries_held.labels(reason.value)

    def _add_outbound_series(self, r: CollectorRegistry) -> None:
        """Workflows, webhooks and the event bus."""
        self.workflow_runs = Counter(
            "medic_workflow_runs_total",
            "Workflow runs by outcome.",
            ["workflow", "outcome"],
            registry=r,
        )
        self.workflow_duration = Histogram(
            "medic_workflow_duration_seconds",
            "Duration of workflow runs.",
            ["workflow"],
            buckets=_WORKFLOW_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "medic_webhook_deliveries_total",
            "Webhook delivery attempts by outcome.",
            ["webhook", "outcome"],
            registry=r,
        )
        self.notifications = Counter(
            "medic_notifications_total",
            "Apprise notifications by target (notifier) and outcome.",
            ["notifier", "outcome"],
            registry=r,
        )
        self.events = Counter(
            "medic_events_total",
            "Events published, by name.",
            ["event"],
            registry=r,
        )

    def _add_history_series(self, r: CollectorRegistry) -> None:
        self.history_write_errors = Counter(
            "medic_history_write_errors",
            "History writes the database refused (disk full, I/O error), retries included.",
            registry=r,
        )
        self.history_pending_writes = Gauge(
            "medic_history_pending_writes",
            "History writes waiting in memory for the database to take them"
            " (above 0: the history is degraded).",
            registry=r,
        )
        self.history_writes_dropped = Counter(
            "medic_history_writes_dropped",
            "History writes lost for good: the oldest beyond the in-memory limit,"
            " or refused for a reason no retry cures.",
            registry=r,
        )

    # what the checks do (medic.watch.runner.ProbeObserver) ------------------------

    def check_done(
        self, service: str, check_type: str, duration_s: float, failure: FailureType | None
    ) -> None:
        self.check_duration.observe((service, check_type), duration_s)
        if failure is not None:
            self.check_failures.inc((service, failure.value))

    def start_lag(self, seconds: float) -> None:
        self.check_start_lag.observe((), seconds)

    def set_up(self, service: str, up: bool) -> None:
        self.service_up.set((service,), 1.0 if up else 0.0)

    def service_added(self, service: str) -> None:
        self.service_up.set((service,), 0.0)
        self.circuit_open.set((service,), 0.0)
        self.service_paused.set((service,), 0.0)

    def service_removed(self, service: str) -> None:
        """Drop a removed service's series so /metrics does not report ghosts."""
        for gauge in (self.service_up, self.circuit_open, self.service_paused):
            gauge.remove((service,))

    # what the heal side does (medic.heal.recording.HealMetrics) --------------------

    def recovery_ended(self, service: str, playbook: str, outcome: str, duration_s: float) -> None:
        self.recoveries.inc((service, playbook, outcome))
        self.recovery_duration.observe((service,), duration_s)

    def recovery_held(self, reason: str) -> None:
        self.recoveries_held.labels(reason).inc()

    def set_circuit_open(self, service: str, is_open: bool) -> None:
        self.circuit_open.set((service,), 1.0 if is_open else 0.0)

    def set_paused(self, service: str, paused: bool) -> None:
        self.service_paused.set((service,), 1.0 if paused else 0.0)

    # what the workflows do (medic.workflows.ports.WorkflowMetrics) -------------------

    def workflow_ended(self, workflow: str, outcome: str, duration_s: float | None) -> None:
        """A run's end; ``duration_s`` is None for a run that never got a slot (not timed)."""
        self.workflow_runs.labels(workflow, outcome).inc()
        if duration_s is not None:
            self.workflow_duration.labels(workflow).observe(duration_s)

    # how the history's writes fare (medic.store.backlog.HistoryObserver) -------------

    def history_write_failed(self) -> None:
        self.history_write_errors.inc()

    def history_pending(self, count: int) -> None:
        self.history_pending_writes.set(count)

    def history_dropped(self, count: int) -> None:
        self.history_writes_dropped.inc(count)

    # what is published (a bus listener) ---------------------------------------------

    def count_event(self, event: Event) -> None:
        self.events.labels(event.name).inc()

    def render(self, names: Sequence[str] = ()) -> bytes:
        """The text exposition; only the samples named in ``names`` when it is not empty."""
        lines = [line for chunk in render_chunks(self._own, names) for line in chunk]
        return text(lines).encode() + self._render_registry(names)

    async def render_async(self, names: Sequence[str] = ()) -> bytes:
        """As ``render``, on the event loop, giving way after every chunk of series.

        At 1,000 services the whole text is about 30 ms of CPU: in one go it would
        hold back every check falling due meanwhile, and in a thread it fights the
        loop for the GIL (1.4-3 s of wall time on a busy host). It writes for
        ``RENDER_SLICE_S``, then the checks due go first.
        """
        lines: list[str] = []
        slice_end = time.perf_counter() + RENDER_SLICE_S
        for chunk in render_chunks(self._own, names):
            lines += chunk
            if time.perf_counter() >= slice_end:
                # One turn of the loop per slice, not per chunk: on a loaded loop
                # a turn may take tens of milliseconds (10,000 services).
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + RENDER_SLICE_S
        return text(lines).encode() + self._render_registry(names)

    def _render_registry(self, names: Sequence[str]) -> bytes:
        """The low-cardinality families (held recoveries, workflows, webhooks, events)."""
        if names:
            return generate_latest(self.registry.restricted_registry(names))
        return generate_latest(self.registry)
