"""medic in the test's own event loop: its shared clients, a whole orchestrator,
and the events it publishes on its bus.

Fixtures
    resources     function  Resources: the daemon's shared clients, closed after
    orchestrator  function  OrchestratorFactory:
                            ``await orchestrator(config_yaml, playbooks=...)`` -> a started
                            ControlPlaneOrchestrator, stopped after the test

Helpers
    BusWatch      what a bus publishes from the moment it is opened (or after a
                  given event id): ``await events.next("recovery.succeeded", service="web")``
                  and ``await events.none("recovery.started", within=3.0, since=event)``
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from medic.core.bus import Event, EventBus
from medic.host.resources import Resources
from medic.orchestrator import ControlPlaneOrchestrator
from tests.helpers import write_playbooks

EVENT_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0


@pytest.fixture
async def resources(tmp_path: Path) -> AsyncIterator[Resources]:
    """The daemon's shared clients (HTTP session, Docker, pools, processes), closed after."""
    res = Resources(state_dir=tmp_path / "state")
    yield res
    await res.close()


class OrchestratorFactory:
    """``await orchestrator(config_yaml, ...)`` builds a ControlPlaneOrchestrator
    the way ``medic run`` does (``from_config`` on a file) and starts it.

    Files live in the test's tmp dir: ``config.yaml`` (``.config_path``),
    ``playbooks/NAME.yaml`` (``.playbooks_dir``; the config names it as
    ``playbooks_dir: playbooks``, relative to itself) and ``state/``
    (``.state_dir``). Every orchestrator it started is stopped after the test
    (``stop`` does nothing for one the test stopped itself).
    """

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.config_path = tmp_path / "config.yaml"
        self.playbooks_dir = tmp_path / "playbooks"
        self.state_dir = tmp_path / "state"
        self.started: list[ControlPlaneOrchestrator] = []

    def write_playbooks(self, playbooks: Mapping[str, str]) -> Path:
        return write_playbooks(self.playbooks_dir, playbooks)

    async def __call__(
        self,
        config_yaml: str,
        *,
        playbooks: Mapping[str, str] | None = None,
        dry_run: bool | None = None,
    ) -> ControlPlaneOrchestrator:
        """Write the config (and playbooks), build the orchestrator, start it."""
        self.config_path.write_text(config_yaml)
        if playbooks:
            self.write_playbooks(playbooks)
        orch = ControlPlaneOrchestrator.from_config(
            self.config_path, state_dir=self.state_dir, dry_run=dry_run
        )
        await orch.start()
        self.started.append(orch)
        return orch

    async def stop_all(self) -> None:
        for orch in reversed(self.started):
            await orch.stop(grace_s=STOP_GRACE_S)
        self.started.clear()


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[OrchestratorFactory]:
    factory = OrchestratorFactory(tmp_path)
    yield factory
    await factory.stop_all()


class BusWatch:
    """The events a bus publishes, in order, from the moment the watch is opened.

    ``BusWatch(bus)`` sees what is published from now on; ``BusWatch(bus,
    after=0)`` also what the bus still keeps from before (since the start, for
    a young bus): subscribing and taking the backlog happen at once, so no
    event falls between them. Open it before the action whose events you want.
    Every event taken from it is in ``.seen``, matching or not.
    """

    def __init__(self, bus: EventBus, *, after: int | None = None) -> None:
        self._bus = bus
        self._pending: deque[Event] = deque()
        if after is None:
            self._queue = bus.subscribe()
        else:
            resumed = bus.resume(after)
            assert not resumed.missed, f"the bus no longer keeps every event after {after}"
            self._queue = resumed.queue
            self._pending.extend(resumed.backlog)
        self.seen: list[Event] = []

    def close(self) -> None:
        self._bus.unsubscribe(self._queue)

    async def next(
        self,
        name: str,
        *,
        timeout: float = EVENT_TIMEOUT_S,  # noqa: ASYNC109 - a deadline per event, not a cancel
        **fields: Any,
    ) -> Event:
        """The next event called ``name`` whose data has all of ``fields``;
        fails after ``timeout`` seconds, naming what did arrive."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            event = await self._take(deadline)
            if event is None:
                raise AssertionError(
                    f"no {name} event with {fields} within {timeout:g}s;"
                    f" seen: {describe(self.seen)}"
                )
            if matches(event, name, fields):
                return event

    async def none(
        self, name: str, *, within: float, since: Event | None = None, **fields: Any
    ) -> None:
        """Fail if an event called ``name`` with ``fields`` is published within
        ``within`` seconds after ``since`` (after now, without one); returns
        once that much time has passed since then."""
        start = _published(since) if since is not None else datetime.now(UTC)
        end = start + timedelta(seconds=within)
        remaining = (end - datetime.now(UTC)).total_seconds()
        deadline = asyncio.get_running_loop().time() + max(0.0, remaining)
        while (event := await self._take(deadline)) is not None:
            if matches(event, name, fields) and start <= _published(event) <= end:
                raise AssertionError(
                    f"unexpected {name} event {event.data} within {within:g}s;"
                    f" seen: {describe(self.seen)}"
                )

    def count(self, name: str, **fields: Any) -> int:
        """How many of the events taken so far are called ``name`` with ``fields``."""
        return sum(matches(event, name, fields) for event in self.seen)

    async def _take(self, deadline: float) -> Event | None:
        """The next event, or None once the loop's clock passes ``deadline``."""
        if self._pending:
            event = self._pending.popleft()
        else:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            try:
                event = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                return None
        self.seen.append(event)
        return event


def matches(event: Event, name: str, fields: Mapping[str, Any]) -> bool:
    return event.name == name and all(event.data.get(k) == v for k, v in fields.items())


def describe(events: list[Event]) -> str:
    return ", ".join(f"{e.name}({e.data.get('service')})" for e in events[-30:]) or "nothing"


def _published(event: Event) -> datetime:
    """When the event was published (its timestamp is wall-clock UTC)."""
    return datetime.fromisoformat(event.timestamp)
