"""When each service's periodic check is due.

Checks run on APScheduler, one job per distinct interval rather than one per
service: at each tick of its interval's job a service's check starts at the
service's own phase within the interval (a stable offset from a CRC of its
name), through a timer on the event loop. A thousand services at 1 s are then
one APScheduler job a second and a thousand loop timers, instead of a thousand
jobs for APScheduler to look up, reschedule, submit and wrap in a task each
(about a seventh of the daemon's CPU in ``bench/scale.py``), and they are not
all due in the same instant. Phases are rounded to 20 ms slots: the services
of one slot start together, so the loop wakes up once for a handful of checks
(and their answers tend to come back in one poll) rather than once for each.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.base import BaseScheduler

JOB_PREFIX = "checks:"
SLOT_S = 0.02
"""Phases are multiples of this: the checks of one slot start in one loop turn."""

StartCheck = Callable[[str, float], None]
"""Starts the named service's check; the float is when it was due (epoch seconds)."""


def check_phase(name: str, interval_s: float) -> float:
    """A stable offset in [0, interval) for the service's periodic checks."""
    return (zlib.crc32(name.encode()) % 10_000) / 10_000 * interval_s


def slot_of(phase: float) -> float:
    """The start of the 20 ms slot the phase falls in."""
    return math.floor(phase / SLOT_S) * SLOT_S


class PeriodicChecks:
    def __init__(self, scheduler: BaseScheduler, start_check: StartCheck) -> None:
        self._scheduler = scheduler
        self._start_check = start_check
        self._groups: dict[float, dict[float, list[str]]] = {}
        """interval -> slot -> the services starting in it."""
        self._placed: dict[str, tuple[float, float]] = {}
        """service -> (interval, slot)."""
        self._tick_due: dict[str, float] = {}
        """job id -> when its submitted tick was due, until the tick runs."""
        self._timers: dict[tuple[float, float], asyncio.TimerHandle] = {}
        self._listening = False
        self._stopped = False

    def add(self, name: str, interval_s: float) -> None:
        """Check ``name`` every ``interval_s`` from the next tick of its interval on."""
        self.remove(name)
        if not self._listening:
            self._scheduler.add_listener(self._note_due, EVENT_JOB_SUBMITTED)
            self._listening = True
        group = self._groups.get(interval_s)
        if group is None:
            group = self._groups[interval_s] = {}
            self._add_job(interval_s)
        slot = slot_of(check_phase(name, interval_s))
        group.setdefault(slot, []).append(name)
        self._placed[name] = (interval_s, slot)

    def remove(self, name: str) -> None:
        placed = self._placed.pop(name, None)
        if placed is None:
            return
        interval_s, slot = placed
        group = self._groups[interval_s]
        group[slot].remove(name)
        if group[slot]:
            return
        del group[slot]
        timer = self._timers.pop(placed, None)
        if timer is not None:
            timer.cancel()
        if not group:
            del self._groups[interval_s]
            job = self._scheduler.get_job(_job_id(interval_s))
            if job is not None:
                job.remove()

    def stop(self) -> None:
        """Start no more checks (the scheduler's ticks are paused by its owner)."""
        self._stopped = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _add_job(self, interval_s: float) -> None:
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=interval_s,
            start_date=datetime.now().astimezone(),
            args=[interval_s],
            id=_job_id(interval_s),
            name=f"checks every {interval_s:g}s",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval_s)),
        )

    def _note_due(self, event: JobSubmissionEvent) -> None:
        # APScheduler hands the job function no due time; this event carries it
        # and is dispatched before the job's coroutine first runs.
        job_id: str = event.job_id
        if job_id.startswith(JOB_PREFIX):
            self._tick_due[job_id] = event.scheduled_run_times[-1].timestamp()

    async def _tick(self, interval_s: float) -> None:
        """Arm one timer per slot of the group for this round of the interval."""
        if self._stopped:
            return
        due = self._tick_due.pop(_job_id(interval_s), None)
        wall_now = time.time()
        if due is None:
            due = wall_now
        loop = asyncio.get_running_loop()
        loop_offset = loop.time() - wall_now
        for slot in self._groups.get(interval_s, {}):
            key = (interval_s, slot)
            late = self._timers.get(key)
            if late is not None:  # the loop was blocked for a whole round: one check will do
                late.cancel()
            when = due + slot
            self._timers[key] = loop.call_at(when + loop_offset, self._fire, key, when)

    def _fire(self, key: tuple[float, float], due: float) -> None:
        self._timers.pop(key, None)
        interval_s, slot = key
        for name in list(self._groups.get(interval_s, {}).get(slot, ())):
            self._start_check(name, due)


def _job_id(interval_s: float) -> str:
    short = f"{interval_s:g}"
    # Two intervals must never share a job: ':g' keeps 6 digits, repr all of them.
    return f"{JOB_PREFIX}{short if float(short) == interval_s else repr(interval_s)}s"
