"""Several medics as one fleet through a real 3-member etcd cluster (issue 14).

Three daemons on this machine act as three hosts (own state dirs, API ports,
``fleet.host``). The shared dependency is a flag file every host checks
(``command`` check); healing it runs a playbook step that appends the healing
host's name to ``starts`` (so the starts are counted) and takes 2 s; a
second step creates the flag (so a host killed or frozen in the first step
never brings it up itself).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from medic.api.openapi import build_document
from tests.apischema import schema_errors
from tests.fleetkit import TOKEN, by_host, held_reasons, start_hosts
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.etcd import EtcdCluster

HEAL_PLAYBOOK = """
description: start the shared dependency (counted)
failure_types: [unhealthy_response, service_crash]
steps:
  - action: run_command
    command: [sh, -c, 'echo "$MEDIC_FLEET_HOST" >> "$0/starts"; sleep 2', "{dir}"]
    timeout: 30s
  - {{action: run_command, command: [touch, "{dir}/up"]}}
"""


LOCAL_PLAYBOOK = """
description: start this host's own service
steps:
  - {{action: run_command, command: [sh, -c, 'touch "$0/local-up-$MEDIC_FLEET_HOST"', "{dir}"]}}
"""

LOCAL_SERVICE = """
  local:
    check: {{type: command, command: [sh, -c, 'test -f "$0/local-up-$MEDIC_FLEET_HOST"', "{dir}"]}}
    recovery: {{unhealthy_response: start-local}}
"""


SHARED_SERVICE = """
  shared-db:
    check: {{type: command, command: [test, -f, "{dir}/up"]}}
    shared: true
    recovery: {{unhealthy_response: start-shared}}
"""


def start_fleet(
    medic_daemon: DaemonFactory,
    etcd: EtcdCluster,
    tmp_path: Path,
    hosts: int = 3,
    local: bool = False,
    endpoints: list[str] | None = None,
) -> list[DaemonProcess]:
    services = SHARED_SERVICE.format(dir=tmp_path)
    if local:
        for index in range(hosts):
            (tmp_path / f"local-up-host-{index}").touch()
        services += LOCAL_SERVICE.format(dir=tmp_path)
    playbooks = {
        "start-shared": HEAL_PLAYBOOK.format(dir=tmp_path),
        "start-local": LOCAL_PLAYBOOK.format(dir=tmp_path),
    }
    return start_hosts(
        medic_daemon, etcd, tmp_path, services, playbooks, hosts=hosts, endpoints=endpoints
    )


def medic_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "daemon")}
    env["MEDIC_API_TOKEN"] = TOKEN
    return subprocess.run(
        [sys.executable, "-m", "medic", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def starts(tmp_path: Path) -> list[str]:
    path = tmp_path / "starts"
    return path.read_text().split() if path.exists() else []


def test_exactly_one_host_heals_a_shared_dependency(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    (tmp_path / "up").touch()
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path)
    wait_for(lambda: len(daemons[0].get("/api/v1/fleet")[1]["hosts"]) == 3, timeout=10)
    _, metrics = daemons[0].get("/metrics?name[]=medic_fleet_hosts&name[]=medic_fleet_connected")
    assert 'medic_fleet_hosts{group="test",state="ok"} 3.0' in metrics, metrics
    assert "medic_fleet_connected 1.0" in metrics, metrics
    (tmp_path / "up").unlink()  # the shared dependency goes down for every host
    first = wait_for(lambda: starts(tmp_path), timeout=20, message="a host starts healing")
    lock = daemons[1].get("/api/v1/fleet")[1]["locks"]  # held for the 2 s step
    assert [(x["service"], x["host"]) for x in lock] == [("shared-db", first[0])]
    view = daemons[1].get("/api/v1/fleet")[1]
    assert schema_errors(build_document(), {"$ref": "#/components/schemas/Fleet"}, view) == []
    wait_for(lambda: (tmp_path / "up").exists(), timeout=20, message="healed")
    time.sleep(2)  # any second heal would have started by now
    assert len(starts(tmp_path)) == 1, starts(tmp_path)
    holds = [
        entry
        for d in daemons
        for entry in d.get("/api/v1/audit?kind=recovery.held")[1].get("audit", [])
    ]
    assert any("healed_elsewhere" in json.dumps(entry) for entry in holds), holds


def test_an_alert_sent_to_every_host_heals_a_shared_dependency_once(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    (tmp_path / "up").touch()  # its check passes: only the alert asks for a heal
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path)
    alert = {
        "version": "4",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "Slow", "service": "shared-db"}}],
    }
    answers = [d.post("/api/v1/alerts", alert, token=TOKEN) for d in daemons]
    for status, body in answers:
        assert status == 200, body
        (accepted,) = body["accepted"]
        assert accepted["recovery_id"] is None and "is shared" in accepted["detail"], body
    wait_for(lambda: starts(tmp_path), timeout=20, message="one host heals")
    healer = starts(tmp_path)[0]
    others = [d for d in daemons if d is not by_host(daemons, healer)]
    for daemon in others:
        wait_for(
            lambda d=daemon: any("healed_elsewhere" in h for h in held_reasons(d, "shared-db")),  # type: ignore[misc]
            timeout=20,
            message="the other hosts are held healed_elsewhere",
        )
    healer_daemon = by_host(daemons, healer)
    (recovery,) = healer_daemon.get("/api/v1/recoveries?service=shared-db")[1]["recoveries"]
    assert recovery["trigger"] == "alert", recovery
    time.sleep(2.5)  # the heal's 2 s step is over: any second heal would have begun
    assert starts(tmp_path) == [healer]


def test_emergency_stop_reaches_every_host_within_a_second(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    (tmp_path / "up").touch()
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path)
    done = medic_cli("fleet", "stop", "--url", daemons[0].url, "--reason", "bad deploy")
    assert done.returncode == 0, done.stderr
    # From the moment the stop was written (its own timestamp) to each host showing it.
    for daemon in daemons:
        stop = wait_for(
            lambda d=daemon: d.get("/api/v1/fleet")[1]["emergency_stop"],  # type: ignore[misc]
            timeout=5,
            interval=0.02,
            message="emergency stop seen",
        )
        assert time.time() - stop["at"] < 1.0, f"{daemon.url} saw the stop late"
    (tmp_path / "up").unlink()
    time.sleep(2)
    assert starts(tmp_path) == [], "nothing heals during an emergency stop"
    table = medic_cli("fleet", "status", "--url", daemons[2].url).stdout
    assert "EMERGENCY STOP" in table and "bad deploy" in table, table
    assert all(f"host-{i}" in table for i in range(3)), table
    done = medic_cli("fleet", "resume", "--url", daemons[1].url)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: (tmp_path / "up").exists(), timeout=15, message="healed after resume")
    assert len(starts(tmp_path)) == 1


def test_a_daemon_without_fleet_never_imports_aetcd(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"services:\n  up:\n    check: {{type: tcp, port: {free_port()}}}\n")
    probe = (
        "import sys\n"
        "from medic.orchestrator import ControlPlaneOrchestrator\n"
        "from medic.api.app import build_app\n"
        f"o = ControlPlaneOrchestrator.from_config({str(config)!r}, state_dir={str(tmp_path)!r})\n"
        "assert o.fleet is None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aetcd', 'grpc')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "daemon")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def holder(daemons: list[DaemonProcess], tmp_path: Path) -> DaemonProcess:
    first = wait_for(lambda: starts(tmp_path), timeout=20, message="a host starts healing")
    return by_host(daemons, first[0])


def test_kill_9_of_the_holder_mid_heal_another_host_finishes(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    (tmp_path / "up").touch()
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path)
    (tmp_path / "up").unlink()
    dead = holder(daemons, tmp_path)
    dead.kill()
    t0 = time.monotonic()
    # lease_ttl 3 s, then a check (300 ms), then the 2 s playbook: 10 s is the margin.
    wait_for(lambda: (tmp_path / "up").exists(), timeout=3 + 10, message="another host healed")
    healers = starts(tmp_path)
    assert len(healers) == 2 and healers[0] != healers[1], healers
    assert time.monotonic() - t0 < 13


def test_a_holder_frozen_past_its_lease_is_fenced_out(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    (tmp_path / "up").touch()
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path)
    (tmp_path / "up").unlink()
    frozen = holder(daemons, tmp_path)
    frozen.send_signal(signal.SIGSTOP)
    try:
        # lease_ttl 3 s, then another host's check and its 2 s step; margin for a busy machine.
        wait_for(lambda: (tmp_path / "up").exists(), timeout=25, message="another host healed")
    finally:
        frozen.send_signal(signal.SIGCONT)
    assert len(starts(tmp_path)) == 2

    def fenced() -> bool:
        recs = frozen.get("/api/v1/recoveries?service=shared-db")[1]["recoveries"]
        return any(r["outcome"] == "fenced_out" for r in recs)

    wait_for(fenced, timeout=20, message="the frozen holder's recovery ends fenced_out")

    def registered_again() -> bool:
        log = frozen.log_path.read_text()
        return '"fleet.lease_lost"' in log and log.count('"fleet.lease_granted"') >= 2

    wait_for(registered_again, timeout=10, message="the lost lease is granted again")


def test_etcd_down_local_heals_go_on_shared_ones_wait_and_resume(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    (tmp_path / "up").touch()
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path, hosts=2, local=True)
    etcd_cluster.stop_all()
    for daemon in daemons:
        wait_for(
            lambda d=daemon: not d.get("/api/v1/fleet")[1]["connected"],  # type: ignore[misc]
            timeout=10,
            message="the daemon sees etcd gone",
        )
        _, metrics = daemon.get("/metrics?name[]=medic_fleet_connected")
        assert "medic_fleet_connected 0.0" in metrics
    (tmp_path / "up").unlink()
    (tmp_path / "local-up-host-0").unlink()
    wait_for(lambda: (tmp_path / "local-up-host-0").exists(), timeout=10, message="local heal")
    wait_for(
        lambda: any("fleet_unavailable" in h for h in held_reasons(daemons[0], "shared-db")),
        timeout=10,
        message="the shared service held fleet_unavailable",
    )
    assert starts(tmp_path) == [] and not (tmp_path / "up").exists()
    etcd_cluster.start_all()
    wait_for(lambda: (tmp_path / "up").exists(), timeout=30, message="shared heal after etcd")
    assert len(starts(tmp_path)) == 1


def connection_broke(daemon: DaemonProcess, endpoint: str) -> bool:
    """The daemon saw its etcd connection fail: its session's stream or a call."""
    return bool(
        daemon.find_logs(event="fleet.disconnected")
        or daemon.find_logs(event="fleet.endpoint_failed", endpoint=endpoint)
    )


def test_the_etcd_leader_killed_mid_heal_the_heal_completes_once(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    # Every daemon talks to the leader (its endpoint first), so the kill
    # breaks the daemons' own connections too, not only the cluster's.
    leader = etcd_cluster.leader()
    endpoints = etcd_cluster.endpoints
    killed = endpoints[leader]
    (tmp_path / "up").touch()
    daemons = start_fleet(
        medic_daemon,
        etcd_cluster,
        tmp_path,
        endpoints=[killed, *(e for e in endpoints if e != killed)],
    )
    assert [d.get("/api/v1/fleet")[1]["endpoint"] for d in daemons] == [killed] * 3
    (tmp_path / "up").unlink()
    wait_for(lambda: starts(tmp_path), timeout=20, message="a host starts healing")
    assert etcd_cluster.leader() == leader, "the leader changed before the kill"
    assert not any(connection_broke(d, killed) for d in daemons)
    etcd_cluster.kill_member(leader)
    # A new leader is elected (election timeout 500 ms) and extends the leases.
    wait_for(lambda: (tmp_path / "up").exists(), timeout=20, message="the heal completes")
    time.sleep(2)
    assert len(starts(tmp_path)) == 1, starts(tmp_path)
    for daemon in daemons:
        assert connection_broke(daemon, killed), "the daemon's own connection to the leader broke"
        wait_for(
            lambda d=daemon: d.get("/api/v1/fleet")[1]["connected"],  # type: ignore[misc]
            timeout=10,
            message="the daemon is connected again, through another member",
        )
        assert daemon.get("/api/v1/fleet")[1]["endpoint"] != killed


def test_command_checks_on_a_fleet_host_never_fail_while_the_service_is_up(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    # Every check forks a child while gRPC's threads keep the etcd session;
    # gRPC's fork handlers once crashed some of those children (SIGSEGV).
    (tmp_path / "up").touch()
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path, hosts=2, local=True)

    def checks(daemon: DaemonProcess, service: str) -> list[dict[str, object]]:
        return list(daemon.get(f"/api/v1/services/{service}/checks")[1]["checks"])

    kept = 60  # the most the API keeps: 18 s of checks every 300 ms
    for daemon in daemons:
        for service in ("local", "shared-db"):
            wait_for(
                lambda d=daemon, s=service: len(checks(d, s)) == kept,  # type: ignore[misc]
                60,
                message="60 checks",
            )
            failed = [c["detail"] for c in checks(daemon, service) if not c["healthy"]]
            assert failed == [], failed
