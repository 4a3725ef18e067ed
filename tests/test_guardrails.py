"""The guardrail rules on their own: each decision from states and a clock."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from medic.config.models import MonitoringConfig, RecoveryPolicy, ServiceConfig, ServiceSpec
from medic.core.vocabulary import CircuitState, FailureType, ServiceStatus
from medic.heal.admission import Decision, Guardrails, dependency_order
from medic.heal.state import HealState
from medic.host.docker import DockerEvent
from medic.watch.checks.base import CheckResult
from medic.watch.containers import DockerIntent
from medic.watch.state import ServiceState

NOW = 1_000_000.0


def spec(name: str, depends_on: tuple[str, ...] = (), **policy: Any) -> ServiceSpec:
    mon = MonitoringConfig(recovery=RecoveryPolicy(**policy))
    svc = ServiceConfig.model_validate(
        {"check": {"type": "tcp", "port": 1}, "depends_on": list(depends_on)}
    )
    return ServiceSpec.resolve(name, svc, mon)


def failing(name: str, failure: FailureType = FailureType.SERVICE_CRASH, **kw: Any) -> ServiceState:
    state = ServiceState(spec(name, **kw))
    state.observe(CheckResult.fail(failure, "down", definitive=True))
    assert state.status is ServiceStatus.UNHEALTHY
    return state


def healthy(name: str) -> ServiceState:
    state = ServiceState(spec(name))
    state.observe(CheckResult.ok())
    return state


def by_name(*states: ServiceState) -> dict[str, ServiceState]:
    return {s.name: s for s in states}


def decide(
    rails: Guardrails, state: ServiceState, *others: ServiceState, heal: HealState | None = None
) -> Decision:
    """One decision on ``state`` among ``others``, with its heal-side state."""
    return rails.decide(state, heal or HealState(), by_name(state, *others), NOW)


def test_a_failing_service_is_recovered() -> None:
    assert decide(Guardrails(RecoveryPolicy()), failing("web")).verdict == "run"


def test_max_attempts_in_the_window_opens_the_circuit() -> None:
    rails = Guardrails(RecoveryPolicy(max_attempts=2, window=60))
    heal = HealState(attempts=deque([NOW - 30, NOW - 10]))
    decision = decide(rails, failing("web", max_attempts=2, window=60), heal=heal)
    assert decision.verdict == "open_circuit"
    assert "after 2 automatic recoveries within 60s" in decision.detail


def test_attempts_older_than_the_window_no_longer_count() -> None:
    rails = Guardrails(RecoveryPolicy(max_attempts=2, window=60))
    heal = HealState(attempts=deque([NOW - 120, NOW - 10]))
    assert decide(rails, failing("web"), heal=heal).verdict == "run"
    assert list(heal.attempts) == [NOW - 120, NOW - 10], "decide changed the state"
    rails.record_attempt(heal, NOW)
    assert list(heal.attempts) == [NOW - 10, NOW]
    assert list(rails.host_attempts) == [NOW]


def test_backoff_makes_the_next_attempt_wait() -> None:
    heal = HealState(next_attempt_at=NOW + 5)
    decision = decide(Guardrails(RecoveryPolicy()), failing("web"), heal=heal)
    assert (decision.verdict, decision.wake_at) == ("wait", NOW + 5)


def test_backoff_grows_by_the_factor_and_is_capped_with_jitter() -> None:
    rails = Guardrails(
        RecoveryPolicy(backoff={"initial": 2, "factor": 3, "max": 20, "jitter": 0.1})
    )
    for attempt, base in ((1, 2.0), (2, 6.0), (3, 18.0), (4, 20.0), (9, 20.0)):
        delays = {rails.backoff_delay(attempt) for _ in range(50)}
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays), (attempt, delays)
        assert len(delays) > 1, "no jitter"


def test_a_long_healthy_spell_gives_the_attempts_back() -> None:
    rails = Guardrails(RecoveryPolicy(max_attempts=2, reset_after=600))
    web = failing("web", max_attempts=2, reset_after=600)
    heal = HealState(attempts=deque([NOW - 5, NOW - 4]), next_attempt_at=NOW + 100)
    web.set_status(ServiceStatus.HEALTHY)
    assert web.healthy_since is not None
    web.healthy_since -= 601  # healthy for longer than reset_after
    now = web.healthy_since + 601
    assert rails.attempts_given_back(web, now)
    # Leaving that spell says how long it was, for the heal side to forget the attempts.
    left = web.set_status(ServiceStatus.UNHEALTHY, failure_type=FailureType.SERVICE_CRASH)
    assert left is not None and left.healthy_for_s is not None and left.healthy_for_s >= 600
    assert decide(rails, web, heal=heal).verdict == "open_circuit", "the attempts still count"


def test_a_short_healthy_spell_keeps_the_attempts() -> None:
    web = failing("web", max_attempts=1, reset_after=600)
    web.set_status(ServiceStatus.HEALTHY)
    left = web.set_status(ServiceStatus.UNHEALTHY, failure_type=FailureType.SERVICE_CRASH)
    assert left is not None and left.healthy_for_s is not None and left.healthy_for_s < 600
    rails = Guardrails(RecoveryPolicy(max_attempts=1, reset_after=600))
    assert decide(rails, web, heal=HealState(attempts=deque([NOW - 5]))).verdict == "open_circuit"


def test_open_circuit_waits_for_probation_then_allows_one_attempt() -> None:
    rails = Guardrails(RecoveryPolicy())
    web = failing("web")
    heal = HealState(circuit=CircuitState.OPEN, probation_due_at=NOW + 30)
    assert rails.decide(web, heal, by_name(web), NOW).verdict == "wait"
    decision = rails.decide(web, heal, by_name(web), NOW + 31)
    assert decision.verdict == "run" and decision.probation
    heal.circuit = CircuitState.PROBATION  # failing again after the probation attempt
    failed = rails.decide(web, heal, by_name(web), NOW + 32)
    assert (failed.verdict, failed.probation) == ("open_circuit", True)


def test_probation_cooldown_doubles_up_to_the_cap_and_zero_means_never() -> None:
    rails = Guardrails(RecoveryPolicy(circuit_cooldown=60, circuit_cooldown_max=300))
    assert [rails.cooldown_after(n) for n in range(5)] == [60, 120, 240, 300, 300]
    assert Guardrails(RecoveryPolicy(circuit_cooldown=0)).cooldown_after(0) is None
    heal = HealState(circuit=CircuitState.OPEN, probation_due_at=None)
    decision = decide(rails, failing("web"), heal=heal)
    assert (decision.verdict, decision.reason) == ("hold", "circuit_open")


def test_a_failing_dependency_holds_its_dependents() -> None:
    db = failing("db")
    web = failing("web", depends_on=("db",))
    decision = decide(Guardrails(RecoveryPolicy()), web, db)
    assert (decision.verdict, decision.reason) == ("hold", "dependency")
    assert "db" in decision.detail
    assert decide(Guardrails(RecoveryPolicy()), db, web).verdict == "run"


@pytest.mark.parametrize(
    ("failing_count", "total", "held"),
    [(2, 4, False), (3, 4, True), (3, 6, False), (4, 6, True), (3, 3, False)],
)
def test_blast_radius_holds_when_more_than_the_fraction_fail(
    failing_count: int, total: int, held: bool
) -> None:
    states = [failing(f"s{i}") for i in range(failing_count)]
    states += [healthy(f"h{i}") for i in range(total - failing_count)]
    decision = decide(Guardrails(RecoveryPolicy(max_failing_fraction=0.5)), *states)
    assert (decision.reason == "blast_radius") is held
    if held:
        assert f"{failing_count} of {total} services" in decision.detail


def test_dependency_failures_do_not_count_towards_the_blast_radius() -> None:
    db = failing("db")
    dependents = [failing(f"w{i}", FailureType.DEPENDENCY_FAILURE) for i in range(3)]
    others = [healthy("h0"), healthy("h1")]
    states = by_name(db, *dependents, *others)
    assert Guardrails(RecoveryPolicy()).blast_radius(states) is None


def test_paused_services_do_not_count_towards_the_blast_radius() -> None:
    # A database job pauses three services that fail meanwhile, as expected:
    # a fourth failing for its own reason is not a host problem.
    states = by_name(*(failing(f"job{i}") for i in range(3)), failing("web"), healthy("h0"))
    guardrails = Guardrails(RecoveryPolicy(max_failing_fraction=0.5))
    assert guardrails.blast_radius(states) is not None
    guardrails.paused = lambda name: name.startswith("job")
    assert guardrails.blast_radius(states) is None


def test_operator_stopped_services_are_skipped_and_not_counted() -> None:
    web = failing("web")
    web.set_status(ServiceStatus.STOPPED_BY_OPERATOR)
    assert decide(Guardrails(RecoveryPolicy()), web).reason == "operator_stop"


def test_a_rejected_recovery_holds_the_service() -> None:
    rails = Guardrails(RecoveryPolicy())
    web = failing("web")
    heal = HealState(rejected="an operator rejected recovery 7")
    decision = decide(rails, web, heal=heal)
    assert (decision.verdict, decision.reason) == ("hold", "rejected")
    assert decision.detail == "an operator rejected recovery 7"
    heal.rejected = None  # the engine clears it once the service is healthy (or reset)
    assert decide(rails, web, heal=heal).verdict == "run"


def test_the_host_budget_holds_when_spent() -> None:
    rails = Guardrails(RecoveryPolicy(budget=2, window=100))
    a, b, c = failing("a"), failing("b"), failing("c")
    rails.record_attempt(HealState(), NOW - 50)
    rails.record_attempt(HealState(), NOW - 20)
    decision = rails.decide(c, HealState(), by_name(a, b, c), NOW)
    assert (decision.verdict, decision.reason, decision.wake_at) == ("hold", "budget", NOW + 50)
    assert rails.decide(c, HealState(), by_name(a, b, c), NOW + 51).verdict == "run"


def test_dependency_order_puts_dependencies_first() -> None:
    states = by_name(
        failing("web", depends_on=("api",)),
        failing("api", depends_on=("db",)),
        failing("db"),
        failing("cache"),
    )
    order = dependency_order(states)
    assert order.index("db") < order.index("api") < order.index("web")


def event(action: str, **attributes: str) -> DockerEvent:
    return DockerEvent(action, "web", "id", {"name": "web", **attributes}, 0)


@pytest.mark.parametrize(
    ("sequence", "meaning_of_die"),
    [
        ([], "crash_suspect"),  # killed from the host, OOM, exit
        ([event("kill", signal="9")], "crash_suspect"),  # docker kill
        ([event("kill", signal="15")], "defer"),  # docker stop, graceful
        ([event("kill", signal="15"), event("kill", signal="9")], "defer"),  # stop, timed out
        ([event("kill", signal="15"), event("start")], "crash_suspect"),  # restarted since
    ],
)
def test_docker_intent_tells_a_stop_from_a_crash(
    sequence: list[DockerEvent], meaning_of_die: str
) -> None:
    intent = DockerIntent()
    for earlier in sequence:
        intent.observe(earlier)
    assert intent.observe(event("die")) == meaning_of_die
    assert intent.observe(event("stop")) == "operator_stop"


def test_a_failed_latest_probe_counts_towards_the_blast_radius_before_its_threshold() -> None:
    counting = []
    for i in range(3):
        s = ServiceState(spec(f"c{i}"))
        s.observe(CheckResult.ok())
        s.observe(CheckResult.fail(FailureType.CONNECTION_TIMEOUT, "slow"))  # 1 of 3 failures
        assert s.status is ServiceStatus.HEALTHY
        counting.append(s)
    states = by_name(failing("web"), *counting, healthy("h0"))
    assert "4 of 5 services" in (Guardrails(RecoveryPolicy()).blast_radius(states) or "")


def test_each_service_keeps_a_stable_phase_within_its_interval() -> None:
    from medic.watch.periodic import check_phase

    phases = [check_phase(f"svc{i}", 10.0) for i in range(200)]
    assert all(0 <= p < 10.0 for p in phases)
    assert phases == [check_phase(f"svc{i}", 10.0) for i in range(200)]
    assert len({round(p, 2) for p in phases}) > 150, "phases are not spread"


def test_an_exited_container_after_a_gentle_signal_may_still_be_a_stop() -> None:
    intent = DockerIntent()
    assert not intent.stop_may_follow("web", now=100.0)
    intent.observe(event("kill", signal="15"), now=100.0)
    # A check may find it exited before the die event is read: wait for Docker.
    assert intent.stop_may_follow("web", now=105.0)
    intent.observe(event("die"), now=110.0)
    assert intent.stop_may_follow("web", now=110.1)
    assert not intent.stop_may_follow("web", now=110.5), "no stop came: it is a crash"
    intent.observe(event("start"), now=111.0)
    assert not intent.stop_may_follow("web", now=111.1)
    intent.observe(event("kill", signal="9"), now=112.0)
    assert not intent.stop_may_follow("web", now=112.1), "docker kill is a crash at once"
