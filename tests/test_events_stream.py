"""GET /api/v1/events against a real daemon: a client that reconnects with
``Last-Event-ID`` (or ``?last_event_id=``) gets what it missed, then live
events, with no duplicates and no gap; config reloads are events too."""

from __future__ import annotations

import http.client
import json
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from medic.core.bus import EventBus
from tests.helpers import free_port
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "events-token"


@dataclass
class Block:
    """One server-sent block: its fields, and its comment lines."""

    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return "data" in self.fields

    def event(self) -> dict[str, Any]:
        data = json.loads(self.fields["data"])
        assert data["id"] == int(self.fields["id"]) and data["event"] == self.fields["event"]
        return dict(data)


class EventStream:
    """A plain HTTP client reading ``text/event-stream`` block by block."""

    def __init__(
        self, daemon: DaemonProcess, query: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
        self.conn.request(
            "GET",
            f"/api/v1/events{query}",
            headers={"Accept": "text/event-stream", **(headers or {})},
        )
        self.response = self.conn.getresponse()
        self.blocks: list[Block] = []

    def read_block(self) -> Block:
        block = Block()
        while True:
            raw = self.response.readline()
            assert raw, "the event stream ended"
            line = raw.decode().rstrip("\n")
            if not line:
                if block.fields or block.comments:
                    self.blocks.append(block)
                    return block
                continue
            if line.startswith(":"):
                block.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            block.fields[name] = value.removeprefix(" ")

    def events_until(self, name: str, count: int = 1) -> list[dict[str, Any]]:
        """Every event read until the ``count``-th one called ``name``."""
        events: list[dict[str, Any]] = []
        seen = 0
        while seen < count:
            block = self.read_block()
            if block.is_event:
                events.append(block.event())
                seen += events[-1]["event"] == name
        return events

    def close(self) -> None:
        self.conn.close()


def config(api_port: int, up_port: int, *, extra_workflow: bool = False) -> str:
    second = (
        "  bye:\n    schedule: {interval: 1h}\n    steps:\n"
        "      - {name: part, action: run_command, command: [echo, bye]}\n"
        if extra_workflow
        else ""
    )
    return f"""
api: {{listen: 127.0.0.1:{api_port}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 1s}}
services:
  up:
    check: {{type: tcp, host: 127.0.0.1, port: {up_port}}}
workflows:
  hello:
    schedule: {{interval: 1h}}
    steps:
      - {{name: greet, action: run_command, command: [echo, hello]}}
{second}"""


@pytest.fixture
def daemon(medic_daemon: DaemonFactory, listening_port: int) -> DaemonProcess:
    return medic_daemon(config(free_port(), listening_port), env={"MEDIC_API_TOKEN": TOKEN})


def run_hello(daemon: DaemonProcess) -> None:
    status, body = daemon.post("/api/v1/workflows/hello/run", token=TOKEN)
    assert status == 200 and body["outcome"] == "succeeded", body


def ids(events: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in events]


def seen_up_to(daemon: DaemonProcess) -> int:
    """Connect, see one run's events, disconnect: the last id this client saw."""
    stream = EventStream(daemon)
    try:
        run_hello(daemon)
        return int(stream.events_until("workflow.succeeded")[-1]["id"])
    finally:
        stream.close()


@pytest.mark.parametrize("how", ["header", "query"])
def test_a_reconnecting_client_gets_what_it_missed_then_live_events(
    daemon: DaemonProcess, how: str
) -> None:
    last = seen_up_to(daemon)
    run_hello(daemon)  # while the client is away
    run_hello(daemon)
    if how == "header":
        stream = EventStream(daemon, headers={"Last-Event-ID": str(last)})
    else:
        stream = EventStream(daemon, query=f"?last_event_id={last}")
    try:
        first = stream.read_block()
        assert first.fields.get("retry") == "2000", first  # reconnect soon
        missed = stream.events_until("workflow.succeeded", 2)
        assert ids(missed) == list(range(last + 1, last + 1 + len(missed)))
        assert [e["event"] for e in missed].count("workflow.started") == 2
        run_hello(daemon)  # live now
        live = stream.events_until("workflow.succeeded")
        assert ids(missed + live) == list(range(last + 1, last + 1 + len(missed) + len(live)))
        assert not any(b.comments and "missed" in b.comments[0] for b in stream.blocks)
    finally:
        stream.close()


def test_a_client_without_last_event_id_gets_only_live_events(daemon: DaemonProcess) -> None:
    last = seen_up_to(daemon)
    stream = EventStream(daemon)
    try:
        assert stream.read_block().fields.get("retry") == "2000"
        run_hello(daemon)
        live = stream.events_until("workflow.succeeded")
        assert live[0]["event"] == "workflow.started" and live[0]["id"] > last
    finally:
        stream.close()


def test_an_id_from_an_earlier_run_of_the_daemon_gets_everything_kept(
    daemon: DaemonProcess,
) -> None:
    last = seen_up_to(daemon)
    stream = EventStream(daemon, headers={"Last-Event-ID": str(last + 10**6)})
    try:
        assert stream.read_block().fields.get("retry") == "2000"
        note = stream.read_block()
        assert not note.is_event and "missed" in note.comments[0], note
        kept = stream.events_until("workflow.succeeded")
        assert ids(kept) == list(range(1, len(kept) + 1)) and kept[-1]["id"] <= last
    finally:
        stream.close()


def test_a_malformed_last_event_id_is_a_400(daemon: DaemonProcess) -> None:
    status, body = daemon.get("/api/v1/events?last_event_id=abc")
    assert status == 400 and body["error"]["code"] == "INVALID_QUERY", body


def test_config_reloads_are_events(medic_daemon: DaemonFactory, listening_port: int) -> None:
    api_port = free_port()
    daemon = medic_daemon(config(api_port, listening_port), env={"MEDIC_API_TOKEN": TOKEN})
    stream = EventStream(daemon)
    try:
        daemon.write_config(config(api_port, listening_port, extra_workflow=True))
        daemon.send_signal(signal.SIGHUP)
        reloaded = stream.events_until("config.reloaded")[-1]["data"]
        assert reloaded["workflows"] == {"added": ["bye"], "removed": [], "changed": []}
        assert reloaded["services"] == {"added": [], "removed": [], "changed": []}

        daemon.write_config(config(api_port, listening_port).replace("1s}", "soon}"))
        status, body = daemon.post("/api/v1/reload", token=TOKEN)
        assert status == 422, body
        failed = stream.events_until("config.reload_failed")[-1]["data"]
        assert failed["issues"] == len(body["error"]["issues"]) >= 1
        assert failed["reason"] == "ConfigInvalid"

        daemon.write_config(config(api_port, listening_port))  # "bye" goes again
        status, body = daemon.post("/api/v1/reload", token=TOKEN)
        assert status == 200, body
        reloaded = stream.events_until("config.reloaded")[-1]["data"]
        assert (
            reloaded["workflows"]["removed"] == ["bye"] == body["changes"]["workflows"]["removed"]
        )
    finally:
        stream.close()


def test_the_bus_keeps_a_bounded_history_and_says_when_a_client_missed_some() -> None:
    bus = EventBus(history=3)
    for n in range(5):
        bus.publish("tick", n=n)
    resumed = bus.resume(1)  # events 2..5 happened; only 3..5 are kept
    assert [e.id for e in resumed.backlog] == [3, 4, 5] and resumed.missed
    bus.unsubscribe(resumed.queue)
    resumed = bus.resume(2)
    assert [e.id for e in resumed.backlog] == [3, 4, 5] and not resumed.missed
    bus.publish("tick", n=5)  # after the resume: live, in the queue only
    assert resumed.queue.get_nowait().id == 6 and resumed.queue.empty()
    assert bus.resume(6).backlog == [] and not bus.resume(6).missed
    assert EventBus().resume(0).backlog == []


def test_a_connected_stream_does_not_hold_up_the_stop(medic_daemon: DaemonFactory) -> None:
    # A status page left open must not make `systemctl stop` wait for the
    # API's shutdown timeout (2 s): the stream ends as the API closes.
    daemon = medic_daemon(f"api: {{listen: 127.0.0.1:{free_port()}}}\nservices: {{}}\n")
    stream = EventStream(daemon)
    assert "connected" in stream.read_block().comments
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 1.5
    assert stream.response.read() == b"", "the stream ended cleanly"
