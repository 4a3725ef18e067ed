"""Maintenance: services that are watched but never healed.

A pause comes from an operator (``medic pause``, ``POST .../pause``) or from a
``maintenance:`` window; it lasts until a time (``--for``, the window's end)
or until resumed. While paused, a service is still checked and its history
recorded, but no automatic recovery starts (held, reason ``maintenance``, as
an alert for it is), and nothing about it reaches the notifiers but
``maintenance.started`` and ``maintenance.ended`` (``quiet``). Pauses are
kept in the history, so they survive a restart; when one ends, the service
is checked at once and a service that still fails takes its normal course.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.triggers.base import BaseTrigger

from medic.config.models import MaintenanceWindow, ScheduleConfig
from medic.config.schedules import build_trigger
from medic.core.bus import Event, EventBus, Listener
from medic.core.clock import iso
from medic.core.logging import get_logger
from medic.core.records import Pause
from medic.heal.state import ServiceSource

log = get_logger("Maintenance")

WINDOW = "window"
"""``paused_by`` of a pause a ``maintenance:`` window started."""


class PauseJournal(Protocol):
    """Where pauses are kept (the store)."""

    def save_pause(self, pause: Pause) -> None: ...

    def forget_pause(self, service: str) -> None: ...

    def recorded_pauses(self) -> Sequence[Pause]: ...

    def audit(self, kind: str, service: str | None = None, **data: Any) -> None: ...


class PauseMetrics(Protocol):
    def set_paused(self, service: str, paused: bool) -> None: ...


class Maintenance:
    def __init__(self, journal: PauseJournal, bus: EventBus, metrics: PauseMetrics) -> None:
        self._journal = journal
        self._bus = bus
        self._metrics = metrics
        self._pauses: dict[str, Pause] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._window_timers: dict[int, asyncio.TimerHandle] = {}
        self._told: set[str] = set()
        self._watched: ServiceSource | None = None

    def attach(self, services: ServiceSource) -> None:
        """The monitor: ``services: "*"`` means its services; one whose pause
        ends is checked at once."""
        self._watched = services

    def services(self) -> Collection[str]:
        return () if self._watched is None else self._watched.states().keys()

    def paused(self, name: str) -> Pause | None:
        return self._pauses.get(name)

    def shown(self, name: str, status: str) -> str:
        """The status the API shows: ``paused`` while paused, else the checks' own."""
        return "paused" if name in self._pauses else status

    def pauses(self) -> dict[str, Pause]:
        return dict(self._pauses)

    def fields(self, name: str) -> dict[str, object]:
        """The pause's fields of a service's API answer (null when not paused)."""
        pause = self._pauses.get(name)
        if pause is None:
            return {"paused_until": None, "pause_reason": None, "paused_by": None}
        return {
            "paused_until": iso(pause.until),
            "pause_reason": pause.reason,
            "paused_by": pause.by,
        }

    def first_hold(self, name: str) -> bool:
        """True once per pause: a held recovery is told once, not on every failed check."""
        if name in self._told:
            return False
        self._told.add(name)
        return True

    # pause and resume -----------------------------------------------------------------

    def pause(self, service: str, *, for_s: float | None, reason: str, by: str) -> Pause:
        now = time.time()
        until = None if for_s is None else now + for_s
        return self._start(Pause(service, until, reason, by, now))

    def _start(self, pause: Pause) -> Pause:
        fresh = pause.service not in self._pauses
        self._pauses[pause.service] = pause
        self._journal.save_pause(pause)  # written before it is told
        self._arm(pause)
        self._metrics.set_paused(pause.service, True)
        data = {"until": iso(pause.until), "reason": pause.reason, "by": pause.by}
        self._journal.audit("maintenance.started", pause.service, **data)
        if fresh:
            self._bus.publish("maintenance.started", service=pause.service, **data)
        log.info("maintenance.started", message="Service paused", service=pause.service, **data)
        return pause

    def resume(self, service: str, by: str) -> Pause | None:
        """End the service's pause; None when it was not paused."""
        pause = self._pauses.pop(service, None)
        if pause is None:
            return None
        timer = self._timers.pop(service, None)
        if timer is not None:
            timer.cancel()
        self._told.discard(service)
        self._journal.forget_pause(service)
        self._metrics.set_paused(service, False)
        data = {"reason": pause.reason, "paused_by": pause.by, "by": by}
        self._journal.audit("maintenance.ended", service, **data)
        self._bus.publish("maintenance.ended", service=service, **data)
        log.info("maintenance.ended", message="Service resumed", service=service, **data)
        if self._watched is not None:
            self._watched.request_check(service)  # unknown names are ignored
        return pause

    def _arm(self, pause: Pause) -> None:
        timer = self._timers.pop(pause.service, None)
        if timer is not None:
            timer.cancel()
        if pause.until is None:
            return
        delay = max(0.0, pause.until - time.time())
        loop = asyncio.get_running_loop()
        self._timers[pause.service] = loop.call_later(delay, self._expire, pause)

    def _expire(self, pause: Pause) -> None:
        self._timers.pop(pause.service, None)
        if self._pauses.get(pause.service) is pause:
            self.resume(pause.service, by=WINDOW if pause.by == WINDOW else "timer")

    def restore(self) -> int:
        """Take back the pauses the last daemon left; those whose time passed
        meanwhile end now. Returns how many are in force."""
        for pause in self._journal.recorded_pauses():
            self._pauses[pause.service] = pause
            self._metrics.set_paused(pause.service, True)
            self._arm(pause)  # one already over ends at once, on the loop
        return len(self._pauses)

    # windows ----------------------------------------------------------------------------

    def apply_windows(self, windows: Sequence[MaintenanceWindow]) -> None:
        """Schedule the ``maintenance:`` windows (again, after a reload); one
        that is open now pauses its services for the rest of it."""
        for handle in self._window_timers.values():
            handle.cancel()
        self._window_timers.clear()
        now = time.time()
        for index, window in enumerate(windows):
            trigger = build_trigger(ScheduleConfig(cron=window.cron, timezone=window.timezone))
            start = _next_start(trigger, now - window.duration)
            if start is not None and start <= now:
                self._open_window(window, start)
            self._arm_window(index, window, trigger, now)

    def _arm_window(
        self, index: int, window: MaintenanceWindow, trigger: BaseTrigger, after: float
    ) -> None:
        start = _next_start(trigger, after)
        if start is None:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._open_window(window, start)
            self._arm_window(index, window, trigger, start + 1.0)

        self._window_timers[index] = loop.call_later(max(0.0, start - time.time()), fire)

    def _open_window(self, window: MaintenanceWindow, start: float) -> None:
        until = start + window.duration
        names = self.services() if window.services == "*" else window.services
        for name in names:
            current = self._pauses.get(name)
            if current is not None and (current.until is None or current.until >= until):
                continue  # paused for longer already
            self._start(Pause(name, until, window.reason, WINDOW, start))

    # notifications ----------------------------------------------------------------------

    def quiet(self, listener: Listener) -> Listener:
        """``listener`` without the events about a paused service, but its
        ``maintenance.*`` ones (for the notifiers)."""

        def deliver(event: Event) -> None:
            service = event.data.get("service")
            if (
                isinstance(service, str)
                and service in self._pauses
                and not event.name.startswith("maintenance.")
            ):
                return
            listener(event)

        return deliver

    def close(self) -> None:
        for handle in [*self._timers.values(), *self._window_timers.values()]:
            handle.cancel()
        self._timers.clear()
        self._window_timers.clear()


def _next_start(trigger: BaseTrigger, after: float) -> float | None:
    """The first time at or after ``after`` the trigger fires (a Unix time)."""
    fire = trigger.get_next_fire_time(None, datetime.fromtimestamp(after, UTC))
    return None if fire is None else fire.timestamp()
