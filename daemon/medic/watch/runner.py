"""Runs one check of one service: timeout, timing, classification, metrics.

Plugins only probe; everything they would otherwise repeat lives here. A
failed result then goes through the refiners the check plugins register
(``REFINERS``, in registry order): a plugin that knows what the service names
(its ``container:``, ``process:``, ``unit:``) may decide the verdict, e.g. an
exited container is a certain crash, whatever the HTTP probe saw.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from medic.config.models import ServiceSpec
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks import CHECK_TYPES, REFINERS, Check
from medic.watch.checks.base import CheckResult, CheckTarget
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
        self._deadlines = Deadlines()

    async def run(
        self, spec: ServiceSpec, check: Check[Any], loop: asyncio.AbstractEventLoop | None = None
    ) -> Probe:
        """Probe once under the service's timeout. ``loop``: the running loop, when the
        caller has it (each look-up of the running loop is a ``getpid`` system call)."""
        at = datetime.now(UTC)
        t0 = time.monotonic()
        result = await self._probe(check, spec.timeout_s, loop or asyncio.get_running_loop())
        for refiner in REFINERS:
            if not result.healthy and refiner.applies(spec):
                result = await refiner.refine(spec, result, self.resources)
        duration = time.monotonic() - t0
        failure = None if result.healthy else result.failure_type
        self.observer.check_done(spec.name, spec.check.type, duration, failure)
        return Probe(result, at, duration)

    async def _probe(
        self, check: Check[Any], timeout_s: float, loop: asyncio.AbstractEventLoop
    ) -> CheckResult:
        try:
            async with self._deadlines.deadline(loop, timeout_s):
                return await check.probe()
        except TimeoutError:
            return CheckResult.fail(
                FailureType.CONNECTION_TIMEOUT, f"no answer within {timeout_s:g}s"
            )
        except Exception as exc:  # noqa: BLE001 - every probe error becomes a result
            failure_type, detail = classify_exception(exc)
            return CheckResult(healthy=False, detail=detail, failure_type=failure_type)


class Deadlines:
    """The probes' deadlines, one loop timer per instant rather than one per probe.

    The checks of one phase slot start in one loop turn, and most share their
    timeout, so their deadlines coincide: they share one timer (a uvloop
    ``call_at`` and its ``cancel`` cost about 2.6 us, a good part of a kept-alive
    check's CPU). Deadlines are rounded up to the millisecond (uvloop's clock
    ticks in milliseconds anyway). A group's timer is cancelled once its last
    probe ends.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[float, asyncio.AbstractEventLoop], _Group] = {}

    def deadline(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> _Deadline:
        """``asyncio.timeout(timeout_s)`` for one probe (in a task of ``loop``)."""
        return _Deadline(self, loop, timeout_s)

    def _add(self, member: _Deadline, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        key = (math.ceil((loop.time() + timeout_s) * 1000) / 1000, loop)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
            group.handle = loop.call_at(key[0], self._expire, key)
        group.members.add(member)
        member.key = key

    def _discard(self, member: _Deadline) -> None:
        group = self._groups.get(member.key)
        if group is None:
            return
        group.members.discard(member)
        if not group.members:
            group.handle.cancel()
            del self._groups[member.key]

    def _expire(self, key: tuple[float, asyncio.AbstractEventLoop]) -> None:
        group = self._groups.pop(key, None)
        for member in group.members if group else ():
            member.expire()


class _Group:
    __slots__ = ("handle", "members")

    def __init__(self) -> None:
        self.members: set[_Deadline] = set()
        self.handle: asyncio.TimerHandle


class _Deadline:
    """``asyncio.timeout(timeout_s)`` for one probe, for less CPU: its timer is
    shared (``Deadlines``), and given the loop, it looks up neither the loop nor
    the task through ``get_running_loop`` (each look-up a ``getpid`` system call;
    ``asyncio.timeout`` makes three). Same semantics: at the deadline the task is
    cancelled, and that cancellation, unless another came too, leaves as
    ``TimeoutError``."""

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_loop", "_task", "_timeout_s", "key")

    def __init__(
        self, deadlines: Deadlines, loop: asyncio.AbstractEventLoop, timeout_s: float
    ) -> None:
        self._deadlines = deadlines
        self._loop = loop
        self._timeout_s = timeout_s
        self._expired = False
        self.key: tuple[float, asyncio.AbstractEventLoop]

    async def __aenter__(self) -> None:
        task = asyncio.current_task(self._loop)
        if task is None:
            raise RuntimeError("a probe's deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._deadlines._add(self, self._loop, self._timeout_s)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> None:
        self._deadlines._discard(self)
        if self._expired and (
            self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def expire(self) -> None:
        self._expired = True
        self._task.cancel()
