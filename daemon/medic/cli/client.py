"""The HTTP client behind the control commands: where the running daemon's
API is (``--url``, else the config's ``api.listen``), one request to it with
the token from ``$MEDIC_API_TOKEN``, and the errors that say why a call
failed (``DaemonUnreachable``: not running; ``StillRunning``: the CLI stopped
waiting; ``ApiFailure``: the daemon said no)."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medic.cli import CliError
from medic.config.load import load_config
from medic.core.errors import ConfigFileError, ConfigInvalid

DEFAULT_URL = "http://127.0.0.1:8321"
TOKEN_ENV = "MEDIC_API_TOKEN"
OPERATOR_ENV = "MEDIC_OPERATOR"
CONNECT_TIMEOUT_S = 10.0
"""Making the connection; a daemon that cannot be reached in this long is not running."""
READ_TIMEOUT_S = 60.0
"""Answering a read (status, list): these never wait on work."""
EXIT_UNREACHABLE, EXIT_STILL_RUNNING = 3, 4
READ_WAIT = -1.0
"""``wait=`` default: READ_TIMEOUT_S, looked up at each call."""


class DaemonUnreachable(CliError):
    pass


class StillRunning(CliError):
    """The CLI stopped waiting (``--timeout``, Ctrl-C); the daemon goes on."""

    def __init__(self, message: str, exit_code: int = EXIT_STILL_RUNNING) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BadUrl(CliError):
    pass


class ApiFailure(CliError):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        raw = body.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        super().__init__(f"HTTP {status}: {error.get('message', body)}")
        self.status = status
        self.code = str(error.get("code") or "")


class Target:
    """Where the daemon's API is, and how that was found (for "not running")."""

    def __init__(self, url: str, note: str = "") -> None:
        self.url = url
        self.note = note


def normalize_url(raw: str) -> str:
    """``--url`` as given: ``http://host:port``, ``host:port`` (api.listen's
    form) or either with ``/api/v1`` on the end."""
    url = raw.strip()
    if "://" not in url:
        url = f"http://{url}"
    url = url.rstrip("/").removesuffix("/api/v1").rstrip("/")
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise BadUrl(f"--url must be like http://127.0.0.1:8321 or 127.0.0.1:8321 (got {raw!r})")
    return url


def base_url(args: argparse.Namespace, default_config: Callable[[], Path]) -> Target:
    if args.url:
        return Target(normalize_url(str(args.url)))
    path = args.config or default_config()
    fallback = DEFAULT_URL.removeprefix("http://")
    try:
        api = load_config(path).model.api
    except ConfigFileError:
        return Target(
            DEFAULT_URL,
            f"no config found at {Path(path).expanduser().resolve()}, tried {fallback};"
            " use --url or --config",
        )
    except ConfigInvalid:
        return Target(
            DEFAULT_URL,
            f"the config {Path(path).expanduser().resolve()} is invalid (see `medic validate`),"
            f" tried {fallback}; use --url or fix the config",
        )
    host = api.host if api.host not in ("0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return Target(f"http://{host}:{api.port}")


def quote(name: str) -> str:
    """A service or workflow name as one path segment ('a/b', 'my web', '50%')."""
    return urllib.parse.quote(name, safe="")


def request(
    url: str,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    *,
    wait: float | None = READ_WAIT,
    doing: str | None = None,
) -> Any:
    """One API call. ``wait`` bounds the answer once connected (None: as long as
    it takes); ``doing`` names the work the daemon goes on with if the CLI
    stops waiting ("workflow slow is still running ...")."""
    if wait == READ_WAIT:
        wait = READ_TIMEOUT_S
    parts = urllib.parse.urlsplit(url)
    data = json.dumps(body).encode() if body is not None else None
    # Who calls, for the audit trail and ``paused_by``.
    headers = {
        "Accept": "application/json",
        "X-Medic-Operator": os.environ.get(OPERATOR_ENV) or "cli",
    }
    if data is not None:
        headers["Content-Type"] = "application/json"
    token = os.environ.get(TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = _connect(parts)
    try:
        if conn.sock is not None:
            conn.sock.settimeout(wait)
        path = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        status, raw = _exchange(
            conn, method, path, data, headers, wait=wait, doing=doing, base=_base(parts)
        )
    finally:
        conn.close()
    try:
        payload = json.loads(raw or b"null")
    except json.JSONDecodeError:
        payload = None
    if status >= 400:
        raise ApiFailure(status, payload if isinstance(payload, dict) else {})
    return payload


def _base(parts: urllib.parse.SplitResult) -> str:
    return f"{parts.scheme}://{parts.netloc}"


def _connect(parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    """A connection, or DaemonUnreachable: the only case that says "not running"."""
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=CONNECT_TIMEOUT_S)
    try:
        conn.connect()
    except OSError as exc:
        conn.close()
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no connection within {CONNECT_TIMEOUT_S:g}s"
        raise DaemonUnreachable(
            f"the medic daemon is not running at {_base(parts)} ({reason.lower()})"
        ) from None
    return conn


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    data: bytes | None,
    headers: dict[str, str],
    *,
    wait: float | None,
    doing: str | None,
    base: str,
) -> tuple[int, bytes]:
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except TimeoutError:
        if doing:
            raise StillRunning(
                f"{doing} is still running in the daemon at {base}: the CLI stopped"
                f" waiting after {wait:g}s (--timeout) and the daemon goes on with it;"
            ) from None
        raise DaemonUnreachable(
            f"the medic daemon at {base} did not answer within {wait:g}s"
            " (it accepted the connection: busy or stuck?)"
        ) from None
    except KeyboardInterrupt:
        if doing:
            raise StillRunning(f"interrupted: {doing} goes on in the daemon;", 130) from None
        raise
    except (http.client.HTTPException, ConnectionError) as exc:
        raise DaemonUnreachable(
            f"the medic daemon at {base} closed the connection without an answer"
            f" ({type(exc).__name__}: did it stop or restart?)"
        ) from None
