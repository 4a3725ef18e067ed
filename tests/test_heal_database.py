"""End to end on the real PostgreSQL: it is stopped hard under a running medic,
which classifies ``database_connection``, runs the shipped
``reconnect-database`` playbook (start it with the service's
``start_command``, reconnect medic's own pool, wait until healthy), and shows
every step in the recovery history.

PostgreSQL is restarted in ``finally`` whatever happens, and the test waits
until it accepts connections again before it leaves.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

pytestmark = pytest.mark.postgres

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"
CLUSTER = ("15", "main")
START = ["pg_ctlcluster", *CLUSTER, "start"]


def _pg_answers(dsn: str) -> bool:
    async def select_one() -> Any:
        conn = await asyncpg.connect(dsn, timeout=2)
        try:
            return await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        return asyncio.run(select_one()) == 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


def _medic_backends(dsn: str, tag: str) -> int:
    async def count() -> Any:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            return await conn.fetchval(query, tag)
        finally:
            await conn.close()

    return int(asyncio.run(count()))


@pytest.fixture
def postgres_restored(pg_dsn: str) -> Iterator[None]:
    """Leave PostgreSQL running however the test ends."""
    try:
        yield
    finally:
        # Exit 2 means "already running": fine.
        subprocess.run(START, capture_output=True, timeout=60, check=False)
        wait_for(lambda: _pg_answers(pg_dsn), 60, interval=0.2, message="PostgreSQL back up")


def _config(api_port: int) -> str:
    return f"""
api: {{listen: 127.0.0.1:{api_port}}}
daemon: {{shutdown_grace: 5s}}
monitoring:
  health_check_interval: 1s
  timeout: 2s
  failure_threshold: 1
  recovery: {{max_attempts: 3, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  database:
    check: {{type: postgres, dsn_env: DATABASE_URL}}
    start_command: [pg_ctlcluster, "{CLUSTER[0]}", {CLUSTER[1]}, start]
"""


def _service(daemon: DaemonProcess) -> dict[str, Any]:
    status, body = daemon.get("/api/v1/services/database")
    assert status == 200, body
    return dict(body)


def _finished_recovery(daemon: DaemonProcess) -> dict[str, Any] | None:
    status, body = daemon.get("/api/v1/recoveries?service=database")
    assert status == 200, body
    done = [r for r in body["recoveries"] if r["outcome"] not in ("running", "waiting_approval")]
    return done[-1] if done else None


def test_stopped_postgres_is_started_and_medic_reconnects(
    medic_daemon: DaemonFactory, pg_dsn: str, postgres_restored: None
) -> None:
    tag = f"medic-e2e-{secrets.token_hex(4)}"
    daemon = medic_daemon(
        _config(free_port()), env={"DATABASE_URL": f"{pg_dsn}?application_name={tag}"}
    )
    wait_for(lambda: _service(daemon)["status"] == "healthy", 15, message="database healthy")

    subprocess.run(["pg_ctlcluster", *CLUSTER, "stop", "-m", "immediate"], check=True, timeout=60)

    record = wait_for(lambda: _finished_recovery(daemon), 90, interval=0.2, message="recovery")
    assert record["failure_type"] == "database_connection", record
    assert record["playbook"] == "reconnect-database"
    assert record["facts"]["reason"] in ("connection refused", "connection dropped"), record
    steps = [(s["action"], s["outcome"]) for s in record["steps"]]
    assert steps == [
        ("start_service", "succeeded"),
        ("reconnect", "succeeded"),
        ("wait_healthy", "succeeded"),
    ], record["steps"]
    assert record["steps"][0]["detail"] == "started with pg_ctlcluster 15 main start"
    assert record["steps"][1]["detail"].startswith("reconnected to 127.0.0.1:5432/medic: SELECT 1")
    assert record["outcome"] == "succeeded", record

    assert _pg_answers(pg_dsn)
    assert _service(daemon)["status"] == "healthy"
    # medic's own pool holds a live connection again, under its DSN's application_name.
    assert _medic_backends(pg_dsn, tag) >= 1
