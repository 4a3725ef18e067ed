"""The Docker engine as medic uses it: inspect, start, restart, and the event stream.

The docker SDK is synchronous, so every call runs on a small dedicated thread
pool; the daemon's event loop never blocks on the engine. An unreachable engine
raises ``DockerUnavailable`` and the next call simply tries again, so medic
keeps running and picks the engine up when it is back.

The SDK (with ``requests`` and ``urllib3`` under it: about 7 MiB and 60 ms of
start-up) is imported by the first call, not with this module: a daemon whose
config names no container never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from medic.host import HostError

if TYPE_CHECKING:
    import docker

T = TypeVar("T")

WATCHED_EVENTS = (
    "start",
    "die",
    "oom",
    "kill",
    "stop",
    "pause",
    "unpause",
    "health_status",
    # Discovery: a container comes, goes, or changes its name.
    "create",
    "destroy",
    "rename",
    "update",
)


class DockerUnavailable(HostError):
    """The Docker engine cannot be reached."""


class ContainerNotFound(HostError):
    """No container by that name or id."""


@dataclass(frozen=True)
class ContainerState:
    name: str
    id: str
    status: str
    """created, running, paused, restarting, removing, exited or dead."""
    exit_code: int
    oom_killed: bool
    health: str | None
    """starting, healthy, unhealthy, or None without a HEALTHCHECK."""
    pid: int
    started_at: str
    finished_at: str
    restart_count: int
    health_output: str = ""
    """Output of the last HEALTHCHECK probe (``State.Health.Log[-1].Output``), if any."""
    restart_policy: str = "no"
    """Docker's own restart policy: no, always, unless-stopped or on-failure."""
    restart_max: int = 0
    """``on-failure``'s maximum retry count; 0 = no limit."""
    stop_timeout_s: int | None = None
    """The container's own stop timeout (``Config.StopTimeout``), if it has one."""

    @property
    def running(self) -> bool:
        return self.status == "running"

    @classmethod
    def from_inspect(cls, data: dict[str, Any]) -> ContainerState:
        state = data.get("State") or {}
        health = state.get("Health") or {}
        policy = (data.get("HostConfig") or {}).get("RestartPolicy") or {}
        stop_timeout = (data.get("Config") or {}).get("StopTimeout")
        return cls(
            name=str(data.get("Name", "")).lstrip("/"),
            id=str(data.get("Id", "")),
            status=str(state.get("Status", "unknown")),
            exit_code=int(state.get("ExitCode") or 0),
            oom_killed=bool(state.get("OOMKilled")),
            health=health.get("Status"),
            pid=int(state.get("Pid") or 0),
            started_at=str(state.get("StartedAt", "")),
            finished_at=str(state.get("FinishedAt", "")),
            restart_count=int(data.get("RestartCount") or 0),
            health_output=_last_health_output(health),
            restart_policy=str(policy.get("Name") or "no"),
            restart_max=int(policy.get("MaximumRetryCount") or 0),
            stop_timeout_s=int(stop_timeout) if stop_timeout is not None else None,
        )


@dataclass(frozen=True)
class ContainerInfo:
    """What discovery reads of a container: who it is, its labels, its network."""

    id: str
    name: str
    labels: dict[str, str]
    status: str
    network_mode: str
    """``HostConfig.NetworkMode``: bridge, host, none, ``container:<id>``, a network."""

    @classmethod
    def from_inspect(cls, data: dict[str, Any]) -> ContainerInfo:
        config = data.get("Config") or {}
        return cls(
            id=str(data.get("Id", "")),
            name=str(data.get("Name", "")).lstrip("/"),
            labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
            status=str((data.get("State") or {}).get("Status", "unknown")),
            network_mode=str((data.get("HostConfig") or {}).get("NetworkMode") or ""),
        )

    @classmethod
    def from_listing(cls, row: dict[str, Any]) -> ContainerInfo:
        names = row.get("Names") or [""]
        return cls(
            id=str(row.get("Id", "")),
            name=str(names[0]).lstrip("/"),
            labels={str(k): str(v) for k, v in (row.get("Labels") or {}).items()},
            status=str(row.get("State", "unknown")),
            network_mode=str((row.get("HostConfig") or {}).get("NetworkMode") or ""),
        )


def _last_health_output(health: dict[str, Any]) -> str:
    log = health.get("Log") or []
    if not log or not isinstance(log[-1], dict):
        return ""
    return str(log[-1].get("Output") or "").strip()


@dataclass(frozen=True)
class DockerEvent:
    action: str
    """The event name: die, oom, stop, start, health_status, ..."""
    container: str
    container_id: str
    attributes: dict[str, str]
    time_ns: int

    @property
    def health(self) -> str | None:
        # health_status events arrive as "health_status: unhealthy".
        if self.action.startswith("health_status"):
            return self.action.partition(":")[2].strip() or None
        return None

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> DockerEvent:
        actor = raw.get("Actor") or {}
        attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
        return cls(
            action=str(raw.get("Action") or raw.get("status") or ""),
            container=attributes.get("name", ""),
            container_id=str(actor.get("ID") or raw.get("id") or ""),
            attributes=attributes,
            time_ns=int(raw.get("timeNano") or 0),
        )


@functools.cache
def _unreachable() -> tuple[type[BaseException], ...]:
    """What the SDK raises when the engine cannot be reached (imports the SDK)."""
    import docker.errors
    import requests.exceptions

    return (
        docker.errors.DockerException,
        requests.exceptions.ConnectionError,
        ConnectionError,
        FileNotFoundError,
    )


@functools.cache
def _one_pool_adapter() -> type[Any]:
    """The engine's unix socket with one connection pool, whatever the URL.

    docker-py keys its pools by the whole request URL (``/containers/web/json``,
    ``/containers/db/restart``...), each keeping an idle connection, up to 25:
    watching ten containers, medic held 25 connections to dockerd (found by
    the soak, ``bench/soak.py``). One pool keeps at most ``max_pool_size``.
    Made on first use: the SDK is imported only when a service uses Docker.
    """
    from docker.transport.unixconn import UnixHTTPAdapter

    class OnePoolAdapter(UnixHTTPAdapter):
        def get_connection(self, url: bytes | str, proxies: Any = None) -> Any:
            return super().get_connection("http+docker://localhost", proxies)

    return OnePoolAdapter


def _one_pool(client: docker.APIClient) -> docker.APIClient:
    from docker.transport.unixconn import UnixHTTPAdapter

    adapter = client.adapters.get("http+docker://")
    if isinstance(adapter, UnixHTTPAdapter):
        socket_url = "http+unix://" + adapter.socket_path
        shared = _one_pool_adapter()(
            socket_url, adapter.timeout, max_pool_size=adapter.max_pool_size
        )
        client.mount("http+docker://", shared)
        adapter.close()
    return client


class DockerGateway:
    """Async facade over the docker SDK's low-level client."""

    def __init__(self, base_url: str | None = None, *, workers: int = 8) -> None:
        self._base_url = base_url
        self._client: docker.APIClient | None = None
        self._client_lock = threading.Lock()
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        """Made by the first call, not here: nothing opens before the daemon starts."""
        self._closed = False

    def _api(self) -> docker.APIClient:
        import docker  # here, not at the top: see the module's docstring

        with self._client_lock:
            if self._client is None:
                try:
                    if self._base_url:
                        client = docker.APIClient(base_url=self._base_url, timeout=30)
                    else:
                        client = docker.from_env(timeout=30).api
                    self._client = _one_pool(client)
                except _unreachable() as exc:
                    raise DockerUnavailable(f"Docker engine unreachable: {exc}") from exc
            return self._client

    def _forget_client(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    def _call(self, fn: Callable[[docker.APIClient], T]) -> T:
        api = self._api()
        import docker.errors  # loaded by _api already

        try:
            return fn(api)
        except docker.errors.NotFound as exc:
            raise ContainerNotFound(str(exc.explanation or exc)) from exc
        except docker.errors.APIError:
            raise
        except _unreachable() as exc:
            self._forget_client()
            raise DockerUnavailable(f"Docker engine unreachable: {exc}") from exc

    async def _run(self, fn: Callable[[docker.APIClient], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self._call, fn)

    def _executor(self) -> ThreadPoolExecutor:
        if self._closed:
            raise RuntimeError("the Docker gateway is closed")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="medic-docker")
        return self._pool

    async def ping(self) -> bool:
        try:
            return bool(await self._run(lambda api: api.ping()))
        except DockerUnavailable:
            return False

    async def inspect(self, container: str) -> ContainerState:
        data = await self._run(lambda api: api.inspect_container(container))
        return ContainerState.from_inspect(data)

    async def inspect_raw(self, container: str) -> dict[str, Any]:
        """The engine's whole ``inspect`` answer (configuration and state)."""
        return dict(await self._run(lambda api: api.inspect_container(container)))

    async def log_tail(self, container: str, lines: int, until: float) -> bytes:
        """The last ``lines`` lines of the container's log (stdout and stderr,
        interleaved) written before ``until`` (``time.time()``)."""
        return bytes(
            await self._run(
                lambda api: api.logs(container, stdout=True, stderr=True, tail=lines, until=until)
            )
        )

    async def describe(self, container: str) -> ContainerInfo:
        data = await self._run(lambda api: api.inspect_container(container))
        return ContainerInfo.from_inspect(data)

    async def containers(self) -> list[ContainerInfo]:
        """Every container of the engine, running or not."""
        rows = await self._run(lambda api: api.containers(all=True))
        return [ContainerInfo.from_listing(row) for row in rows]

    async def start(self, container: str) -> None:
        await self._run(lambda api: api.start(container))

    async def restart(self, container: str, stop_timeout_s: int) -> None:
        await self._run(lambda api: api.restart(container, timeout=stop_timeout_s))

    async def unpause(self, container: str) -> None:
        await self._run(lambda api: api.unpause(container))

    # recreate_container: create, join, stop, rename, remove ---------------------------

    async def create_from(self, name: str, body: dict[str, Any]) -> str:
        """Create a container named ``name`` from a full create body; its id."""
        made = await self._run(
            lambda api: api.create_container_from_config(body, name=name)  # type: ignore[no-untyped-call]
        )
        return str(made["Id"])

    async def join_network(self, container: str, network: str, endpoint: dict[str, Any]) -> None:
        await self._run(
            lambda api: api.connect_container_to_network(
                container,
                network,
                aliases=endpoint.get("Aliases"),
                links=endpoint.get("Links"),
                ipv4_address=(endpoint.get("IPAMConfig") or {}).get("IPv4Address"),
                ipv6_address=(endpoint.get("IPAMConfig") or {}).get("IPv6Address"),
            )
        )

    async def stop(self, container: str, stop_timeout_s: int) -> None:
        await self._run(lambda api: api.stop(container, timeout=stop_timeout_s))

    async def rename(self, container: str, name: str) -> None:
        await self._run(lambda api: api.rename(container, name))

    async def remove(self, container: str) -> None:
        """Remove a container (forced), never its volumes."""
        await self._run(lambda api: api.remove_container(container, force=True, v=False))

    def event_stream(self, since_ns: int | None = None) -> EventStream:
        """A blocking iterator of container events; iterate it on a thread.

        ``since_ns`` (wall clock, nanoseconds) has the engine replay what it
        buffered from then on, so nothing falls between two connections."""
        return EventStream(self, since_ns)

    def close(self) -> None:
        self._closed = True
        self._forget_client()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class EventStream:
    """One connection to ``/events``; ``close()`` from any thread ends the iteration."""

    def __init__(self, gateway: DockerGateway, since_ns: int | None = None) -> None:
        self._gateway = gateway
        self._since = None if since_ns is None else f"{since_ns // 10**9}.{since_ns % 10**9:09d}"
        self._stream: Any = None
        self._closed = threading.Event()

    def __iter__(self) -> EventStream:
        filters = {"type": ["container"], "event": list(WATCHED_EVENTS)}
        # The SDK's types say whole seconds, which would replay events already
        # seen; the engine takes "seconds.nanoseconds" and the SDK passes it on.
        self._stream = self._gateway._call(
            lambda api: cast(Any, api).events(decode=True, filters=filters, since=self._since)
        )
        return self

    def __next__(self) -> DockerEvent:
        if self._closed.is_set() or self._stream is None:
            raise StopIteration
        try:
            raw = next(self._stream)
        except _unreachable() as exc:
            if self._closed.is_set():
                raise StopIteration from exc
            raise DockerUnavailable(f"Docker event stream lost: {exc}") from exc
        except (AttributeError, ValueError) as exc:
            # Closing the response from another thread surfaces as one of these.
            if self._closed.is_set():
                raise StopIteration from exc
            raise
        return DockerEvent.from_raw(raw)

    def close(self) -> None:
        self._closed.set()
        if self._stream is not None:
            # Closing a dead stream must not fail shutdown.
            with contextlib.suppress(Exception):
                self._stream.close()
