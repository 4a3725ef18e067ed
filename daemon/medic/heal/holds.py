"""Holds: a failing service that the guardrails keep from being recovered now
is shown ``held`` with the reason, and checked again when the hold may end.

Also the hold of a service in maintenance (``for_maintenance``), the
host-wide hold (too many services failing at once: a host or network
problem) and the wake-ups that ask for a check when a backoff, a cooldown or
a budget window ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from medic.core.clock import iso
from medic.core.vocabulary import FailureType, HoldReason, ServiceStatus
from medic.heal.admission import Decision, Guardrails, dependency_order
from medic.heal.maintenance import Maintenance
from medic.heal.recording import HealRecorder
from medic.heal.state import HealState, ServiceSource
from medic.watch.state import ServiceState


class Holds:
    def __init__(
        self,
        services: Callable[[], ServiceSource],
        guardrails: Guardrails,
        recorder: HealRecorder,
    ) -> None:
        self._services = services
        self.maintenance: Maintenance | None = None
        """The pauses (attached by the orchestrator; None: nothing is ever paused)."""
        self._guardrails = guardrails
        self._recorder = recorder
        self._wakeups: dict[str, asyncio.TimerHandle] = {}
        self.host_hold: str | None = None
        """Why automatic recovery is held host-wide, or None."""

    def hold(self, state: ServiceState, heal: HealState, decision: Decision) -> None:
        reason = decision.reason or HoldReason.CIRCUIT_OPEN
        if reason is HoldReason.BLAST_RADIUS:
            self._enter_host_hold(decision.detail)
        if decision.wake_at is not None:
            self.wake_at(state.name, decision.wake_at)
        if heal.held_reason == decision.detail and state.status is ServiceStatus.HELD:
            return
        failure = FailureType.DEPENDENCY_FAILURE if reason is HoldReason.DEPENDENCY else None
        heal.held_reason = decision.detail
        self._services().apply_transition(
            state.set_status(ServiceStatus.HELD, decision.detail, failure)
        )
        # The host-wide hold and an open circuit are told once, not for every service.
        quiet = reason in (HoldReason.BLAST_RADIUS, HoldReason.CIRCUIT_OPEN)
        self._recorder.held(state.name, reason, decision.detail, publish=not quiet)

    def for_maintenance(self, name: str, *, record: bool = True) -> tuple[HoldReason, str] | None:
        """Why a paused service is not healed, or None. With ``record``, the
        hold is recorded once per pause (the automatic path: not on every
        failed check); a caller that records each refusal itself passes False."""
        maintenance = self.maintenance
        pause = maintenance.paused(name) if maintenance is not None else None
        if maintenance is None or pause is None:
            return None
        until = f" until {iso(pause.until)}" if pause.until is not None else ""
        detail = f"in maintenance{until} ({pause.reason}, paused by {pause.by})"
        if record and maintenance.first_hold(name):
            self._recorder.held(name, HoldReason.MAINTENANCE, detail, publish=True)
        return HoldReason.MAINTENANCE, detail

    def release(self, state: ServiceState, heal: HealState) -> None:
        if state.status is ServiceStatus.HELD:
            heal.held_reason = None
            self._services().apply_transition(
                state.set_status(ServiceStatus.UNHEALTHY, "hold lifted")
            )

    def _enter_host_hold(self, detail: str) -> None:
        first = self.host_hold is None
        self.host_hold = detail
        if first:
            self._recorder.host_hold_entered(detail)

    def lift_host_hold(self) -> None:
        """Lift the host-wide hold once the failing fraction has dropped; the
        failing services are checked again, dependencies first."""
        if self.host_hold is None:
            return
        services = self._services()
        states = services.states()
        if self._guardrails.blast_radius(states) is not None:
            return
        detail, self.host_hold = self.host_hold, None
        self._recorder.host_hold_lifted(detail)
        for name in dependency_order(states):
            if states[name].is_failing:
                services.request_check(name)

    def wake_at(self, name: str, when: float) -> None:
        """Check ``name`` at monotonic ``when`` (the earliest of the wake-ups asked for)."""
        loop = asyncio.get_running_loop()
        existing = self._wakeups.get(name)
        if existing is not None:
            if existing.when() <= loop.time() + max(0.0, when - time.monotonic()):
                return
            existing.cancel()

        def wake() -> None:
            self._wakeups.pop(name, None)
            self._services().request_check(name)

        self._wakeups[name] = loop.call_later(max(0.0, when - time.monotonic()), wake)

    def cancel_wakeups(self) -> None:
        for handle in self._wakeups.values():
            handle.cancel()
        self._wakeups.clear()
