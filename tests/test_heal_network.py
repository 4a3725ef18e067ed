"""End to end: a network blip (connections reset) is classified
``network_failure`` and the shipped ``network-failure`` playbook waits it out
with re-checks instead of restarting anything.

The blip is real TCP on 127.0.0.1: a server that resets every connection
(``SO_LINGER`` 0) until the test lets it answer HTTP again.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class FlakyServer:
    """Answers HTTP 200, or resets every connection while ``resetting`` is set."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.resetting = threading.Event()
        self.resets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                if self.resetting.is_set():
                    # Linger 0: close() sends RST instead of FIN.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.resets += 1
                    continue
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(OK_RESPONSE)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    server = FlakyServer()
    yield server
    server.close()


def _recoveries(daemon: DaemonProcess) -> list[dict[str, Any]]:
    status, body = daemon.get("/api/v1/recoveries?service=api")
    assert status == 200, body
    return list(body["recoveries"])


def test_network_blip_is_waited_out_without_restarting(
    medic_daemon: DaemonFactory, flaky: FlakyServer
) -> None:
    daemon = medic_daemon(
        f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 1s
  timeout: 2s
  failure_threshold: 1
playbooks_dir: {REPO_PLAYBOOKS}
services:
  api:
    check: {{type: http, url: "http://127.0.0.1:{flaky.port}/health"}}
"""
    )
    wait_for(lambda: daemon.get("/api/v1/services/api")[1]["status"] == "healthy", 15)

    flaky.resetting.set()
    running = wait_for(
        lambda: [r for r in _recoveries(daemon) if r["outcome"] == "running"],
        15,
        message="network-failure recovery running",
    )[0]
    assert running["failure_type"] == "network_failure", running
    assert running["playbook"] == "network-failure"
    resets_while_waiting = flaky.resets
    wait_for(lambda: flaky.resets > resets_while_waiting, 10, message="re-checks keep probing")

    flaky.resetting.clear()  # the blip passes by itself
    record = wait_for(
        lambda: next((r for r in _recoveries(daemon) if r["outcome"] != "running"), None),
        30,
        message="recovery finished",
    )
    assert record["outcome"] == "succeeded", record
    assert [(s["action"], s["outcome"]) for s in record["steps"]] == [("wait_healthy", "succeeded")]
    assert daemon.get("/api/v1/services/api")[1]["status"] == "healthy"
