"""Maintenance on real containers: a paused service is checked and shown but
never healed (Docker's own events witness that nothing restarts it, a real
webhook receiver that nothing is said about it but ``maintenance.*``), a
pause survives a restart of medic, a ``maintenance:`` window pauses from its
cron time for its duration, and when a pause ends a failing service is healed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.dockerwatch import StartCounter
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle
from tests.plugins.inprocess import BusWatch, OrchestratorFactory
from tests.test_guardrails_docker import QUICK_RESTART, no_new_starts, service, wait_status
from tests.webhook_receiver import Receiver, running_receiver

Counter = Callable[[str], StartCounter]
TOKEN = "pause-token"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def config(port: int, web: ContainerHandle, receiver: Receiver, maintenance: str = "") -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  timeout: 1s
  failure_threshold: 1
  recovery: {{max_attempts: 5, window: 10m, backoff: {{initial: 100ms}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: container}}
    container: {web.name}
notifications:
  webhooks:
    - {{name: ops, url: "{receiver.url()}", events: ["*"]}}
{maintenance}"""


def medic_cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env.update(MEDIC_API_TOKEN=TOKEN, PYTHONPATH=str(REPO / "daemon"))
    return subprocess.run(
        [sys.executable, "-m", "medic", *args, "--url", daemon.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def about_web(receiver: Receiver) -> list[str]:
    """The events the receiver got about web from its first pause on, in order."""
    names = [d.event for d in receiver.received() if d.json["data"].get("service") == "web"]
    return names[names.index("maintenance.started") :] if "maintenance.started" in names else names


def held_for_maintenance(daemon: DaemonProcess) -> bool:
    holds = service(daemon, "web")["recent_holds"]
    return any(h["data"]["reason"] == "maintenance" for h in holds)


def start(medic_daemon: DaemonFactory, yaml: str) -> DaemonProcess:
    return medic_daemon(
        yaml, playbooks={"restart-container": QUICK_RESTART}, env={"MEDIC_API_TOKEN": TOKEN}
    )


def test_a_paused_container_is_not_healed_even_across_a_restart_and_is_after_resume(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Counter,
    receiver: Receiver,
) -> None:
    web = container_factory(name="web")
    starts = start_counter(web.id)
    yaml = config(free_port(), web, receiver)
    daemon = start(medic_daemon, yaml)
    wait_status(daemon, "web", "healthy")
    done = medic_cli(daemon, "pause", "web", "--for", "1h", "--reason", "db vacuum")
    assert done.returncode == 0, done.stderr
    assert "web: paused until" in done.stdout and "db vacuum" in done.stdout
    state = service(daemon, "web")
    assert state["status"] == "paused"
    assert (state["pause_reason"], state["paused_by"]) == ("db vacuum", "cli")
    assert state["paused_until"] is not None
    receiver.wait("maintenance.started")
    assert 'medic_service_paused{service="web"} 1.0' in daemon.get("/metrics")[1]

    web.kill_process()
    # Still checked: the check sees it down, and the recovery is held for maintenance.
    wait_for(lambda: service(daemon, "web")["last_check"]["healthy"] is False, 10)
    wait_for(lambda: held_for_maintenance(daemon), 10, message="held for maintenance")
    no_new_starts([starts], 2.0)
    assert service(daemon, "web")["status"] == "paused"
    assert about_web(receiver) == ["maintenance.started"]

    # A restart of medic keeps the pause.
    daemon.stop()
    daemon = start(medic_daemon, yaml)
    state = service(daemon, "web")
    assert (state["status"], state["paused_by"]) == ("paused", "cli")
    no_new_starts([starts], 2.0)
    assert about_web(receiver) == ["maintenance.started"]

    code, body = daemon.post("/api/v1/services/web/resume", token=TOKEN)
    assert code == 200 and body["status"] != "paused" and body["paused_by"] is None
    wait_for(lambda: len(starts.starts) == 1, 15, message="healed once resumed")
    wait_status(daemon, "web", "healthy")
    receiver.wait("recovery.succeeded")
    assert about_web(receiver)[:2] == ["maintenance.started", "maintenance.ended"]
    assert 'medic_service_paused{service="web"} 0.0' in daemon.get("/metrics")[1]


def window_now(seconds: float) -> str:
    """A window whose cron time is the start of this minute, ending ``seconds`` from now."""
    now = datetime.now().astimezone()
    into_minute = now.second + now.microsecond / 1e6
    duration = into_minute + seconds
    return (
        "maintenance:\n"
        f'  - {{services: [web], cron: "{now.minute} {now.hour} * * *",'
        f" duration: {duration:.1f}s, reason: nightly backup}}\n"
    )


def test_a_window_open_now_pauses_until_its_end_then_the_service_is_healed(
    medic_daemon: DaemonFactory,
    container_factory: ContainerFactory,
    idle_container: Any,
    start_counter: Counter,
    receiver: Receiver,
) -> None:
    web = container_factory(name="web")
    starts = start_counter(web.id)
    daemon = start(medic_daemon, config(free_port(), web, receiver, window_now(8.0)))
    state = service(daemon, "web")
    assert (state["status"], state["paused_by"]) == ("paused", "window")
    assert state["pause_reason"] == "nightly backup"
    web.kill_process()
    wait_for(lambda: held_for_maintenance(daemon), 10, message="held for maintenance")
    no_new_starts([starts], 1.0)
    assert about_web(receiver) == ["maintenance.started"]
    # The window ends: the service, still down, takes its normal course.
    receiver.wait("maintenance.ended", timeout=15)
    wait_for(lambda: len(starts.starts) == 1, 15, message="healed after the window")
    wait_status(daemon, "web", "healthy")
    receiver.wait("recovery.succeeded")
    assert about_web(receiver)[:2] == ["maintenance.started", "maintenance.ended"]


def test_pause_and_resume_answer_like_the_rest_of_the_api(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    yaml = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 300ms}}
services:
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
  db:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
"""
    daemon = medic_daemon(yaml, env={"MEDIC_API_TOKEN": TOKEN})
    code, body = daemon.post("/api/v1/services/nosuch/pause", token=TOKEN)
    assert code == 404 and body["error"]["code"] == "SERVICE_NOT_FOUND"
    for bad in ({"for": "soon"}, {"for": True}, {"reason": ""}, {"until": "1h"}, {"for": "400d"}):
        code, body = daemon.post("/api/v1/services/web/pause", bad, token=TOKEN)
        assert code == 422 and body["error"]["code"] == "INVALID_BODY", (bad, body)
    code, _ = daemon.post("/api/v1/services/web/pause", token=None)
    assert code == 401
    code, body = daemon.post("/api/v1/services/web/pause", token=TOKEN)
    assert code == 200 and body["paused_until"] is None
    assert body["pause_reason"] == "paused by an operator"
    # An Alertmanager alert for a paused service is held, reason maintenance.
    alert = {"status": "firing", "labels": {"service": "web", "failure_type": "service_crash"}}
    code, answer = daemon.post("/api/v1/alerts", {"alerts": [alert]}, token=TOKEN)
    assert code == 200 and answer["accepted"] == [], answer
    assert [(h["service"], h["reason"]) for h in answer["held"]] == [("web", "maintenance")]
    assert daemon.get("/api/v1/recoveries")[1]["total"] == 0
    statuses = daemon.get("/api/v1/status")[1]["health_status"]
    assert statuses["web"]["status"] == "paused" and statuses["db"]["status"] != "paused"
    done = medic_cli(daemon, "pause", "--all", "--for", "90s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("paused until") == 2
    done = medic_cli(daemon, "resume", "--all")
    assert done.returncode == 0, done.stderr
    assert [s["status"] for s in daemon.get("/api/v1/services")[1]["services"]] != ["paused"] * 2
    assert medic_cli(daemon, "resume").returncode == 2  # neither SERVICE nor --all


def test_maintenance_windows_are_validated_with_file_and_line(tmp_path: Path) -> None:
    from tests.test_validate_cli import medic_validate, write

    (tmp_path / "playbooks").mkdir()
    path = write(
        tmp_path / "config.yaml",
        """playbooks_dir: playbooks
services:
  web:
    check: {type: tcp, host: 127.0.0.1, port: 1}
maintenance:
  - {services: [web], cron: "0 3 * * 0", duration: 2h, reason: weekly vacuum}
  - {services: [wbe], cron: "0 25 * * *", duration: 1h}
""",
    )
    done = medic_validate("--config", str(path))
    assert done.returncode == 1, done.stdout
    lines = done.stderr.splitlines()
    assert any(
        f"{path}:7:" in line and "maintenance[1].services[0]" in line and "'web'" in line
        for line in lines
    ), lines
    assert any(f"{path}:7:" in line and "maintenance[1].cron" in line for line in lines), lines
    path.write_text(path.read_text().replace("[wbe]", "[web]").replace("0 25", "0 2"))
    path.write_text(path.read_text() + '  - {services: "*", cron: "0 3 * * *", duration: 0s}\n')
    done = medic_validate("--config", str(path))
    assert done.returncode == 1 and f"{path}:8: maintenance[2].duration" in done.stderr


async def test_a_pause_for_a_while_ends_by_itself_and_its_events_are_published(
    orchestrator: OrchestratorFactory, listening_port: int
) -> None:
    orch = await orchestrator(
        f"""
monitoring: {{health_check_interval: 200ms}}
services:
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
"""
    )
    with closing(BusWatch(orch.bus)) as events:
        orch.maintenance.pause("web", for_s=0.5, reason="swap disk", by="tester")
        started = await events.next("maintenance.started", service="web")
        assert (started.data["by"], started.data["reason"]) == ("tester", "swap disk")
        assert orch.service_status("web")["status"] == "paused"
        ended = await events.next("maintenance.ended", service="web", timeout=5)
        assert (ended.data["by"], ended.data["paused_by"]) == ("timer", "tester")
    assert orch.service_status("web")["paused_by"] is None
    assert orch.store.recorded_pauses() == []
    kinds = [e.kind for e in orch.store.audit_entries("maintenance.*", service="web")]
    assert kinds == ["maintenance.ended", "maintenance.started"]
