"""The ``type: process`` check: a process on this host and what it uses.

The process is found by ``name`` (exact process name), ``cmdline`` (a regular
expression searched in the space-joined command line) or ``pidfile``; with
none of these, it is the service's own supervised process (``process:``).
Memory and CPU are summed over the process and all its descendants.

- missing (or a zombie) -> ``service_crash``, definitive;
- resident memory at or above ``memory_max`` -> ``memory_leak``;
- resident memory growing steadily over ``leak_window`` -> ``memory_leak``,
  definitive (the window already smooths out single readings). The check
  samples RSS once per probe and the rule in ``medic.watch.checks._leak`` decides:
  enough samples over most of the window; the least-squares line rising by
  at least ``leak_min_growth`` per window; >= 80% of steps not falling; the
  line fitting better than one jump between two levels; still rising over
  the latest half of the window; the latest sample near the window's
  maximum. A spike that drops back, one jump to a new level, or growth that
  levelled off is not a leak. The figures go into the result's data
  (``rss_bytes``, ``growth_bytes_per_s``, ``samples``, ``leak_window_s``...);
- CPU use since the previous probe at or above ``cpu_percent_max`` (percent
  of one CPU) -> ``cpu_saturation``.

The samples restart whenever the process does (a new PID).

Its refiner looks at the supervised ``process:`` of a service whose other
check failed: a process that is gone is a definitive ``service_crash``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from medic.config.checks import ProcessCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.processes.pidfiles import pid_alive, read_pidfile
from medic.watch.checks._leak import Sample, judge_growth
from medic.watch.checks.base import Check, CheckResult, CheckTarget, Refiner

if TYPE_CHECKING:
    from medic.config.models import ServiceSpec
    from medic.host.resources import Resources

_MIB = 1_048_576
_MIN_CPU_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Snapshot:
    roots: tuple[int, ...]
    processes: int
    rss_bytes: int
    cpu_seconds: float


class ProcessRefiner(Refiner):
    """A service's ``process:`` that is gone: a certain crash, whatever the check saw."""

    def applies(self, spec: ServiceSpec) -> bool:
        return spec.process is not None and spec.check.type != ProcessCheck.yaml_name

    async def refine(
        self, spec: ServiceSpec, result: CheckResult, resources: Resources
    ) -> CheckResult:
        processes = resources.processes
        if spec.name not in processes:
            return result
        info = processes.info(spec.name)
        if info.alive:
            return result
        last = info.last_exit
        gone = last.describe() if last is not None else "not running"
        return CheckResult.fail(
            FailureType.SERVICE_CRASH,
            f"the process is gone ({gone}); the check saw: {result.detail}",
            definitive=True,
            returncode=last.returncode if last is not None else None,
        )


class ProcessCheck(Check[ProcessCheckOptions]):
    """``type: process``: healthy while the process runs within its limits."""

    yaml_name = "process"
    options_model = ProcessCheckOptions
    refiner = ProcessRefiner()

    def __init__(
        self, options: ProcessCheckOptions, target: CheckTarget, resources: Resources
    ) -> None:
        super().__init__(options, target, resources)
        self._samples: deque[Sample] = deque()
        self._roots: tuple[int, ...] = ()
        self._last_cpu: tuple[float, float] | None = None

    async def probe(self) -> CheckResult:
        found = self._locate()
        if isinstance(found, CheckResult):
            return found
        snapshot = await asyncio.to_thread(_measure, found)
        if snapshot is None:
            return _missing(f"process {_pids(found)} is gone")
        return self._judge(snapshot, time.monotonic())

    # finding ---------------------------------------------------------------------

    def _locate(self) -> tuple[int, ...] | CheckResult:
        opts = self.options
        if opts.pidfile is not None:
            pid = read_pidfile(opts.pidfile)
            if pid is None or not pid_alive(pid):
                named = "names no running process" if pid else "is missing or names no PID"
                return _missing(f"pidfile {opts.pidfile} {named}", pid=pid)
            return (pid,)
        if opts.name is not None or opts.cmdline is not None:
            roots = _find(opts.name, re.compile(opts.cmdline) if opts.cmdline else None)
            return roots or _missing(f"no process matches {self._selector()}")
        return self._supervised()

    def _supervised(self) -> tuple[int, ...] | CheckResult:
        processes = self.resources.processes
        service = self.target.service
        if service not in processes:
            detail = f"service {service!r} has no process: section and the check names none"
            return CheckResult(healthy=False, detail=detail)
        info = processes.info(service)
        if info.pid is not None:
            return (info.pid,)
        last = info.last_exit
        why = f" ({last.describe()})" if last is not None else ""
        returncode = last.returncode if last is not None else None
        return _missing(f"the process is not running{why}", returncode=returncode)

    def _selector(self) -> str:
        opts = self.options
        return f"name {opts.name!r}" if opts.name is not None else f"cmdline {opts.cmdline!r}"

    # judging ---------------------------------------------------------------------

    def _judge(self, snap: Snapshot, now: float) -> CheckResult:
        opts = self.options
        cpu = self._cpu_percent(snap, now)
        self._remember(snap, now)
        verdict = judge_growth(
            self._samples,
            window_s=opts.leak_window,
            min_samples=opts.leak_min_samples,
            min_growth=opts.leak_min_growth,
        )
        data = _figures(snap, cpu, opts) | verdict.figures()
        data["growth_mib_per_s"] = round(verdict.growth_bytes_per_s / _MIB, 2)
        summary = _summary(snap, cpu)
        if opts.memory_max is not None and snap.rss_bytes >= opts.memory_max:
            detail = f"resident memory {_mib(snap.rss_bytes)} is over memory_max"
            detail += f" {_mib(opts.memory_max)}; {summary}"
            return CheckResult.fail(FailureType.MEMORY_LEAK, detail, **data)
        if opts.leak_detection and verdict.leak:
            detail = f"memory leak: {verdict.reason}; {summary}"
            return CheckResult.fail(FailureType.MEMORY_LEAK, detail, definitive=True, **data)
        if opts.cpu_percent_max is not None and cpu is not None and cpu >= opts.cpu_percent_max:
            detail = f"CPU {cpu:.0f}% is over cpu_percent_max {opts.cpu_percent_max:g}%"
            return CheckResult.fail(FailureType.CPU_SATURATION, f"{detail}; {summary}", **data)
        leak = f"; leak check: {verdict.reason}" if opts.leak_detection else ""
        return CheckResult.ok(summary + leak, **data)

    def _remember(self, snap: Snapshot, now: float) -> None:
        if snap.roots != self._roots:
            self._samples.clear()  # a new process: its predecessor's memory says nothing
            self._roots = snap.roots
        self._samples.append((now, float(snap.rss_bytes)))
        while self._samples and self._samples[0][0] < now - self.options.leak_window:
            self._samples.popleft()

    def _cpu_percent(self, snap: Snapshot, now: float) -> float | None:
        last, self._last_cpu = self._last_cpu, (now, snap.cpu_seconds)
        if last is None or snap.roots != self._roots or now - last[0] < _MIN_CPU_INTERVAL_S:
            return None
        return max(0.0, (snap.cpu_seconds - last[1]) / (now - last[0]) * 100.0)


# psutil: runs on a worker thread ----------------------------------------------------


def _find(name: str | None, pattern: re.Pattern[str] | None) -> tuple[int, ...]:
    """PIDs of matching processes whose parent does not match too (the tree roots)."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for proc in psutil.process_iter(["pid", "ppid", "name", "cmdline", "status"]):
        info = proc.info
        if info["pid"] == me or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if name is not None and info["name"] != name:
            continue
        if pattern is not None and not pattern.search(" ".join(info["cmdline"] or ())):
            continue
        parents[info["pid"]] = info["ppid"]
    return tuple(sorted(pid for pid, ppid in parents.items() if ppid not in parents))


def _measure(roots: tuple[int, ...]) -> Snapshot | None:
    """RSS and CPU seconds summed over ``roots`` and their descendants; None if all are gone."""
    tree: dict[int, psutil.Process] = {}
    alive_roots = []
    for pid in roots:
        try:
            root = psutil.Process(pid)
            if root.status() == psutil.STATUS_ZOMBIE:
                continue
            tree[pid] = root
            tree.update({child.pid: child for child in root.children(recursive=True)})
        except psutil.Error:
            continue
        alive_roots.append(pid)
    if not alive_roots:
        return None
    rss, cpu, count = 0, 0.0, 0
    for proc in tree.values():
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
        except psutil.Error:
            continue  # exited while we looked
        cpu += times.user + times.system
        count += 1
    return Snapshot(tuple(alive_roots), count, rss, cpu)


# results -----------------------------------------------------------------------------


def _missing(detail: str, **data: Any) -> CheckResult:
    return CheckResult.fail(FailureType.SERVICE_CRASH, detail, definitive=True, **data)


def _figures(snap: Snapshot, cpu: float | None, opts: ProcessCheckOptions) -> dict[str, Any]:
    return {
        "pid": snap.roots[0],
        "pids": list(snap.roots),
        "processes": snap.processes,
        "rss_bytes": snap.rss_bytes,
        "rss_mib": round(snap.rss_bytes / _MIB, 1),
        "memory_max_bytes": int(opts.memory_max) if opts.memory_max is not None else None,
        "cpu_percent": round(cpu, 1) if cpu is not None else None,
        "leak_window_s": opts.leak_window,
        "leak_min_growth": str(opts.leak_min_growth),
    }


def _summary(snap: Snapshot, cpu: float | None) -> str:
    count = f" ({snap.processes} processes)" if snap.processes > 1 else ""
    cpu_text = f", CPU {cpu:.0f}%" if cpu is not None else ""
    return f"pid {_pids(snap.roots)}{count}: RSS {_mib(snap.rss_bytes)}{cpu_text}"


def _pids(pids: tuple[int, ...]) -> str:
    return ", ".join(str(p) for p in pids)


def _mib(value: float) -> str:
    return f"{value / _MIB:.1f} MiB"
