"""The blast-radius counts kept by the monitor's states (``WatchedStates``) are
the counts of a pass over every service, whatever happens to the services; and
they stay cheap at 10,000 services (a pass on every failed check kept the loop
busy for good once a thousand services failed together, issue 15)."""

from __future__ import annotations

import random
import time

from medic.config.models import RecoveryPolicy
from medic.core.vocabulary import FailureType, ServiceStatus
from medic.heal.admission import Guardrails
from medic.watch.checks.base import CheckResult
from medic.watch.state import ServiceState, WatchedStates
from tests.test_guardrails import spec

FAILURES = (
    FailureType.SERVICE_CRASH,
    FailureType.CONNECTION_TIMEOUT,
    FailureType.DEPENDENCY_FAILURE,
)
STATUSES = (
    ServiceStatus.STOPPED_BY_OPERATOR,
    ServiceStatus.UNKNOWN,
    ServiceStatus.HELD,
    ServiceStatus.RECOVERING,
    ServiceStatus.HEALTHY,
)


class Pauses:
    def __init__(self) -> None:
        self.names: dict[str, object] = {}

    def paused(self, name: str) -> object:
        return self.names.get(name)

    def pauses(self) -> dict[str, object]:
        return dict(self.names)


def _step(
    rng: random.Random, states: WatchedStates, pauses: Pauses, stale: list[ServiceState]
) -> None:
    name = f"s{rng.randrange(40)}"
    state = states.get(name)
    roll = rng.random()
    if state is None:
        states[name] = ServiceState(spec(name))
    elif roll < 0.45:
        failure = rng.choice(FAILURES)
        result = CheckResult.fail(failure, "down", definitive=rng.random() < 0.3)
        state.observe(CheckResult.ok() if rng.random() < 0.35 else result)
    elif roll < 0.65:
        state.set_status(rng.choice(STATUSES), "moved", rng.choice((None, *FAILURES)))
    elif roll < 0.75:
        state.recovering = not state.recovering
    elif roll < 0.85:
        stale.append(states.pop(name) or state)  # removed (a reload) while a check ran
    elif roll < 0.95:
        pauses.names.pop(name, None) if name in pauses.names else pauses.names.update({name: 1})
    elif stale:
        # A removed service's state hears of its last check: it changes nothing.
        stale[rng.randrange(len(stale))].observe(CheckResult.fail(FailureType.SERVICE_CRASH, "x"))


def test_the_tallies_count_what_a_pass_over_every_service_counts() -> None:
    rng = random.Random(15)
    states, pauses, stale = WatchedStates(), Pauses(), []
    tallied = Guardrails(RecoveryPolicy(max_failing_fraction=0.3))
    tallied.watch_pauses(pauses)
    passing = Guardrails(RecoveryPolicy(max_failing_fraction=0.3))
    passing.paused = lambda name: pauses.paused(name) is not None
    held = 0
    for _ in range(5000):
        _step(rng, states, pauses, stale)
        expected = passing._counts_by_pass(dict(states))
        assert tallied._counts_from_tallies(states, pauses.pauses()) == expected
        verdict = tallied.blast_radius(states)
        assert verdict == passing.blast_radius(dict(states))
        held += verdict is not None
    assert 100 < held < 4900  # both sides of the threshold were exercised


def test_ten_thousand_services_a_thousand_failing_count_without_a_pass() -> None:
    states = WatchedStates()
    for i in range(10_000):
        state = states[f"s{i}"] = ServiceState(spec(f"s{i}"))
        state.observe(CheckResult.ok())
    for i in range(0, 10_000, 10):
        states[f"s{i}"].observe(CheckResult.fail(FailureType.CONNECTION_TIMEOUT, "timed out"))
    rails = Guardrails(RecoveryPolicy(max_failing_fraction=0.05))
    rails.watch_pauses(Pauses())
    started = time.perf_counter()
    for _ in range(1000):  # a thousand failed checks: 10^7 steps with a pass each
        verdict = rails.blast_radius(states)
    assert time.perf_counter() - started < 1.0
    assert verdict is not None and "1000 of 10000 services" in verdict
