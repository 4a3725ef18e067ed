"""A real container as the fleet's shared dependency (issue 14): three medics
watch one busybox container as ``shared: true``; its starts are counted from
Docker's own events.

The container crashes (its process SIGKILLed from the host, which Docker does
not count as a manual stop). The heal playbook first records the healing
host and waits 2 s (the mid-heal window), then restarts the container and
waits for its check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dockerwatch import StartCounter
from tests.fleetkit import by_host, held_reasons, start_hosts
from tests.helpers import wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle
from tests.plugins.etcd import EtcdCluster
from tests.plugins.http import answers_200

SERVICE = """
  shared-web:
    check: {{type: http, url: "{url}healthz", expect_status: [200], timeout: 1s}}
    container: {name}
    shared: true
"""

PLAYBOOK = """
description: restart the shared container (the healing host recorded first)
failure_types: [service_crash, connection_timeout, unhealthy_response, network_failure]
steps:
  - action: run_command
    command: [sh, -c, 'echo "$MEDIC_FLEET_HOST" >> "$0/heals"; sleep 2', "{dir}"]
    timeout: 30s
  - {{action: restart_container, timeout: 30s}}
  - {{action: wait_healthy, timeout: 30s}}
"""

LEASE_TTL_S = 3.0


def start_fleet(
    medic_daemon: DaemonFactory, etcd: EtcdCluster, tmp: Path, web: ContainerHandle
) -> list[DaemonProcess]:
    services = SERVICE.format(url=web.url, name=web.name)
    playbooks = {"restart-shared": PLAYBOOK.format(dir=tmp)}
    daemons = start_hosts(medic_daemon, etcd, tmp, services, playbooks, see_all=True)
    for daemon in daemons:
        wait_for(
            lambda d=daemon: d.get("/api/v1/services/shared-web")[1]["status"] == "healthy",  # type: ignore[misc]
            timeout=15,
            message="every host sees the container healthy",
        )
    return daemons


def answers(web: ContainerHandle) -> bool:
    return answers_200(f"{web.url}healthz")


def heals(tmp: Path) -> list[str]:
    path = tmp / "heals"
    return path.read_text().split() if path.exists() else []


def recoveries(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return list(daemon.get("/api/v1/recoveries?service=shared-web")[1]["recoveries"])


def lock_holder(daemon: DaemonProcess) -> str:
    """The host holding the shared-heal lock, as another host's API shows it."""

    def holder() -> str | None:
        locks = daemon.get("/api/v1/fleet")[1]["locks"]
        return next((x["host"] for x in locks if x["service"] == "shared-web"), None)

    return wait_for(holder, timeout=20, interval=0.05, message="a host takes the heal lock")


@dataclass
class Crash:
    """The shared container crashed under three hosts."""

    web: ContainerHandle
    daemons: list[DaemonProcess]
    starts: StartCounter
    """Docker's starts of it from the crash on."""
    holder: str
    """The host that took the shared-heal lock."""


@pytest.fixture
def crash(
    etcd_cluster: EtcdCluster,
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    start_counter: Any,
    tmp_path: Path,
) -> Crash:
    web = container_factory(name="shared")
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path, web)
    starts = start_counter(web.id)
    web.kill_process()  # a crash: every host sees it down
    return Crash(web, daemons, starts, lock_holder(daemons[0]))


def test_a_crashed_shared_container_is_started_once_by_one_host(
    crash: Crash, tmp_path: Path
) -> None:
    web, daemons, starts, holder = crash.web, crash.daemons, crash.starts, crash.holder
    wait_for(lambda: answers(web), timeout=30, message="the shared container answers again")
    healer = by_host(daemons, holder)
    wait_for(
        lambda: [r["outcome"] for r in recoveries(healer)] == ["succeeded"],
        timeout=15,
        message="the holder's heal succeeded",
    )
    time.sleep(2)  # a second heal would have started by now (checks every 300 ms)
    assert len(starts.starts) == 1, f"Docker saw {len(starts.starts)} starts"
    assert heals(tmp_path) == [holder]
    for daemon in daemons:
        if daemon is healer:
            continue
        assert recoveries(daemon) == [], "only the holder heals"
        held = [h for h in held_reasons(daemon, "shared-web") if "healed_elsewhere" in h]
        assert held, f"{daemon.url} was not held healed_elsewhere"
        assert all(f"being healed by {holder} (group test)" in h for h in held), held


def test_kill_9_of_the_holder_mid_heal_another_host_restarts_it_once(
    crash: Crash, tmp_path: Path
) -> None:
    web, daemons, starts, holder = crash.web, crash.daemons, crash.starts, crash.holder
    dead = by_host(daemons, holder)
    wait_for(lambda: heals(tmp_path) == [holder], timeout=10, message="the holder's first step")
    dead.kill()  # in its 2 s first step: the container is not restarted yet
    killed_at = time.monotonic()
    assert starts.starts == [] and not answers(web), "the holder was killed after its restart"
    # The lease expires (3 s), another host takes the lock, then runs the
    # playbook (2 s, a restart, its check): the rest is margin for a busy machine.
    wait_for(lambda: answers(web), timeout=LEASE_TTL_S + 15, message="another host healed it")
    took = time.monotonic() - killed_at
    assert took < LEASE_TTL_S + 15
    others = [d for d in daemons if d is not dead]
    wait_for(
        lambda: sorted(r["outcome"] for d in others for r in recoveries(d)) == ["succeeded"],
        timeout=15,
        message="one other host's heal succeeded",
    )
    time.sleep(2)
    assert len(starts.starts) == 1, f"Docker saw {len(starts.starts)} starts"
    first, second = heals(tmp_path)
    assert first == holder and second != holder, heals(tmp_path)
