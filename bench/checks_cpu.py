"""CPU per HTTP check: medic (uvloop and asyncio's loop) beside Monit, same run, same targets.

Targets: a separate process (this file with ``--serve-targets``), a minimal
asyncio HTTP server on ``--ports`` ports of 127.0.0.1, in one of two kinds:

* ``close``: every answer is ``HTTP/1.0 200`` with ``Connection: close`` and the
  connection is closed, so every check is a new connection (as Monit always
  does it, and as many health endpoints answer);
* ``keepalive``: HTTP/1.1 keep-alive, the connection stays open.

Phases run one after the other on the same targets, each ``--warmup`` s and
then a ``--duration`` s window: medic with ``--services`` ``http`` checks at
``1s`` (uvloop, then ``MEDIC_EVENT_LOOP=asyncio``) against each kind, then
Monit 5 (``set daemon 1``, one ``check host ... protocol http`` per service)
against the ``close`` targets (Monit cannot keep a connection open). CPU is
user + system time of the checker's process over the window; checks are the
requests the targets answered for that checker in the window (each checker
asks its own paths), so a checker that cannot keep its 1 s cycle shows it.

    .venv/bin/python bench/checks_cpu.py [--services 1000] [--duration 30] [--warmup 10]
                                         [--phases medic-close,monit-close,...]
                                         [--source TREE] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
SOURCE = [REPO]
"""The tree whose daemon/ runs (``--source``: e.g. a ``git archive`` of an older commit)."""

_KEEP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_CLOSE = (
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)
PHASES = (
    "medic-close",
    "medic-keepalive",
    "medic/asyncio-close",
    "medic/asyncio-keepalive",
    "monit-close",
)


# targets (their own process) ------------------------------------------------------------


class _Target(asyncio.Protocol):
    def __init__(self, close: bool, counts: Counter[str]) -> None:
        self.close = close
        self.counts = counts
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
            self.counts[path.split(b"/")[1].decode(errors="replace")] += 1
            if self.close:
                self.transport.write(_CLOSE)
                self.transport.close()
                return
            self.transport.write(_KEEP)


async def _serve(ports: int, close: bool) -> None:
    loop = asyncio.get_running_loop()
    counts: Counter[str] = Counter()
    servers = [
        await loop.create_server(
            lambda: _Target(close, counts), "127.0.0.1", 0, backlog=4096, reuse_address=True
        )
        for _ in range(ports)
    ]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: print("COUNTS " + json.dumps(counts), flush=True)
    )
    print("READY " + ",".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    await stop.wait()


class Targets:
    def __init__(self, kind: str, ports: int) -> None:
        cmd = [str(PYTHON), __file__, "--serve-targets", kind, "--ports", str(ports)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.ports = [int(p) for p in self._line("READY ").split(",")]

    def _line(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError("the targets process ended")

    def counts(self) -> Counter[str]:
        self.proc.send_signal(signal.SIGUSR1)
        return Counter(json.loads(self._line("COUNTS ")))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


# checkers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def start_medic(
    workdir: Path, ports: list[int], services: int, loop: str, path: str = "medic"
) -> subprocess.Popen[bytes]:
    api = free_port()
    lines = [
        "daemon: {state_dir: state, log_format: json}",
        f"api: {{listen: '127.0.0.1:{api}'}}",
        "monitoring: {health_check_interval: 1s, timeout: 2s}",
        f"playbooks_dir: {workdir / 'playbooks'}",
        "services:",
    ]
    for i in range(services):
        url = f"http://127.0.0.1:{ports[i % len(ports)]}/{path}/{i}"
        lines.append(f'  s{i:05d}: {{check: {{type: http, url: "{url}"}}}}')
    (workdir / "playbooks").mkdir(exist_ok=True)
    config = workdir / f"{path}.yaml"
    config.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env["PYTHONPATH"] = str(SOURCE[0] / "daemon")
    if loop == "asyncio":
        env["MEDIC_EVENT_LOOP"] = "asyncio"
    cmd = [str(PYTHON), "-m", "medic", "run", "--config", str(config)]
    cmd += ["--state-dir", str(workdir / f"state-{api}"), "--log-format", "json"]
    log = (workdir / f"{path}.log").open("ab")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    wait_http(f"http://127.0.0.1:{api}/api/v1/health", proc)
    return proc, f"http://127.0.0.1:{api}"


def medic_failures(api: str) -> Counter[str]:
    """medic's failed checks so far, by failure type."""
    url = api + "/metrics?name[]=medic_check_failures_total"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("medic_check_failures_total{"):
            failure = line.split('failure_type="', 1)[1].split('"', 1)[0]
            counts[failure] += round(float(line.rsplit(" ", 1)[1]))
    return counts


MONIT_HEAD = """set daemon 1
set logfile {workdir}/monit.log
set idfile {workdir}/monit.id
set statefile {workdir}/monit.state
set pidfile {workdir}/monit.pid
set httpd port {port} and use address 127.0.0.1
    allow 127.0.0.1
"""
MONIT_HOST = """check host m{i:05d} with address 127.0.0.1
    if failed port {port} protocol http request "/monit/{i}" with timeout 2 seconds then alert
"""


def start_monit(workdir: Path, ports: list[int], services: int) -> subprocess.Popen[bytes]:
    monit = shutil.which("monit")
    if monit is None:
        raise RuntimeError("monit is not installed: run scripts/setup-test-env.sh")
    http_port = free_port()
    text = MONIT_HEAD.format(workdir=workdir, port=http_port)
    text += "".join(MONIT_HOST.format(i=i, port=ports[i % len(ports)]) for i in range(services))
    rc = workdir / "monitrc"
    rc.write_text(text)
    rc.chmod(0o600)
    proc = subprocess.Popen(
        [monit, "-I", "-c", str(rc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_http(f"http://127.0.0.1:{http_port}/", proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# the run -------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    checks_per_s: float
    cpu_percent: float
    cpu_ms_per_check: float
    system_share: float
    """Of that CPU, the share spent in the kernel (sockets): what no user-space lever moves."""
    host_busy_percent: float
    failures: dict[str, int]
    """medic's failed checks in the window, by type (Monit's are not counted)."""


def measure(phase: str, args: argparse.Namespace, workdir: Path) -> Phase:
    checker, _, kind = phase.rpartition("-")
    targets = Targets(kind, args.ports)
    try:
        api = None
        if checker == "monit":
            proc = start_monit(workdir, targets.ports, args.services)
            path = "monit"
        else:
            loop = "asyncio" if checker.endswith("/asyncio") else "uvloop"
            proc, api = start_medic(workdir, targets.ports, args.services, loop)
            path = "medic"
        try:
            time.sleep(args.warmup)
            ps = psutil.Process(proc.pid)
            failed0 = medic_failures(api) if api else Counter[str]()
            before, cpu0, host0 = targets.counts()[path], ps.cpu_times(), psutil.cpu_times()
            t0 = time.monotonic()
            time.sleep(args.duration)
            cpu1, host1, wall = ps.cpu_times(), psutil.cpu_times(), time.monotonic() - t0
            checks = targets.counts()[path] - before
            failed = (medic_failures(api) if api else Counter[str]()) - failed0
        finally:
            stop(proc)
    finally:
        targets.stop()
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    total = sum(host1) - sum(host0)
    idle = (host1.idle - host0.idle) + (host1.iowait - host0.iowait)
    return Phase(
        name=phase,
        checks_per_s=checks / wall,
        cpu_percent=100 * used / wall,
        cpu_ms_per_check=1000 * used / checks if checks else float("nan"),
        system_share=(cpu1.system - cpu0.system) / used if used else 0.0,
        host_busy_percent=100 * (total - idle) / total if total else 0.0,
        failures=dict(failed),
    )


def render(phases: list[Phase], args: argparse.Namespace) -> str:
    lines = [
        "| phase | checks/s | CPU, % of one core | CPU per check | of it, kernel | host busy"
        " | medic's failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in phases:
        lines.append(
            f"| {p.name} | {p.checks_per_s:.0f} | {p.cpu_percent:.1f}% |"
            f" {p.cpu_ms_per_check:.3f} ms | {100 * p.system_share:.0f}% |"
            f" {p.host_busy_percent:.0f}% |"
            f" {', '.join(f'{k} {v}' for k, v in p.failures.items()) or '-'} |"
        )
    lines.append("")
    lines.append(
        f"{args.services} services, 1 s interval, {args.ports} target ports, warm-up"
        f" {args.warmup:g} s, window {args.duration:g} s; {os.cpu_count()} CPUs, Linux"
        f" {platform.release()}, Python {platform.python_version()};"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--source", type=Path, default=REPO, help="tree whose daemon/ to run")
    parser.add_argument("--serve-targets", choices=("close", "keepalive"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_targets:
        import uvloop  # the targets must not be what limits the rate

        uvloop.run(_serve(args.ports, args.serve_targets == "close"))
        return 0
    SOURCE[0] = args.source
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="medic-checks-cpu-") as tmp:
        for phase in args.phases.split(","):
            if phase not in PHASES:
                parser.error(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
            phases.append(measure(phase, args, Path(tmp)))
            if not args.json:
                print(render(phases[-1:], args).splitlines()[2], flush=True)
    if args.json:
        print(json.dumps([asdict(p) for p in phases], indent=2))
    else:
        print(render(phases, args))
    return 0


def _stop_on_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    sys.exit(main())
