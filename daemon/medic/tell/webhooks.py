"""Webhook notifications: events from the bus, POSTed as JSON to the
``notifications.webhooks`` of the config.

Each webhook has its own bounded queue and one worker task, so a slow or dead
receiver never blocks a check, a recovery or another webhook: the bus
listener only enqueues, and when a queue is full its oldest event is dropped
(and counted). A delivery is retried with exponential backoff and jitter on
5xx, 408, 429, timeouts and connection errors, up to ``max_retries``; any
other 4xx or 3xx is the receiver refusing it and is not retried.

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
import contextlib
import hashlib
import hmac
import json
import os
import random
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

from medic.config.models import NotificationsConfig, WebhookConfig
from medic.core.bus import Event
from medic.core.errors import MedicError
from medic.core.logging import get_logger
from medic.core.redact import SecretValues
from medic.tell.metrics import Metrics

log = get_logger("Notifications")

OUTCOMES = ("delivered", "retried", "failed", "rejected", "dropped")
RETRYABLE_4XX = frozenset({408, 429})
_LOG_EVERY_DROP = 100
DEFAULT_FLUSH_S = 5.0
"""How long a stopping daemon waits for queued deliveries."""

SessionFactory = Callable[[], aiohttp.ClientSession]
Verdict = Literal["delivered", "rejected", "retry", "failed"]


class SecretUnavailable(MedicError):
    """The webhook names a secret that cannot be read now."""


def event_matches(patterns: Sequence[str], name: str) -> bool:
    """``*`` is every event, ``recovery.*`` every event under ``recovery.``, else exact."""
    for pattern in patterns:
        if pattern in ("*", name):
            return True
        if pattern.endswith(".*") and name.startswith(pattern[:-1]):
            return True
    return False


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


def retry_delay(config: WebhookConfig, retry: int, retry_after: float | None = None) -> float:
    """Seconds before retry number ``retry`` (1-based); honours a receiver's Retry-After."""
    b = config.backoff
    delay = min(b.max, b.initial * b.factor ** max(0, retry - 1))
    delay += random.uniform(-delay * b.jitter, delay * b.jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, b.max))
    return max(0.0, delay)


@dataclass(frozen=True)
class Attempt:
    verdict: Verdict
    detail: str
    retry_after: float | None = None


@dataclass
class _Hook:
    """One webhook: its config, its queue and its worker."""

    config: WebhookConfig
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    in_flight: Event | None = None
    dropped: int = 0


class WebhookDispatcher:
    """An EventBus listener that delivers matching events to each webhook."""

    def __init__(
        self,
        config: NotificationsConfig,
        *,
        session: SessionFactory,
        metrics: Metrics,
        host: str | None = None,
        secrets: SecretValues | None = None,
    ) -> None:
        self._session = session
        self._secrets = secrets
        self._metrics = metrics
        self.host = host or socket.gethostname()
        self.queue_size = config.queue_size
        self._hooks: dict[str, _Hook] = {}
        self._running = False
        self._closed = False
        self._stopping = asyncio.Event()
        for hook in config.webhooks:
            self._add(hook)

    # the bus listener ----------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Queue the event for every webhook that wants it; never blocks."""
        if self._closed:
            return
        for hook in self._hooks.values():
            if event_matches(hook.config.events, event.name):
                self._enqueue(hook, event)

    def _enqueue(self, hook: _Hook, event: Event) -> None:
        while hook.queue.qsize() >= self.queue_size:
            oldest = hook.queue.get_nowait()
            hook.queue.task_done()
            self._count(hook, "dropped")
            hook.dropped += 1
            if hook.dropped % _LOG_EVERY_DROP == 1:  # a dead receiver must not flood the log
                log.warning(
                    "webhook.queue_full",
                    message="Webhook queue full: dropping the oldest events",
                    webhook=hook.config.name,
                    dropped_event=oldest.name,
                    dropped_so_far=hook.dropped,
                    queue_size=self.queue_size,
                )
        hook.queue.put_nowait(event)

    # lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start one worker per webhook on the running loop."""
        self._running = True
        for hook in self._hooks.values():
            self._start_worker(hook)

    def apply(self, config: NotificationsConfig) -> dict[str, list[str]]:
        """Take a reloaded config: queued events of kept webhooks stay queued."""
        self.queue_size = config.queue_size
        new = {hook.name: hook for hook in config.webhooks}
        removed = sorted(set(self._hooks) - set(new))
        for name in removed:
            self._remove(name)
        added, changed = [], []
        for name, hook_config in new.items():
            hook = self._hooks.get(name)
            if hook is None:
                self._start_worker(self._add(hook_config))
                added.append(name)
            elif hook.config != hook_config:
                hook.config = hook_config  # the worker reads it for each delivery
                changed.append(name)
        return {"added": added, "removed": removed, "changed": changed}

    async def stop(self, flush_s: float = DEFAULT_FLUSH_S) -> None:
        """Take no more events; deliver what is queued for up to ``flush_s``, drop the rest."""
        self._closed = True
        self._stopping.set()
        hooks = list(self._hooks.values())
        if self._running and any(h.queue.qsize() or h.in_flight for h in hooks):
            joined = asyncio.gather(*(h.queue.join() for h in hooks))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(joined, flush_s)
        for name in list(self._hooks):
            self._remove(name)
        tasks = [h.task for h in hooks if h.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running = False

    def pending(self) -> dict[str, int]:
        """Events waiting or being delivered, per webhook."""
        return {
            name: hook.queue.qsize() + (hook.in_flight is not None)
            for name, hook in self._hooks.items()
        }

    def _add(self, config: WebhookConfig) -> _Hook:
        hook = _Hook(config)
        self._hooks[config.name] = hook
        for outcome in OUTCOMES:
            self._metrics.webhook_deliveries.labels(config.name, outcome)
        return hook

    def _start_worker(self, hook: _Hook) -> None:
        if self._running and hook.task is None:
            hook.task = asyncio.create_task(self._work(hook), name=f"webhook:{hook.config.name}")

    def _remove(self, name: str) -> None:
        hook = self._hooks.pop(name)
        lost = hook.queue.qsize() + (hook.in_flight is not None)
        if hook.task is not None:
            hook.task.cancel()
        if lost:
            self._metrics.webhook_deliveries.labels(name, "dropped").inc(lost)
            log.warning(
                "webhook.events_dropped",
                message="Webhook events not delivered",
                webhook=name,
                dropped=lost,
            )

    # delivering ------------------------------------------------------------------

    async def _work(self, hook: _Hook) -> None:
        while True:
            event = await hook.queue.get()
            hook.in_flight = event
            try:
                await self._deliver(hook, event)
            finally:
                hook.in_flight = None
                hook.queue.task_done()

    async def _deliver(self, hook: _Hook, event: Event) -> None:
        body = encode_body(event, self.host, self._secrets)
        delivery = str(uuid.uuid4())
        retry = 0
        while True:
            config = hook.config
            result = await self._attempt(config, event, body, delivery, retry + 1)
            if result.verdict != "retry" or retry >= config.max_retries or self._closed:
                break
            retry += 1
            self._count(hook, "retried")
            delay = retry_delay(config, retry, result.retry_after)
            log.info(
                "webhook.retrying",
                message="Webhook delivery will be retried",
                webhook=config.name,
                notify_event=event.name,
                detail=result.detail,
                retry=retry,
                delay_s=round(delay, 3),
            )
            await self._backoff(delay)
        self._settle(hook, event, result, retry + 1)

    async def _backoff(self, delay_s: float) -> None:
        # A stopping daemon does not wait out backoffs: whatever is queued gets
        # one more try each within the flush time, and the rest is dropped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_s)

    def _settle(self, hook: _Hook, event: Event, result: Attempt, attempts: int) -> None:
        outcome = "failed" if result.verdict == "retry" else result.verdict
        self._count(hook, outcome)
        context = dict(
            webhook=hook.config.name,
            notify_event=event.name,
            detail=result.detail,
            attempts=attempts,
        )
        if outcome == "delivered":
            log.debug("webhook.delivered", message="Webhook delivered", **context)
        elif outcome == "rejected":
            log.error(
                "webhook.rejected",
                message="Webhook receiver rejected the event; not retried",
                **context,
            )
        else:
            log.error("webhook.failed", message="Webhook delivery failed", **context)

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

    def _count(self, hook: _Hook, outcome: str) -> None:
        self._metrics.webhook_deliveries.labels(hook.config.name, outcome).inc()


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
