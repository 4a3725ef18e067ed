"""Telling an operator's deliberate stop from a crash, from Docker's events.

``docker stop`` sends the container's stop signal (a ``kill`` event with e.g.
signal 15), then, after the timeout, SIGKILL; the container ``die``s and
Docker emits ``stop``. A crash is a ``die`` with no ``kill`` before it (the
process exited, or was killed from the host or by the OOM killer), and
``docker kill`` is a ``kill`` with SIGKILL only and no ``stop``. So a ``die``
that follows a gentler signal is judged a moment later, once Docker has had
the chance to say ``stop``; a check that finds such a container exited before
the events arrive waits the same way (``stop_may_follow``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from medic.host.docker import DockerEvent

DIE_DEFER_S = 0.3
"""How long a ``die`` after a gentle signal waits for Docker's ``stop``."""

STOP_TIMEOUT_BOUND_S = 30.0
"""How long after a gentle signal a ``die`` is still expected (docker stop's
timeout is 10 s by default)."""

Meaning = Literal["crash_suspect", "defer", "operator_stop", "started", "other"]

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
        if action == "stop":
            return "operator_stop"
        return "other"

    def stop_may_follow(self, container: str, now: float | None = None) -> bool:
        """Whether an exited ``container`` may still turn out to be an operator's stop."""
        now = time.monotonic() if now is None else now
        seen = self._containers.get(container)
        if seen is None or seen.gentle_at is None:
            return False
        if seen.died_at is not None:
            return now - seen.died_at < DIE_DEFER_S
        return now - seen.gentle_at < STOP_TIMEOUT_BOUND_S
