"""HTTP from the tests' side: one stdlib request helper, and a port that listens.

Fixtures
    listening_port  function  a port on 127.0.0.1 that accepts connections
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

# No proxy for anything here: every address the tests talk to is local.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP request with the stdlib; returns (status, body), also for 4xx/5xx."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _http.open(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read()


def answers_200(url: str, timeout: float = 1.0) -> bool:
    """Whether ``url`` answers 200 now (a refused or broken connection: no)."""
    try:
        status, _ = http_request(url, timeout=timeout)
    except OSError:
        return False
    return status == 200


def parse_body(raw: bytes) -> Any:
    """A response body as JSON, or as text when it is not JSON, or None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (and never answers): a ``tcp``
    check against it passes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(100)
    yield server.getsockname()[1]
    server.close()
