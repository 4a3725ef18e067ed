"""Running a command to completion with its output captured, and tearing it down.

Every child runs in its own session (``start_new_session``), so on cancellation
the whole tree it started can be found and ended: SIGTERM to the group and the
session, a bounded wait, SIGKILL for what is left, then the child is reaped.
Nothing a cancelled command started is left running.

``asyncio.subprocess.Process.wait()`` on Python 3.11 waits for the output pipe
to close as well as for the child to exit, so a background grandchild holding
stdout would hang it. This module uses ``loop.subprocess_exec`` with its own
protocol instead and waits for the child's exit alone.

A ``kill -9`` of the daemon leaves those sessions running; a caller that passes
a ``SessionTracker`` gets each session's start and end, so it can record them
and end what a crash left behind at the next start (``end_left_session``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_TAIL_BYTES = 4 * 1024
_OUTPUT_DRAIN_S = 0.5
"""After the child exits, how long to wait for output still in the pipe."""
_POLL_S = 0.05
_AFTER_KILL_WAIT_S = 2.0
_PROC = Path("/proc")

# Teardowns that outlive a second cancellation of their caller; kept referenced.
_teardowns: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class CompletedRun:
    returncode: int
    """The exit code, or minus the signal number that ended the child."""
    output_tail: str
    """The last bytes of stdout and stderr together, decoded with replacement."""
    duration_s: float


class SessionTracker(Protocol):
    """Told when a child's session starts (its pid is the session id) and ends."""

    def started(self, pid: int, argv: Sequence[str], kill_grace_s: float) -> None: ...

    def ended(self, pid: int) -> None: ...


class _CaptureProtocol(asyncio.SubprocessProtocol):
    """Keeps the tail of the merged output and signals the child's exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tail_bytes: int) -> None:
        self._tail = bytearray()
        self._tail_bytes = tail_bytes
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._tail += data.encode() if isinstance(data, str) else data
        excess = len(self._tail) - self._tail_bytes
        if excess > 0:
            del self._tail[:excess]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def tail_text(self) -> str:
        return bytes(self._tail).decode("utf-8", errors="replace")


async def run_captured(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    kill_grace_s: float = 5.0,
    tail_bytes: int = DEFAULT_TAIL_BYTES,
    tracker: SessionTracker | None = None,
) -> CompletedRun:
    """Run ``argv`` to completion; ``env`` is added to the daemon's environment.

    stdin is /dev/null; stdout and stderr are merged. If the caller is
    cancelled, the child's whole process group and session are terminated
    (SIGKILL after ``kill_grace_s``) and reaped before ``CancelledError``
    propagates. Raises ``OSError`` (e.g. ``FileNotFoundError``) if it cannot start.
    ``tracker`` is told the session's start and, once it is torn down, its end.
    """
    started = time.monotonic()
    transport, protocol = await _spawn(argv, cwd, env, tail_bytes)
    pid = transport.get_pid()
    try:
        if tracker is not None:
            tracker.started(pid, argv, kill_grace_s)
        await _wait_for_exit(protocol)
    except asyncio.CancelledError:
        await _teardown_surviving_cancel(pid, protocol, kill_grace_s)
        raise
    finally:
        transport.close()
        if tracker is not None:
            tracker.ended(pid)
    returncode = transport.get_returncode()
    assert returncode is not None  # set before process_exited() is called
    return CompletedRun(returncode, protocol.tail_text(), time.monotonic() - started)


async def _spawn(
    argv: Sequence[str], cwd: str | Path | None, env: Mapping[str, str] | None, tail_bytes: int
) -> tuple[asyncio.SubprocessTransport, _CaptureProtocol]:
    """Start ``argv`` in a session of its own, its output merged into one pipe."""
    loop = asyncio.get_running_loop()
    return await loop.subprocess_exec(
        lambda: _CaptureProtocol(loop, tail_bytes),
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


async def _wait_for_exit(protocol: _CaptureProtocol) -> None:
    await protocol.exited
    # A background grandchild may keep the pipe open; take what is there and go.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(protocol.output_closed), _OUTPUT_DRAIN_S)


async def _teardown_surviving_cancel(
    pid: int, protocol: _CaptureProtocol, kill_grace_s: float
) -> None:
    """Tear the session down even if our caller is cancelled again meanwhile."""
    task = asyncio.ensure_future(terminate_session(pid, protocol.exited, kill_grace_s))
    _teardowns.add(task)
    task.add_done_callback(_teardowns.discard)
    await asyncio.shield(task)


async def terminate_session(
    sid: int, child_exited: asyncio.Future[None] | None, kill_grace_s: float
) -> None:
    """End every process of the session/group led by ``sid`` and wait for the leader.

    SIGTERM to all, up to ``kill_grace_s`` for them to go, SIGKILL to the rest.
    Zombies count as gone: they run nothing and their parent reaps them.
    """
    _signal_session(sid, signal.SIGTERM)
    if not await _session_gone(sid, kill_grace_s):
        _signal_session(sid, signal.SIGKILL)
        await _session_gone(sid, _AFTER_KILL_WAIT_S)
    if child_exited is not None:
        # The event loop's child watcher reaps the leader; this waits for that.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child_exited), _AFTER_KILL_WAIT_S)


def _signal_session(sid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signum)
    # Members that moved to a process group of their own are still in the session.
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def _session_gone(sid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while session_members(sid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


async def end_left_session(pid: int, start_time: int, kill_grace_s: float) -> bool:
    """End the session a previous daemon started, if its leader still runs.

    Only when ``pid`` is alive, not a zombie, leads its session and started at
    ``start_time`` (``proc_start_time``): a pid reused since is left alone.
    True if the session was there and has been terminated.
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    parsed = parse_proc_stat(stat)
    if parsed is None or parsed[0] == "Z" or parsed[2] != pid:
        return False
    if proc_start_time_from_stat(stat) != start_time:
        return False
    await terminate_session(pid, None, kill_grace_s)
    return True


def proc_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (``/proc/PID/stat`` field 22);
    None if it is gone. With the pid, it names one process: pids get reused."""
    try:
        return proc_start_time_from_stat((_PROC / str(pid) / "stat").read_text())
    except OSError:
        return None


def proc_start_time_from_stat(text: str) -> int | None:
    _, _, rest = text.rpartition(")")
    fields = rest.split()
    # Field 22 of the line; ``rest`` starts at field 3.
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes in session ``sid`` or process group ``sid``."""
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        parsed = parse_proc_stat(stat)
        if parsed is not None and parsed[0] != "Z" and sid in parsed[1:]:
            members.append(int(entry.name))
    return members


def parse_proc_stat(text: str) -> tuple[str, int, int] | None:
    """``(state, pgrp, session)`` from the text of ``/proc/PID/stat``."""
    # The command name (field 2) may contain spaces and parentheses; it ends at the last ')'.
    _, _, rest = text.rpartition(")")
    fields = rest.split()
    if len(fields) < 4:
        return None
    try:
        return fields[0], int(fields[2]), int(fields[3])
    except ValueError:
        return None
