"""The orchestrator's wiring of workflows: ``daemon.workflow_concurrency`` and a
reload that applies all of a config or none of it."""

from __future__ import annotations

import dataclasses
import socket
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from medic.config.load import load_config
from medic.config.models import LoadedConfig, WorkflowConfig
from medic.core.errors import ConfigInvalid, InvalidWorkflowError
from medic.orchestrator import ControlPlaneOrchestrator
from tests.helpers import async_wait_for

DEADLINE_S = 10.0


@pytest.fixture
def tcp_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
async def orchestrator(tmp_path: Path, tcp_port: int) -> AsyncIterator[ControlPlaneOrchestrator]:
    orch = ControlPlaneOrchestrator(_load(tmp_path, concurrency=1, port=tcp_port))
    await orch.start()
    yield orch
    await orch.stop(grace_s=0)


def _load(folder: Path, *, concurrency: int | None, port: int, extra: str = "") -> LoadedConfig:
    return load_config(_config(folder, concurrency, port, extra), state_dir=folder / "state")


def _config(folder: Path, concurrency: int | None, port: int, extra: str = "") -> Path:
    daemon = "" if concurrency is None else f"daemon: {{workflow_concurrency: {concurrency}}}"
    step = '{name: wait, action: run_command, command: "sleep 30", shell: true}'
    path = folder / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            {daemon}
            services:
              db: {{check: {{type: tcp, port: {port}}}}}
            {extra}
            workflows:
              first: {{steps: [{step}]}}
              second: {{steps: [{step}]}}
            """
        )
    )
    return path


async def test_workflow_concurrency_limits_runs_and_a_reload_raises_it(
    orchestrator: ControlPlaneOrchestrator, tmp_path: Path, tcp_port: int
) -> None:
    await orchestrator.start_workflow("first")
    await orchestrator.start_workflow("second")
    await async_wait_for(lambda: orchestrator.workflows.waiting_runs == 1, DEADLINE_S)
    assert orchestrator.workflows.get("second")["queued"] is True

    await orchestrator.reload(_load(tmp_path, concurrency=2, port=tcp_port))

    await async_wait_for(lambda: not orchestrator.workflows.get("second")["queued"], DEADLINE_S)
    assert orchestrator.workflows.waiting_runs == 0
    assert orchestrator.workflows.get("second")["status"] == "running"


async def test_a_reload_refused_for_its_workflows_leaves_the_services_alone(
    orchestrator: ControlPlaneOrchestrator, tmp_path: Path, tcp_port: int
) -> None:
    extra = f"  cache: {{check: {{type: tcp, port: {tcp_port}}}}}"
    loaded = _load(tmp_path, concurrency=1, port=tcp_port, extra=extra)
    # load_config would refuse this cron line; a reload must not trust that alone.
    broken = WorkflowConfig.model_validate({"schedule": {"cron": "61 * * * *"}})
    model = loaded.model.model_copy(update={"workflows": {"broken": broken}})

    with pytest.raises(InvalidWorkflowError, match=r"workflow 'broken': schedule\.cron"):
        await orchestrator.reload(dataclasses.replace(loaded, model=model))

    assert list(orchestrator.monitor.states()) == ["db"]
    assert [w["id"] for w in orchestrator.workflows.list()] == ["first", "second"]


def test_workflow_concurrency_is_4_by_default_and_at_least_1(tmp_path: Path, tcp_port: int) -> None:
    assert _load(tmp_path, concurrency=None, port=tcp_port).model.daemon.workflow_concurrency == 4
    with pytest.raises(ConfigInvalid) as caught:
        _load(tmp_path, concurrency=0, port=tcp_port)
    assert [i.dotted_path for i in caught.value.issues] == ["daemon.workflow_concurrency"]
    assert "greater than or equal to 1" in caught.value.issues[0].message
