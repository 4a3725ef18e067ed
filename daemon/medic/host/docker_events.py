"""Listens to the Docker engine's container events so a crash is noticed in
milliseconds rather than at the next poll. Reconnects when the engine goes
away and comes back; the daemon never depends on it being up."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from medic.core.logging import get_logger
from medic.host.docker import DockerEvent, DockerGateway, DockerUnavailable, EventStream

log = get_logger("DockerEvents")

_RETRY_INITIAL_S = 0.5
_RETRY_MAX_S = 10.0


class DockerEventListener:
    def __init__(
        self,
        gateway: DockerGateway,
        on_event: Callable[[DockerEvent], None],
        on_connected: Callable[[], None],
    ) -> None:
        self._gateway = gateway
        self._on_event = on_event
        self._on_connected = on_connected
        self._stream: EventStream | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        # Events from here on are asked for on every (re)connection: the engine
        # replays what happened before the stream was up or while it was down.
        self._replay_from_ns = time.time_ns()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="docker-events")

    async def stop(self) -> None:
        if self._stream is not None:
            self._stream.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = _RETRY_INITIAL_S
        warned = False
        while True:
            try:
                await self._consume_on_thread(loop)
                delay = _RETRY_INITIAL_S
            except DockerUnavailable as exc:
                if not warned:
                    log.warning(
                        "docker.unreachable",
                        message="Docker engine unreachable; will keep retrying",
                        error=str(exc),
                    )
                    warned = True
            except Exception as exc:  # noqa: BLE001 - the listener must outlive any engine error
                log.error(
                    "docker.stream_failed",
                    message="Docker event stream failed",
                    error=f"{type(exc).__name__}: {exc}",
                )
            else:
                warned = False
            self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)

    async def _consume_on_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        # A daemon thread, not the loop's executor: a stream blocked in a read
        # must never hold up interpreter exit.
        done: asyncio.Future[None] = loop.create_future()

        def target() -> None:
            try:
                self._consume(loop)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                loop.call_soon_threadsafe(_settle, done, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, None)

        threading.Thread(target=target, name="medic-docker-events", daemon=True).start()
        try:
            await done
        finally:
            if self._stream is not None:
                self._stream.close()

    def _consume(self, loop: asyncio.AbstractEventLoop) -> None:
        """Runs on a worker thread: read events, hand each to the loop."""
        stream = self._gateway.event_stream(since_ns=self._replay_from_ns)
        self._stream = stream
        iterator = iter(stream)
        self.connected = True
        loop.call_soon_threadsafe(self._connected)
        for event in iterator:
            if event.time_ns:
                self._replay_from_ns = max(self._replay_from_ns, event.time_ns + 1)
            loop.call_soon_threadsafe(self._on_event, event)

    def _connected(self) -> None:
        log.info("docker.connected", message="Listening to Docker events")
        self._on_connected()


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
