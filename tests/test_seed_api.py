"""The seed document (``seeds/control-plane-api.md``) followed line by line
against medic: its snippets run as written, on a real HTTP service.

Where medic differs from the seed's snippets, it is said where it happens:
the orchestrator needs ``await orchestrator.start()`` before its workflows and
checks run, and the seed's ``SelfHealingMonitor()`` is the orchestrator's own
``orchestrator.monitor`` (a monitor alone would have no scheduler, store or
recovery engine to work with). The seed's Revenue Engine API is not medic's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from medic import ControlPlaneOrchestrator, SelfHealingMonitor
from medic.core.errors import WorkflowAlreadyRunningError, WorkflowNotFoundError

SERVICE = "revenue-engine"
RECHECK_PLAYBOOK = """
description: Probe the service again until it answers.
failure_types: [connection_timeout]
steps:
  - {action: wait_healthy, timeout: 5s}
"""


@pytest.fixture
async def revenue_engine() -> AsyncIterator[str]:
    """A real HTTP service on 127.0.0.1; yields its health URL."""

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/health"
    await runner.cleanup()


@pytest.fixture
def config_path(tmp_path: Path, revenue_engine: str) -> Path:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "recheck.yaml").write_text(RECHECK_PLAYBOOK)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
daemon: {{state_dir: state}}
playbooks_dir: playbooks
monitoring: {{health_check_interval: 10s}}
services:
  {SERVICE}:
    check: {{type: http, url: "{revenue_engine}", expect_status: [200]}}
"""
    )
    return path


async def start_with_the_seeds_error_handling(
    orchestrator: ControlPlaneOrchestrator, workflow_id: str, logger: logging.Logger
) -> None:
    # The seed's "Error Handling" block, verbatim.
    try:
        await orchestrator.start_workflow(workflow_id)
    except WorkflowNotFoundError:
        logger.error("Workflow not registered")
    except WorkflowAlreadyRunningError:
        logger.warning("Workflow already in progress")
    except Exception as e:  # noqa: BLE001 - the seed's own catch-all
        logger.error(f"Unexpected error: {str(e)}")  # noqa: RUF010 - as the seed writes it


def customise(config_path: Path) -> None:
    # Configuration / Custom Configuration: the config file is plain YAML.
    with open(config_path) as f:
        config = yaml.safe_load(f)
    config["monitoring"]["health_check_interval"] = 30
    config_path.write_text(yaml.safe_dump(config))


async def test_the_seed_document_runs_line_by_line(
    config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    customise(config_path)
    orchestrator = ControlPlaneOrchestrator.from_config(config_path)
    assert orchestrator.config.services[SERVICE].interval_s == 30.0
    # Not in the seed, and needed: start() schedules checks and workflows on the
    # running loop; the seed's snippets assume a control plane already running.
    await orchestrator.start()
    try:
        await _workflow_management(orchestrator)
        await _health_monitoring(orchestrator)
        await _auto_recovery(orchestrator)
        await _self_healing_monitor(orchestrator)
        await _error_handling(orchestrator, caplog)
    finally:
        await orchestrator.stop()


async def _workflow_management(orchestrator: ControlPlaneOrchestrator) -> None:
    # Register Workflow: the seed's config has no steps; such a run does nothing.
    await orchestrator.register_workflow(
        workflow_id="custom-workflow",
        config={
            "type": "async",
            "priority": "high",
            "timeout": 300,
            "retry_policy": {"max_retries": 3, "backoff": "exponential"},
        },
    )
    # Start Workflow
    run_id = await orchestrator.start_workflow("custom-workflow")
    # Stop Workflow: right after start, so it cancels that run.
    assert await orchestrator.stop_workflow("custom-workflow") is True

    run = orchestrator.store.workflow_run(run_id)
    assert run is not None and run.outcome == "cancelled"
    assert orchestrator.workflows.get("custom-workflow")["status"] == "stopped"
    # Started again, a step-less run succeeds at once.
    record = (await orchestrator.workflows.run("custom-workflow")).as_json()
    assert record["outcome"] == "succeeded" and record["steps"] == []


async def _health_monitoring(orchestrator: ControlPlaneOrchestrator) -> None:
    # Check Service Health
    is_healthy = await orchestrator.health_check(SERVICE)
    assert is_healthy is True

    # Get System Status
    status = await orchestrator.get_system_status()
    print(status)
    json.dumps(status)  # the seed shows it as JSON
    assert set(status) == {"workflows", "health_status", "recovery_history", "timestamp"}
    workflow = status["workflows"]["custom-workflow"]
    assert workflow["status"] == "stopped"
    assert (workflow["run_count"], workflow["error_count"]) == (2, 0)
    datetime.fromisoformat(workflow["last_run"])
    health = status["health_status"][SERVICE]
    assert health["status"] == "healthy"
    assert health["uptime_percentage"] == 100.0
    assert status["recovery_history"] == []
    datetime.fromisoformat(status["timestamp"])


async def _auto_recovery(orchestrator: ControlPlaneOrchestrator) -> None:
    # Trigger Manual Recovery
    outcome = await orchestrator.auto_recover(
        service_name=SERVICE, failure_type="connection_timeout"
    )
    assert (outcome.playbook, outcome.outcome) == ("recheck", "succeeded")

    history = (await orchestrator.get_system_status())["recovery_history"]
    assert [(r["service"], r["failure_type"], r["playbook"], r["outcome"]) for r in history] == [
        (SERVICE, "connection_timeout", "recheck", "succeeded")
    ]


async def _self_healing_monitor(orchestrator: ControlPlaneOrchestrator) -> None:
    # Start Monitoring: medic's monitor is the orchestrator's (see the module docs).
    monitor = orchestrator.monitor
    assert isinstance(monitor, SelfHealingMonitor)
    monitor.start()  # already started with the orchestrator: starting again is harmless

    # Manual Health Check: a plain call schedules it; awaiting gives the result.
    checking = monitor.check_health()
    assert await checking == {SERVICE: True}
    assert await monitor.check_health(SERVICE) == {SERVICE: True}

    # Trigger Remediation: without a failure type the fallback only notifies.
    outcome = await monitor.remediate(SERVICE)
    assert (outcome.playbook, outcome.outcome) == ("notify-only", "succeeded")


async def _error_handling(
    orchestrator: ControlPlaneOrchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("seed")
    await orchestrator.register_workflow(
        "long-workflow",
        config={"steps": [{"name": "nap", "action": "run_command", "command": ["sleep", "30"]}]},
    )
    with caplog.at_level(logging.INFO, logger="seed"):
        await start_with_the_seeds_error_handling(orchestrator, "workflow-id", logger)
        await start_with_the_seeds_error_handling(orchestrator, "long-workflow", logger)
        await start_with_the_seeds_error_handling(orchestrator, "long-workflow", logger)
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "seed"] == [
        ("ERROR", "Workflow not registered"),
        ("WARNING", "Workflow already in progress"),
    ]
    with pytest.raises(WorkflowNotFoundError):
        await orchestrator.stop_workflow("workflow-id")
    with pytest.raises(WorkflowAlreadyRunningError):
        await orchestrator.start_workflow("long-workflow")
    assert await orchestrator.stop_workflow("long-workflow") is True
