"""The status page as an operator uses it, in a real headless Chromium against
a real daemon: each service's strip of recent checks and its latency
sparkline, the buttons (check now, recover with a chosen failure type, reset,
pause, approve) behind a token asked for once in an in-page dialog and kept in
``sessionStorage``, a refused call showing the API's JSON error, the keyboard
path through the dialog, and a check whose HTTP answer holds markup and script
shown as text with nothing run (a ``Content-Security-Policy`` on the page and
its files as the second wall). Screenshots (desktop, phone, dark) go to
``test-artifacts/``."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.chromium import Page
from tests.helpers import async_wait_for, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_status_page import ARTIFACTS, TOKEN, assert_fits_a_phone
from tests.test_status_page import chromium as chromium
from tests.test_status_page import page as page

PAYLOAD = (
    "<img src=x onerror=\"window.medicPwned='img'\"><script>window.medicPwned='script'</script>"
)
FIX_PLAYBOOK = """
description: says what it would fix
failure_types: [service_crash, unhealthy_response]
steps:
  - {action: run_command, command: [echo, "fixed <b>it</b>"]}
"""
APPROVAL_PLAYBOOK = """
description: waits for an operator
approval: required
approval_timeout: 5m
steps:
  - {action: run_command, command: ["true"]}
"""


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (200, "ok") if self.path == "/ok" else (500, PAYLOAD)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1: ``/ok`` answers 200, anything else 500
    with a body full of markup and script."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def page_daemon(medic_daemon: DaemonFactory, web_server: str) -> DaemonProcess:
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  timeout: 1s
  failure_threshold: 1
  recovery: {{max_attempts: 1, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: http, url: "{web_server}/ok"}}
    recovery: {{service_crash: fix}}
  evil:
    check: {{type: http, url: "{web_server}/evil", expect_status: [200]}}
    recovery: {{unhealthy_response: fix}}
  gated:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
    recovery: {{service_crash: approve-first}}
"""
    daemon = medic_daemon(
        config,
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks={"fix": FIX_PLAYBOOK, "approve-first": APPROVAL_PLAYBOOK},
    )

    def settled() -> bool:
        _, body = daemon.get("/api/v1/services")
        by_name = {s["name"]: s for s in body["services"]}
        _, recs = daemon.get("/api/v1/recoveries?service=gated")
        waiting = any(r["outcome"] == "waiting_approval" for r in recs["recoveries"])
        return by_name["evil"]["circuit"] == "open" and waiting

    wait_for(settled, 20, interval=0.1, message="evil's circuit open, gated waiting for approval")
    return daemon


async def js(page: Page, expression: str) -> Any:
    return await page.evaluate(expression)


async def open_page(page: Page, daemon: DaemonProcess, width: int = 1280) -> None:
    await page.set_viewport(width, 1000, mobile=width < 600)
    await page.send("Emulation.setFocusEmulationEnabled", enabled=True)  # as a window in front
    await page.navigate(daemon.url + "/")
    await async_wait_for(
        lambda: ticks(page, "web", at_least=5), 15, message="web's strip with 5 checks"
    )


async def ticks(page: Page, service: str, at_least: int = 1) -> int | None:
    count = await js(page, f"document.querySelectorAll('#svc-{service} .strip .tick').length")
    return int(count) if count >= at_least else None


async def result_text(page: Page, contains: str) -> str | None:
    text = str(await js(page, "document.getElementById('action-result').innerText"))
    return text if contains in text and not text.endswith("…") else None


async def press(page: Page, key: str, code: int, text: str = "") -> None:
    """A real key press (keyDown with its text, as a keyboard sends it, then keyUp)."""
    down = {"text": text} if text else {}
    await page.send(
        "Input.dispatchKeyEvent",
        type="keyDown",
        key=key,
        code=key,
        windowsVirtualKeyCode=code,
        **down,
    )
    await page.send(
        "Input.dispatchKeyEvent", type="keyUp", key=key, code=key, windowsVirtualKeyCode=code
    )


async def give_token(page: Page, token: str) -> None:
    await async_wait_for(
        lambda: js(page, "document.getElementById('token-dialog').open"),
        5,
        message="the token dialog",
    )
    assert await js(page, "document.activeElement.id") == "token-input"
    await page.send("Input.insertText", text=token)
    await press(page, "Enter", 13, "\r")


async def click(page: Page, selector: str) -> None:
    await js(page, f"document.querySelector({selector!r}).click()")


_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def header_of(url: str, name: str) -> str | None:
    with _http.open(url, timeout=10) as response:
        value = response.headers.get(name)
    return None if value is None else str(value)


async def test_strips_sparklines_and_a_payload_shown_as_text(
    page: Page, page_daemon: DaemonProcess
) -> None:
    await open_page(page, page_daemon)
    # The strip is the API's recent checks, and the sparkline draws their latency.
    _, recent = await asyncio.to_thread(page_daemon.get, "/api/v1/services/web/checks")
    assert 5 <= len(recent["checks"]) <= 60 and all(c["healthy"] for c in recent["checks"])
    assert await js(page, "document.querySelector('#svc-web .tick.ok') !== null")
    assert await js(page, "document.querySelector('#svc-web .tick.fail') === null")
    points = await js(page, "document.querySelector('#spark-web polyline').getAttribute('points')")
    assert len(points.split()) >= 5
    assert await js(page, "document.querySelector('#svc-evil .tick.fail') !== null")
    uptime = await js(page, "document.querySelector('#svc-web td.uptime').innerText")
    assert "24h" in uptime and "7d" in uptime and "%" in uptime

    # Focusing a tick says when, how long and what the check said.
    await js(page, "[...document.querySelectorAll('#svc-evil .tick')].pop().focus()")
    info = await js(page, "document.getElementById('checkinfo-evil').innerText")
    assert "unhealthy_response" in info and "HTTP 500" in info and " ms" in info

    # The payload quoted in evil's detail is text: no img, no script ran.
    detail = await js(page, "document.querySelector('#svc-evil .clip').textContent")
    assert "<img src=x onerror=" in detail and "<script>" in detail, detail
    assert "<script>window.medicPwned" in info
    assert await js(page, "document.querySelectorAll('img').length") == 0
    assert await js(page, "document.querySelectorAll('script').length") == 1
    assert await js(page, "typeof window.medicPwned") == "undefined"

    _, last3 = await asyncio.to_thread(page_daemon.get, "/api/v1/services/evil/checks?limit=3")
    _, evil = await asyncio.to_thread(page_daemon.get, "/api/v1/services/evil")
    assert len(last3["checks"]) == 3 and last3["checks"][-1]["time"] <= evil["last_check"]["time"]

    csp = await asyncio.to_thread(header_of, page_daemon.url + "/", "Content-Security-Policy")
    assert csp is not None and "script-src 'self'" in csp and "default-src 'none'" in csp
    for asset in ("/static/status.js", "/static/status.css"):
        assert await asyncio.to_thread(
            header_of, page_daemon.url + asset, "Content-Security-Policy"
        )
    assert page.events("Runtime.exceptionThrown") == []
    await evidence_is_text(page)

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(ARTIFACTS / "status-page-controls.png")
    await assert_fits_a_phone(page)
    await page.screenshot(ARTIFACTS / "status-page-controls-phone.png")
    await page.set_viewport(1280, 1000)
    await page.send(
        "Emulation.setEmulatedMedia",
        features=[{"name": "prefers-color-scheme", "value": "dark"}],
    )
    assert await js(page, "matchMedia('(prefers-color-scheme: dark)').matches")
    background = await js(page, "getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", background
    await page.screenshot(ARTIFACTS / "status-page-controls-dark.png")


EVIDENCE = {
    "container": "web-1",
    "gathered_at": "2026-01-06T07:27:00+00:00",
    "status": "exited",
    "exit_code": 137,
    "oom_killed": True,
    "health_status": "unhealthy",
    "health_log": [
        {"start": "2026-01-06T07:26:50+00:00", "exit_code": 1, "output": "<b>curl: refused</b>"}
    ],
    "log": f"booting\n{PAYLOAD}\nKilled",
    "log_lines": 3,
    "notes": [],
}


async def evidence_is_text(page: Page) -> None:
    """A recovery's evidence (container log, exit code, OOMKilled, health log) is
    drawn as text. The record is handed to the page's own renderer: the
    evidence itself comes from the Docker side (GET /api/v1/recoveries/{id})."""
    record = {
        "steps": [{"action": "restart_container", "outcome": "succeeded"}],
        "evidence": EVIDENCE,
    }
    shown = await js(
        page,
        "(() => { const box = document.createElement('div'); document.body.append(box);"
        f" fillRecovery(box, {json.dumps(record)}, 99); const t = box.innerText;"
        " const tags = box.querySelectorAll('img, script, b').length; box.remove();"
        " return [t, tags]; })()",
    )
    text, tags = shown
    assert tags == 0 and "<img src=x onerror=" in text and "<b>curl: refused</b>" in text
    assert "Evidence of web-1" in text and "exited" in text and "unhealthy" in text
    facts = re.sub(r"\s+", " ", text)
    assert "exit code 137" in facts and "OOMKilled true" in facts, text
    assert "container log, last 3 line(s)" in text and "health log" in text
    assert await js(page, "typeof window.medicPwned") == "undefined"


async def test_the_buttons_act_behind_a_token_asked_once(
    page: Page, page_daemon: DaemonProcess
) -> None:
    await open_page(page, page_daemon)
    _, before = await asyncio.to_thread(page_daemon.get, "/api/v1/audit?kind=operator.check")

    # Keyboard: Enter on "Check now" opens the token dialog with the focus in it.
    await js(page, "document.querySelector('[data-key=\"check-web\"]').focus()")
    await press(page, "Enter", 13, "\r")
    await give_token(page, TOKEN)
    assert await async_wait_for(lambda: result_text(page, "check web: healthy"), 10)
    assert await js(page, "sessionStorage.getItem('medic.token')") == TOKEN
    assert TOKEN not in str(await js(page, "location.href"))
    assert await js(page, "document.activeElement.dataset.key") == "check-web"
    _, after = await asyncio.to_thread(page_daemon.get, "/api/v1/audit?kind=operator.check")
    assert len(after["audit"]) == len(before["audit"]) + 1

    # Reset closes evil's open circuit; no second token dialog.
    await click(page, "[data-key='reset-evil']")
    assert await async_wait_for(lambda: result_text(page, "reset evil: "), 10)
    assert not await js(page, "document.getElementById('token-dialog').open")
    text = str(await js(page, "document.getElementById('action-result').innerText"))
    assert "circuit closed" in text or "circuit probation" in text, text

    # Escape closes a dialog and gives the focus back to the button that opened it.
    await js(page, "document.querySelector('[data-key=\"recover-web\"]').focus()")
    await press(page, "Enter", 13, "\r")
    await async_wait_for(
        lambda: js(page, "document.activeElement.id === 'recover-type'"), 5, message="focus"
    )
    await press(page, "Escape", 27)
    assert not await js(page, "document.getElementById('recover-dialog').open")
    assert await js(page, "document.activeElement.dataset.key") == "recover-web"

    # Recover web, choosing the failure type in the dialog.
    await click(page, "[data-key='recover-web']")
    await async_wait_for(
        lambda: js(page, "document.getElementById('recover-dialog').open"), 5, message="dialog"
    )
    await js(page, "document.getElementById('recover-type').value = 'service_crash'")
    await click(page, "#recover-ok")
    assert await async_wait_for(lambda: result_text(page, "recover web: succeeded"), 20)
    item = "#recoveries li[data-service='web'][data-outcome='succeeded']"
    await async_wait_for(
        lambda: js(page, f"!!document.querySelector({item!r})"), 10, message="web's recovery"
    )
    # It opens to its steps and their output (text, even where it looks like markup).
    await js(page, f"document.querySelector({item!r} + ' details').open = true")
    output = f"{item} .rec-body pre.output"
    await async_wait_for(
        lambda: js(page, f"document.querySelector({output!r})?.textContent"), 10, message="output"
    )
    assert "fixed <b>it</b>" in await js(page, f"document.querySelector({output!r}).textContent")
    assert await js(page, f"document.querySelector({item!r} + ' b')") is None

    # Approve the recovery that waits for it.
    await click(page, "#recoveries li[data-outcome='waiting_approval'] button.primary")
    assert await async_wait_for(lambda: result_text(page, "approve recovery "), 15)
    _, recs = await asyncio.to_thread(page_daemon.get, "/api/v1/recoveries?service=gated")
    assert recs["recoveries"][0]["outcome"] != "waiting_approval", recs["recoveries"][0]

    # Pause: the call reaches the API (the route's answer, or its JSON error).
    await click(page, "[data-key='pause-web']")
    await async_wait_for(
        lambda: js(page, "document.getElementById('pause-dialog').open"), 5, message="dialog"
    )
    await js(page, "document.getElementById('pause-reason').value = 'db job'")
    await click(page, "#pause-ok")
    text = await async_wait_for(lambda: result_text(page, "pause web"), 10)
    code = await js(page, "document.getElementById('action-result').dataset.code || null")
    if code is None:
        _, web = await asyncio.to_thread(page_daemon.get, "/api/v1/services/web")
        assert web["status"] == "paused", web
    else:
        assert f"refused: {code}: " in text and "(HTTP 4" in text, text
    assert page.events("Runtime.exceptionThrown") == []


async def test_a_wrong_token_shows_the_api_error(page: Page, page_daemon: DaemonProcess) -> None:
    await open_page(page, page_daemon)
    await click(page, "[data-key='reset-web']")
    await give_token(page, "not-the-token")
    text = await async_wait_for(lambda: result_text(page, "reset web refused"), 10)
    _, body = await asyncio.to_thread(
        page_daemon.request, "POST", "/api/v1/services/web/reset", None, token="not-the-token"
    )
    error = body["error"]
    assert f"{error['code']}: {error['message']} (HTTP 401)" in text, (text, json.dumps(body))
    # A refused token is forgotten: the next action asks again.
    assert await js(page, "sessionStorage.getItem('medic.token')") is None
    await click(page, "[data-key='check-web']")
    await give_token(page, TOKEN)
    assert await async_wait_for(lambda: result_text(page, "check web: healthy"), 10)
