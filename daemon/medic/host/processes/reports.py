"""What the supervisor tells about a process: ``ProcessInfo`` (what runs now,
as the API shows it), ``ProcessExit`` (how it last ended), and the outcome of a
stop (``StopReport``) or a restart (``RestartReport``)."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessExit:
    returncode: int | None
    """Exit code, minus the signal number that ended it, or None (adopted: unknown)."""
    at: float

    def describe(self) -> str:
        return describe_returncode(self.returncode)


@dataclass(frozen=True)
class ProcessInfo:
    """What the supervisor knows about one service's process right now."""

    service: str
    pid: int | None
    alive: bool
    owned: bool
    """medic started it (and stops it at shutdown); False for a pidfile adoption."""
    can_start: bool
    started_at: float | None
    starts: int
    last_exit: ProcessExit | None
    log_path: Path | None

    def as_dict(self) -> dict[str, Any]:
        last = self.last_exit
        return {
            "pid": self.pid,
            "alive": self.alive,
            "owned": self.owned,
            "started_at": _iso(self.started_at),
            "starts": self.starts,
            "last_exit": None
            if last is None
            else {"returncode": last.returncode, "at": _iso(last.at), "detail": last.describe()},
            "log": str(self.log_path) if self.log_path else None,
        }


@dataclass(frozen=True)
class StopReport:
    pid: int | None
    detail: str
    forced: bool = False
    """SIGKILL was needed: the process outlived ``stop_timeout``."""
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class RestartReport:
    stop: StopReport
    pid: int | None
    """The new process, or None when medic cannot start it (pidfile only)."""

    @property
    def detail(self) -> str:
        if self.pid is None:
            return f"{self.stop.detail}; medic cannot start it (no process.command)"
        return f"{self.stop.detail}; started pid {self.pid}"


def describe_returncode(code: int | None) -> str:
    if code is None:
        return "exited (exit code unknown: not medic's child)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
