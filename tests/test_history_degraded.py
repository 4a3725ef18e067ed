"""The history on a full state disk (a real tmpfs, filled up): no write raises,
the writes wait in memory in order (bounded, the oldest dropped and counted),
and go in, with the ids handed out meanwhile, once space returns; what they
wrote survives a reopen. The daemon keeps healing a crashed container all
along and says so in ``/api/v1/health``, ``/metrics`` and ``medic status``."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from medic.core.records import RecoveryStepEntry
from medic.store import Store
from medic.store.backlog import WriteBacklog
from tests.chromium import Chromium, Page, chromium_binary
from tests.helpers import SETUP_HINT, async_wait_for, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle
from tests.plugins.fulldisk import FullDisk
from tests.plugins.inprocess import OrchestratorFactory
from tests.test_cli_client import run_cli
from tests.test_heal_container import (
    answers_200,
    finished_recoveries,
    metric_samples,
    web_config,
)
from tests.test_status_page import ARTIFACTS


@pytest.fixture
def store(full_disk: FullDisk) -> Iterator[Store]:
    db = Store.in_state_dir(full_disk.mount / "state")
    yield db
    db.close()


def step(position: int, action: str) -> RecoveryStepEntry:
    return RecoveryStepEntry(position, "steps", action, "", "succeeded", "", "", time.time(), 0.1)


def on_disk(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read through a read-only connection of its own: what is on disk, not in memory."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [tuple(row) for row in db.execute(sql).fetchall()]
    finally:
        db.close()


def rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    return on_disk(store.path, sql)


def test_writes_wait_while_the_disk_is_full_and_go_in_when_it_is_not(
    store: Store, full_disk: FullDisk
) -> None:
    first = store.start_recovery("web", "service_crash", "restart-container", "auto")
    full_disk.fill()

    with capture_logs() as logs:
        # None of these raises, though the disk takes none of them.
        store.record_transition("web", "healthy", "unhealthy", "service_crash", "refused")
        second = store.start_recovery("web", "service_crash", "restart-container", "auto")
        store.add_recovery_step(second, step(0, "restart_container"))
        store.add_recovery_step(second, step(1, "wait_healthy"))
        store.set_recovery_status(second, "succeeded", "healthy again")
        store.audit("circuit.closed", "web", reason="healthy")
        run = store.start_run("nightly", "schedule")
        store.finish_run(run, "succeeded", "ok")
        store.record_transition("web", "unhealthy", "healthy", None, "ok")

    assert second == first + 1, "ids go on in memory"
    health = store.backlog.health()
    assert health.status == "degraded"
    assert health.pending_writes == 9
    assert health.dropped == 0
    assert "database or disk is full" in (health.last_error or "")
    assert health.write_errors >= 9
    # One warning as it became degraded, not one per write.
    assert [e["event"] for e in logs if e["event"].startswith("history.")] == ["history.degraded"]
    assert rows(store, "SELECT id FROM recoveries") == [(first,)]
    # The store's own reads see what waits, as if it were written.
    waiting = store.recovery(second)
    assert waiting is not None
    assert (waiting.outcome, len(waiting.steps)) == ("succeeded", 2)
    assert [r.id for r in store.recoveries()[0]] == [second, first]
    assert [e.kind for e in store.audit_entries()] == ["circuit.closed"]
    assert store.backlog.flush() == 9, "still full: nothing goes in"
    assert rows(store, "SELECT id FROM recoveries") == [(first,)]

    full_disk.free()
    with capture_logs() as logs:
        assert store.backlog.flush() == 0
    assert [e["event"] for e in logs] == ["history.recovered"]
    assert logs[0]["written"] == 9
    assert store.backlog.health().status == "ok"

    # In order, with the ids handed out while they waited.
    transitions = rows(store, "SELECT new, detail FROM transitions ORDER BY id")
    assert transitions == [("unhealthy", "refused"), ("healthy", "ok")]
    record = store.recovery(second)
    assert record is not None
    assert record.outcome == "succeeded"
    assert record.detail == "healthy again"
    assert [s.action for s in record.steps] == ["restart_container", "wait_healthy"]
    assert [e.kind for e in store.audit_entries()] == ["circuit.closed"]
    assert [r.outcome for r in store.runs("nightly")] == ["succeeded"]

    # What went in later survives a reopen, and new ids go on after it.
    store.close()
    reopened = Store.in_state_dir(full_disk.mount / "state")
    try:
        assert [r.id for r in reopened.recoveries()[0]] == [second, first]
        assert reopened.start_recovery("web", None, "restart-container", "auto") == second + 1
    finally:
        reopened.close()


def test_a_later_write_takes_the_waiting_ones_with_it_in_order(
    store: Store, full_disk: FullDisk
) -> None:
    full_disk.fill()
    store.audit("one")
    store.audit("two")
    full_disk.free()

    store.audit("three")  # goes in after the two before it, without a retry tick

    assert store.backlog.health().pending_writes == 0
    assert rows(store, "SELECT kind FROM audit ORDER BY id") == [("one",), ("two",), ("three",)]


def test_past_the_limit_the_oldest_writes_are_dropped_and_counted(
    store: Store, full_disk: FullDisk
) -> None:
    store.backlog = WriteBacklog(store._commit, limit=3)
    full_disk.fill()

    with capture_logs() as logs:
        for n in range(5):
            store.audit(f"a{n}")

    health = store.backlog.health()
    assert (health.pending_writes, health.dropped) == (3, 2)
    assert [e["event"] for e in logs if e["event"].startswith("history.")] == [
        "history.degraded",
        "history.writes_dropped",
    ]
    full_disk.free()
    assert store.backlog.flush() == 0
    assert rows(store, "SELECT kind FROM audit ORDER BY id") == [("a2",), ("a3",), ("a4",)]
    assert store.backlog.health().dropped == 2


def test_writes_still_waiting_at_close_are_reported_lost(store: Store, full_disk: FullDisk) -> None:
    full_disk.fill()
    store.audit("one")
    with capture_logs() as logs:
        store.close()
    lost = [e for e in logs if e["event"] == "history.writes_lost"]
    assert len(lost) == 1
    assert lost[0]["count"] == 1
    assert lost[0]["log_level"] == "error"


def test_prune_waits_while_writes_wait(store: Store, full_disk: FullDisk) -> None:
    store.audit("old")
    full_disk.fill()
    store.audit("new")
    assert store.prune(max_age_s=0, max_rows=0) == 0
    full_disk.free()
    assert store.backlog.flush() == 0
    assert store.prune(max_age_s=0, max_rows=0) == 2


@pytest.fixture
def web(container_factory: ContainerFactory, idle_container: Any) -> ContainerHandle:
    return container_factory(name="web")


def health(daemon: DaemonProcess) -> dict[str, Any]:
    status, body = daemon.get("/api/v1/health")
    assert status == 200, "a degraded history never makes the daemon look dead"
    return dict(body)


def succeeded_recoveries(daemon: DaemonProcess) -> float:
    samples = metric_samples(daemon)
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "medic_recoveries_total" and ("outcome", "succeeded") in labels
    )


def test_a_crashed_container_is_healed_while_the_state_disk_is_full(
    full_disk: FullDisk, medic_daemon: DaemonFactory, web: ContainerHandle
) -> None:
    state = full_disk.mount / "state"
    config = web_config(free_port(), web)
    daemon = medic_daemon(config, state_dir=state)
    wait_for(lambda: daemon.find_logs(event="service.healthy"), 15, message="web healthy")
    assert health(daemon)["history"]["status"] == "ok"
    full_disk.fill()

    web.container.kill()

    # Healed exactly as on a healthy disk, though nothing of it can be written.
    wait_for(lambda: succeeded_recoveries(daemon) == 1, 30, message="the crash healed")
    assert answers_200(f"{web.url}healthz")
    assert web.status == "running"
    body = health(daemon)
    assert body["status"] == "degraded"
    history = body["history"]
    assert history["status"] == "degraded"
    assert history["pending_writes"] > 0
    assert history["dropped"] == 0
    assert "database or disk is full" in history["last_error"]
    samples = metric_samples(daemon)
    assert samples[("medic_history_write_errors_total", ())] > 0
    assert samples[("medic_history_pending_writes", ())] > 0
    assert samples[("medic_history_writes_dropped_total", ())] == 0
    printed = run_cli("status", "--url", daemon.url)
    pending = health(daemon)["history"]["pending_writes"]
    assert f"history degraded: {pending} writes pending" in printed.stdout.splitlines()[0]
    # The API shows the recovery as it shows any other; the file does not hold it yet.
    shown = finished_recoveries(daemon, 1)[0]
    assert (shown["outcome"], len(shown["steps"])) == ("succeeded", 2)
    assert on_disk(state / "medic.db", "SELECT id FROM recoveries") == []
    assert not daemon.find_logs(event="check.crashed")

    full_disk.free()

    wait_for(lambda: health(daemon)["status"] == "healthy", 15, message="history written")
    record = finished_recoveries(daemon, 1)[0]
    assert (record["service"], record["failure_type"], record["outcome"]) == (
        "web",
        "service_crash",
        "succeeded",
    )
    assert [s["action"] for s in record["steps"]] == ["restart_container", "wait_healthy"]
    assert record == shown
    assert on_disk(state / "medic.db", "SELECT id FROM recoveries") == [(record["id"],)]
    assert len(daemon.find_logs(event="history.degraded")) == 1
    assert len(daemon.find_logs(event="history.recovered")) == 1
    assert metric_samples(daemon)[("medic_history_pending_writes", ())] == 0
    assert "history degraded" not in run_cli("status", "--url", daemon.url).stdout
    assert daemon.stop() == 0

    # What went in late survives a restart.
    again = medic_daemon(config, state_dir=state)
    recoveries = again.get("/api/v1/recoveries")[1]["recoveries"]
    assert [(r["id"], r["outcome"]) for r in recoveries] == [(record["id"], "succeeded")]
    assert recoveries[0]["steps"] == record["steps"]
    changes = on_disk(state / "medic.db", "SELECT old, new FROM transitions ORDER BY id")
    assert ("healthy", "unhealthy") in changes or ("healthy", "recovering") in changes
    assert changes[-1][1] == "healthy"


async def test_the_page_shows_a_degraded_history_until_it_is_written(
    full_disk: FullDisk, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.fail(f"chromium is not installed; {SETUP_HINT}", pytrace=False)
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
services:
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
"""
    daemon = medic_daemon(config, state_dir=full_disk.mount / "state", env={"MEDIC_API_TOKEN": "t"})
    browser = Chromium(binary, tmp_path / "chromium.log")
    try:
        async with aiohttp.ClientSession(trust_env=False) as session:
            page = await browser.page(session)
            await page.send("Runtime.enable")
            await page.navigate(daemon.url + "/")
            await async_wait_for(lambda: banner(page), 10, message="the page loaded")
            assert await banner(page) == "none"

            full_disk.fill()
            status, _ = await asyncio.to_thread(
                daemon.post, "/api/v1/services/web/check", None, "t"
            )
            assert status == 200  # its audit entry waits in memory

            shown = await async_wait_for(
                lambda: banner(page, "History degraded"), 15, message="the banner"
            )
            assert "1 write pending" in shown
            await page.screenshot(ARTIFACTS / "status-page-history-degraded.png")

            full_disk.free()
            await async_wait_for(
                lambda: banner(page, "none"), 15, message="the banner gone once written"
            )
            await page.close()
    finally:
        browser.close()


async def banner(page: Page, expect: str = "") -> str | None:
    """The history banner's text ("none" without one); None until it contains ``expect``."""
    text = await page.evaluate(
        "document.getElementById('meta').textContent.startsWith('updated')"
        " ? (document.getElementById('banner-history')?.innerText ?? 'none') : null"
    )
    return str(text) if text is not None and expect in str(text) else None


def test_a_database_another_process_keeps_locked_is_not_waited_for_at_every_write(
    tmp_path: Path,
) -> None:
    store = Store.in_state_dir(tmp_path / "state")
    # Another process's long write transaction (a backup job, an admin's shell).
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"db = sqlite3.connect({str(store.path)!r}, isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True)\n"
            "sys.stdin.readline(); db.execute('COMMIT')\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
        store.audit("first")  # waits out the busy timeout once, then waits in memory
        assert "database is locked" in (store.backlog.health().last_error or "")
        t0 = time.monotonic()
        for n in range(5):
            store.audit(f"later{n}")
        assert store.audit_entries() == [], "the lock keeps the reads to what is on disk"
        assert time.monotonic() - t0 < 1.0, "each later write waited for the lock again"
        assert store.backlog.health().pending_writes == 6
    finally:
        assert locker.stdin is not None
        locker.stdin.write("\n")
        locker.stdin.close()
        locker.wait(timeout=10)
    assert store.backlog.flush() == 0
    kinds = [kind for (kind,) in rows(store, "SELECT kind FROM audit ORDER BY id")]
    assert kinds == ["first", *(f"later{n}" for n in range(5))]
    store.close()


def test_a_write_refused_for_good_is_dropped_loudly_and_the_others_go_on(
    store: Store, full_disk: FullDisk
) -> None:
    full_disk.fill()
    store.audit("before")
    # A step of a recovery that does not exist: no retry will ever write it.
    store.add_recovery_step(10**6, step(0, "sleep"))
    store.audit("after")
    full_disk.free()

    with capture_logs() as logs:
        assert store.backlog.flush() == 0

    dropped = [e for e in logs if e["event"] == "history.write_dropped"]
    assert [(e["write"], e["log_level"]) for e in dropped] == [("recovery_steps.insert", "error")]
    assert "FOREIGN KEY" in dropped[0]["error"]
    assert store.backlog.health().dropped == 1
    assert rows(store, "SELECT kind FROM audit ORDER BY id") == [("before",), ("after",)]


async def test_a_workflow_runs_and_answers_with_its_run_while_the_disk_is_full(
    full_disk: FullDisk, orchestrator: OrchestratorFactory
) -> None:
    orchestrator.state_dir = full_disk.mount / "state"
    orch = await orchestrator(
        """
workflows:
  report:
    steps:
      - {name: count, action: run_command, command: [echo, "42 orders"]}
      - {name: send, action: run_command, command: [echo, sent], depends_on: [count]}
"""
    )
    full_disk.fill()

    record = await orch.workflows.run("report")

    assert record.outcome == "succeeded"
    assert [(s.name, s.outcome) for s in record.steps] == [
        ("count", "succeeded"),
        ("send", "succeeded"),
    ]
    db = orchestrator.state_dir / "medic.db"
    assert on_disk(db, "SELECT id FROM workflow_runs") == [], "not on disk yet"
    assert orch.store.backlog.health().pending_writes > 0

    full_disk.free()  # the retry tick (every 5 s) writes it, with nothing else to write
    await async_wait_for(
        lambda: orch.store.backlog.health().status == "ok", 15, message="the run written"
    )
    assert on_disk(db, "SELECT id, status FROM workflow_runs") == [(record.id, "succeeded")]
    assert on_disk(db, "SELECT name FROM workflow_steps ORDER BY id") == [("count",), ("send",)]
    assert on_disk(db, "SELECT COUNT(*) FROM step_sessions") == [(0,)]
