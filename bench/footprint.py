"""Idle footprint: medic on its shipped default config beside Monit, same run.

For each round, medic is exec'd on ``control-plane/config.yaml`` (as shipped;
only its API port is moved to a free one, its playbooks are the shipped ones
and its state dir a temp dir) with ``NOTIFY_SOCKET`` pointing at a datagram
socket of this bench, and the clock runs from just before the exec to

* ``READY=1`` arriving on that socket (systemd's notion of "started"),
* the first ``200`` from ``GET /api/v1/health`` (polled every 5 ms);

and the CPU time (user + system, 10 ms ticks) medic had used when ``READY=1``
came: on a busy host the wall-clock times above mostly measure waiting for a
core, this one barely moves;

then, 3 s later (both default checks done, the loop idle), its RSS (``VmRSS``)
and ``VmHWM``. The variants, one after the other in each round:

* ``medic``: as ``medic run`` runs it (uvloop);
* ``medic, asyncio loop``: ``MEDIC_EVENT_LOOP=asyncio``;
* ``medic, no rich``: uvloop, with ``rich`` made unimportable. structlog loads
  rich when it is installed (for pretty tracebacks medic does not use); in this
  checkout's venv it comes in with schemathesis, a test dependency, so an
  install of medic alone does not have it.

Monit 5 (Debian's ``monit``) runs the same two checks (the host's disk,
memory and load; an HTTP check of medic's API port) with its web interface on
a free port, in the foreground (``-I``); its RSS is read 3 s after its HTTP
interface first answers.

    .venv/bin/python bench/footprint.py [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
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
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
SOURCE = [REPO]
"""The tree whose daemon/ runs (``--source``: e.g. a ``git archive`` of an older commit)."""
DEFAULT_CONFIG = REPO / "control-plane" / "config.yaml"
SETTLE_S = 3.0
START_TIMEOUT_S = 30.0
NO_RICH = (
    "import sys; sys.modules['rich'] = None; sys.argv[0] = 'medic';"
    " from medic.cli.main import main; sys.exit(main())"
)


@dataclass
class Sample:
    who: str
    ready_s: float | None
    api_s: float
    cpu_ready_s: float | None
    """CPU time (user + system) the process had used when READY=1 arrived:
    what start-up costs, nearly independent of a busy host's waits."""
    rss_mib: float
    hwm_mib: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for {pid}")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, t0: float, proc: subprocess.Popen[bytes]) -> float:
    while time.monotonic() - t0 < START_TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url, timeout=1) as response,
        ):
            if response.status == 200:
                return time.monotonic() - t0
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer within {START_TIMEOUT_S:g}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def medic_config(workdir: Path, port: int) -> Path:
    text = DEFAULT_CONFIG.read_text().replace("127.0.0.1:8321", f"127.0.0.1:{port}")
    text = text.replace("../recovery_playbooks", str(REPO / "recovery_playbooks"))
    path = workdir / "medic.yaml"
    path.write_text(text)
    return path


def run_medic(workdir: Path, who: str) -> Sample:
    port = free_port()
    config = medic_config(workdir, port)
    sock_path = workdir / "notify.sock"
    sock_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    notify.setblocking(False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env |= {"PYTHONPATH": str(SOURCE[0] / "daemon"), "NOTIFY_SOCKET": str(sock_path)}
    head = [str(PYTHON), "-m", "medic"]
    if who == "medic, asyncio loop":
        env["MEDIC_EVENT_LOOP"] = "asyncio"
    elif who == "medic, no rich":
        head = [str(PYTHON), "-c", NO_RICH]
    state = workdir / f"state-{port}"
    cmd = [*head, "run", "--config", str(config), "--state-dir", str(state)]
    cmd += ["--log-format", "json"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready_s = cpu_ready_s = None
        url = f"http://127.0.0.1:{port}/api/v1/health"
        while ready_s is None and time.monotonic() - t0 < START_TIMEOUT_S:
            with contextlib.suppress(BlockingIOError):
                if b"READY=1" in notify.recv(4096):
                    ready_s = time.monotonic() - t0
                    cpu_ready_s = cpu_s(proc.pid)
            time.sleep(0.002)
        api_s = wait_http(url, t0, proc)  # the API listens before READY=1 is sent
        time.sleep(SETTLE_S)
        rss, hwm = status_mib(proc.pid, "VmRSS"), status_mib(proc.pid, "VmHWM")
    finally:
        stop(proc)
        notify.close()
    return Sample(who, ready_s, api_s, cpu_ready_s, rss, hwm)


MONITRC = """set daemon 1
set logfile {workdir}/monit.log
set idfile {workdir}/monit.id
set statefile {workdir}/monit.state
set pidfile {workdir}/monit.pid
set httpd port {port} and use address 127.0.0.1
    allow 127.0.0.1
check system localhost
    if loadavg (1min) per core > 4 then alert
    if memory usage > 95% then alert
check filesystem rootfs with path /
    if space usage > 95% then alert
check host medic-api with address 127.0.0.1
    if failed port {api_port} protocol http request "/api/v1/health" then alert
"""


def run_monit(workdir: Path) -> Sample:
    monit = shutil.which("monit")
    if monit is None:
        raise RuntimeError("monit is not installed: run scripts/setup-test-env.sh")
    port = free_port()
    rc = workdir / "monitrc"
    rc.write_text(MONITRC.format(workdir=workdir, port=port, api_port=free_port()))
    rc.chmod(0o600)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [monit, "-I", "-c", str(rc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        api_s = wait_http(f"http://127.0.0.1:{port}/", t0, proc)
        time.sleep(SETTLE_S)
        rss, hwm = status_mib(proc.pid, "VmRSS"), status_mib(proc.pid, "VmHWM")
    finally:
        stop(proc)
    return Sample("monit", None, api_s, None, rss, hwm)


WHO = ("medic", "medic, asyncio loop", "medic, no rich", "monit")


def run(rounds: int, who_runs: tuple[str, ...] = WHO) -> list[Sample]:
    samples = []
    with tempfile.TemporaryDirectory(prefix="medic-footprint-") as tmp:
        workdir = Path(tmp)
        for _ in range(rounds):
            for who in who_runs:
                sample = run_monit(workdir) if who == "monit" else run_medic(workdir, who)
                samples.append(sample)
    return samples


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def render(samples: list[Sample], rounds: int) -> str:
    def fmt(value: float | None, unit: str, scale: float = 1.0) -> str:
        return "-" if value is None else f"{value * scale:.{0 if scale > 1 else 1}f}{unit}"

    lines = [
        "| who | n | RSS median (min-max) | VmHWM median | exec -> READY=1 | exec -> API 200"
        " | CPU used by READY=1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    monit_rss = _median([s.rss_mib for s in samples if s.who == "monit"])
    for who in dict.fromkeys(s.who for s in samples):
        mine = [s for s in samples if s.who == who]
        rss = [s.rss_mib for s in mine]
        ready = _median([s.ready_s for s in mine])
        api = _median([s.api_s for s in mine])
        median_rss = statistics.median(rss)
        ratio = f", {median_rss / monit_rss:.1f}x Monit" if monit_rss and who != "monit" else ""
        lines.append(
            f"| {who} | {len(mine)} | {median_rss:.1f} MiB"
            f" ({min(rss):.1f}-{max(rss):.1f}{ratio})"
            f" | {_median([s.hwm_mib for s in mine]):.1f} MiB"
            f" | {fmt(ready, ' ms', 1000)} | {fmt(api, ' ms', 1000)}"
            f" | {fmt(_median([s.cpu_ready_s for s in mine]), ' ms', 1000)} |"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines.append("")
    lines.append(
        f"{rounds} rounds; {os.cpu_count()} CPUs, Linux {platform.release()}, Python"
        f" {platform.python_version()}; load average {load};"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--source", type=Path, default=REPO, help="tree whose daemon/ to run")
    parser.add_argument("--who", default=";".join(WHO), help="variants to run, ';'-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    SOURCE[0] = args.source
    who = tuple(w for w in WHO if w in args.who.split(";"))
    samples = run(args.rounds, who)
    if args.json:
        print(json.dumps([asdict(s) for s in samples], indent=2))
    else:
        print(render(samples, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
