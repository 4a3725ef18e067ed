"""Label discovery bench: how soon a labelled container is checked, and whether
a labelled container heals as fast as a YAML one.

One medic (in-process, ``docker.discover: labeled``, a 1 s check interval)
watches, in the same run:

1. discovery: a container labelled ``medic.enable=true`` is created and
   started, N times; the clock runs from Docker's own ``start`` event
   (``timeNano``) to the first check result medic publishes for the new
   service (``service.state``, stamped by a bus listener). The container is
   removed between rounds (``destroy`` takes the service away);
2. MTTR: two running containers of the same image, one a YAML service
   (``container: NAME``, ``check: {type: container}``), one labelled; rounds
   take turns killing one of them through Docker (SIGKILL) and time the kill
   to medic's ``recovery.succeeded`` for it. Both use ``restart-container``.

Run from the repository root (the engine and medic-test:busybox as for the tests):

    PYTHONPATH=daemon .venv/bin/python bench/discovery.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

from medic.core.bus import Event
from medic.orchestrator import ControlPlaneOrchestrator

REPO = Path(__file__).resolve().parent.parent
IMAGE, PLAIN = "medic-test:busybox", "medic-test:plain"
OWNER = "org.medic-tests.owner-pid"


def plain_image(client: docker.DockerClient) -> str:
    """The test image without its ``medic.recipe`` label (read as a service key)."""
    try:
        if client.images.get(PLAIN).attrs["Config"].get("Labels") is None:
            return PLAIN
    except docker.errors.ImageNotFound:
        pass
    config = client.images.get(IMAGE).attrs["Config"]
    made = client.api.create_container(IMAGE)
    try:
        data = b"".join(client.api.export(made["Id"]))
    finally:
        client.api.remove_container(made["Id"], force=True)
    changes = ["CMD " + json.dumps(config["Cmd"]), "EXPOSE 8080", "WORKDIR /"]
    changes += [f"ENV {env}" for env in config.get("Env") or []]
    client.api.import_image_from_data(data, repository="medic-test", tag="plain", changes=changes)
    return PLAIN


class Stamps:
    """Wall-clock times of the bus events, and Docker's start events by container."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.bus: list[tuple[float, Event]] = []
        self.starts: dict[str, float] = {}
        self._stream = client.api.events(decode=True, filters={"event": "start"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self._stream:
                name = raw.get("Actor", {}).get("Attributes", {}).get("name", "")
                self.starts[name] = int(raw["timeNano"]) / 1e9
        except Exception:  # noqa: BLE001 - the stream ends when closed
            return

    def on_bus(self, event: Event) -> None:
        self.bus.append((time.time(), event))

    async def wait(self, match: Callable[[Event], bool], after: float) -> float:
        """When the first event after ``after`` that ``match``es arrived (30 s at most)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for at, event in self.bus:
                if at >= after and match(event):
                    return at
            await asyncio.sleep(0.002)
        raise TimeoutError("event did not come")

    def close(self) -> None:
        self._stream.close()


def config(yaml_container: str) -> str:
    return f"""
monitoring:
  health_check_interval: 1s
  timeout: 2s
  failure_threshold: 1
  recovery: {{max_attempts: 1000, backoff: {{initial: 100ms}}}}
playbooks_dir: {REPO / "recovery_playbooks"}
docker: {{discover: labeled}}
services:
  yaml-web:
    check: {{type: container}}
    container: {yaml_container}
    recovery: {{service_crash: restart-container}}
"""


def run_container(
    client: docker.DockerClient, image: str, name: str, labels: dict[str, str]
) -> Any:
    return client.containers.run(
        image,
        name=name,
        labels={OWNER: str(os.getpid()), **labels},
        detach=True,
        init=True,
        network_mode="none",  # a container check needs no network; the bridge is shared
    )


async def discovery_rounds(
    client: docker.DockerClient, image: str, stamps: Stamps, rounds: int, prefix: str
) -> list[float]:
    figures = []
    for index in range(rounds):
        name, service = f"{prefix}new{index}", f"new{index}"
        before = time.time()
        container = run_container(
            client, image, name, {"medic.enable": "true", "medic.name": service}
        )
        first = await stamps.wait(
            lambda e, s=service: e.name == "service.state" and e.data["service"] == s, before
        )
        for _ in range(200):  # Docker's event reaches this bench's own stream a moment later
            if name in stamps.starts:
                break
            await asyncio.sleep(0.01)
        figures.append((first - stamps.starts[name]) * 1000)
        container.remove(force=True)
        await asyncio.sleep(0.5)
    return figures


async def mttr_rounds(
    client: docker.DockerClient, targets: dict[str, Any], stamps: Stamps, rounds: int
) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {name: [] for name in targets}
    for index in range(rounds * len(targets)):
        service = list(targets)[index % len(targets)]
        await asyncio.sleep(1.5)  # settled: healthy, no recovery running
        killed_at = time.time()
        client.api.kill(targets[service].id)
        done = await stamps.wait(
            lambda e, s=service: e.name == "recovery.succeeded" and e.data["service"] == s,
            killed_at,
        )
        figures[service].append((done - killed_at) * 1000)
    return figures


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"n={len(values)} median {statistics.median(values):.1f} ms, p90 {p90:.1f} ms,"
        f" min {min(values):.1f}, max {max(values):.1f}"
    )


async def main(rounds: int) -> None:
    client = docker.from_env()
    image = plain_image(client)
    prefix = f"medic-bench-{secrets.token_hex(3)}-"
    yaml_c = run_container(client, image, f"{prefix}yaml", {})
    label_c = run_container(
        client,
        image,
        f"{prefix}labelled",
        {
            "medic.enable": "true",
            "medic.name": "labelled-web",
            "medic.recovery.service_crash": "restart-container",
        },
    )
    stamps = Stamps(client)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(config(yaml_c.name))
        orch = ControlPlaneOrchestrator.from_config(path, state_dir=Path(tmp) / "state")
        orch.bus.add_listener(stamps.on_bus)
        await orch.start()
        try:
            await asyncio.sleep(2)
            found = await discovery_rounds(client, image, stamps, rounds, prefix)
            mttr = await mttr_rounds(
                client, {"yaml-web": yaml_c, "labelled-web": label_c}, stamps, rounds
            )
        finally:
            await orch.stop()
            stamps.close()
            for c in (yaml_c, label_c):
                c.remove(force=True)
    load = os.getloadavg()
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {load[0]:.2f}")
    print(f"start event -> first check result: {summary(found)}")
    for service, values in mttr.items():
        print(f"MTTR (docker kill -> recovery.succeeded), {service}: {summary(values)}")
    ratio = statistics.median(mttr["labelled-web"]) / statistics.median(mttr["yaml-web"])
    print(f"labelled / yaml median MTTR: {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    asyncio.run(main(parser.parse_args().rounds))
    sys.exit(0)
