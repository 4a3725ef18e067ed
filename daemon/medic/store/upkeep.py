"""What spans the tables: ending the work a crash cut off, and retention."""

from __future__ import annotations

import sqlite3
import time

from medic.core.logging import get_logger
from medic.store.db import Database
from medic.store.recoveries import UNFINISHED

# Retention: per table, the column that dates a row and which rows may go at
# all. Unfinished work is never pruned (its steps are still being written), and
# each service keeps its latest transition, so its uptime stays known.
_PRUNABLE = (
    ("transitions", "at", "id NOT IN (SELECT MAX(id) FROM transitions GROUP BY service)"),
    ("recoveries", "started_at", "status NOT IN ('running', 'waiting_approval')"),
    ("workflow_runs", "started_at", "status != 'running'"),
    ("audit", "at", "1"),
)

log = get_logger("Store")


class Upkeep(Database):
    def mark_interrupted(self) -> int:
        """Recoveries and workflow runs cut off by a crash end as ``interrupted``;
        how many. Counted first and written as any write (it may wait)."""
        now = time.time()
        marks = ",".join("?" * len(UNFINISHED))
        cut_off = f"FROM recoveries WHERE status IN ({marks})"
        n = self._db.execute(f"SELECT COUNT(*) {cut_off}", UNFINISHED).fetchone()[0]
        n += self._db.execute(
            "SELECT COUNT(*) FROM workflow_runs WHERE status='running'"
        ).fetchone()[0]
        self._write(
            "interrupted.mark",
            (
                f"UPDATE recoveries SET status='interrupted', ended_at=?,"
                f" detail=COALESCE(detail, 'cut off by a daemon stop or crash')"
                f" WHERE status IN ({marks})",
                (now, *UNFINISHED),
            ),
            (
                "UPDATE workflow_runs SET status='interrupted', ended_at=? WHERE status='running'",
                (now,),
            ),
        )
        return int(n)

    def add_interrupted_note(
        self, note: str, recovery_id: int | None = None, run_id: int | None = None
    ) -> None:
        """Append ``note`` to the detail of an interrupted recovery or run."""
        table, key = (
            ("recoveries", recovery_id) if recovery_id is not None else ("workflow_runs", run_id)
        )
        self._write(
            "interrupted.note",
            (
                f"UPDATE {table} SET detail=COALESCE(detail || '; ', '') || ?"
                " WHERE id=? AND status='interrupted'",
                (note, key),
            ),
        )

    def prune(self, max_age_s: float, max_rows: int) -> int:
        """Delete rows older than ``max_age_s`` and beyond the newest ``max_rows``
        per table; the steps of a deleted recovery or run go with it (cascade).

        No VACUUM: SQLite reuses the pages freed here for new rows, so the file
        stops growing once each table holds ``max_rows``, without rewriting the
        whole database on the event loop.

        Skipped while writes wait (they come first, and would be pruned out of
        order); one that fails is logged and tried again at the next prune.
        """
        if self.backlog.health().pending_writes:
            return 0
        try:
            return self._prune(time.time() - max_age_s, max_rows)
        except sqlite3.Error as exc:
            log.warning("history.prune_failed", message="Cannot prune the history", error=str(exc))
            return 0

    def _prune(self, cutoff: float, max_rows: int) -> int:
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
