"""What opening the history does with a file it cannot use: a corrupt one is
moved aside (``move_aside``); one the disk will not let open is deferred.

The history when its database cannot even be opened at start: the state
dir's filesystem is already full (SQLite cannot grow ``medic.db`` or its
``-shm``), or it answers I/O errors.

medic starts all the same. Its connection is then an in-memory stand-in with
the same schema, on which reads see the writes that wait (``Database``'s
overlay); every write waits in memory (``medic.store.backlog``) and the daemon's
history-retry job opens the real file once it can, then writes them in order.

Ids handed out meanwhile (recoveries, workflow runs) must not collide with rows
already on disk: the highest ones are read read-only at start, when the file
can be read at all, plus ``ID_GAP`` for rows a WAL not yet checkpointed may hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

ID_GAP = 1000
"""Ids skipped after the highest read from a file that could not be opened for writing."""

_UNOPENABLE = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


def unopenable(exc: BaseException) -> bool:
    """The disk refused (full, I/O error): open later, start now."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _UNOPENABLE


def last_ids_on_disk(path: Path, tables: Iterable[str]) -> dict[str, int]:
    """The highest id of each table in ``path``, read without writing a byte,
    plus ``ID_GAP``; ``ID_GAP`` alone when the file holds none or cannot be read."""
    names = tuple(tables)
    found = dict.fromkeys(names, 0)
    if path.exists():
        uri = path.resolve().as_uri()
        # mode=ro sees a WAL's rows when the -shm can be read; immutable=1
        # reads the main file alone, whatever the -shm says.
        for query in ("?mode=ro", "?immutable=1"):
            try:
                found = _max_ids(uri + query, names)
                break
            except sqlite3.Error:
                continue
    return {table: last + ID_GAP for table, last in found.items()}


def _max_ids(uri: str, tables: tuple[str, ...]) -> dict[str, int]:
    db = sqlite3.connect(uri, uri=True)
    try:
        have = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        return {
            table: int(db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])
            if table in have
            else 0
            for table in tables
        }
    finally:
        db.close()


def stand_in(schema: str, migrations: Iterable[str]) -> sqlite3.Connection:
    """An in-memory database with the history's schema."""
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    db.executescript(schema)
    for statement in migrations:
        db.execute(statement)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys=ON")
    return db


def move_aside(path: Path) -> Path:
    """Move a corrupt database (and its WAL) to ``NAME.corrupt-<UTC time>``; its new path
    (``OSError`` when it cannot be moved)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    serial = 1
    while target.exists():
        serial += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{serial}")
    path.rename(target)
    # A WAL left beside a fresh database would be replayed into it.
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        wal.rename(target.with_name(target.name + "-wal"))
    path.with_name(path.name + "-shm").unlink(missing_ok=True)
    return target
