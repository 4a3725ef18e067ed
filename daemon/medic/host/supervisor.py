"""ProcessSupervisor: the programs a service's ``process:`` key names.

medic starts ``process.command`` itself, detached: its own session
(``start_new_session``), stdin from /dev/null, stdout and stderr appended to
``<state_dir>/logs/<service>.log``, ``process.env`` over the daemon's own
environment (minus systemd's ``NOTIFY_SOCKET`` and ``WATCHDOG_*``, which are
medic's, not the child's), in ``process.cwd``. A child medic started itself is
awaited, so its exit is seen (and reaped) at once; any other PID, a process
adopted through ``process.pidfile``, is watched through a pidfd. Either way an
unexpected exit calls ``on_exit(service, returncode)``, which the orchestrator
wires to an immediate check: the restart itself goes through a playbook
(``restart_process``) and its guardrails, never behind the monitor's back.

Stopping: SIGTERM, ``stop_timeout`` to go, then SIGKILL. For a child medic
started, the signals go to its whole session (nothing it forked survives);
an adopted process gets them alone, through its pidfd (no PID reuse race).

Each started child is recorded in ``<state_dir>/processes/<service>.pid``
(PID, kernel start time, boot id), so a medic that was killed and started
again adopts the child its predecessor left instead of starting a second copy.

At shutdown medic stops every process it started, like supervisord does. It
has to: the systemd unit's ``KillMode=mixed`` sends SIGTERM to medic alone
and SIGKILLs whatever is left once medic has exited, so a child that medic
did not stop would get no chance to shut down cleanly. Processes adopted
through a pidfile were started elsewhere and are left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medic.core.logging import get_logger
from medic.host import HostError
from medic.host.subprocesses import parse_proc_stat, terminate_session

if TYPE_CHECKING:
    # Type-only: the config layer need not load for the supervisor to.
    from medic.config.models import ProcessConfig

log = get_logger("ProcessSupervisor")

ExitCallback = Callable[[str, int | None], None]
"""``on_exit(service, returncode)``; the code is None for an adopted process."""

_AFTER_KILL_WAIT_S = 2.0
_CHILD_ENV_DROPPED = ("NOTIFY_SOCKET",)
_CHILD_ENV_DROPPED_PREFIXES = ("WATCHDOG_",)
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class ProcessStartError(HostError):
    """medic cannot start the service's process (no command, or exec failed)."""


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


class _Watch(ABC):
    """One running process being watched; ``exited`` resolves when it is gone."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.exited: asyncio.Future[None] = loop.create_future()
        self.returncode: int | None = None
        self.expected_exit = False
        """medic is stopping it: its exit is not news."""

    @property
    def running(self) -> bool:
        return not self.exited.done() and pid_alive(self.pid)

    @abstractmethod
    async def terminate(self, grace_s: float) -> bool:
        """SIGTERM, ``grace_s``, SIGKILL; True when SIGKILL was needed."""

    @abstractmethod
    def close(self) -> None:
        """Stop watching (the process is gone or forgotten)."""


class _Child(_Watch, asyncio.SubprocessProtocol):
    """A process medic started: awaited through the event loop's child watcher.

    It is the subprocess protocol itself, so it holds the transport before any
    exit can be reported, however fast the child dies.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(0, loop)
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport
        self.pid = transport.get_pid()

    def process_exited(self) -> None:
        if self.transport is not None:
            self.returncode = self.transport.get_returncode()
            self.transport.close()  # the child is reaped; this only frees the transport
        if not self.exited.done():
            self.exited.set_result(None)

    async def terminate(self, grace_s: float) -> bool:
        await terminate_session(self.pid, self.exited, grace_s)
        return self.returncode == -signal.SIGKILL

    def close(self) -> None:
        """Nothing to release: the transport closes when the child exits."""


class _Adopted(_Watch):
    """A process started elsewhere, watched through a pidfd (readable once it exits).

    ``whole_session`` marks a child an earlier medic started: its session is
    medic's to tear down. Otherwise only the process itself is signalled.
    """

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop, *, whole_session: bool) -> None:
        super().__init__(pid, loop)
        self.whole_session = whole_session
        self._loop = loop
        self._pidfd: int | None = os.pidfd_open(pid)
        loop.add_reader(self._pidfd, self._gone)

    def _gone(self) -> None:
        self.close()
        if not self.exited.done():
            self.exited.set_result(None)

    def close(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _send(self, signum: signal.Signals) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    async def terminate(self, grace_s: float) -> bool:
        if self.whole_session:
            started = time.monotonic()
            await terminate_session(self.pid, self.exited, grace_s)
            return time.monotonic() - started >= grace_s
        self._send(signal.SIGTERM)
        if await _wait_done(self.exited, grace_s):
            return False
        self._send(signal.SIGKILL)
        await _wait_done(self.exited, _AFTER_KILL_WAIT_S)
        return True


@dataclass
class _Entry:
    service: str
    config: ProcessConfig
    watch: _Watch | None = None
    owned: bool = False
    started_at: float | None = None
    starts: int = 0
    last_exit: ProcessExit | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ProcessSupervisor:
    """Starts, watches, stops and restarts the services' processes.

    ``apply(configs)`` sets which services have a process (at start and on
    reload); everything else takes a service name.
    """

    def __init__(self, state_dir: Path, on_exit: ExitCallback | None = None) -> None:
        self.state_dir = state_dir
        self.on_exit = on_exit
        self._entries: dict[str, _Entry] = {}

    # configuration -------------------------------------------------------------

    async def apply(
        self, configs: Mapping[str, ProcessConfig], *, start: bool = True
    ) -> dict[str, list[str]]:
        """Bring the supervised set in line with ``configs``.

        New services are adopted (pidfile, or a child an earlier medic left)
        or started; removed ones are stopped if medic started them; changed
        ones are stopped and started again. ``start=False`` (dry run) only
        adopts: nothing is started or stopped.
        """
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for name in [n for n in self._entries if n not in configs]:
            await self._drop(name, stop=start)
            changes["removed"].append(name)
        for name, config in configs.items():
            current = self._entries.get(name)
            if current is not None and current.config == config:
                continue
            if current is not None:
                await self._drop(name, stop=start)
            changes["changed" if current is not None else "added"].append(name)
            self._entries[name] = _Entry(name, config)
            await self._bring_up(self._entries[name], start=start)
        return changes

    async def _drop(self, name: str, *, stop: bool) -> None:
        entry = self._entries[name]
        if stop and entry.owned:
            async with entry.lock:
                await self._stop_locked(entry, entry.config.stop_timeout)
        if entry.watch is not None:
            entry.watch.close()
        del self._entries[name]

    async def _bring_up(self, entry: _Entry, *, start: bool) -> None:
        async with entry.lock:
            if self._adopt_existing(entry, owned=start):
                return
            if entry.config.command is None:
                return  # pidfile only: medic has nothing to start
            if not start:
                log.info(
                    "process.would_start",
                    message="Dry run: would start the process",
                    service=entry.service,
                )
                return
            try:
                await self._start_locked(entry)
            except ProcessStartError as exc:
                log.error(
                    "process.start_failed",
                    message="Cannot start the process",
                    service=entry.service,
                    error=str(exc),
                )

    # queries -----------------------------------------------------------------

    def __contains__(self, service: object) -> bool:
        return service in self._entries

    def services(self) -> list[str]:
        return list(self._entries)

    def pid(self, service: str) -> int | None:
        """The running process's PID (re-reading the pidfile when needed), else None."""
        entry = self._entry(service)
        watch = self._current(entry)
        return watch.pid if watch is not None else None

    def alive(self, service: str) -> bool:
        """True while the process runs; a zombie counts as dead."""
        return self.pid(service) is not None

    def info(self, service: str) -> ProcessInfo:
        entry = self._entry(service)
        watch = self._current(entry)
        return ProcessInfo(
            service=service,
            pid=watch.pid if watch is not None else None,
            alive=watch is not None,
            owned=entry.owned,
            can_start=entry.config.command is not None,
            started_at=entry.started_at,
            starts=entry.starts,
            last_exit=entry.last_exit,
            log_path=self.log_path(service) if entry.config.command is not None else None,
        )

    def log_path(self, service: str) -> Path:
        return self.state_dir / "logs" / f"{_filename(service)}.log"

    def _record_path(self, service: str) -> Path:
        return self.state_dir / "processes" / f"{_filename(service)}.pid"

    def _entry(self, service: str) -> _Entry:
        try:
            return self._entries[service]
        except KeyError:
            raise KeyError(f"service {service!r} has no process: section") from None

    def _current(self, entry: _Entry) -> _Watch | None:
        """The live watch; a dead one is dropped, a pidfile is re-read."""
        watch = entry.watch
        if watch is not None and watch.running:
            return watch
        if self._adopt_pidfile(entry, owned=entry.owned):
            return entry.watch
        return None

    # control -----------------------------------------------------------------

    async def start(self, service: str) -> int:
        """Start the process unless it runs; return its PID. Raises ``ProcessStartError``."""
        entry = self._entry(service)
        async with entry.lock:
            watch = self._current(entry)
            if watch is not None:
                return watch.pid
            return await self._start_locked(entry)

    async def stop(self, service: str, timeout_s: float | None = None) -> StopReport:
        """SIGTERM, up to ``timeout_s`` (default ``stop_timeout``), SIGKILL, reap."""
        entry = self._entry(service)
        async with entry.lock:
            return await self._stop_locked(entry, _first(timeout_s, entry.config.stop_timeout))

    async def restart(self, service: str, timeout_s: float | None = None) -> RestartReport:
        """Stop, then start from ``command``; without a command only the stop happens."""
        entry = self._entry(service)
        async with entry.lock:
            report = await self._stop_locked(entry, _first(timeout_s, entry.config.stop_timeout))
            if entry.config.command is None:
                return RestartReport(report, None)
            return RestartReport(report, await self._start_locked(entry))

    async def shutdown(self) -> None:
        """Stop every process medic started, all at once; stop watching the rest."""
        self.on_exit = None  # exits from here on are medic's own doing
        owned = [e for e in self._entries.values() if e.owned and self._current(e) is not None]
        if owned:
            log.info(
                "supervisor.stopping",
                message="Stopping supervised processes",
                services=[e.service for e in owned],
            )
            await asyncio.gather(*(self.stop(e.service) for e in owned), return_exceptions=True)
        for entry in self._entries.values():
            if entry.watch is not None:
                entry.watch.close()

    # internals -----------------------------------------------------------------

    async def _start_locked(self, entry: _Entry) -> int:
        command = entry.config.command
        if command is None:
            raise ProcessStartError(
                f"service {entry.service!r} has no process.command: medic cannot start it"
            )
        cwd = entry.config.cwd
        if cwd is not None and not cwd.is_dir():
            raise ProcessStartError(f"process.cwd {cwd} is not a directory")
        loop = asyncio.get_running_loop()
        child = _Child(loop)
        log_path = self.log_path(entry.service)
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as out:
                out.write(_log_header(command))
                out.flush()
                await loop.subprocess_exec(
                    lambda: child,
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=cwd,
                    env=child_env(entry.config.env),
                    start_new_session=True,
                )
        except OSError as exc:
            raise ProcessStartError(f"cannot start {command[0]}: {exc}") from exc
        self._watch(entry, child, owned=True)
        entry.started_at = time.time()
        entry.starts += 1
        self._write_record(entry.service, child.pid)
        log.info(
            "process.started",
            message="Process started",
            service=entry.service,
            pid=child.pid,
            log=str(log_path),
        )
        return child.pid

    async def _stop_locked(self, entry: _Entry, timeout_s: float) -> StopReport:
        watch = self._current(entry)
        if watch is None:
            return StopReport(None, "was not running")
        watch.expected_exit = True
        started = time.monotonic()
        forced = await watch.terminate(timeout_s)
        elapsed = time.monotonic() - started
        if forced:
            detail = (
                f"killed pid {watch.pid} with SIGKILL: still running {timeout_s:g}s after SIGTERM"
            )
        else:
            detail = f"stopped pid {watch.pid} with SIGTERM in {elapsed:.2f}s"
        log.info(
            "process.stopped",
            message="Process stopped",
            service=entry.service,
            pid=watch.pid,
            forced=forced,
        )
        return StopReport(watch.pid, detail, forced, elapsed)

    def _watch(self, entry: _Entry, watch: _Watch, *, owned: bool) -> None:
        if entry.watch is not None:
            entry.watch.close()
        entry.watch = watch
        entry.owned = owned
        watch.exited.add_done_callback(lambda _f: self._exited(entry, watch))

    def _exited(self, entry: _Entry, watch: _Watch) -> None:
        watch.close()
        if entry.watch is not watch:
            return  # replaced meanwhile
        entry.watch = None
        entry.last_exit = ProcessExit(watch.returncode, time.time())
        if entry.owned:
            self._record_path(entry.service).unlink(missing_ok=True)
        if watch.expected_exit or self._entries.get(entry.service) is not entry:
            return
        if watch.returncode == 0 and self._adopt_pidfile(entry, owned=entry.owned):
            log.info(
                "process.daemonized",
                message="Process daemonized",
                service=entry.service,
                pid=self.pid(entry.service),
            )
            return
        log.warning(
            "process.exited",
            message="Process exited",
            service=entry.service,
            pid=watch.pid,
            returncode=watch.returncode,
            detail=entry.last_exit.describe(),
        )
        if self.on_exit is not None:
            self.on_exit(entry.service, watch.returncode)

    def _adopt_existing(self, entry: _Entry, *, owned: bool) -> bool:
        """Adopt the process a pidfile names, else a child an earlier medic started."""
        if self._adopt_pidfile(entry, owned=False):
            return True
        return self._adopt_record(entry, owned=owned)

    def _adopt_pidfile(self, entry: _Entry, *, owned: bool) -> bool:
        if entry.config.pidfile is None:
            return False
        pid = read_pidfile(entry.config.pidfile)
        if pid is None or not pid_alive(pid):
            return False
        return self._adopt(entry, pid, owned=owned, whole_session=False)

    def _adopt_record(self, entry: _Entry, *, owned: bool) -> bool:
        pid = _read_record(self._record_path(entry.service))
        if pid is None:
            return False
        return self._adopt(entry, pid, owned=owned, whole_session=True)

    def _adopt(self, entry: _Entry, pid: int, *, owned: bool, whole_session: bool) -> bool:
        try:
            watch = _Adopted(pid, asyncio.get_running_loop(), whole_session=whole_session)
        except ProcessLookupError:
            return False  # gone since we looked
        except OSError as exc:
            log.error(
                "process.watch_failed",
                message="Cannot watch the process",
                service=entry.service,
                pid=pid,
                error=str(exc),
            )
            return False
        self._watch(entry, watch, owned=owned)
        log.info(
            "process.adopted",
            message="Process adopted",
            service=entry.service,
            pid=pid,
            owned=owned,
        )
        return True

    def _write_record(self, service: str, pid: int) -> None:
        path = self._record_path(service)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{pid} {proc_start_time(pid)} {_boot_id()}\n")
        tmp.replace(path)


# helpers ---------------------------------------------------------------------


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment without systemd's notify/watchdog variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _CHILD_ENV_DROPPED and not k.startswith(_CHILD_ENV_DROPPED_PREFIXES)
    }
    env.update(extra)
    return env


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    parsed = parse_proc_stat(stat)
    return parsed is not None and parsed[0] not in ("Z", "X")


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def read_pidfile(path: Path) -> int | None:
    """The PID a pidfile names, or None (missing, empty, not a number)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    first = text.split()[0] if text else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


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


def _read_record(path: Path) -> int | None:
    """The PID of a child an earlier medic started, if that very process still runs."""
    try:
        pid_s, start_s, boot = path.read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_s) if pid_s.isdigit() else 0
    same = pid > 0 and str(proc_start_time(pid)) == start_s and boot == _boot_id()
    if not same or not pid_alive(pid):
        path.unlink(missing_ok=True)
        return None
    return pid


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def _log_header(command: list[str]) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return f"--- medic: starting {command!r} at {now} ---\n".encode()


def _filename(service: str) -> str:
    return _UNSAFE_FILENAME.sub("_", service)


async def _wait_done(future: asyncio.Future[None], timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        return False
    return True


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
