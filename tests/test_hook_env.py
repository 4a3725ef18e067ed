"""A ``run_command`` step of a recovery is told which service, failure,
recovery, container and process it runs for, so one hook script serves every
service; a supervised service's ``MEDIC_PID`` is its program's pid."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers import free_port
from tests.plugins.inprocess import OrchestratorFactory

HOOK = """
description: writes its environment down
steps:
  - action: run_command
    shell: true
    command: "env | grep ^MEDIC_ | sort > {out}"
"""


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


async def test_a_recovery_step_gets_the_recoverys_facts_in_its_environment(
    orchestrator: OrchestratorFactory, tmp_path: Path
) -> None:
    out = tmp_path / "env.txt"
    port = free_port()
    orch = await orchestrator(
        f"""
monitoring: {{health_check_interval: 1h}}
playbooks_dir: playbooks
services:
  api:
    check: {{type: tcp, port: {port}}}
    process:
      command: [{sys.executable}, -m, http.server, "{port}", --bind, 127.0.0.1]
    unit: api-fake.service
    recovery: {{service_crash: hook}}
""",
        playbooks={"hook": HOOK.format(out=out)},
    )
    result = await orch.auto_recover("api", "service_crash")
    env = read_env(out)
    pid = orch.resources.processes.info("api").pid
    assert env == {
        "MEDIC_SERVICE": "api",
        "MEDIC_FAILURE_TYPE": "service_crash",
        "MEDIC_RECOVERY_ID": str(result.recovery_id),
        "MEDIC_UNIT": "api-fake.service",
        "MEDIC_PID": str(pid),
        "MEDIC_STATE_DIR": str(orch.config.state_dir),
    }
