"""Generic test helpers: polling with deadlines, free ports, crashing containers.

Import them as ``from tests.helpers import wait_for, free_port, ...``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import docker

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout: ``daemon/``, ``scripts/``, ``recovery_playbooks/`` ..."""
TEST_IMAGE = "medic-test:busybox"
SETUP_HINT = "run `sudo bash scripts/setup-test-env.sh` (or scripts/test.sh) first"

# Ports handed out recently: the kernel may offer the same ephemeral port to
# two calls in a row when the first one has not been bound yet.
_recent_ports: list[int] = []


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _recent_ports:
            _recent_ports.append(port)
            del _recent_ports[:-64]
            return port
    raise RuntimeError("could not find a free TCP port on 127.0.0.1")


def _describe(last: object, error: BaseException | None) -> str:
    if error is not None:
        return f"last error: {type(error).__name__}: {error}"
    return f"last value: {last!r}"


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Exceptions raised by the predicate count as "not yet" (the last one is
    reported). Raises AssertionError with ``message`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            last = predicate()
            error = None
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - a failing predicate means "not yet"
            error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (after {timeout:g}s; {_describe(last, error)})")
        time.sleep(interval)


async def async_wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,  # noqa: ASYNC109 - a polling deadline, the twin of wait_for's
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Async twin of :func:`wait_for`; ``predicate`` may be sync or async."""
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            result = predicate()
            value: T = await result if inspect.isawaitable(result) else result
            last = value
            error = None
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a failing predicate means "not yet"
            error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (after {timeout:g}s; {_describe(last, error)})")
        await asyncio.sleep(interval)


def container_pid(client: docker.DockerClient, name: str) -> int:
    """Host PID of a running container's main process (0 when not running)."""
    container = client.containers.get(name)
    return int(container.attrs["State"]["Pid"])


def kill_container_process(client: docker.DockerClient, name: str) -> int:
    """Simulate a crash: SIGKILL the container's main process from the host.

    ``docker kill`` would be recorded by Docker as a manual stop (its restart
    policy then leaves the container down); a process dying on its own is not.
    Returns the PID that was killed.
    """
    pid = container_pid(client, name)
    if pid <= 0:
        raise AssertionError(f"container {name} is not running, nothing to kill")
    os.kill(pid, signal.SIGKILL)
    return pid


def container_state(client: docker.DockerClient, name: str) -> dict[str, Any]:
    """The ``State`` block of ``docker inspect`` for one container."""
    state: dict[str, Any] = client.containers.get(name).attrs["State"]
    return state


def write_playbooks(directory: Path, playbooks: Mapping[str, str]) -> Path:
    """Write each playbook text as ``directory/NAME.yaml``; returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in playbooks.items():
        filename = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
        (directory / filename).write_text(text)
    return directory
