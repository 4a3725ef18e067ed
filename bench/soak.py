"""Soak: medic under random faults for a long while, every fault checked one by one.

The stand (``bench/soak_stand.py``): 10 busybox httpd containers, 3 ``process:``
services and a PostgreSQL cluster of the soak's own, all watched by one medic
(1 s checks, the shipped playbooks, max_attempts 3 per 2 m, reset_after 10 s,
circuit_cooldown 0). Two workers inject faults at random (seeded RNG, the seed
is printed), taking the kinds from a shuffled deck so that each kind comes up
as often as the others, each on a target that is not already faulted and has
been healthy for reset_after since its last fault:

    host SIGKILL       SIGKILL of a container's main process from the host  -> healed (1 start)
    docker kill        ``docker kill`` (a crash, per the README)            -> healed (1 start)
    docker pause       ``docker pause``                                     -> healed (unpaused)
    wrong answer       /www/healthz removed inside the container: HTTP 404  -> healed (1 start)
    memory over limit  the container's main shell allocates past --memory   -> healed (1 start)
    crash loop         the container exits 2 s after every start            -> held: circuit open
                                                                             after max_attempts
    docker stop        an operator's stop                                   -> held: left stopped
    postgres stopped   ``pg_ctl stop -m fast`` of the soak's cluster        -> healed (start)
    process SIGKILL    SIGKILL of a ``process:`` service's program          -> healed

After a held fault the soak plays the operator: it removes the cause, starts
the container itself and (crash loop) resets the circuit. Each fault's window
runs from its injection until medic shows the service healthy with no
recovery running. At the end:

- every fault ended as expected (healed: a ``succeeded`` recovery; held: as above);
- Docker's event stream: every ``start`` of a container falls in a fault
  window of that container (and is medic's, not the soak's own), and each
  healed crash shows exactly one start; no other restart of a healthy service;
- medic's history (``/api/v1/recoveries``): every recovery falls in a fault
  window of its service, every fault's recoveries seen live are still there,
  ``total`` matches the rows and ``medic_recoveries_total``;
- the programs of untouched services kept their PIDs;
- medic's RSS (``/proc/PID/status``), open fds (``/proc/PID/fd``) and asyncio
  tasks (``/api/v1/health``'s ``asyncio_tasks``) between a quiet moment after
  warm-up and a quiet moment at the end: RSS grows by less than 5 MiB, fds
  and tasks by at most 2 (the floor of five samples 1 s apart each time).

MTTR of a healed fault: injection -> the end of medic's succeeded recovery
(detection included). Run as root (host SIGKILL, runuser postgres), from the
repository root:

    /work/main/.venv/bin/python bench/soak.py [--minutes 30] [--seed N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak_stand import (
    MAX_ATTEMPTS,
    REPO,
    RESET_AFTER_S,
    Sample,
    SoakError,
    Stand,
    Target,
    answers,
    sample,
)

HEAL_DEADLINE_S = 120.0
HELD_OBSERVE_S = 4.0
"""How long a held fault is watched for medic leaving it alone."""
COOLDOWN_S = RESET_AFTER_S + 2.0
RSS_GROWTH_MAX_KIB = 5 * 1024
FD_TASK_SLACK = 2

CONTAINER_KINDS = (
    "host SIGKILL",
    "docker kill",
    "docker pause",
    "wrong answer",
    "memory over limit",
    "crash loop",
    "docker stop",
)
KINDS = (*CONTAINER_KINDS, "postgres stopped", "process SIGKILL")
HELD = {"crash loop": "circuit open", "docker stop": "left stopped by operator"}
ONE_START = {"host SIGKILL", "docker kill", "wrong answer", "memory over limit"}


@dataclass
class Fault:
    n: int
    kind: str
    service: str
    injected_at: float
    expect: str
    ended_at: float | None = None
    verdict: str = "pending"
    detail: str = ""
    mttr_s: float | None = None
    recovery_ids: list[int] = field(default_factory=list)
    medic_starts: int = 0
    own_starts: list[tuple[float, float]] = field(default_factory=list)

    def window(self) -> tuple[float, float]:
        return self.injected_at - 0.5, (self.ended_at or time.time()) + 0.5

    def covers(self, at: float) -> bool:
        start, end = self.window()
        return start <= at <= end


def _iso(ts: str | None) -> float | None:
    return None if ts is None else datetime.fromisoformat(ts).timestamp()


class Soak:
    def __init__(self, stand: Stand, seconds: float, seed: int, warmup_s: float) -> None:
        self.stand = stand
        self.medic = stand.medic
        self.seconds = seconds
        self.warmup_s = warmup_s
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults: list[Fault] = []
        self.samples: list[Sample] = []
        self.quiet: dict[str, Sample] = {}
        self.fd_kinds: dict[str, dict[str, int]] = {}
        self.problems: list[str] = []
        self.pids: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._deck: list[str] = []
        self._busy: set[str] = set()
        self._free_at: dict[str, float] = {}
        self._pause = threading.Event()
        self._stop = threading.Event()
        self.started_at = time.time()
        self.first_deck_done = threading.Event()
        self._dealt = 0

    # choosing ---------------------------------------------------------------------

    def _targets_for(self, kind: str) -> list[Target]:
        want = {"postgres stopped": "postgres", "process SIGKILL": "process"}.get(kind, "container")
        return [t for t in self.stand.targets if t.kind == want]

    def _take(self) -> tuple[str, Target] | None:
        with self._lock:
            if not self._deck:
                self._deck = list(KINDS)
                self.rng.shuffle(self._deck)
            now = time.monotonic()
            for kind in list(self._deck):
                free = [
                    t
                    for t in self._targets_for(kind)
                    if t.service not in self._busy and self._free_at.get(t.service, 0) <= now
                ]
                if free:
                    self._deck.remove(kind)
                    self._dealt += 1
                    if self._dealt >= len(KINDS):
                        self.first_deck_done.set()
                    target = self.rng.choice(free)
                    self._busy.add(target.service)
                    return kind, target
        return None

    def _release(self, target: Target) -> None:
        with self._lock:
            self._busy.discard(target.service)
            self._free_at[target.service] = time.monotonic() + COOLDOWN_S

    def busy(self) -> int:
        with self._lock:
            return len(self._busy)

    # the workers ---------------------------------------------------------------------

    def worker(self) -> None:
        while not self._stop.is_set():
            if self._pause.is_set():
                time.sleep(0.2)
                continue
            taken = self._take()
            if taken is None:
                time.sleep(0.5)
                continue
            kind, target = taken
            try:
                self.run_fault(kind, target)
            finally:
                self._release(target)
            time.sleep(self.rng.uniform(0.0, 2.0))

    def run_fault(self, kind: str, target: Target) -> None:
        before = max((int(r["id"]) for r in self.medic.recoveries(target.service, 50)), default=0)
        with self._lock:
            fault = Fault(len(self.faults) + 1, kind, target.service, time.time(), "")
            fault.expect = HELD.get(kind, "healed")
            self.faults.append(fault)
        try:
            INJECT[kind](self, target, fault)
            if kind == "crash loop":
                self.await_crash_loop(target, fault, before)
            elif kind == "docker stop":
                self.await_operator_stop(target, fault, before)
            else:
                self.await_healed(target, fault, before)
        except (SoakError, OSError, ValueError) as exc:
            fault.verdict = "FAILED"
            fault.detail = f"{type(exc).__name__}: {exc}"
            self._revive(target)
        fault.ended_at = time.time()
        self._count_starts(target, fault)
        self.pids[target.service] = self._pid(target)
        _print_fault(fault)

    # verdicts --------------------------------------------------------------------

    def _new_recoveries(self, service: str, before: int) -> list[dict[str, Any]]:
        recs = [r for r in self.medic.recoveries(service, 50) if int(r["id"]) > before]
        return sorted(recs, key=lambda r: int(r["id"]))

    def _settled(self, target: Target) -> bool:
        svc = self.medic.service(target.service)
        if svc["status"] != "healthy" or svc.get("recovery_running"):
            return False
        return self._probe(target)

    def _probe(self, target: Target) -> bool:
        if target.kind == "postgres":
            with socket.create_connection(("127.0.0.1", target.port), timeout=1):
                return True
        return answers(target.url) == 200

    def await_healed(self, target: Target, fault: Fault, before: int) -> None:
        deadline = time.monotonic() + HEAL_DEADLINE_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                recs = self._new_recoveries(target.service, before)
                ended = [r for r in recs if r.get("ended_at")]
                if recs and len(ended) == len(recs) and self._settled(target):
                    fault.recovery_ids = [int(r["id"]) for r in recs]
                    ok = [r for r in recs if r["outcome"] == "succeeded"]
                    outcomes = ",".join(str(r["outcome"]) for r in recs)
                    if not ok:
                        raise SoakError(f"no succeeded recovery: {outcomes}")
                    end = _iso(ok[-1]["ended_at"]) or time.time()
                    fault.mttr_s = round(end - fault.injected_at, 3)
                    fault.verdict = "healed"
                    fault.detail = f"{len(recs)} recovery ({outcomes}) {ok[-1]['playbook']}"
                    return
            time.sleep(0.2)
        raise SoakError(f"not healed within {HEAL_DEADLINE_S:g}s")

    def await_crash_loop(self, target: Target, fault: Fault, before: int) -> None:
        deadline = time.monotonic() + HEAL_DEADLINE_S
        while self.medic.service(target.service)["circuit"] != "open":
            if time.monotonic() > deadline:
                raise SoakError(f"circuit not open within {HEAL_DEADLINE_S:g}s")
            time.sleep(0.2)
        opened = time.time()
        time.sleep(HELD_OBSERVE_S)
        recs = self._new_recoveries(target.service, before)
        fault.recovery_ids = [int(r["id"]) for r in recs]
        late = [r for r in recs if (_iso(r["started_at"]) or 0) > opened]
        if late or len(recs) != MAX_ATTEMPTS:
            raise SoakError(f"{len(recs)} recoveries ({len(late)} after the circuit opened)")
        assert target.ctl_dir is not None
        (target.ctl_dir / "crashloop").unlink()
        self._own_start(target, fault)
        # As an operator would: see it answer, then give medic its attempts back.
        deadline = time.monotonic() + 30
        while answers(target.url) != 200:
            if time.monotonic() > deadline:
                raise SoakError("the container does not answer after the operator's start")
            time.sleep(0.1)
        self.medic.post(f"/api/v1/services/{target.service}/reset")
        self._await_settled(target)
        fault.verdict = "held"
        fault.detail = f"circuit open after {len(recs)} recoveries; reset by the soak"

    def await_operator_stop(self, target: Target, fault: Fault, before: int) -> None:
        deadline = time.monotonic() + 30
        while self.medic.service(target.service)["status"] != "stopped_by_operator":
            if time.monotonic() > deadline:
                raise SoakError("not stopped_by_operator within 30s")
            time.sleep(0.1)
        time.sleep(HELD_OBSERVE_S)
        status = self.stand.containers.get(target.container).status
        recs = self._new_recoveries(target.service, before)
        if status != "exited" or recs:
            raise SoakError(f"container {status}, {len(recs)} recoveries while stopped")
        self._own_start(target, fault)
        self._await_settled(target)
        after = self._new_recoveries(target.service, before)
        if after:
            raise SoakError(f"{len(after)} recoveries after the operator's own start")
        fault.verdict = "held"
        fault.detail = "stopped_by_operator, left stopped; started again by the soak"

    def _await_settled(self, target: Target) -> None:
        deadline = time.monotonic() + HEAL_DEADLINE_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if self._settled(target):
                    return
            time.sleep(0.2)
        raise SoakError("not healthy again after the operator's start")

    def _own_start(self, target: Target, fault: Fault) -> None:
        t0 = time.time()
        self.stand.containers.get(target.container).start()
        fault.own_starts.append((t0 - 0.05, time.time() + 0.5))

    def _revive(self, target: Target) -> None:
        """After a failed fault: put the target back as it was, as an operator would."""
        with contextlib.suppress(Exception):
            if target.ctl_dir is not None:
                (target.ctl_dir / "crashloop").unlink(missing_ok=True)
            if target.container:
                container = self.stand.containers.get(target.container)
                if container.status == "paused":
                    container.unpause()
                elif container.status != "running":
                    container.start()
            self.medic.post(f"/api/v1/services/{target.service}/reset")
            self._await_settled(target)

    def _count_starts(self, target: Target, fault: Fault) -> None:
        if not target.container:
            return
        time.sleep(0.3)  # the event stream trails a little
        starts = self.stand.docker_log.between(target.container, "start", *fault.window())
        own = [s for s in starts if any(a <= s <= b for a, b in fault.own_starts)]
        fault.medic_starts = len(starts) - len(own)
        expected = {0, 1} if fault.kind == "docker pause" else None
        if fault.kind in ONE_START:
            expected = {1}
        elif fault.kind == "crash loop":
            expected = {len(fault.recovery_ids)}
        elif fault.kind == "docker stop":
            expected = {0}
        wrong = expected is not None and fault.medic_starts not in expected
        if wrong and expected is not None and fault.verdict != "FAILED":
            fault.verdict = "FAILED"
            fault.detail += f"; {fault.medic_starts} starts by medic (expected {sorted(expected)})"

    def _pid(self, target: Target) -> int | None:
        if target.kind == "postgres":
            return self.stand.pg.postmaster_pid()
        if target.kind == "process":
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                return int(self.medic.service(target.service)["process"]["pid"])
            return None
        with contextlib.suppress(Exception):
            return int(self.stand.containers.get(target.container).attrs["State"]["Pid"])
        return None

    # sampling --------------------------------------------------------------------

    def sampler(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            with contextlib.suppress(OSError, ValueError, StopIteration):
                self.samples.append(sample(self.medic))

    def quiet_sample(self, label: str) -> None:
        """Hold injection, let running faults end, take the floor of five samples."""
        self._pause.set()
        while self.busy():
            time.sleep(0.2)
        time.sleep(2.0)
        taken = []
        for _ in range(5):
            taken.append(sample(self.medic))
            time.sleep(1.0)
        tasks = [s.tasks for s in taken if s.tasks is not None]
        self.quiet[label] = Sample(
            taken[-1].at,
            min(s.rss_kib for s in taken),
            min(s.fds for s in taken),
            min(tasks) if tasks else None,
        )
        fds = fd_kinds(self.medic.pid)
        self.fd_kinds[label] = fds
        print(f"soak: quiet sample {label}: {self.quiet[label]} {fds}", file=sys.stderr, flush=True)
        self._pause.clear()

    # the run ------------------------------------------------------------------------

    def run(self, workers: int = 2, sample_every_s: float = 10.0) -> None:
        for t in self.stand.targets:
            self.pids[t.service] = self._pid(t)
        self.samples.append(sample(self.medic))
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(workers)]
        threads.append(threading.Thread(target=self.sampler, args=(sample_every_s,), daemon=True))
        for thread in threads:
            thread.start()
        end = time.monotonic() + self.seconds
        warm_until = time.monotonic() + self.warmup_s
        while time.monotonic() < warm_until or not self.first_deck_done.is_set():
            if time.monotonic() > end - self.seconds / 3:
                break
            time.sleep(0.5)
        self.quiet_sample("after warm-up")
        while time.monotonic() < end:
            time.sleep(0.5)
        self.quiet_sample("end")
        self._pause.set()
        self._stop.set()
        for thread in threads:
            thread.join(timeout=HEAL_DEADLINE_S + 30)
        self.samples.append(sample(self.medic))
        self.verify()

    # the final account -------------------------------------------------------------

    def verify(self) -> None:
        for f in self.faults:
            if f.verdict not in ("healed", "held") or (f.verdict == "held") != (f.kind in HELD):
                what = f"fault #{f.n} {f.kind} on {f.service}"
                self.problems.append(f"{what}: {f.verdict} {f.detail}")
        self._verify_starts()
        self._verify_history()
        self._verify_pids()
        self._verify_resources()

    def _verify_starts(self) -> None:
        by_name = {t.container: t for t in self.stand.targets if t.container}
        for event in self.stand.docker_log.all("start"):
            if event.at < self.started_at or event.container not in by_name:
                continue
            service = by_name[event.container].service
            if not any(f.service == service and f.covers(event.at) for f in self.faults):
                when = datetime.fromtimestamp(event.at, UTC).strftime("%H:%M:%S.%f")[:-3]
                self.problems.append(f"{service}: a start at {when} outside any fault")

    def _verify_history(self) -> None:
        rows: list[dict[str, Any]] = []
        for t in self.stand.targets:  # per service: a 30-minute run has more than one page
            data = self.medic.get(f"/api/v1/recoveries?service={t.service}&limit=1000")
            rows += data["recoveries"]
            if int(data["total"]) != len(data["recoveries"]):
                self.problems.append(f"{t.service}: total {data['total']}, {len(rows)} rows")
        ids = {int(r["id"]) for r in rows}
        for f in self.faults:
            lost = [i for i in f.recovery_ids if i not in ids]
            if lost:
                self.problems.append(f"fault #{f.n}: recoveries {lost} missing from the history")
        for r in rows:
            at = _iso(r["started_at"]) or 0
            if at >= self.started_at and not any(
                f.service == r["service"] and f.covers(at) for f in self.faults
            ):
                self.problems.append(f"recovery #{r['id']} of {r['service']} outside any fault")
        counted = _metric_sum(self.medic.text("/metrics"), "medic_recoveries_total")
        if counted != len(rows):
            self.problems.append(f"medic_recoveries_total {counted} != {len(rows)} history rows")
        self.history_rows = len(rows)

    def _verify_pids(self) -> None:
        for t in self.stand.targets:
            now = self._pid(t)
            if now != self.pids.get(t.service):
                self.problems.append(f"{t.service}: pid {self.pids.get(t.service)} -> {now}")

    def _verify_resources(self) -> None:
        first, last = self.quiet.get("after warm-up"), self.quiet.get("end")
        if first is None or last is None:
            self.problems.append("no quiet samples")
            return
        if last.rss_kib - first.rss_kib >= RSS_GROWTH_MAX_KIB:
            self.problems.append(f"RSS grew {first.rss_kib} -> {last.rss_kib} KiB")
        if last.fds > first.fds + FD_TASK_SLACK:
            kinds = self.fd_kinds
            self.problems.append(f"open fds grew {first.fds} -> {last.fds}: {kinds}")
        if first.tasks is None or last.tasks is None:
            self.problems.append("medic does not report asyncio_tasks in /api/v1/health")
        elif last.tasks > first.tasks + FD_TASK_SLACK:
            self.problems.append(f"asyncio tasks grew {first.tasks} -> {last.tasks}")


TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def _sockets(pid: int) -> dict[str, str]:
    """Socket inode -> ``tcp :REMOTE_PORT STATE`` or ``unix PATH``, from /proc/PID/net."""
    found: dict[str, str] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                port = int(cols[2].rsplit(":", 1)[1], 16)
                found[cols[9]] = f"tcp :{port} {TCP_STATES.get(cols[3], cols[3])}"
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
            cols = line.split()
            found[cols[6]] = "unix " + (cols[7] if len(cols) > 7 else "(unnamed)")
    return found


def fd_kinds(pid: int) -> dict[str, int]:
    """What medic's open fds point at: sockets by peer port, pipes, files..."""
    sockets = _sockets(pid)
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            kind = link.split(":[")[0] if ":[" in link else link
            if kind == "socket":
                kind = sockets.get(link.split(":[")[1].rstrip("]"), "socket")
            kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def _metric_sum(text: str, name: str) -> int:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


# injecting ------------------------------------------------------------------------------


def _container_pid(soak: Soak, target: Target) -> int:
    pid = int(soak.stand.containers.get(target.container).attrs["State"]["Pid"])
    if pid <= 0:
        raise SoakError(f"{target.container} is not running")
    return pid


def inject_sigkill(soak: Soak, target: Target, fault: Fault) -> None:
    os.kill(_container_pid(soak, target), signal.SIGKILL)


def inject_docker_kill(soak: Soak, target: Target, fault: Fault) -> None:
    soak.stand.containers.get(target.container).kill()


def inject_pause(soak: Soak, target: Target, fault: Fault) -> None:
    soak.stand.containers.get(target.container).pause()


def inject_wrong_answer(soak: Soak, target: Target, fault: Fault) -> None:
    soak.stand.containers.get(target.container).exec_run(["rm", "-f", "/www/healthz"])
    if answers(target.url) != 404:
        raise SoakError("the httpd does not answer 404 after /www/healthz was removed")


def inject_oom(soak: Soak, target: Target, fault: Fault) -> None:
    soak.stand.containers.get(target.container).exec_run(["touch", "/tmp/eat"])


def inject_crash_loop(soak: Soak, target: Target, fault: Fault) -> None:
    assert target.ctl_dir is not None
    (target.ctl_dir / "crashloop").touch()
    os.kill(_container_pid(soak, target), signal.SIGKILL)


def inject_docker_stop(soak: Soak, target: Target, fault: Fault) -> None:
    soak.stand.containers.get(target.container).stop(timeout=10)


def inject_pg_stop(soak: Soak, target: Target, fault: Fault) -> None:
    soak.stand.pg.pg_ctl("-m", "fast", "-w", "stop")


def inject_process_kill(soak: Soak, target: Target, fault: Fault) -> None:
    pid = int(soak.medic.service(target.service)["process"]["pid"])
    os.kill(pid, signal.SIGKILL)


INJECT: dict[str, Callable[[Soak, Target, Fault], None]] = {
    "host SIGKILL": inject_sigkill,
    "docker kill": inject_docker_kill,
    "docker pause": inject_pause,
    "wrong answer": inject_wrong_answer,
    "memory over limit": inject_oom,
    "crash loop": inject_crash_loop,
    "docker stop": inject_docker_stop,
    "postgres stopped": inject_pg_stop,
    "process SIGKILL": inject_process_kill,
}


# reporting ------------------------------------------------------------------------------


def _print_fault(f: Fault) -> None:
    mttr = f" mttr={f.mttr_s:.2f}s" if f.mttr_s is not None else ""
    print(
        f"  #{f.n} {f.kind} on {f.service}: {f.verdict}{mttr} starts={f.medic_starts} {f.detail}",
        file=sys.stderr,
        flush=True,
    )


def summary(soak: Soak) -> dict[str, Any]:
    kinds: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mine = [f for f in soak.faults if f.kind == kind]
        mttrs = [f.mttr_s for f in mine if f.mttr_s is not None]
        kinds[kind] = {
            "injected": len(mine),
            "healed": sum(f.verdict == "healed" for f in mine),
            "held": sum(f.verdict == "held" for f in mine),
            "failed": sum(f.verdict not in ("healed", "held") for f in mine),
            "mttr_median_s": round(statistics.median(mttrs), 2) if mttrs else None,
            "mttr_max_s": round(max(mttrs), 2) if mttrs else None,
        }
    return {
        "seed": soak.seed,
        "seconds": soak.seconds,
        "faults": len(soak.faults),
        "healed": sum(f.verdict == "healed" for f in soak.faults),
        "held": sum(f.verdict == "held" for f in soak.faults),
        "kinds": kinds,
        "history_rows": getattr(soak, "history_rows", None),
        "quiet": {k: asdict(v) for k, v in soak.quiet.items()},
        "fd_kinds": soak.fd_kinds,
        "series": [asdict(s) for s in soak.samples],
        "problems": soak.problems,
    }


def report(soak: Soak, machine: dict[str, str]) -> str:
    s = summary(soak)
    lines = [", ".join(f"{k}: {v}" for k, v in machine.items())]
    lines.append(
        f"seed {s['seed']}, {s['seconds'] / 60:g} min: {s['faults']} faults,"
        f" {s['healed']} healed, {s['held']} held, {s['history_rows']} history rows"
    )
    lines.append("| fault | injected | healed | held | failed | MTTR median s | MTTR max s |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for kind, k in s["kinds"].items():
        cells = [kind, k["injected"], k["healed"], k["held"], k["failed"]]
        cells += [k["mttr_median_s"] or "-", k["mttr_max_s"] or "-"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    first, last = soak.quiet.get("after warm-up"), soak.quiet.get("end")
    if first and last:
        lines.append(f"quiet after warm-up -> end: {_span(first, last)}")
    series = soak.samples
    if series:
        top = max(x.rss_kib for x in series) / 1024
        span = _span(series[0], series[-1])
        lines.append(f"series ({len(series)} samples, RSS max {top:.1f} MiB): {span}")
    lines.append("problems: " + ("none" if not soak.problems else ""))
    lines += [f"- {p}" for p in soak.problems]
    return "\n".join(lines)


def _span(first: Sample, last: Sample) -> str:
    rss = f"RSS {first.rss_kib / 1024:.1f} -> {last.rss_kib / 1024:.1f} MiB"
    return f"{rss}, fds {first.fds} -> {last.fds}, asyncio tasks {first.tasks} -> {last.tasks}"


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": str(os.cpu_count()),
        "kernel": platform.release(),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def run_soak(
    minutes: float, seed: int, workdir: Path, source: Path = REPO, warmup_s: float | None = None
) -> Soak:
    """Build the stand, soak it for ``minutes``, tear it down; the Soak holds the account."""
    stand = Stand(workdir, source)
    try:
        stand.up()
        warm = warmup_s if warmup_s is not None else min(300.0, minutes * 60 / 6)
        soak = Soak(stand, minutes * 60, seed, warm)
        print(f"soak: seed {seed}, {minutes:g} min, work dir {workdir}", file=sys.stderr)
        soak.run(sample_every_s=10.0 if minutes >= 10 else 5.0)
        return soak
    finally:
        stand.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (medic's log)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"soak: seed {seed}", file=sys.stderr, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="medic-soak-"))
    started = machine()
    try:
        soak = run_soak(args.minutes, seed, workdir)
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    started["loadavg at end"] = machine()["loadavg"]
    print(report(soak, started))
    if args.json:
        args.json.write_text(json.dumps({"machine": started, **summary(soak)}, indent=2))
    return 1 if soak.problems else 0


if __name__ == "__main__":
    sys.exit(main())
