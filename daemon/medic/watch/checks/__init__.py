"""Check plugins, one module per YAML ``type``, registered by that name.

A plugin may also register a refiner (``Check.refiner``): its second look at
services whose own check failed; ``REFINERS`` lists them in registry order.

Adding a check is its options model in ``medic.config.checks`` (listed in
``CHECK_OPTIONS``), its module here, and one entry in ``_PLUGINS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from medic.watch.checks.base import Check, Refiner
from medic.watch.checks.command import CommandCheck
from medic.watch.checks.container import ContainerCheck
from medic.watch.checks.http import HttpCheck
from medic.watch.checks.postgres import PostgresCheck
from medic.watch.checks.process import ProcessCheck
from medic.watch.checks.system import SystemCheck
from medic.watch.checks.tcp import TcpCheck
from medic.watch.checks.unit import UnitCheck

_PLUGINS: tuple[type[Check[Any]], ...] = (
    CommandCheck,
    ContainerCheck,
    HttpCheck,
    PostgresCheck,
    ProcessCheck,
    SystemCheck,
    TcpCheck,
    UnitCheck,
)

CHECK_TYPES: Mapping[str, type[Check[Any]]] = MappingProxyType(
    {plugin.yaml_name: plugin for plugin in _PLUGINS}
)
"""Check classes by their YAML ``type``."""

REFINERS: tuple[Refiner, ...] = tuple(
    plugin.refiner for plugin in _PLUGINS if plugin.refiner is not None
)
"""The plugins' refiners, in registry order (the runner applies them in turn)."""


__all__ = ["CHECK_TYPES", "REFINERS", "Check", "Refiner"]
