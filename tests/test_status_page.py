"""The status page at ``GET /`` in a real headless Chromium (Debian's
``chromium``, driven over the DevTools protocol): it shows services,
workflows and the recovery timeline, follows a killed container's row live
from the SSE stream without reloading, shows a host-wide recovery hold, stays
inside a phone-width screen, and loads nothing from anywhere but the daemon.
Screenshots are kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.chromium import Chromium, Page, chromium_binary
from tests.helpers import REPO_ROOT, SETUP_HINT, async_wait_for, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle

ARTIFACTS = REPO_ROOT / "test-artifacts"
REPO_PLAYBOOKS = REPO_ROOT / "recovery_playbooks"
TOKEN = "status-page-token"
PHONE_WIDTH = 390
LIVE_DEADLINE_S = 10.0
"""The page must show a change this soon: well before its 30 s fallback poll."""


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    binary = chromium_binary()
    if binary is None:
        pytest.fail(f"chromium is not installed; {SETUP_HINT}", pytrace=False)
    browser = Chromium(binary, tmp_path / "chromium.log")
    yield browser
    browser.close()


@pytest.fixture
async def page(chromium: Chromium) -> AsyncIterator[Page]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        tab = await chromium.page(session)
        await tab.send("Runtime.enable")
        await tab.send("Network.enable")
        yield tab
        await tab.close()


@pytest.fixture
def web(container_factory: ContainerFactory, idle_container: Any) -> ContainerHandle:
    return container_factory(name="web")


@pytest.fixture
def busy_daemon(medic_daemon: DaemonFactory, web: ContainerHandle) -> DaemonProcess:
    """A healthy container, a service that never comes back (its circuit opens)
    and a workflow that has run once."""
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 1s
  timeout: 1s
  failure_threshold: 1
  recovery: {{max_attempts: 1, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  web:
    description: the shop's front end
    check: {{type: http, url: "{web.url}healthz", expect_status: [200]}}
    container: {web.name}
  queue:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
workflows:
  nightly-report:
    description: sums up yesterday's orders
    schedule: {{cron: "0 3 * * *"}}
    steps:
      - {{name: report, action: run_command, command: [echo, "42 orders"]}}
"""
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})
    status, run = daemon.post("/api/v1/workflows/nightly-report/run", token=TOKEN)
    assert status == 200 and run["outcome"] == "succeeded", run

    def settled() -> bool:
        _, services = daemon.get("/api/v1/services")
        by_name = {s["name"]: s for s in services["services"]}
        return by_name["web"]["status"] == "healthy" and by_name["queue"]["circuit"] == "open"

    wait_for(settled, 20, interval=0.1, message="web healthy and queue's circuit open")
    return daemon


async def row_status(page: Page, row_id: str) -> str | None:
    value = await page.evaluate(
        f"(document.getElementById({row_id!r}) || {{dataset: {{}}}}).dataset.status || null"
    )
    return None if value is None else str(value)


async def open_page(page: Page, daemon: DaemonProcess, width: int = 1280) -> None:
    await page.set_viewport(width, 900, mobile=width < 600)
    await page.navigate(daemon.url + "/")
    await async_wait_for(
        lambda: row_status(page, "svc-web"), 10, message="the page shows the web service"
    )


async def watch_row(page: Page, row_id: str, until: str, seen: list[str], timeout: float) -> None:  # noqa: ASYNC109
    """Poll the row's status until it is ``until``, keeping every status seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await row_status(page, row_id)
        if status is not None and (not seen or seen[-1] != status):
            seen.append(status)
        if status == until and len(seen) > 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{row_id} never became {until!r} within {timeout:g}s; seen: {seen}")


async def text_of(page: Page, selector: str) -> str:
    return str(await page.evaluate(f"document.querySelector({selector!r})?.innerText ?? ''"))


async def test_the_page_follows_a_killed_container_live(
    page: Page, busy_daemon: DaemonProcess, web: ContainerHandle
) -> None:
    await open_page(page, busy_daemon)
    assert await row_status(page, "svc-web") == "healthy"
    await page.evaluate("window.medicTestMarker = 'same page'")

    killed_at = time.monotonic()
    web.kill_process()
    seen = ["healthy"]
    await watch_row(page, "svc-web", "recovering", seen, LIVE_DEADLINE_S)
    assert time.monotonic() - killed_at < LIVE_DEADLINE_S
    await watch_row(page, "svc-web", "healthy", seen, 30)
    assert seen[0] == "healthy" and seen[-1] == "healthy" and "recovering" in seen, seen

    # The timeline shows the recovery and its steps, still without a reload.
    item = "#recoveries li[data-service='web'][data-outcome='succeeded']"
    await async_wait_for(
        lambda: text_of(page, item), 10, message="the web recovery in the timeline"
    )
    timeline = await text_of(page, item)
    assert "service_crash → restart-container" in timeline
    assert "restart_container" in timeline and "wait_healthy" in timeline
    assert await page.evaluate("window.medicTestMarker") == "same page"
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1

    await assert_page_shows_everything(page)
    await page.screenshot(ARTIFACTS / "status-page.png")
    await assert_fits_a_phone(page)
    await page.screenshot(ARTIFACTS / "status-page-phone.png")
    assert_only_the_daemon_was_asked(page, busy_daemon)
    assert page.events("Runtime.exceptionThrown") == []


async def assert_page_shows_everything(page: Page) -> None:
    web_row = await text_of(page, "#svc-web")
    assert "web" in web_row and "healthy" in web_row and "%" in web_row
    queue = await text_of(page, "#svc-queue")
    assert "service_crash" in queue and "open" in queue, queue
    assert "probation in" in queue or "next attempt in" in queue, queue
    workflow = await text_of(page, "#wf-nightly-report")
    assert "in " in workflow and "succeeded" in workflow, workflow  # next run, last run
    assert "sums up yesterday's orders" in workflow
    assert await page.evaluate("document.getElementById('conn').innerText") == "● live"


async def assert_fits_a_phone(page: Page) -> None:
    await page.set_viewport(PHONE_WIDTH, 844, mobile=True)
    await page.evaluate("new Promise((done) => requestAnimationFrame(() => done(true)))")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the page is {width}px wide on a {PHONE_WIDTH}px screen"
    overflowing = await page.evaluate(
        "[...document.querySelectorAll('section')].filter((s) => s.scrollWidth > s.clientWidth)"
        ".map((s) => s.querySelector('h2').innerText)"
    )
    assert overflowing == [], f"sections scroll sideways on a phone: {overflowing}"


def assert_only_the_daemon_was_asked(page: Page, daemon: DaemonProcess) -> None:
    urls = [event["request"]["url"] for event in page.events("Network.requestWillBeSent")]
    assert any(url.endswith("/api/v1/events") for url in urls), urls
    strangers = [url for url in urls if not url.startswith(daemon.url + "/")]
    assert strangers == [], f"the page loaded from elsewhere: {strangers}"


async def test_the_page_shows_a_host_wide_recovery_hold(
    page: Page, medic_daemon: DaemonFactory
) -> None:
    services = "".join(
        f"  {name}:\n    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}\n"
        for name in ("web", "api", "cache", "queue")
    )
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 500ms
  failure_threshold: 1
  recovery: {{max_failing_fraction: 0.5}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
{services}"""
    daemon = medic_daemon(config)
    await open_page(page, daemon)
    await async_wait_for(
        lambda: text_of(page, "#banner-hold"), 15, message="the host-wide hold banner"
    )
    banner = await text_of(page, "#banner-hold")
    assert "Automatic recovery is held host-wide" in banner
    _, body = await asyncio.to_thread(daemon.get, "/api/v1/services")
    assert body["recovery_hold"] and body["recovery_hold"] in banner
    await page.screenshot(ARTIFACTS / "status-page-hold.png")


async def test_a_held_service_says_why(page: Page, medic_daemon: DaemonFactory) -> None:
    # "api" depends on "database": while the database is down, api is held.
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 500ms
  failure_threshold: 1
  recovery: {{backoff: {{initial: 1m}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  database:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
    depends_on: [database]
"""
    daemon = medic_daemon(config)
    await open_page(page, daemon)
    await async_wait_for(
        lambda: text_of(page, "#svc-web .note"), 15, message="web's held reason on the page"
    )
    _, web = await asyncio.to_thread(daemon.get, "/api/v1/services/web")
    assert web["held_reason"]
    note = await text_of(page, "#svc-web .note")
    assert note == f"held: {web['held_reason']}"


def test_the_page_is_self_contained(medic_daemon: DaemonFactory) -> None:
    daemon = medic_daemon(f"api: {{listen: 127.0.0.1:{free_port()}}}\n")
    status, html = daemon.get("/")
    assert status == 200 and html.startswith("<!doctype html>")
    # Script and style come from the daemon itself, never inline (the CSP forbids it).
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/status.js" defer>']
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html, re.I)
    _, script = daemon.get("/static/status.js")
    _, css = daemon.get("/static/status.css")
    for text in (html, script, css):
        references = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']*)["']""", text, re.I)
        references += re.findall(r"""url\(\s*["']?([^"')]*)""", text, re.I)
        references += re.findall(r"""(?:fetch|EventSource|getJSON)\(\s*["'`]([^"'`]*)""", text)
        for ref in references:
            assert ref.startswith("/") and not ref.startswith("//"), ref
        assert "@import" not in text
    assert "fetch(" in script and "EventSource(" in script, "expected the page to read the API"
    assert not re.search(r"<(?:img|iframe|object|embed)\b", html, re.I)
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


async def test_a_paused_service_shows_its_maintenance(
    page: Page, medic_daemon: DaemonFactory
) -> None:
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 500ms}}
services:
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
"""
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": "tok"})
    await open_page(page, daemon)
    body = {"for": "2h", "reason": "disk swap"}
    code, _ = await asyncio.to_thread(daemon.post, "/api/v1/services/web/pause", body, "tok")
    assert code == 200
    note = await async_wait_for(
        lambda: text_of(page, "#svc-web .note"), 15, message="web's maintenance on the page"
    )
    assert await row_status(page, "svc-web") == "paused"
    assert note == "maintenance, ends in 2h: disk swap (by 127.0.0.1)"


async def test_a_recoverys_evidence_is_shown_as_text_never_markup(
    page: Page, medic_daemon: DaemonFactory, container_factory: ContainerFactory
) -> None:
    # The container's log holds markup and a script: the page must show it as text.
    script = (
        "echo '<img src=x onerror=\"window.pwned=1\">'; echo '<b>bold</b> & done';"
        " exec httpd -f -p 8080 -h /www"
    )
    web = container_factory(name="web", command=script, publish=True)
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 30s
  failure_threshold: 1
playbooks_dir: {REPO_PLAYBOOKS}
services:
  web:
    check: {{type: container}}
    container: {web.name}
"""
    daemon = medic_daemon(config)
    await open_page(page, daemon)
    web.container.kill()
    shown = "#recoveries li[data-service='web'][data-outcome='succeeded'] details.more"
    await async_wait_for(lambda: text_of(page, shown), 30, message="the recovery on the page")
    await page.evaluate(f"document.querySelector({shown!r}).open = true")  # loads it
    log = await async_wait_for(
        lambda: text_of(page, shown + " pre.evidence-log"), 15, message="the evidence's log"
    )
    assert '<img src=x onerror="window.pwned=1">' in log
    assert "<b>bold</b> & done" in log
    facts = " ".join((await text_of(page, shown + " dl.evidence")).split())
    assert "exit code 137" in facts and "OOMKilled false" in facts, facts
    markup = f"document.querySelector({shown!r}).querySelectorAll('img, b').length"
    assert await page.evaluate(markup) == 0
    assert await page.evaluate("window.pwned === undefined")
