"""Docker's own event stream as a witness: which containers (re)started, when."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest


class StartCounter:
    """Counts a container's ``start`` events from Docker's own event stream."""

    def __init__(
        self, client: docker.DockerClient, container_id: str, event: str = "start"
    ) -> None:
        self.starts: list[float] = []
        """When each event came (``start`` unless told otherwise)."""
        self._stream = client.api.events(
            decode=True, filters={"container": container_id, "event": event}
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for _event in self._stream:
                self.starts.append(time.monotonic())
        except Exception:  # noqa: BLE001 - the stream ends when closed
            return

    def close(self) -> None:
        self._stream.close()


@pytest.fixture
def start_counter(docker_client: docker.DockerClient) -> Iterator[Any]:
    counters: list[StartCounter] = []

    def make(container_id: str, event: str = "start") -> StartCounter:
        counter = StartCounter(docker_client, container_id, event)
        counters.append(counter)
        return counter

    yield make
    for counter in counters:
        counter.close()
