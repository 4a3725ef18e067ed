"""``recreate_container`` on the real engine: the new container is the old one
again (ports, mounts and their data, networks with aliases, labels, restart
policy, healthcheck); a Compose container is still Compose's; a container the
engine refuses to make again is kept as it was."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from medic.heal.actions.base import ActionContext, ActionError
from medic.heal.actions.recreate_container import RecreateContainer
from medic.host.resources import Resources
from tests.helpers import free_port
from tests.plugins.docker import ContainerFactory


def recreate(container: str, **options: Any) -> RecreateContainer:
    return RecreateContainer(
        RecreateContainer.options_model.model_validate(
            {"action": "recreate_container", "container": container, **options}
        )
    )


@pytest.fixture
def user_network(docker_client: docker.DockerClient) -> Iterator[Any]:
    network = docker_client.networks.create(
        f"medic-test-{secrets.token_hex(3)}", labels={"medic.test": "1"}
    )
    yield network
    network.reload()
    for container in network.containers:
        network.disconnect(container, force=True)
    network.remove()


def kept(attrs: dict[str, Any]) -> dict[str, Any]:
    """What must survive a recreate, from ``inspect``."""
    short = attrs["Id"][:12]
    networks = {
        name: sorted(a for a in (ep.get("Aliases") or []) if not attrs["Id"].startswith(a))
        for name, ep in attrs["NetworkSettings"]["Networks"].items()
    }
    config, host = attrs["Config"], attrs["HostConfig"]
    return {
        "name": attrs["Name"],
        "image": config["Image"],
        "cmd": config["Cmd"],
        "env": config["Env"],
        "labels": config["Labels"],
        "healthcheck": config.get("Healthcheck"),
        "ports": host["PortBindings"],
        "published": attrs["NetworkSettings"]["Ports"],
        "restart": host["RestartPolicy"],
        "mounts": sorted(
            (m["Type"], m.get("Name") or m["Source"], m["Destination"], m["RW"])
            for m in attrs["Mounts"]
        ),
        "networks": networks,
        "hostname_is_old_id": config["Hostname"] == short,
    }


async def test_the_recreated_container_keeps_ports_mounts_networks_and_labels(
    container_factory: ContainerFactory,
    docker_client: docker.DockerClient,
    user_network: Any,
    tmp_path: Path,
    resources: Resources,
) -> None:
    volume = f"medic-test-{secrets.token_hex(3)}"
    (tmp_path / "bound.txt").write_text("from the host\n")
    app = container_factory(
        name="recreated",
        host_port=free_port(),
        health_cmd="true",
        restart_policy="unless-stopped",
        environment={"GREETING": "hello"},
        labels={"com.example.role": "web"},
        volumes={str(tmp_path): {"bind": "/host", "mode": "ro"}, volume: {"bind": "/named"}},
    )
    try:
        user_network.connect(app.id, aliases=["app-alias", "web-alias"])
        app.container.exec_run(["sh", "-c", "echo kept > /named/data"])
        before = docker_client.api.inspect_container(app.id)
        assert kept(before)["networks"][user_network.name] == ["app-alias", "web-alias"]
        ctx = ActionContext(resources=resources, state_dir=tmp_path)
        result = await recreate(app.name, stop_timeout="2s").run(ctx)
        assert result.ok, result.detail
        after = docker_client.api.inspect_container(app.name)
        assert after["Id"] != before["Id"] and after["Id"] == result.data["new_id"]
        assert kept(after) == kept(before)
        assert after["State"]["Status"] == "running"
        names = [c.name for c in docker_client.containers.list(all=True)]
        assert [n for n in names if n.startswith(app.name)] == [app.name], "no old one left"
        new = docker_client.containers.get(app.name)
        assert new.exec_run(["cat", "/named/data"]).output == b"kept\n"
        assert new.exec_run(["cat", "/host/bound.txt"]).output == b"from the host\n"
    finally:
        docker_client.api.remove_container(app.name, force=True)
        docker_client.volumes.get(volume).remove(force=True)


async def test_a_container_the_engine_refuses_to_make_again_is_kept(
    container_factory: ContainerFactory,
    docker_client: docker.DockerClient,
    test_image: str,
    tmp_path: Path,
    resources: Resources,
) -> None:
    # Its image's tag is gone: the engine cannot create it again.
    tag = f"medic-test-gone:{secrets.token_hex(3)}"
    docker_client.images.get(test_image).tag(tag)
    container_factory.image = tag
    app = container_factory(name="refused", command="exec sleep 3600", publish=False)
    docker_client.images.remove(tag)
    ctx = ActionContext(resources=resources, state_dir=tmp_path)
    with pytest.raises(ActionError, match=r"refused to create it.*the old container is kept"):
        await recreate(app.name).run(ctx)
    still = docker_client.api.inspect_container(app.name)
    assert still["Id"] == app.id and still["State"]["Status"] == "running"
    leftovers = [c.name for c in docker_client.containers.list(all=True) if app.name in c.name]
    assert leftovers == [app.name]


async def test_a_recreated_container_that_cannot_start_gives_way_to_the_old_one(
    container_factory: ContainerFactory,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    resources: Resources,
) -> None:
    app = container_factory(name="putback", command="exec sleep 3600", publish=False)
    ctx = ActionContext(resources=resources, state_dir=tmp_path)
    with pytest.raises(ActionError, match=r"did not start.*the old container was put back"):
        await recreate(app.name, network_mode="container:no-such-parent").run(ctx)
    still = docker_client.api.inspect_container(app.name)
    assert still["Id"] == app.id and still["State"]["Status"] == "running"
    leftovers = [c.name for c in docker_client.containers.list(all=True) if app.name in c.name]
    assert leftovers == [app.name]


COMPOSE = """
version: "2.4"
services:
  app:
    image: {image}
    init: true
    command: [sleep, "100000"]
    ports: ["127.0.0.1:PORT:8080"]
    labels:
      org.medic-tests.owner-pid: "{owner}"
"""


async def test_a_compose_container_is_still_listed_by_compose(
    compose_project: Any, docker_client: docker.DockerClient, tmp_path: Path, resources: Resources
) -> None:
    project = compose_project(COMPOSE.replace("PORT", str(free_port())))
    old = project.container(docker_client, "app")
    ctx = ActionContext(resources=resources, state_dir=tmp_path)
    result = await recreate(old.name).run(ctx)
    assert result.ok, result.detail
    new = project.container(docker_client, "app")
    assert new.id != old.id and new.name == old.name
    assert new.labels == old.labels
    listed = project.run("ps")
    assert old.name in listed and " Up " in listed, listed
    assert project.run("ps", "-q").split() == [new.id]
