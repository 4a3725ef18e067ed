"""Wall-clock jumps: only monotonic time drives check intervals, backoff, the
attempt window and the circuit's cooldown; interval schedules keep their wait.

Debian's ``faketime`` (libfaketime) moves the wall clock of medic's process
alone, an hour forward and then two hours back while it runs; its monotonic
clock is left alone (``FAKETIME_DONT_FAKE_MONOTONIC=1``). The machine's clock
is never touched. Everything is measured on the test's own monotonic clock, by
a small HTTP server that medic's checks and playbook steps call.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import SETUP_HINT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
BACKOFF_S = 3.0
COOLDOWN_S = 5.0
INTERVAL_S = 1.0
WORKFLOW_EVERY_S = 3.0


class Hits:
    """A local HTTP server that records when each path was called (monotonic)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        hits = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with hits._lock:
                    hits.times.setdefault(self.path, []).append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def of(self, path: str) -> list[float]:
        with self._lock:
            return list(self.times.get(path, []))

    def wait_count(self, path: str, count: int, timeout: float) -> list[float]:
        return wait_for(
            lambda: (t := self.of(path)) and len(t) >= count and t,
            timeout,
            message=f"{path} was not called {count} times",
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hits() -> Iterator[Hits]:
    server = Hits()
    yield server
    server.close()


def _config(hits: Hits, port: int) -> str:
    return f"""
daemon: {{log_level: debug}}
api: {{listen: "127.0.0.1:{port}"}}
playbooks_dir: playbooks
monitoring:
  health_check_interval: {INTERVAL_S:g}s
  failure_threshold: 1
  recovery:
    max_attempts: 3
    window: 10m
    backoff: {{initial: {BACKOFF_S:g}s, factor: 1, max: {BACKOFF_S:g}s, jitter: 0}}
    reset_after: 10m
    circuit_cooldown: {COOLDOWN_S:g}s
    circuit_cooldown_max: {COOLDOWN_S:g}s
services:
  steady:
    check: {{type: http, url: "{hits.url}/steady"}}
  flaky:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
    recovery: {{service_crash: poke}}
workflows:
  tick:
    schedule: {{interval: {WORKFLOW_EVERY_S:g}s}}
    steps:
      - {{name: ping, action: http_request, method: POST, url: "{hits.url}/wf", timeout: 5s}}
"""


POKE = """
name: poke
failure_types: [service_crash]
steps:
  - {action: http_request, method: POST, url: "URL/attempt", timeout: 5s}
"""


def _jump(clock_file: Path, offset: str) -> None:
    tmp = clock_file.with_suffix(".new")
    tmp.write_text(f"{offset}\n")
    tmp.replace(clock_file)


def _skew(daemon: DaemonProcess) -> float:
    """How far medic's wall clock is from the machine's, in seconds."""
    stamp = daemon.get("/api/v1/health")[1]["timestamp"]
    return datetime.fromisoformat(stamp).timestamp() - time.time()


def test_wall_clock_jumps_change_no_interval_backoff_window_or_cooldown(
    medic_daemon: DaemonFactory, hits: Hits, tmp_path: Path
) -> None:
    assert LIBFAKETIME.exists(), f"libfaketime is missing; {SETUP_HINT}"
    clock_file = tmp_path / "faketime"
    _jump(clock_file, "+0")
    port = medic_daemon.new_port()
    daemon = medic_daemon(
        _config(hits, port),
        playbooks={"poke": POKE.replace("URL", hits.url)},
        env={
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(clock_file),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_CACHE_DURATION": "0",
            "FAKETIME_NO_CACHE": "1",
        },
    )

    first = hits.wait_count("/attempt", 1, 20)[0]
    _jump(clock_file, "+1h")  # an hour forward in the backoff after attempt 1
    wait_for(lambda: _skew(daemon) > 3000, 5, message="medic's wall clock did not move")
    second = hits.wait_count("/attempt", 2, 20)[1]
    third = hits.wait_count("/attempt", 3, 20)[2]
    assert second - first >= BACKOFF_S - 0.5, "the backoff expired early after a jump forward"
    assert third - second >= BACKOFF_S - 0.5
    assert third - second <= BACKOFF_S + 3

    # Three attempts within the window, however far the wall clock went: the circuit opens.
    wait_for(
        lambda: daemon.get("/api/v1/services/flaky")[1]["circuit"] == "open",
        10,
        message="the circuit did not open after max_attempts",
    )
    opened = time.monotonic()
    _jump(clock_file, "-1h")  # two hours back while the circuit cools down
    wait_for(lambda: _skew(daemon) < -3000, 5, message="medic's wall clock did not move")
    probation = hits.wait_count("/attempt", 4, COOLDOWN_S + 10)[3]
    assert probation - opened <= COOLDOWN_S + 3, "the cooldown lasted longer"
    assert probation - third >= COOLDOWN_S - 0.5, "the cooldown ended early"

    # The periodic checks kept their interval through both jumps.
    time.sleep(3 * INTERVAL_S)
    # (From the second periodic round on: the first check at start runs at once,
    # then the service's own phase begins.)
    since = first + 2 * INTERVAL_S
    steady = [t for t in hits.of("/steady") if t >= since]
    gaps = [b - a for a, b in itertools.pairwise(steady)]
    assert len(steady) >= (time.monotonic() - since) / INTERVAL_S - 2
    assert max(gaps) < INTERVAL_S + 0.6, gaps
    assert min(gaps) > INTERVAL_S - 0.6, gaps
    # And so did the scheduled workflow (APScheduler's interval job).
    runs = hits.of("/wf")
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert len(runs) >= (runs[-1] - runs[0]) / WORKFLOW_EVERY_S and len(runs) >= 4, runs
    assert max(gaps) < WORKFLOW_EVERY_S + 1.5, gaps
    assert min(gaps) > WORKFLOW_EVERY_S - 1.5, gaps
    assert not daemon.find_logs(event="workflow.skipped")
    assert daemon.find_logs(event="clock.jumped")
    assert daemon.running
