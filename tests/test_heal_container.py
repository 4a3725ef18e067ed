"""End to end on a real Docker engine: medic notices a crashed or hung
container, restarts it with the restart-container playbook, and shows what it
did in the status API and the metrics."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle
from tests.plugins.http import http_request

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"


def web_config(
    api_port: int, container: ContainerHandle, *, interval: str = "1s", extra: str = ""
) -> str:
    return f"""
api: {{listen: 127.0.0.1:{api_port}}}
monitoring:
  health_check_interval: {interval}
  timeout: 1s
  failure_threshold: 2
  recovery: {{max_attempts: 5, window: 10m, backoff: {{initial: 200ms}}}}
{extra}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  web:
    check: {{type: http, url: "{container.url}healthz", expect_status: [200]}}
    container: {container.name}
"""


def answers_200(url: str) -> bool:
    try:
        status, _ = http_request(url, timeout=1.0)
    except OSError:
        return False
    return status == 200


def recoveries(daemon: DaemonProcess) -> list[dict[str, Any]]:
    status, body = daemon.get("/api/v1/recoveries")
    assert status == 200
    return list(body["recoveries"])


def finished_recoveries(
    daemon: DaemonProcess, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        found = [r for r in recoveries(daemon) if r["outcome"] != "running"]
        return found if len(found) >= count else None

    return wait_for(done, timeout, interval=0.1, message=f"{count} finished recoveries")


def metric_samples(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = daemon.get("/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def wait_service(daemon: DaemonProcess, status: str, timeout: float = 15) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        code, body = daemon.get("/api/v1/services/web")
        return body if code == 200 and body["status"] == status else None

    return wait_for(check, timeout, interval=0.1, message=f"service web {status}")


@pytest.fixture
def web(container_factory: ContainerFactory, idle_container: Any) -> ContainerHandle:
    return container_factory(name="web")


def assert_healed_crash(daemon: DaemonProcess, web: ContainerHandle) -> dict[str, Any]:
    wait_for(lambda: answers_200(f"{web.url}healthz"), 15, message="web answers 200 again")
    record = finished_recoveries(daemon, 1)[0]
    assert record["service"] == "web"
    assert record["failure_type"] == "service_crash"
    assert record["playbook"] == "restart-container"
    assert record["outcome"] == "succeeded", record
    assert [s["action"] for s in record["steps"]] == ["restart_container", "wait_healthy"]
    assert web.status == "running"
    _, status = daemon.get("/api/v1/status")
    history = status["recovery_history"][0]
    assert (
        history["service"],
        history["failure_type"],
        history["playbook"],
        history["outcome"],
    ) == ("web", "service_crash", "restart-container", "succeeded")
    assert status["health_status"]["web"]["status"] == "healthy"
    return record


def test_docker_kill_is_a_crash_and_is_healed(
    medic_daemon: DaemonFactory, web: ContainerHandle
) -> None:
    # A 30 s poll interval: only Docker's die event can explain a heal within seconds.
    daemon = medic_daemon(web_config(free_port(), web, interval="30s"))
    wait_service(daemon, "healthy")
    web.container.kill()
    assert_healed_crash(daemon, web)
    samples = metric_samples(daemon)
    key = (
        "medic_recoveries_total",
        (("outcome", "succeeded"), ("playbook", "restart-container"), ("service", "web")),
    )
    assert samples[key] == 1.0
    assert samples[("medic_service_up", (("service", "web"),))] == 1.0
    assert (
        samples[
            ("medic_check_failures_total", (("failure_type", "service_crash"), ("service", "web")))
        ]
        >= 1
    )


def test_sigkill_of_the_process_from_the_host_is_healed(
    medic_daemon: DaemonFactory, web: ContainerHandle
) -> None:
    daemon = medic_daemon(web_config(free_port(), web, interval="30s"))
    wait_service(daemon, "healthy")
    web.kill_process()
    record = assert_healed_crash(daemon, web)
    assert record["facts"]["exit_code"] == 137


def test_paused_container_is_a_timeout_and_is_healed(
    medic_daemon: DaemonFactory, web: ContainerHandle
) -> None:
    daemon = medic_daemon(web_config(free_port(), web, interval="500ms"))
    wait_service(daemon, "healthy")
    web.container.pause()
    wait_for(
        lambda: answers_200(f"{web.url}healthz"), 30, interval=0.2, message="web answers again"
    )
    record = finished_recoveries(daemon, 1)[0]
    assert record["failure_type"] == "connection_timeout"
    assert record["outcome"] == "succeeded"
    assert web.status == "running"


CRASH_LOOP_PLAYBOOK = """
description: restart the container; give it two seconds to become healthy
failure_types: [service_crash]
steps:
  - {action: restart_container, timeout: 10s}
  - {action: wait_healthy, timeout: 2s}
"""


def test_crash_loop_gets_max_attempts_then_the_circuit_opens(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Any,
) -> None:
    looping = container_factory(name="loop", command="sleep 0.3; exit 3", publish=False)
    counter = start_counter(looping.id)
    port = free_port()
    config = f"""
api: {{listen: 127.0.0.1:{port}}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 3, window: 10m, backoff: {{initial: 200ms, factor: 1}}}}
playbooks_dir: playbooks
services:
  loop:
    check: {{type: container}}
    container: {looping.name}
"""
    daemon = medic_daemon(config, playbooks={"restart-container": CRASH_LOOP_PLAYBOOK})

    def circuit_open() -> bool:
        _, body = daemon.get("/api/v1/services/loop")
        return bool(body["circuit"] == "open")

    wait_for(circuit_open, 40, interval=0.2, message="the circuit opens")
    samples = metric_samples(daemon)
    assert samples[("medic_circuit_open", (("service", "loop"),))] == 1.0
    rows = finished_recoveries(daemon, 3)
    assert len(rows) == 3
    # Each restart "works" (the container runs for 0.3 s), so only the attempt
    # budget per window can stop the loop: that is what is under test.
    assert [r["outcome"] for r in rows] == ["succeeded"] * 3
    # No restart storm: watch for 10 check intervals after the circuit opened.
    settled = len(counter.starts)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert len(counter.starts) == settled, (
            "medic restarted the container after the circuit opened"
        )
        time.sleep(0.1)
    assert settled == 3, f"expected exactly 3 restarts by medic, Docker saw {settled}"
    assert len(recoveries(daemon)) == 3
    held = daemon.find_logs(event="circuit.opened")
    assert held and held[0]["service"] == "loop"


def test_dry_run_records_steps_and_touches_nothing(
    medic_daemon: DaemonFactory, web: ContainerHandle, start_counter: Any
) -> None:
    daemon = medic_daemon(web_config(free_port(), web, interval="30s"), extra_args=["--dry-run"])
    wait_service(daemon, "healthy")
    counter = start_counter(web.id)
    web.container.kill()
    record = finished_recoveries(daemon, 1)[0]
    assert record["outcome"] == "dry_run"
    assert record["dry_run"] is True
    assert [s["outcome"] for s in record["steps"]] == ["dry_run", "dry_run"]
    assert web.name in record["steps"][0]["description"]
    assert web.status == "exited"
    assert counter.starts == []


def test_docker_engine_away_is_reported_and_the_daemon_keeps_serving(
    medic_daemon: DaemonFactory, web: ContainerHandle, tmp_path: Path
) -> None:
    port = free_port()
    config = f"""
api: {{listen: 127.0.0.1:{port}}}
monitoring: {{health_check_interval: 300ms}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  box:
    check: {{type: container}}
    container: {web.name}
"""
    daemon = medic_daemon(config, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})

    def unknown_with_reason() -> dict[str, Any] | None:
        _, body = daemon.get("/api/v1/services/box")
        last = body["last_check"]
        return body if last and "Docker engine unreachable" in last["detail"] else None

    body = wait_for(unknown_with_reason, 10, message="the check reports the engine unreachable")
    assert body["status"] == "unknown"
    assert recoveries(daemon) == []
    assert daemon.get("/api/v1/health")[0] == 200
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait() == 0


class UnixProxy:
    """A unix-socket relay to the real Docker socket, started and stopped at will,
    so the engine can be 'away' and 'back' for the daemon under test."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def start(self) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        self._conns.clear()
        self.path.unlink(missing_ok=True)


def test_medic_picks_the_engine_up_again_when_it_comes_back(
    medic_daemon: DaemonFactory, web: ContainerHandle, tmp_path: Path
) -> None:
    proxy = UnixProxy(tmp_path / "docker.sock")
    proxy.start()
    try:
        daemon = medic_daemon(
            web_config(free_port(), web, interval="30s"),
            env={"DOCKER_HOST": f"unix://{proxy.path}"},
        )
        wait_service(daemon, "healthy")
        daemon.wait_for_log(event="docker.connected")
        proxy.stop()  # the engine goes away: the event stream breaks
        daemon.wait_for_log(event="docker.unreachable")
        assert daemon.get("/api/v1/health")[0] == 200
        proxy.start()  # ... and comes back
        wait_for(
            lambda: len(daemon.find_logs(event="docker.connected")) >= 2,
            20,
            message="the event listener reconnects",
        )
        web.container.kill()  # only the re-established event stream can notice this (30 s poll)
        assert_healed_crash(daemon, web)
    finally:
        proxy.stop()
