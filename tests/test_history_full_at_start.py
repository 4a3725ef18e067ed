"""The state dir's filesystem is already full when medic starts (a real tmpfs,
filled before the start): SQLite cannot even open ``medic.db``. medic starts
all the same, says loudly that its history is degraded, heals a crashed
container, keeps the writes in memory and, once space returns, opens the file
and writes them, with ids that do not collide with the rows already on disk;
they survive a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from medic.store import Store
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory
from tests.plugins.docker import ContainerHandle
from tests.plugins.fulldisk import FullDisk
from tests.test_heal_container import answers_200, finished_recoveries, metric_samples, web_config
from tests.test_history_degraded import health, on_disk, succeeded_recoveries, web

__all__ = ["web"]  # the fixture, shared with test_history_degraded


def immutable(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What the file holds, read without its -shm (a full disk lets no reader make one)."""
    db = sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True)
    try:
        return [tuple(row) for row in db.execute(sql).fetchall()]
    finally:
        db.close()


def test_a_store_that_cannot_open_waits_in_memory_and_opens_when_space_returns(
    full_disk: FullDisk,
) -> None:
    state = full_disk.mount / "state"
    before = Store.in_state_dir(state)
    old = before.start_recovery("web", "service_crash", "restart-container", "auto")
    before.close()
    (state / "medic.db-shm").unlink(missing_ok=True)  # the -shm has to grow again
    full_disk.fill()

    with capture_logs() as logs:
        store = Store.in_state_dir(state)  # no StateDirUnusable
    try:
        assert [e["log_level"] for e in logs if e["event"] == "history.open_deferred"] == ["error"]
        assert store.backlog.health().status == "degraded"
        new = store.start_recovery("web", "service_crash", "restart-container", "auto")
        assert new > old
        assert [r.id for r in store.recoveries("web", 10)[0]] == [new], "reads see what waits"
        assert store.retry() == 1, "still full: it waits"

        full_disk.free()

        assert store.retry() == 0
        assert store.backlog.health().status == "ok"
        ids = on_disk(state / "medic.db", "SELECT id FROM recoveries ORDER BY id")
        assert ids == [(old,), (new,)]
    finally:
        store.close()


def test_medic_started_on_a_full_state_disk_heals_and_writes_its_history_later(
    full_disk: FullDisk, medic_daemon: DaemonFactory, web: ContainerHandle
) -> None:
    state = full_disk.mount / "state"
    earlier = Store.in_state_dir(state)
    old = earlier.start_recovery("web", "service_crash", "restart-container", "auto")
    earlier.set_recovery_status(old, "succeeded", "from an earlier run")
    earlier.close()
    (state / "medic.db-shm").unlink(missing_ok=True)
    full_disk.fill()

    config = web_config(free_port(), web)
    daemon = medic_daemon(config, state_dir=state)
    wait_for(lambda: daemon.find_logs(event="service.healthy"), 15, message="web healthy")
    assert daemon.find_logs(event="history.open_deferred"), "said loudly"
    body = health(daemon)
    assert (body["status"], body["history"]["status"]) == ("degraded", "degraded")
    assert metric_samples(daemon)[("medic_history_write_errors_total", ())] > 0

    web.container.kill()

    wait_for(lambda: succeeded_recoveries(daemon) == 1, 30, message="the crash healed")
    assert answers_200(f"{web.url}healthz")
    shown = finished_recoveries(daemon, 1)[0]
    assert shown["id"] > old
    assert immutable(state / "medic.db", "SELECT id FROM recoveries") == [(old,)]

    full_disk.free()

    wait_for(lambda: health(daemon)["status"] == "healthy", 20, message="history written")
    assert daemon.find_logs(event="history.opened")
    ids = on_disk(state / "medic.db", "SELECT id, status FROM recoveries ORDER BY id")
    assert ids == [(old, "succeeded"), (shown["id"], "succeeded")]
    assert daemon.stop() == 0

    again = medic_daemon(config, state_dir=state)
    recoveries = again.get("/api/v1/recoveries")[1]["recoveries"]
    assert sorted(r["id"] for r in recoveries) == [old, shown["id"]]
    mine = next(r for r in recoveries if r["id"] == shown["id"])
    assert [s["action"] for s in mine["steps"]] == ["restart_container", "wait_healthy"]
