"""The workflows in the shipped ``control-plane/config.yaml`` run on this host as
they are: the config is loaded with its state dir moved into a tmp folder
(what ``medic run --state-dir`` does) and each workflow is run once."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from medic.config.load import load_config
from medic.config.models import LoadedConfig
from medic.core.bus import EventBus
from medic.host.resources import Resources
from medic.store import Store
from medic.tell.metrics import Metrics
from medic.workflows.manager import WorkflowManager

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "control-plane" / "config.yaml"
DAY_S = 86400.0


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return load_config(SHIPPED_CONFIG, state_dir=tmp_path / "state")


@pytest.fixture
async def manager(loaded: LoadedConfig) -> AsyncIterator[WorkflowManager]:
    loaded.state_dir.mkdir(parents=True, exist_ok=True)
    scheduler = AsyncIOScheduler()
    scheduler.start()
    store = Store.in_state_dir(loaded.state_dir)
    resources = Resources()
    workflows = WorkflowManager(
        scheduler=scheduler,
        journal=store,
        bus=EventBus(),
        metrics=Metrics(),
        resources=resources,
        state_dir=loaded.state_dir,
        max_concurrent=loaded.model.daemon.workflow_concurrency,
    )
    await workflows.apply(loaded.model.workflows)
    yield workflows
    await workflows.shutdown(0)
    scheduler.shutdown(wait=False)
    await resources.close()
    store.close()


def _aged(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("old output\n")
    then = time.time() - days * DAY_S
    os.utime(path, (then, then))
    return path


def _output(record: dict[str, Any], step: str) -> str:
    return str(next(s for s in record["steps"] if s["name"] == step)["output"])


def test_the_shipped_config_ships_useful_workflows(loaded: LoadedConfig) -> None:
    workflows = loaded.model.workflows
    assert {"state-dir-cleanup", "disk-usage-report"} <= set(workflows)
    assert all(w.schedule is not None and w.enabled for w in workflows.values())


async def test_every_shipped_workflow_runs_and_succeeds(
    manager: WorkflowManager, loaded: LoadedConfig
) -> None:
    for workflow_id in loaded.model.workflows:
        record = (await manager.run(workflow_id)).as_json()
        assert record["outcome"] == "succeeded", record
        assert record["steps"] and all(s["outcome"] == "succeeded" for s in record["steps"])


async def test_state_dir_cleanup_deletes_old_files_but_not_recent_or_open_ones(
    manager: WorkflowManager, loaded: LoadedConfig
) -> None:
    logs = loaded.state_dir / "logs"
    old = _aged(logs / "api.log", days=20)
    nested = _aged(logs / "archive" / "web.log.1", days=30)
    recent = _aged(logs / "web.log", days=2)
    held = _aged(logs / "quiet.log", days=20)
    with held.open("a"):  # a service's log it still writes to, quiet for weeks
        record = (await manager.run("state-dir-cleanup")).as_json()

    assert record["outcome"] == "succeeded", record
    assert not old.exists() and not nested.exists()
    assert recent.exists() and held.exists()
    output = _output(record, "delete-old-logs")
    assert f"deleted: {old}" in output
    assert f"kept, still open: {held}" in output


async def test_state_dir_cleanup_without_a_logs_folder_does_nothing(
    manager: WorkflowManager, loaded: LoadedConfig
) -> None:
    record = (await manager.run("state-dir-cleanup")).as_json()
    assert record["outcome"] == "succeeded"
    assert "nothing to clean" in _output(record, "delete-old-logs")
    assert not (loaded.state_dir / "logs").exists()


async def test_disk_usage_report_records_filesystems_and_the_state_dir_size(
    manager: WorkflowManager, loaded: LoadedConfig
) -> None:
    record = (await manager.run("disk-usage-report")).as_json()
    assert record["outcome"] == "succeeded", record
    assert "Filesystem" in _output(record, "filesystems")
    assert " /\n" in _output(record, "filesystems")  # the root filesystem is listed
    size, _, where = _output(record, "state-dir").strip().partition("\t")
    assert where == str(loaded.state_dir)
    assert size[-1] in "KMG"
