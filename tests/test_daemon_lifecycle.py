"""The daemon's lifecycle as an operator and systemd see it: readiness,
watchdog, reload on SIGHUP (kept when the new config is broken), clean exit on
SIGTERM, and the API's basic contract."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def wait_for(self, needle: str, timeout: float = 10) -> str:
        def seen() -> str | None:
            return next((m for m in self.drain() if needle in m.splitlines()), None)

        return wait_for(seen, timeout, interval=0.05, message=f"{needle!r} on NOTIFY_SOCKET")

    def count(self, needle: str) -> int:
        return sum(needle in m.splitlines() for m in self.drain())


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()


def minimal_config(port: int, target_port: int, extra_services: str = "") -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}}}
monitoring: {{health_check_interval: 1s}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  target:
    check: {{type: tcp, port: {target_port}}}
{extra_services}
"""


def test_systemd_notifications_ready_watchdog_reload_stopping(
    medic_daemon: DaemonFactory, notify_socket: NotifySocket, listening_port: int
) -> None:
    port = free_port()
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"}
    daemon = medic_daemon(minimal_config(port, listening_port), env=env, wait_healthy=False)
    ready = notify_socket.wait_for("READY=1")
    # READY=1 means the API answers already: no retry loop needed.
    assert daemon.get("/api/v1/health")[0] == 200
    assert ready
    wait_for(lambda: notify_socket.count("WATCHDOG=1") >= 3, 5, message="three watchdog pings")
    daemon.send_signal(signal.SIGHUP)
    reloading = notify_socket.wait_for("RELOADING=1")
    assert any(line.startswith("MONOTONIC_USEC=") for line in reloading.splitlines())
    notify_socket.wait_for("READY=1")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait() == 0
    notify_socket.wait_for("STOPPING=1")


def test_sighup_with_a_broken_config_keeps_the_old_one(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    port = free_port()
    daemon = medic_daemon(minimal_config(port, listening_port))
    daemon.write_config(
        minimal_config(port, listening_port) + "  broken:\n    check: {type: nope}\n"
    )
    daemon.send_signal(signal.SIGHUP)
    error = daemon.wait_for_log(level="error", event="reload.refused")
    assert error["errors"] == 1
    issue = daemon.find_logs(
        level="error", event="reload.config_error", path="services.broken.check"
    )
    assert issue and "unknown check type 'nope'" in issue[0]["error"]
    assert issue[0]["line"] == 10
    _, services = daemon.get("/api/v1/services")
    assert [s["name"] for s in services["services"]] == ["target"]
    assert daemon.running


def test_sighup_applies_a_valid_config_without_dropping_the_api(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    port = free_port()
    daemon = medic_daemon(minimal_config(port, listening_port))
    added = f"  second:\n    check: {{type: tcp, port: {listening_port}}}\n"
    daemon.write_config(minimal_config(port, listening_port, added))
    daemon.send_signal(signal.SIGHUP)

    def second_healthy() -> bool:
        code, body = daemon.get("/api/v1/services/second")
        return code == 200 and body["status"] == "healthy"

    wait_for(second_healthy, 10, message="the added service is checked")
    daemon.write_config(minimal_config(port, listening_port))
    daemon.send_signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.get("/api/v1/services/second")[0] == 404,
        10,
        message="the removed service is gone",
    )
    assert daemon.wait_for_log(event="config.reloaded")


def test_api_contract_and_metrics(medic_daemon: DaemonFactory, listening_port: int) -> None:
    port = free_port()
    daemon = medic_daemon(minimal_config(port, listening_port))
    wait_for(lambda: daemon.get("/api/v1/services/target")[1]["status"] == "healthy", 10)
    status, body = daemon.get("/api/v1/services/nope")
    assert status == 404
    assert body["error"]["code"] == "SERVICE_NOT_FOUND"
    assert "nope" in body["error"]["message"]
    _, one = daemon.get("/api/v1/services/target")
    for key in ("name", "status", "failure_type", "circuit", "last_check", "next_attempt_at"):
        assert key in one
    assert set(one["last_check"]) >= {"time", "duration", "duration_seconds", "detail"}
    assert one["last_check"]["duration"] == one["last_check"]["duration_seconds"] >= 0
    _, status_body = daemon.get("/api/v1/status")
    assert set(status_body) == {"workflows", "health_status", "recovery_history", "timestamp"}
    assert status_body["health_status"]["target"]["status"] == "healthy"
    assert status_body["health_status"]["target"]["uptime_percentage"] == 100.0
    _, health = daemon.get("/api/v1/health")
    assert health["status"] == "healthy" and "timestamp" in health
    _, recs = daemon.get("/api/v1/recoveries")
    assert recs == {"recoveries": [], "total": 0}
    code, text = daemon.get("/metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "medic_service_up",
        "medic_check_duration_seconds",
        "medic_check_failures",
        "medic_recoveries",
        "medic_circuit_open",
        "medic_recovery_duration_seconds",
    ):
        assert name in families, name
        assert families[name].documentation
    up = [s for s in families["medic_service_up"].samples if s.labels == {"service": "target"}]
    assert up and up[0].value == 1.0
    code, html = daemon.get("/")
    assert code == 200 and "<title>medic status</title>" in html


def test_sigterm_lets_a_running_recovery_finish(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    port = free_port()
    marker = tmp_path / "finished"
    playbook = f"""
description: slow fix that must not be cut short
failure_types: [service_crash]
steps:
  - {{action: run_command, command: [sh, -c, "sleep 1.5; touch {marker}"], timeout: 10s}}
"""
    config = f"""
api: {{listen: 127.0.0.1:{port}}}
monitoring: {{health_check_interval: 200ms, failure_threshold: 1}}
playbooks_dir: playbooks
services:
  gone:
    check: {{type: tcp, port: {free_port()}}}
"""
    daemon = medic_daemon(config, playbooks={"slow-fix": playbook})
    daemon.wait_for_log(event="recovery.started", service="gone")
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=20) == 0
    assert marker.exists(), "SIGTERM cut the running recovery short"
    assert time.monotonic() - started < 10
    assert daemon.find_logs(event="recovery.step", action="run_command", outcome="succeeded")


def test_reload_over_the_api_needs_the_token(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    port = free_port()
    config = minimal_config(port, listening_port).replace(
        f"api: {{listen: 127.0.0.1:{port}}}",
        f"api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}",
    )
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": "s3cret"})
    assert daemon.post("/api/v1/reload")[0] == 401
    assert daemon.post("/api/v1/reload", token="wrong")[0] == 401
    status, body = daemon.post("/api/v1/reload", token="s3cret")
    assert status == 200 and body["reloaded"] is True


def test_control_endpoints_refuse_without_a_configured_token(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    daemon = medic_daemon(minimal_config(free_port(), listening_port))
    status, body = daemon.post("/api/v1/reload", token="anything")
    assert status == 403
    assert body["error"]["code"] == "CONTROL_DISABLED"
    assert "token" in body["error"]["message"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket that listens but never answers: an HTTP probe hangs until its timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(50)
    yield silent.getsockname()[1]
    silent.close()


def stuck_service(port: int, timeout: str) -> str:
    return (
        f"  stuck:\n    check: {{type: http, url: 'http://127.0.0.1:{port}/'}}\n"
        f"    timeout: {timeout}\n    interval: 200ms\n"
    )


def test_a_hanging_check_never_delays_the_others(
    medic_daemon: DaemonFactory, listening_port: int, silent_port: int
) -> None:
    hanging = stuck_service(silent_port, "20s")
    config = minimal_config(free_port(), listening_port, hanging).replace(
        "health_check_interval: 1s", "health_check_interval: 200ms"
    )
    daemon = medic_daemon(config)
    seen: set[str] = set()

    def target_checked_often() -> bool:
        last = daemon.get("/api/v1/services/target")[1]["last_check"]
        if last:
            seen.add(last["time"])
        return len(seen) >= 6

    wait_for(target_checked_often, 3.0, interval=0.05, message="target checked every 200 ms")
    stuck = daemon.get("/api/v1/services/stuck")[1]
    assert stuck["last_check"] is None, "the stuck probe cannot have finished within 20 s"


def test_stopping_with_scheduled_checks_in_flight_logs_no_error(
    medic_daemon: DaemonFactory, listening_port: int, silent_port: int
) -> None:
    hanging = stuck_service(silent_port, "1s")
    daemon = medic_daemon(minimal_config(free_port(), listening_port, hanging))
    # After the first probe timed out, the scheduler starts the next ones:
    # one of its jobs is waiting on a hanging probe when the daemon stops.
    wait_for(
        lambda: daemon.get("/api/v1/services/stuck")[1]["last_check"] is not None,
        10,
        message="the first probe timed out",
    )
    time.sleep(0.5)  # the next scheduled probe is now hanging (it lasts 1 s)
    assert daemon.stop() == 0
    errors = [r for r in daemon.log_lines() if r.get("level") in ("error", "critical")]
    assert errors == [], errors
