"""Helpers for tests on real host processes: the test programs, spawning them
so nothing outlives the test, and asking /proc about what is left.

Use the ``Spawner`` through a fixture in the test module::

    @pytest.fixture
    def spawn() -> Iterator[Spawner]:
        with Spawner() as spawner:
            yield spawner
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import psutil

from medic.host.processes.pidfiles import pid_alive
from medic.host.subprocesses import session_members

PROGRAMS = Path(__file__).resolve().parent / "fixtures" / "programs"
PYTHON = sys.executable


def program(name: str, *args: str | int | float) -> list[str]:
    """argv running ``tests/fixtures/programs/<name>`` with this Python."""
    return [PYTHON, str(PROGRAMS / name), *(str(a) for a in args)]


def http_server(port: int) -> list[str]:
    """argv of Python's own HTTP server on 127.0.0.1:``port``."""
    return [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


class Spawner:
    """Starts test programs in sessions of their own and, on exit, kills every
    session it started or was told about (``watch``) and reaps its children."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []
        self.sessions: set[int] = set()

    def __call__(self, argv: list[str], *, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
        self.children.append(proc)
        self.sessions.add(proc.pid)
        return proc

    def watch(self, pid: int) -> int:
        """Kill the session led by ``pid`` at the end (e.g. a process medic started)."""
        self.sessions.add(pid)
        return pid

    def __enter__(self) -> Spawner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sid in self.sessions:
            kill_session(sid)
        for proc in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def kill_session(sid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Running and not a zombie (PID 1 here reaps orphans seconds late)."""
    return pid_alive(pid)


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def listeners(port: int) -> list[int]:
    """PIDs listening on TCP ``port``."""
    return sorted(
        {
            conn.pid
            for conn in psutil.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
            if conn.pid is not None
        }
    )
