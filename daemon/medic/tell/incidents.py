"""Messages that follow an incident, not every event: what a person reads in
chat or mail ("web is down (service_crash): restarting", then "web recovered
in 0.5 s" or "web: circuit open after 3 attempts, needs a person").

``IncidentBook`` watches every event and keeps what a message needs (when the
service went down, the recovery's playbook and id); ``message_for`` turns the
events people care about into a ``Message``. ``Folder`` is one target's rate
limit: per service, at most one incident is told per ``notify_interval``; what
happens meanwhile is held, the latest kept, and sent when the interval ends
with a count ("(+4 more events folded in)"). The end of an incident whose
start was told is always sent at once, so a crash and its healing arrive as a
pair.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from string import Template
from typing import Literal

from medic.core.bus import Event

Kind = Literal["down", "recovering", "recovered", "failed", "circuit", "approval", "other"]
NotifyType = Literal["info", "success", "warning", "failure"]

OPENING_WAIT_S = 2.0
"""How long a "down" message waits for the recovery to start, to say what medic does."""

_ATTEMPTS = re.compile(r"after (\d+) automatic recoveries")
_VERBS = {"restart": "restarting", "reconnect": "reconnecting", "notify": "telling people"}


@dataclass(frozen=True)
class Message:
    key: str
    """The service (or workflow) the rate limit counts per."""
    kind: Kind
    text: str
    fields: dict[str, str]
    notify_type: NotifyType = "info"
    folded: int = 0

    @property
    def opens(self) -> bool:
        return self.kind in ("down", "recovering")

    @property
    def continues(self) -> bool:
        """Part of an incident already told (sent at once when its start was)."""
        return self.kind in ("recovered", "failed", "circuit", "approval")

    def title(self, template: str | None) -> str:
        if template is not None:
            return Template(template).safe_substitute(self.fields)
        return f"medic on {self.fields['host']}: {self.text}"

    def body(self, template: str | None) -> str:
        if template is not None:
            return Template(template).safe_substitute(self.fields)
        text = self.text
        if self.fields.get("detail"):
            text += f"\n{self.fields['detail']}"
        if self.folded:
            text += f"\n(+{self.folded} more events folded in)"
        if self.fields.get("url"):
            text += f"\n{self.fields['url']}"
        return text


@dataclass
class _Incident:
    started: float
    failure_type: str = ""
    recovery_id: int | None = None


class IncidentBook:
    """What the events so far say about each service's current incident."""

    def __init__(self, host: str, public_url: str | None) -> None:
        self.host = host
        self.public_url = public_url.rstrip("/") if public_url else None
        self._open: dict[str, _Incident] = {}

    def observe(self, event: Event) -> None:
        service = event.data.get("service")
        if not isinstance(service, str):
            return
        if event.name == "service.unhealthy":
            failure = str(event.data.get("failure_type") or "")
            self._open[service] = _Incident(_seconds(event.timestamp), failure)
        elif event.name == "recovery.started":
            incident = self._open.setdefault(service, _Incident(_seconds(event.timestamp)))
            incident.recovery_id = event.data.get("recovery_id")
            incident.failure_type = str(event.data.get("failure_type") or incident.failure_type)

    def close(self, event: Event) -> None:
        """After the messages of ``event`` are made: a recovered service's incident ends."""
        if event.name == "service.recovered":
            self._open.pop(str(event.data.get("service")), None)

    def fields(self, event: Event, **extra: str) -> dict[str, str]:
        data = event.data
        service = str(data.get("service") or data.get("workflow") or "")
        incident = self._open.get(service)
        failure = str(data.get("failure_type") or (incident.failure_type if incident else ""))
        recovery = data.get("recovery_id") or (incident.recovery_id if incident else None)
        url = ""
        if self.public_url:
            url = f"{self.public_url}/#" + (f"recovery-{recovery}" if recovery else service)
        return {
            "service": service,
            "failure_type": failure,
            "outcome": str(data.get("outcome") or data.get("reason") or ""),
            "detail": str(data.get("detail") or ""),
            "host": self.host,
            "duration": "",
            "url": url,
            **extra,
        }

    def message_for(self, event: Event) -> Message | None:
        """The message ``event`` makes, or None when it is not one people read."""
        f = self.fields(event)
        name, service, failure = event.name, f["service"], f["failure_type"] or "unhealthy"
        if name == "service.unhealthy":
            return Message(service, "down", f"{service} is down ({failure})", f, "failure")
        if name == "recovery.started":
            verb = _verb(str(event.data.get("playbook") or ""))
            text = f"{service} is down ({failure}): {verb}"
            if event.data.get("trigger") in ("api", "cli", "manual"):
                text = f"{service}: {verb} ({failure}), asked by an operator"
            elif event.data.get("trigger") == "alert":
                text = f"{service} is down ({failure}, an alert says): {verb}"
            return Message(service, "recovering", text, f | {"outcome": verb}, "warning")
        if name == "service.recovered":
            return self._recovered(event, f)
        if name == "recovery.failed":
            text = f"{service}: recovery failed ({f['outcome'] or 'failed'})"
            return Message(service, "failed", text, f, "failure")
        if name == "circuit.opened":
            attempts = _ATTEMPTS.search(f["detail"])
            after = f" after {attempts.group(1)} attempts" if attempts else ""
            text = f"{service}: circuit open{after}, needs a person"
            return Message(service, "circuit", text, f | {"outcome": "circuit_open"}, "failure")
        if name == "recovery.approval_required":
            text = f"{service}: a recovery waits for approval"
            return Message(service, "approval", text, f, "warning")
        if name.startswith(("service.", "recovery.", "circuit.", "config.")) or name in (
            "workflow.started",
            "workflow.step",
            "workflow.succeeded",
            "workflow.skipped",
        ):
            return None  # the rest of an incident's (and a run's) course: not told one by one
        text = f"{service or 'medic'}: {name}"
        return Message(service, "other", text, f, "failure" if "fail" in name else "info")

    def _recovered(self, event: Event, f: dict[str, str]) -> Message:
        service = f["service"]
        incident = self._open.get(service)
        text = f"{service} recovered"
        if incident is not None:
            seconds = max(0.0, _seconds(event.timestamp) - incident.started)
            f = f | {"duration": _human(seconds)}
            text += f" in {f['duration']}"
        return Message(service, "recovered", text, f | {"outcome": "recovered"}, "success")


def _verb(playbook: str) -> str:
    for prefix, verb in _VERBS.items():
        if playbook.startswith(prefix):
            return verb
    return f"running {playbook}" if playbook else "recovering"


def _seconds(timestamp: str) -> float:
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return time.time()


def _human(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class _Slot:
    last_sent: float = float("-inf")
    told: bool = False
    """The current incident's start was sent: its end goes out at once."""
    failure_told: bool = False
    """A failed recovery of the current incident was told: the next attempts' are not."""
    held: Message | None = None
    opening: Message | None = None
    timer: asyncio.TimerHandle | None = None
    opening_timer: asyncio.TimerHandle | None = None


@dataclass
class Folder:
    """One target's rate limit per service; ``send`` queues a message for delivery."""

    interval: float
    send: Callable[[Message], None]
    clock: Callable[[], float] = time.monotonic
    _slots: dict[str, _Slot] = field(default_factory=dict)

    def offer(self, message: Message, *, subscribed: bool = True) -> None:
        """Route ``message``; an unsubscribed "recovering" only completes a waiting "down"."""
        slot = self._slots.setdefault(message.key, _Slot())
        if message.kind == "recovering":
            if slot.opening is not None:
                slot.opening = None  # the recovery says what medic does: one message
                if slot.opening_timer is not None:
                    slot.opening_timer.cancel()
            elif slot.told or not subscribed:
                return  # a later attempt within an incident already told
            self._route(slot, message)
            return
        if message.kind == "down":  # wait briefly for the recovery, to say what medic does
            self._take_opening(slot)
            slot.opening = message
            loop = asyncio.get_running_loop()
            slot.opening_timer = loop.call_later(OPENING_WAIT_S, self._opening_due, message.key)
            return
        if message.kind == "failed" and slot.failure_told and slot.told:
            return
        self._take_opening(slot)
        self._route(slot, message)

    def close(self) -> None:
        for slot in self._slots.values():
            for timer in (slot.timer, slot.opening_timer):
                if timer is not None:
                    timer.cancel()

    def _opening_due(self, key: str) -> None:
        slot = self._slots[key]
        self._take_opening(slot)

    def _take_opening(self, slot: _Slot) -> None:
        opening, slot.opening = slot.opening, None
        if slot.opening_timer is not None:
            slot.opening_timer.cancel()
        if opening is not None:
            self._route(slot, opening)

    def _route(self, slot: _Slot, message: Message) -> None:
        now = self.clock()
        if (message.continues and slot.told and slot.held is None) or (
            slot.held is None and now - slot.last_sent >= self.interval
        ):
            self._emit(slot, message, now)
        else:
            folded = slot.held.folded + 1 if slot.held is not None else 0
            slot.held = replace(message, folded=folded)
            if slot.timer is None:
                due = max(0.0, slot.last_sent + self.interval - now)
                slot.timer = asyncio.get_running_loop().call_later(due, self._flush, slot)

    def _flush(self, slot: _Slot) -> None:
        slot.timer = None
        held, slot.held = slot.held, None
        if held is not None:
            self._emit(slot, held, self.clock())

    def _emit(self, slot: _Slot, message: Message, now: float) -> None:
        slot.last_sent = now
        slot.told = message.opens or (message.continues and message.kind != "recovered")
        slot.failure_told = message.kind == "failed" or (slot.failure_told and slot.told)
        self.send(message)


__all__ = ["OPENING_WAIT_S", "Folder", "IncidentBook", "Message"]
