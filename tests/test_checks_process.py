"""The process check on real processes: finding them, missing ones, a real
leak, a real spike, memory and CPU limits, and its options."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from medic.config.checks import ProcessCheckOptions
from medic.config.models import ProcessConfig
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.watch.checks.base import CheckResult, CheckTarget
from medic.watch.checks.process import ProcessCheck
from tests.helpers import async_wait_for
from tests.processes import PYTHON, Spawner, program, rss_bytes

MIB = 1_048_576
SLEEPER = [PYTHON, "-c", "import time; time.sleep(300)"]


def make_check(resources: Resources, service: str = "svc", **options: Any) -> ProcessCheck:
    opts = ProcessCheckOptions.model_validate({"type": "process", **options})
    return ProcessCheck(opts, CheckTarget(service=service), resources)


async def probe_every(
    check: ProcessCheck, interval_s: float, duration_s: float
) -> list[CheckResult]:
    results = []
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        results.append(await check.probe())
        await asyncio.sleep(interval_s)
    return results


async def test_finds_a_process_by_pidfile_name_and_cmdline(
    resources: Resources, spawn: Spawner, tmp_path: Path
) -> None:
    marker = f"medic-test-{time.monotonic_ns()}"
    proc = spawn([PYTHON, "-c", "import time; time.sleep(300)", marker])
    pidfile = tmp_path / "p.pid"
    pidfile.write_text(f"{proc.pid}\n")
    # Just spawned, the child may not have exec'd Python yet: wait until it has.
    by_pidfile = await async_wait_for(
        lambda: _when(make_check(resources, pidfile=str(pidfile)), lambda r: r.healthy), 5
    )
    by_cmdline = await async_wait_for(
        lambda: _when(
            make_check(resources, cmdline=rf"time\.sleep\(300\).*{marker}"), lambda r: r.healthy
        ),
        5,
    )
    for result in (by_pidfile, by_cmdline):
        assert result.healthy, result.detail
        assert result.data["pid"] == proc.pid
        assert result.data["rss_bytes"] > 1 * MIB
        assert f"pid {proc.pid}" in result.detail
    by_name = await make_check(resources, name="sleep-no-such-name").probe()
    assert not by_name.healthy


async def test_a_tree_is_measured_whole(resources: Resources, spawn: Spawner) -> None:
    marker = f"medic-tree-{time.monotonic_ns()}"
    proc = spawn(["sh", "-c", f"sleep 301 & sleep 302 & wait # {marker}"])
    check = make_check(resources, cmdline=marker)
    result = await async_wait_for(
        lambda: _when(check, lambda r: r.data.get("processes") == 3), 5, message="3 processes"
    )
    assert result.data["pids"] == [proc.pid]


async def _when(check: ProcessCheck, predicate: Any) -> CheckResult | None:
    result = await check.probe()
    return result if predicate(result) else None


async def test_a_missing_process_is_a_definitive_crash(
    resources: Resources, tmp_path: Path
) -> None:
    for options in (
        {"pidfile": str(tmp_path / "missing.pid")},
        {"cmdline": "no-such-process-[0-9]{40}"},
    ):
        result = await make_check(resources, **options).probe()
        assert not result.healthy
        assert result.failure_type is FailureType.SERVICE_CRASH
        assert result.definitive


async def test_a_supervised_process_and_its_exit(resources: Resources) -> None:
    await resources.processes.apply({"svc": ProcessConfig(command=SLEEPER)})
    check = make_check(resources)
    healthy = await check.probe()
    pid = resources.processes.pid("svc")
    assert healthy.healthy and healthy.data["pid"] == pid
    assert pid is not None
    await resources.processes.stop("svc")
    gone = await check.probe()
    assert gone.failure_type is FailureType.SERVICE_CRASH and gone.definitive
    assert "killed by SIGTERM" in gone.detail


async def test_a_service_without_process_and_selector_cannot_be_told(
    resources: Resources,
) -> None:
    result = await make_check(resources, service="nothing").probe()
    assert not result.healthy
    assert result.failure_type is None


async def test_a_real_steady_leak_is_a_memory_leak(resources: Resources, spawn: Spawner) -> None:
    proc = spawn(program("leak.py", 300))
    check = make_check(resources, cmdline=r"leak\.py 300$", leak_window="2s", leak_min_samples=5)
    start_rss = await async_wait_for(lambda: rss_bytes(proc.pid), 5, message="leaker runs")

    async def leak_found() -> CheckResult | None:
        result = await check.probe()
        return result if result.failure_type is FailureType.MEMORY_LEAK else None

    result = await async_wait_for(leak_found, 15, interval=0.25, message="a memory_leak")
    assert result.definitive
    data = result.data
    # The program keeps 2 MiB more every 100 ms: about 20 MiB/s.
    assert 8 * MIB < data["growth_bytes_per_s"] < 40 * MIB, data
    assert data["samples"] >= 5
    assert data["leak_window_s"] == 2.0
    assert data["rss_bytes"] > start_rss
    assert "grew steadily" in result.detail


async def test_a_real_spike_is_not_a_leak(resources: Resources, spawn: Spawner) -> None:
    proc = spawn(program("spike.py", 1.0, 1.0))
    check = make_check(
        resources, cmdline=r"spike\.py 1\.0 1\.0$", leak_window="2s", leak_min_samples=5
    )
    # Flat for 1 s, 100 MiB for 1 s, flat again: watch 2 whole windows after the spike.
    results = await probe_every(check, 0.2, 6.0)
    assert proc.poll() is None
    peak = max(r.data.get("rss_bytes", 0) for r in results)
    assert peak > 100 * MIB, "the check never saw the spike: the test proves nothing"
    assert results[-1].data["rss_bytes"] < 50 * MIB, "the spike was not freed"
    judged = [r for r in results if "collecting" not in r.detail]
    assert judged, "the leak rule never had a full window to judge"
    failures = [r.detail for r in results if not r.healthy]
    assert failures == []


async def test_memory_max(resources: Resources, spawn: Spawner) -> None:
    proc = spawn(SLEEPER)
    await async_wait_for(lambda: rss_bytes(proc.pid) > MIB, 5, message="sleeper runs")
    check = make_check(resources, cmdline=r"time\.sleep\(300\)$", memory_max="1MB")
    result = await check.probe()
    assert result.failure_type is FailureType.MEMORY_LEAK
    assert not result.definitive
    assert "over memory_max 1.0 MiB" in result.detail
    assert result.data["memory_max_bytes"] == 1_000_000
    roomy = await make_check(resources, cmdline=r"time\.sleep\(300\)$", memory_max="1GiB").probe()
    assert roomy.healthy


async def test_cpu_percent_max(resources: Resources, spawn: Spawner) -> None:
    spawn([PYTHON, "-c", "while True: pass", "medic-busy"])
    spawn([*SLEEPER, "medic-idle"])
    # A low limit: on a busy 2-core test machine the loop may get only part of a core.
    busy_check = make_check(resources, cmdline="medic-busy$", cpu_percent_max=10)
    idle_check = make_check(resources, cmdline="medic-idle$", cpu_percent_max=10)
    first = await busy_check.probe()
    assert first.healthy and first.data["cpu_percent"] is None  # nothing to compare yet
    await idle_check.probe()
    await asyncio.sleep(1.0)
    busy = await busy_check.probe()
    assert busy.failure_type is FailureType.CPU_SATURATION, busy.detail
    assert busy.data["cpu_percent"] > 10
    idle = await idle_check.probe()
    assert idle.healthy, idle.detail
    assert idle.data["cpu_percent"] < 10


def test_options() -> None:
    with pytest.raises(ValidationError, match="one of name, cmdline, pidfile"):
        ProcessCheckOptions.model_validate({"type": "process", "name": "a", "cmdline": "b"})
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        ProcessCheckOptions.model_validate({"type": "process", "cmdline": "("})
    opts = ProcessCheckOptions.model_validate(
        {"type": "process", "memory_max": "512MiB", "leak_window": "10m", "leak_min_growth": "50MB"}
    )
    assert opts.memory_max == 512 * MIB
    assert opts.leak_window == 600.0
    assert opts.leak_min_growth.bytes == 50_000_000
