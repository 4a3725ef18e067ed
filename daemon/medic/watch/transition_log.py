"""How a service's status change reads in the log: one named event per kind."""

from __future__ import annotations

from medic.core.logging import get_logger
from medic.core.vocabulary import ServiceStatus
from medic.watch.state import Transition

log = get_logger("SelfHealingMonitor")


def log_transition(t: Transition, *, stopping: bool) -> None:
    failure = t.failure_type.value if t.failure_type else None
    if t.new is ServiceStatus.UNHEALTHY and t.old in (ServiceStatus.HEALTHY, ServiceStatus.UNKNOWN):
        # Stopping, medic starts nothing: it must not say that it does.
        then = (
            "medic is stopping; no recovery starts" if stopping else "Initiating auto-remediation"
        )
        log.warning(
            "service.unhealthy",
            message=f"{t.service} is UNHEALTHY. {then}.",
            service=t.service,
            failure_type=failure,
            detail=t.detail,
        )
    elif t.new is ServiceStatus.HEALTHY:
        log.info(
            "service.healthy",
            message=f"{t.service} is healthy",
            service=t.service,
            previous=t.old.value,
        )
    else:
        log.info(
            "service.state",
            message=f"{t.service} is {t.new.value}",
            service=t.service,
            status=t.new.value,
            failure_type=failure,
            detail=t.detail,
        )
