"""systemd notify protocol against a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from medic.host.sdnotify import SystemdNotifier


class Receiver:
    """The systemd end of the protocol: a bound datagram socket."""

    def __init__(self, address: str, bind_address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_address)

    def receive(self, timeout: float = 1.0) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096)

    def drain(self) -> list[bytes]:
        self.sock.setblocking(False)
        datagrams = []
        while True:
            try:
                datagrams.append(self.sock.recv(4096))
            except BlockingIOError:
                return datagrams


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = str(tmp_path / "notify.sock")
    rx = Receiver(path, path)
    yield rx
    rx.sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"medic-test-{uuid.uuid4().hex}"
    rx = Receiver("@" + name, "\0" + name)
    yield rx
    rx.sock.close()


@pytest.fixture
def notifier(receiver: Receiver) -> Iterator[SystemdNotifier]:
    sd = SystemdNotifier(receiver.address)
    yield sd
    sd.close()


def test_ready_sends_ready(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.enabled
    assert notifier.ready() is True
    assert receiver.receive() == b"READY=1"


def test_ready_with_status_is_one_datagram(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.ready("watching 5 services")
    assert receiver.receive() == b"READY=1\nSTATUS=watching 5 services"
    assert receiver.drain() == []


def test_stopping_watchdog_status(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.stopping()
    assert notifier.watchdog()
    assert notifier.status("2 unhealthy\nweb, db")
    assert receiver.receive() == b"STOPPING=1"
    assert receiver.receive() == b"WATCHDOG=1"
    # A newline in the text must not start a second assignment.
    assert receiver.receive() == b"STATUS=2 unhealthy web, db"


def test_reloading_carries_monotonic_usec(notifier: SystemdNotifier, receiver: Receiver) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    first, second = receiver.receive().split(b"\n")
    assert first == b"RELOADING=1"
    key, value = second.split(b"=")
    assert key == b"MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_notify_sends_raw_assignments(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.notify("STATUS=x", "EXTEND_TIMEOUT_USEC=5000000")
    assert receiver.receive() == b"STATUS=x\nEXTEND_TIMEOUT_USEC=5000000"
    assert notifier.notify() is False


def test_abstract_socket(abstract_receiver: Receiver) -> None:
    sd = SystemdNotifier(abstract_receiver.address)
    try:
        assert sd.ready()
        assert abstract_receiver.receive() == b"READY=1"
    finally:
        sd.close()


def test_from_env_reads_notify_socket(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.address)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    sd = SystemdNotifier.from_env()

    assert sd.watchdog_interval_s == 30.0
    assert sd.ready()
    assert receiver.receive() == b"READY=1"
    sd.close()


def test_from_env_can_unset_environment() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid())}
    sd = SystemdNotifier.from_env(env, unset_environment=True)
    assert sd.enabled
    assert sd.watchdog_interval_s == 0.001
    assert env == {}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "200000"}, 0.2),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}, 0.2),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "not-a-number"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    sd = SystemdNotifier.from_env({"NOTIFY_SOCKET": "/run/x", **env})
    assert sd.watchdog_interval_s == expected


def test_without_notify_socket_everything_is_a_no_op() -> None:
    sd = SystemdNotifier.from_env({"WATCHDOG_USEC": "200000"})

    assert not sd.enabled
    assert sd.watchdog_interval_s is None
    assert sd.ready("x") is False
    assert sd.reloading() is False
    assert sd.stopping() is False
    assert sd.watchdog() is False
    assert sd.status("x") is False
    assert sd.notify("READY=1") is False
    assert sd.errors == 0
    sd.close()


async def test_run_watchdog_without_socket_returns_at_once() -> None:
    sd = SystemdNotifier.from_env({"WATCHDOG_USEC": "200000"})
    await asyncio.wait_for(sd.run_watchdog(), timeout=1)


def test_missing_socket_path_returns_false(tmp_path: Path) -> None:
    sd = SystemdNotifier(str(tmp_path / "absent.sock"))

    assert sd.enabled
    assert sd.ready() is False
    assert sd.watchdog() is False
    assert sd.errors == 2
    sd.close()


async def test_run_watchdog_pings_every_half_interval(receiver: Receiver) -> None:
    sd = SystemdNotifier.from_env({"NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "200000"})
    task = asyncio.create_task(sd.run_watchdog())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    pings = receiver.drain()
    assert set(pings) == {b"WATCHDOG=1"}
    # Ideal is 5-6 (at 0, 0.1, ... 0.5 s); generous bounds for a loaded machine.
    assert 3 <= len(pings) <= 7
    sd.close()


async def test_run_watchdog_for_another_pid_sends_nothing(receiver: Receiver) -> None:
    sd = SystemdNotifier.from_env(
        {"NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    )
    await asyncio.wait_for(sd.run_watchdog(), timeout=1)
    await asyncio.sleep(0.25)

    assert receiver.drain() == []
    sd.close()


async def test_stalled_loop_stops_pings(receiver: Receiver) -> None:
    sd = SystemdNotifier.from_env({"NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "200000"})
    task = asyncio.create_task(sd.run_watchdog())
    await asyncio.sleep(0.05)
    receiver.drain()

    time.sleep(0.4)  # noqa: ASYNC251 -- blocks the event loop on purpose, as a hung medic would
    stalled = receiver.drain()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert stalled == []
    sd.close()
