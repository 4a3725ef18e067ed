"""Fleet bench: 3 etcd members on loopback and N medic fleet clients.

Each client is medic's own fleet session (``medic.fleet.session.Session``:
a real lease kept alive at lease_ttl / 3, the host summary, the watch of the
prefix) and its gate (``medic.fleet.gate.FleetGate``), all N in this one
process (no checks run: the session is what talks to etcd). Measured:

1. idle load: etcd writes per host per minute while nothing changes, from the
   cluster's revision (every write, by anyone, raises it by one; lease
   keep-alives do not) over ``--idle`` seconds; also keep-alives per host per
   minute (from lease_ttl);
2. keys and bytes per host under the prefix;
3. a shared failure: every host asks for the shared-heal lock of the same
   service at once (what each medic does when its check fails); time until
   every host has its answer, and how many won (must be 1). Repeated
   ``--rounds`` times; medians.

Run from the repository root (etcd from Debian's etcd-server):

    PYTHONPATH=daemon .venv/bin/python bench/fleet.py [--hosts 50] [--idle 60] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from medic.config.fleet import EtcdConfig, FleetConfig
from medic.core.logging import configure_logging
from medic.fleet.gate import FleetGate
from medic.fleet.session import Session

PREFIX = "/medic-bench"
JOIN_BATCH = 50
JOIN_PAUSE_S = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cluster(root: Path) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    ports = [(free_port(), free_port()) for _ in range(3)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, (_, p) in enumerate(ports))
    procs = []
    for i, (client, peer) in enumerate(ports):
        cmd = [
            shutil.which("etcd") or "/usr/bin/etcd", "--name", f"m{i}",
            "--data-dir", str(root / f"m{i}"),
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", initial, "--initial-cluster-state", "new",
        ]  # fmt: skip
        log = (root / f"m{i}.log").open("wb")
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    return procs, [f"127.0.0.1:{c}" for c, _ in ports]


def summary(host: str) -> dict[str, Any]:
    return {
        "host": host,
        "group": "bench",
        "version": "bench",
        "started_at": time.time(),
        "services": {"up": 12, "down": 0, "held": 0},
        "holds": {},
        "failing": False,
    }


async def revision(session: Session) -> int:
    got = await session.link.call(lambda c: c.get_prefix(b"/nothing-here/"))
    return int(got.header.revision)


async def main_async(args: argparse.Namespace, endpoints: list[str]) -> dict[str, Any]:
    sessions: list[Session] = []
    for i in range(args.hosts):
        cfg = FleetConfig(
            etcd=EtcdConfig(endpoints=endpoints[i % 3 :] + endpoints[: i % 3], prefix=PREFIX),
            host=f"h{i:05d}",
            group="bench",
            lease_ttl=args.lease_ttl,
        )
        host_summary = summary(cfg.host)
        sessions.append(Session(cfg, lambda s=host_summary: s, lambda *a: None, lambda c: None))
    t0 = time.monotonic()
    tasks = []
    for start in range(0, len(sessions), JOIN_BATCH):  # hosts do not all start in one instant
        tasks += [asyncio.create_task(s.run()) for s in sessions[start : start + JOIN_BATCH]]
        await asyncio.sleep(JOIN_PAUSE_S)
    for session in sessions:  # connected: its lease, summary and watch are up
        while not session.connected:  # noqa: ASYNC110  # a flag of medic's session, polled
            await asyncio.sleep(0.05)
    joined_s = time.monotonic() - t0
    await asyncio.sleep(1)
    rev0, t_idle = await revision(sessions[0]), time.monotonic()
    await asyncio.sleep(args.idle)
    rev1, idle_s = await revision(sessions[0]), time.monotonic() - t_idle
    writes_per_host_min = (rev1 - rev0) / args.hosts / (idle_s / 60)
    everything = await sessions[0].link.call(lambda c: c.get_prefix(f"{PREFIX}/".encode()))
    keys = len(everything)
    size = sum(len(kv.key) + len(kv.value) for kv in everything)
    lock_s, winners = await shared_rounds(sessions, args.rounds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(s.close() for s in sessions))
    return {
        "hosts": args.hosts,
        "lease_ttl_s": args.lease_ttl,
        "join_all_s": round(joined_s, 3),
        "idle_s": round(idle_s, 1),
        "idle_writes_per_host_per_min": round(writes_per_host_min, 3),
        "keepalives_per_host_per_min": round(60 / (args.lease_ttl / 3), 1),
        "keys_per_host": round(keys / args.hosts, 2),
        "bytes_per_host": round(size / args.hosts, 1),
        "shared_lock_all_answered_s": {
            "median": round(statistics.median(lock_s), 4),
            "max": round(max(lock_s), 4),
        },
        "winners_per_round": sorted(set(winners)),
    }


async def shared_rounds(sessions: list[Session], rounds: int) -> tuple[list[float], list[int]]:
    gates = [FleetGate(s, lambda: None) for s in sessions]
    times, winners = [], []
    for r in range(rounds):
        state: Any = SimpleNamespace(name=f"shared-{r}", spec=SimpleNamespace(shared=True))
        t0 = time.monotonic()
        answers = await asyncio.gather(*(g.admit(state, False) for g in gates))
        times.append(time.monotonic() - t0)
        winners.append(sum(1 for a in answers if a is None))
        for gate in gates:
            gate.release(state.name)
        await asyncio.sleep(0.5)
    return times, winners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    args = parser.parse_args()
    configure_logging("console", "WARNING")  # the figures alone on stdout
    # A SIGTERM still stops the etcd members (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="medic-fleet-bench-") as tmp:
        procs, endpoints = start_cluster(Path(tmp))
        try:
            time.sleep(2)
            result = asyncio.run(main_async(args, endpoints))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
