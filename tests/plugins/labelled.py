"""Containers whose labels medic reads: made from a copy of the test image
without its ``medic.recipe`` label, and owned through labels outside medic's
``medic.*`` namespace (the other tests' ``medic.test`` labels would be read as
service keys, and refused as unknown).

Fixtures
    plain_image        session   medic-test:plain, the test image without labels
    labelled           function  LabelledFactory: ``labelled(labels, ...) -> ContainerHandle``
    compose_project    function  ComposeRunner: ``compose_project(yaml) -> ComposeProject``
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.docker import ContainerHandle, _pid_alive
from tests.plugins.http import http_request

PLAIN_IMAGE = "medic-test:plain"
OWNER = "org.medic-tests.owner-pid"


def owner_labels() -> dict[str, str]:
    return {OWNER: str(os.getpid())}


def _remove_leftovers(client: docker.DockerClient) -> None:
    for row in client.api.containers(all=True, filters={"label": OWNER}):
        owner = (row.get("Labels") or {}).get(OWNER, "")
        if owner.isdigit() and _pid_alive(int(owner)):
            continue
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.api.remove_container(row["Id"], force=True)


@pytest.fixture(scope="session")
def plain_image(docker_client: docker.DockerClient, test_image: str) -> str:
    """The test image's files and settings, without its label (export, import)."""
    _remove_leftovers(docker_client)
    source = docker_client.images.get(test_image)
    config = source.attrs["Config"]
    try:
        if docker_client.images.get(PLAIN_IMAGE).attrs["Config"].get("Labels") is None:
            return PLAIN_IMAGE
    except docker.errors.ImageNotFound:
        pass
    container = docker_client.api.create_container(test_image, labels=owner_labels())
    try:
        data = b"".join(docker_client.api.export(container["Id"]))
    finally:
        docker_client.api.remove_container(container["Id"], force=True)
    changes = [
        "CMD " + _json(config["Cmd"]),
        *(f"ENV {env}" for env in config.get("Env") or []),
        "EXPOSE 8080",
        "WORKDIR /",
    ]
    repository, tag = PLAIN_IMAGE.split(":")
    docker_client.api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)
    return PLAIN_IMAGE


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


class LabelledFactory:
    """``labelled(labels, name=..., health_cmd=..., publish=True)``: a started
    container of the plain image carrying ``labels``."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.prefix = f"medic-lbl-{secrets.token_hex(3)}-"
        self.created: list[ContainerHandle] = []

    def __call__(
        self,
        labels: Mapping[str, str],
        *,
        name: str,
        publish: bool = True,
        start: bool = True,
        **kwargs: Any,
    ) -> ContainerHandle:
        port = free_port() if publish else None
        container = self.client.containers.create(
            self.image,
            name=f"{self.prefix}{name}",
            labels={**owner_labels(), **labels},
            ports={"8080/tcp": ("127.0.0.1", port)} if port else None,
            init=True,
            **kwargs,
        )
        url = f"http://127.0.0.1:{port}/" if port else None
        handle = ContainerHandle(
            name=str(container.name),
            id=str(container.id),
            port=port,
            url=url,
            container=container,
            client=self.client,
        )
        self.created.append(handle)
        if start:
            container.start()
            if url:
                wait_for(lambda: http_request(url, timeout=1.0), 15, message=f"{url} answers")
        return handle

    def cleanup(self) -> None:
        for handle in self.created:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.client.api.remove_container(handle.id, force=True)


@pytest.fixture
def labelled(
    docker_client: docker.DockerClient, plain_image: str, idle_container: Any
) -> Iterator[LabelledFactory]:
    factory = LabelledFactory(docker_client, plain_image)
    yield factory
    factory.cleanup()


@dataclass
class ComposeProject:
    """A project run by Debian's ``docker-compose`` (v1) in its own folder."""

    name: str
    directory: Path

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            ["docker-compose", "-p", self.name, *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr}"
        return done.stdout

    def container(self, client: docker.DockerClient, service: str) -> Any:
        rows = client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.name}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        assert len(rows) == 1, f"{service}: {rows}"
        return rows[0]


@pytest.fixture
def compose_project(tmp_path: Path, plain_image: str) -> Iterator[Any]:
    """``compose_project(yaml)``: write docker-compose.yml, ``up -d``, ``down`` after."""
    projects: list[ComposeProject] = []

    def make(yaml: str, *, up: bool = True) -> ComposeProject:
        directory = tmp_path / f"compose{len(projects)}"
        directory.mkdir()
        text = yaml.replace("{image}", plain_image).replace("{owner}", str(os.getpid()))
        (directory / "docker-compose.yml").write_text(text)
        project = ComposeProject(f"medic{secrets.token_hex(3)}", directory)
        projects.append(project)
        if up:
            project.run("up", "-d")
        return project

    yield make
    for project in projects:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            project.run("down", "-t", "1", "--remove-orphans")
