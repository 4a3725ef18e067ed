"""A real 3-member etcd cluster on loopback, data in the test's tmp dir.

Debian's ``etcd-server`` (installed by scripts/setup-test-env.sh) may start a
default etcd on 2379; this cluster uses free ports of its own and never
touches that one.

Fixtures
    etcd_cluster  function  EtcdCluster: ``.endpoints``, ``.stop_member(i)``,
                            ``.start_member(i)``, ``.kill_member(i)``, ``.leader()``,
                            ``.stop_all()``, ``.start_all()``,
                            ``.ctl(*args)`` (etcdctl against the cluster)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


@dataclass
class EtcdCluster:
    root: Path
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)

    def start_member(self, index: int) -> None:
        m = self.members[index]
        cmd = [
            ETCD, "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-cluster", self._initial_cluster(),
            "--initial-cluster-token", f"medic-test-{self.members[0].client_port}",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "50", "--election-timeout", "500",
        ]  # fmt: skip
        with m.log_path.open("ab") as log:
            m.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def stop_member(self, index: int) -> None:
        proc = self.members[index].proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.members[index].proc = None

    def kill_member(self, index: int) -> None:
        """SIGKILL, as a crash."""
        proc = self.members[index].proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        self.members[index].proc = None

    def leader(self) -> int:
        """The index of the member that leads now."""
        done = self.ctl("endpoint", "status", "-w", "json")
        statuses = json.loads(done.stdout)
        for status in statuses:
            if status["Status"]["leader"] == status["Status"]["header"]["member_id"]:
                return self.endpoints.index(status["Endpoint"].removeprefix("http://"))
        raise AssertionError(f"no leader: {done.stdout} {done.stderr}")

    def start_all(self) -> None:
        for index in range(len(self.members)):
            self.start_member(index)
        wait_for(self.healthy, timeout=30, interval=0.2, message="etcd cluster healthy")

    def stop_all(self) -> None:
        for index in range(len(self.members)):
            self.stop_member(index)

    def ctl(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ETCDCTL, "--endpoints", ",".join(self.endpoints), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            check=False,
        )

    def healthy(self) -> bool:
        return self.ctl("endpoint", "health").returncode == 0


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    root = tmp_path / "etcd"
    cluster = EtcdCluster(root)
    for index in range(3):
        data = root / f"m{index}"
        data.mkdir(parents=True)
        cluster.members.append(
            Member(f"m{index}", free_port(), free_port(), data, root / f"m{index}.log")
        )
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all()
