"""ProcessSupervisor: starts, adopts, watches, stops and restarts the
programs the services' ``process:`` keys name.

``apply(configs)`` sets which services have a process; a new one is adopted
(the process its pidfile names, or a child an earlier medic left, see
``pidfiles``) or started (``watches``). An unexpected exit calls
``on_exit(service, returncode)``, which the orchestrator wires to an immediate
check: the restart itself goes through a playbook (``restart_process``) and
its guardrails, never behind the monitor's back.

At shutdown medic stops every process it started, like supervisord does. It
has to: the systemd unit's ``KillMode=mixed`` sends SIGTERM to medic alone
and SIGKILLs whatever is left once medic has exited, so a child that medic
did not stop would get no chance to shut down cleanly. Processes adopted
through a pidfile were started elsewhere and are left running.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medic.core.logging import get_logger
from medic.host.processes import ProcessStartError
from medic.host.processes.pidfiles import pid_alive, read_pidfile, read_record, write_record
from medic.host.processes.reports import ProcessExit, ProcessInfo, RestartReport, StopReport
from medic.host.processes.watches import Adopted, Watch, start_child

if TYPE_CHECKING:
    # Type-only: the config layer need not load for the supervisor to.
    from medic.config.models import ProcessConfig

log = get_logger("ProcessSupervisor")

ExitCallback = Callable[[str, int | None], None]
"""``on_exit(service, returncode)``; the code is None for an adopted process."""

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class _Entry:
    service: str
    config: ProcessConfig
    watch: Watch | None = None
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

    def _current(self, entry: _Entry) -> Watch | None:
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
        log_path = self.log_path(entry.service)
        child = await start_child(command, cwd, entry.config.env, log_path)
        self._watch(entry, child, owned=True)
        entry.started_at = time.time()
        entry.starts += 1
        write_record(self._record_path(entry.service), child.pid)
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

    def _watch(self, entry: _Entry, watch: Watch, *, owned: bool) -> None:
        if entry.watch is not None:
            entry.watch.close()
        entry.watch = watch
        entry.owned = owned
        watch.exited.add_done_callback(lambda _f: self._exited(entry, watch))

    def _exited(self, entry: _Entry, watch: Watch) -> None:
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
        pid = read_record(self._record_path(entry.service))
        if pid is None:
            return False
        return self._adopt(entry, pid, owned=owned, whole_session=True)

    def _adopt(self, entry: _Entry, pid: int, *, owned: bool, whole_session: bool) -> bool:
        try:
            watch = Adopted(pid, asyncio.get_running_loop(), whole_session=whole_session)
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


def _filename(service: str) -> str:
    return _UNSAFE_FILENAME.sub("_", service)


def _first(value: float | None, default: float) -> float:
    return default if value is None else value
