"""CPU per check of medic's own machinery, without the probe's I/O.

The real orchestrator (monitor, runner, metrics, heal side) with ``--services``
``http`` services whose checks are replaced by one that answers healthy at
once: rounds of every service's periodic check, started as the scheduler
starts them (``_start_scheduled``), CPU time of the process per check. What it
leaves out is the probe (the lean client, the sockets) and the event loop's
polling: that is what ``bench/checks_cpu.py`` measures whole.

    PYTHONPATH=daemon .venv/bin/python bench/check_machinery.py [--services 1000]
        [--rounds 15] [--reps 9] [--warmup-rounds 5] [--batch 0] [--source TREE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Instant:
    """A check that answers healthy at once (the same result each time, as the http check)."""

    def __init__(self, ok: Any) -> None:
        self.result = ok

    async def probe(self) -> Any:
        return self.result

    async def close(self) -> None:
        return None


def write_config(workdir: Path, services: int) -> Path:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (workdir / "playbooks").mkdir()
    lines = [
        "daemon: {state_dir: state, log_format: json}",
        f"api: {{listen: '127.0.0.1:{port}'}}",
        "monitoring: {health_check_interval: 1h, timeout: 2s}",
        f"playbooks_dir: {workdir / 'playbooks'}",
        "services:",
    ]
    for i in range(services):
        lines.append(f'  s{i:05d}: {{check: {{type: http, url: "http://127.0.0.1:9/x/{i}"}}}}')
    config = workdir / "medic.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


async def measure(args: argparse.Namespace) -> list[float]:
    from medic.orchestrator import ControlPlaneOrchestrator
    from medic.watch.checks.base import CheckResult

    workdir = Path(tempfile.mkdtemp(prefix="medic-machinery-"))
    config = write_config(workdir, args.services)
    orch = ControlPlaneOrchestrator.from_config(config, state_dir=workdir / "state")
    monitor: Any = orch.monitor
    ok = CheckResult.ok("HTTP 200 OK", status=200)
    for name in list(monitor._checks):
        monitor._checks[name] = Instant(ok)
    await orch.start()
    await asyncio.sleep(1)  # the first checks, at once after start
    loop = asyncio.get_running_loop()
    names = list(monitor.states())

    batch = args.batch or len(names)

    async def one_round() -> None:
        for first in range(0, len(names), batch):
            now = loop.time()
            for name in names[first : first + batch]:
                monitor._start_scheduled(name, now)
            await asyncio.gather(*list(monitor._in_flight.values()))

    for _ in range(args.warmup_rounds):
        await one_round()
    gc.collect()
    gc.freeze()  # as the daemon does once started
    from medic import daemon  # ... with its young-collection threshold, where it has one

    young = getattr(daemon, "YOUNG_COLLECTION_THRESHOLD", gc.get_threshold()[0])
    gc.set_threshold(young, *gc.get_threshold()[1:])
    collector = CollectorTime()
    gc.callbacks.append(collector.on_gc)
    per_check = []
    for _ in range(args.reps):
        t0 = time.process_time()
        for _ in range(args.rounds):
            await one_round()
        per_check.append((time.process_time() - t0) / (args.rounds * len(names)) * 1e6)
    gc.callbacks.remove(collector.on_gc)
    checks = args.reps * args.rounds * len(names)
    print(collector.report(checks))
    await orch.stop()
    return per_check


class CollectorTime:
    """CPU time the garbage collector takes, by generation (through ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.spent = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.process_time()
        else:
            self.spent[info["generation"]] += time.process_time() - self.started
            self.runs[info["generation"]] += 1

    def report(self, checks: int) -> str:
        parts = [
            f"gen{g}: {self.runs[g]} runs, {self.spent[g] / checks * 1e6:.1f} us/check"
            for g in range(3)
        ]
        return "collector: " + "; ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument(
        "--warmup-rounds",
        type=int,
        default=5,
        help="rounds before measuring; 65 fills every service's kept results (60)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="start the checks this many at a time, each batch awaited (0: all at once);"
        " the daemon starts a 20 ms slot's together: 20 at 1,000 checks a second",
    )
    parser.add_argument("--source", type=Path, default=REPO, help="tree whose daemon/ to run")
    args = parser.parse_args()
    sys.path.insert(0, str(args.source / "daemon"))
    import uvloop

    per_check = uvloop.run(measure(args))
    print(
        f"machinery per check ({args.source}): median {statistics.median(per_check):.1f} us,"
        f" min {min(per_check):.1f} us; reps: {', '.join(f'{v:.1f}' for v in per_check)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
