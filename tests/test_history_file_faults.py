"""``medic.db`` unusable at start, on real files and real processes.

A corrupt file is moved aside to ``medic.db.corrupt-<UTC time>`` with one
loud warning naming both paths, and medic starts on a fresh history; a file
that another process keeps locked stops the start with one clear line on
stderr naming the file and exit code 1. Never a traceback.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medic.store import Store
from tests.helpers import free_port
from tests.plugins.daemon import DaemonFactory
from tests.test_cli_client import run_cli

GARBAGE = b"this is not an SQLite database, whatever its name says\n" * 200

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("locked", flush=True)
time.sleep(120)
"""


def config() -> str:
    return f"api: {{listen: 127.0.0.1:{free_port()}}}\n"


def damage(db: Path) -> None:
    """A history with a sound header whose pages are overwritten after it."""
    store = Store(db)
    for _ in range(200):
        store.set_recovery_status(
            store.start_recovery("web", None, "p", "auto"), "failed", "x" * 500
        )
    store.close()  # the last connection: the WAL is checkpointed into the file
    with db.open("r+b") as file:
        file.seek(3 * 4096)
        file.write(GARBAGE[: 10 * 4096])


@pytest.mark.parametrize("harm", ["garbage", "damaged pages"])
def test_a_corrupt_history_is_moved_aside_loudly_and_medic_starts_afresh(
    medic_daemon: DaemonFactory, harm: str
) -> None:
    state = medic_daemon.state_dir
    state.mkdir(parents=True)
    db = state / "medic.db"
    if harm == "garbage":
        db.write_bytes(GARBAGE)
    else:
        damage(db)
    before = db.read_bytes()

    daemon = medic_daemon(config())

    (warning,) = daemon.find_logs(event="history.corrupt_moved_aside")
    assert warning["level"] == "warning"
    assert warning["path"] == str(db)
    moved = Path(warning["moved_to"])
    assert moved.parent == state
    assert re.fullmatch(r"medic\.db\.corrupt-\d{8}T\d{6}Z", moved.name), moved.name
    assert moved.read_bytes() == before, "the corrupt file is kept for the operator"
    assert "Traceback" not in daemon.log_text()
    code, body = daemon.get("/api/v1/recoveries")
    assert (code, body["total"]) == (200, 0)
    assert daemon.stop() == 0

    # What the fresh history holds survives the next start, with no second move.
    again = medic_daemon(config())
    assert again.find_logs(event="history.corrupt_moved_aside") == []
    assert [p.name for p in state.glob("medic.db.corrupt-*")] == [moved.name]
    assert again.find_logs(event="daemon.running")


@pytest.fixture
def lock_holder() -> Iterator[list[subprocess.Popen[str]]]:
    held: list[subprocess.Popen[str]] = []
    yield held
    for proc in held:
        proc.kill()
        proc.wait()


def hold_lock(db: Path, holders: list[subprocess.Popen[str]]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db)], stdout=subprocess.PIPE, text=True
    )
    holders.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"


@pytest.mark.parametrize("made_by", ["medic", "another program"])
def test_a_history_locked_by_another_process_stops_the_start_with_one_line(
    medic_daemon: DaemonFactory,
    tmp_path: Path,
    lock_holder: list[subprocess.Popen[str]],
    made_by: str,
) -> None:
    state = medic_daemon.state_dir
    state.mkdir(parents=True)
    db = state / "medic.db"
    if made_by == "medic":
        Store(db).close()  # WAL: the holder keeps writers out, readers still read
    else:
        sqlite3.connect(db).close()  # a rollback journal: the holder keeps everyone out
    hold_lock(db, lock_holder)
    path = tmp_path / "config.yaml"
    path.write_text(config())

    result = run_cli(
        "run", "--config", str(path), "--state-dir", str(state), "--log-format", "json"
    )

    assert result.returncode == 1, result.stderr
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1, result.stderr
    assert plain[0].startswith(f"medic: not starting: {db} is locked by another process"), plain
    assert "Traceback" not in result.stderr
    assert not list(state.glob("medic.db.corrupt-*")), "a locked file is not a corrupt one"

    # Once the other process lets go, medic starts on the same file.
    holder = lock_holder.pop()
    holder.kill()
    holder.wait()
    daemon = medic_daemon(config())
    assert daemon.find_logs(event="history.corrupt_moved_aside") == []
