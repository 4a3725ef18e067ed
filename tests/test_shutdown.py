"""SIGTERM while a recovery runs: medic closes its API listener at once (a
restarted daemon can bind the port straight away), gives the running step
``daemon.shutdown_grace``, then cancels it; the recovery is ``interrupted``
in the history, the step's process is gone, and medic exits 0. Nothing it
logs while stopping says that it starts a recovery."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import psutil

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

GRACE_S = 2.0
LISTENER_CLOSED_WITHIN_S = 1.0


def config(port: int, tmp: Path) -> str:
    """``web`` fails until ``web-up`` exists and its recovery runs a minute;
    ``other``'s check takes a second and a half, marking when it starts."""
    return f"""
api: {{listen: 127.0.0.1:{port}}}
daemon: {{shutdown_grace: {GRACE_S:g}s}}
monitoring:
  health_check_interval: 200ms
  failure_threshold: 1
  recovery: {{backoff: {{initial: 0s}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: command, command: [test, -e, "{tmp / "web-up"}"]}}
    recovery: {{unhealthy_response: slow}}
  other:
    check:
      type: command
      command: [sh, -c, "touch {tmp / "other-started"}; sleep 1.5; test -e {tmp / "other-up"}"]
      timeout: 10s
"""


SLOW = """
description: A step that runs for a minute.
steps:
  - {action: run_command, command: [sh, -c, "echo $$ > %s; exec sleep 60"], timeout: 5m}
"""


def bindable(port: int) -> bool:
    """Whether a new daemon could listen on the port now (aiohttp sets SO_REUSEADDR too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def records_after(daemon: DaemonProcess, event: str) -> list[dict[str, object]]:
    lines = daemon.log_lines()
    start = next(i for i, r in enumerate(lines) if r.get("event") == event)
    return lines[start:]


def test_sigterm_frees_the_port_at_once_and_interrupts_the_running_step(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    port, step_pid = free_port(), tmp_path / "step.pid"
    (tmp_path / "other-up").touch()
    daemon = medic_daemon(config(port, tmp_path), playbooks={"slow": SLOW % step_pid})
    step = psutil.Process(int(wait_for(lambda: step_pid.read_text().strip(), 15)))
    wait_for(lambda: daemon.get("/api/v1/services/other")[1]["status"] == "healthy", 10)
    # A check of `other` is in flight as medic stops, and it will fail.
    started = tmp_path / "other-started"
    started.unlink(missing_ok=True)
    wait_for(started.exists, 5, message="a check of other started")
    (tmp_path / "other-up").unlink()

    t0 = time.monotonic()
    daemon.send_signal(15)
    wait_for(lambda: bindable(port), 5, interval=0.02, message="the port is free")
    freed_s = time.monotonic() - t0
    assert freed_s < LISTENER_CLOSED_WITHIN_S, f"the port was held {freed_s:.2f}s after SIGTERM"
    assert daemon.running, "medic still gives the running step its grace"

    assert daemon.wait(timeout=GRACE_S + 8) == 0
    assert time.monotonic() - t0 < GRACE_S + 6
    assert not step.is_running() or step.status() == psutil.STATUS_ZOMBIE
    stopping = records_after(daemon, "daemon.stopping")
    said = [str(r.get("message", "")) for r in stopping]
    assert not [m for m in said if "Initiating auto-remediation" in m], said
    assert not [r for r in stopping if r.get("event") == "recovery.started"]
    assert [r["service"] for r in stopping if r.get("event") == "service.unhealthy"] == ["other"]

    (tmp_path / "web-up").touch()
    (tmp_path / "other-up").touch()
    again = medic_daemon(config(port, tmp_path), playbooks={"slow": SLOW % step_pid})
    _, body = again.get("/api/v1/recoveries?service=web")
    (recovery,) = body["recoveries"]
    assert recovery["outcome"] == "interrupted", recovery
