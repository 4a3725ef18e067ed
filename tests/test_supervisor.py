"""ProcessSupervisor on real processes: start, watch, stop, adopt, reload, shut down."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medic.config.models import ProcessConfig
from medic.host.processes import ProcessStartError
from medic.host.processes.supervisor import ProcessSupervisor
from medic.host.subprocesses import session_members
from tests.helpers import async_wait_for
from tests.processes import PYTHON, Spawner, alive, program

Exits = list[tuple[str, int | None]]

SLEEPER = [PYTHON, "-c", "import time; time.sleep(300)"]


@pytest.fixture
def exits() -> Exits:
    return []


@pytest.fixture
async def supervisor(
    tmp_path: Path, exits: Exits, spawn: Spawner
) -> AsyncIterator[ProcessSupervisor]:
    sup = ProcessSupervisor(tmp_path / "state", on_exit=lambda s, c: exits.append((s, c)))
    yield sup
    for name in sup.services():
        pid = sup.pid(name)
        if pid is not None:
            spawn.watch(pid)
    await sup.shutdown()


def cfg(command: list[str] | None = None, **kwargs: object) -> ProcessConfig:
    return ProcessConfig.model_validate({"command": command, **kwargs})


async def test_start_detaches_the_child_and_logs_its_output(
    supervisor: ProcessSupervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("FROM_DAEMON", "kept")
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = (
        "import os, sys, time\n"
        "print('cwd', os.getcwd())\n"
        "print('env', os.environ.get('FROM_DAEMON'), os.environ.get('OWN'),"
        " os.environ.get('NOTIFY_SOCKET'), os.environ.get('WATCHDOG_USEC'))\n"
        "print('leader', os.getsid(0) == os.getpid() == os.getpgid(0))\n"
        "print('stdin', os.readlink('/proc/self/fd/0'))\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        "sys.stdout.flush(); time.sleep(300)\n"
    )
    config = cfg([PYTHON, "-c", script], cwd=str(workdir), env={"OWN": "mine"})
    await supervisor.apply({"api": config})
    log_path = supervisor.log_path("api")
    assert log_path == tmp_path / "state" / "logs" / "api.log"

    text = await async_wait_for(
        lambda: "\nto stderr\n" in log_path.read_text() and log_path.read_text(),
        10,
        message="the child's output in its log",
    )
    assert f"cwd {workdir}" in text
    assert "env kept mine None None" in text
    assert "leader True" in text
    assert "stdin /dev/null" in text
    assert text.startswith("--- medic: starting [")
    info = supervisor.info("api")
    assert info.alive and info.owned and info.starts == 1
    assert info.pid is not None and alive(info.pid)


async def test_exit_of_a_child_is_seen_at_once_and_reaped(
    supervisor: ProcessSupervisor, exits: Exits
) -> None:
    await supervisor.apply({"api": cfg(SLEEPER)})
    pid = supervisor.pid("api")
    assert pid is not None
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    await async_wait_for(lambda: exits, 5, interval=0.005, message="on_exit called")
    noticed_s = time.monotonic() - killed_at
    assert exits == [("api", -signal.SIGKILL)]
    assert noticed_s < 1.0, f"exit noticed after {noticed_s:.3f}s"
    # Reaped: no zombie is left for PID 1 to collect.
    await async_wait_for(lambda: not Path(f"/proc/{pid}").exists(), 5, message="child reaped")
    info = supervisor.info("api")
    assert not info.alive and info.pid is None
    assert info.last_exit is not None and info.last_exit.describe() == "killed by SIGKILL"


async def test_a_pidfile_process_is_adopted_and_watched_through_a_pidfd(
    supervisor: ProcessSupervisor, exits: Exits, spawn: Spawner, tmp_path: Path
) -> None:
    proc = spawn(SLEEPER)
    pidfile = tmp_path / "other.pid"
    pidfile.write_text(f"{proc.pid}\n")
    await supervisor.apply({"other": cfg(pidfile=str(pidfile))})
    info = supervisor.info("other")
    assert (info.pid, info.owned, info.can_start) == (proc.pid, False, False)

    proc.send_signal(signal.SIGTERM)
    # Not reaped by us yet: a zombie, which must count as gone.
    await async_wait_for(lambda: exits, 5, interval=0.005, message="on_exit for the adopted pid")
    assert exits == [("other", None)]
    assert proc.poll() is not None or not alive(proc.pid)
    assert not supervisor.alive("other")


async def test_stop_kills_what_ignores_sigterm_after_stop_timeout(
    supervisor: ProcessSupervisor, exits: Exits, tmp_path: Path
) -> None:
    ready = tmp_path / "ready.pid"
    await supervisor.apply({"stubborn": cfg(program("ignore_term.py", ready), stop_timeout=0.5)})
    await async_wait_for(ready.exists, 10, message="handler installed")
    pid = supervisor.pid("stubborn")
    assert pid is not None

    report = await supervisor.stop("stubborn")
    assert report.forced
    assert report.pid == pid
    assert 0.5 <= report.elapsed_s < 4.0
    assert "SIGKILL" in report.detail
    assert not alive(pid)
    assert exits == [], "a stop medic asked for is not reported as an exit"
    assert supervisor.info("stubborn").last_exit.returncode == -signal.SIGKILL  # type: ignore[union-attr]


async def test_stop_ends_the_whole_session(supervisor: ProcessSupervisor) -> None:
    await supervisor.apply({"tree": cfg(["sh", "-c", "sleep 301 & exec sleep 302"])})
    pid = supervisor.pid("tree")
    assert pid is not None
    await async_wait_for(lambda: len(session_members(pid)) == 2, 5, message="two processes")
    report = await supervisor.stop("tree")
    assert not report.forced
    assert session_members(pid) == []


async def test_restart_starts_a_new_process_and_keeps_the_log(
    supervisor: ProcessSupervisor,
) -> None:
    await supervisor.apply({"api": cfg(SLEEPER)})
    first = supervisor.pid("api")
    report = await supervisor.restart("api")
    assert report.stop.pid == first
    assert report.pid is not None and report.pid != first
    assert first is not None and not alive(first)
    assert supervisor.log_path("api").read_text().count("--- medic: starting") == 2
    assert supervisor.info("api").starts == 2


async def test_restart_without_a_command_only_stops(
    supervisor: ProcessSupervisor, spawn: Spawner, tmp_path: Path
) -> None:
    proc = spawn(SLEEPER)
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(str(proc.pid))
    await supervisor.apply({"other": cfg(pidfile=str(pidfile))})
    report = await supervisor.restart("other")
    assert report.pid is None
    assert report.stop.pid == proc.pid
    assert "medic cannot start it" in report.detail
    assert proc.wait(timeout=5) == -signal.SIGTERM
    with pytest.raises(ProcessStartError, match="cannot start it"):
        await supervisor.start("other")


async def test_apply_starts_added_stops_removed_and_restarts_changed(
    supervisor: ProcessSupervisor,
) -> None:
    await supervisor.apply({"a": cfg(SLEEPER), "b": cfg(SLEEPER)})
    a1, b1 = supervisor.pid("a"), supervisor.pid("b")
    changed = cfg([*SLEEPER, "changed"])
    changes = await supervisor.apply({"b": changed, "c": cfg(SLEEPER)})
    assert changes == {"added": ["c"], "removed": ["a"], "changed": ["b"]}
    assert a1 is not None and not alive(a1)
    assert b1 is not None and not alive(b1)
    assert supervisor.alive("b") and supervisor.pid("b") != b1
    assert supervisor.alive("c")
    assert "a" not in supervisor
    unchanged = await supervisor.apply({"b": changed, "c": cfg(SLEEPER)})
    assert unchanged == {"added": [], "removed": [], "changed": []}


async def test_shutdown_stops_own_children_and_leaves_adopted_ones(
    tmp_path: Path, spawn: Spawner
) -> None:
    other = spawn(SLEEPER)
    pidfile = tmp_path / "other.pid"
    pidfile.write_text(str(other.pid))
    sup = ProcessSupervisor(tmp_path / "state")
    await sup.apply({"own": cfg(SLEEPER), "other": cfg(pidfile=str(pidfile))})
    own = sup.pid("own")
    assert own is not None
    spawn.watch(own)
    await sup.shutdown()
    assert not alive(own)
    assert alive(other.pid)


async def test_a_new_supervisor_adopts_the_child_an_earlier_one_left(
    tmp_path: Path, spawn: Spawner, exits: Exits
) -> None:
    state = tmp_path / "state"
    config = {"api": cfg(["sh", "-c", "sleep 303 & exec sleep 304"])}
    first = ProcessSupervisor(state)
    await first.apply(config)
    pid = first.pid("api")
    assert pid is not None
    spawn.watch(pid)  # "first" is dropped without shutdown, like a medic killed with -9

    second = ProcessSupervisor(state, on_exit=lambda s, c: exits.append((s, c)))
    await second.apply(config)
    info = second.info("api")
    assert (info.pid, info.owned, info.starts) == (pid, True, 0)
    await second.shutdown()
    assert session_members(pid) == [], "the adopted child's whole session is stopped"
    assert exits == []


async def test_a_record_of_a_dead_process_is_not_adopted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ProcessSupervisor(state)
    await first.apply({"api": cfg(SLEEPER)})
    pid = first.pid("api")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await async_wait_for(lambda: not first.alive("api"), 5, message="gone")
    second = ProcessSupervisor(state)
    await second.apply({"api": cfg(SLEEPER)})
    try:
        assert second.pid("api") not in (None, pid)
        assert second.info("api").starts == 1
    finally:
        await second.shutdown()


async def test_a_daemonizing_command_is_followed_to_its_pidfile(
    supervisor: ProcessSupervisor, exits: Exits, tmp_path: Path
) -> None:
    pidfile = tmp_path / "daemon.pid"
    # The classic double fork: the started process exits 0 once the daemon wrote its pidfile.
    script = f"sh -c 'sleep 305 & echo $! > {pidfile}'"
    await supervisor.apply({"d": cfg(["sh", "-c", script], pidfile=str(pidfile))})
    await async_wait_for(pidfile.exists, 5, message="pidfile written")
    grandchild = int(pidfile.read_text())
    await async_wait_for(lambda: supervisor.pid("d") == grandchild, 5, message="followed")
    assert exits == []
    assert supervisor.info("d").owned


async def test_a_command_that_cannot_start(supervisor: ProcessSupervisor, tmp_path: Path) -> None:
    await supervisor.apply({"bad": cfg([str(tmp_path / "no-such-program")])})
    assert not supervisor.alive("bad")
    with pytest.raises(ProcessStartError, match="no-such-program"):
        await supervisor.start("bad")
    await supervisor.apply({"bad": cfg(SLEEPER, cwd=str(tmp_path / "missing"))})
    with pytest.raises(ProcessStartError, match="not a directory"):
        await supervisor.start("bad")


async def test_dry_run_apply_starts_nothing(tmp_path: Path) -> None:
    sup = ProcessSupervisor(tmp_path / "state")
    changes = await sup.apply({"api": cfg(SLEEPER)}, start=False)
    assert changes["added"] == ["api"]
    assert not sup.alive("api")
    await sup.shutdown()


async def test_concurrent_restarts_are_serialised(supervisor: ProcessSupervisor) -> None:
    await supervisor.apply({"api": cfg(SLEEPER)})
    reports = await asyncio.gather(supervisor.restart("api"), supervisor.restart("api"))
    assert reports[0].pid == reports[1].stop.pid
    assert supervisor.pid("api") == reports[1].pid
    assert supervisor.info("api").starts == 3


async def test_a_child_that_exits_at_once_is_still_reported(
    supervisor: ProcessSupervisor, exits: Exits
) -> None:
    await supervisor.apply({"quick": cfg(["sh", "-c", "exit 3"]), "ok": cfg(["true"])})
    await async_wait_for(lambda: len(exits) == 2, 5, message="both exits reported")
    assert sorted(exits) == [("ok", 0), ("quick", 3)]
    assert supervisor.info("quick").last_exit.describe() == "exited with code 3"  # type: ignore[union-attr]
