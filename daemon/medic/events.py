"""The in-process event bus: every state change, recovery step and workflow run
is published here once, and fanned out to the log, SSE clients and webhooks."""

from __future__ import annotations

import asyncio
import itertools
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


class EventBus:
    """Synchronous fan-out; listeners must not block (queue work, don't do it)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._listeners: list[Listener] = []
        self._queues: set[asyncio.Queue[Event]] = set()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, name: str, **data: Any) -> Event:
        event = Event(next(self._ids), name, data)
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

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.discard(queue)
