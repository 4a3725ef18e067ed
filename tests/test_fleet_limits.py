"""The fleet's limits with three real medics on a real 3-member etcd cluster:
``disruptive_concurrency`` across the group, and the group's blast radius
(``max_failing_hosts_fraction``). Each host has a service of its own whose
check is a flag file per host."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.etcd import EtcdCluster

TOKEN = "fleet-limits-token"

SERVICE = """
  own:
    check: {{type: command, command: [sh, -c, 'test -f "$0/up-$MEDIC_FLEET_HOST"', "{dir}"]}}
    recovery: {{unhealthy_response: fix-own}}
"""

WORKER = """
  own:
    check: {{type: command, command: [sh, -c, 'test -f "$0/up-$MEDIC_FLEET_HOST"', "{dir}"]}}
    process: {{command: [sleep, "1000"]}}
    recovery: {{unhealthy_response: fix-own}}
"""

# A disruptive playbook (restart_process): it needs one of the group's slots.
# Its first step records when it starts and ends.
RESTART_PLAYBOOK = """
description: a disruptive fix, its span recorded
steps:
  - action: run_command
    command:
      - sh
      - -c
      - >-
        echo "start $MEDIC_FLEET_HOST $(date +%s.%N)" >> "$0/spans"; sleep 1;
        echo "end $MEDIC_FLEET_HOST $(date +%s.%N)" >> "$0/spans"; touch "$0/up-$MEDIC_FLEET_HOST"
      - "{dir}"
  - {{action: restart_process}}
"""

# Records the attempt; fixes the service only once the test allows it.
GATED_PLAYBOOK = """
description: fix the service once the test allows it
steps:
  - action: run_command
    command:
      - sh
      - -c
      - >-
        echo "$MEDIC_FLEET_HOST" >> "$0/attempts";
        if test -f "$0/fixable"; then touch "$0/up-$MEDIC_FLEET_HOST"; fi
      - "{dir}"
"""


def config(tmp: Path, host: str, endpoints: list[str], service: str, fleet: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 100, backoff: {{initial: 300ms, max: 600ms}}}}
playbooks_dir: playbooks
fleet:
  etcd: {{endpoints: {json.dumps(endpoints)}, prefix: /medic-limits}}
  host: {host}
  group: test
  lease_ttl: 3s
  summary_interval: 1s
{fleet}
services:
{service.format(dir=tmp)}
"""


def start_hosts(
    medic_daemon: DaemonFactory,
    etcd: EtcdCluster,
    tmp: Path,
    service: str,
    fleet: str,
    playbook: str,
) -> list[DaemonProcess]:
    medic_daemon.write_playbooks({"fix-own": playbook.format(dir=tmp)})
    daemons = []
    for index in range(3):
        host = f"host-{index}"
        (tmp / f"up-{host}").touch()
        daemons.append(
            medic_daemon(
                config(tmp, host, etcd.endpoints, service, fleet),
                env={"MEDIC_API_TOKEN": TOKEN, "MEDIC_FLEET_HOST": host},
                state_dir=tmp / f"state-{index}",
            )
        )
    for daemon in daemons:
        wait_for(
            lambda d=daemon: len(d.get("/api/v1/fleet")[1]["hosts"]) == 3,  # type: ignore[misc]
            timeout=15,
            message="every host sees the three",
        )
    return daemons


def test_disruptive_concurrency_1_never_runs_two_at_once(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    fleet = "  disruptive_concurrency: 1\n  max_failing_hosts_fraction: 1.0\n"
    start_hosts(medic_daemon, etcd_cluster, tmp_path, WORKER, fleet, RESTART_PLAYBOOK)
    for index in range(3):
        (tmp_path / f"up-host-{index}").unlink()  # all three fail together
    for index in range(3):
        wait_for(lambda i=index: (tmp_path / f"up-host-{i}").exists(), timeout=30)  # type: ignore[misc]
    spans: dict[str, dict[str, float]] = {}
    for line in (tmp_path / "spans").read_text().splitlines():
        edge, host, at = line.split()
        spans.setdefault(host, {})[edge] = float(at)
    ordered = sorted((s["start"], s["end"]) for s in spans.values())
    assert len(ordered) == 3
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start >= end, f"two disruptive fixes ran at once: {ordered}"


def test_two_of_three_hosts_failing_holds_all_until_they_recover(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    fleet = "  max_failing_hosts_fraction: 0.5\n"
    daemons = start_hosts(medic_daemon, etcd_cluster, tmp_path, SERVICE, fleet, GATED_PLAYBOOK)
    (tmp_path / "up-host-0").unlink()
    (tmp_path / "up-host-1").unlink()
    for daemon in daemons:
        wait_for(
            lambda d=daemon: d.get("/api/v1/fleet")[1]["hold"],  # type: ignore[misc]
            timeout=10,
            message="every host holds: 2 of 3 failing",
        )
    (tmp_path / "up-host-2").unlink()

    def host2_held() -> bool:
        audit = daemons[2].get("/api/v1/audit?kind=recovery.held")[1]["audit"]
        return any("fleet_hold" in json.dumps(entry) for entry in audit)

    wait_for(host2_held, timeout=10, message="host-2 held fleet_hold")
    attempts = (tmp_path / "attempts").read_text().split()
    assert "host-2" not in attempts, attempts
    (tmp_path / "fixable").touch()
    (tmp_path / "up-host-0").touch()
    (tmp_path / "up-host-1").touch()
    wait_for(lambda: (tmp_path / "up-host-2").exists(), timeout=20, message="host-2 healed")
