"""Docker: the engine, the test image, and containers that carry their owner.

Every container the tests make is labelled ``medic.test=1`` and with the pid
of the pytest process that made it; a session removes the leftovers of
sessions that are gone (crashed runs) and never those of one still running.

Fixtures
    docker_client      session  docker.DockerClient (removes leftovers of crashed runs)
    test_image         session  name of the local image medic-test:busybox
    idle_container     session  an idle container that keeps the default bridge up
    container_factory  function ContainerFactory: ``container_factory(...) -> ContainerHandle``
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import urllib.error
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.helpers import (
    SETUP_HINT,
    TEST_IMAGE,
    container_state,
    free_port,
    kill_container_process,
    wait_for,
)
from tests.plugins.http import http_request

TEST_LABEL = "medic.test"
OWNER_LABEL = "medic.test.owner-pid"


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (PID 1 here reaps late)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _remove_leftovers(client: docker.DockerClient) -> None:
    """Remove test containers whose pytest process is gone (crashed earlier runs).

    Containers of another pytest session that is still running are left alone.
    """
    # The low-level listing inspects nothing, so a container that another
    # session removes meanwhile cannot make it fail.
    for row in client.api.containers(all=True, filters={"label": f"{TEST_LABEL}=1"}):
        owner = (row.get("Labels") or {}).get(OWNER_LABEL, "")
        if owner.isdigit() and _pid_alive(int(owner)):
            continue
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.api.remove_container(row["Id"], force=True)


def medic_test_labels(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    labels = {TEST_LABEL: "1", OWNER_LABEL: str(os.getpid())}
    labels.update(extra or {})
    return labels


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "unreachable"
        pytest.fail(
            f"The Docker engine is unreachable ({type(exc).__name__}: {exc}); {SETUP_HINT}",
            pytrace=False,
        )
    _remove_leftovers(client)
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> str:
    try:
        docker_client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"The test image {TEST_IMAGE} does not exist; {SETUP_HINT}", pytrace=False)
    return TEST_IMAGE


@pytest.fixture(scope="session")
def idle_container(docker_client: docker.DockerClient, test_image: str) -> Iterator[Container]:
    """An idle container on the default bridge for the whole session.

    When the last container leaves the default bridge, the next one to start
    (e.g. a restart under test) takes ~0.8 s longer; this one prevents that.
    """
    container = docker_client.containers.run(
        test_image,
        ["sleep", "100000"],
        name=f"medic-test-idle-{secrets.token_hex(3)}",
        labels=medic_test_labels({"medic.test.role": "idle"}),
        detach=True,
        init=True,
    )
    yield container
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True)


@dataclass
class ContainerHandle:
    """A container made by ``container_factory``."""

    name: str
    id: str
    port: int | None
    url: str | None
    container: Container
    client: docker.DockerClient

    def reload(self) -> Container:
        self.container.reload()
        return self.container

    @property
    def status(self) -> str:
        """Docker's status right now: created, running, exited, restarting..."""
        return str(self.reload().status)

    def state(self) -> dict[str, Any]:
        return container_state(self.client, self.name)

    @property
    def health(self) -> str | None:
        """HEALTHCHECK status (starting, healthy, unhealthy) or None."""
        health = self.state().get("Health")
        return None if health is None else str(health.get("Status"))

    def kill_process(self) -> int:
        """SIGKILL the main process from the host: a crash, not a manual stop."""
        return kill_container_process(self.client, self.name)

    def logs(self) -> str:
        return bytes(self.container.logs()).decode("utf-8", "replace")

    def wait_status(self, status: str, timeout: float = 15.0) -> None:
        wait_for(
            lambda: self.status == status,
            timeout,
            interval=0.05,
            message=f"container {self.name} did not become {status!r}",
        )

    def wait_health(self, status: str = "healthy", timeout: float = 30.0) -> None:
        wait_for(
            lambda: self.health == status,
            timeout,
            interval=0.1,
            message=f"container {self.name} health did not become {status!r}",
        )


def _healthcheck(
    cmd: str | Sequence[str], interval: float, timeout: float, retries: int, start_period: float
) -> dict[str, Any]:
    test = ["CMD-SHELL", cmd] if isinstance(cmd, str) else ["CMD", *cmd]
    ns = 1_000_000_000
    return {
        "test": test,
        "interval": int(interval * ns),
        "timeout": int(timeout * ns),
        "retries": retries,
        "start_period": int(start_period * ns),
    }


def _restart_policy(policy: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if policy is None:
        return {"Name": "no"}
    if isinstance(policy, str):
        return {"Name": policy, "MaximumRetryCount": 0}
    return dict(policy)


class ContainerFactory:
    """``container_factory(...)`` starts a container from the test image.

    Every container gets the name ``{prefix}{suffix}`` (prefix
    ``medic-test-<random>-``), the label ``medic.test=1`` and, unless told
    otherwise, docker's ``--init`` (so ``docker stop`` is quick: busybox as
    PID 1 would ignore SIGTERM for 10 s) and restart policy "no".
    """

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.prefix = f"medic-test-{secrets.token_hex(3)}-"
        self.created: list[ContainerHandle] = []
        self._count = 0

    def __call__(
        self,
        *,
        name: str | None = None,
        command: str | Sequence[str] | None = None,
        publish: bool | None = None,
        host_port: int | None = None,
        health_cmd: str | Sequence[str] | None = None,
        health_interval: float = 1.0,
        health_timeout: float = 2.0,
        health_retries: int = 2,
        health_start_period: float = 0.0,
        healthcheck: Mapping[str, Any] | None = None,
        restart_policy: str | Mapping[str, Any] | None = None,
        init: bool = True,
        environment: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        wait_ready: bool | None = None,
        ready_timeout: float = 15.0,
        **run_kwargs: Any,
    ) -> ContainerHandle:
        """Create and start a container; return once it runs (and answers HTTP).

        ``command``: None runs the image's busybox httpd on port 8080; a string
        runs through ``sh -c``, a list is exec'd as is.
        ``publish``: map container port 8080 to 127.0.0.1:``host_port`` (a free
        port unless given); defaults to True when ``command`` is None.
        ``health_cmd``: a HEALTHCHECK (string: CMD-SHELL; list: CMD), or pass
        a raw docker-py ``healthcheck`` dict.
        ``wait_ready``: wait until the published port answers HTTP (any status);
        defaults to ``publish``.
        """
        self._count += 1
        full_name = f"{self.prefix}{name or f'c{self._count}'}"
        if publish is None:
            publish = command is None or host_port is not None
        if wait_ready is None:
            wait_ready = publish
        argv: list[str] | None
        if command is None:
            argv = None
        elif isinstance(command, str):
            argv = ["sh", "-c", command]
        else:
            argv = list(command)
        if health_cmd is not None:
            healthcheck = _healthcheck(
                health_cmd, health_interval, health_timeout, health_retries, health_start_period
            )

        for attempt in range(5):
            port = (host_port or free_port()) if publish else None
            container = self.client.containers.create(
                self.image,
                argv,
                name=full_name,
                labels=medic_test_labels(labels),
                ports={"8080/tcp": ("127.0.0.1", port)} if port else None,
                healthcheck=dict(healthcheck) if healthcheck else None,
                restart_policy=_restart_policy(restart_policy),  # type: ignore[arg-type]
                init=init,
                environment=dict(environment or {}),
                **run_kwargs,
            )
            try:
                container.start()
                break
            except docker.errors.APIError as exc:
                container.remove(force=True)
                port_taken = "already allocated" in str(exc) or "address already in use" in str(exc)
                if not port_taken or host_port is not None or attempt == 4:
                    raise
        url = f"http://127.0.0.1:{port}/" if port else None
        handle = ContainerHandle(
            name=full_name,
            id=str(container.id),
            port=port,
            url=url,
            container=container,
            client=self.client,
        )
        self.created.append(handle)
        if wait_ready and url:
            self._wait_http(handle, url, ready_timeout)
        return handle

    def _wait_http(self, handle: ContainerHandle, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                http_request(url, timeout=1.0)
                return
            except (OSError, urllib.error.URLError) as exc:
                last_error = exc
            if handle.status not in ("running", "created", "restarting"):
                pytest.fail(
                    f"container {handle.name} stopped ({handle.status}) before {url} answered;"
                    f" logs:\n{handle.logs()}",
                    pytrace=False,
                )
            time.sleep(0.05)
        pytest.fail(
            f"container {handle.name}: {url} did not answer within {timeout:g}s"
            f" ({last_error}); logs:\n{handle.logs()}",
            pytrace=False,
        )

    def cleanup(self) -> None:
        for handle in self.created:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.client.api.remove_container(handle.id, force=True)
        self.created.clear()


@pytest.fixture
def container_factory(
    docker_client: docker.DockerClient, test_image: str, idle_container: Container
) -> Iterator[ContainerFactory]:
    factory = ContainerFactory(docker_client, test_image)
    yield factory
    factory.cleanup()
