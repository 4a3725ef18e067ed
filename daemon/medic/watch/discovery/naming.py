"""Who a discovered container is among the others: its service name, and the
services it depends on by Compose's labels and its network namespace.

The name is ``medic.name``, else the Compose service (``web``; ``shop-web``
when two projects both have a ``web``; ``web-2`` for a second replica), else
the container name. Dependencies come from ``medic.depends_on`` (the labels'
schema), Compose's ``com.docker.compose.depends_on`` (Compose v2 writes
``service:condition:restart,...``; exactly that format is read) and a
``HostConfig.NetworkMode`` of ``container:<id>``: a container that joined
another's network namespace depends on that container's service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from medic.config.labels import NAME
from medic.host.docker import ContainerInfo

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
COMPOSE_DEPENDS_ON = "com.docker.compose.depends_on"
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


def _compose(info: ContainerInfo) -> tuple[str, str] | None:
    project = info.labels.get(COMPOSE_PROJECT)
    service = info.labels.get(COMPOSE_SERVICE)
    return (project, service) if project and service else None


def service_names(containers: Iterable[ContainerInfo]) -> dict[str, str]:
    """Each container's service name, by container id."""
    containers = list(containers)
    projects_of: dict[str, set[str]] = {}
    for info in containers:
        compose = _compose(info)
        if compose is not None:
            projects_of.setdefault(compose[1], set()).add(compose[0])
    names = {}
    for info in containers:
        names[info.id] = _name(info, projects_of)
    return names


def _name(info: ContainerInfo, projects_of: Mapping[str, set[str]]) -> str:
    given = info.labels.get(NAME, "").strip()
    if given:
        return given
    compose = _compose(info)
    if compose is None:
        return info.name
    project, service = compose
    name = f"{project}-{service}" if len(projects_of.get(service, ())) > 1 else service
    number = info.labels.get(COMPOSE_NUMBER, "1").strip()
    return name if number in ("", "1") else f"{name}-{number}"


def compose_depends_on(value: str) -> list[str]:
    """The services of a ``com.docker.compose.depends_on`` label; ValueError when
    an entry is not ``service:condition:restart``."""
    services = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        if (
            len(parts) != 3
            or not parts[0]
            or parts[1] not in _CONDITIONS
            or parts[2] not in ("true", "false")
        ):
            raise ValueError(
                f"{entry!r} is not service:condition:restart (condition one of"
                f" {', '.join(_CONDITIONS)}; restart true or false)"
            )
        services.append(parts[0])
    return services


class Neighbours:
    """The discovered containers, indexed once for ``dependencies`` (each
    container's dependencies would otherwise cost a pass over all of them)."""

    def __init__(self, containers: Iterable[ContainerInfo], names: Mapping[str, str]) -> None:
        self._compose: dict[tuple[str, str], str] = {}
        self._by_ref: dict[str, str] = {}
        self._ids: list[str] = []
        for info in containers:
            compose = _compose(info)
            number = info.labels.get(COMPOSE_NUMBER, "1").strip() or "1"
            if compose is not None and number == "1":
                self._compose[compose] = names[info.id]
            self._by_ref[info.id] = self._by_ref[info.name] = names[info.id]
            self._ids.append(info.id)

    def dependencies(self, info: ContainerInfo, compose_services: list[str]) -> list[str]:
        """The service names ``info`` depends on by Compose and by its network mode.

        ``compose_services`` are Compose service names of ``info``'s own
        project; each becomes the name that service's container goes by.
        """
        compose = _compose(info)
        project = compose[0] if compose else None
        found = [
            self._compose.get((project, service), service) if project else service
            for service in compose_services
        ]
        if info.network_mode.startswith("container:"):
            parent = self._parent(info.network_mode.removeprefix("container:"))
            if parent is not None:
                found.append(parent)
        return found

    def _parent(self, ref: str) -> str | None:
        if ref in self._by_ref:
            return self._by_ref[ref]
        # Docker may write a short id.
        full = next((cid for cid in self._ids if cid.startswith(ref)), None)
        return None if full is None else self._by_ref[full]


def shared_names(names: Mapping[str, str]) -> set[str]:
    """Service names more than one container goes by."""
    counts = Counter(names.values())
    return {name for name, n in counts.items() if n > 1}
