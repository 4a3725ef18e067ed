"""A service's status from its check results: thresholds, grace, certainty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medic.config.models import MonitoringConfig, ServiceConfig, ServiceSpec
from medic.core.vocabulary import FailureType, ServiceStatus
from medic.watch.checks.base import CheckResult
from medic.watch.state import RECENT_CHECKS, LastCheck, ServiceState

CRASH = FailureType.SERVICE_CRASH


def state(**monitoring: object) -> ServiceState:
    svc = ServiceConfig.model_validate({"check": {"type": "tcp", "port": 1}})
    return ServiceState(
        ServiceSpec.resolve("web", svc, MonitoringConfig.model_validate(monitoring))
    )


def fail(definitive: bool = False) -> CheckResult:
    return CheckResult.fail(CRASH, "refused", definitive=definitive)


def test_first_success_makes_an_unknown_service_healthy() -> None:
    s = state(success_threshold=3)
    t = s.observe(CheckResult.ok())
    assert t is not None and (t.old, t.new) == (ServiceStatus.UNKNOWN, ServiceStatus.HEALTHY)


def test_failure_threshold_consecutive_failures_make_it_unhealthy() -> None:
    s = state(failure_threshold=3)
    s.observe(CheckResult.ok())
    assert s.observe(fail()) is None
    assert s.observe(fail()) is None
    t = s.observe(fail())
    assert t is not None and t.new is ServiceStatus.UNHEALTHY and t.failure_type is CRASH


def test_a_success_in_between_starts_the_count_again() -> None:
    s = state(failure_threshold=2)
    s.observe(CheckResult.ok())
    s.observe(fail())
    s.observe(CheckResult.ok())
    assert s.observe(fail()) is None
    assert s.status is ServiceStatus.HEALTHY


def test_a_certain_failure_does_not_wait_for_the_threshold() -> None:
    s = state(failure_threshold=5)
    s.observe(CheckResult.ok())
    t = s.observe(fail(definitive=True))
    assert t is not None and t.new is ServiceStatus.UNHEALTHY


def test_success_threshold_successes_make_it_healthy_again() -> None:
    s = state(failure_threshold=1, success_threshold=2)
    s.observe(CheckResult.ok())
    s.observe(fail())
    assert s.observe(CheckResult.ok()) is None
    t = s.observe(CheckResult.ok())
    assert t is not None and t.new is ServiceStatus.HEALTHY


def test_start_period_failures_do_not_count_but_certain_ones_do() -> None:
    s = state(failure_threshold=1, start_period=60)
    s.start_grace(now_mono=1000.0)
    s.observe(CheckResult.ok(), now_mono=1001.0)
    assert s.observe(fail(), now_mono=1002.0) is None
    assert s.status is ServiceStatus.HEALTHY
    t = s.observe(fail(), now_mono=1061.0)
    assert t is not None and t.new is ServiceStatus.UNHEALTHY
    s2 = state(failure_threshold=1, start_period=60)
    s2.start_grace(now_mono=1000.0)
    assert s2.observe(fail(definitive=True), now_mono=1001.0) is not None


def test_a_result_that_cannot_tell_changes_nothing() -> None:
    s = state(failure_threshold=1)
    s.observe(CheckResult.ok())
    assert s.observe(CheckResult(healthy=False, detail="Docker engine unreachable")) is None
    assert s.status is ServiceStatus.HEALTHY


def test_failures_of_a_service_stopped_by_an_operator_are_expected() -> None:
    s = state(failure_threshold=1)
    s.set_status(ServiceStatus.STOPPED_BY_OPERATOR, "docker stop")
    assert s.observe(fail(definitive=True)) is None
    t = s.observe(CheckResult.ok())
    assert t is not None and t.new is ServiceStatus.HEALTHY


def test_a_healthy_service_keeps_no_failure_type_once_a_check_passes() -> None:
    s = state(failure_threshold=3)
    s.observe(CheckResult.ok())
    s.observe(fail())
    assert (s.status, s.failure_type) == (ServiceStatus.HEALTHY, CRASH)
    s.observe(CheckResult.ok())
    assert (s.status, s.failure_type) == (ServiceStatus.HEALTHY, None)


def test_medics_own_restart_changes_neither_status_nor_failure_type() -> None:
    # An operator's recovery of a healthy service: its restart's failed checks
    # (even a definitive exit) are the restart passing through.
    s = state(failure_threshold=1)
    s.observe(CheckResult.ok())
    s.recovering = True
    assert s.observe(fail(definitive=True)) is None
    assert (s.status, s.failure_type) == (ServiceStatus.HEALTHY, None)


def test_a_probe_that_overlapped_medics_restart_is_known_as_such() -> None:
    s = state()
    s.recovering = True
    assert s.began_during_recovery(started_mono=100.0)
    s.end_recovery(now_mono=105.0)
    assert s.began_during_recovery(started_mono=104.0)
    assert not s.began_during_recovery(started_mono=105.5)


def test_the_last_60_checks_are_kept_in_memory_oldest_first() -> None:
    s = state()
    start = datetime(2026, 1, 6, tzinfo=UTC)
    for i in range(RECENT_CHECKS + 5):
        s.record_check(LastCheck(start + timedelta(seconds=i), i / 1000, CheckResult.ok(f"#{i}")))
    kept = [c.result.detail for c in s.recent_checks]
    assert len(kept) == RECENT_CHECKS == 60
    assert kept[0] == "#5" and kept[-1] == f"#{RECENT_CHECKS + 4}"
    assert s.last_check is s.recent_checks[-1]
