"""Runs one check of one service: timeout, timing, classification, metrics.

Plugins only probe; everything they would otherwise repeat lives here. When
a service names a ``container:`` and its own probe fails, the container's
state refines the verdict: an exited container is a certain crash, whatever
the HTTP probe saw. The same goes for a service's ``process:`` that is gone.
A ``unit:`` that systemd reports failed, or stopped on purpose, decides too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from medic.config.models import ServiceSpec
from medic.core.vocabulary import FailureType
from medic.host import systemd as systemd_units
from medic.host.docker import ContainerNotFound, DockerUnavailable
from medic.host.resources import Resources
from medic.host.systemd import SystemctlError
from medic.watch.checks import CHECK_TYPES, Check
from medic.watch.checks.base import CheckResult, CheckTarget
from medic.watch.checks.container import judge_state
from medic.watch.checks.unit import refine as refine_with_unit
from medic.watch.classify import classify_exception


@dataclass(frozen=True)
class Probe:
    result: CheckResult
    at: datetime
    duration_s: float


def build_check(spec: ServiceSpec, resources: Resources) -> Check[Any]:
    target = CheckTarget(
        service=spec.name, container=spec.container, unit=spec.unit, timeout_s=spec.timeout_s
    )
    return CHECK_TYPES[spec.check.type](spec.check, target, resources)


class ProbeObserver(Protocol):
    """Who counts what the checks do (the Prometheus series, in ``medic.tell.metrics``)."""

    def check_done(
        self, service: str, check_type: str, duration_s: float, failure: FailureType | None
    ) -> None:
        """One check ended; ``failure`` is its failure type, None when it passed or cannot tell."""

    def start_lag(self, seconds: float) -> None:
        """A periodic check started ``seconds`` after it was due."""

    def set_up(self, service: str, up: bool) -> None:
        """The service is (not) healthy."""

    def service_added(self, service: str) -> None: ...

    def service_removed(self, service: str) -> None: ...


class CheckRunner:
    def __init__(self, resources: Resources, observer: ProbeObserver) -> None:
        self.resources = resources
        self.observer = observer

    async def run(self, spec: ServiceSpec, check: Check[Any]) -> Probe:
        at = datetime.now(UTC)
        t0 = time.monotonic()
        result = await self._probe(check, spec.timeout_s)
        if not result.healthy and spec.container and spec.check.type != "container":
            result = await self._refine_with_container(spec.container, result)
        if not result.healthy and spec.process and spec.check.type != "process":
            result = self._refine_with_process(spec.name, result)
        if not result.healthy and spec.unit and spec.check.type != "unit":
            result = await _refine_with_unit(spec.unit, result)
        duration = time.monotonic() - t0
        failure = None if result.healthy else result.failure_type
        self.observer.check_done(spec.name, spec.check.type, duration, failure)
        return Probe(result, at, duration)

    async def _probe(self, check: Check[Any], timeout_s: float) -> CheckResult:
        try:
            async with asyncio.timeout(timeout_s):
                return await check.probe()
        except TimeoutError:
            return CheckResult.fail(
                FailureType.CONNECTION_TIMEOUT, f"no answer within {timeout_s:g}s"
            )
        except Exception as exc:  # noqa: BLE001 - every probe error becomes a result
            failure_type, detail = classify_exception(exc)
            return CheckResult(healthy=False, detail=detail, failure_type=failure_type)

    async def _refine_with_container(self, container: str, result: CheckResult) -> CheckResult:
        try:
            async with asyncio.timeout(5):
                state = await self.resources.docker.inspect(container)
        except (TimeoutError, DockerUnavailable):
            return result
        except ContainerNotFound:
            return CheckResult.fail(
                FailureType.SERVICE_CRASH, f"container {container} does not exist", definitive=True
            )
        verdict = judge_state(state)
        if verdict.failure_type is FailureType.SERVICE_CRASH:
            return verdict
        return result

    def _refine_with_process(self, service: str, result: CheckResult) -> CheckResult:
        processes = self.resources.processes
        if service not in processes:
            return result
        info = processes.info(service)
        if info.alive:
            return result
        last = info.last_exit
        gone = last.describe() if last is not None else "not running"
        return CheckResult.fail(
            FailureType.SERVICE_CRASH,
            f"the process is gone ({gone}); the check saw: {result.detail}",
            definitive=True,
            returncode=last.returncode if last is not None else None,
        )


async def _refine_with_unit(unit: str, result: CheckResult) -> CheckResult:
    try:
        async with asyncio.timeout(5):
            state = await systemd_units.show(unit)
    except (TimeoutError, OSError, SystemctlError):
        return result
    return refine_with_unit(result, state)
