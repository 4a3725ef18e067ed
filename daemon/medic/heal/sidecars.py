"""Sidecars follow their parent: a container that joined another's network
namespace (``HostConfig.NetworkMode`` ``container:<id>``, Compose's
``network_mode: service:vpn``) is restarted after its parent starts again,
whoever restarted it (medic, Docker's restart policy, an operator); when the
parent was recreated, the namespace the sidecar joined is gone with the old
id, so the sidecar is recreated pointing at the new one.

Each parent ``start`` event is handled in turn (one at a time, in the order
Docker sent them). A parent is known again after a recreate by its Compose
service (project and service labels), else by its name. Only a sidecar that
was started before its parent's new start (it still sits in the old
namespace) or that exited is acted on: one Compose is starting right now is
left alone.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

from medic.core.bus import EventBus
from medic.core.errors import MedicError
from medic.core.logging import get_logger
from medic.heal.actions.recreate_container import recreate
from medic.host.docker import ContainerInfo, DockerEvent, DockerGateway

log = get_logger("Sidecars")

STOP_TIMEOUT_S = 10
_TEMPORARY = re.compile(r"-medic-(new|old)-[0-9a-f]{6}$")
_PROJECT, _SERVICE = "com.docker.compose.project", "com.docker.compose.service"


def identity(name: str, labels: dict[str, str]) -> str:
    """Who a container is across recreates: its Compose service, else its name."""
    if labels.get(_PROJECT) and labels.get(_SERVICE):
        return f"compose:{labels[_PROJECT]}/{labels[_SERVICE]}"
    return "name:" + _TEMPORARY.sub("", name)


class SidecarFollower:
    """A Docker event listener (``on_event``) that brings sidecars after their parent."""

    def __init__(self, docker: DockerGateway, bus: EventBus) -> None:
        self._docker = docker
        self._bus = bus
        self._known: dict[str, str] = {}
        """Container id -> identity, for every container seen (gone ones too)."""
        self._turn = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_event(self, event: DockerEvent) -> None:
        # Learnt from any event (its labels and name come with it): a parent
        # recreated before any listing is still known by its old id.
        if event.container_id:
            self._known.setdefault(event.container_id, identity(event.container, event.attributes))
        if event.action == "start":
            task = asyncio.ensure_future(self._follow(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, parent: DockerEvent) -> None:
        async with self._turn:
            try:
                rows = await self._docker.containers()
            except MedicError as exc:
                log.warning(
                    "sidecars.list_failed", message="Cannot list containers", error=str(exc)
                )
                return
            for row in rows:
                self._known.setdefault(row.id, identity(row.name, row.labels))
            for sidecar in sorted(rows, key=lambda r: r.name):
                how = self._relation(sidecar, parent, rows)
                if how is not None:
                    await self._bring(sidecar, parent, how)

    def _relation(
        self, sidecar: ContainerInfo, parent: DockerEvent, rows: list[ContainerInfo]
    ) -> str | None:
        """``restart`` (it joined this parent), ``recreate`` (it joined this
        parent's gone predecessor), or None."""
        mode = sidecar.network_mode
        if not mode.startswith("container:") or sidecar.id == parent.container_id:
            return None
        ref = mode.partition(":")[2]
        if ref in (parent.container_id, parent.container) or (
            len(ref) >= 12 and parent.container_id.startswith(ref)
        ):
            return "restart"
        # The parent's predecessor, stopped (medic removes it only once the new
        # one runs) or gone: the namespace the sidecar joined is no more.
        holder = next((r for r in rows if r.id.startswith(ref) or r.name == ref), None)
        if holder is not None and holder.status == "running":
            return None  # another parent, alive
        was = next((i for k, i in self._known.items() if k.startswith(ref)), None)
        return "recreate" if was == self._known.get(parent.container_id) else None

    async def _bring(self, sidecar: ContainerInfo, parent: DockerEvent, how: str) -> None:
        fields: dict[str, Any] = {
            "container": sidecar.name,
            "parent": parent.container,
            "action": how,
        }
        try:
            if how == "recreate":
                _, new_id = await recreate(
                    self._docker, sidecar.id, f"container:{parent.container_id}", STOP_TIMEOUT_S
                )
                fields["new_id"] = new_id
            elif not await self._restart_needed(sidecar, parent):
                return
        except Exception as exc:  # noqa: BLE001 - the engine's refusals are not MedicErrors
            fields["error"] = str(getattr(exc, "explanation", None) or exc)
            log.error("sidecar.follow_failed", message="A sidecar did not follow", **fields)
            self._bus.publish("sidecar.follow_failed", **fields)
            return
        log.warning("sidecar.followed", message="A sidecar followed its parent", **fields)
        self._bus.publish("sidecar.followed", **fields)

    async def _restart_needed(self, sidecar: ContainerInfo, parent: DockerEvent) -> bool:
        """Restart (or start) it if it still sits in the parent's old namespace."""
        state = (await self._docker.inspect_raw(sidecar.id)).get("State") or {}
        status = str(state.get("Status"))
        if status == "exited":
            await self._docker.start(sidecar.id)
            return True
        started = _nanos(str(state.get("StartedAt") or ""))
        if status != "running" or started is None or started >= parent.time_ns:
            return False
        await self._docker.restart(sidecar.id, STOP_TIMEOUT_S)
        return True


def _nanos(stamp: str) -> int | None:
    """Docker's RFC 3339 time with nanoseconds, as nanoseconds since the epoch."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", stamp)
    if not match:
        return None
    whole = datetime.fromisoformat(match.group(1) + "+00:00")
    fraction = (match.group(2) or "0").ljust(9, "0")[:9]
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction)
