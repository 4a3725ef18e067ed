"""The watched set: the config file's services and the discovered ones, applied
to the monitor through the same path as a reload's added, removed and
changed services, so containers come and go without a restart.

A service in the YAML wins over a discovered one of the same name. A
discovery error is logged and published (``discovery.error``) when it first
appears, and listed (``errors``) for ``GET /api/v1/services`` as long as the
container says it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Protocol

from medic.config.models import ServiceSpec
from medic.core.bus import EventBus
from medic.core.logging import get_logger
from medic.watch.discovery.docker_labels import Discovered, DiscoveryError

log = get_logger("Discovery")


class ServiceSet(Protocol):
    """What this asks of the monitor."""

    def apply_services(
        self, services: Mapping[str, ServiceSpec]
    ) -> Awaitable[dict[str, list[str]]]: ...


class WatchedServices:
    def __init__(self, monitor: ServiceSet, bus: EventBus, yaml: Mapping[str, ServiceSpec]) -> None:
        self._monitor = monitor
        self._bus = bus
        self._yaml = dict(yaml)
        self._found = Discovered()
        self._lock = asyncio.Lock()
        self._shadowed: set[str] = set()

    @property
    def errors(self) -> tuple[DiscoveryError, ...]:
        return self._found.errors

    def merged(self) -> dict[str, ServiceSpec]:
        """The services to watch: the YAML's, then the discovered ones it does not name."""
        found = {n: s for n, s in self._found.services.items() if n not in self._yaml}
        return {**self._yaml, **found}

    async def apply_yaml(self, yaml: Mapping[str, ServiceSpec]) -> dict[str, list[str]]:
        """A reload's services (discovered ones stay)."""
        self._yaml = dict(yaml)
        return await self._apply()

    async def apply_discovered(self, found: Discovered) -> None:
        """What discovery found now (the sink of ``DockerLabelDiscovery``)."""
        new_errors = [e for e in found.errors if e not in self._found.errors]
        self._found = found
        for error in new_errors:
            log.error(
                "discovery.error",
                message=f"Container {error.container} is not watched: {error.label}: "
                f"{error.message}",
                container=error.container,
                label=error.label,
                error=error.message,
            )
            self._bus.publish("discovery.error", **error.as_json())
        self._note_shadowed()
        changes = await self._apply()
        if changes["added"] or changes["removed"] or changes["changed"]:
            log.info(
                "discovery.changed",
                message="Services added, removed or changed by discovery",
                **changes,
            )
            self._bus.publish("discovery.changed", **changes)

    async def _apply(self) -> dict[str, list[str]]:
        async with self._lock:
            return await self._monitor.apply_services(self.merged())

    def _note_shadowed(self) -> None:
        shadowed = {n for n in self._found.services if n in self._yaml}
        for name in sorted(shadowed - self._shadowed):
            log.info(
                "discovery.yaml_wins",
                message=f"A container is labelled as {name}; the config file's {name} wins",
                service=name,
                container=self._found.services[name].container,
            )
        self._shadowed = shadowed
