"""The services as the API lists them: the watched ones (the orchestrator's
answer), then those ``enabled: false`` in the config, shown ``disabled``
rather than hidden, with the same fields (never checked, nothing to tell)."""

from __future__ import annotations

from typing import Any

from medic.config.models import ServiceSpec
from medic.core.vocabulary import ServiceStatus
from medic.heal.state import HealState
from medic.orchestrator import ControlPlaneOrchestrator
from medic.watch.state import ServiceState


def disabled(orch: ControlPlaneOrchestrator) -> dict[str, ServiceSpec]:
    model = orch.config.model
    watched = orch.monitor.states()
    return {
        name: ServiceSpec.resolve(name, svc, model.monitoring)
        for name, svc in model.services.items()
        if not svc.enabled and name not in watched
    }


def service_names(orch: ControlPlaneOrchestrator) -> list[str]:
    return [*orch.monitor.states(), *disabled(orch)]


def service_status(orch: ControlPlaneOrchestrator, name: str) -> dict[str, Any]:
    spec = disabled(orch).get(name)
    if spec is None:
        return orch.service_status(name)
    state = ServiceState(spec, status=ServiceStatus.DISABLED)
    return {
        **state.as_dict(),
        **HealState().as_dict(),
        "uptime_percentage": None,
        "recovery_running": False,
        "recent_holds": [],
        **orch.maintenance.fields(name),
    }


def system_status(orch: ControlPlaneOrchestrator) -> dict[str, Any]:
    document = orch.system_status()
    for name in disabled(orch):
        document["health_status"][name] = {
            "status": ServiceStatus.DISABLED.value,
            "uptime_percentage": None,
            "failure_type": None,
        }
    return document
