"""What the store records from the event bus: the watch side publishes each
status change and each deliberate stop, and the store, subscribed before
anyone else, writes it before any other listener reports it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medic.core.bus import Event

if TYPE_CHECKING:
    from medic.store import Store


class BusRecorder:
    """An ``EventBus`` listener; add it first, so the history is written before
    the webhooks and the event stream tell anyone."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.name == "service.state":
            self._store.record_transition(
                data["service"], data["old"], data["new"], data["failure_type"], data["detail"]
            )
        elif event.name == "service.stopped_by_operator":
            self._store.audit("service.stopped_by_operator", data["service"], how=data["detail"])
