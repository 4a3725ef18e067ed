"""The ``type: tcp`` check: connect, optionally send a line and look for a reply.

Connection errors are raised for ``medic.watch.classify``; a reply without the
expected text is an ``unhealthy_response``.
"""

from __future__ import annotations

import asyncio
import contextlib

from medic.config.checks import TcpCheckOptions
from medic.core.vocabulary import FailureType
from medic.watch.checks.base import Check, CheckResult

MAX_REPLY_BYTES = 4 * 1024
REPLY_IDLE_S = 0.5


class TcpCheck(Check[TcpCheckOptions]):
    """``type: tcp``: healthy when the port accepts and, if asked, replies as expected."""

    yaml_name = "tcp"
    options_model = TcpCheckOptions

    async def probe(self) -> CheckResult:
        opts = self.options
        address = f"{opts.host}:{opts.port}"
        reader, writer = await asyncio.open_connection(opts.host, opts.port)
        try:
            if opts.send is not None:
                writer.write(opts.send.encode())
                await writer.drain()
            if opts.expect is None:
                return CheckResult.ok(f"connected to {address}")
            reply = await _read_until(reader, opts.expect.encode(), MAX_REPLY_BYTES)
        finally:
            writer.close()
            # The peer may already have reset the connection; the probe's verdict stands.
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return _judge(address, opts.expect, reply)


async def _read_until(reader: asyncio.StreamReader, needle: bytes, limit: int) -> bytes:
    """Read until ``needle`` shows up, ``limit`` bytes arrived, the peer closes, or
    the reply has started and then paused for ``REPLY_IDLE_S``.

    Waiting for the first byte is bounded only by the runner's timeout (a silent
    peer is a timeout); the idle pause makes a wrong reply on a connection the
    peer keeps open an ``unhealthy_response`` instead of a timeout.
    """
    reply = bytearray()
    while needle not in reply and len(reply) < limit:
        try:
            async with asyncio.timeout(REPLY_IDLE_S if reply else None):
                chunk = await reader.read(limit - len(reply))
        except TimeoutError:
            break
        if not chunk:
            break
        reply += chunk
    return bytes(reply)


def _judge(address: str, expect: str, reply: bytes) -> CheckResult:
    text = reply.decode("utf-8", errors="replace")
    if expect in text:
        return CheckResult.ok(f"{address} replied with {expect!r}")
    got = repr(text[:200]) if text else "nothing"
    return CheckResult.fail(
        FailureType.UNHEALTHY_RESPONSE,
        f"{address} did not reply with {expect!r} (got {got})",
        reply=text[:200],
    )
