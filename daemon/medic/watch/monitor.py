"""SelfHealingMonitor: schedules every service's check, keeps its status, and
tells whoever listens.

The monitor knows nothing of recovery, history or metrics. A failing check
goes to its ``RecoveryListener`` (the heal side); a status change is published
on the event bus (the store, the webhooks and the event stream subscribe);
what the runner measures goes to its ``ProbeObserver``. Plugins that know
more than a probe can tell (Docker's events, a unit stopped on purpose) speak
through ``request_check``, ``mark_stopped_by_operator``, ``mark_started_again``
and the result gates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from medic.config.models import ServiceSpec
from medic.core.bus import EventBus
from medic.core.errors import ServiceNotFoundError
from medic.core.logging import get_logger
from medic.core.vocabulary import FailureType, ServiceStatus
from medic.watch.checks import Check
from medic.watch.checks.base import CheckResult
from medic.watch.periodic import PeriodicChecks
from medic.watch.runner import CheckRunner, build_check
from medic.watch.stale_probes import overtaken
from medic.watch.state import LastCheck, ServiceState, Transition, WatchedStates
from medic.watch.transition_log import log_transition

log = get_logger("SelfHealingMonitor")


class RecoveryListener(Protocol):
    """What the monitor tells the heal side, and the seed's ``remediate``."""

    def on_result(self, state: ServiceState) -> None:
        """A check result was applied to ``state`` (healthy or not)."""

    def on_transition(self, transition: Transition) -> None:
        """``transition`` was recorded and published."""

    def remediate(
        self, service: str, failure_type: FailureType | None, dry_run: bool | None
    ) -> asyncio.Task[Any]:
        """Run the service's recovery now (an operator's, through the seed's API)."""


class ResultGate(Protocol):
    """A plugin that may hold back the verdict on a failed result for a moment."""

    def defer_s(self, spec: ServiceSpec, result: CheckResult) -> float | None:
        """Seconds to wait before checking again instead of judging now; None: judge now."""


class SelfHealingMonitor:
    """The seed's monitor: ``start()``, ``check_health()``, ``remediate(service)``.

    ``check_health`` and ``remediate`` schedule their work at once and return
    the task, so they work both called plainly and awaited.
    """

    def __init__(
        self,
        *,
        services: Mapping[str, ServiceSpec],
        runner: CheckRunner,
        bus: EventBus,
        recovery: RecoveryListener,
        gates: Sequence[ResultGate] = (),
    ) -> None:
        self.runner = runner
        self.periodic = PeriodicChecks(self._start_scheduled)
        self.bus = bus
        self._recovery = recovery
        self._gates = tuple(gates)
        self._states = WatchedStates()
        self._checks: dict[str, Check[Any]] = {}
        self._in_flight: dict[str, asyncio.Task[CheckResult]] = {}
        self._recheck: set[str] = set()
        self._asked_at: dict[str, float] = {}
        """When a check was last asked for (news: a reset, a start); wall clock."""
        self._started = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop ``start()`` ran in: the periodic checks' (kept: each look-up of
        the running loop is a ``getpid`` system call)."""
        for spec in services.values():
            self._add(spec)

    # the seed's API ---------------------------------------------------------------

    def start(self) -> None:
        """Schedule every service's check (the first one runs at once)."""
        self._started, self._stopping = True, False
        self._loop = asyncio.get_running_loop()
        for spec in [s.spec for s in self._states.values()]:
            self._schedule(spec)

    def check_health(self, service: str | None = None) -> asyncio.Task[dict[str, bool]]:
        """Check one service (or all) now; the task's result maps name -> healthy."""
        names = [service] if service else list(self._states)
        for name in names:
            self.state(name)

        async def run() -> dict[str, bool]:
            results = await asyncio.gather(*(self.probe_now(n) for n in names))
            return {n: r.healthy for n, r in zip(names, results, strict=True)}

        return asyncio.create_task(run(), name="check_health")

    def remediate(
        self, service: str, failure_type: FailureType | None = None, *, dry_run: bool | None = None
    ) -> asyncio.Task[Any]:
        """Run the service's recovery now, under the one-at-a-time guardrail."""
        self.state(service)
        return self._recovery.remediate(service, failure_type, dry_run)

    # state ------------------------------------------------------------------------

    def state(self, name: str) -> ServiceState:
        try:
            return self._states[name]
        except KeyError:
            raise ServiceNotFoundError(name, self._states) from None

    def states(self) -> Mapping[str, ServiceState]:
        return self._states

    def specs(self) -> Iterable[ServiceSpec]:
        return [state.spec for state in self._states.values()]

    def apply_transition(self, transition: Transition | None) -> None:
        """Publish one status change (the store records it first) and tell the heal side."""
        if transition is None:
            return
        t = transition
        payload = t.as_event()
        self.bus.publish("service.state", **payload)
        if t.new is ServiceStatus.UNHEALTHY and t.old in (
            ServiceStatus.HEALTHY,
            ServiceStatus.UNKNOWN,
        ):
            self.bus.publish("service.unhealthy", **payload)
        elif t.new is ServiceStatus.HEALTHY and t.old is not ServiceStatus.UNKNOWN:
            self.bus.publish("service.recovered", **payload)
        log_transition(t, stopping=self._stopping)
        self.runner.observer.set_up(t.service, t.new is ServiceStatus.HEALTHY)
        self._recovery.on_transition(t)

    def mark_stopped_by_operator(self, name: str, how: str) -> None:
        """Leave a deliberately stopped service alone until it is started again.

        While medic's own recovery runs, a stop is its restart passing through:
        the service is checked instead.
        """
        state = self._states.get(name)
        if state is None:
            return
        if state.recovering:
            self.request_check(name)
            return
        self._mark_stopped(state, how)

    def mark_started_again(self, name: str, detail: str) -> None:
        """The service was started (by medic, Docker's policy or an operator): its
        ``start_period`` begins again; one an operator had stopped is watched afresh."""
        state = self._states.get(name)
        if state is None:
            return
        if state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            self.apply_transition(state.set_status(ServiceStatus.UNKNOWN, detail))
        state.start_grace()
        if not state.recovering:  # medic's own start: its recovery probes the service
            self.request_check(name)

    def is_recovering(self, name: str) -> bool:
        state = self._states.get(name)
        return state is not None and state.recovering

    def report_result(self, name: str, result: CheckResult) -> None:
        """Judge what a plugin knows for certain (Docker's ``die``) as a check result,
        now, without a probe: it goes the same way as a probe's result."""
        state = self._states.get(name)
        if state is None:
            return
        failure = None if result.healthy else result.failure_type
        self.runner.observer.check_done(name, state.spec.check.type, 0.0, failure)
        self._judge(state, result, datetime.now(UTC), 0.0)

    def _mark_stopped(self, state: ServiceState, how: str) -> None:
        if state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            return
        self.apply_transition(state.set_status(ServiceStatus.STOPPED_BY_OPERATOR, how))
        self.bus.publish("service.stopped_by_operator", service=state.name, detail=how)

    # checking ----------------------------------------------------------------------

    async def probe_now(self, name: str) -> CheckResult:
        """Run the check now (or join the one in flight) and apply its result."""
        state = self.state(name)
        task = self._in_flight.get(name) or self._spawn_check(state, asyncio.get_running_loop())
        return await asyncio.shield(task)

    async def probe_fresh(self, name: str) -> CheckResult:
        """Run a probe that starts now, even if an older one is still in flight.

        ``wait_healthy`` uses it after a restart: joining a probe that began
        before the restart (and may still wait on the old process) would report
        the service healthy late, or not at all.
        """
        return await self._check(self.state(name), asyncio.get_running_loop())

    def request_check(self, name: str, delay_s: float = 0.0) -> None:
        """Ask for a check as soon as possible (or in ``delay_s``); never blocks, never raises."""
        if name not in self._states or self._stopping:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not running yet: the scheduled checks will come
        if delay_s > 0:
            loop.call_later(delay_s, self.request_check, name)
            return
        self._asked_at[name] = time.time()
        if name in self._in_flight:
            self._recheck.add(name)  # the running probe may predate the news
            return
        self._spawn_check(self._states[name], loop)

    def _start_scheduled(self, name: str, due: float) -> None:
        """A periodic check falls due; skipped quietly while the last one still runs."""
        state = self._states.get(name)
        loop = self._loop
        if state is None or name in self._in_flight or loop is None:
            return
        self.runner.observer.start_lag(max(0.0, loop.time() - due))
        self._spawn_check(state, loop)

    def _spawn_check(
        self, state: ServiceState, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Task[CheckResult]:
        name = state.name
        task = loop.create_task(self._check(state, loop), name=f"check:{name}")
        self._in_flight[name] = task
        task.add_done_callback(partial(self._check_done, name))
        return task

    def _check_done(self, name: str, task: asyncio.Task[CheckResult]) -> None:
        if self._in_flight.get(name) is task:
            del self._in_flight[name]
        _consume_result(task)
        if name in self._recheck:
            self._recheck.discard(name)
            self.request_check(name)

    async def _check(self, state: ServiceState, loop: asyncio.AbstractEventLoop) -> CheckResult:
        started = time.monotonic()
        check = self._checks.get(state.name)
        if check is None:  # removed by a reload after this check was asked for
            return CheckResult(healthy=False, detail="the service was removed")
        probe = await self.runner.run(state.spec, check, loop)
        if self._states.get(state.name) is not state:
            return probe.result  # the service was removed or replaced meanwhile
        if overtaken(state, probe, self._asked_at.get(state.name, 0.0), started):
            self.request_check(state.name)  # judge the service as it is now, not as it was
            return probe.result
        return self._judge(state, probe.result, probe.at, probe.duration_s)

    def _judge(
        self, state: ServiceState, raw: CheckResult, at: datetime, duration_s: float
    ) -> CheckResult:
        result = self._with_dependency_context(state, raw)
        if self._deferred(state, result):
            return result  # judged again once the plugin's moment has passed
        self._follow_operator_intent(state, result)
        state.record_check(LastCheck(at, duration_s, result))
        self.apply_transition(state.observe(result))
        if state.status is ServiceStatus.HEALTHY and not state.recovering:
            self.runner.observer.set_up(state.name, True)
        self._recovery.on_result(state)
        return result

    def _deferred(self, state: ServiceState, result: CheckResult) -> bool:
        for gate in self._gates:
            delay = gate.defer_s(state.spec, result)
            if delay is not None:
                self.request_check(state.name, delay_s=delay)
                return True
        return False

    def _with_dependency_context(self, state: ServiceState, result: CheckResult) -> CheckResult:
        if result.healthy:
            return result
        failing = [
            d for d in state.spec.depends_on if d in self._states and self._states[d].is_failing
        ]
        if not failing:
            return result
        # The verdict changes; what the probe saw (data, an operator's stop) stays.
        return replace(
            result,
            failure_type=FailureType.DEPENDENCY_FAILURE,
            detail=f"{result.detail} (dependency {', '.join(failing)} is failing)",
            definitive=False,
        )

    def _follow_operator_intent(self, state: ServiceState, result: CheckResult) -> None:
        """An operator's stop, and start again, as the check's plugin saw them."""
        stopped = result.operator_stop
        if stopped is None or state.recovering:
            return  # the plugin cannot tell, or medic's own restart is passing through
        if stopped and state.spec.policy.respect_manual_stop:
            self._mark_stopped(state, result.detail)
        elif not stopped and state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            self.apply_transition(state.set_status(ServiceStatus.UNKNOWN, "the unit runs again"))
            state.start_grace()

    # configuration -------------------------------------------------------------------

    def _add(self, spec: ServiceSpec) -> None:
        state = ServiceState(spec)
        state.start_grace()
        self._states[spec.name] = state
        self._checks[spec.name] = build_check(spec, self.runner.resources)
        self.runner.observer.service_added(spec.name)
        if self._started:
            self._schedule(spec)

    def _schedule(self, spec: ServiceSpec) -> None:
        self.periodic.add(spec.name, spec.interval_s)
        # The first check runs at once; the interval's own phase follows.
        self.request_check(spec.name)

    async def _remove(self, name: str) -> None:
        self.periodic.remove(name)
        self._states.pop(name, None)
        self._asked_at.pop(name, None)
        check = self._checks.pop(name, None)
        if check is not None:
            await check.close()
        self.runner.observer.service_removed(name)

    async def apply_services(self, services: Mapping[str, ServiceSpec]) -> dict[str, list[str]]:
        """Bring the watched set in line with a new config; unchanged services keep their state."""
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for name in [n for n in self._states if n not in services]:
            await self._remove(name)
            changes["removed"].append(name)
        for name, spec in services.items():
            current = self._states.get(name)
            if current is None:
                self._add(spec)
                changes["added"].append(name)
            elif current.spec != spec:
                await self._remove(name)
                self._add(spec)
                changes["changed"].append(name)
        return changes

    def stop_scheduling(self) -> None:
        """Start no more checks (periodic or asked for); those in flight go on
        until ``close``, and what they find is no longer said to start a recovery."""
        self._stopping = True
        self.periodic.stop()

    async def close(self) -> None:
        """Stop scheduling, cancel the checks in flight and wait for them to end."""
        self.periodic.stop()
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for check in self._checks.values():
            await check.close()


def _consume_result(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error(
            "check.crashed",
            message="Check failed unexpectedly",
            error=f"{type(exc).__name__}: {exc}",
        )
