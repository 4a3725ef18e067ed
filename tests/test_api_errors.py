"""Bad requests get clean answers: every error is ``{"error": {"code", "message"}}``
with the right status, for malformed JSON, wrong types, unknown keys, oversized
bodies (with and without a Content-Length), unknown routes and wrong methods,
and the daemon keeps answering afterwards."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from medic.api.openapi import build_document
from tests.apischema import schema_errors
from tests.helpers import free_port
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.http import http_request

TOKEN = "errors-test-token"
MAX_BODY = 2048
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}
RECOVER = "/api/v1/services/up/recover"


@pytest.fixture
def daemon(medic_daemon: DaemonFactory, listening_port: int) -> DaemonProcess:
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN, max_body_bytes: {MAX_BODY}}}
monitoring: {{dry_run: true}}
services:
  up:
    check: {{type: tcp, port: {listening_port}}}
"""
    return medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})


def raw(
    daemon: DaemonProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    status, data = http_request(daemon.url + path, method, body, headers)
    return status, json.loads(data)


def assert_error(answer: tuple[int, Any], status: int, code: str) -> dict[str, Any]:
    got_status, body = answer
    assert (got_status, body["error"]["code"]) == (status, code), body
    error_schema = {"$ref": "#/components/schemas/Error"}
    assert schema_errors(build_document(), error_schema, body) == []
    assert body["error"]["message"]
    return dict(body["error"])


def test_malformed_json_is_400(daemon: DaemonProcess) -> None:
    for bad in (b"{bad", b'{"dry_run": tru', b"\xff\xfe{}", b"[" * 100_000):
        body = bad[:MAX_BODY]
        assert_error(raw(daemon, "POST", RECOVER, body, JSON_AUTH), 400, "INVALID_JSON")


def test_malformed_json_is_400_on_endpoints_that_take_no_body(daemon: DaemonProcess) -> None:
    for path in ("/api/v1/services/up/check", "/api/v1/services/up/reset", "/api/v1/reload"):
        assert_error(raw(daemon, "POST", path, b"{junk", JSON_AUTH), 400, "INVALID_JSON")
    _, audit = daemon.get("/api/v1/audit?kind=operator.*")
    assert audit["audit"] == [], "a refused request must not act"


def test_401_names_the_bearer_scheme(daemon: DaemonProcess) -> None:
    host, _, port = daemon.url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/api/v1/services/up/check")
        response = connection.getresponse()
        assert response.status == 401
        assert response.getheader("WWW-Authenticate", "").startswith("Bearer")
        assert json.loads(response.read())["error"]["code"] == "UNAUTHORIZED"
    finally:
        connection.close()


def test_a_body_that_is_not_an_object_is_422(daemon: DaemonProcess) -> None:
    for body in (b"[1, 2]", b'"recover"', b"null", b"42"):
        assert_error(raw(daemon, "POST", RECOVER, body, JSON_AUTH), 422, "INVALID_BODY")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"failure_type": 5}, "INVALID_FAILURE_TYPE"),
        ({"failure_type": ["service_crash"]}, "INVALID_FAILURE_TYPE"),
        ({"failure_type": "gremlins"}, "INVALID_FAILURE_TYPE"),
        ({"dry_run": "yes"}, "INVALID_BODY"),
        ({"dry_run": 1}, "INVALID_BODY"),
        ({"dryrun": True}, "INVALID_BODY"),
    ],
)
def test_wrong_types_and_unknown_keys_are_422(
    daemon: DaemonProcess, body: dict[str, Any], code: str
) -> None:
    error = assert_error(daemon.post(RECOVER, body, token=TOKEN), 422, code)
    assert next(iter(body)) in error["message"]
    _, recoveries = daemon.get("/api/v1/recoveries")
    assert recoveries["total"] == 0, "a refused request must not start a recovery"


def test_an_oversized_body_is_413_everywhere(daemon: DaemonProcess) -> None:
    big = json.dumps({"failure_type": "service_crash", "pad": "x" * MAX_BODY}).encode()
    for path in (RECOVER, "/api/v1/services/up/check", "/api/v1/reload"):
        error = assert_error(
            raw(daemon, "POST", path, big, JSON_AUTH), 413, "REQUEST_ENTITY_TOO_LARGE"
        )
        assert str(MAX_BODY) in error["message"]
    # Without the token it is a 401: auth comes first, a stranger learns no limits.
    assert_error(raw(daemon, "POST", RECOVER, big), 401, "UNAUTHORIZED")


def test_an_oversized_chunked_body_is_413(daemon: DaemonProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        chunks = iter([b'{"pad": "', b"x" * (MAX_BODY + 100), b'"}'])
        conn.request("POST", RECOVER, body=chunks, headers=JSON_AUTH, encode_chunked=True)
        response = conn.getresponse()
        answer = (response.status, json.loads(response.read()))
    finally:
        conn.close()
    assert_error(answer, 413, "REQUEST_ENTITY_TOO_LARGE")


def test_unknown_routes_are_404_json(daemon: DaemonProcess) -> None:
    error = assert_error(daemon.get("/api/v1/nope"), 404, "NOT_FOUND")
    assert "/api/v1/nope" in error["message"]
    assert_error(daemon.post("/api/v1/nope", token=TOKEN), 404, "NOT_FOUND")
    assert_error(daemon.post("/api/v1/nope"), 404, "NOT_FOUND")
    assert_error(daemon.get("/api/v1/services/nope"), 404, "SERVICE_NOT_FOUND")
    assert_error(daemon.get("/api/v1/workflows/nope"), 404, "WORKFLOW_NOT_FOUND")
    for rec_id in ("abc", "0", "-3", str(2**63), "99999"):
        assert_error(daemon.get(f"/api/v1/recoveries/{rec_id}"), 404, "RECOVERY_NOT_FOUND")


def test_wrong_methods_are_405_json_with_allow(daemon: DaemonProcess) -> None:
    for method, path, allowed in (
        ("DELETE", "/api/v1/health", "GET, HEAD"),
        ("POST", "/api/v1/services", "GET, HEAD"),
        ("GET", "/api/v1/reload", "POST"),
        ("PUT", RECOVER, "POST"),
    ):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            answer = (response.status, json.loads(response.read()))
        finally:
            conn.close()
        error = assert_error(answer, 405, "METHOD_NOT_ALLOWED")
        assert allowed in error["message"], error
        assert response.headers["Allow"] == allowed


def test_bad_queries_are_400(daemon: DaemonProcess) -> None:
    for query in ("limit=-1", "limit=abc", "limit=1001", "offset=-5", "limit=1e3"):
        error = assert_error(daemon.get(f"/api/v1/recoveries?{query}"), 400, "INVALID_QUERY")
        assert query.split("=")[0] in error["message"]


def test_the_daemon_still_answers_after_bad_requests(daemon: DaemonProcess) -> None:
    test_malformed_json_is_400(daemon)
    test_an_oversized_body_is_413_everywhere(daemon)
    status, health = daemon.get("/api/v1/health")
    assert status == 200 and health["status"] == "healthy"
    status, record = daemon.post(RECOVER, {"dry_run": True}, token=TOKEN)
    assert status == 200 and record["outcome"] == "dry_run"
