"""``services.X.recovery_policy``: a service's own keys of ``monitoring.recovery``
(attempts, window, backoff, cooldowns), read from the YAML and from labels,
followed by the guardrails; host-wide keys stay host-wide."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from medic.config.labels import service_from_labels
from medic.config.load import load_config
from medic.config.models import MonitoringConfig, ServiceSpec
from medic.core.errors import ConfigInvalid
from medic.core.vocabulary import FailureType, ServiceStatus
from medic.heal.admission import Guardrails
from medic.heal.state import HealState
from medic.watch.checks.base import CheckResult
from medic.watch.state import ServiceState

NOW = 1_000_000.0

CONFIG = """
monitoring:
  recovery: {max_attempts: 3, window: 10m, backoff: {initial: 5s, factor: 2}}
services:
  strict:
    check: {type: tcp, port: 1}
    recovery_policy: {max_attempts: 1, backoff: {initial: 1m}, circuit_cooldown: 0}
  plain:
    check: {type: tcp, port: 2}
"""


def failing(spec: ServiceSpec) -> ServiceState:
    state = ServiceState(spec)
    state.observe(CheckResult.fail(FailureType.SERVICE_CRASH, "down", definitive=True))
    assert state.status is ServiceStatus.UNHEALTHY
    return state


def test_a_service_policy_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    services = load_config(path).services
    strict, plain = services["strict"].policy, services["plain"].policy
    assert (strict.max_attempts, strict.window, strict.circuit_cooldown) == (1, 600.0, 0.0)
    assert (strict.backoff.initial, strict.backoff.factor) == (60.0, 2.0)
    assert (plain.max_attempts, plain.backoff.initial) == (3, 5.0)


def test_the_guardrails_follow_each_services_own_policy(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    loaded = load_config(path)
    rails = Guardrails(loaded.model.monitoring.recovery)
    strict, plain = failing(loaded.services["strict"]), failing(loaded.services["plain"])
    states = {"strict": strict, "plain": plain}
    one_attempt = HealState(attempts=deque([NOW - 30]))
    assert rails.decide(strict, one_attempt, states, NOW).verdict == "open_circuit"
    assert rails.decide(plain, HealState(attempts=deque([NOW - 30])), states, NOW).verdict == "run"
    assert 54 <= rails.backoff_delay(1, strict.spec.policy) <= 66
    assert rails.cooldown_after(0, strict.spec.policy) is None  # 0: open until reset
    assert rails.cooldown_after(0, plain.spec.policy) == 1800.0


def test_a_host_wide_key_in_a_service_policy_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "services:\n  web:\n    check: {type: tcp, port: 1}\n"
        "    recovery_policy:\n      concurrency: 4\n"
    )
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    [issue] = caught.value.issues
    assert (issue.line, issue.dotted_path) == (5, "services.web.recovery_policy")
    assert "concurrency is host-wide: set it in monitoring.recovery" in issue.message


def test_labels_give_a_service_policy_too() -> None:
    svc = service_from_labels(
        {"medic.recovery_policy.max_attempts": "5", "medic.recovery_policy.window": "1h"},
        container="web",
        playbooks={},
    )
    assert not isinstance(svc, list)
    policy = ServiceSpec.resolve("web", svc, MonitoringConfig()).policy
    assert (policy.max_attempts, policy.window, policy.reset_after) == (5, 3600.0, 600.0)
