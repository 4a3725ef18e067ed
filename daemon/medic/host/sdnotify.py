"""The systemd notify protocol: readiness, reload, stop, status and watchdog.

This module owns medic's side of ``sd_notify(3)``: it sends datagrams of
newline-separated ``KEY=VALUE`` assignments to the AF_UNIX socket systemd
names in ``NOTIFY_SOCKET``, and runs the watchdog pings systemd expects every
half ``WATCHDOG_USEC``. Outside systemd (no socket) every call is a no-op.
A failing notification is logged and counted, never raised: losing a status
message must not take the daemon down.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping, MutableMapping

from medic.core.logging import get_logger

_log = get_logger("SystemdNotifier")


class SystemdNotifier:
    """Sends notifications to systemd over the socket named by ``NOTIFY_SOCKET``."""

    def __init__(self, address: str | None = None, *, watchdog_usec: int | None = None) -> None:
        """*address* is a ``NOTIFY_SOCKET`` value: a path, or ``@name`` for an
        abstract socket. *watchdog_usec* is the watchdog timeout systemd set,
        already checked against ``WATCHDOG_PID`` (see :meth:`from_env`)."""
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._socket: socket.socket | None = None
        self._errors = 0

    @classmethod
    def from_env(
        cls,
        environ: MutableMapping[str, str] | None = None,
        *,
        unset_environment: bool = False,
    ) -> SystemdNotifier:
        """Build a notifier from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.

        With *unset_environment* the three variables are removed afterwards,
        so child processes medic starts do not talk to medic's socket.
        """
        env = os.environ if environ is None else environ
        notifier = cls(env.get("NOTIFY_SOCKET"), watchdog_usec=_watchdog_usec(env))
        if unset_environment:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                env.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    @property
    def errors(self) -> int:
        """How many notifications failed to send since construction."""
        return self._errors

    @property
    def watchdog_interval_s(self) -> float | None:
        """The watchdog timeout in seconds, or None when systemd set no watchdog for us."""
        if not self.enabled or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 1_000_000

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up (or a reload) is complete."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", _status_assignment(status))

    def reloading(self) -> bool:
        """Tell systemd a reload started; call :meth:`ready` when it is done."""
        # systemd >= 253 matches the reload to this timestamp; older ones ignore it.
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}")

    def stopping(self) -> bool:
        """Tell systemd shutdown started."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Send one watchdog keep-alive ping."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Set the free-form status line ``systemctl status`` shows."""
        return self.notify(_status_assignment(text))

    def notify(self, *assignments: str) -> bool:
        """Send *assignments* as one datagram; True when it was delivered."""
        if self._address is None or not assignments:
            return False
        message = "\n".join(assignments).encode()
        try:
            self._connection().sendto(message, self._address)
        except OSError as exc:
            self._errors += 1
            _log.warning(
                "sdnotify.failed",
                message="systemd notification failed",
                payload=message.decode(errors="replace"),
                error=str(exc),
                failures=self._errors,
            )
            return False
        return True

    async def run_watchdog(self) -> None:
        """Ping the watchdog every half interval until cancelled.

        The pings come from the event loop on purpose: if the loop stalls, the
        pings stop and systemd restarts medic. Returns at once when systemd
        set no watchdog for this process.
        """
        interval = self.watchdog_interval_s
        if interval is None:
            return
        period = interval / 2
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + period
            self.watchdog()
            # Sleeping to a deadline keeps the period from drifting by the send time.
            await asyncio.sleep(max(0.0, due - loop.time()))

    def close(self) -> None:
        """Close the socket; a later notification opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _connection(self) -> socket.socket:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # A full systemd queue must fail the send, not block the event loop.
            sock.setblocking(False)
            self._socket = sock
        return self._socket


def _socket_address(value: str) -> str:
    # "@name" is systemd's spelling of a Linux abstract socket name.
    if value.startswith("@"):
        return "\0" + value[1:]
    return value


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # the watchdog is meant for another process (e.g. our parent)
    try:
        return int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None


def _status_assignment(text: str) -> str:
    # A newline would end the assignment and start a bogus one.
    return "STATUS=" + " ".join(text.splitlines())
