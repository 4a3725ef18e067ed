"""Probes overtaken by news: a failed result that must not judge the service."""

from __future__ import annotations

from medic.core.vocabulary import ServiceStatus
from medic.watch.runner import Probe
from medic.watch.state import ServiceState


def overtaken(state: ServiceState, probe: Probe, asked_at: float, started_mono: float) -> bool:
    """A failed probe that began before news it could not see: medic's own
    restart of the service (it timed out on the old container; ``started_mono``
    is when it began, monotonic), a check asked for since (an operator's reset,
    a container started), or the service seen healthy since (by
    ``wait_healthy`` after a restart, also before the recovery has ended).

    Such a probe (one that reached the old container while it was restarted
    and hung until its timeout) would otherwise end a hold or start another
    recovery of a service that is healthy now; a fresh probe decides instead.
    """
    if probe.result.healthy:
        return False
    if not state.recovering and state.began_during_recovery(started_mono):
        return True
    last = state.last_check
    if last is not None and last.result.healthy and last.at > probe.at:
        # A later probe already saw it healthy (``wait_healthy``'s, mid-recovery,
        # while the service's status is not HEALTHY yet): this one is older news.
        return True
    began = probe.at.timestamp()
    if began < asked_at:
        return True
    since = state.healthy_since if state.status is ServiceStatus.HEALTHY else None
    return since is not None and since > began
