"""When each service's periodic check is due.

Checks run on APScheduler, one job per distinct interval rather than one per
service: at each tick of its interval's job a service's check starts at the
service's own phase within the interval (a stable offset from a CRC of its
name), through a timer on the event loop. A thousand services at 1 s are then
one APScheduler job a second and a thousand loop timers, instead of a thousand
jobs for APScheduler to look up, reschedule, submit and wrap in a task each
(about a seventh of the daemon's CPU in ``bench/scale.py``), and they are not
all due in the same instant.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.base import BaseScheduler

JOB_PREFIX = "checks:"

StartCheck = Callable[[str, float], None]
"""Starts the named service's check; the float is when it was due (epoch seconds)."""


def check_phase(name: str, interval_s: float) -> float:
    """A stable offset in [0, interval) for the service's periodic checks."""
    return (zlib.crc32(name.encode()) % 10_000) / 10_000 * interval_s


class PeriodicChecks:
    def __init__(self, scheduler: BaseScheduler, start_check: StartCheck) -> None:
        self._scheduler = scheduler
        self._start_check = start_check
        self._groups: dict[float, dict[str, float]] = {}
        """interval -> service -> phase."""
        self._tick_due: dict[str, float] = {}
        """job id -> when its submitted tick was due, until the tick runs."""
        self._timers: dict[str, asyncio.TimerHandle] = {}
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
        group[name] = check_phase(name, interval_s)

    def remove(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        for interval_s, group in self._groups.items():
            if group.pop(name, None) is None:
                continue
            if not group:
                del self._groups[interval_s]
                job = self._scheduler.get_job(_job_id(interval_s))
                if job is not None:
                    job.remove()
            return

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
        """Arm one timer per service of the group, at the service's phase in this round."""
        if self._stopped:
            return
        group = self._groups.get(interval_s, {})
        due = self._tick_due.pop(_job_id(interval_s), None)
        wall_now = time.time()
        if due is None:
            due = wall_now
        loop = asyncio.get_running_loop()
        loop_offset = loop.time() - wall_now
        timers = self._timers
        for name, phase in group.items():
            late = timers.get(name)
            if late is not None:  # the loop was blocked for a whole round: one check will do
                late.cancel()
            when = due + phase
            timers[name] = loop.call_at(when + loop_offset, self._fire, name, when)

    def _fire(self, name: str, due: float) -> None:
        self._timers.pop(name, None)
        self._start_check(name, due)


def _job_id(interval_s: float) -> str:
    return f"{JOB_PREFIX}{interval_s:g}s"
