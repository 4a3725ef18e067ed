"""The OpenAPI document at /api/v1/openapi.json matches the API: every route of
the app is in it with its method, the document is valid OpenAPI, every example
validates against its schema, and real answers of a running daemon (reads,
controls and errors) validate against the documented schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate as validate_spec

from medic.api.app import build_app
from medic.api.openapi import OPENAPI_PATH, OPERATIONS, build_document
from medic.api.state import ORCHESTRATOR, ApiSettings
from medic.config.load import load_config
from medic.orchestrator import ControlPlaneOrchestrator
from tests.apischema import examples, response_schema, schema_errors
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "openapi-test-token"

HARMLESS_PLAYBOOK = """
description: does nothing harmful
failure_types: [service_crash]
steps:
  - {action: run_command, command: ["true"]}
"""

APPROVAL_PLAYBOOK = """
description: waits for an operator, then does nothing harmful
approval: required
approval_timeout: 5m
steps:
  - {action: run_command, command: ["true"]}
"""


def daemon_config(api_port: int, up_port: int) -> str:
    return f"""
api: {{listen: 127.0.0.1:{api_port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 2, backoff: {{initial: 30s}}}}
playbooks_dir: playbooks
services:
  up:
    check: {{type: tcp, host: 127.0.0.1, port: {up_port}}}
  gone:
    check: {{type: tcp, port: {free_port()}}}
  gated:
    check: {{type: tcp, port: {free_port()}}}
    recovery: {{service_crash: approve-first}}
workflows:
  hello:
    schedule: {{interval: 1h}}
    steps:
      - {{name: greet, action: run_command, command: [echo, hello]}}
"""


async def _unused_reload() -> dict[str, Any]:
    return {}


@pytest.fixture
async def api_client(tmp_path: Path) -> AsyncIterator[tuple[web.Application, TestClient[Any, Any]]]:
    """The real app (not started orchestrator) behind aiohttp's TestServer."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"api: {{listen: 127.0.0.1:{free_port()}}}\n"
        f"services:\n  up:\n    check: {{type: tcp, port: {free_port()}}}\n"
    )
    loaded = load_config(config, state_dir=tmp_path / "state")
    orchestrator = ControlPlaneOrchestrator(loaded)
    app = build_app(orchestrator, ApiSettings(loaded.model.api), _unused_reload)
    async with TestClient(TestServer(app)) as client:
        yield app, client
    orchestrator.store.close()


async def served_document(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.get(OPENAPI_PATH)
    assert response.status == 200
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


async def test_every_route_is_documented_with_its_method(
    api_client: tuple[web.Application, TestClient[Any, Any]],
) -> None:
    app, client = api_client
    document = await served_document(client)
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    missing = sorted(routes - documented)
    assert not missing, f"routes missing from {OPENAPI_PATH}: {missing}"
    assert documented <= routes, f"documented but not routed: {sorted(documented - routes)}"
    assert (("GET", OPENAPI_PATH)) in documented


async def test_an_unexpected_failure_is_still_the_json_error_shape(
    api_client: tuple[web.Application, TestClient[Any, Any]],
) -> None:
    app, client = api_client
    app[ORCHESTRATOR].store.close()  # every read of the history now raises
    response = await client.get("/api/v1/recoveries")
    assert response.status == 500
    body = await response.json()
    error_schema = {"$ref": "#/components/schemas/Error"}
    assert schema_errors(build_document(), error_schema, body) == []
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert "closed" not in body["error"]["message"], "internals stay in the log"


async def test_served_document_is_valid_openapi(
    api_client: tuple[web.Application, TestClient[Any, Any]],
) -> None:
    _, client = api_client
    document = await served_document(client)
    assert document["openapi"].startswith("3.1")
    validate_spec(document)
    validate_spec(build_document())  # the whole catalogue, routed or not


async def test_control_operations_need_a_bearer_token_with_a_scope(
    api_client: tuple[web.Application, TestClient[Any, Any]],
) -> None:
    _, client = api_client
    document = await served_document(client)
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    posts = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "post":
                posts += 1
                scope = operation["x-medic-scope"]
                assert scope in ("read", "operate", "admin"), (method, path)
                assert operation["security"] == [{"bearerAuth": [scope]}], (method, path)
                assert {"401", "403", "413"} <= set(operation["responses"]), (method, path)
            else:
                assert operation["security"] == [], (method, path)
    assert posts >= 10


def test_every_example_validates_against_its_schema() -> None:
    document = build_document()
    found = list(examples(document))
    # Each operation has examples for its answers, plus each named schema's own.
    assert len(found) > 3 * len(OPERATIONS)
    failures = [
        f"{where}: {error}"
        for where, schema, example in found
        for error in schema_errors(document, schema, example)
    ]
    assert not failures, "\n".join(failures)


def test_every_json_response_has_a_schema_and_an_example() -> None:
    for path, item in build_document()["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                for media, content in response["content"].items():
                    where = f"{method.upper()} {path} {status} {media}"
                    assert "schema" in content and "example" in content, where


def test_a_wrong_example_is_caught() -> None:
    # The checker itself must be able to fail: a service with a bad status.
    document = build_document()
    schema = {"$ref": "#/components/schemas/Service"}
    good = document["components"]["schemas"]["Service"]["example"]
    assert schema_errors(document, schema, good) == []
    errors = schema_errors(document, schema, {**good, "status": "fine", "status_since": "noon"})
    assert any(e.startswith("status:") for e in errors), errors
    assert any(e.startswith("status_since:") for e in errors), errors


# --- real answers of a running daemon ---------------------------------------------


class Checker:
    """Validates a daemon's answers against the document it serves."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        status, self.document = daemon.get(OPENAPI_PATH)
        assert status == 200
        self.checked: set[tuple[str, str, int]] = set()

    def call(
        self, method: str, template: str, path: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        token = TOKEN if method == "POST" else None
        status, answer = self.daemon.request(method, path or template, body, token=token)
        schema = response_schema(self.document, method, template, status)
        errors = schema_errors(self.document, schema, answer)
        assert not errors, f"{method} {path or template} -> {status}:\n" + "\n".join(errors)
        self.checked.add((method, template, status))
        return status, answer


def recoveries_of(daemon: DaemonProcess, service: str) -> list[dict[str, Any]]:
    _, body = daemon.get(f"/api/v1/recoveries?service={service}")
    return list(body["recoveries"])


@pytest.fixture
def busy_daemon(medic_daemon: DaemonFactory, listening_port: int) -> DaemonProcess:
    """A daemon with a healthy service, a recovered one, one waiting for approval
    and a workflow that has run."""
    daemon = medic_daemon(
        daemon_config(free_port(), listening_port),
        env={"MEDIC_API_TOKEN": TOKEN},
        playbooks={"harmless": HARMLESS_PLAYBOOK, "approve-first": APPROVAL_PLAYBOOK},
    )
    wait_for(
        # The harmless playbook completes but 'gone' stays down: unresolved.
        lambda: any(r["outcome"] == "unresolved" for r in recoveries_of(daemon, "gone")),
        15,
        message="a finished recovery of 'gone'",
    )
    wait_for(
        lambda: any(r["outcome"] == "waiting_approval" for r in recoveries_of(daemon, "gated")),
        15,
        message="a recovery of 'gated' waiting for approval",
    )
    status, run = daemon.post("/api/v1/workflows/hello/run", token=TOKEN)
    assert status == 200 and run["outcome"] == "succeeded", run
    return daemon


def test_real_reads_validate_against_the_document(busy_daemon: DaemonProcess) -> None:
    check = Checker(busy_daemon)
    check.call("GET", "/api/v1/health")
    check.call("GET", "/api/v1/status")
    _, services = check.call("GET", "/api/v1/services")
    assert {s["name"] for s in services["services"]} == {"up", "gone", "gated"}
    for name in ("up", "gone", "gated"):
        check.call("GET", "/api/v1/services/{name}", f"/api/v1/services/{name}")
    _, recent = check.call(
        "GET", "/api/v1/services/{name}/checks", "/api/v1/services/up/checks?limit=60"
    )
    assert recent["checks"] and recent["checks"][-1]["healthy"] is True
    _, recs = check.call("GET", "/api/v1/recoveries", "/api/v1/recoveries?limit=50&offset=0")
    assert recs["total"] >= 2 and any(r["steps"] for r in recs["recoveries"])
    for record in recs["recoveries"]:
        check.call("GET", "/api/v1/recoveries/{id}", f"/api/v1/recoveries/{record['id']}")
    check.call("GET", "/api/v1/workflows")
    check.call("GET", "/api/v1/workflows/{id}", "/api/v1/workflows/hello")
    _, runs = check.call("GET", "/api/v1/workflows/{id}/runs", "/api/v1/workflows/hello/runs")
    assert runs["runs"][0]["steps"][0]["output"] == "hello\n"
    check.call("GET", OPENAPI_PATH)
    if "/api/v1/audit" in check.document["paths"]:
        check.call("GET", "/api/v1/audit")
    # No fleet: here, so 404 (tests/test_fleet.py reads a fleet's view against the document).
    assert check.call("GET", "/api/v1/fleet")[0] == 404
    json_reads = {
        path
        for path, item in check.document["paths"].items()
        if "get" in item and "application/json" in item["get"]["responses"]["200"]["content"]
    }
    checked = {t for m, t, s in check.checked if m == "GET" and s == 200}
    assert json_reads - {"/api/v1/fleet"} == checked


def test_real_controls_and_errors_validate_against_the_document(
    busy_daemon: DaemonProcess,
) -> None:
    check = Checker(busy_daemon)
    svc = "/api/v1/services/{name}"
    assert check.call("POST", svc + "/check", "/api/v1/services/up/check")[0] == 200
    status, record = check.call(
        "POST", svc + "/recover", "/api/v1/services/up/recover", {"dry_run": True}
    )
    assert status == 200 and record["outcome"] == "dry_run"
    assert check.call("POST", svc + "/reset", "/api/v1/services/gone/reset")[0] == 200
    waiting = next(
        r for r in recoveries_of(busy_daemon, "gated") if r["outcome"] == "waiting_approval"
    )
    rec = "/api/v1/recoveries/{id}"
    status, approved = check.call(
        "POST", rec + "/approve", f"/api/v1/recoveries/{waiting['id']}/approve"
    )
    assert status == 200 and approved["outcome"] != "waiting_approval"
    status, _ = check.call("POST", rec + "/reject", f"/api/v1/recoveries/{waiting['id']}/reject")
    assert status == 409
    wf = "/api/v1/workflows/{id}"
    assert check.call("POST", wf + "/start", "/api/v1/workflows/hello/start")[0] == 202
    assert check.call("POST", wf + "/stop", "/api/v1/workflows/hello/stop")[0] == 200
    assert check.call("POST", "/api/v1/reload")[0] == 200
    # errors
    assert check.call("GET", svc, "/api/v1/services/nope")[0] == 404
    assert check.call("GET", rec, "/api/v1/recoveries/999999")[0] == 404
    assert check.call("GET", "/api/v1/recoveries", "/api/v1/recoveries?limit=-1")[0] == 400
    assert check.call("GET", wf + "/runs", "/api/v1/workflows/hello/runs?limit=x")[0] == 400
    assert check.call("POST", wf + "/run", "/api/v1/workflows/nope/run")[0] == 404
    bad = {"failure_type": "gremlins"}
    assert check.call("POST", svc + "/recover", "/api/v1/services/up/recover", bad)[0] == 422
    if "/api/v1/alerts" in check.document["paths"]:
        alert = {"status": "firing", "labels": {"service": "up", "failure_type": "service_crash"}}
        payload = {"version": "4", "status": "firing", "alerts": [alert, {**alert, "labels": {}}]}
        assert check.call("POST", "/api/v1/alerts", body=payload)[0] == 200
        assert check.call("POST", "/api/v1/alerts", body={"alerts": 3})[0] == 422
