"""Durable history in SQLite (WAL): state transitions, recoveries with their
steps, workflow runs, and an audit trail of held actions and operator calls.

Every write commits before the caller reports it, so a ``kill -9`` loses
nothing that was already shown. Writes are small and local; they run on the
event loop's thread.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medic.core.logging import get_logger
from medic.host.subprocesses import proc_start_time

log = get_logger("Store")

_SCHEMA = """
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
# Each is idempotent, so a database made by this version (which ran _SCHEMA
# first) and an older one end up the same.
_MIGRATIONS = (
    # 1: workflows an operator stopped stay stopped across restarts.
    "CREATE TABLE IF NOT EXISTS workflow_control ("
    " workflow TEXT PRIMARY KEY, paused INTEGER NOT NULL, at REAL NOT NULL)",
    # 2: the sessions of running step commands, so that the next start can end
    # what a crash left running (a row lives while its command runs).
    "CREATE TABLE IF NOT EXISTS step_sessions ("
    " pid INTEGER PRIMARY KEY, start_time INTEGER NOT NULL, command TEXT,"
    " kill_grace REAL NOT NULL, recovery_id INTEGER, run_id INTEGER, at REAL NOT NULL)",
)

UNFINISHED = ("running", "waiting_approval")

# Retention: per table, the column that dates a row and which rows may go at
# all. Unfinished work is never pruned (its steps are still being written), and
# each service keeps its latest transition, so its uptime stays known.
_PRUNABLE = (
    ("transitions", "at", "id NOT IN (SELECT MAX(id) FROM transitions GROUP BY service)"),
    ("recoveries", "started_at", "status NOT IN ('running', 'waiting_approval')"),
    ("workflow_runs", "started_at", "status != 'running'"),
    ("audit", "at", "1"),
)
# A checkpointed WAL is cut back to this size instead of keeping its high-water mark.
_WAL_LIMIT_BYTES = 8 << 20


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@dataclass(frozen=True)
class StepSessions:
    """A ``SessionTracker`` that keeps the sessions of one recovery's or one
    workflow run's commands in the store while they run."""

    store: Store
    recovery_id: int | None = None
    run_id: int | None = None
    _started: dict[int, int] = field(default_factory=dict)

    def started(self, pid: int, argv: Sequence[str], kill_grace_s: float) -> None:
        start_time = proc_start_time(pid)
        if start_time is None:
            return  # already gone: nothing to end later
        try:
            self.store.record_session(
                pid, start_time, shlex.join(argv), kill_grace_s, self.recovery_id, self.run_id
            )
        except sqlite3.Error as exc:
            log.warning("Cannot record a step command's session", pid=pid, error=str(exc))
            return
        self._started[pid] = start_time

    def ended(self, pid: int) -> None:
        start_time = self._started.pop(pid, None)
        if start_time is None:
            return
        try:
            self.store.forget_session(pid, start_time)
        except sqlite3.Error as exc:
            log.warning("Cannot forget a step command's session", pid=pid, error=str(exc))


class StateDirUnusable(Exception):
    """The state directory cannot be created or its database opened."""


class Store:
    _db: sqlite3.Connection

    def __init__(self, path: Path, *, connect: bool = True) -> None:
        """The history at ``path``, opened at once unless ``connect=False``: the
        daemon opens it with ``open()`` when its store part starts."""
        self.path = path
        self._connected = False
        if connect:
            self.open()

    def open(self) -> None:
        """Create the state directory, open the database and bring its schema up to date."""
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirUnusable(
                f"cannot create the state directory {path.parent}: {exc.strerror or exc}"
                " (daemon.state_dir or --state-dir)"
            ) from exc
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._connected = True
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            self.close()
            raise StateDirUnusable(
                f"cannot open {path} in the state directory {path.parent}: {exc}"
                " (is it writable by this user? daemon.state_dir or --state-dir)"
            ) from exc
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        for number, statement in enumerate(_MIGRATIONS[version:], start=version + 1):
            with self._tx() as db:
                db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, connect: bool = True) -> Store:
        return cls(state_dir / "medic.db", connect=connect)

    def close(self) -> None:
        """Close the database (nothing to do when it was never opened)."""
        if self._connected:
            self._connected = False
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # transitions -----------------------------------------------------------

    def record_transition(
        self, service: str, old: str, new: str, failure_type: str | None, detail: str
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO transitions(service, old, new, failure_type, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (service, old, new, failure_type, detail[:2000], time.time()),
            )

    def uptime_percentage(
        self, service: str, window_s: float, now: float | None = None
    ) -> float | None:
        """Share of the window the service was healthy, from recorded transitions.

        Time before the first recorded state in the window counts as the state
        the service was in then; unknown time is left out. None if nothing known.
        """
        now = time.time() if now is None else now
        start = now - window_s
        before = self._db.execute(
            "SELECT new, at FROM transitions WHERE service=? AND at<=?"
            " ORDER BY at DESC, id DESC LIMIT 1",
            (service, start),
        ).fetchone()
        rows = self._db.execute(
            "SELECT new, at FROM transitions WHERE service=? AND at>? ORDER BY at, id",
            (service, start),
        ).fetchall()
        return _healthy_share(before["new"] if before else None, start, rows, now)

    # recoveries --------------------------------------------------------------

    def start_recovery(
        self,
        service: str,
        failure_type: str | None,
        playbook: str,
        trigger: str,
        status: str = "running",
        dry_run: bool = False,
        facts: dict[str, Any] | None = None,
    ) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO recoveries(service, failure_type, playbook, trigger, status, dry_run,"
                " started_at, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    service,
                    failure_type,
                    playbook,
                    trigger,
                    status,
                    int(dry_run),
                    time.time(),
                    json.dumps(facts or {}, default=str),
                ),
            )
            return int(cur.lastrowid or 0)

    def add_recovery_step(
        self,
        recovery_id: int,
        position: int,
        phase: str,
        action: str,
        description: str,
        outcome: str,
        detail: str,
        output: str,
        started_at: float,
        duration: float,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO recovery_steps(recovery_id, position, phase, action, description,"
                " outcome, detail, output, started_at, duration) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    recovery_id,
                    position,
                    phase,
                    action,
                    description,
                    outcome,
                    detail[:2000],
                    output[-4096:],
                    started_at,
                    duration,
                ),
            )

    def set_recovery_status(self, recovery_id: int, status: str, detail: str | None = None) -> None:
        ended = None if status in UNFINISHED else time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE recoveries SET status=?, ended_at=?, detail=COALESCE(?, detail) WHERE id=?",
                (status, ended, detail, recovery_id),
            )

    def recoveries(
        self, service: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        where, args = ("WHERE service=?", [service]) if service else ("", [])
        total = int(
            self._db.execute(f"SELECT COUNT(*) FROM recoveries {where}", args).fetchone()[0]
        )
        rows = self._db.execute(
            f"SELECT * FROM recoveries {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [self._recovery_dict(row) for row in rows], total

    def recovery(self, recovery_id: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM recoveries WHERE id=?", (recovery_id,)).fetchone()
        return self._recovery_dict(row) if row else None

    def _recovery_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        steps = self._db.execute(
            "SELECT * FROM recovery_steps WHERE recovery_id=? ORDER BY id", (row["id"],)
        ).fetchall()
        ended = row["ended_at"]
        return {
            "id": row["id"],
            "service": row["service"],
            "failure_type": row["failure_type"],
            "playbook": row["playbook"],
            "trigger": row["trigger"],
            "outcome": row["status"],
            "dry_run": bool(row["dry_run"]),
            "started_at": iso(row["started_at"]),
            "ended_at": iso(ended),
            "duration_seconds": round(ended - row["started_at"], 3) if ended else None,
            "detail": row["detail"],
            "facts": json.loads(row["facts"] or "{}"),
            "steps": [_step_dict(s) for s in steps],
        }

    def recovery_starts(self, since: float) -> list[tuple[str, float, str, bool]]:
        """(service, start time, trigger, dry run) of every recovery started since
        ``since``, oldest first."""
        rows = self._db.execute(
            "SELECT service, started_at, trigger, dry_run FROM recoveries"
            " WHERE started_at >= ? ORDER BY started_at",
            (since,),
        ).fetchall()
        return [(str(row[0]), float(row[1]), str(row[2]), bool(row[3])) for row in rows]

    def mark_interrupted(self) -> int:
        """Recoveries and workflow runs cut off by a crash end as ``interrupted``."""
        now = time.time()
        marks = ",".join("?" * len(UNFINISHED))
        with self._tx() as db:
            n = db.execute(
                f"UPDATE recoveries SET status='interrupted', ended_at=?,"
                f" detail=COALESCE(detail, 'cut off by a daemon stop or crash')"
                f" WHERE status IN ({marks})",
                (now, *UNFINISHED),
            ).rowcount
            n += db.execute(
                "UPDATE workflow_runs SET status='interrupted', ended_at=? WHERE status='running'",
                (now,),
            ).rowcount
        return int(n)

    def add_interrupted_note(
        self, note: str, recovery_id: int | None = None, run_id: int | None = None
    ) -> None:
        """Append ``note`` to the detail of an interrupted recovery or run."""
        table, key = (
            ("recoveries", recovery_id) if recovery_id is not None else ("workflow_runs", run_id)
        )
        with self._tx() as db:
            db.execute(
                f"UPDATE {table} SET detail=COALESCE(detail || '; ', '') || ?"
                " WHERE id=? AND status='interrupted'",
                (note, key),
            )

    # step command sessions ---------------------------------------------------

    def record_session(
        self,
        pid: int,
        start_time: int,
        command: str,
        kill_grace: float,
        recovery_id: int | None,
        run_id: int | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO step_sessions(pid, start_time, command, kill_grace,"
                " recovery_id, run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (pid, start_time, command[:2000], kill_grace, recovery_id, run_id, time.time()),
            )

    def forget_session(self, pid: int, start_time: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM step_sessions WHERE pid=? AND start_time=?", (pid, start_time))

    def recorded_sessions(self) -> list[dict[str, Any]]:
        """Step command sessions recorded as running (by a daemon that did not end them)."""
        rows = self._db.execute("SELECT * FROM step_sessions ORDER BY at").fetchall()
        return [dict(row) for row in rows]

    def forget_sessions(self) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM step_sessions")

    # workflows ---------------------------------------------------------------

    def start_run(self, workflow: str, trigger: str) -> int:
        """Record a run as ``running`` from now (a queued run waits as running)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO workflow_runs(workflow, trigger, status, started_at)"
                " VALUES (?, ?, 'running', ?)",
                (workflow, trigger, time.time()),
            )
            return int(cur.lastrowid or 0)

    def mark_run_started(self, run_id: int) -> None:
        """A queued run got its slot: its start time becomes now."""
        with self._tx() as db:
            db.execute("UPDATE workflow_runs SET started_at=? WHERE id=?", (time.time(), run_id))

    def finish_run(self, run_id: int, status: str, detail: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE workflow_runs SET status=?, ended_at=?, detail=? WHERE id=?",
                (status, time.time(), detail[:2000], run_id),
            )

    def add_workflow_step(
        self,
        run_id: int,
        name: str,
        action: str,
        outcome: str,
        attempts: int,
        detail: str,
        output: str,
        started_at: float | None,
        duration: float | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO workflow_steps(run_id, name, action, outcome, attempts, detail,"
                " output, started_at, duration) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    name,
                    action,
                    outcome,
                    attempts,
                    detail[:2000],
                    output[-4096:],
                    started_at,
                    duration,
                ),
            )

    def set_workflow_paused(self, workflow: str, paused: bool) -> None:
        """An operator's ``stop`` (paused) or ``start``; kept across restarts."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO workflow_control(workflow, paused, at) VALUES (?, ?, ?)"
                " ON CONFLICT(workflow) DO UPDATE SET paused=excluded.paused, at=excluded.at",
                (workflow, int(paused), time.time()),
            )

    def paused_workflows(self) -> set[str]:
        rows = self._db.execute("SELECT workflow FROM workflow_control WHERE paused=1").fetchall()
        return {str(row[0]) for row in rows}

    def runs(self, workflow: str, limit: int = 20) -> list[dict[str, Any]]:
        """The workflow's runs, newest first, each with its steps."""
        rows = self._db.execute(
            "SELECT * FROM workflow_runs WHERE workflow=? ORDER BY id DESC LIMIT ?",
            (workflow, limit),
        ).fetchall()
        return [self._run_dict(row) for row in rows]

    def workflow_run(self, run_id: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM workflow_runs WHERE id=?", (run_id,)).fetchone()
        return self._run_dict(row) if row else None

    def workflow_counts(self) -> dict[str, dict[str, Any]]:
        """Per workflow: run_count, error_count (failed or timed out), last_run (its start)
        and last_outcome (of the last finished run)."""
        rows = self._db.execute(
            "SELECT c.workflow, c.runs, c.errors, last.started_at AS last_at,"
            " (SELECT status FROM workflow_runs WHERE workflow=c.workflow AND ended_at IS NOT NULL"
            "  ORDER BY id DESC LIMIT 1) AS last_status"
            " FROM (SELECT workflow, COUNT(*) AS runs, SUM(status IN ('failed', 'timed_out'))"
            "  AS errors, MAX(id) AS last_id FROM workflow_runs GROUP BY workflow) AS c"
            " JOIN workflow_runs AS last ON last.id = c.last_id"
        ).fetchall()
        return {
            row["workflow"]: {
                "run_count": int(row["runs"]),
                "error_count": int(row["errors"] or 0),
                "last_run": iso(row["last_at"]),
                "last_outcome": row["last_status"],
            }
            for row in rows
        }

    def _run_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        steps = self._db.execute(
            "SELECT * FROM workflow_steps WHERE run_id=? ORDER BY id", (row["id"],)
        ).fetchall()
        ended = row["ended_at"]
        return {
            "id": row["id"],
            "workflow": row["workflow"],
            "trigger": row["trigger"],
            "outcome": row["status"],
            "started_at": iso(row["started_at"]),
            "ended_at": iso(ended),
            "duration_seconds": round(ended - row["started_at"], 3) if ended else None,
            "detail": row["detail"],
            "steps": [_workflow_step_dict(s) for s in steps],
        }

    # audit -------------------------------------------------------------------

    def audit(self, kind: str, service: str | None = None, **data: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO audit(at, kind, service, data) VALUES (?, ?, ?, ?)",
                (time.time(), kind, service, json.dumps(data, default=str)),
            )

    def audit_entries(
        self, kind: str | None = None, limit: int = 100, service: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; ``kind`` is exact, or a prefix when it ends in ``.*``."""
        where, args = _audit_filter(kind, service)
        rows = self._db.execute(
            f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", [*args, limit]
        ).fetchall()
        return [
            {
                "id": r["id"],
                "at": iso(r["at"]),
                "kind": r["kind"],
                "service": r["service"],
                "data": json.loads(r["data"] or "{}"),
            }
            for r in rows
        ]

    # retention ---------------------------------------------------------------

    def prune(self, max_age_s: float, max_rows: int) -> int:
        """Delete rows older than ``max_age_s`` and beyond the newest ``max_rows``
        per table; the steps of a deleted recovery or run go with it (cascade).

        No VACUUM: SQLite reuses the pages freed here for new rows, so the file
        stops growing once each table holds ``max_rows``, without rewriting the
        whole database on the event loop.
        """
        cutoff = time.time() - max_age_s
        removed = 0
        with self._tx() as db:
            for table, column, prunable in _PRUNABLE:
                removed += db.execute(
                    f"DELETE FROM {table} WHERE {column} < ? AND {prunable}", (cutoff,)
                ).rowcount
                removed += db.execute(
                    f"DELETE FROM {table} WHERE id <= (SELECT id FROM {table} ORDER BY id DESC"
                    f" LIMIT 1 OFFSET ?) AND {prunable}",
                    (max_rows,),
                ).rowcount
        return removed


def _audit_filter(kind: str | None, service: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if kind and kind.endswith("*"):
        prefix = kind[:-1]
        clauses.append("substr(kind, 1, ?) = ?")
        args += [len(prefix), prefix]
    elif kind:
        clauses.append("kind = ?")
        args.append(kind)
    if service:
        clauses.append("service = ?")
        args.append(service)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def _step_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "position": row["position"],
        "phase": row["phase"],
        "action": row["action"],
        "description": row["description"],
        "outcome": row["outcome"],
        "detail": row["detail"],
        "output": row["output"],
        "started_at": iso(row["started_at"]),
        "duration_seconds": round(row["duration"], 4) if row["duration"] is not None else None,
    }


def _workflow_step_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "action": row["action"],
        "outcome": row["outcome"],
        "attempts": row["attempts"],
        "detail": row["detail"],
        "output": row["output"],
        "started_at": iso(row["started_at"]),
        "duration_seconds": round(row["duration"], 4) if row["duration"] is not None else None,
    }


# Time the service was unobserved or deliberately stopped is not downtime.
_NOT_COUNTED = (None, "unknown", "stopped_by_operator")


def _healthy_share(
    state: str | None, start: float, rows: list[sqlite3.Row], now: float
) -> float | None:
    healthy = known = 0.0
    cursor = start
    for row in rows:
        span = row["at"] - cursor
        if state not in _NOT_COUNTED:
            known += span
            healthy += span if state == "healthy" else 0.0
        state, cursor = row["new"], row["at"]
    if state not in _NOT_COUNTED:
        known += now - cursor
        healthy += (now - cursor) if state == "healthy" else 0.0
    if known <= 0:
        return None
    return round(100.0 * healthy / known, 3)
