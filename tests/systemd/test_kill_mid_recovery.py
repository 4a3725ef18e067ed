"""medic SIGKILLed under systemd in the middle of a recovery, with 1,000
services configured: systemd restarts it (``Restart=on-failure``), the
recovery it cut off is recorded ``interrupted``, and the next attempt heals
the service.

The service being healed is a ``process:`` service medic adopted through its
pidfile (another tool started it, in a unit of its own, so it outlives medic):
it hangs (SIGSTOP), its recovery is a playbook that first collects
diagnostics for a few seconds, and the kill lands then, as the OOM killer's
would, on medic's main process alone. The 999 other services are cheap tcp
checks against a local TCP sink (a listener with a deep backlog that accepts
and closes: a thousand checks starting together must not look like a host
problem to the blast-radius guardrail).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import wait_for
from tests.systemd.conftest import API_TOKEN, FILES, wait_active
from tests.systemd.host import SystemdHost

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(400)]

SERVICES = 1000
SINK_PORT = 8082
SINK = "/usr/local/lib/medic-test/tcp_sink.py"
SINK_SCRIPT = f"""import socket
server = socket.create_server(("127.0.0.1", {SINK_PORT}), backlog=4096)
while True:
    server.accept()[0].close()
"""
SINK_UNIT = f"""[Unit]
Description=medic test: accepts TCP connections on 127.0.0.1:{SINK_PORT} and closes them

[Service]
ExecStart=/usr/bin/python3 {SINK}
"""
WORKER_PORT = 8095
PIDFILE = "/run/legacy-worker/pid"
WORKER = "/usr/local/lib/medic-test/legacy_worker.py"

PLAYBOOK = """
name: diagnose-then-restart
failure_types: [connection_timeout]
steps:
  - {name: collect diagnostics, action: run_command, command: [sleep, "6"], timeout: 20s}
  - {action: restart_process, stop_timeout: 2s}
  - {action: wait_healthy, timeout: 20s}
"""


def _config() -> str:
    cheap = "\n".join(
        f"  svc-{i:04d}:\n    check: {{type: tcp, host: 127.0.0.1, port: {SINK_PORT}}}"
        "\n    interval: 20s"
        for i in range(SERVICES - 1)
    )
    return f"""
daemon: {{state_dir: /var/lib/medic, log_format: json}}
api: {{listen: 127.0.0.1:8321, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 1s
  timeout: 1s
  failure_threshold: 2
  recovery: {{max_attempts: 10, window: 10m, backoff: {{initial: 1s, factor: 1, max: 1s}}}}
playbooks_dir: playbooks
services:
  worker:
    check: {{type: http, url: "http://127.0.0.1:{WORKER_PORT}/", timeout: 1s}}
    process:
      command: [/usr/bin/python3, {WORKER}, "{WORKER_PORT}", {PIDFILE}]
      pidfile: {PIDFILE}
      stop_timeout: 2s
    recovery: {{connection_timeout: diagnose-then-restart, service_crash: diagnose-then-restart}}
{cheap}
"""


def _recoveries(host: SystemdHost) -> list[dict[str, Any]]:
    status, body = host.api("/api/v1/recoveries?service=worker&limit=50")
    assert status == 200, body
    return list(body["recoveries"])


def _api_up(host: SystemdHost) -> bool:
    done = host.run("curl", "-sf", "--max-time", "2", "http://127.0.0.1:8321/api/v1/health")
    return done.returncode == 0


@pytest.fixture(scope="module")
def crowded(systemd_host: SystemdHost, installed: str) -> SystemdHost:
    """medic watching 1,000 services, one of them the adopted legacy worker."""
    host = systemd_host
    host.write(SINK, SINK_SCRIPT)
    host.write("/etc/systemd/system/tcp-sink.service", SINK_UNIT)
    host.write(WORKER, (FILES / "legacy_worker.py").read_text())
    host.systemctl("daemon-reload")
    host.systemctl("start", "tcp-sink")
    host.check(
        "systemd-run", "--unit=legacy-worker", "--property=RuntimeDirectory=legacy-worker",
        "/usr/bin/python3", WORKER, str(WORKER_PORT), PIDFILE,
    )  # fmt: skip
    wait_for(lambda: host.run("test", "-s", PIDFILE).returncode == 0, 15, 0.1, "no pidfile")
    host.write("/etc/medic/medic.env", f"MEDIC_API_TOKEN={API_TOKEN}\n", mode=0o600)
    host.write("/etc/medic/playbooks/diagnose-then-restart.yaml", PLAYBOOK)
    host.write("/etc/medic/config.yaml", _config())
    host.systemctl("restart", "medic", timeout=120)
    wait_active(host)
    return host


def test_sigkill_mid_recovery_under_systemd_with_1000_services(crowded: SystemdHost) -> None:
    host = crowded
    status, body = host.api("/api/v1/services")
    assert status == 200 and len(body["services"]) == SERVICES
    wait_for(
        lambda: all(s["status"] == "healthy" for s in host.api("/api/v1/services")[1]["services"]),
        60, 0.5, "the 1,000 services did not all become healthy",
    )  # fmt: skip
    wait_for(
        lambda: host.api("/api/v1/services/worker")[1]["status"] == "healthy",
        60, 0.5, "the worker did not become healthy",
    )  # fmt: skip
    restarts = int(host.prop("medic", "NRestarts"))
    main_pid = host.prop("medic", "MainPID")

    host.sh(f"kill -STOP $(cat {PIDFILE})")  # the worker hangs
    cut = wait_for(
        lambda: next((r for r in _recoveries(host) if r["outcome"] == "running"), None),
        60, 0.2, "no recovery of the hung worker started",
    )  # fmt: skip
    cursor = host.cursor()
    host.systemctl("kill", "--kill-who=main", "--signal=SIGKILL", "medic")

    # systemd restarts it; the restarted medic answers again.
    wait_for(lambda: int(host.prop("medic", "NRestarts")) == restarts + 1, 60, 0.2, "no restart")
    wait_active(host)
    wait_for(lambda: _api_up(host), 120, 0.5, "the restarted medic did not answer")
    assert host.prop("medic", "MainPID") != main_pid
    messages = [str(e.get("MESSAGE", "")) for e in host.journal("medic", since_cursor=cursor)]
    assert any("status=9/KILL" in m for m in messages), messages[-20:]

    # The cut-off recovery is interrupted; the next attempt heals the worker.
    def healed() -> dict[str, Any] | None:
        later = [r for r in _recoveries(host) if r["id"] > cut["id"]]
        return next((r for r in later if r["outcome"] == "succeeded"), None)

    fixed = wait_for(healed, 90, 0.5, "the next attempt did not heal the worker")
    entries = host.journal("medic", since_cursor=cursor)
    assert not any('"host_hold.entered"' in str(e.get("MESSAGE", "")) for e in entries)
    first = next(r for r in _recoveries(host) if r["id"] == cut["id"])
    assert first["outcome"] == "interrupted", first
    assert fixed["playbook"] == "diagnose-then-restart"
    assert host.api("/api/v1/services/worker")[1]["status"] == "healthy"
    answer = host.run("curl", "-sf", "--max-time", "2", f"http://127.0.0.1:{WORKER_PORT}/")
    assert answer.stdout == "ok\n"
