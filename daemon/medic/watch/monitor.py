"""SelfHealingMonitor: schedules every service's check, keeps its state, and
hands failing services to the recovery engine. Docker events trigger an
immediate check of the service that owns the container."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from medic.config.models import ServiceSpec
from medic.core.bus import EventBus
from medic.core.errors import ServiceNotFoundError
from medic.core.logging import get_logger
from medic.core.vocabulary import FailureType, ServiceStatus
from medic.host.docker import DockerEvent
from medic.store import Store
from medic.tell.metrics import Metrics
from medic.watch.checks import Check
from medic.watch.checks.base import CheckResult
from medic.watch.checks.unit import OPERATOR_STOP
from medic.watch.containers import DIE_DEFER_S, DockerIntent, Meaning
from medic.watch.periodic import PeriodicChecks
from medic.watch.runner import CheckRunner, build_check
from medic.watch.state import LastCheck, ServiceState, Transition

if TYPE_CHECKING:
    from medic.heal.engine import RecoveryEngine, RecoveryOutcome

log = get_logger("SelfHealingMonitor")


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
        scheduler: AsyncIOScheduler,
        store: Store,
        bus: EventBus,
        metrics: Metrics,
    ) -> None:
        self.runner = runner
        self.periodic = PeriodicChecks(scheduler, self._start_scheduled)
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.engine: RecoveryEngine | None = None
        self._states: dict[str, ServiceState] = {}
        self._checks: dict[str, Check[Any]] = {}
        self._in_flight: dict[str, asyncio.Task[CheckResult]] = {}
        self._recheck: set[str] = set()
        self._started = False
        self.intent = DockerIntent()
        for spec in services.values():
            self._add(spec)

    # the seed's API ---------------------------------------------------------------

    def start(self) -> None:
        """Schedule every service's check (the first one runs at once)."""
        self._started = True
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
    ) -> asyncio.Task[RecoveryOutcome]:
        """Run the service's recovery now, under the one-at-a-time guardrail."""
        assert self.engine is not None, "remediate() needs the recovery engine attached"
        return self.engine.recover_now(service, failure_type, trigger="manual", dry_run=dry_run)

    # state ------------------------------------------------------------------------

    def state(self, name: str) -> ServiceState:
        try:
            return self._states[name]
        except KeyError:
            raise ServiceNotFoundError(name) from None

    def states(self) -> Mapping[str, ServiceState]:
        return self._states

    def apply_transition(self, transition: Transition | None) -> None:
        """Record, count and publish one status change."""
        if transition is None:
            return
        t = transition
        failure = t.failure_type.value if t.failure_type else None
        self.store.record_transition(t.service, t.old.value, t.new.value, failure, t.detail)
        self.metrics.service_up.labels(t.service).set(1 if t.new is ServiceStatus.HEALTHY else 0)
        if self.engine is not None:
            self.engine.on_transition(t)
        payload = dict(
            service=t.service,
            old=t.old.value,
            new=t.new.value,
            failure_type=failure,
            detail=t.detail,
        )
        self.bus.publish("service.state", **payload)
        if t.new is ServiceStatus.UNHEALTHY and t.old in (
            ServiceStatus.HEALTHY,
            ServiceStatus.UNKNOWN,
        ):
            self.bus.publish("service.unhealthy", **payload)
            log.warning(
                f"{t.service} is UNHEALTHY. Initiating auto-remediation.",
                service=t.service,
                failure_type=failure,
                detail=t.detail,
            )
        elif t.new is ServiceStatus.HEALTHY:
            if t.old is not ServiceStatus.UNKNOWN:
                self.bus.publish("service.recovered", **payload)
            log.info(f"{t.service} is healthy", service=t.service, previous=t.old.value)
            self._on_healthy(self._states[t.service])
        else:
            log.info(
                f"{t.service} is {t.new.value}",
                service=t.service,
                failure_type=failure,
                detail=t.detail,
            )

    def _on_healthy(self, state: ServiceState) -> None:
        if self.engine is not None:
            self.engine.on_healthy(state)
        for other in self._states.values():
            if state.name in other.spec.depends_on and other.status is ServiceStatus.HELD:
                self.request_check(other.name)

    # checking ----------------------------------------------------------------------

    async def probe_now(self, name: str) -> CheckResult:
        """Run the check now (or join the one in flight) and apply its result."""
        state = self.state(name)
        task = self._in_flight.get(name) or self._spawn_check(state)
        return await asyncio.shield(task)

    async def probe_fresh(self, name: str) -> CheckResult:
        """Run a probe that starts now, even if an older one is still in flight.

        ``wait_healthy`` uses it after a restart: joining a probe that began
        before the restart (and may still wait on the old process) would report
        the service healthy late, or not at all.
        """
        return await self._check(self.state(name))

    def request_check(self, name: str) -> None:
        """Ask for a check as soon as possible; never blocks, never raises."""
        if name not in self._states:
            return
        if name in self._in_flight:
            self._recheck.add(name)  # the running probe may predate the news
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not running yet: the scheduled checks will come
        self._spawn_check(self._states[name])

    def _start_scheduled(self, name: str, due: float) -> None:
        """A periodic check falls due; skipped quietly while the last one still runs."""
        state = self._states.get(name)
        if state is None or name in self._in_flight:
            return
        self.metrics.check_start_lag.observe(max(0.0, time.time() - due))
        self._spawn_check(state)

    def _spawn_check(self, state: ServiceState) -> asyncio.Task[CheckResult]:
        name = state.name
        task = asyncio.get_running_loop().create_task(self._check(state), name=f"check:{name}")
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

    async def _check(self, state: ServiceState) -> CheckResult:
        check = self._checks[state.name]
        probe = await self.runner.run(state.spec, check)
        if self._states.get(state.name) is not state:
            return probe.result  # the service was removed or replaced meanwhile
        result = self._with_dependency_context(state, probe.result)
        if self._stop_may_follow(state, result):
            return result  # judged again once Docker has had the chance to say stop
        self._follow_unit_intent(state, result)
        state.last_check = LastCheck(probe.at, probe.duration_s, result)
        self.apply_transition(state.observe(result))
        if state.status is ServiceStatus.HEALTHY and not state.recovering:
            self.metrics.service_up.labels(state.name).set(1)
            if self.engine is not None:
                self.engine.on_healthy_check(state)
        if self.engine is not None and not result.healthy:
            self.engine.evaluate(state)
        return result

    def _stop_may_follow(self, state: ServiceState, result: CheckResult) -> bool:
        """An exited container after a gentle signal may be ``docker stop``: wait a moment."""
        if result.healthy or result.failure_type is not FailureType.SERVICE_CRASH:
            return False
        container = state.spec.container or _check_container(state.spec)
        if container is None or not state.spec.policy.respect_manual_stop:
            return False
        if not self.intent.stop_may_follow(container):
            return False
        asyncio.get_running_loop().call_later(DIE_DEFER_S, self.request_check, state.name)
        return True

    def _with_dependency_context(self, state: ServiceState, result: CheckResult) -> CheckResult:
        if result.healthy:
            return result
        failing = [
            d for d in state.spec.depends_on if d in self._states and self._states[d].is_failing
        ]
        if not failing:
            return result
        return CheckResult.fail(
            FailureType.DEPENDENCY_FAILURE,
            f"{result.detail} (dependency {', '.join(failing)} is failing)",
            **result.data,
        )

    # docker events -------------------------------------------------------------------

    def on_docker_event(self, event: DockerEvent) -> None:
        meaning = self.intent.observe(event)
        for state in list(self._states.values()):
            if event.container and event.container in (
                state.spec.container,
                _check_container(state.spec),
            ):
                log.debug("Docker event", service=state.name, docker_event=event.action)
                self._on_container_event(state, meaning)

    def _on_container_event(self, state: ServiceState, meaning: Meaning) -> None:
        respect = state.spec.policy.respect_manual_stop
        if meaning == "operator_stop" and respect and not state.recovering:
            self.mark_stopped_by_operator(state, "stopped with docker stop")
        elif meaning == "started" and state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            self.apply_transition(state.set_status(ServiceStatus.UNKNOWN, "started again"))
            state.start_grace()
            self.request_check(state.name)
        elif meaning == "defer" and respect:
            asyncio.get_running_loop().call_later(DIE_DEFER_S, self.request_check, state.name)
        else:
            self.request_check(state.name)

    def mark_stopped_by_operator(self, state: ServiceState, how: str) -> None:
        """Leave a deliberately stopped service alone until it is started again."""
        if state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            return
        self.store.audit("service.stopped_by_operator", state.name, how=how)
        self.apply_transition(state.set_status(ServiceStatus.STOPPED_BY_OPERATOR, how))
        self.bus.publish("service.stopped_by_operator", service=state.name, detail=how)

    def _follow_unit_intent(self, state: ServiceState, result: CheckResult) -> None:
        """An operator's ``systemctl stop``, and start again, as the unit's state shows them."""
        stopped = result.data.get(OPERATOR_STOP)
        if stopped is None or state.recovering:
            return  # not about a unit, or medic's own restart passing through "inactive"
        if stopped and state.spec.policy.respect_manual_stop:
            self.mark_stopped_by_operator(state, result.detail)
        elif not stopped and state.status is ServiceStatus.STOPPED_BY_OPERATOR:
            self.apply_transition(state.set_status(ServiceStatus.UNKNOWN, "the unit runs again"))
            state.start_grace()

    def on_docker_connected(self) -> None:
        for state in self._states.values():
            if state.spec.container or _check_container(state.spec):
                self.request_check(state.name)

    def uses_docker(self) -> bool:
        return any(s.spec.container or _check_container(s.spec) for s in self._states.values())

    # configuration -------------------------------------------------------------------

    def _add(self, spec: ServiceSpec) -> None:
        state = ServiceState(spec)
        state.start_grace()
        self._states[spec.name] = state
        self._checks[spec.name] = build_check(spec, self.runner.resources)
        self.metrics.service_up.labels(spec.name).set(0)
        self.metrics.circuit_open.labels(spec.name).set(0)
        if self._started:
            self._schedule(spec)

    def _schedule(self, spec: ServiceSpec) -> None:
        self.periodic.add(spec.name, spec.interval_s)
        # The first check runs at once; the interval's own phase follows.
        self.request_check(spec.name)

    async def _remove(self, name: str) -> None:
        self.periodic.remove(name)
        self._states.pop(name, None)
        check = self._checks.pop(name, None)
        if check is not None:
            await check.close()
        self.metrics.forget_service(name)

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
        """Start no more periodic checks; those in flight go on until ``close``."""
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


def _check_container(spec: ServiceSpec) -> str | None:
    value = getattr(spec.check, "container", None)
    return value if isinstance(value, str) else None


def _consume_result(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("Check failed unexpectedly", error=f"{type(exc).__name__}: {exc}")
