"""Guardrails on real containers, with Docker's own event stream as the
witness that no restart happened that the guardrails forbid."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.dockerwatch import StartCounter
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"
Counter = Callable[[str], StartCounter]

QUICK_RESTART = """
description: restart the container; it has two seconds to become healthy
failure_types: [service_crash, connection_timeout, unhealthy_response]
steps:
  - {action: restart_container, timeout: 10s}
  - {action: wait_healthy, timeout: 2s}
"""


def service(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    code, body = daemon.get(f"/api/v1/services/{name}")
    assert code == 200, body
    return dict(body)


def wait_status(
    daemon: DaemonProcess, name: str, status: str, timeout: float = 15
) -> dict[str, Any]:
    return wait_for(
        lambda: (s := service(daemon, name))["status"] == status and s,
        timeout,
        interval=0.1,
        message=f"{name} becomes {status}",
    )


def recoveries(daemon: DaemonProcess, name: str | None = None) -> list[dict[str, Any]]:
    query = f"?service={name}" if name else ""
    return list(daemon.get(f"/api/v1/recoveries{query}")[1]["recoveries"])


def no_new_starts(counters: list[StartCounter], seconds: float) -> None:
    """Watch Docker's events for ``seconds``: nothing may be (re)started."""
    before = [len(c.starts) for c in counters]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert [len(c.starts) for c in counters] == before, "a forbidden restart happened"
        time.sleep(0.05)


def config(port: int, services: str, recovery: str, *, interval: str = "300ms") -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: {interval}
  timeout: 1s
  failure_threshold: 1
  recovery: {recovery}
playbooks_dir: playbooks
services:
{services}"""


def container_service(name: str, handle: ContainerHandle) -> str:
    return f"""  {name}:
    check: {{type: container}}
    container: {handle.name}
"""


TOKEN = {"MEDIC_API_TOKEN": "tok"}


def test_crash_loop_gets_one_probation_after_the_cooldown(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Counter,
) -> None:
    loop = container_factory(name="loop", command="sleep 0.3; exit 3", publish=False)
    starts = start_counter(loop.id)
    recovery = (
        "{max_attempts: 2, window: 10m, backoff: {initial: 100ms, factor: 1},"
        " circuit_cooldown: 2s, circuit_cooldown_max: 1m}"
    )
    daemon = watching(medic_daemon, "loop", loop, recovery)
    opened = wait_for(
        lambda: service(daemon, "loop")["circuit"] == "open" and time.monotonic(),
        30,
        interval=0.05,
        message="circuit opens",
    )
    assert len(starts.starts) == 2
    assert service(daemon, "loop")["next_attempt_at"] is not None  # the probation time
    wait_for(lambda: len(starts.starts) == 3, 10, interval=0.05, message="one probation restart")
    probation_delay = starts.starts[2] - opened
    assert 1.5 <= probation_delay <= 4.0, probation_delay
    wait_for(lambda: service(daemon, "loop")["circuit"] == "open", 10, message="circuit reopens")
    # The next probation waits twice as long (4 s): nothing may restart for the next 3 s.
    no_new_starts([starts], 3.0)
    assert daemon.find_logs(event="circuit.probation", service="loop")
    holds = service(daemon, "loop")["recent_holds"]
    assert holds[0]["data"]["reason"] == "circuit_open"
    assert 'medic_recoveries_held_total{reason="circuit_open"}' in daemon.get("/metrics")[1]
    rows = recoveries(daemon, "loop")
    assert len(rows) == 3


def test_operator_reset_closes_the_circuit_and_gives_attempts_back(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Counter,
) -> None:
    loop = container_factory(name="loop", command="sleep 0.3; exit 3", publish=False)
    starts = start_counter(loop.id)
    recovery = "{max_attempts: 1, window: 10m, circuit_cooldown: 0}"
    daemon = watching(medic_daemon, "loop", loop, recovery)
    wait_for(lambda: service(daemon, "loop")["circuit"] == "open", 20, message="circuit opens")
    assert service(daemon, "loop")["next_attempt_at"] is None  # cooldown 0: never by itself
    no_new_starts([starts], 1.5)
    code, body = daemon.post("/api/v1/services/loop/reset", token="tok")
    assert code == 200 and body["circuit"] == "closed"
    wait_for(lambda: len(starts.starts) == 2, 10, message="a fresh attempt after the reset")


def watching(
    medic_daemon: DaemonFactory,
    name: str,
    handle: ContainerHandle,
    recovery: str,
    playbooks: dict[str, str] | None = None,
) -> DaemonProcess:
    """A daemon watching ``handle`` as service ``name`` under ``recovery``."""
    return medic_daemon(
        config(free_port(), container_service(name, handle), recovery),
        playbooks=playbooks or {"restart-container": QUICK_RESTART},
        env=TOKEN,
    )


def wait_first_recovery_succeeded(daemon: DaemonProcess, message: str) -> None:
    wait_for(
        lambda: recoveries(daemon) and recoveries(daemon)[0]["outcome"] == "succeeded",
        15,
        message=message,
    )


def crash_and_wait_healed(daemon: DaemonProcess, web: ContainerHandle, nth: int) -> None:
    """Kill the container's process; wait for the nth recovery to succeed."""
    web.kill_process()
    wait_for(
        lambda: len(recoveries(daemon)) == nth and recoveries(daemon)[0]["outcome"] == "succeeded",
        15,
        message=f"recovery {nth}",
    )
    wait_status(daemon, "web", "healthy")


def test_a_service_healthy_past_reset_after_gets_its_attempts_back(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
) -> None:
    web = container_factory(name="web")
    recovery = "{max_attempts: 2, window: 10m, reset_after: 2s, backoff: {initial: 100ms}}"
    daemon = watching(medic_daemon, "web", web, recovery)
    wait_status(daemon, "web", "healthy")
    for expected in (1, 2):
        crash_and_wait_healed(daemon, web, expected)
    assert service(daemon, "web")["attempts_in_window"] == 2
    time.sleep(2.5)  # stay healthy longer than reset_after (2 s): that is the point
    for expected in (3, 4):
        crash_and_wait_healed(daemon, web, expected)
    assert service(daemon, "web")["circuit"] == "closed"


def test_docker_stop_is_left_alone_and_a_crash_is_still_healed(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Counter,
) -> None:
    web = container_factory(name="web")
    starts = start_counter(web.id)
    recovery = "{max_attempts: 5, window: 10m}"
    daemon = watching(medic_daemon, "web", web, recovery)
    wait_status(daemon, "web", "healthy")
    web.container.stop(timeout=5)
    wait_status(daemon, "web", "stopped_by_operator")
    no_new_starts([starts], 2.0)
    assert recoveries(daemon) == []
    web.container.start()
    wait_status(daemon, "web", "healthy")
    web.kill_process()
    wait_first_recovery_succeeded(daemon, "the crash is healed")
    assert web.status == "running"


def test_respect_manual_stop_false_treats_a_stop_as_a_crash(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
) -> None:
    web = container_factory(name="web")
    recovery = "{max_attempts: 5, window: 10m, respect_manual_stop: false}"
    daemon = watching(medic_daemon, "web", web, recovery)
    wait_status(daemon, "web", "healthy")
    web.container.stop(timeout=5)
    wait_first_recovery_succeeded(daemon, "the stopped container is restarted")
    assert web.status == "running"


def test_many_services_failing_together_are_held_then_recovered(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Counter,
) -> None:
    boxes = [
        container_factory(name=f"b{i}", command="sleep 100000", publish=False) for i in range(6)
    ]
    counters = [start_counter(b.id) for b in boxes]
    services = "".join(container_service(f"s{i}", b) for i, b in enumerate(boxes))
    recovery = (
        "{max_attempts: 5, window: 10m, max_failing_fraction: 0.3, correlation_window: 300ms}"
    )
    daemon = medic_daemon(
        config(free_port(), services, recovery),
        playbooks={"restart-container": QUICK_RESTART},
        env=TOKEN,
    )
    for i in range(6):
        wait_status(daemon, f"s{i}", "healthy")
    for box in boxes[:5]:
        box.kill_process()
    for i in range(5):
        held = wait_status(daemon, f"s{i}", "held")
        assert "5 of 6 services" in held["held_reason"]
    no_new_starts(counters, 2.0)
    assert len(daemon.find_logs(event="host_hold.entered")) == 1
    listing = daemon.get("/api/v1/services")[1]
    assert "5 of 6 services" in listing["recovery_hold"]
    holds = service(daemon, "s0")["recent_holds"]
    assert holds and holds[0]["data"]["reason"] == "blast_radius"
    _code, text = daemon.get("/metrics")
    assert 'medic_recoveries_held_total{reason="blast_radius"}' in text
    # An operator brings four back by hand. The hold lasts while more than 30%
    # fail (2 of 6 still is), so it lifts only after the fourth start: 1 of 6.
    for box in boxes[:4]:
        box.container.start()
    for i in (4,):
        wait_for(
            lambda n=i: any(r["outcome"] == "succeeded" for r in recoveries(daemon, f"s{n}")),
            20,
            message=f"s{i} recovered after the hold",
        )
    assert daemon.find_logs(event="host_hold.lifted")
    assert daemon.get("/api/v1/services")[1]["recovery_hold"] is None
    for i in range(4):
        assert recoveries(daemon, f"s{i}") == [], "medic restarted a service an operator fixed"
    # One start each: four by the operator, one by medic; the sixth never stopped.
    assert [len(c.starts) for c in counters] == [1, 1, 1, 1, 1, 0]


APPROVAL_PLAYBOOK = """
description: restart only after an operator says yes
failure_types: [service_crash]
approval: required
approval_timeout: {timeout}
steps:
  - {{action: restart_container, timeout: 10s}}
  - {{action: wait_healthy, timeout: 5s}}
"""


@pytest.mark.parametrize("decision", ["approve", "reject", "expire"])
def test_approval_required_waits_for_the_operator(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Counter,
    decision: str,
) -> None:
    web = container_factory(name="web")
    starts = start_counter(web.id)
    timeout = "2s" if decision == "expire" else "1m"
    recovery = "{max_attempts: 5, window: 10m, backoff: {initial: 1m}}"
    careful = {"careful": APPROVAL_PLAYBOOK.format(timeout=timeout)}
    daemon = watching(medic_daemon, "web", web, recovery, careful)
    wait_status(daemon, "web", "healthy")
    web.kill_process()
    waiting = wait_for(
        lambda: (r := recoveries(daemon)) and r[0]["outcome"] == "waiting_approval" and r[0],
        15,
        message="a recovery waits for approval",
    )
    assert service(daemon, "web")["status"] == "held"
    assert daemon.find_logs(event="recovery.approval_required")
    rec_id = waiting["id"]
    if decision == "expire":
        wait_for(lambda: recoveries(daemon)[0]["outcome"] == "expired", 10, message="expired")
        assert "nobody approved" in recoveries(daemon)[0]["detail"]
        assert len(starts.starts) == 0
    elif decision == "reject":
        code, body = daemon.post(f"/api/v1/recoveries/{rec_id}/reject", token="tok")
        assert code == 200 and body["outcome"] == "rejected"
        wait_for(lambda: daemon.find_logs(event="recovery.failed", outcome="rejected"), 10)
        no_new_starts([starts], 1.0)
        assert web.status == "exited"
    else:
        assert len(starts.starts) == 0
        code, body = daemon.post(f"/api/v1/recoveries/{rec_id}/approve", token="tok")
        assert code == 200 and body["outcome"] == "running"
        wait_for(lambda: recoveries(daemon)[0]["outcome"] == "succeeded", 15, message="healed")
        assert web.status == "running"
        assert daemon.post(f"/api/v1/recoveries/{rec_id}/approve", token="tok")[0] == 409
    assert daemon.post("/api/v1/recoveries/9999/approve", token="tok")[0] == 404
