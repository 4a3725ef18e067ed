"""Queued delivery with retries, shared by the notifiers (webhooks, Apprise).

Each target has its own bounded queue and one worker task, so a slow or dead
target never blocks a check, a recovery or another target: the bus listener
only enqueues, and when a queue is full its oldest item is dropped (and
counted). A delivery the notifier judges ``retry`` is tried again after an
exponential backoff with jitter, up to the target's ``max_retries``.

At shutdown, what is queued gets up to 5 s (one more try each, without
waiting out backoffs); the rest is dropped.

Outcomes counted per target: ``delivered``, ``retried`` (one per retry),
``failed`` (retries spent), ``rejected`` (refused, not retried) and
``dropped`` (queue full, target removed, or still queued at the stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from medic.core.logging import get_logger

log = get_logger("Notifications")

OUTCOMES = ("delivered", "retried", "failed", "rejected", "dropped")
_LOG_EVERY_DROP = 100
DEFAULT_FLUSH_S = 5.0
"""How long a stopping daemon waits for queued deliveries."""

Verdict = Literal["delivered", "rejected", "retry", "failed"]


class BackoffLike(Protocol):
    @property
    def initial(self) -> float: ...
    @property
    def factor(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def jitter(self) -> float: ...


class TargetConfig(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def backoff(self) -> BackoffLike: ...


C = TypeVar("C", bound=TargetConfig)
T = TypeVar("T")


@dataclass(frozen=True)
class Attempt:
    verdict: Verdict
    detail: str
    retry_after: float | None = None


Send = Callable[[int], Awaitable[Attempt]]
"""One try of one delivery; its argument is the attempt number (1-based)."""


def event_matches(patterns: Sequence[str], name: str) -> bool:
    """``*`` is every event, ``recovery.*`` every event under ``recovery.``, else exact."""
    for pattern in patterns:
        if pattern in ("*", name):
            return True
        if pattern.endswith(".*") and name.startswith(pattern[:-1]):
            return True
    return False


def retry_delay(config: TargetConfig, retry: int, retry_after: float | None = None) -> float:
    """Seconds before retry number ``retry`` (1-based); honours a receiver's Retry-After."""
    b = config.backoff
    delay = min(b.max, b.initial * b.factor ** max(0, retry - 1))
    delay += random.uniform(-delay * b.jitter, delay * b.jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, b.max))
    return max(0.0, delay)


@dataclass
class Lane(Generic[C, T]):
    """One target: its config, its queue and its worker."""

    config: C
    queue: asyncio.Queue[T] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    in_flight: T | None = None
    dropped: int = 0


class Deliveries(Generic[C, T]):
    """Targets by name, each with its queue, worker, retries and backoff.

    A notifier says how one item is sent (``sender``), how it is named in the
    log (``describe``) and counts outcomes (``count``)."""

    notifier = "notifier"

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.lanes: dict[str, Lane[C, T]] = {}
        self._running = False
        self.closed = False
        self._stopping = asyncio.Event()

    # what a notifier says ------------------------------------------------------------

    def sender(self, lane: Lane[C, T], item: T) -> Send:
        raise NotImplementedError

    def describe(self, item: T) -> str:
        return type(item).__name__

    def count(self, name: str, outcome: str) -> None:
        raise NotImplementedError

    # queues --------------------------------------------------------------------------

    def enqueue(self, lane: Lane[C, T], item: T) -> None:
        """Queue ``item``; a full queue drops its oldest first; never blocks."""
        while lane.queue.qsize() >= self.queue_size:
            oldest = lane.queue.get_nowait()
            lane.queue.task_done()
            self.count(lane.config.name, "dropped")
            lane.dropped += 1
            if lane.dropped % _LOG_EVERY_DROP == 1:  # a dead target must not flood the log
                log.warning(
                    "notify.queue_full",
                    message="Notification queue full: dropping the oldest",
                    notifier=self.notifier,
                    target=lane.config.name,
                    dropped_item=self.describe(oldest),
                    dropped_so_far=lane.dropped,
                    queue_size=self.queue_size,
                )
        lane.queue.put_nowait(item)

    def start(self) -> None:
        """Start one worker per target on the running loop."""
        self._running = True
        for lane in self.lanes.values():
            self._start_worker(lane)

    def apply_targets(self, configs: Sequence[C], queue_size: int) -> dict[str, list[str]]:
        """Take a reloaded config: queued items of kept targets stay queued."""
        self.queue_size = queue_size
        new = {config.name: config for config in configs}
        removed = sorted(set(self.lanes) - set(new))
        for name in removed:
            self.remove(name)
        added, changed = [], []
        for name, config in new.items():
            lane = self.lanes.get(name)
            if lane is None:
                self._start_worker(self.add(config))
                added.append(name)
            elif lane.config != config:
                lane.config = config  # the worker reads it for each delivery
                changed.append(name)
        return {"added": added, "removed": removed, "changed": changed}

    async def stop(self, flush_s: float = DEFAULT_FLUSH_S) -> None:
        """Take no more items; deliver what is queued for up to ``flush_s``, drop the rest."""
        self.closed = True
        self._stopping.set()
        lanes = list(self.lanes.values())
        if self._running and any(lane.queue.qsize() or lane.in_flight for lane in lanes):
            joined = asyncio.gather(*(lane.queue.join() for lane in lanes))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(joined, flush_s)
        for name in list(self.lanes):
            self.remove(name)
        tasks = [lane.task for lane in lanes if lane.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running = False

    def pending(self) -> dict[str, int]:
        """Items waiting or being delivered, per target."""
        return {
            name: lane.queue.qsize() + (lane.in_flight is not None)
            for name, lane in self.lanes.items()
        }

    def add(self, config: C) -> Lane[C, T]:
        lane: Lane[C, T] = Lane(config)
        self.lanes[config.name] = lane
        return lane

    def _start_worker(self, lane: Lane[C, T]) -> None:
        if self._running and lane.task is None:
            name = f"{self.notifier}:{lane.config.name}"
            lane.task = asyncio.create_task(self._work(lane), name=name)

    def remove(self, name: str) -> None:
        lane = self.lanes.pop(name)
        lost = lane.queue.qsize() + (lane.in_flight is not None)
        if lane.task is not None:
            lane.task.cancel()
        for _ in range(lost):
            self.count(name, "dropped")
        if lost:
            log.warning(
                "notify.dropped",
                message="Notifications not delivered",
                notifier=self.notifier,
                target=name,
                dropped=lost,
            )

    # delivering ----------------------------------------------------------------------

    async def _work(self, lane: Lane[C, T]) -> None:
        while True:
            item = await lane.queue.get()
            lane.in_flight = item
            try:
                await self._deliver(lane, item)
            finally:
                lane.in_flight = None
                lane.queue.task_done()

    async def _deliver(self, lane: Lane[C, T], item: T) -> None:
        send = self.sender(lane, item)
        retry = 0
        while True:
            config = lane.config
            result = await send(retry + 1)
            if result.verdict != "retry" or retry >= config.max_retries or self.closed:
                break
            retry += 1
            self.count(config.name, "retried")
            delay = retry_delay(config, retry, result.retry_after)
            log.info(
                "notify.retrying",
                message="Notification will be retried",
                notifier=self.notifier,
                target=config.name,
                item=self.describe(item),
                detail=result.detail,
                retry=retry,
                delay_s=round(delay, 3),
            )
            await self._backoff(delay)
        self._settle(lane, item, result, retry + 1)

    async def _backoff(self, delay_s: float) -> None:
        # A stopping daemon does not wait out backoffs: whatever is queued gets
        # one more try each within the flush time, and the rest is dropped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_s)

    def _settle(self, lane: Lane[C, T], item: T, result: Attempt, attempts: int) -> None:
        outcome = "failed" if result.verdict == "retry" else result.verdict
        self.count(lane.config.name, outcome)
        context = dict(
            notifier=self.notifier,
            target=lane.config.name,
            item=self.describe(item),
            detail=result.detail,
            attempts=attempts,
        )
        if outcome == "delivered":
            log.debug("notify.delivered", message="Notification delivered", **context)
        elif outcome == "rejected":
            log.error("notify.rejected", message="Notification refused; not retried", **context)
        else:
            log.error("notify.failed", message="Notification not delivered", **context)


def test_row(name: str, kind: str, url: str, verdict: str, detail: str) -> dict[str, str]:
    """One row of ``notify-test``'s answer. A test is tried once: a verdict of
    ``retry`` is reported ``failed``."""
    outcome = "failed" if verdict == "retry" else verdict
    return {"name": name, "kind": kind, "url": url, "outcome": outcome, "detail": detail}


__all__ = [
    "DEFAULT_FLUSH_S",
    "OUTCOMES",
    "Attempt",
    "Deliveries",
    "Lane",
    "Send",
    "TargetConfig",
    "Verdict",
    "event_matches",
    "retry_delay",
    "test_row",
]
