"""The event stream: every event on the bus as server-sent events, the kept
ones a reconnecting client missed first; a comment line keeps the stream
alive, and it ends as soon as the API shuts down. At most
``api.max_event_clients`` streams are open at once (one more is answered
503), and a client that stops reading is dropped after
``api.event_client_write_timeout`` (30 s)."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from medic.api.errors import ApiError
from medic.api.state import CLOSING, SETTINGS, orchestrator
from medic.core.bus import Event, EventBus, Resumption
from medic.core.logging import get_logger
from medic.core.redact import SecretValues

log = get_logger("medic.api")

SSE_RETRY_MS = 2000
"""Sent once as ``retry:``: how soon a client's EventSource reconnects."""

KEEPALIVE_S = 15
"""A comment line goes out after this many seconds without an event."""

LIVENESS_TICK_S = 1.0
"""How often a quiet stream looks whether its client is still there."""

_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/events``: server-sent events. A client that reconnects with
    ``Last-Event-ID: N`` (or ``?last_event_id=N``) first gets the kept events
    after N (the bus keeps the last 1,000), then live ones."""
    bus = orchestrator(request).bus
    after = _last_event_id(request)
    settings = request.app[SETTINGS]
    cap = settings.config.max_event_clients
    if settings.event_clients >= cap:
        raise ApiError(
            503,
            "TOO_MANY_EVENT_CLIENTS",
            f"already {cap} event streams open (api.max_event_clients)",
        )
    settings.event_clients += 1
    try:
        return await _stream(request, bus, after)
    finally:
        settings.event_clients -= 1


async def _stream(request: web.Request, bus: EventBus, after: int | None) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    timeout_s = settings.config.event_client_write_timeout
    response = _TimedResponse(timeout_s, settings.secrets, headers=_HEADERS)
    await response.prepare(request)
    subscription = _subscribe(bus, after)
    try:
        seam = await _send_kept(response, after, subscription)
        await _send_live(request, response, subscription.queue, seam)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    except TimeoutError:
        log.warning(
            "api.event_client_dropped",
            message="An event stream client took nothing for too long; dropped",
            peer=request.remote,
            write_timeout_s=timeout_s,
        )
        if request.transport is not None:
            request.transport.abort()  # a reader that stopped reading: let it go
    finally:
        bus.unsubscribe(subscription.queue)
    return response


class _TimedResponse(web.StreamResponse):
    """A stream whose every write gives up after ``timeout_s``: a client that
    takes no bytes for so long is dropped and its slot freed. (It never holds up
    the bus either way: the bus drops a full queue's oldest.) Known secret
    values are masked in what it sends."""

    def __init__(self, timeout_s: float, secrets: SecretValues, *, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._timeout_s = timeout_s
        self._secrets = secrets

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        masked = self._secrets.redact(bytes(data).decode("utf-8", "replace")).encode()
        await asyncio.wait_for(super().write(masked), self._timeout_s)


def _last_event_id(request: web.Request) -> int | None:
    """The id a reconnecting client saw last: the ``Last-Event-ID`` header
    (what EventSource sends) or ``?last_event_id=`` (for curl)."""
    raw = request.headers.get("Last-Event-ID")
    source = "the Last-Event-ID header"
    if raw is None or not raw.strip():
        raw = request.query.get("last_event_id")
        source = "last_event_id"
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "INVALID_QUERY", f"{source} must be an event id (an integer)") from None
    if value < 0:
        raise ApiError(400, "INVALID_QUERY", f"{source} must be 0 or more")
    return value


def _subscribe(bus: EventBus, after: int | None) -> Resumption:
    """Subscribed before the history is read (one step, no await between):
    nothing published meanwhile is lost or sent twice."""
    if after is None:
        return Resumption(bus.subscribe(), [], False)
    return bus.resume(after)


async def _send_kept(
    response: web.StreamResponse, after: int | None, subscription: Resumption
) -> int:
    """The stream's opening and the kept events after ``after``; returns the
    last id sent (0 for none), below which live events were sent already."""
    await response.write(f"retry: {SSE_RETRY_MS}\n: connected\n\n".encode())
    if subscription.missed:
        await response.write(
            f": events after id {after} were missed; sending the kept ones\n\n".encode()
        )
    for event in subscription.backlog:
        await response.write(_sse(event))
    return subscription.backlog[-1].id if subscription.backlog else 0


async def _send_live(
    request: web.Request,
    response: web.StreamResponse,
    queue: asyncio.Queue[Event],
    seam: int,
) -> None:
    """Live events as they come, until the API closes or the client goes."""
    closing = request.app[CLOSING]
    quiet_since = time.monotonic()
    while not closing.is_set() and not _gone(request):
        live = await _next_event(queue, closing, wait_s=LIVENESS_TICK_S)
        if live is None:
            if not closing.is_set() and time.monotonic() - quiet_since >= KEEPALIVE_S:
                await response.write(b": keep-alive\n\n")
                quiet_since = time.monotonic()
            continue
        if live.id <= seam:
            continue  # already sent from the history
        await response.write(_sse(live))
        quiet_since = time.monotonic()


def _gone(request: web.Request) -> bool:
    """The client closed its end: its slot is freed without waiting for a write to fail."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _sse(event: Event) -> bytes:
    data = json.dumps(event.as_dict(), default=str)
    return f"id: {event.id}\nevent: {event.name}\ndata: {data}\n\n".encode()


async def _next_event(
    queue: asyncio.Queue[Event], closing: asyncio.Event, wait_s: float
) -> Event | None:
    """The next event; None after ``wait_s`` without one, or once the API closes."""
    if not queue.empty():
        return queue.get_nowait()
    getting = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({getting, stopping}, timeout=wait_s, return_when="FIRST_COMPLETED")
    finally:
        stopping.cancel()
        if not getting.done():
            getting.cancel()
    return getting.result() if getting.done() and not getting.cancelled() else None


async def close_streams(app: web.Application) -> None:
    """On shutdown: every open stream ends."""
    app[CLOSING].set()


__all__ = ["SSE_RETRY_MS", "close_streams", "events"]
