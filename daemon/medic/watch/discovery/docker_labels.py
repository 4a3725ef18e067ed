"""``docker.discover: labeled | all`` (and ``docker.autoheal_labels``): the
engine's containers, read as services from their labels.

The containers found by a scan (at start, and each time the event stream
connects again after the engine was away) are the ones that run; Docker's
events keep the list current: ``create`` reads a new container's labels (a
bad label is reported at once), ``start`` makes it a service, ``rename``
reads it again, ``destroy`` forgets it. A container that stopped or crashed
stays a service: healing it is the point. Events are handled one at a time,
in order, on one task; a burst (``docker compose up``) is published once.

What the containers say becomes ``Discovered`` (services and errors), handed
to the sink (``medic.watch.discovery.services``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medic.config.labels import ENABLE, LabelProblem, is_false, is_true, service_from_labels
from medic.config.models import Config, MonitoringConfig, Playbook, ServiceConfig, ServiceSpec
from medic.config.refs import find_cycle
from medic.core.logging import get_logger
from medic.host.docker import (
    ContainerInfo,
    ContainerNotFound,
    DockerEvent,
    DockerGateway,
    DockerUnavailable,
)
from medic.watch.discovery.naming import (
    COMPOSE_DEPENDS_ON,
    Neighbours,
    compose_depends_on,
    service_names,
)

log = get_logger("Discovery")

yaml_name = "docker_labels"

AUTOHEAL_ENV = "AUTOHEAL_CONTAINER_LABEL"
"""autoheal's own setting: the label it looks for (``autoheal``), or ``all``."""

_EVENTS = frozenset({"create", "start", "destroy", "rename"})
_NOT_STARTED = frozenset({"created"})
_GONE = frozenset({"exited", "dead", "removing"})
_SCAN = "scan"


@dataclass(frozen=True)
class DiscoveryError:
    """A container that is not watched, and the label that is why."""

    container: str
    label: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"container": self.container, "label": self.label, "message": self.message}


@dataclass(frozen=True)
class Discovered:
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    errors: tuple[DiscoveryError, ...] = ()


@dataclass(frozen=True)
class DiscoverySettings:
    mode: Literal["off", "labeled", "all"]
    autoheal_label: str | None
    """The label whose ``true`` means autoheal's behaviour; None without autoheal_labels."""
    autoheal_all: bool
    monitoring: MonitoringConfig
    playbooks: Mapping[str, Playbook]

    @property
    def enabled(self) -> bool:
        return self.mode != "off" or self.autoheal_label is not None

    @classmethod
    def from_config(
        cls, model: Config, playbooks: Mapping[str, Playbook], env: Mapping[str, str]
    ) -> DiscoverySettings:
        docker = model.docker
        label = env.get(AUTOHEAL_ENV, "").strip() or "autoheal"
        autoheal_all = docker.autoheal_labels and label == "all"
        return cls(
            mode="all" if autoheal_all else docker.discover,
            autoheal_label=("autoheal" if autoheal_all else label)
            if docker.autoheal_labels
            else None,
            autoheal_all=autoheal_all,
            monitoring=model.monitoring,
            playbooks=dict(playbooks),
        )

    def choice(self, info: ContainerInfo) -> tuple[bool, bool]:
        """Whether ``info`` is a service, and whether autoheal's meaning applies."""
        labels = info.labels
        if is_false(labels.get(ENABLE)):
            return False, False
        autoheal = self.autoheal_label is not None and (
            self.autoheal_all or is_true(labels.get(self.autoheal_label))
        )
        if self.mode == "all" or (self.mode == "labeled" and is_true(labels.get(ENABLE))):
            return True, autoheal
        return autoheal, autoheal


LabelCache = dict[tuple[str, tuple[tuple[str, str], ...], bool], ServiceConfig | list[LabelProblem]]
"""What a container's labels say, by its name, labels and autoheal choice:
reading them through the models is the dearest part of a pass."""


def read_containers(
    containers: Iterable[ContainerInfo],
    settings: DiscoverySettings,
    cache: LabelCache | None = None,
) -> Discovered:
    """The services and the errors of ``containers`` (those not yet started only
    say their errors); ``cache`` keeps what labels said for the next pass."""
    chosen = [
        (info, autoheal) for info in containers for ok, autoheal in [settings.choice(info)] if ok
    ]
    infos = [info for info, _ in chosen]
    names = service_names(infos)
    neighbours = Neighbours(infos, names)
    cache = {} if cache is None else cache
    services: dict[str, ServiceSpec] = {}
    errors: list[DiscoveryError] = []
    # Running ones first: a container Compose is replacing (stopped, renamed)
    # yields its name to the new one.
    for info, autoheal in sorted(chosen, key=lambda pair: (_stopped(pair[0]), pair[0].name)):
        spec = _read_one(info, autoheal, neighbours, names[info.id], settings, cache)
        if isinstance(spec, list):
            errors += [DiscoveryError(info.name, p.label, p.message) for p in spec]
        elif spec.name in services and _stopped(info):
            continue
        elif spec.name in services:
            taken = services[spec.name].container
            message = f"the service name {spec.name!r} is taken by container {taken}"
            errors.append(DiscoveryError(info.name, "medic.name", message))
        elif info.status not in _NOT_STARTED:
            services[spec.name] = spec
    for name in _in_a_cycle(services):
        spec = services.pop(name)
        message = "dependency cycle: " + " -> ".join(find_cycle(_graph(services, spec)))
        errors.append(DiscoveryError(spec.container or name, "medic.depends_on", message))
    return Discovered(services, tuple(errors))


def _graph(services: Mapping[str, ServiceSpec], *more: ServiceSpec) -> dict[str, list[str]]:
    specs = [*services.values(), *more]
    return {s.name: list(s.depends_on) for s in specs}


def _in_a_cycle(services: dict[str, ServiceSpec]) -> list[str]:
    """Services to leave out, one per dependency cycle, until none is left: a
    cycle would hold each of its services until the others recover."""
    out: list[str] = []
    left = dict(services)
    while cycle := find_cycle(_graph(left)):
        out.append(cycle[0])
        left.pop(cycle[0])
    return out


def _stopped(info: ContainerInfo) -> bool:
    return info.status in _GONE | _NOT_STARTED


def _read_one(
    info: ContainerInfo,
    autoheal: bool,
    neighbours: Neighbours,
    name: str,
    settings: DiscoverySettings,
    cache: LabelCache,
) -> ServiceSpec | list[LabelProblem]:
    key = (info.name, tuple(sorted(info.labels.items())), autoheal)
    read = cache.get(key)
    if read is None:
        read = cache[key] = service_from_labels(
            info.labels, container=info.name, playbooks=settings.playbooks, autoheal=autoheal
        )
    if isinstance(read, list):
        return read
    try:
        compose = compose_depends_on(info.labels.get(COMPOSE_DEPENDS_ON, ""))
    except ValueError as exc:
        return [LabelProblem(COMPOSE_DEPENDS_ON, str(exc))]
    if name in read.depends_on:
        return [LabelProblem("medic.depends_on", "a service cannot depend on itself")]
    implied = neighbours.dependencies(info, compose)
    depends_on = list(dict.fromkeys([*read.depends_on, *(d for d in implied if d != name)]))
    svc = read.model_copy(update={"depends_on": depends_on})
    return ServiceSpec.resolve(name, svc, settings.monitoring, source="docker")


Sink = Callable[[Discovered], Awaitable[None]]


class DockerLabelDiscovery:
    """Keeps the engine's containers, and tells the sink what they describe."""

    def __init__(self, gateway: DockerGateway, settings: DiscoverySettings, sink: Sink) -> None:
        self._gateway = gateway
        self.settings = settings
        self._sink = sink
        self._containers: dict[str, ContainerInfo] = {}
        self._queue: asyncio.Queue[DockerEvent | str] = asyncio.Queue()
        self._cache: LabelCache = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Read the list now, then follow the events handed to ``on_event``."""
        if self._task is None:
            self._queue.put_nowait(_SCAN)
            self._task = asyncio.create_task(self._run(), name="docker-discovery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def reconfigure(self, settings: DiscoverySettings) -> None:
        """New settings (a reload): every container is read again."""
        self.settings = settings
        self._cache = {}  # playbooks and defaults may have changed
        self.rescan()

    def rescan(self) -> None:
        """Read the list again (the engine is back: what happened meanwhile is unknown)."""
        if self._task is not None:
            self._queue.put_nowait(_SCAN)

    def on_event(self, event: DockerEvent) -> None:
        if self._task is not None and event.action in _EVENTS and event.container_id:
            self._queue.put_nowait(event)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            changed = await self._handle_safely(item)
            while not self._queue.empty():  # a burst is published once
                changed = await self._handle_safely(self._queue.get_nowait()) or changed
            if changed:
                await self._publish()

    async def _handle_safely(self, item: DockerEvent | str) -> bool:
        try:
            if isinstance(item, str):
                return await self._scan()
            return await self._handle(item)
        except DockerUnavailable as exc:
            log.warning(
                "discovery.engine_unreachable",
                message="Docker engine unreachable; containers are read again when it is back",
                error=str(exc),
            )
            return False

    async def _publish(self) -> None:
        try:
            if len(self._cache) > 2 * len(self._containers) + 64:
                self._cache = {}  # containers come and go: start the memo afresh
            found = read_containers(self._containers.values(), self.settings, self._cache)
            await self._sink(found)
        except Exception as exc:  # noqa: BLE001 - discovery must outlive a failed apply
            log.error(
                "discovery.apply_failed",
                message="Applying the discovered services failed",
                error=f"{type(exc).__name__}: {exc}",
            )

    async def _scan(self) -> bool:
        if not self.settings.enabled:
            self._containers.clear()
            return True
        listed = await self._gateway.containers()
        known = self._containers
        # Running ones; a stopped one only if it was a service already (it
        # crashed while the engine was away: still to be healed).
        self._containers = {
            info.id: info for info in listed if info.status not in _GONE or info.id in known
        }
        log.info("discovery.scanned", message="Read the engine's containers", count=len(listed))
        return True

    async def _handle(self, event: DockerEvent) -> bool:
        cid = event.container_id
        if event.action == "destroy":
            return self._containers.pop(cid, None) is not None
        # The event carries the container's labels: one that is no service
        # costs no inspect (on a busy engine, those would queue before ours).
        preview = ContainerInfo(cid, event.container, event.attributes, "", "")
        if cid not in self._containers and not self.settings.choice(preview)[0]:
            return False
        try:
            info = await self._gateway.describe(cid)
        except ContainerNotFound:
            return self._containers.pop(cid, None) is not None
        untracked = event.action == "rename" and cid not in self._containers
        if untracked and info.status in _GONE | _NOT_STARTED:
            return False
        self._containers[cid] = info
        return True


async def discover_once(gateway: DockerGateway, settings: DiscoverySettings) -> Discovered:
    """What the engine's containers describe now (``medic validate``)."""
    listed = await gateway.containers()
    return read_containers([i for i in listed if i.status not in _GONE], settings)


def describe_settings(settings: DiscoverySettings) -> dict[str, Any]:
    return {"mode": settings.mode, "autoheal_label": settings.autoheal_label}
