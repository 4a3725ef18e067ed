"""Compose projects on the real engine (Debian's ``docker-compose``, v1), with
no service in the YAML: their containers are named by their Compose service,
tied by Compose's ``depends_on`` label (v1 does not write it: the file gives it
in v2's format) and by ``network_mode: service:``, and healed when they crash;
a Compose file written for autoheal works as it is."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import docker

from medic.core.vocabulary import FailureType
from medic.orchestrator import ControlPlaneOrchestrator
from tests.helpers import REPO_ROOT, wait_for
from tests.plugins.inprocess import BusWatch, OrchestratorFactory

PLAYBOOKS = REPO_ROOT / "recovery_playbooks"

STACK = """
version: "2.4"
x-medic: &medic
  image: {image}
  init: true
  labels: &labels
    medic.enable: "true"
    medic.recovery.service_crash: restart-container
    org.medic-tests.owner-pid: "{owner}"
services:
  db:
    <<: *medic
  web:
    <<: *medic
    depends_on: [db]
    labels:
      <<: *labels
      com.docker.compose.depends_on: "db:service_started:false"
  vpn:
    <<: *medic
    labels:
      <<: *labels
      medic.recovery.unhealthy_response: recreate-container
  sidecar:
    <<: *medic
    command: [sleep, "100000"]
    network_mode: "service:vpn"
"""

AUTOHEAL = """
version: "2.4"
services:
  app:
    image: {image}
    init: true
    tmpfs: [/run/flag]
    labels:
      autoheal: "true"
      autoheal.stop.timeout: "2"
      org.medic-tests.owner-pid: "{owner}"
    healthcheck:
      test: ["CMD", "sh", "-c", "test ! -f /run/flag/sick"]
      interval: 1s
      timeout: 1s
      retries: 1
"""


def config(docker_section: str) -> str:
    return f"""
monitoring:
  health_check_interval: 2s
  timeout: 2s
  failure_threshold: 1
  recovery: {{max_attempts: 5, backoff: {{initial: 100ms}}}}
playbooks_dir: {PLAYBOOKS}
docker: {docker_section}
"""


async def all_healthy(events: BusWatch, names: set[str]) -> None:
    """Each of ``names`` became healthy, in whatever order."""
    waiting = set(names)
    while waiting:
        event = await events.next("service.state", new="healthy")
        waiting.discard(event.data["service"])


def status(orch: ControlPlaneOrchestrator, name: str) -> dict[str, Any]:
    return orch.service_status(name)


async def test_a_compose_project_is_discovered_named_tied_and_healed(
    orchestrator: OrchestratorFactory, compose_project: Any, docker_client: docker.DockerClient
) -> None:
    project = compose_project(STACK)
    orch = await orchestrator(config("{discover: labeled}"))
    events = BusWatch(orch.bus, after=0)
    await all_healthy(events, {"db", "web", "vpn", "sidecar"})
    assert status(orch, "web")["depends_on"] == ["db"]
    assert status(orch, "sidecar")["depends_on"] == ["vpn"]
    assert status(orch, "web")["source"] == "docker"
    assert orch.discovery_errors() == []

    web = project.container(docker_client, "web")
    docker_client.api.kill(web.id)  # SIGKILL through Docker: a crash, not a stop
    done = await events.next("recovery.succeeded", service="web")
    assert done.data["playbook"] == "restart-container"
    wait_for(lambda: web.reload() or web.status == "running", 15, message="web runs again")


async def test_an_autoheal_compose_file_is_healed_when_its_healthcheck_fails(
    orchestrator: OrchestratorFactory, compose_project: Any, docker_client: docker.DockerClient
) -> None:
    project = compose_project(AUTOHEAL)
    app = project.container(docker_client, "app")
    orch = await orchestrator(config("{autoheal_labels: true}"))
    events = BusWatch(orch.bus, after=0)
    await events.next("service.state", service="app", new="healthy")
    assert status(orch, "app")["check_type"] == "container"
    app.exec_run(["touch", "/run/flag/sick"])
    unhealthy = await events.next("service.unhealthy", service="app")
    assert unhealthy.data["failure_type"] == "unhealthy_response"
    done = await events.next("recovery.succeeded", service="app")
    assert done.data["playbook"] == "restart-container"
    app.reload()
    assert app.attrs["RestartCount"] == 0 and app.status == "running"
    assert app.exec_run(["test", "-f", "/run/flag/sick"]).exit_code == 1, "restarted: tmpfs empty"


RECREATE = """
version: "2.4"
services:
  app:
    image: {image}
    init: true
    labels:
      medic.enable: "true"
      medic.interval: INTERVAL
      org.medic-tests.owner-pid: "{owner}"
"""


async def test_a_container_recreated_with_other_labels_gets_them(
    orchestrator: OrchestratorFactory, compose_project: Any
) -> None:
    project = compose_project(RECREATE.replace("INTERVAL", "3s"))
    orch = await orchestrator(config("{discover: labeled}"))
    events = BusWatch(orch.bus, after=0)
    await events.next("service.state", service="app", new="healthy")
    assert status(orch, "app")["interval_seconds"] == 3.0
    compose_file = project.directory / "docker-compose.yml"
    compose_file.write_text(compose_file.read_text().replace("3s", "7s"))
    project.run("up", "-d")  # Compose v1 recreates it: new container, old one removed
    await events.next("discovery.changed", changed=["app"])
    await events.next("service.state", service="app", new="healthy")
    assert status(orch, "app")["interval_seconds"] == 7.0
    assert orch.discovery_errors() == []
    assert events.count("discovery.error") == 0


class ProjectStarts:
    """Docker's own ``start`` events of a Compose project's containers: (service, id), in order."""

    def __init__(self, client: docker.DockerClient, project: str) -> None:
        self.starts: list[tuple[str, str]] = []
        label = f"com.docker.compose.project={project}"
        self._stream = client.api.events(
            decode=True, filters={"label": label, "event": "start", "type": "container"}
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                attributes = event["Actor"]["Attributes"]
                self.starts.append((attributes["com.docker.compose.service"], event["id"]))
        except Exception:  # noqa: BLE001 - the stream ends when closed
            return

    def services(self) -> list[str]:
        return [service for service, _ in self.starts]

    def close(self) -> None:
        self._stream.close()


async def settle(starts: ProjectStarts, expected: list[str], quiet_s: float = 3.0) -> None:
    """``expected`` starts came, then nothing more for ``quiet_s``."""
    deadline = time.monotonic() + 30
    while starts.services() != expected:
        assert len(starts.services()) < len(expected), starts.services()
        assert time.monotonic() < deadline, f"starts {starts.services()}, expected {expected}"
        await asyncio.sleep(0.1)
    await asyncio.sleep(quiet_s)
    assert starts.services() == expected, "more starts than the heal needs"


async def test_the_sidecar_follows_its_parent_restarted_or_recreated(
    orchestrator: OrchestratorFactory, compose_project: Any, docker_client: docker.DockerClient
) -> None:
    project = compose_project(STACK)
    orch = await orchestrator(config("{discover: labeled}"))
    events = BusWatch(orch.bus, after=0)
    await all_healthy(events, {"db", "web", "vpn", "sidecar"})
    vpn, sidecar = (project.container(docker_client, s) for s in ("vpn", "sidecar"))
    assert sidecar.attrs["HostConfig"]["NetworkMode"] == f"container:{vpn.id}"
    starts = ProjectStarts(docker_client, project.name)
    try:
        # The vpn crashes: medic heals it, then the sidecar restarts in its new namespace.
        docker_client.api.kill(vpn.id)
        await events.next("recovery.succeeded", service="vpn")
        followed = await events.next("sidecar.followed", container=sidecar.name)
        assert followed.data["action"] == "restart"
        await settle(starts, ["vpn", "sidecar"])
        assert [i for _, i in starts.starts] == [vpn.id, sidecar.id]
        sidecar.reload()
        assert sidecar.status == "running"

        # The vpn is recreated (a new id): the namespace the sidecar joined is
        # gone, so the sidecar is recreated in the new vpn's.
        project.run("up", "-d", "--force-recreate", "--no-deps", "vpn")
        new_vpn = project.container(docker_client, "vpn")
        followed = await events.next("sidecar.followed", container=sidecar.name, action="recreate")
        await settle(starts, ["vpn", "sidecar", "vpn", "sidecar"])
        new_sidecar = project.container(docker_client, "sidecar")
        assert new_sidecar.id == followed.data["new_id"] != sidecar.id
        assert new_sidecar.attrs["HostConfig"]["NetworkMode"] == f"container:{new_vpn.id}"
        assert new_sidecar.status == "running" and new_sidecar.name == sidecar.name
        assert sidecar.name in project.run("ps")

        # medic's own recreate-container playbook on the vpn: the sidecar follows again.
        result = await orch.engine.remediate("vpn", FailureType.UNHEALTHY_RESPONSE, dry_run=False)
        assert (result.playbook, result.outcome) == ("recreate-container", "succeeded"), result
        newest_vpn = project.container(docker_client, "vpn")
        followed = await events.next("sidecar.followed", container=sidecar.name, action="recreate")
        await settle(starts, ["vpn", "sidecar"] * 3)
        last = project.container(docker_client, "sidecar")
        assert last.id == followed.data["new_id"] != new_sidecar.id
        assert last.attrs["HostConfig"]["NetworkMode"] == f"container:{newest_vpn.id}"
    finally:
        starts.close()
