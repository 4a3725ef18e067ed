"""Probes overtaken by news: a failed result that must not judge the service."""

from __future__ import annotations

from medic.watch.runner import Probe
from medic.watch.state import ServiceState


def overtaken(state: ServiceState, probe: Probe, asked_at: float, started_mono: float) -> bool:
    """A failed probe that began before news it could not see: medic's own
    restart of the service (it timed out on the old container; ``started_mono``
    is when it began, monotonic), a check asked for since (an operator's reset,
    a container started), or the service seen healthy since by a probe that
    began later (``wait_healthy``'s after a restart, also before the recovery
    has ended).

    Such a probe (one that reached the old container while it was restarted
    and hung until its timeout) would otherwise end a hold or start another
    recovery of a service that is healthy now; a fresh probe decides instead.
    """
    if probe.result.healthy:
        return False
    if not state.recovering and state.began_during_recovery(started_mono):
        return True
    if probe.at.timestamp() < asked_at:
        return True
    # Seen healthy since: by a probe that began later (``wait_healthy``'s, also
    # mid-recovery, while the status is not HEALTHY yet). Both are wall-clock
    # starts; the status's own ``healthy_since`` is monotonic, not comparable.
    last = state.last_check
    return last is not None and last.result.healthy and last.at > probe.at
