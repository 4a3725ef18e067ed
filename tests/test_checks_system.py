"""The system check on this machine's real disk and memory, with limits set low
enough to trip (1 % disk, 0.1 % memory), and end to end: ``disk_full`` runs
the shipped ``disk-full`` playbook's clean-up, ``memory_pressure`` (which no
shipped playbook heals) is notified through ``notify-only``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medic.config.checks import SystemCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks.base import CheckTarget
from medic.watch.checks.system import SystemCheck
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"
JOURNALCTL_STAND_IN = Path(__file__).parent / "fixtures" / "bin-journalctl"


def _check(resources: Resources, **options: Any) -> SystemCheck:
    opts = SystemCheckOptions.model_validate({"type": "system", **options})
    return SystemCheck(opts, CheckTarget(service="host"), resources)


async def test_disk_over_the_limit_is_disk_full(resources: Resources) -> None:
    result = await _check(resources, disk_percent_max=1, memory_percent_max=None).probe()
    assert not result.healthy
    assert result.failure_type is FailureType.DISK_FULL
    assert result.detail.startswith("disk / ")
    assert "% used (limit 1%); disk / " in result.detail
    assert result.data["disk_percent"]["/"] >= 1


async def test_memory_over_the_limit_is_memory_pressure(resources: Resources) -> None:
    result = await _check(resources, disk_percent_max=None, memory_percent_max=0.1).probe()
    assert result.failure_type is FailureType.MEMORY_PRESSURE
    assert result.detail.startswith("memory at ")
    assert "(limit 0.1)" in result.detail
    assert 0.1 <= result.data["memory_percent"] <= 100


async def test_disk_is_named_first_when_both_are_over(resources: Resources) -> None:
    result = await _check(resources, disk_percent_max=1, memory_percent_max=0.1).probe()
    assert result.failure_type is FailureType.DISK_FULL


async def test_under_the_limits_is_healthy(resources: Resources) -> None:
    result = await _check(resources, disk_percent_max=100, memory_percent_max=100).probe()
    assert result.healthy, result
    assert result.detail.startswith("disk / ")


# -- end to end ------------------------------------------------------------------


def _config(api_port: int, check: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{api_port}}}
daemon: {{shutdown_grace: 1s}}
monitoring:
  health_check_interval: 1s
  failure_threshold: 1
  recovery: {{max_attempts: 1, window: 10m}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  host:
    check: {check}
"""


def _first_recovery(daemon: DaemonProcess, steps: int) -> dict[str, Any] | None:
    """The first recovery of ``host`` once it has recorded at least ``steps`` steps."""
    status, body = daemon.get("/api/v1/recoveries?service=host")
    assert status == 200, body
    found = body["recoveries"]
    return found[-1] if found and len(found[-1]["steps"]) >= steps else None


def test_disk_full_runs_the_shipped_clean_up(medic_daemon: DaemonFactory, tmp_path: Path) -> None:
    marker = tmp_path / "journalctl-ran"
    daemon = medic_daemon(
        _config(free_port(), "{type: system, disk_percent_max: 1, memory_percent_max: null}"),
        env={
            "PATH": f"{JOURNALCTL_STAND_IN}{os.pathsep}{os.environ['PATH']}",
            "JOURNALCTL_MARKER": str(marker),
        },
    )
    wait_for(marker.exists, 20, interval=0.1, message="the clean-up command ran")
    assert marker.read_text() == "--vacuum-size=500M\n"

    record = wait_for(lambda: _first_recovery(daemon, 1), 10, message="step recorded")
    assert record["failure_type"] == "disk_full"
    assert record["playbook"] == "disk-full"
    clean_up = record["steps"][0]
    assert (clean_up["action"], clean_up["outcome"]) == ("run_command", "succeeded")
    # A step without cwd runs in its playbook's folder, and says so.
    assert clean_up["description"] == f"run journalctl --vacuum-size=500M in {REPO_PLAYBOOKS}"
    assert "Vacuuming done" in clean_up["output"]


def test_memory_pressure_is_notified(medic_daemon: DaemonFactory) -> None:
    daemon = medic_daemon(
        _config(free_port(), "{type: system, disk_percent_max: null, memory_percent_max: 0.1}")
    )
    record = wait_for(lambda: _first_recovery(daemon, 1), 20, message="recovery recorded")
    assert record["failure_type"] == "memory_pressure"
    assert record["playbook"] == "notify-only"
    assert [(s["action"], s["outcome"]) for s in record["steps"]] == [("notify", "succeeded")]
    assert record["facts"]["memory_percent"] >= 0.1
