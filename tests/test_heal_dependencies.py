"""Dependency-aware recovery on real parts: a web service that needs
PostgreSQL. Stopping PostgreSQL must lead to one database recovery and no
pointless restart of the web service, which is held and then found healthy."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_heal_database import START, postgres_restored  # noqa: F401 - fixture

pytestmark = pytest.mark.postgres

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"
DB_WEB = Path(__file__).resolve().parent / "fixtures" / "programs" / "db_web.py"


def config(api_port: int, web_port: int) -> str:
    return f"""
api: {{listen: 127.0.0.1:{api_port}}}
daemon: {{shutdown_grace: 5s}}
monitoring:
  health_check_interval: 500ms
  timeout: 2s
  failure_threshold: 1
  recovery: {{max_attempts: 3, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  database:
    check: {{type: postgres, dsn_env: TEST_PG_DSN}}
    start_command: [{", ".join(START)}]
  web:
    check: {{type: http, url: "http://127.0.0.1:{web_port}/healthz"}}
    process: {{command: [{sys.executable}, {DB_WEB}, "{web_port}"]}}
    start_period: 1s
    depends_on: [database]
"""


def status_of(daemon: DaemonProcess, name: str) -> str:
    return str(daemon.get(f"/api/v1/services/{name}")[1]["status"])


def test_stopping_postgres_recovers_the_database_and_holds_the_web(
    medic_daemon: DaemonFactory,
    pg_dsn: str,
    postgres_restored: None,  # noqa: F811
) -> None:
    daemon = medic_daemon(config(free_port(), free_port()), env={"TEST_PG_DSN": pg_dsn})
    for name in ("database", "web"):
        wait_for(lambda n=name: status_of(daemon, n) == "healthy", 20, message=f"{name} healthy")
    time.sleep(1.2)  # past the web's 1 s start_period, so its failures count
    subprocess.run(["pg_ctlcluster", "15", "main", "stop", "-m", "immediate"], check=True)

    def database_recovered() -> bool:
        rows = daemon.get("/api/v1/recoveries?service=database")[1]["recoveries"]
        return bool(rows) and rows[0]["outcome"] == "succeeded"

    wait_for(database_recovered, 60, interval=0.2, message="the database is recovered")
    wait_for(lambda: status_of(daemon, "web") == "healthy", 20, message="web healthy again")
    recoveries = daemon.get("/api/v1/recoveries")[1]["recoveries"]
    assert [(r["service"], r["playbook"]) for r in recoveries] == [
        ("database", "reconnect-database")
    ], "the web service was restarted although only its database failed"
    assert recoveries[0]["failure_type"] == "database_connection"
    web = daemon.get("/api/v1/services/web")[1]
    holds = web["recent_holds"]
    assert holds and holds[0]["data"]["reason"] == "dependency"
    assert "database" in holds[0]["data"]["detail"]
    held = daemon.find_logs(event="recovery.held", service="web", reason="dependency")
    assert held, "the web service was never held for its dependency"
