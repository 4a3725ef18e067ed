"""Apprise notifications: incidents told in chat, mail and push
(``notifications.apprise``), through the Apprise library (Slack, Discord,
Teams, Telegram, ntfy, Gotify, Matrix, mail and about a hundred more).

The library is imported on the first send, so a daemon without
``notifications.apprise`` never loads it. Events become messages
(``medic.tell.incidents``: one per incident step, flapping folded per
``notify_interval``); each target has its own queue, retries and backoff
(``medic.tell.delivery``, shared with the webhooks). Apprise's ``notify``
blocks, so it runs in the target's own small thread pool, under the target's
``timeout``: a target that is down never slows a check, a recovery or another
target. A retry sends only to the URLs of the target that failed.

The URLs are read at send time (``urls_env``, ``urls_file``: a rotated secret
applies without a reload) and never shown: the log, the API and errors name
a URL by its position and scheme (``url 2 (discord://)``), and what Apprise
reports is scrubbed of every user, password, host-token and path part of the
target's URLs.

Outcomes in ``medic_notifications_total{notifier,outcome}`` (``notifier`` is
the target's name): ``delivered``, ``retried``, ``failed``, ``rejected`` (a
URL Apprise does not know, or no URLs) and ``dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import re
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from medic.config.models import NotificationsConfig
from medic.config.notifications import AppriseConfig, split_urls
from medic.core.bus import Event
from medic.core.errors import MedicError
from medic.tell.delivery import (
    DEFAULT_FLUSH_S,
    OUTCOMES,
    Attempt,
    Deliveries,
    Lane,
    Send,
    event_matches,
    test_row,
)
from medic.tell.incidents import Folder, IncidentBook, Message
from medic.tell.metrics import Metrics

_THREADS = 4
"""Sends at once per target (its URLs in parallel); a target's threads start on its
first send, so a hung target never holds another's."""

_MASK = "***"


class UrlsUnavailable(MedicError):
    """A target's URLs cannot be read now (variable unset, file missing or empty)."""


def read_urls(config: AppriseConfig) -> list[str]:
    """The target's URLs now; raises ``UrlsUnavailable`` naming where they were looked for."""
    if config.urls:
        return list(config.urls)
    if config.urls_file is not None:
        try:
            text = config.urls_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UrlsUnavailable(f"cannot read urls_file {config.urls_file}: {exc}") from exc
        where = f"urls_file {config.urls_file}"
    else:
        text = os.environ.get(config.urls_env or "", "")
        where = f"environment variable {config.urls_env}"
    urls = split_urls(text)
    if not urls:
        raise UrlsUnavailable(f"{where} holds no URL")
    return urls


def label(urls: list[str], index: int) -> str:
    """How a URL is named where people read: its position and scheme, never its secrets."""
    scheme = urls[index].split("://", 1)[0] if "://" in urls[index] else "?"
    return f"url {index + 1} ({scheme}://)"


def secret_parts(url: str) -> set[str]:
    """Every part of ``url`` that may be a secret: user, password, the pieces of a
    host that are tokens (no dot, not a port: ``tgram://BOT_ID:TOKEN/``), path
    segments and query values of 4 characters or more."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return {url}
    found = {parts.username or "", parts.password or ""}
    for piece in re.split(r"[:@]", parts.netloc):
        port = piece.isdigit() and len(piece) <= 5
        if "." not in piece and piece != "localhost" and not port:
            found.add(piece)
    found.update(segment for segment in parts.path.split("/"))
    found.update(value for _, value in parse_qsl(parts.query))
    return {part for part in found if len(part) >= 4}


def scrub(text: str, urls: list[str]) -> str:
    """``text`` with every secret part of ``urls`` masked."""
    parts = sorted({p for url in urls for p in secret_parts(url)}, key=len, reverse=True)
    for part in parts:
        text = text.replace(part, _MASK)
    return re.sub(r"\s+", " ", text).strip()


@functools.cache
def _library() -> Any:
    """The Apprise library, imported on the first send (its own deprecation
    warnings, about modules it imports, are not medic's to report). Its log
    records stop at its logger: what it says reaches medic's log only through
    ``log_callback``, scrubbed of the URLs' secrets."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        library = importlib.import_module("apprise")
        with contextlib.suppress(ImportError):  # loaded with the mail plugin, warns on 3.11+
            importlib.import_module("apprise.utils.pgp")
    logging.getLogger("apprise").propagate = False
    return library


def _send_blocking(url: str, message: Message, config: AppriseConfig) -> tuple[str, str]:
    """One URL, in a worker thread: (verdict, detail) with Apprise's own words."""
    notifier = _library().Apprise()
    if not notifier.add(url):
        return "rejected", "not a URL Apprise knows"
    said: list[str] = []
    result = notifier.notify(
        body=message.body(config.body),
        title=message.title(config.title),
        notify_type=message.notify_type,
        timeout=config.timeout,
        log_callback=lambda entry, _plugin: said.append(f"{entry.level}: {entry.message}"),
    )
    if result:
        return "delivered", "sent"
    problems = [line for line in said if not line.startswith(("DEBUG", "INFO"))]
    return "retry", (problems or said or ["Apprise reported a failure"])[-1]


@dataclass
class Outgoing:
    """A message on its way; ``pending`` holds the URLs still to reach (None: all)."""

    message: Message
    pending: list[int] | None = None
    results: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    """Per URL: its verdict, its label and what happened."""


class AppriseNotifier(Deliveries[AppriseConfig, Outgoing]):
    """An EventBus listener that tells incidents through each Apprise target."""

    notifier = "apprise"

    def __init__(
        self,
        config: NotificationsConfig,
        *,
        metrics: Metrics,
        public_url: str | None = None,
        host: str | None = None,
    ) -> None:
        super().__init__(config.queue_size)
        self._metrics = metrics
        self.book = IncidentBook(host or socket.gethostname(), public_url)
        self.folders: dict[str, Folder] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        for target in config.apprise:
            self.add(target)

    def __call__(self, event: Event) -> None:
        """Fold the event's message into every target that wants it; never blocks."""
        if self.closed:
            return
        self.book.observe(event)
        message = self.book.message_for(event) if self.lanes else None
        if message is not None:
            for name, lane in self.lanes.items():
                subscribed = event_matches(lane.config.events, event.name)
                if subscribed or message.kind == "recovering":
                    self.folders[name].offer(message, subscribed=subscribed)
        self.book.close(event)

    def apply(self, config: NotificationsConfig, public_url: str | None) -> dict[str, list[str]]:
        """Take a reloaded config: queued messages of kept targets stay queued."""
        self.book.public_url = public_url.rstrip("/") if public_url else None
        changes = self.apply_targets(config.apprise, config.queue_size)
        for name in changes["changed"]:
            self.folders[name].interval = self.lanes[name].config.notify_interval
        return changes

    async def stop(self, flush_s: float = DEFAULT_FLUSH_S) -> None:
        for folder in self.folders.values():
            folder.close()
        await super().stop(flush_s)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def add(self, config: AppriseConfig) -> Lane[AppriseConfig, Outgoing]:
        for outcome in OUTCOMES:
            self._metrics.notifications.labels(config.name, outcome)
        lane = super().add(config)
        self.folders[config.name] = Folder(
            config.notify_interval, lambda message: self.enqueue(lane, Outgoing(message))
        )
        return lane

    def remove(self, name: str) -> None:
        folder = self.folders.pop(name, None)
        if folder is not None:
            folder.close()
        super().remove(name)
        pool = self._pools.pop(name, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def count(self, name: str, outcome: str) -> None:
        self._metrics.notifications.labels(name, outcome).inc()

    def describe(self, item: Outgoing) -> str:
        return item.message.text

    def sender(self, lane: Lane[AppriseConfig, Outgoing], item: Outgoing) -> Send:
        async def send(attempt: int) -> Attempt:
            return await self.send_now(lane.config, item)

        return send

    async def send_now(self, config: AppriseConfig, item: Outgoing) -> Attempt:
        """Send ``item`` to the URLs it has yet to reach, all at once; the verdict
        is ``retry`` while one may still succeed."""
        try:
            urls = read_urls(config)
        except UrlsUnavailable as exc:
            return Attempt("failed", f"not sent: {exc}")
        pending = [i for i in (item.pending or range(len(urls))) if i < len(urls)]
        loop = asyncio.get_running_loop()
        pool = self._threads(config.name)
        verdicts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _send_blocking, urls[i], item.message, config)
                for i in pending
            )
        )
        for index, (verdict, detail) in zip(pending, verdicts, strict=True):
            item.results[index] = (verdict, label(urls, index), scrub(detail, urls))
        item.pending = [
            i for i, (verdict, _) in zip(pending, verdicts, strict=True) if verdict == "retry"
        ]
        details = "; ".join(f"{where}: {said}" for _, where, said in item.results.values())
        if item.pending:
            return Attempt("retry", details)
        if any(verdict == "rejected" for verdict, _, _ in item.results.values()):
            return Attempt("rejected", details)
        return Attempt("delivered", details)

    async def test(self, name: str | None = None) -> list[dict[str, str]]:
        """A test message through every target (or ``name``), at once: each URL's outcome."""
        lanes = [lane for lane in self.lanes.values() if name in (None, lane.config.name)]
        fields = self.book.fields(Event(0, "notify.test", {"service": "medic"}))
        message = Message("medic-test", "other", "medic test message", fields)
        outcomes = await asyncio.gather(*(self._test_one(lane.config, message) for lane in lanes))
        return [row for rows in outcomes for row in rows]

    async def _test_one(self, config: AppriseConfig, message: Message) -> list[dict[str, str]]:
        item = Outgoing(message)
        result = await self.send_now(config, item)
        summary = test_row(config.name, "apprise", "", result.verdict, result.detail)
        self.count(config.name, summary["outcome"])
        if not item.results:
            return [summary]
        return [
            test_row(config.name, "apprise", where, verdict, said)
            for verdict, where, said in item.results.values()
        ]

    def _threads(self, name: str) -> ThreadPoolExecutor:
        pool = self._pools.get(name)
        if pool is None:
            pool = ThreadPoolExecutor(_THREADS, thread_name_prefix=f"apprise:{name}")
            self._pools[name] = pool
        return pool


__all__ = ["AppriseNotifier", "UrlsUnavailable", "label", "read_urls", "scrub", "secret_parts"]
