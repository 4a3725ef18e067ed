"""Finding a running process again, by its PID.

``read_pidfile`` reads the pidfile a service's ``process.pidfile`` names, and
``pid_alive`` tells whether that PID still runs (the ``process`` check and the
``signal_process`` action use both).

Each child medic starts is recorded in ``<state_dir>/processes/<service>.pid``
(PID, kernel start time, boot id), so a medic that was killed and started
again adopts the child its predecessor left instead of starting a second copy:
``read_record`` gives that PID only while that very process still runs.
"""

from __future__ import annotations

from pathlib import Path

from medic.host.subprocesses import parse_proc_stat, proc_start_time

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    parsed = parse_proc_stat(stat)
    return parsed is not None and parsed[0] not in ("Z", "X")


def read_pidfile(path: Path) -> int | None:
    """The PID a pidfile names, or None (missing, empty, not a number)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    first = text.split()[0] if text else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


def write_record(path: Path, pid: int) -> None:
    """Record the child medic started (replacing the file at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid} {proc_start_time(pid)} {_boot_id()}\n")
    tmp.replace(path)


def read_record(path: Path) -> int | None:
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
