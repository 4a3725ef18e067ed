"""Webhook notifications: events from the bus, POSTed as JSON to the
``notifications.webhooks`` of the config.

Each webhook has its own bounded queue, worker, retries and backoff
(``medic.tell.delivery``, shared with the Apprise notifier), so a slow or dead
receiver never blocks a check, a recovery or another webhook. A delivery is
retried on 5xx, 408, 429, timeouts and connection errors, up to
``max_retries``; any other 4xx or 3xx is the receiver refusing it and is not
retried.

The body is ``{"event", "timestamp", "id", "host", "data"}``; the headers carry
``X-Medic-Event``, ``X-Medic-Delivery`` (the same for every retry of one
delivery) and, when the webhook has a secret, ``X-Medic-Signature:
sha256=<hex HMAC-SHA256 of the raw body>``. The secret is read at send time,
so a rotated ``secret_file`` applies without a reload.

At shutdown, what is queued gets up to 5 s (one more try each, without
waiting out backoffs); the rest is dropped.

Outcomes in ``medic_webhook_deliveries_total{webhook,outcome}``: ``delivered``,
``retried`` (one per retry), ``failed`` (retries spent, or no secret to sign
with), ``rejected`` (a 4xx) and ``dropped`` (queue full, webhook removed, or
still queued when the daemon stopped).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import aiohttp

from medic.config.models import NotificationsConfig, WebhookConfig
from medic.core.bus import Event
from medic.core.errors import MedicError
from medic.core.redact import SecretValues
from medic.tell.delivery import (
    DEFAULT_FLUSH_S,
    OUTCOMES,
    Attempt,
    Deliveries,
    Lane,
    Send,
    event_matches,
    retry_delay,
    test_row,
)
from medic.tell.metrics import Metrics

RETRYABLE_4XX = frozenset({408, 429})

SessionFactory = Callable[[], aiohttp.ClientSession]


class SecretUnavailable(MedicError):
    """The webhook names a secret that cannot be read now."""


def encode_body(event: Event, host: str, secrets: SecretValues | None = None) -> bytes:
    """The delivery's JSON, with the known secret values (and URL passwords) masked."""
    payload = {
        "event": event.name,
        "timestamp": event.timestamp,
        "id": event.id,
        "host": host,
        "data": event.data,
    }
    text = json.dumps(payload, default=str, separators=(",", ":"))
    return (text if secrets is None else secrets.redact(text)).encode()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Medic-Signature`` value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def read_secret(config: WebhookConfig) -> str | None:
    """The webhook's secret now; None when it has none; raises when it cannot be read."""
    if config.secret_file is not None:
        try:
            secret = config.secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretUnavailable(f"cannot read secret_file {config.secret_file}: {exc}") from exc
        if not secret:
            raise SecretUnavailable(f"secret_file {config.secret_file} is empty")
        return secret
    if config.secret_env:
        secret = os.environ.get(config.secret_env, "")
        if not secret:
            raise SecretUnavailable(f"environment variable {config.secret_env} is not set")
        return secret
    return None


class WebhookDispatcher(Deliveries[WebhookConfig, Event]):
    """An EventBus listener that delivers matching events to each webhook."""

    notifier = "webhook"

    def __init__(
        self,
        config: NotificationsConfig,
        *,
        session: SessionFactory,
        metrics: Metrics,
        host: str | None = None,
        secrets: SecretValues | None = None,
    ) -> None:
        super().__init__(config.queue_size)
        self._session = session
        self._secrets = secrets
        self._metrics = metrics
        self.host = host or socket.gethostname()
        for hook in config.webhooks:
            self.add(hook)

    def __call__(self, event: Event) -> None:
        """Queue the event for every webhook that wants it; never blocks."""
        if self.closed:
            return
        for lane in self.lanes.values():
            if event_matches(lane.config.events, event.name):
                self.enqueue(lane, event)

    def apply(self, config: NotificationsConfig) -> dict[str, list[str]]:
        """Take a reloaded config: queued events of kept webhooks stay queued."""
        return self.apply_targets(config.webhooks, config.queue_size)

    def add(self, config: WebhookConfig) -> Lane[WebhookConfig, Event]:
        for outcome in OUTCOMES:
            self._metrics.webhook_deliveries.labels(config.name, outcome)
        return super().add(config)

    def count(self, name: str, outcome: str) -> None:
        self._metrics.webhook_deliveries.labels(name, outcome).inc()

    def describe(self, item: Event) -> str:
        return item.name

    def sender(self, lane: Lane[WebhookConfig, Event], item: Event) -> Send:
        body = encode_body(item, self.host, self._secrets)
        delivery = str(uuid.uuid4())

        async def send(attempt: int) -> Attempt:
            return await self._attempt(lane.config, item, body, delivery, attempt)

        return send

    async def test(self, name: str | None = None) -> list[dict[str, str]]:
        """A signed ``notify.test`` event to every webhook (or ``name``), whatever
        its ``events``: one attempt each, at once, past the queue."""
        configs = [lane.config for lane in self.lanes.values() if name in (None, lane.config.name)]
        return list(await asyncio.gather(*(self._test_one(config) for config in configs)))

    async def _test_one(self, config: WebhookConfig) -> dict[str, str]:
        event = Event(0, "notify.test", {"service": "medic", "detail": "medic test message"})
        body = encode_body(event, self.host, self._secrets)
        result = await self._attempt(config, event, body, str(uuid.uuid4()), 1)
        row = test_row(config.name, "webhook", where(config.url), result.verdict, result.detail)
        self.count(config.name, row["outcome"])
        return row

    async def _attempt(
        self, config: WebhookConfig, event: Event, body: bytes, delivery: str, attempt: int
    ) -> Attempt:
        try:
            headers = _headers(config, event, body, delivery, attempt)
        except SecretUnavailable as exc:
            return Attempt("failed", f"not sent: {exc}")
        timeout = aiohttp.ClientTimeout(total=config.timeout)
        try:
            async with self._session().post(
                config.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                await response.read()
                return _judge(response.status, response.headers)
        except TimeoutError:
            return Attempt("retry", f"no answer within {config.timeout:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return Attempt("retry", f"{type(exc).__name__}: {exc}")


def where(url: str) -> str:
    """A webhook's URL as people read it: scheme and host, never its path or
    query (where chat services keep their tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


def _headers(
    config: WebhookConfig, event: Event, body: bytes, delivery: str, attempt: int
) -> dict[str, str]:
    headers = {
        **config.headers,
        "Content-Type": "application/json",
        "User-Agent": "medic-webhook",
        "X-Medic-Event": event.name,
        "X-Medic-Delivery": delivery,
        "X-Medic-Attempt": str(attempt),
    }
    secret = read_secret(config)
    if secret is not None:
        headers["X-Medic-Signature"] = sign(secret, body)
    return headers


def _judge(status: int, headers: Mapping[str, str]) -> Attempt:
    detail = f"HTTP {status}"
    if 200 <= status < 300:
        return Attempt("delivered", detail)
    if status >= 500 or status in RETRYABLE_4XX:
        return Attempt("retry", detail, _retry_after(headers.get("Retry-After")))
    return Attempt("rejected", detail)


def _retry_after(value: str | None) -> float | None:
    # Only the delay-seconds form; an HTTP date falls back to our own backoff.
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


__all__ = [
    "DEFAULT_FLUSH_S",
    "SecretUnavailable",
    "WebhookDispatcher",
    "encode_body",
    "event_matches",
    "read_secret",
    "retry_delay",
    "sign",
    "where",
]
