"""MTTR bench for the faults Docker's restart policy never sees: wrong answers
(HTTP 404) and a hung container (``docker pause``); medic against Monit, same run.

Each tool watches its own copy of the same container (busybox httpd, its
``/www/healthz`` written by the container's command at every start, Docker's
``--init`` so that SIGTERM stops it), with an idle companion container on the
same bridge (a network of the run's own, see ``mttr.bench_network``):

    medic   1 s check interval, 1 s timeout, failure_threshold 1, the shipped
            ``restart-container`` playbook (a 404 is restarted, a pause unpaused)
    Monit   Debian's monit, ``set daemon 1`` (a 1 s cycle), ``if failed port P
            protocol http request "/healthz" status = 200 with timeout 1 seconds
            then exec "docker restart NAME"`` (Monit acts after one failed cycle)

Faults: ``404``: ``docker exec NAME rm /www/healthz`` (a restart writes it
again); ``pause``: ``docker pause NAME``. The clock starts just before the
fault's API call (the call's own time counts against both tools) and stops at
the first HTTP 200 on the published port (overlapping probes, a new one every
5 ms). Each fault lands a set time (the round's phase, 0-0.95 s, the same for
both tools in a round and the same in every run) after the tool's own check
reached the container (httpd logs each answer): with 1 s cycles the phase
decides up to a second, which 10 random draws per tool would not even out.
Rounds take turns (medic 404, Monit 404, medic pause, Monit pause) so that the
machine's drift hits them alike; all rounds count.

For medic, each round prints where the time went (seconds after the fault):
the failing check (start and its duration, classification included), the
recovery's start (the decision), the ``restart_container`` step (its start is
the Docker call; its duration Docker's work), Docker's own events (``kill``,
``die``, ``start``, ``unpause``) and the first 200. ``check->call`` is the
time from the failing check's end to the Docker call: medic's own share.

Run as root from the repository root:

    .venv/bin/python bench/mttr.py --faults [--rounds N] [--json]
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from mttr import (
    IMAGE,
    LABEL,
    NAME_PREFIX,
    BenchError,
    Medic,
    _p90,
    answers_200,
    bench_network,
    connect_docker,
    free_port,
    machine,
    remove_run,
    stop_process,
    time_to_200,
    wait_until,
)

COMMAND = ["sh", "-c", "echo ok > /www/healthz && exec httpd -f -v -p 8080 -h /www"]
"""``-v``: httpd logs each answer, which tells the bench when a tool's check came."""
MONIT = shutil.which("monit") or "/usr/bin/monit"
DOCKER_CLI = shutil.which("docker") or "/usr/bin/docker"
SETTLE_S = 2.5
"""Healthy this long (two cycles and a half) before the next fault."""
DEADLINE_S = 30.0
EVENTS = ("kill", "die", "stop", "start", "pause", "unpause", "restart")
FAULTS = ("404", "pause")
TOOLS = ("medic", "monit")
CHECK_SEEN_TIMEOUT_S = 5.0
LOG_SETTLE_S = 0.2
PHASE_SEED = 15
PHASE_SPAN_S = 0.95
"""Phases spread over the 1 s cycle (a check's own time is the rest)."""
"""The same fault phases in every run, for every tool."""


@dataclass
class Round:
    seconds: float | None
    marks: dict[str, float | None] = field(default_factory=dict)
    note: str = ""


@dataclass
class Scenario:
    tool: str
    fault: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.tool}, {self.fault}"

    def times(self) -> list[float]:
        return [r.seconds for r in self.rounds if r.seconds is not None]


class EventLog:
    """Docker's events for this run's containers, with the wall-clock time of each."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        filters = {"type": "container", "event": list(EVENTS), "label": f"{LABEL}={run_id}"}
        self._stream: Any = client.api.events(decode=True, filters=filters)
        self._events: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="faults-events", daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends in an error when closed
            for raw in self._stream:
                name = str(raw.get("Actor", {}).get("Attributes", {}).get("name", ""))
                with self._lock:
                    self._events.append((name, str(raw.get("Action")), raw["timeNano"] / 1e9))

    def since(self, name: str, after: float) -> dict[str, float]:
        """Seconds from ``after`` to the first event of each kind of ``name``."""
        time.sleep(0.2)  # the stream may trail the HTTP answer a little
        marks: dict[str, float] = {}
        with self._lock:
            for who, action, at in self._events:
                if who == name and at >= after and action not in marks:
                    marks[action] = round(at - after, 4)
        return marks

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


class FaultMedic(Medic):
    def config_text(self) -> str:
        return (
            f"api: {{listen: 127.0.0.1:{self.api_port}}}\n"
            "monitoring:\n"
            "  health_check_interval: 1s\n"
            "  timeout: 1s\n"
            "  failure_threshold: 1\n"
            "  recovery: {max_attempts: 1000, window: 1m, backoff: {initial: 0s}}\n"
            f"playbooks_dir: {self.source / 'recovery_playbooks'}\n"
            "services:\n"
            "  web:\n"
            f'    check: {{type: http, url: "http://127.0.0.1:{self.web_port}/healthz"}}\n'
            f"    container: {self.container}\n"
        )


class Monit:
    """Debian's monit in the foreground, with its own control file, state and log."""

    def __init__(self, workdir: Path, container: str, port: int) -> None:
        self.dir = workdir
        self.container = container
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def control_file(self) -> str:
        d = self.dir
        return (
            "set daemon 1\n"
            f"set logfile {d}/monit.log\nset pidfile {d}/monit.pid\n"
            f"set idfile {d}/monit.id\nset statefile {d}/monit.state\n"
            "check host web with address 127.0.0.1\n"
            f'  if failed port {self.port} protocol http request "/healthz" status = 200\n'
            f'     with timeout 1 seconds then exec "{DOCKER_CLI} restart {self.container}"\n'
        )

    def start(self) -> None:
        rc = self.dir / "monitrc"
        rc.write_text(self.control_file())
        rc.chmod(0o600)
        subprocess.run([MONIT, "-t", "-c", str(rc)], check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [MONIT, "-I", "-c", str(rc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        stop_process(self.proc, grace_s=10)


# one target: a container and the tool that watches it --------------------------------


@dataclass
class Target:
    tool: str
    container: Container
    port: int
    events: EventLog
    medic: Medic | None = None
    seen_recovery_id: int = 0

    @property
    def name(self) -> str:
        return self.container.name or ""

    def stable(self) -> bool:
        self.container.reload()
        if self.container.status != "running" or not answers_200(self.port):
            return False
        if self.medic is None:
            return True
        try:
            service = self.medic.service()
        except OSError:
            return False
        return service.get("status") == "healthy" and not service.get("recovering")

    def wait_stable(self) -> None:
        for _ in range(2):  # stable, and still so a settle later
            wait_until(f"{self.name} is back and stable", self.stable, 60)
            time.sleep(SETTLE_S)
        wait_until(f"{self.name} is back and stable", self.stable, 60)


def await_check(target: Target) -> bool:
    """Wait for the tool's next check to reach the container (httpd logs its answer).

    The fault then lands the same time after a check for both tools (the round's
    phase), so that where it falls in a 1 s cycle, a 0-1 s lottery, is no longer
    what decides a 10-round comparison."""
    time.sleep(LOG_SETTLE_S)  # the bench's own last probe is in the log before we follow it
    stream: Any = target.container.logs(stream=True, follow=True, tail=0)
    seen = threading.Event()

    def read() -> None:
        with contextlib.suppress(Exception):  # the stream ends in an error when closed
            for chunk in stream:
                if b"response:" in chunk:
                    seen.set()
                    return

    threading.Thread(target=read, name="faults-check-seen", daemon=True).start()
    came = seen.wait(CHECK_SEEN_TIMEOUT_S)
    stream.close()
    return came


def inject(target: Target, fault: str) -> None:
    if fault == "404":
        result = target.container.exec_run(["rm", "-f", "/www/healthz"])
        if result.exit_code != 0:
            raise BenchError(f"could not remove /www/healthz in {target.name}: {result.output!r}")
    else:
        target.container.pause()


def run_round(target: Target, fault: str, phase_s: float) -> Round:
    target.wait_stable()
    target.container.reload()
    before = target.container.attrs["State"]["StartedAt"]
    if not await_check(target):
        waited = f"{CHECK_SEEN_TIMEOUT_S:g}s"
        raise BenchError(f"no check of {target.tool} reached {target.name} in {waited}")
    time.sleep(phase_s)
    started, wall = time.perf_counter(), time.time()
    inject(target, fault)
    seconds = time_to_200(target.port, started, DEADLINE_S)
    rnd = Round(seconds=seconds)
    target.container.reload()
    if seconds is None:
        rnd.note = f"no HTTP 200 within {DEADLINE_S:g}s"
        with contextlib.suppress(docker.errors.DockerException):
            if target.container.status == "paused":
                target.container.unpause()
            target.container.restart(timeout=2)
    elif fault == "404" and target.container.attrs["State"]["StartedAt"] == before:
        rnd.seconds, rnd.note = None, "answered 200 without a restart: the fault did not take"
    rnd.marks.update(target.events.since(target.name, wall))
    if target.medic is not None:
        rnd.marks.update(medic_marks(target, wall))
    rnd.marks["http_200"] = seconds
    rnd.marks["phase"] = phase_s
    return rnd


def medic_marks(target: Target, wall: float) -> dict[str, float | None]:
    """Where medic's time went, in seconds after the fault, from its recovery record."""
    assert target.medic is not None
    wait_until("medic's recovery is finished", lambda: target.stable(), 60)
    records = target.medic.recoveries_after(target.seen_recovery_id)
    if not records:
        return {}
    target.seen_recovery_id = max(int(r["id"]) for r in records)
    rec = records[0]
    facts, step = rec.get("facts") or {}, (rec.get("steps") or [{}])[0]
    check_start = _at(facts.get("checked_at"), wall)
    check_end = None if check_start is None else check_start + float(facts["check_seconds"])
    call = _at(step.get("started_at"), wall)
    return {
        "check_start": check_start,
        "check_end": check_end,
        "recovery": _at(rec.get("started_at"), wall),
        "call": call,
        "call_end": None if call is None else call + float(step.get("duration_seconds") or 0),
        "check_to_call_ms": None if None in (call, check_end) else (call - check_end) * 1000,
        "recoveries": float(len(records)),
    }


def _at(iso: Any, wall: float) -> float | None:
    if not iso:
        return None
    return round(datetime.fromisoformat(str(iso)).timestamp() - wall, 4)


# the run ----------------------------------------------------------------------------------


class Bench:
    def __init__(
        self, client: docker.DockerClient, workdir: Path, rounds: int, source: Path = Path()
    ) -> None:
        self.source = source if source != Path() else REPO
        self.client = client
        self.workdir = workdir
        self.rounds = rounds
        self.run_id = os.urandom(4).hex()
        self.network = bench_network(client, self.run_id)
        self.events = EventLog(client, self.run_id)
        self.scenarios = [Scenario(tool, fault) for fault in FAULTS for tool in TOOLS]

    def container(self, role: str, port: int | None = None) -> Container:
        kwargs: dict[str, Any] = {"command": ["sleep", "100000"]}
        if port is not None:
            kwargs = {"command": COMMAND, "ports": {"8080/tcp": ("127.0.0.1", port)}}
        container: Container = self.client.containers.run(
            IMAGE,
            name=f"{NAME_PREFIX}-{self.run_id}-{role}",
            detach=True,
            init=True,
            labels={LABEL: self.run_id},
            network=self.network,
            **kwargs,
        )
        return container

    @contextlib.contextmanager
    def targets(self) -> Iterator[dict[str, Target]]:
        medic_port, monit_port = free_port(), free_port()
        self.container("idle")
        web_medic = self.container("medic-web", medic_port)
        web_monit = self.container("monit-web", monit_port)
        for port in (medic_port, monit_port):
            wait_until("the web containers answer", lambda p=port: answers_200(p), 30)
        medic = FaultMedic(self._dir("medic"), self.source, web_medic.name or "", medic_port)
        monit = Monit(self._dir("monit"), web_monit.name or "", monit_port)
        try:
            medic.start()
            monit.start()
            yield {
                "medic": Target("medic", web_medic, medic_port, self.events, medic),
                "monit": Target("monit", web_monit, monit_port, self.events),
            }
        finally:
            medic.stop()
            monit.stop()

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir()
        return path

    def run(self) -> None:
        with self.targets() as targets:
            for target in targets.values():
                target.wait_stable()
            if targets["medic"].medic is not None:
                targets["medic"].seen_recovery_id = targets["medic"].medic.last_recovery_id()
            phases = random.Random(PHASE_SEED)
            for index in range(1, self.rounds + 1):
                phase_s = round(phases.uniform(0.0, PHASE_SPAN_S), 3)
                for scenario in self.scenarios:
                    rnd = run_round(targets[scenario.tool], scenario.fault, phase_s)
                    scenario.rounds.append(rnd)
                    print_round(scenario, index, rnd)

    def cleanup(self) -> None:
        remove_run(self.client, self.run_id)
        self.events.close()


REPO = Path(__file__).resolve().parent.parent
STAGES = ("check_start", "check_end", "recovery", "call", "call_end")
DOCKER_STAGES = ("kill", "die", "start", "unpause")


def _fmt(value: float | None, ms: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if ms else f"{value:.3f}"


def print_round(scenario: Scenario, index: int, rnd: Round) -> None:
    took = f"{rnd.seconds:.3f}s" if rnd.seconds is not None else "FAILED"
    marks = " ".join(
        f"{k}={_fmt(v, k.endswith('_ms'))}" for k, v in rnd.marks.items() if k != "http_200"
    )
    note = f" ({rnd.note})" if rnd.note else ""
    print(f"  {scenario.label} #{index}: {took} ({marks}){note}", file=sys.stderr, flush=True)


# reporting -------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mark_median(scenario: Scenario, mark: str) -> float | None:
    return _median([v for r in scenario.rounds if (v := r.marks.get(mark)) is not None])


def table(scenarios: list[Scenario]) -> str:
    lines = [
        "| tool, fault | n | median s | p90 s | min s | max s | median / Monit |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        times = sorted(s.times())
        monit = next(o for o in scenarios if o.tool == "monit" and o.fault == s.fault)
        ratio = "-"
        if s.tool != "monit" and times and monit.times():
            ratio = f"{statistics.median(times) / statistics.median(monit.times()):.2f}x"
        failed = len(s.rounds) - len(times)
        n = f"{len(times)}" + (f" ({failed} failed)" if failed else "")
        cells = [_fmt(statistics.median(times)) if times else "-"]
        cells += [_fmt(_p90(times)) if times else "-"]
        cells += [_fmt(times[0]) if times else "-", _fmt(times[-1]) if times else "-"]
        lines.append(f"| {s.label} | {n} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def stages(scenarios: list[Scenario]) -> str:
    head = ["failing check starts", "check ends", "recovery starts", "Docker call"]
    head += ["call returns", "check->call ms", *(f"Docker `{e}`" for e in DOCKER_STAGES)]
    lines = ["| tool, fault | " + " | ".join([*head, "HTTP 200"]) + " |"]
    lines.append("|---" * (len(head) + 2) + "|")
    for s in scenarios:
        cells = [_fmt(_mark_median(s, m)) for m in STAGES]
        cells.append(_fmt(_mark_median(s, "check_to_call_ms"), ms=True))
        cells += [_fmt(_mark_median(s, e)) for e in DOCKER_STAGES]
        cells.append(_fmt(_mark_median(s, "http_200")))
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(bench: Bench, as_json: bool) -> None:
    info = machine(bench.client)
    if as_json:
        out = {"machine": info, "rounds": bench.rounds, "scenarios": []}
        for s in bench.scenarios:
            out["scenarios"].append({**asdict(s), "label": s.label})  # type: ignore[attr-defined]
        print(json.dumps(out, indent=2))
        return
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"{bench.rounds} rounds per scenario, all counted\n")
    print(table(bench.scenarios))
    print("\nWhere the time went (medians, seconds after the fault; medic's from its records)")
    print(stages(bench.scenarios))
    for s in bench.scenarios:
        for i, rnd in enumerate(s.rounds, 1):
            if rnd.note:
                print(f"- {s.label} round {i}: {rnd.note}")


def main(argv: list[str]) -> int:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 10
    if not os.access(MONIT, os.X_OK):
        print(f"mttr: {MONIT} missing: bash scripts/setup-test-env.sh", file=sys.stderr)
        return 2
    client = connect_docker()
    workdir = Path(tempfile.mkdtemp(prefix="medic-faults-"))
    source = Path(argv[argv.index("--source") + 1]) if "--source" in argv else REPO
    bench = Bench(client, workdir, rounds, source)
    try:
        bench.run()
        report(bench, "--json" in argv)
        return 0
    except BenchError as exc:
        print(f"mttr: {exc}", file=sys.stderr)
        return 2
    finally:
        bench.cleanup()
        if "--keep" in argv:
            print(f"mttr: work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
