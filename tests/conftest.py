"""Shared fixtures: a real Docker engine, real PostgreSQL, the real daemon.

Nothing here is mocked. When the engine, the test image or PostgreSQL is
missing, the tests that need them FAIL (never skip) and say to run
``scripts/setup-test-env.sh``.

Fixtures
    docker_client      session  docker.DockerClient (removes leftovers of crashed runs)
    test_image         session  name of the local image medic-test:busybox
    idle_container     session  an idle container that keeps the default bridge up
    container_factory  function ContainerFactory: ``container_factory(...) -> ContainerHandle``
    pg_dsn             session  DSN of the test database (MEDIC_TEST_PG_DSN overrides)
    medic_daemon       function DaemonFactory: ``medic_daemon(config_yaml, ...) -> DaemonProcess``
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import docker
import docker.errors
import pytest
import yaml
from docker.models.containers import Container

from medic.host.resources import Resources
from tests.helpers import (
    SETUP_HINT,
    TEST_IMAGE,
    container_state,
    free_port,
    kill_container_process,
    wait_for,
)
from tests.processes import Spawner

pytest_plugins = ["tests.dockerwatch"]

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_LABEL = "medic.test"
OWNER_LABEL = "medic.test.owner-pid"
DEFAULT_PG_DSN = "postgresql://medic:medic@127.0.0.1:5432/medic"
DAEMON_START_TIMEOUT = 20.0
DAEMON_STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 100

# No proxy for anything here: every address the tests talk to is local.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP request with the stdlib; returns (status, body), also for 4xx/5xx."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _http.open(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read()


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Report hook: failed tests get the tail of every daemon log they started.
# ---------------------------------------------------------------------------
_DAEMONS = pytest.StashKey[list["DaemonProcess"]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for daemon in item.stash.get(_DAEMONS, []):
            if not daemon.tail_reported:
                daemon.tail_reported = True
                report.sections.append(
                    (
                        f"medic daemon log {daemon.log_path} (last {LOG_TAIL_LINES} lines)",
                        daemon.log_tail(LOG_TAIL_LINES),
                    )
                )
    return report


# ---------------------------------------------------------------------------
# Docker
# ---------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (PID 1 here reaps late)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _remove_leftovers(client: docker.DockerClient) -> None:
    """Remove test containers whose pytest process is gone (crashed earlier runs).

    Containers of another pytest session that is still running are left alone.
    """
    # The low-level listing inspects nothing, so a container that another
    # session removes meanwhile cannot make it fail.
    for row in client.api.containers(all=True, filters={"label": f"{TEST_LABEL}=1"}):
        owner = (row.get("Labels") or {}).get(OWNER_LABEL, "")
        if owner.isdigit() and _pid_alive(int(owner)):
            continue
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.api.remove_container(row["Id"], force=True)


def _test_labels(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    labels = {TEST_LABEL: "1", OWNER_LABEL: str(os.getpid())}
    labels.update(extra or {})
    return labels


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (and never answers): a ``tcp``
    check against it passes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(100)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "unreachable"
        pytest.fail(
            f"The Docker engine is unreachable ({type(exc).__name__}: {exc}); {SETUP_HINT}",
            pytrace=False,
        )
    _remove_leftovers(client)
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> str:
    try:
        docker_client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"The test image {TEST_IMAGE} does not exist; {SETUP_HINT}", pytrace=False)
    return TEST_IMAGE


@pytest.fixture(scope="session")
def idle_container(docker_client: docker.DockerClient, test_image: str) -> Iterator[Container]:
    """An idle container on the default bridge for the whole session.

    When the last container leaves the default bridge, the next one to start
    (e.g. a restart under test) takes ~0.8 s longer; this one prevents that.
    """
    container = docker_client.containers.run(
        test_image,
        ["sleep", "100000"],
        name=f"medic-test-idle-{secrets.token_hex(3)}",
        labels=_test_labels({"medic.test.role": "idle"}),
        detach=True,
        init=True,
    )
    yield container
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True)


@dataclass
class ContainerHandle:
    """A container made by ``container_factory``."""

    name: str
    id: str
    port: int | None
    url: str | None
    container: Container
    client: docker.DockerClient

    def reload(self) -> Container:
        self.container.reload()
        return self.container

    @property
    def status(self) -> str:
        """Docker's status right now: created, running, exited, restarting..."""
        return str(self.reload().status)

    def state(self) -> dict[str, Any]:
        return container_state(self.client, self.name)

    @property
    def health(self) -> str | None:
        """HEALTHCHECK status (starting, healthy, unhealthy) or None."""
        health = self.state().get("Health")
        return None if health is None else str(health.get("Status"))

    def kill_process(self) -> int:
        """SIGKILL the main process from the host: a crash, not a manual stop."""
        return kill_container_process(self.client, self.name)

    def logs(self) -> str:
        return bytes(self.container.logs()).decode("utf-8", "replace")

    def wait_status(self, status: str, timeout: float = 15.0) -> None:
        wait_for(
            lambda: self.status == status,
            timeout,
            interval=0.05,
            message=f"container {self.name} did not become {status!r}",
        )

    def wait_health(self, status: str = "healthy", timeout: float = 30.0) -> None:
        wait_for(
            lambda: self.health == status,
            timeout,
            interval=0.1,
            message=f"container {self.name} health did not become {status!r}",
        )


def _healthcheck(
    cmd: str | Sequence[str], interval: float, timeout: float, retries: int, start_period: float
) -> dict[str, Any]:
    test = ["CMD-SHELL", cmd] if isinstance(cmd, str) else ["CMD", *cmd]
    ns = 1_000_000_000
    return {
        "test": test,
        "interval": int(interval * ns),
        "timeout": int(timeout * ns),
        "retries": retries,
        "start_period": int(start_period * ns),
    }


def _restart_policy(policy: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if policy is None:
        return {"Name": "no"}
    if isinstance(policy, str):
        return {"Name": policy, "MaximumRetryCount": 0}
    return dict(policy)


class ContainerFactory:
    """``container_factory(...)`` starts a container from the test image.

    Every container gets the name ``{prefix}{suffix}`` (prefix
    ``medic-test-<random>-``), the label ``medic.test=1`` and, unless told
    otherwise, docker's ``--init`` (so ``docker stop`` is quick: busybox as
    PID 1 would ignore SIGTERM for 10 s) and restart policy "no".
    """

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.prefix = f"medic-test-{secrets.token_hex(3)}-"
        self.created: list[ContainerHandle] = []
        self._count = 0

    def __call__(
        self,
        *,
        name: str | None = None,
        command: str | Sequence[str] | None = None,
        publish: bool | None = None,
        host_port: int | None = None,
        health_cmd: str | Sequence[str] | None = None,
        health_interval: float = 1.0,
        health_timeout: float = 2.0,
        health_retries: int = 2,
        health_start_period: float = 0.0,
        healthcheck: Mapping[str, Any] | None = None,
        restart_policy: str | Mapping[str, Any] | None = None,
        init: bool = True,
        environment: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        wait_ready: bool | None = None,
        ready_timeout: float = 15.0,
        **run_kwargs: Any,
    ) -> ContainerHandle:
        """Create and start a container; return once it runs (and answers HTTP).

        ``command``: None runs the image's busybox httpd on port 8080; a string
        runs through ``sh -c``, a list is exec'd as is.
        ``publish``: map container port 8080 to 127.0.0.1:``host_port`` (a free
        port unless given); defaults to True when ``command`` is None.
        ``health_cmd``: a HEALTHCHECK (string: CMD-SHELL; list: CMD), or pass
        a raw docker-py ``healthcheck`` dict.
        ``wait_ready``: wait until the published port answers HTTP (any status);
        defaults to ``publish``.
        """
        self._count += 1
        full_name = f"{self.prefix}{name or f'c{self._count}'}"
        if publish is None:
            publish = command is None or host_port is not None
        if wait_ready is None:
            wait_ready = publish
        argv: list[str] | None
        if command is None:
            argv = None
        elif isinstance(command, str):
            argv = ["sh", "-c", command]
        else:
            argv = list(command)
        if health_cmd is not None:
            healthcheck = _healthcheck(
                health_cmd, health_interval, health_timeout, health_retries, health_start_period
            )

        for attempt in range(5):
            port = (host_port or free_port()) if publish else None
            container = self.client.containers.create(
                self.image,
                argv,
                name=full_name,
                labels=_test_labels(labels),
                ports={"8080/tcp": ("127.0.0.1", port)} if port else None,
                healthcheck=dict(healthcheck) if healthcheck else None,
                restart_policy=_restart_policy(restart_policy),  # type: ignore[arg-type]
                init=init,
                environment=dict(environment or {}),
                **run_kwargs,
            )
            try:
                container.start()
                break
            except docker.errors.APIError as exc:
                container.remove(force=True)
                port_taken = "already allocated" in str(exc) or "address already in use" in str(exc)
                if not port_taken or host_port is not None or attempt == 4:
                    raise
        url = f"http://127.0.0.1:{port}/" if port else None
        handle = ContainerHandle(
            name=full_name,
            id=str(container.id),
            port=port,
            url=url,
            container=container,
            client=self.client,
        )
        self.created.append(handle)
        if wait_ready and url:
            self._wait_http(handle, url, ready_timeout)
        return handle

    def _wait_http(self, handle: ContainerHandle, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                http_request(url, timeout=1.0)
                return
            except (OSError, urllib.error.URLError) as exc:
                last_error = exc
            if handle.status not in ("running", "created", "restarting"):
                pytest.fail(
                    f"container {handle.name} stopped ({handle.status}) before {url} answered;"
                    f" logs:\n{handle.logs()}",
                    pytrace=False,
                )
            time.sleep(0.05)
        pytest.fail(
            f"container {handle.name}: {url} did not answer within {timeout:g}s"
            f" ({last_error}); logs:\n{handle.logs()}",
            pytrace=False,
        )

    def cleanup(self) -> None:
        for handle in self.created:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.client.api.remove_container(handle.id, force=True)
        self.created.clear()


@pytest.fixture
def container_factory(
    docker_client: docker.DockerClient, test_image: str, idle_container: Container
) -> Iterator[ContainerFactory]:
    factory = ContainerFactory(docker_client, test_image)
    yield factory
    factory.cleanup()


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
async def _pg_select_one(dsn: str) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("MEDIC_TEST_PG_DSN", DEFAULT_PG_DSN)
    # In a thread of its own: it must not touch pytest-asyncio's event loops.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(asyncio.run, _pg_select_one(dsn)).result(timeout=30)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not answering"
            pytest.fail(
                f"PostgreSQL does not answer at {dsn} ({type(exc).__name__}: {exc}); {SETUP_HINT}",
                pytrace=False,
            )
    return dsn


# ---------------------------------------------------------------------------
# The daemon: `python -m medic run` as a real subprocess
# ---------------------------------------------------------------------------
# Variables of the developer's shell or of a supervising systemd that must not
# reach the daemon under test.
_SCRUBBED_ENV_PREFIXES = ("MEDIC_",)
_SCRUBBED_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


@dataclass
class DaemonProcess:
    """A running ``medic run``; see :class:`DaemonFactory`."""

    proc: subprocess.Popen[bytes]
    url: str
    listen: str
    port: int
    log_path: Path
    config_path: Path
    state_dir: Path
    tail_reported: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    # -- logs ---------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON object line of the log (other lines are skipped)."""
        records = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def find_logs(self, **fields: Any) -> list[dict[str, Any]]:
        """JSON log records whose keys equal all of ``fields`` (e.g. event=...)."""
        return [r for r in self.log_lines() if all(r.get(k) == v for k, v in fields.items())]

    def wait_for_log(self, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Wait until a JSON log record matches ``fields``; return the first one."""
        found = wait_for(
            lambda: self.find_logs(**fields),
            timeout,
            interval=0.1,
            message=f"no log record matching {fields}",
        )
        return found[0]

    # -- HTTP API -----------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        token: str | None = None,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body, or text when it is not JSON, or None)."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        status, raw = http_request(
            self.url + path, method=method, body=body, headers=all_headers, timeout=timeout
        )
        return status, _parse_body(raw)

    def get(self, path: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, Any]:
        return self.request("GET", path, token=token, timeout=timeout)

    def post(
        self, path: str, json: Any = None, token: str | None = None, timeout: float = 10.0
    ) -> tuple[int, Any]:
        return self.request("POST", path, json_body=json, token=token, timeout=timeout)

    # -- process ------------------------------------------------------------
    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def write_config(self, config_yaml: str) -> None:
        """Replace the config file (then send SIGHUP or POST /api/v1/reload)."""
        self.config_path.write_text(config_yaml)

    def wait(self, timeout: float = DAEMON_STOP_TIMEOUT) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"medic daemon (pid {self.pid}) still runs after {timeout:g}s"
            ) from None

    def stop(self, timeout: float = DAEMON_STOP_TIMEOUT) -> int:
        """SIGTERM and wait; return the exit code. Fails the test when it hangs."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"medic daemon (pid {self.pid}) did not exit within {timeout:g}s of SIGTERM"
            ) from None

    def kill(self) -> int:
        """SIGKILL the daemon (a crash: ``kill -9``); return its exit code."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=DAEMON_STOP_TIMEOUT)

    def kill_group(self) -> None:
        """SIGKILL whatever is left in the daemon's process group (its children)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _api_base(listen: str) -> tuple[str, int]:
    """``127.0.0.1:8321`` / ``[::1]:8321`` / ``0.0.0.0:8321`` -> (base URL, port)."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}", int(port)


def _listen_from_yaml(config_yaml: str) -> str:
    """``api.listen`` of a config, or medic's default when it has none (or is not YAML)."""
    try:
        parsed = yaml.safe_load(config_yaml)
        listen = parsed["api"]["listen"]
    except (yaml.YAMLError, TypeError, KeyError):
        return "127.0.0.1:8321"
    return str(listen or "127.0.0.1:8321")


class DaemonFactory:
    """``medic_daemon(config_yaml, ...)`` starts ``python -m medic run``.

    Files live in the test's own tmp dir: ``config.yaml`` (``.config_path``),
    ``playbooks/NAME.yaml`` (``.playbooks_dir``; a config may say
    ``playbooks_dir: playbooks``, relative to the config file), ``state/``
    (``.state_dir``, kept across starts so a second start sees the first one's
    history) and ``daemon-N.log``. The YAML is written as given.
    """

    def __init__(self, tmp_path: Path, registry: list[DaemonProcess]) -> None:
        self.dir = tmp_path
        self.config_path = tmp_path / "config.yaml"
        self.playbooks_dir = tmp_path / "playbooks"
        self.state_dir = tmp_path / "state"
        self.processes = registry

    def new_port(self) -> int:
        """A free port on 127.0.0.1, e.g. for ``api.listen``."""
        return free_port()

    def write_playbooks(self, playbooks: Mapping[str, str]) -> Path:
        self.playbooks_dir.mkdir(parents=True, exist_ok=True)
        for name, text in playbooks.items():
            filename = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
            (self.playbooks_dir / filename).write_text(text)
        return self.playbooks_dir

    def _env(self, env: Mapping[str, str | None] | None) -> dict[str, str]:
        merged = {
            k: v
            for k, v in os.environ.items()
            if k not in _SCRUBBED_ENV and not k.startswith(_SCRUBBED_ENV_PREFIXES)
        }
        merged["PYTHONUNBUFFERED"] = "1"
        source_root = str(REPO_ROOT / "daemon")
        merged["PYTHONPATH"] = os.pathsep.join(
            p for p in (source_root, merged.get("PYTHONPATH")) if p
        )
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def __call__(
        self,
        config_yaml: str,
        *,
        listen: str | None = None,
        env: Mapping[str, str | None] | None = None,
        extra_args: Sequence[str] = (),
        playbooks: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        wait_healthy: bool = True,
        timeout: float = DAEMON_START_TIMEOUT,
        cwd: Path | None = None,
    ) -> DaemonProcess:
        """Write the config (and playbooks), start the daemon, wait for /api/v1/health.

        ``listen`` is the config's ``api.listen`` (read from the YAML when not
        given). ``env`` is added to the environment (a None value removes a
        variable; MEDIC_* of the caller's shell are never passed on). ``cwd`` is
        the daemon's working directory (default: the test's tmp dir, the config's).
        """
        if listen is None:
            listen = _listen_from_yaml(config_yaml)
        url, port = _api_base(listen)
        self.config_path.write_text(config_yaml)
        if playbooks:
            self.write_playbooks(playbooks)
        state = state_dir or self.state_dir
        log_path = self.dir / f"daemon-{len(self.processes) + 1}.log"
        cmd = [
            sys.executable, "-m", "medic", "run",
            "--config", str(self.config_path),
            "--state-dir", str(state),
            "--log-format", "json",
            *extra_args,
        ]  # fmt: skip
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.dir,
                env=self._env(env),
                start_new_session=True,
            )
        daemon = DaemonProcess(
            proc=proc,
            url=url,
            listen=listen,
            port=port,
            log_path=log_path,
            config_path=self.config_path,
            state_dir=state,
        )
        self.processes.append(daemon)
        if wait_healthy:
            self._wait_healthy(daemon, timeout)
        return daemon

    start = __call__

    @staticmethod
    def _wait_healthy(daemon: DaemonProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if daemon.proc.poll() is not None:
                daemon.tail_reported = True
                pytest.fail(
                    f"medic daemon exited with code {daemon.proc.returncode} before it was"
                    f" healthy; last {LOG_TAIL_LINES} log lines:\n{daemon.log_tail()}",
                    pytrace=False,
                )
            try:
                status, body = daemon.get("/api/v1/health", timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}: {body!r}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        daemon.tail_reported = True
        pytest.fail(
            f"medic daemon not healthy at {daemon.url}/api/v1/health within {timeout:g}s"
            f" ({last}); last {LOG_TAIL_LINES} log lines:\n{daemon.log_tail()}",
            pytrace=False,
        )

    def cleanup(self) -> None:
        for daemon in self.processes:
            if daemon.proc.poll() is None:
                daemon.proc.send_signal(signal.SIGTERM)
                try:
                    daemon.proc.wait(timeout=DAEMON_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    daemon.proc.kill()
                    daemon.proc.wait(timeout=DAEMON_STOP_TIMEOUT)
            # Children the daemon left behind (its own process group).
            daemon.kill_group()


@pytest.fixture
def medic_daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonFactory]:
    registry: list[DaemonProcess] = []
    request.node.stash[_DAEMONS] = registry
    factory = DaemonFactory(tmp_path, registry)
    yield factory
    factory.cleanup()


# Re-exported for tests that want the types in annotations.
__all__ = [
    "ContainerFactory",
    "ContainerHandle",
    "DaemonFactory",
    "DaemonProcess",
    "http_request",
]


@pytest.fixture
async def resources(tmp_path: Path) -> AsyncIterator[Resources]:
    """The daemon's shared clients (HTTP session, Docker, pools, processes), closed after."""
    res = Resources(state_dir=tmp_path / "state")
    yield res
    await res.close()


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    """Starts real processes for a test and kills whatever is left at the end."""
    with Spawner() as spawner:
        yield spawner
