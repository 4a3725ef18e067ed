"""A lean HTTP/1.1 client for the common health probe: one plain-``http`` GET.

The ``http`` check sends most of its probes through here instead of aiohttp's
client (``medic.watch.checks.http`` says which): one request written in one
piece, the answer read through httptools' parser (llhttp, in C) on an asyncio
``Protocol``, no request/response objects, no streams, no timers of its own
(the check runner's timeout bounds every probe). aiohttp's client costs about
0.3 ms of CPU per probe on a kept connection and 0.55 ms on a new one here; the
figures for this one are in docs/benchmarks.md, "Check CPU".

What the caller sees is what aiohttp's client would have given it:

* connecting fails: ``aiohttp.ClientConnectorError`` around the ``OSError``;
* the server closes or resets the connection before it answers:
  ``aiohttp.ServerDisconnectedError`` / ``aiohttp.ClientOSError``; a kept
  connection that fails so is retried once on a new one, as aiohttp does for a
  GET;
* idle connections are kept ``KEEPALIVE_S`` for reuse, never one whose answer
  was not read to its end or that the server asked to close;
* the request carries aiohttp's ``User-Agent`` and ``Accept: */*``, the
  check's own headers, and no ``Accept-Encoding`` (the body is never decoded).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import aiohttp
import httptools
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http import SERVER_SOFTWARE

from medic.host import HostError

KEEPALIVE_S = 4.0
"""As the shared aiohttp session: below the usual server keep-alive timeouts."""


class Answer(NamedTuple):
    """A named tuple: a third of a frozen dataclass's cost to make (one per probe)."""

    status: int
    reason: str
    body: bytes | None
    """Read only when asked for (up to the limit), else None."""
    content_type: str


class MalformedResponse(HostError):
    """The server's answer is not HTTP/1.x (aiohttp's client raises its own error)."""


ReadBody = Callable[[int], bool] | None
"""Given the status, whether the body is wanted (read up to the limit); None: never."""


class _Exchange(asyncio.Protocol):
    """One connection; one request at a time on it."""

    __slots__ = (
        "_body",
        "_body_limit",
        "_content_type",
        "_loop",
        "_parser",
        "_read_body",
        "_reason",
        "_request",
        "_status",
        "answered",
        "closed",
        "complete",
        "idle_since",
        "transport",
        "waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        """Given, not looked up: each look-up of the running loop is a ``getpid`` call."""
        self.transport: asyncio.Transport | None = None
        self._request = b""
        """Written once connected (a new connection's first request)."""
        self.closed = False
        self.idle_since = 0.0
        self._parser: Any = None
        self.waiter: asyncio.Future[Answer] | None = None
        self._body_limit = 0
        self._read_body: ReadBody = None
        self._reason = b""
        self._content_type = b""
        self._status = 0
        self._body: bytearray | None = None
        self.complete = False
        """The answer was read to its end, and the server keeps the connection."""
        self.answered = False

    def start(self, request: bytes, read_body: ReadBody, limit: int) -> None:
        """Send ``request`` (now if connected, else once connected); the answer
        comes through ``waiter``."""
        self.waiter = self._loop.create_future()
        self._read_body, self._body_limit = read_body, limit
        self._reason, self._content_type, self._body = b"", b"", None
        self.complete = self.answered = False
        if self.transport is None:
            self._request = request
        else:
            self.transport.write(request)

    def abandon(self) -> None:
        """The connection is not wanted after all (connecting failed or was cancelled):
        nobody will ask for the answer, so nothing may be left in it."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.cancel()

    # transport callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        self._parser = httptools.HttpResponseParser(self)  # one per connection, as llhttp
        if self._request:
            # Written at once rather than when the connecting coroutine resumes:
            # the answer is on its way a loop turn earlier.
            transport.write(self._request)  # type: ignore[attr-defined]
            self._request = b""

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            return  # nothing asked: a server talking out of turn is ignored
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(MalformedResponse(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # The parser holds this protocol's callbacks: a reference cycle that only the
        # garbage collector would free, with the transport and the answer in it.
        self._parser = None
        if self.waiter is None or self.waiter.done():
            return
        if self.answered:  # a body without a length ends with the connection
            self._resolve()
        elif exc is None:
            self._fail(aiohttp.ServerDisconnectedError())
        else:
            errno = getattr(exc, "errno", None)
            self._fail(aiohttp.ClientOSError(errno, str(getattr(exc, "strerror", exc))))

    # parser callbacks (httptools)
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self._content_type = value

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self.answered = True
        if self._read_body is None or not self._read_body(self._status):
            self._resolve()  # the status is the verdict: no need to wait for the body
        else:
            self._body = bytearray()

    def on_body(self, body: bytes) -> None:
        if self._body is not None and len(self._body) < self._body_limit:
            self._body += body[: self._body_limit - len(self._body)]
            if len(self._body) >= self._body_limit:
                self._resolve()

    def on_message_complete(self) -> None:
        # Asked here: once the parser moves on, it no longer knows.
        self.complete = self._parser.should_keep_alive()
        self._resolve()

    def reusable(self) -> bool:
        """The answer was read to its end and neither side asked to close."""
        return self.complete and not self.closed

    def _resolve(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            body = None if self._body is None else bytes(self._body)
            reason = self._reason.decode("latin-1")
            answer = Answer(self._status, reason, body, self._content_type.decode("latin-1"))
            self.waiter.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class HttpProbes:
    """Kept connections by (host, port); nothing opens before the first probe."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Exchange]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop of the first probe (a look-up per connection is a ``getpid`` call)."""

    @staticmethod
    def request_bytes(method: str, host_header: str, target: str, headers: dict[str, str]) -> bytes:
        """The request as sent (made once per check, not per probe)."""
        head = {"Host": host_header, "User-Agent": SERVER_SOFTWARE, "Accept": "*/*"}
        for name, value in headers.items():  # the check's own win, whatever their case
            for known in [k for k in head if k.lower() == name.lower()]:
                del head[known]
            head[name] = value
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def probe(
        self,
        host: str,
        port: int,
        request: bytes,
        read_body: ReadBody,
        body_limit: int,
    ) -> Answer:
        """Send ``request`` and read the answer (its body when ``read_body`` says so)."""
        key = (host, port)
        kept = self._kept(key)
        if kept is not None:
            try:
                return await self._exchange(kept, key, request, read_body, body_limit)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if kept.answered:
                    raise
                # The server closed the kept connection under us: once more, anew (as aiohttp).
        exchange = await self._connect(host, port, request, read_body, body_limit)
        return await self._exchange(exchange, key, None, read_body, body_limit)

    async def _exchange(
        self,
        exchange: _Exchange,
        key: tuple[str, int],
        request: bytes | None,
        read_body: ReadBody,
        body_limit: int,
    ) -> Answer:
        """``request`` is sent on the kept ``exchange``, or was (None) when it connected."""
        reuse = False
        try:
            if request is not None:
                exchange.start(request, read_body, body_limit)
            assert exchange.waiter is not None
            answer = await exchange.waiter
            reuse = exchange.reusable()
            return answer
        finally:
            if reuse:
                exchange.idle_since = time.monotonic()
                self._idle.setdefault(key, []).append(exchange)
            elif exchange.transport is not None:
                exchange.transport.close()

    def _kept(self, key: tuple[str, int]) -> _Exchange | None:
        idle = self._idle.get(key)
        oldest_kept = time.monotonic() - KEEPALIVE_S
        while idle:
            exchange = idle.pop()
            if not exchange.closed and exchange.idle_since >= oldest_kept:
                return exchange
            if exchange.transport is not None:
                exchange.transport.close()
        return None

    async def _connect(
        self, host: str, port: int, request: bytes, read_body: ReadBody, body_limit: int
    ) -> _Exchange:
        """A new connection, ``request`` written on it as soon as it is made."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        exchange = _Exchange(loop)
        exchange.start(request, read_body, body_limit)
        try:
            await loop.create_connection(lambda: exchange, host, port)
        except OSError as exc:
            exchange.abandon()
            key = ConnectionKey(host, port, False, True, None, None, None, host)
            raise aiohttp.ClientConnectorError(key, exc) from exc
        except BaseException:
            exchange.abandon()  # cancelled (the probe's deadline): uvloop closes the transport
            raise
        return exchange

    def close(self) -> None:
        """Close every kept connection; later probes connect anew."""
        idle, self._idle = self._idle, {}
        for exchanges in idle.values():
            for exchange in exchanges:
                if exchange.transport is not None:
                    exchange.transport.close()
