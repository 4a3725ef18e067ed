"""Writes that wait: a history write the database refuses (disk full, I/O
error, locked) is kept in memory, in order, and written when it can be.

Every write of the store is a list of statements committed in one transaction
(``PendingWrite``). ``WriteBacklog.submit`` commits it at once when nothing
waits; otherwise, and when the commit fails, it goes to the end of the queue,
so the history is always written in the order it happened. The queue is
retried from its head on every later write and by ``flush()`` (the daemon
calls it every few seconds and at close). It holds at most ``limit`` writes:
past that the oldest is dropped and counted. No write ever raises into the
caller: checks and recoveries go on whatever the disk says.

The store is "degraded" while writes wait; one warning says when it becomes
so and one when every waiting write is in. ``HistoryObserver`` (the metrics)
hears of each failed commit and of the queue's length.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from medic.core.clock import iso
from medic.core.logging import get_logger

log = get_logger("Store")

PENDING_LIMIT = 10_000
"""History writes kept in memory at most while the database refuses them."""

OVERLAY_LIMIT = 1000
"""Reads see the writes that wait while at most this many do (see ``Database.sees_pending``)."""
FLUSH_BATCH = 256
"""Waiting writes committed together in one transaction when they can be."""

Statement = tuple[str, Sequence[object]]


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """One write: ``what`` names it (``recovery.start``...) and ``statements``
    are committed together, with the values they had when it was asked for."""

    what: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class HistoryHealth:
    """How the history's writes fare, as ``GET /api/v1/health`` shows it."""

    status: Literal["ok", "degraded"]
    pending_writes: int
    """Writes waiting in memory for the database to take them."""
    dropped: int
    """Writes lost for good: the oldest beyond the queue's limit, or refused for a
    reason no retry can cure (each logged)."""
    write_errors: int
    """Failed commits, retries included."""
    last_error: str | None
    degraded_since: float | None
    """``time.time()`` of the first write that waits, while some wait."""

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "pending_writes": self.pending_writes,
            "dropped": self.dropped,
            "write_errors": self.write_errors,
            "last_error": self.last_error,
            "degraded_since": iso(self.degraded_since),
        }


class HistoryObserver(Protocol):
    """Hears how the history's writes fare (``medic.tell.metrics.Metrics``)."""

    def history_write_failed(self) -> None: ...

    def history_pending(self, count: int) -> None: ...

    def history_dropped(self, count: int) -> None: ...


def retryable(exc: sqlite3.Error) -> bool:
    """Errors of the disk or of another holder of the file (full, I/O, locked,
    read-only, corrupt) may pass; the others (a constraint, a closed connection)
    will fail the same way every time."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


class WriteBacklog:
    def __init__(
        self, commit: Callable[[Sequence[PendingWrite]], None], limit: int = PENDING_LIMIT
    ) -> None:
        """``commit`` writes its writes in one transaction, or raises and writes none."""
        self._commit = commit
        self._limit = limit
        self._pending: deque[PendingWrite] = deque()
        self._observers: list[HistoryObserver] = []
        self._dropped = 0
        self._errors = 0
        self._last_error: str | None = None
        self._since: float | None = None
        self._dropping = False
        self._held = False

    def watch(self, observer: HistoryObserver) -> None:
        self._observers.append(observer)

    def health(self) -> HistoryHealth:
        return HistoryHealth(
            status="degraded" if self._pending or self._held else "ok",
            pending_writes=len(self._pending),
            dropped=self._dropped,
            write_errors=self._errors,
            last_error=self._last_error,
            degraded_since=self._since,
        )

    def hold(self, error: str) -> None:
        """The database could not be opened at all (``error``): degraded, even
        before a first write waits, until ``release()``."""
        self._held = True
        self._errors += 1
        self._last_error = error
        self._since = self._since or time.time()
        for observer in self._observers:
            observer.history_write_failed()

    def release(self) -> None:
        """The database is open at last: the waiting writes go in now."""
        self._held = False
        if not self._pending:
            self._recovered(0)
        self.flush()

    def __len__(self) -> int:
        return len(self._pending)

    def waiting(self) -> tuple[PendingWrite, ...]:
        """The writes that wait, oldest first."""
        return tuple(self._pending)

    def submit(self, write: PendingWrite) -> None:
        """Commit ``write`` now, or after the writes that wait before it."""
        if self._pending:
            self._enqueue(write)
            self.flush()
        elif not self._commit_one(write):
            self._enqueue(write)

    def _commit_one(self, write: PendingWrite) -> bool:
        """Commit ``write`` alone: False when it failed and may pass later."""
        try:
            self._commit([write])
        except sqlite3.Error as exc:
            self._failed(write, exc)
            return not retryable(exc)
        return True

    def flush(self) -> int:
        """Commit the waiting writes in order until one fails; how many still wait.

        They go in batches of ``FLUSH_BATCH`` per transaction; a batch that
        fails is tried again write by write, to tell a full disk (stop, retry
        later) from one write refused for good (dropped, the rest go on).
        """
        if not self._pending:
            return 0
        written = 0
        while self._pending:
            batch = list(itertools.islice(self._pending, FLUSH_BATCH))
            if len(batch) > 1:
                with contextlib.suppress(sqlite3.Error):  # one by one below says why
                    self._commit(batch)
                    for _ in batch:
                        self._pending.popleft()
                    written += len(batch)
                    continue
            head = self._pending[0]
            try:
                self._commit([head])
            except sqlite3.Error as exc:
                self._failed(head, exc)
                if retryable(exc):
                    break
            else:
                written += 1
            self._pending.popleft()
        self._told_pending()
        if not self._pending:
            self._recovered(written)
        return len(self._pending)

    def close(self) -> None:
        """A last try before the database closes; what still waits is lost, loudly."""
        left = self.flush()
        if left:
            log.error(
                "history.writes_lost",
                message="History writes still waiting at close are lost",
                count=left,
                error=self._last_error,
            )
            self._drop(left)
            self._pending.clear()
            self._since = None
            self._told_pending()

    def _enqueue(self, write: PendingWrite) -> None:
        if not self._pending:
            self._since = self._since if self._held else time.time()
            log.warning(
                "history.degraded",
                message="History writes fail; they wait in memory and are written when they can be",
                error=self._last_error,
                write=write.what,
                limit=self._limit,
            )
        self._pending.append(write)
        if len(self._pending) > self._limit:
            lost = self._pending.popleft()
            self._drop(1)
            if not self._dropping:
                self._dropping = True  # once per degraded spell, not once per write
                log.error(
                    "history.writes_dropped",
                    message="Too many history writes wait: the oldest are dropped",
                    limit=self._limit,
                    write=lost.what,
                )
        self._told_pending()

    def _failed(self, write: PendingWrite, exc: sqlite3.Error) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        for observer in self._observers:
            observer.history_write_failed()
        if not retryable(exc):
            self._drop(1)
            log.error(
                "history.write_dropped",
                message="A history write was refused for good and is lost",
                write=write.what,
                error=self._last_error,
            )

    def _recovered(self, written: int) -> None:
        log.warning(
            "history.recovered",
            message="History writes work again; every waiting write is written",
            written=written,
            dropped=self._dropped,
            degraded_s=round(time.time() - (self._since or time.time()), 3),
        )
        self._since = None
        self._dropping = False

    def _drop(self, count: int) -> None:
        self._dropped += count
        for observer in self._observers:
            observer.history_dropped(count)

    def _told_pending(self) -> None:
        for observer in self._observers:
            observer.history_pending(len(self._pending))
