"""CPU per HTTP check of two medic trees side by side: both daemons in the same window.

``bench/checks_cpu.py`` runs one phase after the other, so a host whose load
changes from one minute to the next (other work, the VM's neighbours) moves
the figures more than a lever does (identical runs: 0.133-0.190 ms a check).
Here two daemons, one per ``--source`` tree, check their ``--services``
services each at 1 s against the same targets (``close``: ``HTTP/1.0`` with
``Connection: close``, or ``keepalive``) over the same window: whatever the
host does weighs on both alike. Each ``--rounds`` round starts them afresh
(their start order alternating); CPU per check is user + system time of each
daemon's process over the window divided by the requests answered for it.

    PYTHONPATH=daemon .venv/bin/python bench/checks_cpu_pair.py --source /tmp/before \\
        --source . [--kinds close,keepalive] [--services 1000] [--rounds 3]
        [--duration 20] [--warmup 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checks_cpu  # the targets and the daemon's start, shared


def one_round(kind: str, sources: list[Path], args: argparse.Namespace) -> list[float]:
    """CPU per check (ms) of each tree's daemon, over one shared window."""
    targets = checks_cpu.Targets(kind, args.ports)
    procs = []
    try:
        with tempfile.TemporaryDirectory(prefix="medic-checks-pair-") as tmp:
            for i, source in enumerate(sources):
                checks_cpu.SOURCE[0] = source
                proc, _ = checks_cpu.start_medic(
                    Path(tmp), targets.ports, args.services, "uvloop", path=f"t{i}"
                )
                procs.append(proc)
            time.sleep(args.warmup)
            ps = [psutil.Process(p.pid) for p in procs]
            before, cpu0 = targets.counts(), [p.cpu_times() for p in ps]
            t0 = time.monotonic()
            time.sleep(args.duration)
            cpu1, wall = [p.cpu_times() for p in ps], time.monotonic() - t0
            after = targets.counts()
            for proc in procs:
                checks_cpu.stop(proc)
    finally:
        for proc in procs:
            checks_cpu.stop(proc)
        targets.stop()
    figures = []
    for i, (c0, c1) in enumerate(zip(cpu0, cpu1, strict=True)):
        checks = after[f"t{i}"] - before[f"t{i}"]
        used = (c1.user - c0.user) + (c1.system - c0.system)
        system = (c1.system - c0.system) / used if used else 0.0
        print(
            f"  {sources[i]}: {checks / wall:.0f} checks/s, {1000 * used / checks:.3f} ms"
            f" a check ({100 * system:.0f}% kernel)",
            flush=True,
        )
        figures.append(1000 * used / checks if checks else float("nan"))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, action="append", required=True)
    parser.add_argument("--kinds", default="close,keepalive")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    args = parser.parse_args()
    results: dict[str, list[list[float]]] = {}
    for r in range(args.rounds):
        for kind in args.kinds.split(","):
            order = args.source if r % 2 == 0 else args.source[::-1]
            print(f"round {r + 1}, {kind}, {time.strftime('%H:%M:%S')} UTC", flush=True)
            got = dict(zip(order, one_round(kind, order, args), strict=True))
            results.setdefault(kind, []).append([got[s] for s in args.source])
    print()
    for kind, rows in results.items():
        medians = [statistics.median(row[i] for row in rows) for i in range(len(args.source))]
        ratios = [statistics.median(row[i] / row[0] for row in rows) for i in range(len(rows[0]))]
        for source, median, ratio in zip(args.source, medians, ratios, strict=True):
            print(f"{kind}: {source}: median {median:.3f} ms a check, {ratio:.2f}x the first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
