"""The heal side's port to a fleet of medics (``fleet:``), and the admission
that asks it before an automatic recovery.

``FleetPort`` is implemented by ``medic.fleet``; without ``fleet:`` the engine
has none and nothing here runs. Before an automatic recovery starts, the port
is asked (asynchronously: it may take a lock or a slot in etcd) whether it may
run; a refusal holds the service with a fleet reason (``healed_elsewhere``,
``fleet_hold``, ``fleet_unavailable``). Before each step of a recovery that
holds a fleet lock the fence is checked: a lock lost meanwhile ends the
recovery ``fenced_out``. Each disruptive step (``DISRUPTIVE_ACTIONS``) of an
automatic recovery holds one of the group's slots while it runs, and only
then (``FleetPort.disruptive_slot``): no slot in time stops the recovery
there and holds the service ``fleet_concurrency``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from medic.config.actions import ActionOptions
from medic.config.models import Playbook
from medic.core.vocabulary import HoldReason, RecoveryOutcome
from medic.heal.admission import Decision, Verdict
from medic.heal.errors import HealError
from medic.watch.checks.base import CheckResult
from medic.watch.state import ServiceState

DISRUPTIVE_ACTIONS = frozenset(
    {"restart_container", "recreate_container", "restart_unit", "restart_process"}
)
"""Steps that take one of the group's ``disruptive_concurrency`` slots while they run."""

Refusal = tuple[HoldReason, str]


class FencedOut(HealError):
    """The fleet lock this recovery held is gone: it must not act any more."""


class FleetHeld(HealError):
    """A step may not run now for a fleet reason (no disruptive slot came in
    time, etcd cannot be reached): the recovery stops there and the service is
    held with ``reason``."""

    def __init__(self, reason: HoldReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class FleetPort(Protocol):
    async def admit(self, state: ServiceState, disruptive: bool) -> Refusal | None:
        """Take what an automatic recovery of ``state`` needs from the fleet
        before it starts (the shared-heal lock); None when it may run. A
        ``disruptive`` playbook is refused only when etcd cannot be reached:
        its slots are taken step by step (``disruptive_slot``)."""

    async def fence(self, service: str) -> None:
        """Raise ``FencedOut`` when a lock this host took for ``service`` is lost."""

    def disruptive_slot(self, service: str) -> AbstractAsyncContextManager[None]:
        """Hold one of the group's ``disruptive_concurrency`` slots for one step:
        waits up to ``disruptive_wait`` for it, else raises ``FleetHeld``
        (``fleet_concurrency``; ``fleet_unavailable`` when etcd cannot be
        reached). The slot is given back when the block ends, however it ends."""

    def finished(self, service: str, outcome: RecoveryOutcome, healthy: bool) -> None:
        """A recovery ended: publish its result and give back its lock."""

    def release(self, service: str) -> None:
        """Give back what ``admit`` took for a recovery that did not start."""


def is_disruptive(playbook: Playbook) -> bool:
    return any(step.action in DISRUPTIVE_ACTIONS for step in playbook.steps)


def needs_slot(step: ActionOptions, *, dry_run: bool, by_operator: bool) -> bool:
    """Whether a step takes one of the group's slots: a disruptive step of a
    recovery that acts and was not asked for by an operator (their own
    recoveries bypass the guardrails, the fleet's included)."""
    return step.action in DISRUPTIVE_ACTIONS and not dry_run and not by_operator


class FleetAdmission:
    """Asks the port before an automatic recovery; one question per service at a time."""

    def __init__(
        self,
        port: FleetPort,
        playbook_of: Callable[[ServiceState], Playbook],
        probe: Callable[[str], Awaitable[CheckResult]],
    ) -> None:
        self.port = port
        self._playbook_of = playbook_of
        self._probe = probe
        """A fresh check: a shared service another host has just healed is left alone."""
        self._asking: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def run_when_admitted(
        self,
        state: ServiceState,
        run: Callable[[], bool],
        hold: Callable[[Decision], None],
        *,
        recheck: bool = True,
    ) -> None:
        """Ask the port; then ``run()`` (False: it did not start) or ``hold``. A
        shared service is checked afresh once its lock is taken (unless
        ``recheck`` is off: an alert asks for a recovery whatever the check says):
        the host that held it before may have just healed it."""
        if state.name in self._asking:
            return
        self._asking.add(state.name)
        disruptive = is_disruptive(self._playbook_of(state))

        async def ask() -> None:
            try:
                refusal = await self.port.admit(state, disruptive)
            finally:
                self._asking.discard(state.name)
            if refusal is not None:
                hold(Decision(Verdict.HOLD, refusal[0], refusal[1]))
            elif recheck and state.spec.shared and (await self._probe(state.name)).healthy:
                self.port.release(state.name)  # healed meanwhile (by the last holder)
            elif not run():
                self.port.release(state.name)

        task = asyncio.create_task(ask(), name=f"fleet-admit:{state.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def asking(self, name: str) -> bool:
        return name in self._asking
