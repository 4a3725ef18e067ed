"""The soak's stand: the targets medic watches and medic itself (see ``bench/soak.py``).

- 10 containers from ``medic-test:busybox``, each ``sh /ctl/run.sh`` under
  ``--init`` with ``--memory 32m``: the script writes ``/www/healthz`` (so a
  restart heals a removed one), starts busybox ``httpd`` on 8080, and then
  either exits after 2 s (crash-loop mode: the file ``crashloop`` exists in
  the container's host-side control dir, mounted at ``/ctl``) or loops,
  allocating memory without bound once ``/tmp/eat`` exists (the OOM fault).
- 3 ``process:`` services: ``bench/tiny_http_server.py`` under
  ``/usr/bin/python3 -S``, started and supervised by medic.
- A PostgreSQL cluster of its own (``initdb`` into a temp dir, its own port
  and socket dir), never the shared one; medic's ``start_command`` starts it.
- medic: ``python -m medic run`` of this checkout, a 1 s check interval, the
  shipped playbooks, an API token for the operator calls (reset).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

REPO = Path(__file__).resolve().parent.parent
IMAGE = "medic-test:busybox"
LABEL = "medic-soak.run"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PROGRAM = REPO / "bench" / "tiny_http_server.py"
PORT_RANGE = (20000, 32000)
MEMORY_LIMIT = "32m"
TOKEN = uuid.uuid4().hex

RUN_SH = """\
rm -f /tmp/eat
echo ok > /www/healthz
httpd -p 8080 -h /www
if [ -e /ctl/crashloop ]; then sleep 2; exit 1; fi
while :; do
  if [ -e /tmp/eat ]; then x=$(head -c 512m /dev/zero | tr '\\0' x); fi
  sleep 1
done
"""

MEDIC_POLICY = """\
monitoring:
  health_check_interval: 1s
  timeout: 1s
  recovery:
    max_attempts: 3
    window: 2m
    backoff: {initial: 1s, factor: 2, max: 4s}
    reset_after: 10s
    circuit_cooldown: 0
"""
RESET_AFTER_S = 10.0
MAX_ATTEMPTS = 3


class SoakError(Exception):
    """A problem with the stand itself (not a finding about medic)."""


def free_port() -> int:
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SoakError(f"no free port in {PORT_RANGE}")


def wait_until(what: str, predicate: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, docker.errors.DockerException, ValueError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise SoakError(f"timed out after {timeout_s:g}s waiting until {what}")
        time.sleep(0.1)


def answers(url: str, timeout_s: float = 1.0) -> int | None:
    """The HTTP status of a GET, or None when nothing answers in time."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


# targets ------------------------------------------------------------------------------


@dataclass
class Target:
    service: str
    kind: str
    """``container``, ``process`` or ``postgres``."""
    port: int
    container: str = ""
    ctl_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"


class Containers:
    def __init__(self, client: docker.DockerClient, run_id: str, workdir: Path) -> None:
        self.client = client
        self.run_id = run_id
        self.workdir = workdir
        # A network of the soak's own (its own Linux bridge): the default bridge is
        # shared with everyone else's containers, and a sibling's engine tests may take
        # docker0 away meanwhile.
        self.network = client.networks.create(
            f"medic-soak-{run_id}", driver="bridge", labels={LABEL: run_id}
        )

    def start(self, index: int) -> Target:
        name = f"medic-soak-{self.run_id}-c{index}"
        ctl = self.workdir / "ctl" / f"c{index}"
        ctl.mkdir(parents=True)
        (ctl / "run.sh").write_text(RUN_SH)
        port = free_port()
        self.client.containers.run(
            IMAGE,
            ["sh", "/ctl/run.sh"],
            name=name,
            detach=True,
            init=True,
            labels={LABEL: self.run_id},
            ports={"8080/tcp": ("127.0.0.1", port)},
            mem_limit=MEMORY_LIMIT,
            memswap_limit=MEMORY_LIMIT,
            volumes={str(ctl): {"bind": "/ctl", "mode": "ro"}},
            restart_policy={"Name": "no"},
            network=self.network.name,
        )
        return Target(f"c{index}", "container", port, name, ctl)

    def get(self, name: str) -> Container:
        return self.client.containers.get(name)

    def remove_all(self) -> None:
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"})
        for container in found:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        with contextlib.suppress(docker.errors.DockerException):
            self.network.remove()


class Postgres:
    """A cluster of the soak's own: ``initdb`` into a temp dir, its own port."""

    def __init__(self) -> None:
        made = subprocess.check_output(["mktemp", "-d", "/tmp/medic-soak-pg-XXXXXX"], text=True)
        self.root = Path(made.strip())
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()

    def as_postgres(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv]

    def initdb(self) -> None:
        argv = self.as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust")
        subprocess.run([*argv, "-U", "postgres"], cwd="/", check=True, capture_output=True)

    def start_argv(self) -> list[str]:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        pg_ctl = str(PG_BIN / "pg_ctl")
        log = str(self.root / "postgres.log")
        data = str(self.data)
        return self.as_postgres(pg_ctl, "-D", data, "-l", log, "-o", options, "-w", "start")

    def pg_ctl(self, *args: str) -> None:
        argv = self.as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args)
        subprocess.run(argv, cwd="/", check=True, capture_output=True, timeout=60)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


# docker's own account -------------------------------------------------------------------


@dataclass
class DockerEvent:
    container: str
    action: str
    at: float
    attributes: dict[str, str] = field(default_factory=dict)


class DockerLog:
    """Docker's event stream for this run's containers, read on a thread: the witness."""

    ACTIONS = ("start", "die", "kill", "stop", "pause", "unpause", "oom")

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        filters = {"type": "container", "label": f"{LABEL}={run_id}"}
        self._stream: Any = client.api.events(decode=True, filters=filters)
        self.events: list[DockerEvent] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="soak-docker-events", daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with some error once closed
            for raw in self._stream:
                action = str(raw.get("Action", "")).split(":")[0]
                if action not in self.ACTIONS:
                    continue
                attrs = {k: str(v) for k, v in raw.get("Actor", {}).get("Attributes", {}).items()}
                at = int(raw["timeNano"]) / 1e9
                event = DockerEvent(attrs.get("name", ""), action, at, attrs)
                with self._lock:
                    self.events.append(event)

    def between(self, container: str, action: str, start: float, end: float) -> list[float]:
        with self._lock:
            return [
                e.at
                for e in self.events
                if e.container == container and e.action == action and start <= e.at <= end
            ]

    def all(self, action: str) -> list[DockerEvent]:
        with self._lock:
            return [e for e in self.events if e.action == action]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


# medic --------------------------------------------------------------------------------


class Medic:
    def __init__(self, workdir: Path, source: Path) -> None:
        self.workdir = workdir
        self.source = source
        self.api_port = free_port()
        self.log_path = workdir / "medic.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def config_text(self, targets: list[Target], pg: Postgres) -> str:
        lines = [
            f"api: {{listen: 127.0.0.1:{self.api_port}, token_env: MEDIC_API_TOKEN}}",
            MEDIC_POLICY.rstrip(),
            f"playbooks_dir: {self.source / 'recovery_playbooks'}",
            "services:",
        ]
        for t in targets:
            check = f'{{type: http, url: "{t.url}"}}'
            if t.kind == "container":
                lines.append(f"  {t.service}: {{check: {check}, container: {t.container}}}")
            elif t.kind == "process":
                argv = json.dumps(["/usr/bin/python3", "-S", str(PROGRAM), str(t.port)])
                process = f"{{command: {argv}, stop_timeout: 2s}}"
                lines.append(f"  {t.service}: {{check: {check}, process: {process}}}")
        lines.append(
            f"  pg: {{check: {{type: postgres, dsn: {json.dumps(pg.dsn())}}},"
            f" start_command: {json.dumps(pg.start_argv())}}}"
        )
        return "\n".join(lines) + "\n"

    def start(self, config: str) -> None:
        path = self.workdir / "medic.yaml"
        path.write_text(config)
        argv = [
            str(self.source / ".venv" / "bin" / "python"), "-m", "medic", "run",
            "--config", str(path), "--state-dir", str(self.workdir / "state"),
            "--log-format", "json",
        ]  # fmt: skip
        if not Path(argv[0]).exists():
            argv[0] = "/work/main/.venv/bin/python"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
        env["MEDIC_API_TOKEN"] = TOKEN
        env["PYTHONPATH"] = str(self.source / "daemon")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_until("medic answers /api/v1/health", self._up, 30)

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise SoakError(f"medic exited with {self.proc.returncode}:\n{tail}")
        health = self.get("/api/v1/health")
        if health.get("config") != str(self.workdir / "medic.yaml"):
            raise SoakError(f"another daemon answers on 127.0.0.1:{self.api_port}")
        return True

    def get(self, path: str, timeout_s: float = 10.0) -> Any:
        url = f"http://127.0.0.1:{self.api_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return json.load(resp)

    def text(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.api_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    def post(self, path: str) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            data=b"{}",
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def service(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get(f"/api/v1/services/{name}")
        return data

    def recoveries(self, service: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        query = f"?limit={limit}" + (f"&service={service}" if service else "")
        data: list[dict[str, Any]] = self.get(f"/api/v1/recoveries{query}")["recoveries"]
        return data

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 9)  # the process: services it started


# the host's view of medic ---------------------------------------------------------------


@dataclass
class Sample:
    at: float
    rss_kib: int
    fds: int
    tasks: int | None


def sample(medic: Medic) -> Sample:
    status = Path(f"/proc/{medic.pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{medic.pid}/fd"))
    tasks: int | None = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        tasks = int(medic.get("/api/v1/health")["asyncio_tasks"])
    return Sample(time.time(), rss, fds, tasks)


@dataclass
class Stand:
    workdir: Path
    source: Path
    client: docker.DockerClient = field(init=False)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    targets: list[Target] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = docker.from_env(timeout=60)
        self.client.ping()
        self.client.images.get(IMAGE)
        self.workdir.chmod(0o755)  # pg_ctl, run as postgres by medic, starts from here
        self.containers = Containers(self.client, self.run_id, self.workdir)
        self.docker_log = DockerLog(self.client, self.run_id)
        self.pg = Postgres()
        self.medic = Medic(self.workdir, self.source)

    def up(self, n_containers: int = 10, n_processes: int = 3) -> None:
        self.targets = [self.containers.start(i) for i in range(n_containers)]
        self.targets += [Target(f"p{i}", "process", free_port()) for i in range(n_processes)]
        self.targets.append(Target("pg", "postgres", self.pg.port))
        self.pg.initdb()
        subprocess.run(self.pg.start_argv(), cwd="/", check=True, capture_output=True, timeout=60)
        self.medic.start(self.medic.config_text(self.targets, self.pg))
        wait_until("every service is healthy", self.all_healthy, 90)

    def all_healthy(self) -> bool:
        services = self.medic.get("/api/v1/services")["services"]
        return len(services) == len(self.targets) and all(
            s["status"] == "healthy" and not s.get("recovery_running") for s in services
        )

    def down(self) -> None:
        self.medic.stop()
        self.docker_log.close()
        self.containers.remove_all()
        self.pg.destroy()
