"""The SQLite database under the store: the connection (WAL), the schema and
its migrations, and the transaction every write commits in.

Every write commits before the caller reports it, so a ``kill -9`` loses
nothing that was already shown. Writes are small and local; they run on the
event loop's thread. A write the database refuses (disk full) waits in memory
(``medic.store.backlog``) and never raises into its caller; rows whose ids
are handed out (recoveries, workflow runs) get them from memory, so a waiting
row and the writes that refer to it agree on its id.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from medic.core.clock import utc, utc_or_none
from medic.core.logging import get_logger
from medic.store.backlog import (
    OVERLAY_LIMIT,
    PendingWrite,
    Statement,
    WriteBacklog,
    retryable,
)
from medic.store.deferred import last_ids_on_disk, move_aside, stand_in, unopenable
from medic.store.open_faults import (
    OPEN_WAIT_S,
    Malformed,
    StateDirUnusable,
    corrupt,
    unusable,
)

log = get_logger("Store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY, service TEXT NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL,
    failure_type TEXT, detail TEXT, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS transitions_service_at ON transitions(service, at);
CREATE TABLE IF NOT EXISTS recoveries (
    id INTEGER PRIMARY KEY, service TEXT NOT NULL, failure_type TEXT, playbook TEXT NOT NULL,
    trigger TEXT NOT NULL, status TEXT NOT NULL, dry_run INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL, ended_at REAL, detail TEXT, facts TEXT);
CREATE INDEX IF NOT EXISTS recoveries_service ON recoveries(service, id);
CREATE TABLE IF NOT EXISTS recovery_steps (
    id INTEGER PRIMARY KEY,
    recovery_id INTEGER NOT NULL REFERENCES recoveries(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, phase TEXT NOT NULL, action TEXT NOT NULL, description TEXT,
    outcome TEXT NOT NULL, detail TEXT, output TEXT, started_at REAL NOT NULL, duration REAL);
CREATE INDEX IF NOT EXISTS recovery_steps_recovery ON recovery_steps(recovery_id);
CREATE TABLE IF NOT EXISTS workflow_runs (
    id INTEGER PRIMARY KEY, workflow TEXT NOT NULL, trigger TEXT NOT NULL, status TEXT NOT NULL,
    started_at REAL NOT NULL, ended_at REAL, detail TEXT);
CREATE INDEX IF NOT EXISTS workflow_runs_workflow ON workflow_runs(workflow, id);
CREATE TABLE IF NOT EXISTS workflow_steps (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES workflow_runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL,
    detail TEXT, output TEXT, started_at REAL, duration REAL);
CREATE INDEX IF NOT EXISTS workflow_steps_run ON workflow_steps(run_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, service TEXT, data TEXT);
CREATE INDEX IF NOT EXISTS audit_kind ON audit(kind, id);
"""

# Schema changes after the first release, in order: a database at
# ``PRAGMA user_version`` N gets migrations N.. applied, once each, at open.
# Each is idempotent, so a database made by this version (which ran SCHEMA
# first) and an older one end up the same.
MIGRATIONS = (
    # 1: workflows an operator stopped stay stopped across restarts.
    "CREATE TABLE IF NOT EXISTS workflow_control ("
    " workflow TEXT PRIMARY KEY, paused INTEGER NOT NULL, at REAL NOT NULL)",
    # 2: the sessions of running step commands, so that the next start can end
    # what a crash left running (a row lives while its command runs).
    "CREATE TABLE IF NOT EXISTS step_sessions ("
    " pid INTEGER PRIMARY KEY, start_time INTEGER NOT NULL, command TEXT,"
    " kill_grace REAL NOT NULL, recovery_id INTEGER, run_id INTEGER, at REAL NOT NULL)",
    # 3: services in maintenance (``medic pause``, windows) stay paused across restarts.
    "CREATE TABLE IF NOT EXISTS pauses ("
    " service TEXT PRIMARY KEY, until REAL, reason TEXT, paused_by TEXT, at REAL NOT NULL)",
    # 4: what a container showed before a recovery acted on it (its log's tail,
    # exit code, OOMKilled, HEALTHCHECK runs), as JSON: one row per recovery.
    "CREATE TABLE IF NOT EXISTS recovery_evidence ("
    " recovery_id INTEGER PRIMARY KEY REFERENCES recoveries(id) ON DELETE CASCADE,"
    " data TEXT NOT NULL)",
)

# Tables whose ids the store hands out itself (see the module docstring).
_OWN_IDS = ("recoveries", "workflow_runs")

# How long a write waits for a lock another connection holds: at first, and
# when retrying writes that wait in memory.
_BUSY_TIMEOUT_MS = 5000
_RETRY_BUSY_TIMEOUT_MS = 50

# A checkpointed WAL is cut back to this size instead of keeping its high-water mark.
_WAL_LIMIT_BYTES = 8 << 20

DETAIL_CHARS = 2000
"""Details and commands are kept to their first 2,000 characters."""
OUTPUT_CHARS = 4096
"""Step output is kept to its last 4,096 characters."""


def span(row: sqlite3.Row) -> dict[str, Any]:
    """A recovery's or run's ``started_at``, ``ended_at`` and ``duration_seconds``."""
    started, ended = row["started_at"], row["ended_at"]
    return {
        "started_at": utc(started),
        "ended_at": utc_or_none(ended),
        "duration_seconds": round(ended - started, 3) if ended else None,
    }


@dataclass(frozen=True)
class StepWrite:
    """A step row before it is cut to size: its table's own columns and the common tail."""

    keys: tuple[str, ...]
    values: tuple[object, ...]
    detail: str
    output: str
    started_at: float | None
    duration_s: float | None


def make_state_dir(state_dir: Path) -> None:
    """Create the state directory (and its parents); ``StateDirUnusable`` if it cannot be."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirUnusable(
            f"cannot create the state directory {state_dir}: {exc.strerror or exc}"
            " (daemon.state_dir or --state-dir)"
        ) from exc


class Database:
    """One connection to ``medic.db``; the tables' families build on it."""

    _db: sqlite3.Connection

    def __init__(self, path: Path, *, connect: bool = True) -> None:
        """The history at ``path``, opened at once unless ``connect=False``: the
        daemon opens it with ``open()`` when its store part starts."""
        self.path = path
        self._connected = False
        self.backlog = WriteBacklog(self._commit)
        self._last_ids: dict[str, int] = {}
        self._deferred: str | None = None
        if connect:
            self.open()

    def open(self) -> None:
        """Create the state directory, open the database and bring its schema up to date.

        A file that is not a database (or is malformed) is moved aside to
        ``medic.db.corrupt-<UTC time>`` with a warning, and a fresh one started;
        one that another process keeps locked past ``OPEN_WAIT_S`` is
        ``StateDirLocked``. A disk that refuses to let it open (full, I/O
        error) defers it (``medic.store.deferred``): ``retry()`` opens it later."""
        path = self.path
        make_state_dir(path.parent)
        try:
            self._connect()
        except (sqlite3.Error, Malformed) as exc:
            self.close()
            if unopenable(exc):
                self._defer(exc)
                return
            if not corrupt(exc):
                raise unusable(path, exc) from exc
            try:
                moved_to = move_aside(path)
            except OSError as error:
                raise StateDirUnusable(
                    f"{path} is corrupt and cannot be moved aside: {error.strerror or error}"
                ) from error
            log.warning(
                "history.corrupt_moved_aside",
                message=f"{path} is corrupt; moved it aside to {moved_to} and started afresh",
                path=str(path),
                moved_to=str(moved_to),
                error=str(exc),
            )
            try:
                self._connect()
            except (sqlite3.Error, Malformed) as again:
                self.close()
                raise unusable(path, again) from again

    def _connect(self) -> None:
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=OPEN_WAIT_S
        )
        self._connected = True
        self._db.execute("PRAGMA journal_mode=WAL")
        # A file with a sound header and damaged pages opens fine and fails
        # later, anywhere; found now, it is moved aside like one that is not a
        # database at all. (About 0.4 s for 100 MB.)
        problems = [str(row[0]) for row in self._db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise Malformed("; ".join(problems))
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._busy_timeout_ms = _BUSY_TIMEOUT_MS
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._load_ids()
        # Reading is not enough: another process in a write transaction
        # would let medic start and then fail its every write.
        with self._tx():
            pass

    def _defer(self, exc: BaseException) -> None:
        self._deferred = f"{type(exc).__name__}: {exc}"
        self._last_ids.update(last_ids_on_disk(self.path, _OWN_IDS))
        self._db = stand_in(SCHEMA, MIGRATIONS)
        self._busy_timeout_ms = -1
        self._connected = True
        self.backlog.hold(self._deferred)
        log.error(
            "history.open_deferred",
            message=f"Cannot open {self.path}: medic runs and heals, but its history is"
            " degraded: kept in memory and written once the disk takes it",
            path=str(self.path),
            error=self._deferred,
            next_ids=dict(self._last_ids),
        )

    def retry(self) -> int:
        """Open a deferred database, then write the waiting writes; how many still wait."""
        if self._deferred is not None and not self._open_deferred():
            return len(self.backlog)
        return self.backlog.flush()

    def _open_deferred(self) -> bool:
        memory = self._db
        try:
            self._connect()
        except (sqlite3.Error, Malformed) as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = memory
            self._deferred = f"{type(exc).__name__}: {exc}"
            return False
        memory.close()
        self._deferred = None
        log.warning("history.opened", message=f"{self.path} is open at last", path=str(self.path))
        self.backlog.release()
        return True

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._tx() as db:
                db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    def _load_ids(self) -> None:
        for table in _OWN_IDS:
            row = self._db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
            self._last_ids[table] = max(int(row[0]), self._last_ids.get(table, 0))

    def _new_id(self, table: str) -> int:
        """The next id of ``table``, given before its row is written (or waits)."""
        self._last_ids[table] += 1
        return self._last_ids[table]

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, connect: bool = True) -> Self:
        return cls(state_dir / "medic.db", connect=connect)

    def close(self) -> None:
        """Close the database (nothing to do when it was never opened)."""
        if self._connected:
            if self._deferred is not None:
                self._open_deferred()
            self.backlog.close()
            self._connected = False
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            # A full disk may have ended the transaction already, or left it
            # open after a failed COMMIT: end it either way, keep the first error.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _write(self, what: str, *statements: Statement) -> None:
        """Commit ``statements`` together, now or (when the database refuses
        them) later, in order; never raises a database error."""
        self.backlog.submit(PendingWrite(what, statements))

    def _commit(self, writes: Sequence[PendingWrite]) -> None:
        if self._deferred is not None:
            raise sqlite3.OperationalError(f"the history is not open: {self._deferred}")
        # While writes wait, a file another process holds locked is not waited
        # for long on each try: the loop runs on meanwhile.
        self._busy_timeout(_RETRY_BUSY_TIMEOUT_MS if len(self.backlog) else _BUSY_TIMEOUT_MS)
        with self._tx() as db:
            for write in writes:
                for sql, args in write.statements:
                    db.execute(sql, args)

    def _busy_timeout(self, ms: int) -> None:
        if ms != self._busy_timeout_ms:
            self._db.execute(f"PRAGMA busy_timeout={ms}")
            self._busy_timeout_ms = ms

    def _insert_step(self, table: str, owner: tuple[str, int], step: StepWrite) -> None:
        """One step row of ``table``: its owner column and id, the step's own
        columns, then the cut detail and output, start and duration (all steps end so)."""
        columns = [owner[0], *step.keys, "detail", "output", "started_at", "duration"]
        values = [
            owner[1],
            *step.values,
            step.detail[:DETAIL_CHARS],
            step.output[-OUTPUT_CHARS:],
            step.started_at,
            step.duration_s,
        ]
        marks = ",".join("?" * len(columns))
        sql = f"INSERT INTO {table}({', '.join(columns)}) VALUES ({marks})"
        self._write(f"{table}.insert", (sql, values))

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        return self._db.execute(sql, args).fetchall()

    @contextmanager
    def _with_pending(self) -> Iterator[None]:
        """Within: the connection sees the writes that wait, applied in a
        transaction that is rolled back after (a full disk can hold them in
        SQLite's page cache). Without them when they cannot be applied."""
        applied = self._apply_pending()
        try:
            yield
        finally:
            if applied and self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")

    def _apply_pending(self) -> bool:
        if not 0 < len(self.backlog) <= OVERLAY_LIMIT or self._db.in_transaction:
            return False
        self._busy_timeout(_RETRY_BUSY_TIMEOUT_MS)
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error:
            return False
        for write in self.backlog.waiting():
            try:
                for sql, args in write.statements:
                    self._db.execute(sql, args)
            except sqlite3.Error as exc:
                # One write refused for good is left out; a full cache on a full
                # disk, or a lock, leaves them all out: the reads show the disk.
                if retryable(exc) or not self._db.in_transaction:
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    return False
        return True


D = TypeVar("D", bound=Database)
P = ParamSpec("P")
R = TypeVar("R")


def sees_pending(read: Callable[Concatenate[D, P], R]) -> Callable[Concatenate[D, P], R]:
    """A read that also sees the writes waiting in memory (disk full), so the
    API shows a recovery the disk has not taken yet as it shows any other."""

    @functools.wraps(read)
    def reading(self: D, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._with_pending():
            return read(self, *args, **kwargs)

    return reading
