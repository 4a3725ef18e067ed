"""Pacing of workflow work: how many runs go at once and in which order
(``PriorityGate``), and how long a failed step waits before it is retried
(``retry_delay``)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from medic.config.actions import StepRetry

PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
_JITTER_FRACTION = 0.1


def retry_delay(retry: StepRetry, retry_number: int, rng: random.Random) -> float:
    """Seconds before retry ``retry_number`` (1 = the first retry), at most ``max_delay``."""
    if retry.backoff == "exponential":
        delay = retry.initial_delay * 2.0 ** (retry_number - 1)
    elif retry.backoff == "linear":
        delay = retry.initial_delay * retry_number
    else:
        delay = retry.initial_delay
    if retry.jitter:
        delay *= rng.uniform(1.0 - _JITTER_FRACTION, 1.0 + _JITTER_FRACTION)
    return min(delay, retry.max_delay)


class PriorityGate:
    """Lets at most ``limit`` holders in; waiters enter by priority, then arrival."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the gate needs a limit of at least 1")
        self._limit = limit
        self._active = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def resize(self, limit: int) -> None:
        """Change the limit; holders over a lowered limit finish, waiters enter a raised one."""
        if limit < 1:
            raise ValueError("the gate needs a limit of at least 1")
        self._limit = limit
        self._admit_waiters()

    @asynccontextmanager
    async def slot(self, priority: str) -> AsyncIterator[None]:
        await self._acquire(PRIORITY_RANK[priority])
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self._active < self._limit and not self._waiting:
            self._active += 1
            return
        entry = (rank, next(self._arrivals), asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, entry)
        try:
            await entry[2]
        except asyncio.CancelledError:
            if entry[2].done() and not entry[2].cancelled():
                self._release()  # admitted just as we were cancelled: pass the slot on
            else:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            raise

    def _release(self) -> None:
        self._active -= 1
        self._admit_waiters()

    def _admit_waiters(self) -> None:
        while self._waiting and self._active < self._limit:
            _, _, future = heapq.heappop(self._waiting)
            self._active += 1
            future.set_result(None)
