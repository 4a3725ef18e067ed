"""MTTR bench for host processes: SIGKILL a process service, time until HTTP 200 again.

Two supervisors restart the same program (``bench/tiny_http_server.py`` under
``/usr/bin/python3 -S``, each on its own port) in the same run, rounds
alternating between them so both see the same machine:

    medic         the service's ``process:`` and the shipped ``restart-process``
                  playbook (exit seen by awaiting the child -> check -> recovery
                  -> restart_process -> start); http check every 5 s
    supervisord   Debian's ``supervisor``, ``autorestart=true``, everything
                  else default; its own config in a temp dir, never the system's

The clock starts just before ``os.kill(pid, SIGKILL)`` and stops at the first
HTTP 200 on the program's port, polled from here every 5 ms. Between rounds
the bench waits until the program is back and settled: for medic the service
is ``healthy`` with no recovery running, for supervisord the program is
``RUNNING`` (past ``startsecs``); then 0.5 s more. Every round counts.

medic's config raises ``max_attempts`` to 1000: killing the same service 20
times in a few minutes is a crash loop, and the default guardrail (3 per 10
minutes) would open the circuit, which is what it is for, but not what this
measures.

Run from the repository root (supervisord must be installed):

    .venv/bin/python bench/mttr_process.py [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PROGRAM_PYTHON = "/usr/bin/python3"
PROGRAM = REPO / "bench" / "tiny_http_server.py"
PLAYBOOKS = REPO / "recovery_playbooks"

POLL_INTERVAL_S = 0.005
PROBE_TIMEOUT_S = 0.25
RECOVERY_DEADLINE_S = 30.0
READY_TIMEOUT_S = 30.0
SETTLE_S = 0.5
GOAL_MEDIAN_S = 0.3


class BenchError(Exception):
    """A problem that ends the run with a clear message."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def program_argv(port: int) -> list[str]:
    return [PROGRAM_PYTHON, "-S", str(PROGRAM), str(port)]


def answers_200(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.02)


class Supervisor(Protocol):
    name: str
    port: int

    def pid(self) -> int: ...

    def settled(self) -> bool: ...

    def stop(self) -> None: ...


# medic ----------------------------------------------------------------------------


class Medic:
    name = "medic (process: + restart-process)"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.api = f"http://127.0.0.1:{free_port()}"
        self.workdir = workdir
        self.log_path = workdir / "medic.log"
        config = workdir / "medic.yaml"
        config.write_text(self._config())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIC_", "NOTIFY_"))}
        env["PYTHONPATH"] = str(REPO / "daemon")
        argv = [str(VENV_PYTHON), "-m", "medic", "run", "--config", str(config)]
        argv += ["--state-dir", str(workdir / "state"), "--log-format", "json"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        wait_until(self._api_up, READY_TIMEOUT_S, "medic's API")

    def _config(self) -> str:
        return f"""
api: {{listen: {self.api.removeprefix("http://")}}}
monitoring:
  health_check_interval: 5s
  timeout: 1s
  recovery: {{max_attempts: 1000, window: 10m}}
playbooks_dir: {PLAYBOOKS}
services:
  web:
    check: {{type: http, url: "http://127.0.0.1:{self.port}/", expect_status: [200]}}
    process: {{command: {json.dumps(program_argv(self.port))}, stop_timeout: 2s}}
"""

    def _get(self, path: str) -> Any:
        host, port = self.api.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def _api_up(self) -> bool:
        if self.proc.poll() is not None:
            raise BenchError(f"medic exited with {self.proc.returncode}; see {self.log_path}")
        try:
            return bool(self._get("/api/v1/health"))
        except OSError:
            return False

    def pid(self) -> int:
        return int(self._get("/api/v1/services/web")["process"]["pid"])

    def settled(self) -> bool:
        body = self._get("/api/v1/services/web")
        running = body["process"]["alive"]
        return bool(running and body["status"] == "healthy" and not body["recovery_running"])

    def recoveries(self) -> dict[str, int]:
        rows = self._get("/api/v1/recoveries?service=web&limit=1000")["recoveries"]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
        return counts

    def stop(self) -> None:
        _terminate(self.proc)


# supervisord ------------------------------------------------------------------------


class Supervisord:
    name = "supervisord (autorestart=true)"

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("supervisord")
        if binary is None:
            raise BenchError("supervisord is not installed: apt-get install supervisor")
        self.port = free_port()
        self.rpc_port = free_port()
        config = workdir / "supervisord.conf"
        config.write_text(self._config(workdir))
        self.log_path = workdir / "supervisord.log"
        self.proc = subprocess.Popen(
            [binary, "-n", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.rpc_port}/RPC2")
        wait_until(self.settled, READY_TIMEOUT_S, "supervisord's program RUNNING")

    def _config(self, workdir: Path) -> str:
        return f"""
[supervisord]
nodaemon=true
logfile={workdir}/supervisord.log
pidfile={workdir}/supervisord.pid
childlogdir={workdir}

[inet_http_server]
port=127.0.0.1:{self.rpc_port}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:web]
command={" ".join(program_argv(self.port))}
autorestart=true
redirect_stderr=true
stdout_logfile={workdir}/web-supervisord.log
"""

    def _info(self) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise BenchError(f"supervisord exited with {self.proc.returncode}")
        info: dict[str, Any] = self.rpc.supervisor.getProcessInfo("web")  # type: ignore[assignment]
        return info

    def pid(self) -> int:
        return int(self._info()["pid"])

    def settled(self) -> bool:
        try:
            return bool(self._info()["statename"] == "RUNNING")
        except OSError:
            return False

    def stop(self) -> None:
        _terminate(self.proc)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# rounds ---------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    times: list[float] = field(default_factory=list)

    def stats(self) -> dict[str, float | int]:
        times = sorted(self.times)
        return {
            "n": len(times),
            "median": statistics.median(times),
            "p90": statistics.quantiles(times, n=10, method="inclusive")[8],
            "mean": statistics.fmean(times),
            "min": times[0],
            "max": times[-1],
        }


def one_round(target: Supervisor) -> float:
    wait_until(
        lambda: target.settled() and answers_200(target.port), READY_TIMEOUT_S, "a settled program"
    )
    time.sleep(SETTLE_S)
    old = target.pid()
    started = time.perf_counter()
    os.kill(old, signal.SIGKILL)
    deadline = started + RECOVERY_DEADLINE_S
    while not answers_200(target.port):
        if time.perf_counter() > deadline:
            raise BenchError(f"{target.name}: no HTTP 200 within {RECOVERY_DEADLINE_S:g}s")
        time.sleep(POLL_INTERVAL_S)
    elapsed = time.perf_counter() - started
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.waitpid(old, os.WNOHANG)  # not ours; the supervisor reaps it
    return elapsed


def run(rounds: int, workdir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    medic_dir, super_dir = workdir / "medic", workdir / "supervisord"
    medic_dir.mkdir()
    super_dir.mkdir()
    targets: list[Any] = []
    try:
        medic = Medic(medic_dir)
        targets.append(medic)
        supervisord = Supervisord(super_dir)
        targets.append(supervisord)
        series = {t.name: Series(t.name) for t in targets}
        for index in range(rounds):
            for target in targets:
                seconds = one_round(target)
                series[target.name].times.append(seconds)
                progress(
                    f"round {index + 1:2d}/{rounds} {target.name:32s} {seconds * 1000:7.1f} ms"
                )
        wait_until(medic.settled, READY_TIMEOUT_S, "medic's last recovery")
        return {
            "series": {name: {**s.stats(), "times": s.times} for name, s in series.items()},
            "medic_recoveries": medic.recoveries(),
        }
    finally:
        for target in reversed(targets):
            target.stop()


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    version = subprocess.run(
        ["supervisord", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "os": _os_name(),
        "kernel": platform.release(),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "program_python": subprocess.run(
            [PROGRAM_PYTHON, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "supervisord": version,
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def table(result: dict[str, Any]) -> str:
    lines = [
        "| supervisor | n | median | p90 | mean | min | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in result["series"].items():
        figures = " | ".join(
            f"{s[k] * 1000:.0f} ms" for k in ("median", "p90", "mean", "min", "max")
        )
        lines.append(f"| {name} | {s['n']} | {figures} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="kills per supervisor (>= 20)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="medic-mttr-process-") as tmp:
        try:
            result = run(args.rounds, Path(tmp), lambda line: print(line, file=sys.stderr))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
    result["machine"] = machine()
    result["date"] = started.isoformat(timespec="seconds")
    result["command"] = " ".join(["bench/mttr_process.py", *(argv or sys.argv[1:])])
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(table(result))
    medic_median = next(iter(result["series"].values()))["median"]
    verdict = "met" if medic_median < GOAL_MEDIAN_S else "NOT met"
    goal = f"goal < {GOAL_MEDIAN_S * 1000:.0f} ms {verdict}"
    print(f"\nmedic median {medic_median * 1000:.0f} ms: {goal}")
    print(f"medic recoveries: {result['medic_recoveries']}")
    print(f"machine: {result['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
