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


def implied_dependencies(
    info: ContainerInfo,
    compose_services: list[str],
    containers: Iterable[ContainerInfo],
    names: Mapping[str, str],
) -> list[str]:
    """The service names ``info`` depends on by Compose and by its network mode.

    ``compose_services`` are Compose service names of ``info``'s own project;
    each becomes the name that service's container goes by (number 1).
    """
    compose = _compose(info)
    by_service = {}
    parent = None
    mode = info.network_mode
    for other in containers:
        other_compose = _compose(other)
        if compose and other_compose and other_compose[0] == compose[0]:
            number = other.labels.get(COMPOSE_NUMBER, "1").strip() or "1"
            if number == "1":
                by_service[other_compose[1]] = names[other.id]
        if mode.startswith("container:"):
            target = mode.removeprefix("container:")
            if other.id.startswith(target) or other.name == target:
                parent = names[other.id]
    found = [by_service.get(service, service) for service in compose_services]
    if parent is not None:
        found.append(parent)
    return found


def shared_names(names: Mapping[str, str]) -> set[str]:
    """Service names more than one container goes by."""
    counts = Counter(names.values())
    return {name for name, n in counts.items() if n > 1}
