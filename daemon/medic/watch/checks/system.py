"""The ``type: system`` check: the host's own resources through psutil.

Disk usage per mount -> ``disk_full``; memory in use -> ``memory_pressure``;
load average per CPU or CPU busy share -> ``cpu_saturation``. The first limit
crossed (in that order) names the failure; the detail lists every figure.
"""

from __future__ import annotations

import os
from typing import Any

import psutil

from medic.config.checks import SystemCheckOptions
from medic.core.vocabulary import FailureType
from medic.watch.checks.base import Check, CheckResult

Percent = float


class SystemCheck(Check[SystemCheckOptions]):
    """``type: system``: healthy while disk, memory and CPU stay under their limits."""

    yaml_name = "system"
    options_model = SystemCheckOptions

    async def probe(self) -> CheckResult:
        figures = self._figures()
        for failure_type, breach in self._breaches(figures):
            return CheckResult.fail(failure_type, breach + "; " + _summary(figures), **figures)
        return CheckResult.ok(_summary(figures), **figures)

    def _figures(self) -> dict[str, Any]:
        opts = self.options
        disks = {path: psutil.disk_usage(path).percent for path in opts.disk_paths}
        load5 = os.getloadavg()[1] / (psutil.cpu_count() or 1)
        return {
            "disk_percent": disks,
            "memory_percent": psutil.virtual_memory().percent,
            "load_per_cpu": round(load5, 3),
            # Non-blocking: the share since the previous call (0.0 the first time).
            "cpu_percent": psutil.cpu_percent(interval=None),
        }

    def _breaches(self, figures: dict[str, Any]) -> list[tuple[FailureType, str]]:
        opts = self.options
        found: list[tuple[FailureType, str]] = []
        if opts.disk_percent_max is not None:
            for path, used in figures["disk_percent"].items():
                if used >= opts.disk_percent_max:
                    found.append(
                        (
                            FailureType.DISK_FULL,
                            f"disk {path} {used:.1f}% used (limit {opts.disk_percent_max:g}%)",
                        )
                    )
        limits = (
            (opts.memory_percent_max, "memory_percent", FailureType.MEMORY_PRESSURE, "memory"),
            (opts.load_per_cpu_max, "load_per_cpu", FailureType.CPU_SATURATION, "load per CPU"),
            (opts.cpu_percent_max, "cpu_percent", FailureType.CPU_SATURATION, "CPU"),
        )
        for limit, key, failure_type, label in limits:
            if limit is not None and figures[key] >= limit:
                found.append((failure_type, f"{label} at {figures[key]:g} (limit {limit:g})"))
        return found


def _summary(figures: dict[str, Any]) -> str:
    disks = ", ".join(f"{p} {v:.1f}%" for p, v in figures["disk_percent"].items())
    return (
        f"disk {disks}; memory {figures['memory_percent']:.1f}%; "
        f"load/cpu {figures['load_per_cpu']:.2f}; cpu {figures['cpu_percent']:.1f}%"
    )
