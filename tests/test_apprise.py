"""Notifications through Apprise, on real parts: a real process killed and
healed, messages reaching a real aiohttp receiver (``json://``), a real SMTP
server (``mailto://``), and the payloads Apprise's own Slack and Discord
plugins build and send over HTTP to a local receiver."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medic.orchestrator import ControlPlaneOrchestrator
from tests.helpers import async_wait_for, free_port
from tests.plugins.inprocess import BusWatch, OrchestratorFactory
from tests.plugins.smtp import SmtpServer, text_of
from tests.processes import http_server
from tests.test_heal_process import REPO_PLAYBOOKS
from tests.webhook_receiver import Delivery, Receiver, running_receiver

URLS_ENV = "MEDIC_TEST_APPRISE_URLS"


def config(port: int, targets: str, *, max_attempts: int = 10) -> str:
    return f"""
api: {{listen: 127.0.0.1:{free_port()}, public_url: "https://medic.example.com/"}}
monitoring:
  health_check_interval: 30s
  timeout: 1s
  recovery: {{max_attempts: {max_attempts}, window: 10m, backoff: {{initial: 0s}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  web:
    check: {{type: http, url: "http://127.0.0.1:{port}/", timeout: 1s}}
    process:
      command: {json.dumps(http_server(port))}
      stop_timeout: 2s
notifications:
  apprise:
{targets}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def messages(receiver: Receiver, path: str = "/medic") -> list[dict[str, Any]]:
    return [d.json for d in receiver.received() if d.path == path]


async def arrived(receiver: Receiver, count: int, path: str = "/medic") -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        found = messages(receiver, path)
        return found if len(found) >= count else None

    return await async_wait_for(enough, 20.0, message=f"{count} message(s) at {path}")


def pid_of(orch: ControlPlaneOrchestrator) -> int:
    pid = orch.service_status("web")["process"]["pid"]
    assert pid is not None
    return int(pid)


async def crash_and_heal(orch: ControlPlaneOrchestrator) -> float:
    """Kill web's process; return once medic restarted it (its recovery's duration)."""
    events = BusWatch(orch.bus)
    try:
        os.kill(pid_of(orch), signal.SIGKILL)
        await events.next("service.unhealthy", service="web")
        await events.next("service.recovered", service="web")
        done = await events.next("recovery.succeeded", service="web", timeout=5)
    finally:
        events.close()
    return float(done.data["duration_seconds"])


async def started(orchestrator: OrchestratorFactory, yaml: str) -> ControlPlaneOrchestrator:
    orch = await orchestrator(yaml)

    async def healthy() -> bool:
        return (await orch.monitor.probe_now("web")).healthy

    await async_wait_for(healthy, 15.0, interval=0.2, message="web answers")
    return orch


async def test_a_crash_and_its_healing_arrive_as_two_messages_by_json_and_mail(
    orchestrator: OrchestratorFactory,
    receiver: Receiver,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    json_url = receiver.url("/medic").replace("http://", "json://")
    monkeypatch.setenv(URLS_ENV, f"{json_url}, {smtp_server.url()}")
    target = f"    - {{name: chat, urls_env: {URLS_ENV}, notify_interval: 1m}}"
    orch = await started(orchestrator, config(free_port(), target))

    await crash_and_heal(orch)

    down, healed = await arrived(receiver, 2)
    assert down["message"].startswith("web is down (service_crash): restarting")
    assert down["type"] == "warning"
    assert "medic on " in down["title"]
    assert healed["message"].startswith("web recovered in ")
    assert " s\n" in healed["message"] or healed["message"].endswith(" s")
    assert "https://medic.example.com/#recovery-" in healed["message"]
    assert healed["type"] == "success"
    mails = await smtp_server.arrival(2)
    assert [m["Subject"] for m in mails] == [down["title"], healed["title"]]
    assert text_of(mails[1]).startswith("web recovered in ")
    # Exactly these two: no message per step, no second "down" for the same incident.
    await asyncio.sleep(2.5)  # the opening wait (2 s) and a margin: nothing else comes
    assert len(messages(receiver)) == 2
    assert len(smtp_server.received()) == 2
    sample = orch.metrics.notifications.labels("chat", "delivered")._value.get()
    assert sample == 2


async def test_a_flapping_service_is_folded_into_one_message_per_interval(
    orchestrator: OrchestratorFactory, receiver: Receiver
) -> None:
    url = receiver.url("/medic").replace("http://", "json://")
    target = f"    - {{name: chat, urls: ['{url}'], notify_interval: 12s}}"
    orch = await started(orchestrator, config(free_port(), target))

    await crash_and_heal(orch)
    first = await arrived(receiver, 2)
    for _ in range(3):  # flapping: three more crashes within the interval
        await crash_and_heal(orch)
    assert len(messages(receiver)) == 2, messages(receiver)

    summary = (await arrived(receiver, 3))[2]
    assert first[0]["message"].startswith("web is down (service_crash): restarting")
    assert first[1]["message"].startswith("web recovered in ")
    # The latest state, with what was folded in: 3 downs and 3 recoveries, less the one sent.
    assert summary["message"].startswith("web recovered in ")
    assert "(+5 more events folded in)" in summary["message"]


async def test_a_target_that_is_down_does_not_delay_a_recovery(
    orchestrator: OrchestratorFactory, receiver: Receiver
) -> None:
    hanging = Receiver().start()  # accepts, never answers
    hanging.hold()
    try:
        live = receiver.url("/medic").replace("http://", "json://")
        closed = f"json://127.0.0.1:{free_port()}/x"
        stuck = hanging.url("/x").replace("http://", "json://")
        targets = (
            f"    - {{name: live, urls: ['{live}']}}\n"
            f"    - {{name: closed, urls: ['{closed}'], max_retries: 5}}\n"
            f"    - {{name: stuck, urls: ['{stuck}'], timeout: 30s}}"
        )
        orch = await started(orchestrator, config(free_port(), targets))
        began = time.monotonic()
        duration = await crash_and_heal(orch)
        healed_after = time.monotonic() - began

        await arrived(receiver, 2)
        assert time.monotonic() - began < 8.0  # the live target's two messages came promptly
        assert duration < 5.0 and healed_after < 8.0
        pending = orch.apprise.pending()
        assert pending["stuck"] >= 1  # still waiting on the silent receiver
        retried = orch.metrics.notifications.labels("closed", "retried")._value.get()
        assert retried >= 1
    finally:
        hanging.stop()


def _payloads(receiver: Receiver, prefix: str) -> list[Delivery]:
    return [d for d in receiver.received() if d.path.startswith(prefix)]


async def test_slack_and_discord_get_the_payloads_their_services_document(
    orchestrator: OrchestratorFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apprise cannot be pointed at another host for these two: only the base
    address of each plugin moves to the local receiver; the payload is built
    and POSTed by Apprise's own plugin and HTTP code."""
    from apprise.plugins.discord import NotifyDiscord
    from apprise.plugins.slack import NotifySlack

    monkeypatch.setattr(NotifyDiscord, "notify_url", receiver.url("/api/webhooks"))
    monkeypatch.setattr(NotifySlack, "webhook_url", receiver.url("/services"))
    discord = "discord://4174296324183/AbCdEfGhIjKlMnOp"
    slack = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    monkeypatch.setenv(URLS_ENV, f"{discord}\n{slack}")
    target = f"    - {{name: chat, urls_env: {URLS_ENV}}}"
    orch = await started(orchestrator, config(free_port(), target))

    await crash_and_heal(orch)

    def both() -> bool:
        return (
            len(_payloads(receiver, "/api/webhooks")) >= 2
            and len(_payloads(receiver, "/services")) >= 2
        )

    await async_wait_for(both, 20.0, message="two Discord and two Slack posts")
    posts = _payloads(receiver, "/api/webhooks")
    # Discord's "Execute Webhook": POST /webhooks/{id}/{token}, a JSON body whose
    # `content` is the message (plain text: title, then body), with `tts`, `avatar_url`.
    assert posts[0].path == "/api/webhooks/4174296324183/AbCdEfGhIjKlMnOp"
    body = posts[1].json
    assert body["content"].startswith("medic on ")
    assert "\nweb recovered in " in body["content"]
    assert body["tts"] is False and body["avatar_url"].startswith("https://")
    # Slack's incoming webhook: POST /services/T/B/C, `attachments` with `title`,
    # `text` and `color` (and `mrkdwn`, `icon_url`).
    slack_posts = _payloads(receiver, "/services")
    assert slack_posts[0].path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    attachment = slack_posts[1].json["attachments"][0]
    assert attachment["title"].startswith("medic on ")
    assert "web recovered in" in attachment["text"]
    assert attachment["color"].startswith("#")
    assert slack_posts[1].json["mrkdwn"] is True


async def test_templates_fill_in_the_incident(
    orchestrator: OrchestratorFactory, receiver: Receiver
) -> None:
    url = receiver.url("/medic").replace("http://", "json://")
    target = (
        f"    - name: chat\n      urls: ['{url}']\n      events: [service.recovered]\n"
        "      title: '[${host}] ${service}: ${outcome}'\n"
        "      body: '${service} ${outcome} after ${duration} (${failure_type}) ${url}'"
    )
    orch = await started(orchestrator, config(free_port(), target))
    await crash_and_heal(orch)
    (healed,) = await arrived(receiver, 1)
    assert healed["title"].endswith("] web: recovered")
    assert healed["message"].startswith("web recovered after ")
    assert "(service_crash) https://medic.example.com/#recovery-" in healed["message"]


async def test_apprise_is_loaded_only_when_configured(tmp_path: Path) -> None:
    """A daemon without notifications.apprise never imports the library."""
    script = """
import asyncio, sys
from medic.orchestrator import ControlPlaneOrchestrator
async def main():
    orch = ControlPlaneOrchestrator.from_config(sys.argv[1], state_dir=sys.argv[2])
    await orch.start()
    orch.bus.publish("service.unhealthy", service="x", failure_type="service_crash")
    orch.bus.publish("service.recovered", service="x")
    await asyncio.sleep(0.2)
    await orch.stop()
asyncio.run(main())
print("apprise" in sys.modules)
"""
    path = tmp_path / "config.yaml"
    path.write_text(f"api: {{listen: 127.0.0.1:{free_port()}}}\nservices: {{}}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(path),
        str(tmp_path / "state"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert out.decode().strip().splitlines()[-1] == "False"


QUICK_RESTART = """
failure_types: [service_crash]
steps:
  - {action: restart_process, timeout: 10s}
  - {action: wait_healthy, timeout: 1s}
"""


async def test_a_service_that_will_not_stay_up_ends_in_a_call_for_a_person(
    orchestrator: OrchestratorFactory, receiver: Receiver
) -> None:
    url = receiver.url("/medic").replace("http://", "json://")
    dying = [sys.executable, "-c", "import time; time.sleep(0.3)"]
    yaml = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 30s
  recovery: {{max_attempts: 2, window: 10m, backoff: {{initial: 0s}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}, timeout: 1s}}
    process: {{command: {json.dumps(dying)}, stop_timeout: 1s}}
    recovery: {{service_crash: restart-quickly}}
notifications:
  apprise:
    - {{name: chat, urls: ['{url}']}}
"""
    with_watch = await orchestrator(yaml, playbooks={"restart-quickly": QUICK_RESTART})
    events = BusWatch(with_watch.bus, after=0)
    try:
        await events.next("circuit.opened", service="web", timeout=30)
    finally:
        events.close()
    told = [m["message"].split("\n")[0] for m in await arrived(receiver, 3)]
    assert told == [
        "web is down (service_crash): restarting",
        "web: recovery failed (failed)",
        "web: circuit open after 2 attempts, needs a person",
    ]
    await asyncio.sleep(1.0)  # nothing more: the second failed attempt is not told again
    assert len(messages(receiver)) == 3


async def test_a_reload_adds_and_changes_targets_in_place(
    orchestrator: OrchestratorFactory, receiver: Receiver
) -> None:
    from medic.config.load import load_config

    first = receiver.url("/medic").replace("http://", "json://")
    second = receiver.url("/second").replace("http://", "json://")
    port = free_port()
    orch = await started(orchestrator, config(port, f"    - {{name: chat, urls: ['{first}']}}"))
    yaml = config(
        port,
        f"    - {{name: chat, urls: ['{first}'], notify_interval: 5s}}\n"
        f"    - {{name: pager, urls: ['{second}'], events: [service.recovered]}}",
    )
    orchestrator.config_path.write_text(yaml)
    changes = await orch.reload(load_config(orchestrator.config_path))
    assert changes["apprise"] == {"added": ["pager"], "removed": [], "changed": ["chat"]}
    assert orch.apprise.folders["chat"].interval == 5.0

    await crash_and_heal(orch)
    assert len(await arrived(receiver, 2)) == 2
    (healed,) = await arrived(receiver, 1, path="/second")
    assert healed["message"].startswith("web recovered in ")


async def test_a_recovery_an_operator_asks_for_says_so(
    orchestrator: OrchestratorFactory, receiver: Receiver
) -> None:
    from medic.core.vocabulary import Trigger

    url = receiver.url("/medic").replace("http://", "json://")
    orch = await started(
        orchestrator, config(free_port(), f"    - {{name: chat, urls: ['{url}']}}")
    )
    result = await orch.auto_recover("web", "service_crash", trigger=Trigger.API)
    assert result.outcome.value == "succeeded"
    told = [m["message"].split("\n")[0] for m in await arrived(receiver, 1)]
    assert told[0] == "web: restarting (service_crash), asked by an operator"
