"""Why ``medic.db`` cannot be opened at start, in one line: locked by another
process, corrupt (moved aside by the caller), or unusable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from medic.core.errors import MedicError


class StateDirUnusable(MedicError):
    """The state directory cannot be created or its database opened."""


class StateDirLocked(StateDirUnusable):
    """Another process keeps ``medic.db`` locked."""


OPEN_WAIT_S = 5.0
"""How long the start waits for another process's lock on ``medic.db``."""
LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
CORRUPT = (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)


class Malformed(MedicError):
    """``PRAGMA quick_check`` found damage."""


def corrupt(exc: sqlite3.Error | Malformed) -> bool:
    return isinstance(exc, Malformed) or getattr(exc, "sqlite_errorcode", None) in CORRUPT


def unusable(path: Path, exc: sqlite3.Error | Malformed) -> StateDirUnusable:
    """The one-line reason a database cannot be opened."""
    if getattr(exc, "sqlite_errorcode", None) in LOCKED:
        return StateDirLocked(
            f"{path} is locked by another process ({exc}; waited {OPEN_WAIT_S:g}s):"
            " stop what holds it (a sqlite3 shell, a backup job) and start medic again"
        )
    return StateDirUnusable(
        f"cannot open {path} in the state directory {path.parent}: {exc}"
        " (is it writable by this user? daemon.state_dir or --state-dir)"
    )
