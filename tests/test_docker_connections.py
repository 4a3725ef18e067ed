"""medic's Docker connections stay few, however many containers it asks about.

docker-py keys its connection pools by the whole request URL, each keeping an
idle connection to dockerd (up to 25); the soak (``bench/soak.py``) saw medic's
open fds climb to 25 Docker connections while watching ten containers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psutil

from medic.host.docker import ContainerNotFound, DockerGateway
from tests.plugins.docker import ContainerFactory


def _unix_sockets() -> int:
    return len(psutil.Process().net_connections(kind="unix"))


async def test_asking_about_many_containers_keeps_one_pool(
    container_factory: ContainerFactory, idle_container: Any
) -> None:
    web = container_factory(name="web")
    gateway = DockerGateway()
    try:
        await gateway.inspect(web.name)
        before = _unix_sockets()
        for i in range(40):  # 40 distinct URLs, as 40 containers' inspections would be
            with contextlib.suppress(ContainerNotFound):
                await gateway.inspect(f"{web.name}-missing-{i}")
            await gateway.inspect(web.name)
        assert _unix_sockets() - before <= 1
        # Concurrent calls may open up to the one pool's size (10), never more,
        # however many rounds of them come.
        for _ in range(3):
            await asyncio.gather(*(gateway.inspect(web.name) for _ in range(30)))
            assert _unix_sockets() - before <= 10
    finally:
        gateway.close()
