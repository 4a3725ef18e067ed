"""A container's own configuration, read back from ``inspect``, as the engine's
``create`` wants it: what ``recreate_container`` makes the new container from.

``Config`` (image, command, entrypoint, env, labels, exposed ports,
healthcheck, user, working dir, stop signal and timeout...) and ``HostConfig``
(binds, mounts, port bindings, restart policy, network mode, resources...) go
back as they are, but for what Docker filled in itself: the hostname it made
from the old id, the old id among the network aliases. Named and anonymous
volumes are mounted again by name, so their data stays. The networks are
joined with their aliases: the first in ``create``, the others after it (API
1.41 takes one network at ``create``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

_ENDPOINT_KEYS = ("Aliases", "IPAMConfig", "Links", "DriverOpts", "MacAddress")


@dataclass(frozen=True)
class NetworkJoin:
    """One network the container is on, with what it is known by there."""

    network: str
    aliases: list[str] = field(default_factory=list)
    endpoint: dict[str, Any] = field(default_factory=dict)
    """The ``EndpointsConfig`` entry: aliases, IPAM config (a fixed address), links."""


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    body: dict[str, Any]
    """``POST /containers/create``'s body: Config with HostConfig and NetworkingConfig."""
    later_networks: tuple[NetworkJoin, ...]
    """Networks joined after ``create``."""


def spec_of(inspected: dict[str, Any], network_mode: str | None = None) -> ContainerSpec:
    """The create request that makes ``inspected`` again (``network_mode``
    replaces its ``HostConfig.NetworkMode``: a new parent's ``container:<id>``)."""
    old_id = str(inspected.get("Id", ""))
    body = copy.deepcopy(inspected.get("Config") or {})
    host = copy.deepcopy(inspected.get("HostConfig") or {})
    if network_mode is not None:
        host["NetworkMode"] = network_mode
    mode = str(host.get("NetworkMode") or "default")
    shares_namespace = mode.startswith("container:") or mode == "host"
    if shares_namespace or body.get("Hostname") == old_id[:12]:
        body.pop("Hostname", None)
        body.pop("Domainname", None)
    if mode.startswith("container:"):
        body.pop("ExposedPorts", None)
        host.pop("PortBindings", None)
    host["Binds"] = [*(host.get("Binds") or []), *_volumes_again(inspected, host)]
    joins = [] if _no_own_network(mode) else _networks(inspected, old_id)
    first = next((j for j in joins if j.network == mode), joins[0] if joins else None)
    body["HostConfig"] = host
    if first is not None:
        body["NetworkingConfig"] = {"EndpointsConfig": {first.network: first.endpoint}}
    later = tuple(j for j in joins if j is not first)
    return ContainerSpec(str(inspected.get("Name", "")).lstrip("/"), body, later)


def _no_own_network(mode: str) -> bool:
    return mode in ("host", "none") or mode.startswith("container:")


def _volumes_again(inspected: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """Binds for the volumes Docker made itself (anonymous, or from the image's
    ``VOLUME``), so the new container mounts the same data."""
    given = {_bind_target(b) for b in host.get("Binds") or []}
    given |= {str(m.get("Target")) for m in host.get("Mounts") or []}
    binds = []
    for mount in inspected.get("Mounts") or []:
        target = str(mount.get("Destination"))
        if mount.get("Type") != "volume" or target in given or not mount.get("Name"):
            continue
        mode = "" if mount.get("RW", True) else ":ro"
        binds.append(f"{mount['Name']}:{target}{mode}")
    return binds


def _bind_target(bind: str) -> str:
    parts = str(bind).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _networks(inspected: dict[str, Any], old_id: str) -> list[NetworkJoin]:
    settings = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
    joins = []
    for network, endpoint in settings.items():
        endpoint = endpoint or {}
        aliases = [a for a in endpoint.get("Aliases") or [] if not old_id.startswith(a)]
        config = {key: endpoint[key] for key in _ENDPOINT_KEYS if endpoint.get(key)}
        config.pop("MacAddress", None)  # the engine gives the new container its own
        if aliases:
            config["Aliases"] = aliases
        else:
            config.pop("Aliases", None)
        joins.append(NetworkJoin(str(network), aliases, config))
    return joins
