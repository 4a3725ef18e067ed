"""When each service's periodic check is due.

Checks run on the event loop's own clock (monotonic: a wall clock that jumps
an hour back or forward changes nothing), one tick per distinct interval
rather than one timer per service: at each tick of its interval a service's
check starts at the service's own phase within the interval (a stable offset
from a CRC of its name), through a timer on the event loop. A thousand
services at 1 s are then one tick a second and a thousand loop timers, and
they are not all due in the same instant. Phases are rounded to 20 ms slots:
the services of one slot start together, so the loop wakes up once for a
handful of checks (and their answers tend to come back in one poll) rather
than once for each.

A loop that was blocked past a whole round runs that round once, late, and
goes on from the next due time (as a coalescing scheduler would).
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Callable

SLOT_S = 0.02
"""Phases are multiples of this: the checks of one slot start in one loop turn."""

StartCheck = Callable[[str, float], None]
"""Starts the named service's check; the float is when it was due (the loop's
monotonic ``time()``)."""


def check_phase(name: str, interval_s: float) -> float:
    """A stable offset in [0, interval) for the service's periodic checks."""
    return (zlib.crc32(name.encode()) % 10_000) / 10_000 * interval_s


def slot_of(phase: float) -> float:
    """The start of the 20 ms slot the phase falls in."""
    return math.floor(phase / SLOT_S) * SLOT_S


class PeriodicChecks:
    def __init__(self, start_check: StartCheck) -> None:
        self._start_check = start_check
        self._groups: dict[float, dict[float, list[str]]] = {}
        """interval -> slot -> the services starting in it."""
        self._placed: dict[str, tuple[float, float]] = {}
        """service -> (interval, slot)."""
        self._ticks: dict[float, asyncio.TimerHandle] = {}
        """interval -> the timer of its next tick."""
        self._timers: dict[tuple[float, float], asyncio.TimerHandle] = {}
        self._stopped = False

    @property
    def intervals(self) -> list[float]:
        """The intervals that have a tick of their own, in the order they were added."""
        return list(self._ticks)

    def add(self, name: str, interval_s: float) -> None:
        """Check ``name`` every ``interval_s`` from the next tick of its interval on."""
        self.remove(name)
        group = self._groups.get(interval_s)
        if group is None:
            group = self._groups[interval_s] = {}
            if not self._stopped:
                loop = asyncio.get_running_loop()
                self._arm_tick(loop, interval_s, loop.time() + interval_s)
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
            tick = self._ticks.pop(interval_s, None)
            if tick is not None:
                tick.cancel()

    def stop(self) -> None:
        """Start no more checks."""
        self._stopped = True
        for handle in [*self._timers.values(), *self._ticks.values()]:
            handle.cancel()
        self._timers.clear()
        self._ticks.clear()

    def _arm_tick(self, loop: asyncio.AbstractEventLoop, interval_s: float, due: float) -> None:
        self._ticks[interval_s] = loop.call_at(due, self._tick, interval_s, due)

    def _tick(self, interval_s: float, due: float) -> None:
        """Arm one timer per slot of the group for this round of the interval."""
        if self._stopped or interval_s not in self._groups:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for slot in self._groups[interval_s]:
            key = (interval_s, slot)
            late = self._timers.get(key)
            if late is not None:  # the loop was blocked for a whole round: one check will do
                late.cancel()
            when = due + slot
            self._timers[key] = loop.call_at(when, self._fire, key, when)
        rounds = max(1, math.ceil((now - due) / interval_s))
        self._arm_tick(loop, interval_s, due + rounds * interval_s)

    def _fire(self, key: tuple[float, float], due: float) -> None:
        self._timers.pop(key, None)
        interval_s, slot = key
        for name in list(self._groups.get(interval_s, {}).get(slot, ())):
            self._start_check(name, due)
