"""Joining the fleet: the coordinator built and the engine told to ask it.

Importing this module imports no etcd client: ``join_fleet`` loads the
coordinator (and ``aetcd``) only when ``fleet:`` is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from medic.config.fleet import FleetConfig
from medic.heal.engine import RecoveryEngine
from medic.heal.fleet_gate import FleetAdmission
from medic.heal.playbooks import choose_playbook
from medic.heal.state import ServiceSource

if TYPE_CHECKING:
    from medic.fleet.coordinator import Fleet


def join_fleet(
    cfg: FleetConfig | None,
    engine: RecoveryEngine,
    services: ServiceSource,
    registry: CollectorRegistry,
) -> Fleet | None:
    if cfg is None:
        return None
    from medic.fleet.coordinator import Fleet  # aetcd only with fleet:

    fleet = Fleet(cfg, services, lambda name: engine.heal_state(name).held_reason, registry)
    engine.fleet = FleetAdmission(
        fleet.gate,
        lambda state: choose_playbook(state.spec, state.failure_type, engine.playbooks),
        services.probe_now,
    )
    return fleet
