"""Before a dependent is healed, its dependencies are probed afresh.

A database that just died may not have crossed its own failure threshold yet;
restarting the web server that depends on it would be pointless, so a
dependency failing its probe right now holds the dependent (``dependency_failure``)
even before the dependency's status has changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from medic.core.vocabulary import HoldReason
from medic.heal.admission import Decision, Verdict
from medic.heal.holds import Holds
from medic.heal.state import HealState, ServiceSource
from medic.watch.state import ServiceState

Run = Callable[[ServiceState, HealState, Decision], None]


class DependencyConfirmation:
    def __init__(self, services: Callable[[], ServiceSource], holds: Holds) -> None:
        self._services = services
        self._holds = holds
        self._confirming: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def confirm_then(
        self, state: ServiceState, heal: HealState, decision: Decision, run: Run
    ) -> None:
        """Probe ``state``'s dependencies; ``run`` it if they all answer, else hold it."""
        if state.name in self._confirming:
            return
        self._confirming.add(state.name)
        task = asyncio.create_task(
            self._confirm(state, heal, decision, run), name=f"confirm-deps:{state.name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _confirm(
        self, state: ServiceState, heal: HealState, decision: Decision, run: Run
    ) -> None:
        services = self._services()
        try:
            deps = [d for d in state.spec.depends_on if d in services.states()]
            results = await asyncio.gather(*(services.probe_now(d) for d in deps))
        finally:
            self._confirming.discard(state.name)
        down = [d for d, r in zip(deps, results, strict=True) if not r.healthy]
        if down:
            detail = f"waiting for dependency {', '.join(down)} to recover"
            self._holds.hold(state, heal, Decision(Verdict.HOLD, HoldReason.DEPENDENCY, detail))
            return
        if services.states().get(state.name) is state and not state.recovering:
            run(state, heal, decision)
