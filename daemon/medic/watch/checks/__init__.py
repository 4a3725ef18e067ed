"""Check plugins, one module per YAML ``type``, registered by that name.

Adding a check is its options model in ``medic.config.checks`` (listed in
``CHECK_OPTIONS``), its module here, and one entry in ``_PLUGINS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from medic.watch.checks.base import Check
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


__all__ = ["CHECK_TYPES", "Check"]
