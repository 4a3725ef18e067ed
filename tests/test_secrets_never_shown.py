"""Secrets never leave medic: a real daemon configured with a distinct secret
in every kind of place (``*_env`` values, ``*_file`` contents, passwords in
URLs and DSNs, webhook secrets and headers, API tokens) fails its checks,
recovers, notifies, reloads, runs a command that prints secret values; then
its whole log, every GET endpoint, the event stream, /metrics and what the
webhook received are searched for every value."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from medic.api.app import ROUTES
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = pytest.mark.postgres

SECRETS = {
    "api_token_env": "SeKrEt-api-token-6b1f",
    "api_token_file": "SeKrEt-ro-token-90ad",
    "pg_dsn_inline": "SeKrEt-pg-inline-2c7e",
    "pg_dsn_env": "SeKrEt-pg-env-ff31",
    "pg_dsn_file": "SeKrEt-pg-file-8d02",
    "http_url": "SeKrEt-http-url-4a19",
    "http_header": "SeKrEt-http-header-77c0",
    "hook_secret_env": "SeKrEt-hook-secret-e5d6",
    "hook_url": "SeKrEt-hook-url-13bb",
    "hook_header": "SeKrEt-hook-header-a0f4",
    "action_url": "SeKrEt-action-url-c911",
    "workflow_url": "SeKrEt-workflow-url-5e2a",
    "workflow_header": "SeKrEt-workflow-header-b7d3",
}

PLAYBOOK = """
description: pokes, with credentials in the URL it calls
failure_types: [unhealthy_response, database_connection, connection_timeout, network_failure]
steps:
  - {{action: http_request, url: "http://act:{action_url}@127.0.0.1:{port}/poke",
     expect_status: [200]}}
"""


def pg_dsn_with(password: str) -> str:
    return f"postgresql://medic:{password}@127.0.0.1:5432/medic"


def config(api_port: int, bad_http: Receiver, hook: Receiver) -> str:
    s = SECRETS
    return f"""
api:
  listen: 127.0.0.1:{api_port}
  token_env: SECRET_API_TOKEN
  tokens: [{{name: grafana, token_file: ro.token, scopes: [read]}}]
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 2, max_failing_fraction: 1.0, backoff: {{initial: 200ms}}}}
playbooks_dir: playbooks
notifications:
  webhooks:
    - name: hook
      url: "http://hook:{s["hook_url"]}@127.0.0.1:{hook.port}/hook"
      secret_env: SECRET_HOOK
      headers: {{X-Api-Key: "{s["hook_header"]}"}}
workflows:
  echo:
    schedule: {{interval: 1h}}
    steps:
      - name: leak
        action: run_command
        shell: true
        command: 'echo "pw=${{SECRET_PG_DSN#*medic:}} hook=$SECRET_HOOK token=$SECRET_API_TOKEN"'
  ping:
    schedule: {{interval: 1h}}
    steps:
      - name: call
        action: http_request
        url: "http://wf:{s["workflow_url"]}@127.0.0.1:{bad_http.port}/wf"
        headers: {{Authorization: "Bearer {s["workflow_header"]}"}}
        expect_status: [200]
services:
  pg_inline:
    check: {{type: postgres, dsn: "{pg_dsn_with(s["pg_dsn_inline"])}", timeout: 3s}}
    recovery: {{database_connection: poke}}
  pg_env:
    check: {{type: postgres, dsn_env: SECRET_PG_DSN, timeout: 3s}}
    recovery: {{database_connection: poke}}
  pg_file:
    check: {{type: postgres, dsn_file: pg.dsn, timeout: 3s}}
    recovery: {{database_connection: poke}}
  web:
    check:
      type: http
      url: "http://user:{s["http_url"]}@127.0.0.1:{bad_http.port}/health"
      headers: {{Authorization: "Bearer {s["http_header"]}"}}
    recovery: {{unhealthy_response: poke}}
"""


def get_paths(daemon: DaemonProcess) -> list[str]:
    """Every GET route, with each service's and recovery's own path."""
    recoveries = daemon.get("/api/v1/recoveries?limit=1000")[1]["recoveries"]
    fill = {
        "/api/v1/services/{name}": [
            s["name"] for s in daemon.get("/api/v1/services")[1]["services"]
        ],
        "/api/v1/recoveries/{id}": [str(r["id"]) for r in recoveries],
        "/api/v1/workflows/{id}": ["ping", "echo"],
    }
    paths = []
    for method, path, _handler, _scope in ROUTES:
        if method != "GET" or path == "/api/v1/events":
            continue
        hole = next((h for h in fill if path.startswith(h)), None)
        if hole is None:
            paths.append(path)
            continue
        key = hole.rsplit("/", 1)[1]
        paths += [path.replace(key, value) for value in fill[hole]]
    return [*paths, "/api/v1/audit?limit=1000", "/metrics", "/"]


def read_events(daemon: DaemonProcess, seconds: float) -> str:
    """The event stream from the first kept event, for ``seconds``."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/events?last_event_id=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        chunks = []
        deadline = time.monotonic() + seconds
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def leaks(where: str, text: str) -> list[str]:
    return [f"{name} in {where}" for name, value in SECRETS.items() if value in text]


def exercise(daemon: DaemonProcess, hook: Receiver) -> None:
    """Failing checks, recoveries, a webhook, operator calls, two reloads."""
    token = SECRETS["api_token_env"]

    def failing(name: str) -> bool:
        status = daemon.get(f"/api/v1/services/{name}")[1]
        return status["last_check"] is not None and status["status"] != "healthy"

    for name in ("pg_inline", "pg_env", "pg_file", "web"):
        wait_for(lambda n=name: failing(n), 20, message=f"{name} checked and failing")  # type: ignore[misc]
    wait_for(
        lambda: daemon.get("/api/v1/recoveries")[1]["total"] >= 4, 30, message="recoveries ran"
    )
    hook.wait("recovery.failed", timeout=20)
    assert daemon.post("/api/v1/services/web/check", token=token)[0] == 200
    assert daemon.post("/api/v1/services/web/recover", token=token)[0] == 200
    assert daemon.post("/api/v1/workflows/ping/run", token=token, timeout=30)[0] == 200
    # A command that prints secret values (no URL left to mask by pattern):
    # its output tail shows them masked by value.
    status, run = daemon.post("/api/v1/workflows/echo/run", token=token, timeout=30)
    assert status == 200, run
    output = repr(daemon.get("/api/v1/workflows/echo/runs", token=token)[1])
    assert "pw=***" in output and "hook=*** token=***" in output, output
    assert daemon.post("/api/v1/reload", token=token)[0] == 200
    daemon.send_signal(signal.SIGHUP)
    wait_for(
        lambda: len(daemon.find_logs(event="config.reloaded")) >= 2, 10, message="SIGHUP reload"
    )
    # A read token where admin is needed, and a wrong one: refused, never echoed.
    assert daemon.post("/api/v1/reload", token=SECRETS["api_token_file"])[0] == 403
    assert daemon.post("/api/v1/reload", token="wrong-" + token)[0] == 401


def test_no_secret_shows_anywhere(medic_daemon: DaemonFactory, tmp_path: Path) -> None:
    (tmp_path / "ro.token").write_text(SECRETS["api_token_file"] + "\n")
    (tmp_path / "pg.dsn").write_text(pg_dsn_with(SECRETS["pg_dsn_file"]) + "\n")
    with (
        running_receiver(statuses=[500] * 10_000) as bad_http,
        running_receiver(secret=SECRETS["hook_secret_env"]) as hook,
    ):
        medic_daemon.write_playbooks(
            {"poke": PLAYBOOK.format(action_url=SECRETS["action_url"], port=bad_http.port)}
        )
        env = {
            "SECRET_API_TOKEN": SECRETS["api_token_env"],
            "SECRET_PG_DSN": pg_dsn_with(SECRETS["pg_dsn_env"]),
            "SECRET_HOOK": SECRETS["hook_secret_env"],
        }
        daemon = medic_daemon(config(free_port(), bad_http, hook), env=env)
        exercise(daemon, hook)
        found: list[str] = []
        for path in get_paths(daemon):
            status, body = daemon.get(path, token=SECRETS["api_token_env"])
            # Without fleet: the fleet view answers 404, and that answer is searched too.
            assert status == (404 if path == "/api/v1/fleet" else 200), (path, body)
            found += leaks(f"GET {path}", repr(body))
        found += leaks("the event stream", read_events(daemon, 2.0))
        found += leaks("webhook deliveries", repr([d.body for d in hook.deliveries]))
        assert hook.deliveries, "the webhook got nothing: the test did not exercise it"
        daemon.stop()
        found += leaks("the log", daemon.log_text())
    assert not found, "\n".join(found)
