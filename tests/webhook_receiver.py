"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1 in a thread
of its own, so both async tests and tests driving the daemon process can use it.

It answers with scripted statuses (then 200), can hold every request until
released, and checks ``X-Medic-Signature`` against the secret it was given by
computing the HMAC over the raw body itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.helpers import async_wait_for, free_port, wait_for


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    """What the receiver answered."""
    signature_ok: bool | None
    """None when the receiver has no secret to check with."""

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return str(self.json["event"])


class Receiver:
    def __init__(
        self, port: int | None = None, secret: str | None = None, statuses: Iterable[int] = ()
    ) -> None:
        self.port = port or free_port()
        self.secret = secret
        self.statuses = list(statuses)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._gate: asyncio.Event | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # lifecycle -----------------------------------------------------------------

    def start(self) -> Receiver:
        self._thread.start()
        self._call(self._serve())
        return self

    def stop(self) -> None:
        if self._gate is not None:
            self._loop.call_soon_threadsafe(self._gate.set)
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def hold(self) -> None:
        """Keep every request waiting until :meth:`release`."""
        self._gate = self._call(_new_event())

    def release(self) -> None:
        gate = self._gate
        if gate is not None:
            self._loop.call_soon_threadsafe(gate.set)

    # what arrived ----------------------------------------------------------------

    def received(self, event: str | None = None, path: str | None = None) -> list[Delivery]:
        with self._lock:
            found = list(self.deliveries)
        return [
            d
            for d in found
            if (event is None or d.event == event) and (path is None or d.path == path)
        ]

    def wait(
        self, event: str, path: str | None = None, timeout: float = 15.0, count: int = 1
    ) -> list[Delivery]:
        def enough() -> list[Delivery] | None:
            found = self.received(event, path)
            return found if len(found) >= count else None

        return wait_for(
            enough,
            timeout,
            interval=0.05,
            message=f"{count} x {event} at {path or 'any path'} did not arrive",
        )

    async def arrival(
        self, event: str, path: str | None = None, within_s: float = 15.0, count: int = 1
    ) -> list[Delivery]:
        """:meth:`wait` for async tests: the loop keeps running while it waits."""

        def enough() -> list[Delivery] | None:
            found = self.received(event, path)
            return found if len(found) >= count else None

        return await async_wait_for(
            enough,
            within_s,
            interval=0.02,
            message=f"{count} x {event} at {path or 'any path'} did not arrive",
        )

    # serving -----------------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self._gate is not None:
            await self._gate.wait()
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.deliveries.append(
                Delivery(
                    request.path, dict(request.headers), body, status, self._verify(request, body)
                )
            )
        return web.Response(status=status, text="ok" if status < 400 else "no")

    def _verify(self, request: web.Request, body: bytes) -> bool | None:
        if self.secret is None:
            return None
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(request.headers.get("X-Medic-Signature", ""), expected)


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


@contextmanager
def running_receiver(
    port: int | None = None, secret: str | None = None, statuses: Iterable[int] = ()
) -> Iterator[Receiver]:
    receiver = Receiver(port, secret, statuses).start()
    try:
        yield receiver
    finally:
        receiver.stop()
