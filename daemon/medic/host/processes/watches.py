"""Starting a service's child and watching a running process until it exits.

``start_child`` starts ``process.command`` detached: its own session
(``start_new_session``), stdin from /dev/null, stdout and stderr appended to
the service's log, ``process.env`` over the daemon's own environment (minus
systemd's ``NOTIFY_SOCKET`` and ``WATCHDOG_*``, which are medic's, not the
child's), in ``process.cwd``. A child medic started itself is awaited
(``Child``), so its exit is seen (and reaped) at once; any other PID, a
process adopted through a pidfile, is watched through a pidfd (``Adopted``).

Stopping (``Watch.terminate``): SIGTERM, the grace to go, then SIGKILL. For a
child medic started, the signals go to its whole session (nothing it forked
survives); an adopted process gets them alone, through its pidfd (no PID
reuse race).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from medic.host.processes import ProcessStartError
from medic.host.processes.pidfiles import pid_alive
from medic.host.subprocesses import terminate_session

_AFTER_KILL_WAIT_S = 2.0
_CHILD_ENV_DROPPED = ("NOTIFY_SOCKET",)
_CHILD_ENV_DROPPED_PREFIXES = ("WATCHDOG_",)


class Watch(ABC):
    """One running process being watched; ``exited`` resolves when it is gone."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.exited: asyncio.Future[None] = loop.create_future()
        self.returncode: int | None = None
        self.expected_exit = False
        """medic is stopping it: its exit is not news."""

    @property
    def running(self) -> bool:
        return not self.exited.done() and pid_alive(self.pid)

    @abstractmethod
    async def terminate(self, grace_s: float) -> bool:
        """SIGTERM, ``grace_s``, SIGKILL; True when SIGKILL was needed."""

    @abstractmethod
    def close(self) -> None:
        """Stop watching (the process is gone or forgotten)."""


class Child(Watch, asyncio.SubprocessProtocol):
    """A process medic started: awaited through the event loop's child watcher.

    It is the subprocess protocol itself, so it holds the transport before any
    exit can be reported, however fast the child dies.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(0, loop)
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A subprocess protocol is only ever given a subprocess transport; uvloop's
        # (UVProcessTransport) has its methods without deriving from asyncio's class.
        self.transport = cast(asyncio.SubprocessTransport, transport)
        self.pid = self.transport.get_pid()

    def process_exited(self) -> None:
        if self.transport is not None:
            self.returncode = self.transport.get_returncode()
            self.transport.close()  # the child is reaped; this only frees the transport
        if not self.exited.done():
            self.exited.set_result(None)

    async def terminate(self, grace_s: float) -> bool:
        await terminate_session(self.pid, self.exited, grace_s)
        return self.returncode == -signal.SIGKILL

    def close(self) -> None:
        """Nothing to release: the transport closes when the child exits."""


class Adopted(Watch):
    """A process started elsewhere, watched through a pidfd (readable once it exits).

    ``whole_session`` marks a child an earlier medic started: its session is
    medic's to tear down. Otherwise only the process itself is signalled.
    """

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop, *, whole_session: bool) -> None:
        super().__init__(pid, loop)
        self.whole_session = whole_session
        self._loop = loop
        self._pidfd: int | None = os.pidfd_open(pid)
        loop.add_reader(self._pidfd, self._gone)

    def _gone(self) -> None:
        self.close()
        if not self.exited.done():
            self.exited.set_result(None)

    def close(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _send(self, signum: signal.Signals) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    async def terminate(self, grace_s: float) -> bool:
        if self.whole_session:
            started = time.monotonic()
            await terminate_session(self.pid, self.exited, grace_s)
            return time.monotonic() - started >= grace_s
        self._send(signal.SIGTERM)
        if await _wait_done(self.exited, grace_s):
            return False
        self._send(signal.SIGKILL)
        await _wait_done(self.exited, _AFTER_KILL_WAIT_S)
        return True


async def start_child(
    command: list[str], cwd: Path | None, env: Mapping[str, str], log_path: Path
) -> Child:
    """Start ``command`` detached, its output appended to ``log_path`` after a header.

    Raises ``ProcessStartError`` when the exec fails.
    """
    loop = asyncio.get_running_loop()
    child = Child(loop)
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            out.write(_log_header(command))
            out.flush()
            await loop.subprocess_exec(
                lambda: child,
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=cwd,
                env=child_env(env),
                start_new_session=True,
            )
    except OSError as exc:
        raise ProcessStartError(f"cannot start {command[0]}: {exc}") from exc
    return child


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment without systemd's notify/watchdog variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _CHILD_ENV_DROPPED and not k.startswith(_CHILD_ENV_DROPPED_PREFIXES)
    }
    env.update(extra)
    return env


def _log_header(command: list[str]) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return f"--- medic: starting {command!r} at {now} ---\n".encode()


async def _wait_done(future: asyncio.Future[None], timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        return False
    return True
