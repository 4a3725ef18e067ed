"""The Docker engine stopped and started while medic runs, on a Docker engine
of the test's own (a second ``dockerd`` with its own socket, data and exec
roots, no bridge; never the shared one).

What an operator sees: the recovery that was running when the engine went
away ends with a clear outcome saying so (not a traceback); nothing is
burnt against an engine that is not there; a container that crashed while
the engine was away is healed once it is back (medic re-reads every watched
container on reconnect); and Docker's events are followed again (a crash
after the return is healed at once, long before the next periodic check).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.helpers import SETUP_HINT, TEST_IMAGE, kill_container_process, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

ENGINE_START_S = 60.0


@dataclass
class PrivateEngine:
    """A ``dockerd`` of this test alone, stopped and started by its PID."""

    root: Path
    bridge: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    def argv(self) -> list[str]:
        return [
            "dockerd",
            "--host", self.host,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "docker.pid"),
            # A bridge of its own: ``--bridge=none`` would delete the host's docker0,
            # which the shared engine's containers use.
            "--bridge", self.bridge, "--iptables=false", "--ip6tables=false",
            "--ip-forward=false", "--ip-masq=false",
            "--live-restore",  # containers outlive the engine, as on a real host
        ]  # fmt: skip

    def start(self) -> None:
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, start_new_session=True)
        wait_for(self._answers, ENGINE_START_S, interval=0.2, message="dockerd did not start")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"dockerd exited ({self.proc.returncode}):\n{log}", pytrace=False)
        client = docker.DockerClient(base_url=self.host, timeout=10)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def containerd_pids(self) -> list[int]:
        """The containerd this engine started (it stays up with ``--live-restore``)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                if cmdline[0].endswith(b"containerd") and str(self.root).encode() in b" ".join(
                    cmdline
                ):
                    found.append(int(entry.name))
        return found


@pytest.fixture
def engine(docker_client: docker.DockerClient, test_image: str) -> Iterator[PrivateEngine]:
    assert shutil.which("dockerd"), f"dockerd is missing; {SETUP_HINT}"
    tag = secrets.token_hex(3)
    root = Path(f"/tmp/medic-engine-{tag}")  # short: a socket path
    root.mkdir()
    engine = PrivateEngine(root, bridge=f"mdk{tag}")
    try:
        _ip("link", "add", "name", engine.bridge, "type", "bridge")
        _ip("addr", "add", f"192.168.{200 + secrets.randbelow(50)}.1/24", "dev", engine.bridge)
        engine.start()
        saved = subprocess.run(["docker", "save", test_image], capture_output=True, check=True)
        subprocess.run(["docker", "-H", engine.host, "load"], input=saved.stdout, check=True)
        yield engine
    finally:
        _tear_down(engine)


def _tear_down(engine: PrivateEngine) -> None:
    """Remove the containers, stop dockerd and its containerd, unmount, delete."""
    try:
        if engine.proc is not None and engine.proc.poll() is not None:
            engine.start()
        client = docker.DockerClient(base_url=engine.host, timeout=60)
        for row in client.api.containers(all=True):
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(row["Id"], force=True)
        client.close()
    finally:
        engine.stop()
        for pid in engine.containerd_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not engine.containerd_pids(), 30, message="containerd did not stop")
        for mounted in ("exec", "data"):
            subprocess.run(["umount", "-R", str(engine.root / mounted)], capture_output=True)
        shutil.rmtree(engine.root, ignore_errors=True)
        subprocess.run(["ip", "link", "delete", engine.bridge], capture_output=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


PLAYBOOKS = {
    "restart-container": """
name: restart-container
failure_types: [service_crash]
steps:
  - {action: restart_container, timeout: 20s}
  - {action: wait_healthy, timeout: 20s}
""",
    "slow-restart": """
name: slow-restart
steps:
  - {action: sleep, duration: 3s}
  - {action: restart_container, timeout: 20s}
  - {action: wait_healthy, timeout: 20s}
""",
}


def _config(port: int, names: dict[str, str]) -> str:
    services = "\n".join(
        f"  {service}:\n    check: {{type: container}}\n    container: {container}"
        + ("\n    recovery: {service_crash: slow-restart}" if service == "mid" else "")
        for service, container in names.items()
    )
    return f"""
api: {{listen: "127.0.0.1:{port}"}}
playbooks_dir: playbooks
monitoring:
  health_check_interval: 10m
  failure_threshold: 1
  recovery:
    max_attempts: 5
    backoff: {{initial: 1s, factor: 1, max: 1s, jitter: 0}}
services:
{services}
"""


def _recoveries(daemon: DaemonProcess, service: str) -> list[dict[str, Any]]:
    code, body = daemon.get(f"/api/v1/recoveries?service={service}&limit=50")
    assert code == 200, body
    return list(body["recoveries"])


def _healed(daemon: DaemonProcess, service: str) -> bool:
    recs = _recoveries(daemon, service)
    return bool(recs) and recs[0]["outcome"] == "succeeded"


def test_engine_stopped_and_started_mid_recovery(
    engine: PrivateEngine, medic_daemon: DaemonFactory
) -> None:
    client = docker.DockerClient(base_url=engine.host, timeout=30)
    prefix = f"medic-test-{secrets.token_hex(3)}"
    names = {s: f"{prefix}-{s}" for s in ("mid", "away", "after")}
    for container in names.values():
        client.containers.run(
            TEST_IMAGE, ["sleep", "100000"], name=container, detach=True, init=True,
            network_mode="none", restart_policy={"Name": "no"},
        )  # fmt: skip
    daemon = medic_daemon(
        _config(medic_daemon.new_port(), names),
        playbooks=PLAYBOOKS,
        env={"DOCKER_HOST": engine.host},
    )
    wait_for(
        lambda: all(daemon.get(f"/api/v1/services/{s}")[1]["status"] == "healthy" for s in names),
        20,
        message="the services did not become healthy",
    )
    daemon.wait_for_log(event="docker.connected")
    away_pid = int(client.api.inspect_container(names["away"])["State"]["Pid"])

    # A crash; its recovery sleeps 3 s before it restarts the container: the engine goes then.
    kill_container_process(client, names["mid"])
    daemon.wait_for_log(event="recovery.started", service="mid")
    engine.stop()
    os.kill(away_pid, signal.SIGKILL)  # a crash while the engine is away

    ended = wait_for(
        lambda: (r := _recoveries(daemon, "mid")) and r[0]["outcome"] != "running" and r[0],
        30,
        message="the recovery cut off by the engine did not end",
    )
    assert ended["outcome"] == "failed", ended
    assert "Docker engine unreachable" in ended["detail"], ended["detail"]
    assert "Traceback" not in daemon.log_text()
    time.sleep(3)  # backoff is 1 s: nothing may be tried against an engine that is not there
    assert len(_recoveries(daemon, "mid")) == 1, "recoveries were burnt on an absent engine"
    assert daemon.get("/api/v1/services/mid")[1]["circuit"] == "closed"

    engine.start()
    # Re-read on reconnect: both the cut-off service and the crash while away are healed.
    wait_for(lambda: _healed(daemon, "away"), 30, message="the crash while away was missed")
    wait_for(lambda: _healed(daemon, "mid"), 30, message="the cut-off service was not healed")
    for service in ("mid", "away"):
        state = client.api.inspect_container(names[service])["State"]
        assert state["Running"], (service, state)

    # Events are followed again: a crash now is healed at once, not at the 10-minute check.
    kill_container_process(client, names["after"])
    wait_for(lambda: _healed(daemon, "after"), 15, message="events were not followed again")
    assert daemon.running
    client.close()
