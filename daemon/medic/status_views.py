"""How the daemon's state reads in the API: the seed's system status and one
service's full view, assembled from the monitor, the heal side, maintenance and
the history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medic.orchestrator import ControlPlaneOrchestrator

UPTIME_WINDOW_S = 7 * 86400.0
"""``uptime_percentage`` covers the last 7 days of recorded transitions."""


def system_status(orch: ControlPlaneOrchestrator) -> dict[str, Any]:
    """The seed's ``get_system_status()`` document."""
    recent, _total = orch.store.recoveries(limit=20)
    return {
        "workflows": orch.workflows.status(),
        "health_status": {
            name: {
                "status": orch.maintenance.shown(name, state.status.value),
                "uptime_percentage": orch.store.uptime_percentage(name, UPTIME_WINDOW_S),
                "failure_type": state.failure_type,
                "circuit": orch.engine.heal_state(name).circuit.value,
            }
            for name, state in orch.monitor.states().items()
        },
        "recovery_history": [r.summary_json() for r in recent],
        "timestamp": datetime.now(UTC).isoformat(),
    }


def service_status(orch: ControlPlaneOrchestrator, name: str) -> dict[str, Any]:
    """``GET /api/v1/services/{name}``: the monitor's and the heal side's view, with
    uptime, maintenance, holds and the supervised process."""
    state = orch.monitor.state(name)
    data = {**state.as_dict(), **orch.engine.heal_state(name).as_dict()}
    data["uptime_percentage"] = orch.store.uptime_percentage(name, UPTIME_WINDOW_S)
    day = orch.store.uptime_percentage(name, 86400.0)
    data["uptime"] = {"24h": day, "7d": data["uptime_percentage"]}
    data.update(
        orch.maintenance.fields(name), status=orch.maintenance.shown(name, str(data["status"]))
    )
    data["recovery_running"] = name in orch.engine.running
    holds = orch.store.audit_entries("recovery.held", limit=5, service=name)
    data["recent_holds"] = [entry.as_json() for entry in holds]
    if name in orch.resources.processes:
        data["process"] = orch.resources.processes.info(name).as_dict()
    return data
