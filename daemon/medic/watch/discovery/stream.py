"""One Docker event stream for both of its readers: the services that name a
container (``medic.watch.containers``) hear each event first, then discovery
(``docker_labels``), which may add a service for it; each time the stream
(re)connects, both look again. The stream is read only when one of them
needs it."""

from __future__ import annotations

from collections.abc import Callable

from medic.host.docker import DockerEvent, DockerGateway
from medic.host.docker_events import DockerEventListener
from medic.watch.containers import ContainerEvents
from medic.watch.discovery.docker_labels import DockerLabelDiscovery

DISCOVERY_ONLY = frozenset({"create", "destroy", "rename"})
"""Events only discovery reads: the services' own events stay as they were."""


class DockerStream:
    def __init__(
        self,
        gateway: DockerGateway,
        containers: ContainerEvents,
        discovery: DockerLabelDiscovery,
        also: Callable[[DockerEvent], None] | None = None,
    ) -> None:
        """``also`` hears every event last (the heal side's sidecar follower)."""
        self.containers = containers
        self.discovery = discovery
        self._also = also
        self.listener = DockerEventListener(gateway, self._on_event, self._on_connected)

    def start(self) -> None:
        """Listen (again) if a service names a container or discovery is on."""
        enabled = self.discovery.settings.enabled
        if enabled:
            self.discovery.start()
        if enabled or self.containers.wanted():
            self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()
        await self.discovery.stop()

    def _on_event(self, event: DockerEvent) -> None:
        if event.action not in DISCOVERY_ONLY:
            self.containers.on_event(event)
        self.discovery.on_event(event)
        if self._also is not None:
            self._also(event)

    def _on_connected(self) -> None:
        self.containers.on_connected()
        self.discovery.rescan()
