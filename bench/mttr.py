"""MTTR bench: crash a container, time crash -> HTTP 200 again.

Compares medic (Docker events + the ``restart-container`` playbook, 1 s check
interval) with Docker's own ``--restart=always`` in the same run:

    medic, docker kill            (Docker's restart policy ignores a ``docker kill``)
    medic, host SIGKILL           (``os.kill(State.Pid, SIGKILL)`` from the host)
    docker --restart=always, host SIGKILL
    docker start on die           (a client of the engine that does nothing but call
                                   ``start`` the moment the ``die`` event arrives: the
                                   floor for medic or any other client; idle case only)

first with a second idle container on the bench's bridge (rounds of the three
taking turns), then without it, each target alone (the last container on a
bridge restarts slower: the bridge goes down). The bridge is a network of the
run's own (``bench_network``); containers that others attach to it would keep
it up too, and the report names them.

The clock starts just before the kill and stops at the first HTTP 200 on the
published port, polled from here every 5 ms. Between rounds the bench waits
until the service is back and stable: the container runs and answers; medic
reports ``healthy``, not recovering, and again 2 s later; Docker's restart
policy: the container has been up 10.5 s, so that Docker's restart back-off
is back at its first step. Every round is counted (no warm-up round dropped).
Docker's ``die``/``start`` events and medic's recovery records show where the
time went.

Run as root (the host SIGKILL needs it), from the repository root:

    .venv/bin/python bench/mttr.py [--rounds N] [--quick] [--json] [--source CHECKOUT]

The host-process case (SIGKILL a service's ``process:``, medic against
supervisord with ``autorestart=true``) is ``--process``, which runs
``bench/mttr_process.py`` with the same ``--rounds``/``--json``:

    .venv/bin/python bench/mttr.py --process [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

IMAGE = "medic-test:busybox"
CONTAINER_PORT = "8080/tcp"
NAME_PREFIX = "medic-bench"
LABEL = "medic-bench.run"
REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
if not PYTHON.exists():  # a worktree without its own venv: the interpreter running this
    PYTHON = Path(sys.executable)

PORT_RANGE = (20000, 32000)
"""Below Linux's default ephemeral range (32768-60999)."""
POLL_INTERVAL_S = 0.005
PROBE_TIMEOUT_S = 0.25
OVERLAPPING_PROBE_TIMEOUT_S = 1.0
MAX_PROBES_IN_FLIGHT = 250
"""Enough for a new probe every POLL_INTERVAL_S while the oldest waits out its time-out."""
RECOVERY_DEADLINE_S = 30.0
STABLE_TIMEOUT_S = 60.0
MEDIC_SETTLE_S = 2.0
"""Healthy this long (two check intervals) before the next crash."""
DOCKER_MIN_UPTIME_S = 10.5
"""Docker resets its restart back-off (100 ms, doubling) once a container ran 10 s."""

MEDIC_KILL = "medic, docker kill"
MEDIC_SIGKILL = "medic, host SIGKILL"
DOCKER_SIGKILL = "docker --restart=always, host SIGKILL"
FLOOR_SIGKILL = "docker start on die (any client's floor), host SIGKILL"
NOT_MEDIC = (DOCKER_SIGKILL, FLOOR_SIGKILL)


class BenchError(Exception):
    """A problem that ends the run with a clear message."""


# results ----------------------------------------------------------------------------


@dataclass
class Round:
    seconds: float | None
    """Crash -> first HTTP 200; None when it did not come back in time."""
    note: str = ""
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    """medic's recovery records that started during this round."""
    marks: dict[str, float | None] = field(default_factory=dict)
    """Seconds after the crash: Docker's ``die`` and ``start`` events, medic's recovery start."""


@dataclass
class Scenario:
    name: str
    idle: bool
    rounds: list[Round] = field(default_factory=list)
    other_bridge_containers: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} ({'with' if self.idle else 'without'} idle container)"

    def times(self) -> list[float]:
        return [r.seconds for r in self.rounds if r.seconds is not None]

    def stats(self) -> dict[str, float | int | None]:
        times = sorted(self.times())
        if not times:
            return {"n": 0, "failed": len(self.rounds)}
        return {
            "n": len(times),
            "failed": len(self.rounds) - len(times),
            "median": statistics.median(times),
            "p90": _p90(times),
            "min": times[0],
            "max": times[-1],
        }


def _p90(times: list[float]) -> float:
    if len(times) == 1:
        return times[0]
    return statistics.quantiles(times, n=10, method="inclusive")[8]


# docker -------------------------------------------------------------------------------


def connect_docker() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise BenchError(
            f"Docker engine unreachable ({exc}); start it with `bash scripts/setup-test-env.sh`"
        ) from exc
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound as exc:
        raise BenchError(f"image {IMAGE} missing; build it with scripts/setup-test-env.sh") from exc
    return client


def free_port() -> int:
    """A free port below the ephemeral range, where other people's port-0 binds and
    this bench's own thousands of probe connections never land."""
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BenchError(f"no free port in {PORT_RANGE}")


class Containers:
    """Every container this run creates, labelled so that cleanup finds them all."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.run_id = uuid.uuid4().hex[:8]
        self.network = bench_network(client, self.run_id)

    def name(self, role: str) -> str:
        return f"{NAME_PREFIX}-{self.run_id}-{role}"

    def web(self, role: str, port: int, *, restart_always: bool) -> Container:
        policy = {"Name": "always"} if restart_always else {"Name": "no"}
        return self._run(role, ports={CONTAINER_PORT: ("127.0.0.1", port)}, restart_policy=policy)

    def idle(self) -> Container:
        return self._run("idle", command=["sleep", "100000"])

    def _run(self, role: str, **kwargs: Any) -> Container:
        container: Container = self.client.containers.run(
            IMAGE,
            name=self.name(role),
            detach=True,
            labels={LABEL: self.run_id},
            network=self.network,
            **kwargs,
        )
        return container

    def remove(self, container: Container | None) -> None:
        if container is None:
            return
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

    def remove_all(self) -> None:
        remove_run(self.client, self.run_id)

    def others_on_bridge(self) -> list[str]:
        """Running containers on the bench's bridge that this run did not start."""
        mine = f"{NAME_PREFIX}-{self.run_id}-"
        # The low-level inspect: the high-level list inspects each container, and
        # one that someone else removes meanwhile would end the run.
        attached = self.client.api.inspect_network(self.network).get("Containers") or {}
        names = [str(c.get("Name") or "") for c in attached.values()]
        return sorted(n for n in names if not n.startswith(mine))


def bench_network(client: docker.DockerClient, run_id: str) -> str:
    """A bridge network of the run's own: on this shared machine, a private
    ``dockerd --bridge=none`` started by someone else deletes the host's
    ``docker0`` (moby removes the default bridge interface at start), which
    breaks every container on the default bridge; a user-defined bridge is
    left alone. It behaves as the default bridge for what is measured here."""
    name = f"{NAME_PREFIX}-{run_id}"
    client.networks.create(name, driver="bridge", labels={LABEL: run_id})
    return name


def remove_run(client: docker.DockerClient, run_id: str) -> None:
    """Remove the run's containers, then its network."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"})
    for container in found:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
    for network in client.networks.list(filters={"label": f"{LABEL}={run_id}"}):
        with contextlib.suppress(docker.errors.DockerException):
            network.remove()


def container_state(container: Container) -> dict[str, Any]:
    container.reload()
    state: dict[str, Any] = container.attrs["State"]
    return state


def uptime_s(state: dict[str, Any]) -> float:
    started = datetime.fromisoformat(str(state["StartedAt"]).replace("Z", "+00:00"))
    return (datetime.now(UTC) - started).total_seconds()


class EventLog:
    """Docker's ``die`` and ``start`` events for this run's containers, read on a thread."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        filters = {"type": "container", "event": ["die", "start"], "label": f"{LABEL}={run_id}"}
        self._stream: Any = client.api.events(decode=True, filters=filters)
        self._events: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="mttr-events", daemon=True).start()

    def _read(self) -> None:
        # The stream ends with an error of some kind when close() cuts it.
        with contextlib.suppress(Exception):
            for raw in self._stream:
                name = str(raw.get("Actor", {}).get("Attributes", {}).get("name", ""))
                event = (name, str(raw.get("Action")), int(raw.get("timeNano", 0)) / 1e9)
                with self._lock:
                    self._events.append(event)

    def first(self, name: str, action: str, after: float, wait_s: float = 2.0) -> float | None:
        """Seconds from ``after`` to the first ``action`` event of ``name`` since then."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                times = [t for n, a, t in self._events if n == name and a == action and t >= after]
            if times or time.monotonic() > deadline:
                return round(min(times) - after, 4) if times else None
            time.sleep(0.02)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


# crashing -----------------------------------------------------------------------------


def crash_docker_kill(container: Container) -> float:
    started = time.perf_counter()
    container.kill()
    return started


def crash_host_sigkill(container: Container) -> float:
    pid = int(container_state(container)["Pid"])
    if pid <= 0:
        raise BenchError(f"container {container.name} has no process to kill")
    started = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    return started


CRASHES: dict[str, Callable[[Container], float]] = {
    MEDIC_KILL: crash_docker_kill,
    MEDIC_SIGKILL: crash_host_sigkill,
    DOCKER_SIGKILL: crash_host_sigkill,
    FLOOR_SIGKILL: crash_host_sigkill,
}


class StartOnDie:
    """The fastest any client of the engine can be: ``docker start`` the moment the
    container's ``die`` event arrives (no probe, no inspect, no record kept).

    Its own event stream and API connection, on a thread; what the engine does
    after the ``die`` (its exit handling holds the container until done, and
    ``start`` waits for it) is what remains, for medic and for this alike."""

    def __init__(self, container: Container) -> None:
        self._api = docker.APIClient(timeout=30)
        filters = {"type": "container", "event": ["die"], "container": [container.id]}
        self._stream: Any = self._api.events(decode=True, filters=filters)
        self._id = str(container.id)
        threading.Thread(target=self._start_on_die, name="mttr-floor", daemon=True).start()

    def _start_on_die(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when cut
            for _ in self._stream:
                with contextlib.suppress(docker.errors.APIError):  # removed at the end
                    self._api.start(self._id)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        self._api.close()


# probing ------------------------------------------------------------------------------


def answers_200(port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def time_to_200(port: int, started: float, deadline_s: float) -> float | None:
    """Seconds from ``started`` to the first HTTP 200, a new probe every few ms.

    The probes overlap: while the container's network comes up, docker-proxy
    accepts a connection and its own dial to the container can hang, so one
    probe at a time would wait out its time-out and see the service up to
    ``PROBE_TIMEOUT_S`` late (a random 0-0.25 s on either side of a
    comparison); each probe's answer counts when it arrives."""
    limit = started + deadline_s
    answered: list[float] = []
    done = threading.Event()

    def probe() -> None:
        if answers_200(port, OVERLAPPING_PROBE_TIMEOUT_S) and not done.is_set():
            answered.append(time.perf_counter())
            done.set()

    probes: list[threading.Thread] = []
    while time.perf_counter() < limit and not done.is_set():
        probes = [t for t in probes if t.is_alive()]
        if len(probes) < MAX_PROBES_IN_FLIGHT:
            thread = threading.Thread(target=probe, name="mttr-probe", daemon=True)
            thread.start()
            probes.append(thread)
        done.wait(POLL_INTERVAL_S)
    for thread in probes:
        thread.join()
    return min(answered) - started if answered else None


def wait_until(what: str, predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:g}s waiting until {what}")
        time.sleep(0.05)


# medic --------------------------------------------------------------------------------


class Medic:
    """One medic daemon watching one container service named ``web``."""

    def __init__(self, workdir: Path, source: Path, container: str, web_port: int) -> None:
        self.workdir = workdir
        self.source = source
        """A checkout of medic: its ``daemon/`` is run, its ``recovery_playbooks/`` used."""
        self.container = container
        self.web_port = web_port
        self.api_port = free_port()
        self.log_path = workdir / "medic.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        return (
            f"api: {{listen: 127.0.0.1:{self.api_port}}}\n"
            "monitoring:\n"
            "  health_check_interval: 1s\n"
            "  timeout: 1s\n"
            "  recovery: {max_attempts: 1000, window: 1m, backoff: {initial: 0s}}\n"
            f"playbooks_dir: {self.source / 'recovery_playbooks'}\n"
            "services:\n"
            "  web:\n"
            f'    check: {{type: http, url: "http://127.0.0.1:{self.web_port}/healthz"}}\n'
            f"    container: {self.container}\n"
        )

    def start(self) -> None:
        config = self.workdir / "medic.yaml"
        config.write_text(self.config_text())
        state_dir = self.workdir / "state"
        argv = [str(PYTHON), "-m", "medic", "run", "--config", str(config)]
        argv += ["--state-dir", str(state_dir), "--log-format", "json"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.workdir, env=self._env(), stdout=log, stderr=subprocess.STDOUT
            )
        wait_until("medic answers /api/v1/health", self._up, 30)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.source / "daemon"), env.get("PYTHONPATH")) if p
        )
        return env

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"medic exited with {self.proc.returncode}:\n{tail}")
        try:
            health = self.get("/api/v1/health")
        except OSError:
            return False
        if health.get("config") != str(self.workdir / "medic.yaml"):
            raise BenchError(f"another daemon answers on 127.0.0.1:{self.api_port}")
        return True

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.api_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)

    def service(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/api/v1/services/web")
        return data

    def recoveries_after(self, last_id: int) -> list[dict[str, Any]]:
        data = self.get("/api/v1/recoveries?service=web&limit=50")
        return sorted(
            (r for r in data["recoveries"] if int(r["id"]) > last_id), key=lambda r: r["id"]
        )

    def last_recovery_id(self) -> int:
        data = self.get("/api/v1/recoveries?service=web&limit=1")
        return max((int(r["id"]) for r in data["recoveries"]), default=0)

    def stop(self) -> None:
        stop_process(self.proc, grace_s=15)


def stop_process(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# one target: a container and whatever brings it back ----------------------------------


@dataclass
class Target:
    container: Container
    port: int
    events: EventLog
    medic: Medic | None = None
    seen_recovery_id: int = 0
    """medic's recoveries up to this id belong to earlier rounds."""
    min_uptime_s: float = DOCKER_MIN_UPTIME_S
    """Up this long before a crash when nothing else says the target is settled."""

    def stable(self) -> bool:
        state = container_state(self.container)
        if not state.get("Running") or not answers_200(self.port):
            return False
        if self.medic is None:
            return uptime_s(state) >= self.min_uptime_s
        try:
            service = self.medic.service()
        except OSError:  # medic's API erring or restarting: not stable yet
            return False
        return service.get("status") == "healthy" and not service.get("recovering")

    def wait_stable(self) -> None:
        what = f"{self.container.name} is back and stable"
        wait_until(what, self.stable, STABLE_TIMEOUT_S + self.min_uptime_s)
        if self.medic is not None:
            time.sleep(MEDIC_SETTLE_S)
            wait_until(what, self.stable, STABLE_TIMEOUT_S)


def run_round(target: Target, crash: Callable[[Container], float]) -> Round:
    target.wait_stable()
    before = container_state(target.container)
    started = crash(target.container)
    crashed_at = time.time() - (time.perf_counter() - started)
    seconds = time_to_200(target.port, started, RECOVERY_DEADLINE_S)
    rnd = Round(seconds=seconds)
    if seconds is None:
        rnd.note = f"no HTTP 200 within {RECOVERY_DEADLINE_S:g}s"
        _revive(target)
    elif container_state(target.container)["StartedAt"] == before["StartedAt"]:
        rnd.seconds = None  # an answer from the old process is no recovery
        rnd.note = "container was not restarted: the crash did not take"
    if target.medic is not None:
        target.wait_stable()
        records = target.medic.recoveries_after(target.seen_recovery_id)
        target.seen_recovery_id = max(
            (int(r["id"]) for r in records), default=target.seen_recovery_id
        )
        rnd.recoveries = [_recovery_summary(r, crashed_at) for r in records]
    _mark(rnd, target, crashed_at)
    return rnd


def _mark(rnd: Round, target: Target, crashed_at: float) -> None:
    name = target.container.name or ""
    rnd.marks["die"] = target.events.first(name, "die", crashed_at)
    if rnd.recoveries:
        rnd.marks["recovery"] = rnd.recoveries[0]["started_after_crash_s"]
    rnd.marks["start"] = target.events.first(name, "start", crashed_at)
    rnd.marks["http_200"] = rnd.seconds


def _revive(target: Target) -> None:
    with contextlib.suppress(docker.errors.DockerException):
        if not container_state(target.container).get("Running"):
            target.container.start()


def _recovery_summary(rec: dict[str, Any], crashed_at: float) -> dict[str, Any]:
    started = datetime.fromisoformat(str(rec["started_at"])).timestamp()
    return {
        "started_after_crash_s": round(started - crashed_at, 4),
        "id": rec["id"],
        "failure_type": rec.get("failure_type"),
        "trigger": rec.get("trigger"),
        "outcome": rec.get("outcome"),
        "started_at": rec.get("started_at"),
        "duration_seconds": rec.get("duration_seconds"),
        "steps": {s["action"]: s.get("duration_seconds") for s in rec.get("steps", [])},
    }


def crash_round(scenario: Scenario, target: Target, containers: Containers) -> Round:
    others = containers.others_on_bridge()
    scenario.other_bridge_containers = sorted({*scenario.other_bridge_containers, *others})
    rnd = run_round(target, CRASHES[scenario.name])
    scenario.rounds.append(rnd)
    _print_round(scenario, len(scenario.rounds), rnd)
    return rnd


def _print_round(scenario: Scenario, index: int, rnd: Round) -> None:
    took = f"{rnd.seconds:.3f}s" if rnd.seconds is not None else "FAILED"
    marks = " ".join(f"{k}={_fmt(v)}" for k, v in rnd.marks.items() if k != "http_200")
    steps = "; ".join(" ".join(f"{a}={d}" for a, d in r["steps"].items()) for r in rnd.recoveries)
    extra = f" recoveries={len(rnd.recoveries)} [{steps}]" if scenario.name not in NOT_MEDIC else ""
    note = f" ({rnd.note})" if rnd.note else ""
    line = f"  {scenario.label} #{index}: {took} ({marks}){extra}{note}"
    print(line, file=sys.stderr, flush=True)


# the run ------------------------------------------------------------------------------


@dataclass
class Bench:
    containers: Containers
    workdir: Path
    rounds: int
    events: EventLog
    source: Path = REPO
    scenarios: list[Scenario] = field(default_factory=list)

    def interleave(self, idle: bool, plan: list[tuple[str, Target]]) -> None:
        """``rounds`` rounds of each scenario, taking turns so that drift hits them alike."""
        runs = [(Scenario(name, idle), target) for name, target in plan]
        self.scenarios += [scenario for scenario, _ in runs]
        print(f"== {', '.join(s.label for s, _ in runs)}", file=sys.stderr, flush=True)
        for _ in range(self.rounds):
            for scenario, target in runs:
                crash_round(scenario, target, self.containers)

    @contextlib.contextmanager
    def medic_target(self) -> Iterator[Target]:
        port = free_port()
        container = self.containers.web("medic-web", port, restart_always=False)
        workdir = Path(tempfile.mkdtemp(dir=self.workdir))
        medic = Medic(workdir, self.source, container.name or "", port)
        try:
            wait_until("the medic-watched container answers", lambda: answers_200(port), 30)
            medic.start()
            yield Target(container, port, self.events, medic, medic.last_recovery_id())
        finally:
            medic.stop()
            self.containers.remove(container)

    @contextlib.contextmanager
    def docker_target(self) -> Iterator[Target]:
        port = free_port()
        container = self.containers.web("docker-web", port, restart_always=True)
        try:
            yield Target(container, port, self.events)
        finally:
            self.containers.remove(container)

    @contextlib.contextmanager
    def floor_target(self) -> Iterator[Target]:
        port = free_port()
        container = self.containers.web("floor-web", port, restart_always=False)
        starter = StartOnDie(container)
        try:
            yield Target(container, port, self.events, min_uptime_s=0.0)
        finally:
            starter.close()
            self.containers.remove(container)

    def run(self) -> None:
        idle = self.containers.idle()
        targets = (self.medic_target(), self.docker_target(), self.floor_target())
        with contextlib.ExitStack() as stack:
            medic, own, floor = (stack.enter_context(t) for t in targets)
            plan = [(MEDIC_KILL, medic), (MEDIC_SIGKILL, medic), (DOCKER_SIGKILL, own)]
            self.interleave(True, [*plan, (FLOOR_SIGKILL, floor)])
        # Without the idle container each target must be alone: one at a time.
        self.containers.remove(idle)
        with self.medic_target() as medic:
            self.interleave(False, [(MEDIC_KILL, medic), (MEDIC_SIGKILL, medic)])
        with self.docker_target() as own:
            self.interleave(False, [(DOCKER_SIGKILL, own)])


# reporting ----------------------------------------------------------------------------


def ratio_to_docker(scenario: Scenario, scenarios: list[Scenario]) -> float | None:
    if scenario.name == DOCKER_SIGKILL:
        return None
    floor = next(
        (s for s in scenarios if s.name == DOCKER_SIGKILL and s.idle == scenario.idle), None
    )
    if floor is None or not floor.times() or not scenario.times():
        return None
    return statistics.median(scenario.times()) / statistics.median(floor.times())


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _idle_cell(scenario: Scenario) -> str:
    if scenario.idle:
        return "yes"
    others = len(scenario.other_bridge_containers)
    return f"no (but {others} other containers on the bridge)" if others else "no"


def table(scenarios: list[Scenario]) -> str:
    head = "| scenario | idle container | n | median s | p90 s | min s | max s | median / docker |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for s in scenarios:
        st = s.stats()
        ratio = ratio_to_docker(s, scenarios)
        n = f"{st['n']}" + (f" ({st['failed']} failed)" if st["failed"] else "")
        cells = [s.name, _idle_cell(s), n]
        cells += [_fmt(st.get(k)) for k in ("median", "p90", "min", "max")]
        cells.append(f"{ratio:.2f}x" if ratio is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TIMELINE_HEAD = (
    "| scenario | idle container | die event | medic recovery starts | docker start event "
    "| HTTP 200 | restart_container step | wait_healthy step | recoveries per crash |"
)


def timeline(scenarios: list[Scenario]) -> str:
    """Medians, in seconds after the crash, of where each round's time went."""
    lines = [TIMELINE_HEAD, "|---|---|---|---|---|---|---|---|---|"]
    for s in scenarios:
        cells = [s.name, "yes" if s.idle else "no"]
        cells += [_fmt(_median_mark(s, m)) for m in ("die", "recovery", "start", "http_200")]
        steps = _median_steps([r for rnd in s.rounds for r in rnd.recoveries])
        cells += [_fmt(steps.get(a)) for a in ("restart_container", "wait_healthy")]
        per_crash = sorted({len(rnd.recoveries) for rnd in s.rounds})
        cells.append("-" if s.name in NOT_MEDIC else ", ".join(map(str, per_crash)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _median_mark(scenario: Scenario, mark: str) -> float | None:
    values = [v for rnd in scenario.rounds if (v := rnd.marks.get(mark)) is not None]
    return statistics.median(values) if values else None


def _median_steps(recs: list[dict[str, Any]]) -> dict[str, float]:
    by_action: dict[str, list[float]] = {}
    for rec in recs:
        for action, took in rec["steps"].items():
            if took is not None:
                by_action.setdefault(action, []).append(float(took))
    return {a: statistics.median(v) for a, v in by_action.items()}


def machine(client: docker.DockerClient) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    server = client.version()
    return {
        "nproc": str(os.cpu_count()),
        "kernel": platform.release(),
        "cpu": cpu,
        "docker": str(server.get("Version")),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def report(bench: Bench, as_json: bool) -> None:
    if as_json:
        out = {
            "machine": machine(bench.containers.client),
            "rounds": bench.rounds,
            "scenarios": [
                {
                    **asdict(s),
                    "label": s.label,
                    "stats": s.stats(),
                    "ratio_to_docker": ratio_to_docker(s, bench.scenarios),
                }
                for s in bench.scenarios
            ],
        }
        print(json.dumps(out, indent=2))
        return
    info = machine(bench.containers.client)
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"{bench.rounds} rounds per scenario, all counted (no warm-up round dropped)\n")
    print(table(bench.scenarios))
    print()
    print("Where the time went (medians, seconds after the crash; steps: their own duration)")
    print(timeline(bench.scenarios))
    for s in bench.scenarios:
        for i, rnd in enumerate(s.rounds, 1):
            if rnd.note:
                print(f"- {s.label} round {i}: {rnd.note}")
        if s.other_bridge_containers:
            print(
                f"- note: {s.label} ran with other containers on the bridge: "
                f"{', '.join(s.other_bridge_containers)}"
            )


# entry point --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="crashes per scenario (default 20)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 rounds per scenario")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="the medic checkout to run: its daemon/ and recovery_playbooks/ (default: this repo)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (medic's log)")
    parser.add_argument(
        "--process",
        action="store_true",
        help="the host-process case instead: SIGKILL a process service, medic vs supervisord",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="wrong answers (404) and hangs (docker pause) instead: medic vs Monit",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.source = args.source.resolve()
    if not (args.source / "daemon" / "medic").is_dir():
        parser.error(f"--source {args.source}: no daemon/medic/ there")
    return args


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, workdir: Path) -> None:
    containers = Containers(connect_docker())
    events = EventLog(containers.client, containers.run_id)
    try:
        bench = Bench(containers, workdir, args.rounds, events, args.source)
        bench.run()
        report(bench, args.json)
    finally:
        containers.remove_all()
        events.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.process:
        import mttr_process  # beside this file; sys.path[0] when run as a script

        return mttr_process.main(["--rounds", str(args.rounds)] + ["--json"] * args.json)
    if args.faults:
        import mttr_faults  # beside this file

        flags = ["--json"] * args.json + ["--keep"] * args.keep
        return mttr_faults.main(
            ["--rounds", str(args.rounds), "--source", str(args.source), *flags]
        )
    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="medic-bench-"))
    try:
        run(args, workdir)
        return 0
    except BenchError as exc:
        print(f"mttr: {exc}", file=sys.stderr)
        return 2
    except (OSError, docker.errors.DockerException) as exc:
        print(f"mttr: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mttr: interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"mttr: work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
