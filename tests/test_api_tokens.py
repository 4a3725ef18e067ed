"""Scoped API tokens: ``api.tokens`` beside the single ``api.token_env``
(scope admin). Each route's scope comes from ``app.ROUTES``; a token without
it is answered 403, a missing or unknown one 401; the audit trail names the
token (never its value). Off loopback, reads need a ``read`` token, and a
non-loopback ``api.listen`` with no token at all is a config error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from medic.api.app import ROUTES, build_app
from medic.api.auth import SCOPE_ORDER
from medic.api.state import ApiSettings
from tests.helpers import REPO_ROOT, free_port
from tests.plugins.inprocess import OrchestratorFactory
from tests.test_validate_cli import EXIT_INVALID, medic_validate, write

ADMIN, OPS, RO = "admin-7f3a9c", "ops-51be0d", "ro-c02e44"
ENV = {"T_ADMIN": ADMIN, "T_OPS": OPS}

Client = TestClient[Any, Any]
ClientFactory = Callable[[str], Awaitable[Client]]


def api_section(listen: str, extra: str = "") -> str:
    return f"""api:
  listen: {listen}
  token_env: T_ADMIN
  tokens:
    - {{name: grafana, token_file: ro.token, scopes: [read]}}
    - {{name: oncall, token_env: T_OPS, scopes: [read, operate]}}
{extra}"""


@pytest.fixture
async def client_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orchestrator: OrchestratorFactory
) -> AsyncIterator[ClientFactory]:
    """The real app of a started orchestrator behind aiohttp's TestServer on
    127.0.0.1, whatever ``api.listen`` says: the auth rules follow the
    configured address."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "ro.token").write_text(RO + "\n")
    opened: list[Client] = []

    async def reload() -> dict[str, Any]:
        return {"reloaded": True}

    async def make(api: str) -> Client:
        config = f"{api}\nservices:\n  web:\n    check: {{type: tcp, port: {free_port()}}}\n"
        orch = await orchestrator(config)
        app = build_app(orch, ApiSettings(orch.config.model.api), reload)
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def status_of(client: Client, method: str, path: str, token: str | None) -> tuple[int, Any]:
    response = await client.request(method, path, headers=bearer(token))
    return response.status, await response.json()


async def test_each_scope_opens_its_routes_and_no_others(client_for: ClientFactory) -> None:
    client = await client_for(api_section("127.0.0.1:8321"))
    check = "/api/v1/services/web/check"
    assert (await status_of(client, "POST", check, None))[0] == 401
    assert (await status_of(client, "POST", check, "not-a-token"))[0] == 401
    status, body = await status_of(client, "POST", check, RO)
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    assert "grafana" in body["error"]["message"] and RO not in body["error"]["message"]
    assert (await status_of(client, "POST", check, OPS))[0] == 200
    assert (await status_of(client, "POST", check, ADMIN))[0] == 200
    assert (await status_of(client, "POST", "/api/v1/reload", OPS))[0] == 403
    assert (await status_of(client, "POST", "/api/v1/reload", ADMIN))[0] == 200
    assert (await status_of(client, "POST", "/api/v1/workflows/x/start", OPS))[0] == 403
    # Reads stay open on loopback, as before.
    assert (await status_of(client, "GET", "/api/v1/services", None))[0] == 200


async def test_the_audit_trail_names_the_token_never_its_value(
    client_for: ClientFactory,
) -> None:
    client = await client_for(api_section("127.0.0.1:8321"))
    await status_of(client, "POST", "/api/v1/services/web/check", OPS)
    await status_of(client, "POST", "/api/v1/reload", ADMIN)
    _, body = await status_of(client, "GET", "/api/v1/audit?kind=operator.*", None)
    tokens = {entry["kind"]: entry["data"]["token"] for entry in body["audit"]}
    assert tokens == {"operator.check": "oncall", "operator.reload": "default"}
    assert not {ADMIN, OPS, RO} & {str(v) for e in body["audit"] for v in e["data"].values()}


async def test_off_loopback_reads_need_a_read_token(client_for: ClientFactory) -> None:
    client = await client_for(api_section("0.0.0.0:8321"))
    assert (await status_of(client, "GET", "/api/v1/services", None))[0] == 401
    assert (await status_of(client, "GET", "/metrics?name[]=x", "wrong"))[0] == 401
    for token in (RO, OPS, ADMIN):
        response = await client.get("/api/v1/services", headers=bearer(token))
        assert response.status == 200, token
    # A liveness probe needs no token.
    assert (await status_of(client, "GET", "/api/v1/health", None))[0] == 200


async def test_off_loopback_reads_can_be_opened_on_purpose(client_for: ClientFactory) -> None:
    client = await client_for(api_section("0.0.0.0:8321", "  allow_unauthenticated_reads: true"))
    assert (await status_of(client, "GET", "/api/v1/services", None))[0] == 200
    assert (await status_of(client, "POST", "/api/v1/services/web/check", None))[0] == 401


async def test_auth_reads_closes_reads_on_loopback_too(client_for: ClientFactory) -> None:
    client = await client_for(api_section("127.0.0.1:8321", "  auth_reads: true"))
    assert (await status_of(client, "GET", "/api/v1/services", None))[0] == 401
    assert (await status_of(client, "GET", "/api/v1/services", RO))[0] == 200


def test_every_route_names_a_known_scope() -> None:
    for method, path, _handler, scope in ROUTES:
        assert scope in SCOPE_ORDER, (method, path)
        if method == "GET":
            assert scope == "read", (method, path)


def test_a_non_loopback_listen_without_any_token_is_a_config_error(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        f"api:\n  listen: 0.0.0.0:{free_port()}\n"
        f"services:\n  web:\n    check: {{type: tcp, port: 1}}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    expected = f"{config}:2: api.listen: 0.0.0.0 is not a loopback address"
    assert expected in result.stderr
    # `medic run` refuses the same way, before it listens anywhere.
    run = subprocess.run(
        [sys.executable, "-m", "medic", "run", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "daemon")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == EXIT_INVALID and expected in run.stderr, run.stderr


def test_token_entries_are_checked(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        "api:\n  tokens:\n"
        "    - {name: a, token_env: X, token_file: y, scopes: [read]}\n"
        "    - {name: b, token_env: X, scopes: [root]}\n"
        "    - {name: a, token_env: Z, scopes: [read]}\n",
    )
    out = medic_validate("--config", str(config))
    text = out.stdout + out.stderr
    assert out.returncode == EXIT_INVALID, text
    assert f"{config}:3: api.tokens[0]: give exactly one of token_env and token_file" in text
    assert f"{config}:4: api.tokens[1].scopes[0]:" in text
