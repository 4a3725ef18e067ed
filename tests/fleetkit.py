"""Medics as the hosts of one fleet on a real etcd cluster: the set-up the
fleet tests share.

Host ``host-N`` is a ``medic run`` of its own (its state dir ``state-N``, a
free API port, ``fleet.host: host-N``, group ``test``, ``lease_ttl: 3s``) with
``MEDIC_FLEET_HOST=host-N`` in its environment, so one services text serves
every host (a check or step can name its host through that variable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.etcd import EtcdCluster

TOKEN = "fleet-test-token"

RECOVERY = "{max_attempts: 10, backoff: {initial: 500ms, max: 1s}}"


def fleet_config(
    host: str,
    endpoints: Sequence[str],
    services: str,
    *,
    prefix: str = "/medic-test",
    fleet: str = "",
    recovery: str = RECOVERY,
) -> str:
    """One host's config: ``services`` is the YAML under ``services:``
    (indented two spaces), ``fleet`` more keys of ``fleet:`` (indented two)."""
    return f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {recovery}
playbooks_dir: playbooks
fleet:
  etcd: {{endpoints: {json.dumps(list(endpoints))}, prefix: {prefix}}}
  host: {host}
  group: test
  lease_ttl: 3s
{fleet}
services:
{services}
"""


def start_hosts(
    medic_daemon: DaemonFactory,
    etcd: EtcdCluster,
    tmp: Path,
    services: str,
    playbooks: Mapping[str, str],
    *,
    hosts: int = 3,
    endpoints: Sequence[str] | None = None,
    see_all: bool = False,
    **config: str,
) -> list[DaemonProcess]:
    """Start ``hosts`` medics (``config``: ``fleet_config``'s keywords); return
    once each is connected to etcd (``see_all``: and sees every host)."""
    medic_daemon.write_playbooks(playbooks)
    daemons = []
    for index in range(hosts):
        host = f"host-{index}"
        daemons.append(
            medic_daemon(
                fleet_config(host, endpoints or etcd.endpoints, services, **config),
                env={"MEDIC_API_TOKEN": TOKEN, "MEDIC_FLEET_HOST": host},
                state_dir=tmp / f"state-{index}",
            )
        )
    for daemon in daemons:
        wait_for(
            lambda d=daemon: d.get("/api/v1/fleet")[1].get("connected"),  # type: ignore[misc]
            timeout=15,
            message="daemon connected to etcd",
        )
        if see_all:
            wait_for(
                lambda d=daemon: len(d.get("/api/v1/fleet")[1]["hosts"]) == hosts,  # type: ignore[misc]
                timeout=15,
                message="every host sees them all",
            )
    return daemons


def by_host(daemons: Sequence[DaemonProcess], host: str) -> DaemonProcess:
    """The daemon of ``host-N``."""
    return daemons[int(host.rsplit("-", 1)[1])]


def held_reasons(daemon: DaemonProcess, service: str) -> list[str]:
    """The ``recovery.held`` entries of ``service`` in the daemon's audit, as JSON text."""
    entries = daemon.get(f"/api/v1/audit?kind=recovery.held&service={service}")[1]["audit"]
    return [json.dumps(entry) for entry in entries]
