"""What Docker's container events mean for the services that run in them.

This module is the one place a ``die`` is interpreted. Docker's events arrive
from the host adapter (``medic.host.docker_events``); ``ContainerEvents``
turns each into what the monitor should do about the services that name the
container: check now, wait a moment, leave a deliberate stop alone, or take
a started container back.

Telling an operator's deliberate stop from a crash: ``docker stop`` sends the
container's stop signal (a ``kill`` event with e.g. signal 15), then, after
the timeout, SIGKILL; the container ``die``s and Docker emits ``stop``. A
crash is a ``die`` with no ``kill`` before it (the process exited, or was
killed from the host or by the OOM killer), and ``docker kill`` is a ``kill``
with SIGKILL only and no ``stop``. So a ``die`` that follows a gentler signal
is judged a moment later, once Docker has had the chance to say ``stop``; a
check that finds such a container exited before the events arrive waits the
same way (``ContainerStopGate``).

A crash nobody asked for is acted on at once: when Docker's restart policy
will not bring the container back (``docker_restarts``), the ``die`` itself is
the verdict (a definitive ``service_crash`` with the exit code), with no probe
and no ``inspect`` first; the recovery then goes through every guardrail as
any failed check would. When Docker will restart it, medic waits for Docker.
While medic's own recovery runs, its ``kill``, ``die`` and ``stop`` are its
restart passing through: they ask for nothing (the recovery probes the service).
A ``pause`` marks the service at once (a frozen container answers nothing).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from medic.core.logging import get_logger
from medic.core.vocabulary import FailureType
from medic.watch.checks.base import CheckResult
from medic.watch.docker_restarts import DockerRestarts

if TYPE_CHECKING:
    from medic.config.models import ServiceSpec
    from medic.host.docker import DockerEvent

log = get_logger("DockerEvents")

DIE_DEFER_S = 0.3
"""How long a ``die`` after a gentle signal waits for Docker's ``stop``."""

REPLAY_SETTLE_S = DIE_DEFER_S
"""How long after the stream (re)connects the watched services are checked."""

STOP_TIMEOUT_BOUND_S = 30.0
"""How long after a gentle signal a ``die`` is still expected (docker stop's
timeout is 10 s by default)."""

Meaning = Literal[
    "crash_suspect", "defer", "operator_stop", "started", "paused", "unpaused", "updated", "other"
]

_SIMPLE: dict[str, Meaning] = {
    "stop": "operator_stop",
    "pause": "paused",
    "unpause": "unpaused",
    "update": "updated",
}

_SIGKILL = ("9", "KILL", "SIGKILL")


@dataclass
class _Signals:
    gentle_at: float | None = None
    """When the first non-KILL signal since the last start was sent."""
    died_at: float | None = None
    signals: list[str] = field(default_factory=list)


class DockerIntent:
    def __init__(self) -> None:
        self._containers: dict[str, _Signals] = {}
        """Signals sent through Docker to each container since it last started."""

    def observe(self, event: DockerEvent, now: float | None = None) -> Meaning:
        now = time.monotonic() if now is None else now
        name = event.container
        action = event.action
        if action == "start":
            self._containers.pop(name, None)
            return "started"
        seen = self._containers.setdefault(name, _Signals())
        if action == "kill":
            signal = event.attributes.get("signal", "")
            seen.signals.append(signal)
            if signal not in _SIGKILL and seen.gentle_at is None:
                seen.gentle_at = now
            return "other"
        if action == "die":
            seen.died_at = now
            return "defer" if seen.gentle_at is not None else "crash_suspect"
        return _SIMPLE.get(action, "other")

    def killed_through_api(self, container: str) -> bool:
        """Whether a ``kill`` reached ``container`` through Docker's API since it
        last started (Docker's restart policy then leaves it down)."""
        seen = self._containers.get(container)
        return seen is not None and bool(seen.signals)

    def stop_may_follow(self, container: str, now: float | None = None) -> bool:
        """Whether an exited ``container`` may still turn out to be an operator's stop."""
        now = time.monotonic() if now is None else now
        seen = self._containers.get(container)
        if seen is None or seen.gentle_at is None:
            return False
        if seen.died_at is not None:
            return now - seen.died_at < DIE_DEFER_S
        return now - seen.gentle_at < STOP_TIMEOUT_BOUND_S


def containers_of(spec: ServiceSpec) -> tuple[str, ...]:
    """The containers whose events concern ``spec``: its ``container:`` and its check's."""
    named = (spec.container, getattr(spec.check, "container", None))
    return tuple(dict.fromkeys(c for c in named if isinstance(c, str) and c))


class ContainerStopGate:
    """Holds back the verdict on an exited container that an operator may be stopping."""

    def __init__(self, intent: DockerIntent) -> None:
        self._intent = intent

    def defer_s(self, spec: ServiceSpec, result: CheckResult) -> float | None:
        """Seconds to wait before judging ``result`` again, or None to judge it now."""
        if result.healthy or result.failure_type is not FailureType.SERVICE_CRASH:
            return None
        if not spec.policy.respect_manual_stop:
            return None
        for container in containers_of(spec):
            if self._intent.stop_may_follow(container):
                return DIE_DEFER_S
        return None


class ServiceControl(Protocol):
    """What container events may ask of the monitor."""

    def specs(self) -> Iterable[ServiceSpec]: ...

    def request_check(self, name: str, delay_s: float = 0.0) -> None: ...

    def mark_stopped_by_operator(self, name: str, how: str) -> None: ...

    def mark_started_again(self, name: str, detail: str) -> None: ...

    def report_result(self, name: str, result: CheckResult) -> None: ...

    def is_recovering(self, name: str) -> bool: ...


class ContainerEvents:
    """Routes Docker's container events to the services that run in those containers."""

    def __init__(
        self, services: ServiceControl, intent: DockerIntent, restarts: DockerRestarts
    ) -> None:
        self._services = services
        self._intent = intent
        self._restarts = restarts

    def wanted(self) -> bool:
        """Whether any watched service names a container (so the stream is worth reading)."""
        return any(containers_of(spec) for spec in self._services.specs())

    def on_event(self, event: DockerEvent) -> None:
        meaning = self._intent.observe(event)
        if not event.container:
            return
        if meaning in ("started", "updated") and self._watched(event.container):
            self._restarts.learn(event.container)
        for spec in list(self._services.specs()):
            if event.container in containers_of(spec):
                log.debug(
                    "docker.event",
                    message="Docker event",
                    service=spec.name,
                    docker_event=event.action,
                )
                self._act(spec, meaning, event)

    def _watched(self, container: str) -> bool:
        return any(container in containers_of(spec) for spec in self._services.specs())

    def _act(self, spec: ServiceSpec, meaning: Meaning, event: DockerEvent) -> None:
        respect = spec.policy.respect_manual_stop
        if meaning not in ("started", "updated") and self._services.is_recovering(spec.name):
            # medic's own restart passing through (its kill, die, stop): the
            # recovery probes the service itself, and a check now would only
            # queue an inspect behind Docker's own work on the container.
            return
        if meaning == "operator_stop" and respect:
            self._services.mark_stopped_by_operator(spec.name, "stopped with docker stop")
        elif meaning == "started":
            self._services.mark_started_again(spec.name, "started again")
        elif meaning == "defer" and respect:
            self._services.request_check(spec.name, delay_s=DIE_DEFER_S)
        elif meaning == "crash_suspect":
            self._on_crash(spec, event)
        elif meaning == "paused":
            detail = f"container {event.container} was paused (frozen): Docker's pause event"
            self._services.report_result(spec.name, _event_result(event, detail, "paused"))
        elif meaning != "updated":
            self._services.request_check(spec.name)

    def _on_crash(self, spec: ServiceSpec, event: DockerEvent) -> None:
        """A ``die`` that no operator's signal preceded."""
        exit_code = _exit_code(event)
        docker_will = self._restarts.will_restart(event.container, exit_code)
        if self._intent.killed_through_api(event.container):
            docker_will = False  # docker kill: a manual stop for Docker's policy
        if docker_will is False:
            detail = f"container {event.container} exited with code {exit_code}: Docker's die event"
            result = _event_result(event, detail, "exited", exit_code=exit_code, definitive=True)
            self._services.report_result(spec.name, result)
        else:
            # Docker restarts it (or its policy is not known yet): the check and
            # the restart gate judge what the engine says once its exit is handled.
            self._services.request_check(spec.name)

    def on_connected(self) -> None:
        """The stream is (back) up. The engine replays what it saw meanwhile
        (``host.docker_events`` asks it to); each watched service is checked
        once the replay has had a moment to land, so that a ``docker stop``
        made meanwhile is read as the stop it was before its exited container
        is judged."""
        for spec in list(self._services.specs()):
            for container in containers_of(spec):
                self._restarts.learn(container)
            if containers_of(spec):
                self._services.request_check(spec.name, delay_s=REPLAY_SETTLE_S)


def _exit_code(event: DockerEvent) -> int:
    raw = event.attributes.get("exitCode", "")
    return int(raw) if raw.lstrip("-").isdigit() else -1


def _event_result(
    event: DockerEvent,
    detail: str,
    status: str,
    *,
    exit_code: int | None = None,
    definitive: bool = True,
) -> CheckResult:
    failure = FailureType.SERVICE_CRASH if status == "exited" else FailureType.CONNECTION_TIMEOUT
    data: dict[str, object] = {
        "container": event.container,
        "status": status,
        "source": "docker_event",
    }
    if exit_code is not None:
        data["exit_code"] = exit_code
    return CheckResult.fail(failure, detail, definitive=definitive, **data)
