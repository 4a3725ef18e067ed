"""A probe that began before news it could not see does not decide the verdict.

Found by the soak (``bench/soak.py``): a check that reached a container while
it was being restarted (or before an operator started it again) hung until its
timeout and ended after the container was healthy again, after a reset even;
applied, that stale ``connection_timeout`` started another recovery, which
restarted a healthy container. Here the service is a real HTTP server that
hangs one request on purpose; the operator's reset is the news."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "stale-probe-token"

NOOP = """
description: change nothing (any recovery here would be the bug)
failure_types: [connection_timeout, unhealthy_response, service_crash]
steps:
  - {action: run_command, command: ["true"]}
"""


class Server:
    """Answers 200 (503 while ``failing`` is set), or (``hang`` set) holds the next
    request for 5 s first."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.failing = threading.Event()
        self.port = free_port()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.hang.is_set():
                    outer.hang.clear()
                    time.sleep(5.0)
                self.send_response(503 if outer.failing.is_set() else 200)
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def start_healthy(
    medic_daemon: DaemonFactory, server: Server, playbooks: dict[str, str]
) -> DaemonProcess:
    """A daemon checking ``server`` only when asked (failing once is enough), seen healthy."""
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 1h
  timeout: 2s
  failure_threshold: 1
playbooks_dir: playbooks
services:
  web:
    check: {{type: http, url: "http://127.0.0.1:{server.port}/"}}
"""
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN}, playbooks=playbooks)
    wait_for(lambda: daemon.get("/api/v1/services/web")[1]["status"] == "healthy", 15)
    return daemon


def test_a_probe_from_before_a_reset_does_not_start_a_recovery(
    medic_daemon: DaemonFactory, server: Server
) -> None:
    daemon = start_healthy(medic_daemon, server, {"noop": NOOP})

    # The operator's check reaches the server while it hangs (a container mid-restart)...
    server.hang.set()
    checked: list[object] = []
    thread = threading.Thread(
        target=lambda: checked.append(daemon.post("/api/v1/services/web/check", token=TOKEN))
    )
    thread.start()
    wait_for(lambda: not server.hang.is_set(), 5, message="the probe reached the server")
    # ...which is well again by the time the operator resets it: news the probe cannot see.
    status, _ = daemon.post("/api/v1/services/web/reset", token=TOKEN)
    assert status == 200
    thread.join(timeout=10)
    assert checked, "the check call answered"

    time.sleep(1.5)  # the stale probe timed out at 2 s; a fresh one decided
    _, body = daemon.get("/api/v1/recoveries")
    assert body["recoveries"] == [], "a stale timeout started a recovery of a healthy service"
    _, service = daemon.get("/api/v1/services/web")
    assert service["status"] == "healthy"


HEAL_THEN_WAIT = """
description: wait out a moment, see the service healthy, then one more step
failure_types: [connection_timeout, unhealthy_response, service_crash]
steps:
  - {action: run_command, command: ["sleep", "1.5"]}
  - {action: wait_healthy, timeout: 10s}
  - {action: run_command, command: ["sleep", "3"]}
"""


def test_a_probe_older_than_the_recoverys_healthy_one_does_not_leave_it_unresolved(
    medic_daemon: DaemonFactory, server: Server
) -> None:
    """Found by the soak: a periodic probe that began while the container was down
    failed just after ``wait_healthy`` saw it healthy, and that older result made
    the recovery ``unresolved`` (a healthy service reported as failed to heal)."""
    daemon = start_healthy(medic_daemon, server, {"heal": HEAL_THEN_WAIT})

    server.failing.set()
    daemon.post("/api/v1/services/web/check", token=TOKEN)
    wait_for(lambda: _recoveries(daemon) and _recoveries(daemon)[0]["outcome"] == "running", 10)
    # While the first step runs, a check reaches the server and hangs (the stale probe)...
    server.hang.set()
    threading.Thread(
        target=lambda: daemon.post("/api/v1/services/web/check", token=TOKEN), daemon=True
    ).start()
    wait_for(lambda: not server.hang.is_set(), 5, message="the probe reached the server")
    server.failing.clear()  # ...and the service is well again before wait_healthy looks.

    wait_for(lambda: _recoveries(daemon)[0]["outcome"] != "running", 20)
    recovery = _recoveries(daemon)[0]
    assert recovery["outcome"] == "succeeded", recovery
    _, service = daemon.get("/api/v1/services/web")
    assert service["status"] == "healthy"


def _recoveries(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return list(daemon.get("/api/v1/recoveries")[1]["recoveries"])
