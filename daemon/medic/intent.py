"""Telling an operator's deliberate stop from a crash, from Docker's events.

``docker stop`` sends the container's stop signal (a ``kill`` event with e.g.
signal 15), then, after the timeout, SIGKILL; the container ``die``s and
Docker emits ``stop``. A crash is a ``die`` with no ``kill`` before it (the
process exited, or was killed from the host or by the OOM killer), and
``docker kill`` is a ``kill`` with SIGKILL only and no ``stop``. So a ``die``
that follows a gentler signal is judged a moment later, once Docker has had
the chance to say ``stop``.
"""

from __future__ import annotations

from typing import Literal

from medic.containers import DockerEvent

DIE_DEFER_S = 0.3
"""How long a ``die`` after a gentle signal waits for Docker's ``stop``."""

Meaning = Literal["crash_suspect", "defer", "operator_stop", "started", "other"]

_SIGKILL = ("9", "KILL", "SIGKILL")


class DockerIntent:
    def __init__(self) -> None:
        self._signals: dict[str, list[str]] = {}
        """Signals sent through Docker to each container since it last started."""

    def observe(self, event: DockerEvent) -> Meaning:
        name = event.container
        action = event.action
        if action == "start":
            self._signals.pop(name, None)
            return "started"
        if action == "kill":
            self._signals.setdefault(name, []).append(event.attributes.get("signal", ""))
            return "other"
        if action == "die":
            gentle = any(sig not in _SIGKILL for sig in self._signals.get(name, ()))
            return "defer" if gentle else "crash_suspect"
        if action == "stop":
            return "operator_stop"
        return "other"
