"""One daemon per state dir: an ``flock`` on ``STATE_DIR/medic.lock``, held
for the daemon's life.

Two daemons on one state dir would heal the same crash twice, count each
other's attempts and, at start, end the step commands the other one is
running. The lock is taken before the history is opened; a second daemon
finds it held and stops at once with ``StateDirInUse``, naming the PID that
the holder wrote into the file. The kernel drops the lock when the holder
exits, however it exits (``kill -9`` included); the file itself stays.
The descriptor is not inherited by the programs medic starts, so a step
command or a ``process:`` service that outlives medic never holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from medic.core.errors import MedicError
from medic.store.db import make_state_dir

LOCK_NAME = "medic.lock"


class StateDirInUse(MedicError):
    """Another medic holds the state dir's lock."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        holder = f"medic PID {pid}" if pid is not None else "another medic (PID unknown)"
        super().__init__(f"state dir {state_dir} is in use by {holder}")


class StateDirLock:
    """The lock on one state dir: ``acquire()`` at start, ``release()`` at stop."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write this PID into the file; ``StateDirInUse`` if
        another process holds it; ``StateDirUnusable`` if the state dir cannot be made."""
        if self._fd is not None:
            return
        make_state_dir(self.state_dir)
        # O_CLOEXEC (Python's default): children never inherit the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StateDirInUse(self.state_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        # The PID is for the next reader's message only: a full disk (the
        # history then waits in memory) must not stop the start.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (nothing to do when it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale PID for the next reader
        finally:
            os.close(fd)  # closing the descriptor drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
