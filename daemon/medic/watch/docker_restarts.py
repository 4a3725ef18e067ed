"""Docker's own restart policy: when Docker brings a container back itself, medic waits.

A container whose restart policy is ``always`` or ``unless-stopped``, or
``on-failure`` after a non-zero exit with retries left, is started again by
Docker after it dies on its own (after a back-off of 100 ms that doubles while
it keeps dying within 10 s of a start, up to a minute). A ``docker kill`` or
``docker stop`` through the API is a manual stop: Docker leaves it down.
medic must never restart such a container a second time:

- ``DockerRestarts`` remembers each watched container's policy (read with
  ``inspect`` when the event stream connects and at each ``start`` and
  ``update``), so a ``die`` is judged at once: Docker will restart it (medic
  waits), or nobody will (medic acts without asking the engine first).
- ``DockerRestartGate`` holds back the verdict on a check that finds the
  container ``restarting`` (Docker's attempt is on its way), for at most
  ``DOCKER_RESTART_WAIT_S``. Once Docker gave up (the container is
  ``exited``) or the container runs again and fails its check, the verdict is
  judged as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medic.core.logging import get_logger
from medic.host.docker import ContainerState

if TYPE_CHECKING:
    from medic.config.models import ServiceSpec
    from medic.watch.checks.base import CheckResult

log = get_logger("DockerEvents")

DOCKER_RESTART_WAIT_S = 65.0
"""How long a container may stay ``restarting`` before medic judges it anyway
(Docker's longest back-off between two attempts is one minute)."""

RESTARTING_RECHECK_S = 0.25
"""How soon a service whose container Docker is restarting is checked again."""

_ALWAYS = frozenset({"always", "unless-stopped"})


@dataclass(frozen=True)
class RestartPolicy:
    name: str
    max_retries: int
    restart_count: int

    @classmethod
    def of(cls, state: ContainerState) -> RestartPolicy:
        return cls(state.restart_policy, state.restart_max, state.restart_count)

    def will_restart(self, exit_code: int) -> bool:
        """Whether Docker restarts a container of this policy that died by itself."""
        if self.name in _ALWAYS:
            return True
        if self.name == "on-failure" and exit_code != 0:
            return self.max_retries == 0 or self.restart_count < self.max_retries
        return False


class DockerRestarts:
    """The restart policy of each watched container, as last inspected."""

    def __init__(self, inspect: Callable[[str], Awaitable[ContainerState]]) -> None:
        self._inspect = inspect
        self._policies: dict[str, RestartPolicy] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def learn(self, container: str) -> None:
        """Read ``container``'s policy in the background (never blocks, never raises)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._learn(container), name=f"docker-policy:{container}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _learn(self, container: str) -> None:
        try:
            state = await self._inspect(container)
        except Exception as exc:  # noqa: BLE001 - unknown policy: the checks judge instead
            self._policies.pop(container, None)
            log.debug(
                "docker.policy_unknown",
                message="Could not read the container's restart policy",
                container=container,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        self._policies[container] = RestartPolicy.of(state)

    def will_restart(self, container: str, exit_code: int) -> bool | None:
        """Whether Docker restarts ``container`` after it died with ``exit_code``;
        None when its policy is not known (yet)."""
        policy = self._policies.get(container)
        return None if policy is None else policy.will_restart(exit_code)

    def policy(self, container: str) -> RestartPolicy | None:
        return self._policies.get(container)


class DockerRestartGate:
    """Holds back the verdict on a container that Docker is restarting itself."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        """Per service: when its container was first seen ``restarting``."""

    def defer_s(self, spec: ServiceSpec, result: CheckResult) -> float | None:
        if result.healthy or result.data.get("status") != "restarting":
            if self._since:
                self._since.pop(spec.name, None)
            return None
        now = time.monotonic()
        first = self._since.setdefault(spec.name, now)
        if now - first >= DOCKER_RESTART_WAIT_S:
            return None  # Docker has had its chance: judge it
        return RESTARTING_RECHECK_S
