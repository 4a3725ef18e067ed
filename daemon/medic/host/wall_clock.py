"""Keeps APScheduler's interval jobs on time when the wall clock jumps.

medic's own timers run on the monotonic clock (``medic.core.clock``), but
APScheduler, which runs the workflows' schedules and the hourly prune, keeps
each job's next run as a wall-clock time. A clock set an hour back would hold
every interval job for an extra hour; an hour forward would make them all
fall due at once (and be skipped as misfired). ``WallClockWatch`` compares
the wall clock with the monotonic one every second; when they drift apart by
more than ``JUMP_S``, it logs the jump and moves every interval job's next
run by the same amount, so the wait left is what it was. Cron and ``at``
schedules name wall-clock times and are left alone.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from medic.core.logging import get_logger

log = get_logger("Clock")

JUMP_S = 2.0
"""A drift between the two clocks larger than this is a jump, not NTP slewing."""
POLL_S = 1.0


def _offset() -> float:
    return time.time() - time.monotonic()


class WallClockWatch:
    def __init__(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        self._offset = _offset()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._offset = _offset()
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(POLL_S, self._poll)

    def _poll(self) -> None:
        offset = _offset()
        jump = offset - self._offset
        self._offset = offset
        if abs(jump) > JUMP_S:
            moved = self.shift_interval_jobs(jump)
            log.warning(
                "clock.jumped",
                message="The wall clock jumped; interval schedules keep their wait",
                seconds=round(jump, 3),
                jobs_moved=moved,
            )
        self._arm()

    def shift_interval_jobs(self, seconds: float) -> int:
        """Move the next run of every interval job by ``seconds``; how many moved."""
        if not self._scheduler.running:
            return 0
        moved = 0
        for job in self._scheduler.get_jobs():
            when = getattr(job, "next_run_time", None)
            if when is None or not isinstance(job.trigger, IntervalTrigger):
                continue  # paused, or a cron/at schedule: wall-clock times by nature
            job.modify(next_run_time=when + timedelta(seconds=seconds))
            moved += 1
        return moved
