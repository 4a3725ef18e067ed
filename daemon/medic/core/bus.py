"""The in-process event bus: every state change, recovery step and workflow run
is published here once, and fanned out to the log, SSE clients and webhooks."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict[str, Any]
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.name, "timestamp": self.timestamp, "data": self.data}


Listener = Callable[[Event], None]

PUBLISHED_EVENTS = frozenset(
    {
        "service.state",
        "service.unhealthy",
        "service.recovered",
        "service.stopped_by_operator",
        "recovery.started",
        "recovery.step",
        "recovery.succeeded",
        "recovery.failed",
        "recovery.finished",
        "recovery.held",
        "recovery.resumed",
        "recovery.approval_required",
        "recovery.notify",  # the built-in notify-only playbook's
        "circuit.opened",
        "circuit.closed",
        "circuit.probation",
        "workflow.started",
        "workflow.step",
        "workflow.succeeded",
        "workflow.failed",
        "workflow.cancelled",
        "workflow.skipped",
        "workflow.resumed",
        "config.reloaded",
        "config.reload_failed",
        "discovery.error",
        "discovery.changed",
        "maintenance.started",
        "maintenance.ended",
        "sidecar.followed",
        "sidecar.follow_failed",
    }
)
"""Every event name the daemon publishes itself; ``notify`` steps add their own
``event:`` names. Webhook ``events:`` are checked against both."""

HISTORY = 1000
"""How many recent events a bus keeps for clients that reconnect (SSE ``Last-Event-ID``)."""


@dataclass(frozen=True)
class Resumption:
    """A subscription opened after event ``after``: ``backlog`` (kept events
    with a greater id, oldest first) comes before what ``queue`` delivers."""

    queue: asyncio.Queue[Event]
    backlog: list[Event]
    missed: bool
    """Some events after ``after`` are no longer kept (or ``after`` comes from
    another run of the daemon, whose ids started again at 1)."""


class EventBus:
    """Synchronous fan-out; listeners must not block (queue work, don't do it)."""

    def __init__(self, history: int = HISTORY) -> None:
        self._ids = itertools.count(1)
        self._last_id = 0
        self._listeners: list[Listener] = []
        self._queues: set[asyncio.Queue[Event]] = set()
        self._history: deque[Event] = deque(maxlen=history)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, name: str, **data: Any) -> Event:
        event = Event(next(self._ids), name, data)
        self._last_id = event.id
        self._history.append(event)
        for listener in self._listeners:
            listener(event)
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()  # a slow reader loses its oldest event, never blocks us
            queue.put_nowait(event)
        return event

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._queues.add(queue)
        return queue

    def resume(self, after: int, maxsize: int = 1000) -> Resumption:
        """Subscribe, and take the kept events with an id greater than ``after``.

        Both happen without yielding to the loop, so an event is either in the
        backlog or in the queue: none twice, none lost at the seam.
        """
        queue = self.subscribe(maxsize)
        if after > self._last_id:  # an id of an earlier run: ours started again at 1
            return Resumption(queue, list(self._history), missed=True)
        backlog = [event for event in self._history if event.id > after]
        oldest = backlog[0].id if backlog else self._last_id + 1
        return Resumption(queue, backlog, missed=oldest > after + 1)

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.discard(queue)
