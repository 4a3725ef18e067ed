"""Retention on a real SQLite store: rows past ``daemon.retention.max_age`` or
beyond ``max_rows`` per table are pruned with their steps, unfinished work and
each service's latest transition stay, the file stops growing, and the daemon
prunes once as it starts."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medic.core.records import RecoveryStepEntry, WorkflowStepEntry
from medic.store import Store
from tests.helpers import free_port
from tests.plugins.daemon import DaemonFactory

DAY = 86400.0
OUTPUT = "x" * 4000  # a step's captured output: what makes the file big


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store.in_state_dir(tmp_path / "state")
    yield db
    db.close()


def fill(store: Store, n: int, *, service: str = "web") -> None:
    """``n`` finished rows in each table, recoveries and runs with two steps each."""
    for i in range(n):
        store.record_transition(service, "healthy", "unhealthy", "service_crash", f"t{i}")
        rec = store.start_recovery(service, "service_crash", "restart-container", "auto")
        for pos in range(2):
            store.add_recovery_step(
                rec,
                RecoveryStepEntry(
                    pos, "steps", "run_command", "", "succeeded", "", OUTPUT, time.time(), 0.1
                ),
            )
        store.set_recovery_status(rec, "succeeded", "ok")
        run = store.start_run("nightly", "schedule")
        for name in ("a", "b"):
            store.add_workflow_step(
                run,
                WorkflowStepEntry(
                    name, "run_command", "succeeded", 1, "", OUTPUT, time.time(), 0.1
                ),
            )
        store.finish_run(run, "succeeded", "ok")
        store.audit("operator.check", service, who="alice")


def age(store: Store, table: str, column: str, first_ids: int, by_s: float) -> None:
    """Make the first ``first_ids`` rows of ``table`` older, through a connection of its own."""
    with sqlite3.connect(store.path) as db:
        db.execute(f"UPDATE {table} SET {column} = {column} - ? WHERE id <= ?", (by_s, first_ids))


def count(store: Store, table: str) -> int:
    with sqlite3.connect(store.path) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def orphans(store: Store) -> int:
    with sqlite3.connect(store.path) as db:
        return int(
            db.execute(
                "SELECT (SELECT COUNT(*) FROM recovery_steps WHERE recovery_id NOT IN"
                " (SELECT id FROM recoveries)) + (SELECT COUNT(*) FROM workflow_steps"
                " WHERE run_id NOT IN (SELECT id FROM workflow_runs))"
            ).fetchone()[0]
        )


TABLES = (
    ("transitions", "at"),
    ("recoveries", "started_at"),
    ("workflow_runs", "started_at"),
    ("audit", "at"),
)


def test_old_rows_go_by_age_and_by_count_with_their_steps(store: Store) -> None:
    fill(store, 300)
    for table, column in TABLES:
        age(store, table, column, 50, 40 * DAY)
    removed = store.prune(max_age_s=30 * DAY, max_rows=200)

    # By age: the 50 oldest of each table; by count: the next 50 (300 - 50 - 200).
    assert removed == 4 * 100
    for table, _ in TABLES:
        assert count(store, table) == 200, table
    assert count(store, "recovery_steps") == 2 * 200
    assert count(store, "workflow_steps") == 2 * 200
    assert orphans(store) == 0
    rows, total = store.recoveries(limit=1000)
    assert total == 200
    assert min(r.id for r in rows) == 101  # the newest are kept
    assert store.prune(max_age_s=30 * DAY, max_rows=200) == 0


def test_unfinished_work_is_never_pruned(store: Store) -> None:
    running = store.start_recovery("web", "service_crash", "restart-container", "auto")
    waiting = store.start_recovery("db", None, "approve-me", "auto", status="waiting_approval")
    run = store.start_run("long", "manual")
    store.add_workflow_step(
        run, WorkflowStepEntry("a", "run_command", "succeeded", 1, "", "", time.time(), 0.1)
    )
    fill(store, 150)
    for table, column in TABLES:
        age(store, table, column, 10**9, 40 * DAY)
    store.prune(max_age_s=30 * DAY, max_rows=100)

    assert {r.id for r in store.recoveries(limit=10)[0]} == {running, waiting}
    assert [r.id for r in store.runs("long")] == [run]
    assert len(store.runs("long")[0].steps) == 1
    store.add_recovery_step(
        running, RecoveryStepEntry(0, "steps", "sleep", "", "succeeded", "", "", time.time(), 1)
    )
    store.set_recovery_status(running, "succeeded")
    assert count(store, "audit") == 0


def test_each_service_keeps_its_latest_transition(store: Store) -> None:
    store.record_transition("quiet", "unknown", "healthy", None, "first check")
    fill(store, 120, service="busy")
    age(store, "transitions", "at", 10**9, 40 * DAY)
    store.prune(max_age_s=30 * DAY, max_rows=100)

    with sqlite3.connect(store.path) as db:
        kept = db.execute("SELECT service, detail FROM transitions ORDER BY id").fetchall()
    assert kept == [("quiet", "first check"), ("busy", "t119")]
    # Healthy since long before the window: its uptime is still known.
    assert store.uptime_percentage("quiet", 7 * DAY) == 100.0


def test_the_file_stops_growing_once_the_tables_are_full(store: Store) -> None:
    def size() -> int:
        wal = store.path.with_name(store.path.name + "-wal")
        return store.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    sizes = []
    for _ in range(6):
        fill(store, 400)
        store.prune(max_age_s=30 * DAY, max_rows=400)
        sizes.append(size())
    assert count(store, "recoveries") == 400
    # Round 1 fills the tables; round 2 reaches the high-water mark (old and
    # new rows side by side before the prune); after that the freed pages are reused.
    assert max(sizes[2:]) <= sizes[1] * 1.05, sizes


def test_the_daemon_prunes_as_it_starts(medic_daemon: DaemonFactory) -> None:
    state = medic_daemon.state_dir
    old = Store.in_state_dir(state)
    fill(old, 150)
    for table, column in TABLES:
        age(old, table, column, 100, 3 * DAY)
    old.close()

    daemon = medic_daemon(
        f"""
api: {{listen: 127.0.0.1:{free_port()}}}
daemon: {{retention: {{max_age: 1d, max_rows: 100}}}}
"""
    )
    code, body = daemon.get("/api/v1/recoveries?limit=1000")
    assert code == 200
    assert body["total"] == 50
    assert min(r["id"] for r in body["recoveries"]) == 101
    _, audit = daemon.get("/api/v1/audit?limit=1000")
    assert len(audit["audit"]) == 50
    assert daemon.wait_for_log(event="history.pruned")["rows"] == 4 * 100
