"""The http_request action against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from medic.config.actions import HttpRequestOptions
from medic.config.load import load_config
from medic.core.errors import ConfigInvalid
from medic.heal.actions.base import ActionContext, ActionResult
from medic.heal.actions.http_request import OUTPUT_TAIL_BYTES, HttpRequest
from medic.heal.steps import run_step
from medic.host.resources import Resources
from tests.helpers import free_port


class Recorder:
    """What the server received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def load(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "method": request.method,
                "content_type": request.content_type,
                "body": await request.text(),
                "token": request.headers.get("X-Token"),
            }
        )
        return web.json_response({"loaded": len(self.requests)}, status=201)


def _app(recorder: Recorder) -> web.Application:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503, text="warehouse is read-only")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="x" * 100_000 + "THE END")

    app = web.Application()
    app.router.add_route("*", "/load", recorder.load)
    app.router.add_get("/fail", fail)
    app.router.add_get("/big", big)
    return app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(recorder: Recorder) -> AsyncIterator[TestServer]:
    test_server = TestServer(_app(recorder), host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ActionContext]:
    resources = Resources()
    yield ActionContext(resources=resources, state_dir=tmp_path)
    await resources.close()


def _options(**options: Any) -> HttpRequestOptions:
    return HttpRequestOptions.model_validate({"action": "http_request", **options})


async def _run(ctx: ActionContext, **options: Any) -> ActionResult:
    return await HttpRequest(_options(**options)).run(ctx)


async def test_post_json(ctx: ActionContext, server: TestServer, recorder: Recorder) -> None:
    result = await _run(
        ctx,
        method="post",
        url=str(server.make_url("/load")),
        json={"rows": [1, 2]},
        headers={"X-Token": "t0k"},
    )
    assert result.ok
    assert result.detail == "HTTP 201 Created"
    assert json.loads(result.output) == {"loaded": 1}
    assert result.data == {"status": 201}
    assert recorder.requests == [
        {
            "method": "POST",
            "content_type": "application/json",
            "body": '{"rows": [1, 2]}',
            "token": "t0k",
        }
    ]


async def test_text_body(ctx: ActionContext, server: TestServer, recorder: Recorder) -> None:
    result = await _run(ctx, method="PUT", url=str(server.make_url("/load")), body="a,b\n1,2\n")
    assert result.ok
    assert recorder.requests[0]["method"] == "PUT"
    assert recorder.requests[0]["body"] == "a,b\n1,2\n"


async def test_unexpected_status_fails_with_the_body(
    ctx: ActionContext, server: TestServer
) -> None:
    result = await _run(ctx, url=str(server.make_url("/fail")))
    assert not result.ok
    assert result.detail == "HTTP 503 Service Unavailable (expected 2xx)"
    assert result.output == "warehouse is read-only"


async def test_expect_status_accepts_codes_classes_and_ranges(
    ctx: ActionContext, server: TestServer
) -> None:
    result = await _run(ctx, url=str(server.make_url("/fail")), expect_status=[200, "500-503"])
    assert result.ok


async def test_output_is_the_tail_of_the_body(ctx: ActionContext, server: TestServer) -> None:
    result = await _run(ctx, url=str(server.make_url("/big")))
    assert len(result.output) == OUTPUT_TAIL_BYTES
    assert result.output.endswith("xTHE END")


async def test_refused_fails_the_step_with_the_error(ctx: ActionContext) -> None:
    url = f"http://127.0.0.1:{free_port()}/load"
    outcome = await run_step(_options(method="POST", url=url), ctx)
    assert outcome.outcome == "failed"
    assert outcome.description == f"POST {url}"
    assert "Cannot connect to host 127.0.0.1" in outcome.detail


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "/relative"}, "is not an absolute http:// or https:// URL"),
        ({"url": "http://x/", "method": "FETCH"}, "unknown HTTP method 'FETCH'"),
        ({"url": "http://x/", "json": {}, "body": "x"}, "give either json or body, not both"),
        ({"url": "http://x/", "expect_status": ["2XX", "abc"]}, "invalid status 'abc'"),
        ({"url": "http://x/", "jsn": {}}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _options(**options)


def test_config_errors_name_the_yaml_key_json(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "workflows:\n"
        "  w:\n"
        "    steps:\n"
        "      - {name: a, action: http_request, url: 'http://127.0.0.1/x', jsn: {}}\n"
    )
    with pytest.raises(ConfigInvalid) as caught:
        load_config(config)
    message = str(caught.value)
    assert message.startswith(
        f"{config}:4: workflows.w.steps[0].jsn: unknown key 'jsn' (did you mean 'json'?)"
    )
    assert "json_body" not in message
