"""CPU per probe of the lean HTTP client alone, on a new connection each time.

What ``bench/checks_cpu.py`` measures whole, without medic's check machinery
(runner, monitor, metrics): ``HttpProbes.probe`` from one or more trees
(``--source``), and a bare uvloop ``create_connection`` + write + read + close
as the floor, each in a fresh process of its own, against the same targets
(``bench/checks_cpu.py --serve-targets``: uvloop, ``HTTP/1.0`` with
``Connection: close``, or HTTP/1.1 keep-alive with ``--kind keepalive``).
Rounds alternate the clients so a busy host weighs on each alike; each client
runs ``--count`` probes after a warm-up, in bursts of ``--burst`` started
together every ``--pace-ms`` (as the daemon starts the checks of one 20 ms
slot: 20 every 20 ms is 1,000 a second), and reports the CPU time of its
process (user + system) per probe. Medians over the rounds, and each tree's
ratio to the first.

    PYTHONPATH=daemon .venv/bin/python bench/probe_connect.py --source /tmp/before \\
        --source . [--kind close] [--count 5000] [--rounds 7] [--burst 20] [--pace-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REQUEST = b"GET /probe/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"


class _Bare(asyncio.Protocol):
    """The floor: write on connect, done at the first data."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done

    def connection_made(self, transport: Any) -> None:
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _one_probe(kind: str, port: int) -> Callable[[], Awaitable[Any]]:
    loop = asyncio.get_running_loop()
    if kind == "bare":

        async def bare() -> None:
            done = loop.create_future()
            transport, _ = await loop.create_connection(lambda: _Bare(done), "127.0.0.1", port)
            try:
                await done
            finally:
                transport.close()

        return bare
    from medic.host.http_probe import HttpProbes

    probes = HttpProbes()
    request = HttpProbes.request_bytes("GET", f"127.0.0.1:{port}", "/probe/0", {})

    def lean() -> Awaitable[Any]:
        return probes.probe("127.0.0.1", port, request, None, 0)

    return lean


async def _client(kind: str, port: int, count: int, burst: int, pace_s: float) -> dict[str, float]:
    probe = _one_probe(kind, port)
    loop = asyncio.get_running_loop()

    async def bursts(n: int) -> None:
        for _ in range(n):
            started = loop.time()
            await asyncio.gather(*(probe() for _ in range(burst)))
            if pace_s:
                await asyncio.sleep(max(0.0, started + pace_s - loop.time()))

    await bursts(max(1, count // 10 // burst))  # warm-up
    await asyncio.sleep(0.05)  # the warm-up's last connections are gone
    before = resource.getrusage(resource.RUSAGE_SELF)
    await bursts(count // burst)
    after = resource.getrusage(resource.RUSAGE_SELF)
    done = burst * (count // burst)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"us": 1e6 * (user + system) / done, "system_us": 1e6 * system / done}


def run_client(label: str, source: Path | None, port: int, args: argparse.Namespace) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    if source is not None:
        env["PYTHONPATH"] = str(source / "daemon")
    cmd = [sys.executable, __file__, "--client", "bare" if source is None else "lean"]
    cmd += ["--port", str(port), "--count", str(args.count)]
    cmd += ["--burst", str(args.burst), "--pace-ms", str(args.pace_ms)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    figures = json.loads(out)
    print(f"  {label}: {figures['us']:.1f} us ({figures['system_us']:.1f} kernel)", flush=True)
    return float(figures["us"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, action="append", default=[])
    parser.add_argument("--kind", choices=("close", "keepalive"), default="close")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--burst", type=int, default=20, help="probes started together")
    parser.add_argument("--pace-ms", type=float, default=20.0, help="one burst every (0: at once)")
    parser.add_argument("--no-bare", action="store_true", help="leave out the bare floor")
    parser.add_argument("--client", choices=("bare", "lean"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import uvloop

    if args.client:
        figures = uvloop.run(
            _client(args.client, args.port, args.count, args.burst, args.pace_ms / 1000)
        )
        print(json.dumps(figures))
        return 0
    sources: list[Path] = args.source or [REPO]
    clients: list[tuple[str, Path | None]] = [(str(s), s) for s in sources]
    if not args.no_bare:
        clients.append(("bare uvloop", None))
    cmd = [sys.executable, str(REPO / "bench" / "checks_cpu.py"), "--serve-targets", args.kind]
    targets = subprocess.Popen([*cmd, "--ports", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert targets.stdout is not None
        line = targets.stdout.readline()
        port = int(line.removeprefix("READY ").strip())
        figures: dict[str, list[float]] = {label: [] for label, _ in clients}
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}", flush=True)
            order = clients if i % 2 == 0 else clients[::-1]
            for label, source in order:
                figures[label].append(run_client(label, source, port, args))
    finally:
        targets.send_signal(signal.SIGTERM)
        targets.wait(10)
    first = statistics.median(figures[clients[0][0]])
    print(f"\n{args.kind}, {args.count} probes per client, {args.burst} every {args.pace_ms:g} ms:")
    for label, values in figures.items():
        median = statistics.median(values)
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"{label}: median {median:.1f} us per probe ({spread}), {median / first:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
