"""The fleet's limits with three real medics on a real 3-member etcd cluster:
``disruptive_concurrency`` across the group, and the group's blast radius
(``max_failing_hosts_fraction``). Each host has a service of its own whose
check is a flag file per host."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from tests.fleetkit import held_reasons, start_hosts
from tests.helpers import wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.etcd import EtcdCluster

SERVICE = """
  own:
    check: {{type: command, command: [sh, -c, 'test -f "$0/up-$MEDIC_FLEET_HOST"', "{dir}"]}}
    recovery: {{unhealthy_response: fix-own}}
"""

# The worker's process records, on SIGTERM, when a restart_process began
# stopping it and, 1 s later, when it exits: both inside that disruptive step.
WORKER = """
  own:
    check: {{type: command, command: [sh, -c, 'test -f "$0/up-$MEDIC_FLEET_HOST"', "{dir}"]}}
    process:
      command:
        - sh
        - -c
        - >-
          trap 'echo "start $MEDIC_FLEET_HOST $(date +%s.%N)" >> "$0/spans"; sleep 1;
          echo "end $MEDIC_FLEET_HOST $(date +%s.%N)" >> "$0/spans"; exit 0' TERM;
          while :; do sleep 0.1; done
        - "{dir}"
    recovery: {{unhealthy_response: fix-own}}
"""

# As WORKER, but its stop (the disruptive step) lasts until the test creates
# "release" (at most 8 s): the slot stays taken for as long as the test needs,
# however far apart a loaded machine spreads the three hosts' failing checks.
HOLDING_WORKER = WORKER.replace(
    "sleep 1;",
    'i=0; while [ ! -f "$0/release" ] && [ $i -lt 160 ]; do sleep 0.05; i=$((i+1)); done;',
)

# A disruptive step (restart_process, ~1 s: needs one of the group's slots),
# then a non-disruptive one of 3 s (needs none) that records when it is done.
RESTART_PLAYBOOK = """
description: a disruptive restart, then a slow fix that needs no slot
steps:
  - {{action: restart_process}}
  - action: run_command
    command:
      - sh
      - -c
      - >-
        sleep 3; echo "done $MEDIC_FLEET_HOST $(date +%s.%N)" >> "$0/spans";
        touch "$0/up-$MEDIC_FLEET_HOST"
      - "{dir}"
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


def start_three(
    medic_daemon: DaemonFactory,
    etcd: EtcdCluster,
    tmp: Path,
    service: str,
    fleet: str,
    playbook: str,
) -> list[DaemonProcess]:
    for index in range(3):
        (tmp / f"up-host-{index}").touch()
    return start_hosts(
        medic_daemon, etcd, tmp, service.format(dir=tmp), {"fix-own": playbook.format(dir=tmp)},
        see_all=True, prefix="/medic-limits", fleet="  summary_interval: 1s\n" + fleet,
        recovery="{max_attempts: 100, backoff: {initial: 300ms, max: 600ms}}",
    )  # fmt: skip


def spans(tmp: Path) -> dict[str, dict[str, float]]:
    """Per host: when its disruptive step began (``start``) and its process
    exited (``end``), inside that step, and when its whole fix was ``done``."""
    found: dict[str, dict[str, float]] = {}
    for line in (tmp / "spans").read_text().splitlines():
        edge, host, at = line.split()
        found.setdefault(host, {})[edge] = float(at)
    return found


def test_disruptive_concurrency_1_takes_a_slot_per_step_never_two_at_once(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    fleet = "  disruptive_concurrency: 1\n  max_failing_hosts_fraction: 1.0\n"
    start_three(medic_daemon, etcd_cluster, tmp_path, WORKER, fleet, RESTART_PLAYBOOK)
    for index in range(3):
        (tmp_path / f"up-host-{index}").unlink()  # all three fail together
    for index in range(3):
        wait_for(lambda i=index: (tmp_path / f"up-host-{i}").exists(), timeout=40)  # type: ignore[misc]
    found = spans(tmp_path)
    ordered = sorted(found.items(), key=lambda item: item[1]["start"])
    assert len(ordered) == 3 and all(len(s) == 3 for _, s in ordered), found
    for (_, first), (_, second) in itertools.pairwise(ordered):
        assert second["start"] >= first["end"], f"two disruptive steps ran at once: {found}"
    # Per step, not per recovery: a host restarted while the host before it
    # was still in its 3 s step that needs no slot.
    overlapped = [
        (a, b)
        for (a, first), (b, second) in itertools.pairwise(ordered)
        if second["start"] < first["done"]
    ]
    assert overlapped, f"a slot was held for a whole recovery: {found}"


def test_no_slot_in_time_stops_the_recovery_held_fleet_concurrency(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    fleet = (
        "  disruptive_concurrency: 1\n  disruptive_wait: 200ms\n  max_failing_hosts_fraction: 1.0\n"
    )
    daemons = start_three(
        medic_daemon, etcd_cluster, tmp_path, HOLDING_WORKER, fleet, RESTART_PLAYBOOK
    )
    for index in range(3):
        (tmp_path / f"up-host-{index}").unlink()

    def held_now() -> list[str]:
        return [h for d in daemons for h in held_reasons(d, "own") if "fleet_concurrency" in h]

    wait_for(held_now, timeout=20, message="a host that got no slot in 200 ms is held")
    (tmp_path / "release").touch()
    for index in range(3):
        wait_for(lambda i=index: (tmp_path / f"up-host-{i}").exists(), timeout=40)  # type: ignore[misc]
    held = held_now()
    assert all("disruptive slots of group test stayed taken for 0.2s" in h for h in held), held
    stopped = [
        r
        for d in daemons
        for r in d.get("/api/v1/recoveries?service=own")[1]["recoveries"]
        if r["outcome"] == "interrupted"
    ]
    assert stopped, "the recovery that got no slot ended"
    for recovery in stopped:
        assert recovery["detail"].startswith("held fleet_concurrency: all 1 disruptive"), recovery
        assert recovery["steps"] == [], "it stopped before its disruptive step ran"
    told = [r["detail"] for d in daemons for r in d.find_logs(event="recovery.failed")]
    assert not [t for t in told if "fleet_concurrency" in t], "told by its hold, not as a failure"
    found = spans(tmp_path)
    ordered = sorted(found.values(), key=lambda s: s["start"])
    assert len(ordered) == 3, found
    for first, second in itertools.pairwise(ordered):
        assert second["start"] >= first["end"], f"two disruptive steps ran at once: {found}"


def test_two_of_three_hosts_failing_holds_all_until_they_recover(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    fleet = "  max_failing_hosts_fraction: 0.5\n"
    daemons = start_three(medic_daemon, etcd_cluster, tmp_path, SERVICE, fleet, GATED_PLAYBOOK)
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
