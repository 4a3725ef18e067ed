"""Action plugins, one module per YAML ``action``, registered by that name.

Adding an action is its options model in ``medic.config.actions`` (listed in
``ACTION_OPTIONS``), its module here, and one entry in ``_PLUGINS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from medic.heal.actions.base import Action
from medic.heal.actions.http_request import HttpRequest
from medic.heal.actions.notify import Notify
from medic.heal.actions.reconnect import Reconnect
from medic.heal.actions.recreate_container import RecreateContainer
from medic.heal.actions.restart_container import RestartContainer
from medic.heal.actions.restart_process import RestartProcess
from medic.heal.actions.restart_unit import RestartUnit
from medic.heal.actions.run_command import RunCommand
from medic.heal.actions.signal_process import SignalProcess
from medic.heal.actions.sleep import Sleep
from medic.heal.actions.start_container import StartContainer
from medic.heal.actions.start_service import StartService
from medic.heal.actions.wait_healthy import WaitHealthy

_PLUGINS: tuple[type[Action[Any]], ...] = (
    HttpRequest,
    Notify,
    Reconnect,
    RecreateContainer,
    RestartContainer,
    RestartProcess,
    RestartUnit,
    RunCommand,
    SignalProcess,
    Sleep,
    StartContainer,
    StartService,
    WaitHealthy,
)

ACTION_TYPES: Mapping[str, type[Action[Any]]] = MappingProxyType(
    {plugin.yaml_name: plugin for plugin in _PLUGINS}
)
"""Action classes by their YAML ``action`` name."""


__all__ = ["ACTION_TYPES", "Action"]
