"""medic: a self-healing monitoring daemon for Linux hosts.

The seed's Python API: ``from medic import ControlPlaneOrchestrator,
SelfHealingMonitor``. Both are imported on first use: every ``import
medic.<module>`` runs this file first, and ``medic.core.errors`` or ``medic.config.models``
should not drag in the whole daemon (and its import cycles) with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medic.orchestrator import ControlPlaneOrchestrator
    from medic.watch.monitor import SelfHealingMonitor

__all__ = ["ControlPlaneOrchestrator", "SelfHealingMonitor"]

_LAZY = {
    "ControlPlaneOrchestrator": "medic.orchestrator",
    "SelfHealingMonitor": "medic.watch.monitor",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
