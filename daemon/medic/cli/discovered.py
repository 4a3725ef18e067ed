"""``medic validate`` with ``docker.discover`` (or ``autoheal_labels``) on: the
containers' labels are part of the config, so the engine is asked what they
say now, and every bad label is printed as ``docker:CONTAINER: LABEL: message``.

The Docker side is imported only when discovery is on."""

from __future__ import annotations

import asyncio
import os
import sys

from medic.config.models import LoadedConfig


def validate_labels(loaded: LoadedConfig) -> tuple[int, int] | None:
    """(services, errors) the engine's containers describe now, each error
    printed to stderr; None when discovery is off."""
    from medic.host.docker import DockerGateway, DockerUnavailable
    from medic.watch.discovery.docker_labels import DiscoverySettings, discover_once

    settings = DiscoverySettings.from_config(loaded.model, loaded.playbooks, os.environ)
    if not settings.enabled:
        return None
    gateway = DockerGateway(workers=1)

    async def ask() -> tuple[int, int]:
        found = await discover_once(gateway, settings)
        for error in found.errors:
            print(f"docker:{error.container}: {error.label}: {error.message}", file=sys.stderr)
        yaml = set(loaded.services)
        return len([n for n in found.services if n not in yaml]), len(found.errors)

    try:
        return asyncio.run(ask())
    except DockerUnavailable as exc:
        print(f"warning: docker.discover: cannot ask the engine: {exc}", file=sys.stderr)
        return None
    finally:
        gateway.close()
