"""The workflow engine with a real scheduler, a real SQLite store and real
subprocesses: schedules, the step graph, retries, timeouts, stop, priority,
hot reload and history."""

from __future__ import annotations

import itertools
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from medic.config.models import WorkflowConfig
from medic.config.schedules import crontab_for_apscheduler
from medic.core.bus import Event, EventBus
from medic.core.errors import (
    InvalidWorkflowError,
    WorkflowAlreadyRunningError,
    WorkflowNotFoundError,
    WorkflowsClosedError,
)
from medic.host.resources import Resources
from medic.store import NO_RUNS, Store
from medic.tell.metrics import Metrics
from medic.workflows.manager import WorkflowManager
from tests.helpers import async_wait_for

# Appends "start <time>" to a file, sleeps, appends "end <time>", exits with a code.
STAMP = """
import sys, time
path, seconds, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
with open(path, "a") as f:
    f.write(f"start {time.time()}\\n")
time.sleep(seconds)
with open(path, "a") as f:
    f.write(f"end {time.time()}\\n")
sys.exit(code)
"""

DEADLINE_S = 10.0


def stamp_step(name: str, path: Path, seconds: float = 0.0, code: int = 0, **extra: Any) -> dict:
    command = [sys.executable, "-c", STAMP, str(path), str(seconds), str(code)]
    return {"name": name, "action": "run_command", "command": command, **extra}


def shell_step(name: str, script: str, **extra: Any) -> dict:
    return {"name": name, "action": "run_command", "command": script, "shell": True, **extra}


def stamps(path: Path, kind: str) -> list[float]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [float(line.split()[1]) for line in lines if line.startswith(kind)]


def workflow(**data: Any) -> WorkflowConfig:
    return WorkflowConfig.model_validate(data)


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries MEDIC_TEST_MARK=mark."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MEDIC_TEST_MARK") == mark and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


@dataclass
class Harness:
    manager: WorkflowManager
    bus: EventBus
    store: Store
    scheduler: AsyncIOScheduler
    dir: Path
    events: list[Event] = field(default_factory=list)

    def named(self, name: str, **data: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.name == name and all(e.data.get(k) == v for k, v in data.items())
        ]

    async def wait_event(self, name: str, **data: Any) -> Event:
        found = await async_wait_for(
            lambda: self.named(name, **data), DEADLINE_S, message=f"no event {name} {data}"
        )
        return found[0]

    def run_json(self, run_id: int) -> dict[str, Any] | None:
        """The run's record as the API shows it."""
        record = self.store.workflow_run(run_id)
        return record.as_json() if record is not None else None

    async def wait_run_end(self, workflow_id: str, run_id: int) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            record = self.run_json(run_id)
            return record if record and record["outcome"] != "running" else None

        return await async_wait_for(ended, DEADLINE_S, message=f"run {run_id} did not end")

    async def wait_process(self, mark: str) -> list[psutil.Process]:
        return await async_wait_for(
            lambda: marked_processes(mark), DEADLINE_S, message="the step's process never started"
        )

    async def wait_no_process(self, mark: str) -> None:
        await async_wait_for(
            lambda: not marked_processes(mark),
            DEADLINE_S,
            message=f"processes with mark {mark} are still running",
        )


ManagerFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def scheduler() -> AsyncIterator[AsyncIOScheduler]:
    sched = AsyncIOScheduler()
    sched.start()
    yield sched
    sched.shutdown(wait=False)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store.in_state_dir(tmp_path / "state")
    yield db
    db.close()


@pytest.fixture
async def make_harness(
    scheduler: AsyncIOScheduler, store: Store, tmp_path: Path
) -> AsyncIterator[ManagerFactory]:
    made: list[Harness] = []
    resources = Resources()

    async def make(max_concurrent: int = 4, dry_run: bool = False) -> Harness:
        bus = EventBus()
        manager = WorkflowManager(
            scheduler=scheduler,
            journal=store,
            bus=bus,
            metrics=Metrics(),
            resources=resources,
            state_dir=tmp_path / "state",
            max_concurrent=max_concurrent,
            dry_run=dry_run,
        )
        harness = Harness(manager, bus, store, scheduler, tmp_path)
        bus.add_listener(harness.events.append)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.manager.shutdown(0)
    await resources.close()


@pytest.fixture
async def h(make_harness: ManagerFactory) -> Harness:
    return await make_harness()


@pytest.fixture
def mark() -> str:
    return secrets.token_hex(8)


# schedules -----------------------------------------------------------------------


async def test_interval_workflow_runs_repeatedly(h: Harness) -> None:
    await h.manager.register(
        "tick", {"schedule": {"interval": 0.2}, "steps": [shell_step("noop", "true")]}
    )
    assert h.manager.get("tick")["next_run_at"] is not None

    await async_wait_for(lambda: h.manager.get("tick")["run_count"] >= 3, DEADLINE_S)

    runs = [run.as_json() for run in h.manager.runs("tick")]
    finished = [r for r in runs if r["outcome"] != "running"]
    assert finished and all(r["outcome"] == "succeeded" for r in finished)
    assert {r["trigger"] for r in runs} == {"schedule"}
    assert finished[0]["steps"][0]["outcome"] == "succeeded"


async def test_cron_next_run_follows_the_schedule_timezone(h: Harness) -> None:
    zone = ZoneInfo("America/New_York")
    now = datetime.now(zone)
    await h.manager.register(
        "nightly",
        {"schedule": {"cron": "0 3 * * *", "timezone": "America/New_York"}, "steps": []},
    )

    next_run = datetime.fromisoformat(h.manager.get("nightly")["next_run_at"])

    expected = datetime.combine(now.date(), time(3), tzinfo=zone)
    if expected <= now:
        expected = datetime.combine(now.date() + timedelta(days=1), time(3), tzinfo=zone)
    assert next_run == expected  # the same instant
    utc_hour = expected.astimezone(UTC).hour
    assert utc_hour in (7, 8)  # EDT or EST
    assert next_run.astimezone(UTC).hour == utc_hour


async def test_cron_weekday_numbers_mean_what_crontab_means(h: Harness) -> None:
    assert crontab_for_apscheduler("0 3 * * 0") == "0 3 * * sun"
    assert crontab_for_apscheduler("0 3 * * 7") == "0 3 * * sun"
    assert crontab_for_apscheduler("*/5 * * * 1-5") == "*/5 * * * mon,tue,wed,thu,fri"
    assert crontab_for_apscheduler("0 0 * * 5-7") == "0 0 * * sun,fri,sat"
    assert crontab_for_apscheduler("0 0 * * */2") == "0 0 * * sun,tue,thu,sat"
    assert crontab_for_apscheduler("0 0 * * MON,wed") == "0 0 * * mon,wed"
    assert crontab_for_apscheduler("0 0 * * fri-sun") == "0 0 * * sun,fri,sat"

    await h.manager.register(
        "sunday", {"schedule": {"cron": "30 4 * * 0", "timezone": "UTC"}, "steps": []}
    )
    next_run = datetime.fromisoformat(h.manager.get("sunday")["next_run_at"])
    assert next_run.weekday() == 6  # Python: Monday 0 ... Sunday 6
    assert (next_run.hour, next_run.minute) == (4, 30)


async def test_at_schedule_runs_once_at_its_time(h: Harness) -> None:
    when = datetime.now(UTC) + timedelta(seconds=0.5)
    await h.manager.register(
        "once", {"schedule": {"at": when.isoformat()}, "steps": [shell_step("noop", "true")]}
    )
    await async_wait_for(lambda: h.manager.get("once")["run_count"] == 1, DEADLINE_S)
    await async_wait_for(lambda: h.manager.get("once")["status"] == "idle", DEADLINE_S)
    assert h.manager.get("once")["next_run_at"] is None


async def test_a_run_missed_within_misfire_grace_still_runs_once(h: Harness) -> None:
    late = datetime.now(UTC) - timedelta(seconds=1)
    await h.manager.register(
        "late",
        {
            "schedule": {"at": late.isoformat(), "misfire_grace": "30s"},
            "steps": [shell_step("noop", "true")],
        },
    )
    await async_wait_for(lambda: h.manager.get("late")["run_count"] == 1, DEADLINE_S)
    assert not h.named("workflow.skipped", workflow="late")


async def test_a_run_missed_by_more_than_misfire_grace_is_skipped(h: Harness) -> None:
    missed = datetime.now(UTC) - timedelta(minutes=5)
    await h.manager.register(
        "missed",
        {
            "schedule": {"at": missed.isoformat(), "misfire_grace": "1m"},
            "steps": [shell_step("noop", "true")],
        },
    )
    skipped = await h.wait_event("workflow.skipped", workflow="missed", reason="misfired")
    assert "misfire_grace" in skipped.data["detail"]
    assert h.manager.get("missed")["run_count"] == 0


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"cron": "61 * * * *"}, "invalid cron"),
        ({"cron": "0 3 * *"}, "5 fields"),
        ({"cron": "0 3 * * 9"}, "weekday"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus_Mons"}, "unknown timezone"),
        ({"at": "next tuesday"}, "ISO datetime"),
    ],
)
async def test_invalid_schedule_is_an_error_naming_the_workflow(
    h: Harness, schedule: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidWorkflowError) as caught:
        await h.manager.register("broken", {"schedule": schedule})
    assert "'broken'" in str(caught.value)
    assert expected in str(caught.value)
    with pytest.raises(WorkflowNotFoundError):
        h.manager.get("broken")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"priority": "urgent"}, "priority"),
        ({"steps": [{"name": "a", "action": "run_command", "command": ["true"], "x": 1}]}, "x"),
        ({"steps": [{"action": "sleep", "duration": 1}]}, "needs a 'name'"),
        ({"steps": [shell_step("a", "true", depends_on=["b"])]}, "unknown step 'b'"),
        (
            {
                "steps": [
                    shell_step("a", "true", depends_on=["b"]),
                    shell_step("b", "true", depends_on=["a"]),
                ]
            },
            "step cycle: a -> b -> a",
        ),
        (
            {"steps": [shell_step("a", "true", retry={"backoff": "random"})]},
            "retry.backoff: Input should be 'exponential', 'linear' or 'fixed'",
        ),
        ({"retry_policy": {"backoff": "random"}}, "retry_policy.backoff: Input should be"),
    ],
)
async def test_register_validates_a_dict_config(
    h: Harness, config: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidWorkflowError) as caught:
        await h.manager.register("bad", config)
    assert "workflow 'bad'" in str(caught.value)
    assert expected in str(caught.value)


async def test_seed_register_start_and_status(h: Harness) -> None:
    await h.manager.register(
        "custom-workflow",
        config={
            "type": "async",
            "priority": "high",
            "timeout": 300,
            "retry_policy": {"max_retries": 3, "backoff": "exponential"},
        },
    )
    run_id = await h.manager.start("custom-workflow")
    record = await h.wait_run_end("custom-workflow", run_id)

    assert record["outcome"] == "succeeded"
    status = h.manager.status()["custom-workflow"]
    assert status["status"] == "idle"
    assert status["run_count"] == 1
    assert status["error_count"] == 0
    assert status["last_run"] == record["started_at"]
    assert status["next_run_at"] is None  # no schedule: manual only
    assert h.named("workflow.started", workflow="custom-workflow", run_id=run_id)
    assert h.named("workflow.succeeded", workflow="custom-workflow", run_id=run_id)


async def test_a_workflow_that_never_ran_has_the_counts_of_one_that_ran(h: Harness) -> None:
    """The manager's own "no runs" (``medic.workflows.ports.NO_RUNS``) keeps the
    store's keys and values (``medic.store.NO_RUNS``)."""
    await h.manager.register("fresh", {"steps": [shell_step("a", "true")]})
    never_ran = h.manager.get("fresh")
    assert {k: never_ran[k] for k in NO_RUNS.as_json()} == NO_RUNS.as_json()

    await h.manager.run("fresh")
    assert set(h.manager.get("fresh")) == set(never_ran)


async def test_disabled_workflow_is_not_scheduled_but_runs_by_hand(h: Harness) -> None:
    await h.manager.register(
        "off",
        {"enabled": False, "schedule": {"interval": 0.1}, "steps": [shell_step("a", "true")]},
    )
    described = h.manager.get("off")
    assert described["status"] == "disabled"
    assert described["next_run_at"] is None

    record = (await h.manager.run("off")).as_json()
    assert record["outcome"] == "succeeded"
    assert h.manager.get("off")["run_count"] == 1


# the step graph ------------------------------------------------------------------


async def test_diamond_runs_independent_steps_concurrently(h: Harness) -> None:
    files = {name: h.dir / f"{name}.log" for name in "abcd"}
    await h.manager.register(
        "diamond",
        {
            "steps": [
                stamp_step("a", files["a"]),
                stamp_step("b", files["b"], 0.5, depends_on=["a"]),
                stamp_step("c", files["c"], 0.5, depends_on=["a"]),
                stamp_step("d", files["d"], depends_on=["b", "c"]),
            ]
        },
    )

    record = (await h.manager.run("diamond")).as_json()

    assert record["outcome"] == "succeeded", record
    assert {s["name"]: s["outcome"] for s in record["steps"]} == dict.fromkeys("abcd", "succeeded")
    (a_end,), (d_start,) = stamps(files["a"], "end"), stamps(files["d"], "start")
    (b_start,), (b_end,) = stamps(files["b"], "start"), stamps(files["b"], "end")
    (c_start,), (c_end,) = stamps(files["c"], "start"), stamps(files["c"], "end")
    assert b_start < c_end and c_start < b_end, "b and c did not overlap"
    assert a_end <= min(b_start, c_start)
    assert d_start >= max(b_end, c_end)


async def test_sync_type_runs_one_step_at_a_time(h: Harness) -> None:
    first, second = h.dir / "first.log", h.dir / "second.log"
    await h.manager.register(
        "serial",
        {
            "type": "sync",
            "steps": [
                stamp_step("second", second, 0.3, depends_on=["first"]),
                stamp_step("first", first, 0.3),
                stamp_step("third", h.dir / "third.log", 0.3),
            ],
        },
    )

    record = (await h.manager.run("serial")).as_json()

    assert record["outcome"] == "succeeded"
    assert [s["name"] for s in record["steps"]] == ["first", "second", "third"]
    assert stamps(second, "start")[0] >= stamps(first, "end")[0]
    assert stamps(h.dir / "third.log", "start")[0] >= stamps(second, "end")[0]


async def test_failing_step_is_retried_with_exponential_backoff(h: Harness) -> None:
    attempts_file = h.dir / "attempts.log"
    after_file = h.dir / "after.log"
    await h.manager.register(
        "flaky",
        {
            "retry_policy": {
                "max_retries": 3,
                "backoff": "exponential",
                "initial_delay": 0.2,
                "max_delay": 10,
                "jitter": False,
            },
            "steps": [
                shell_step("fails", f"date +'start %s.%N' >> {attempts_file}; exit 1"),
                stamp_step("after", after_file, depends_on=["fails"]),
                shell_step("independent", "true"),
            ],
        },
    )

    record = (await h.manager.run("flaky")).as_json()

    assert record["outcome"] == "failed"
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["fails"]["outcome"] == "failed"
    assert steps["fails"]["attempts"] == 4
    assert "exit 1" in steps["fails"]["detail"]
    assert steps["after"]["outcome"] == "skipped"
    assert steps["after"]["attempts"] == 0
    assert steps["independent"]["outcome"] == "succeeded"
    assert not after_file.exists()

    starts = stamps(attempts_file, "start")
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, (0.2, 0.4, 0.8), strict=True):
        # Each gap is the delay plus starting one shell and one date.
        assert expected - 0.01 <= gap <= expected + 0.25, gaps
    assert gaps[1] > gaps[0] * 1.4 and gaps[2] > gaps[1] * 1.4, gaps
    assert h.named("workflow.failed", workflow="flaky", outcome="failed")


async def test_per_step_retry_overrides_the_workflow_policy(h: Harness) -> None:
    await h.manager.register(
        "override",
        {
            "retry_policy": {"max_retries": 5, "initial_delay": 0.01},
            "steps": [shell_step("once", "exit 3", retry={"max_retries": 1, "initial_delay": 0})],
        },
    )
    record = (await h.manager.run("override")).as_json()
    assert record["steps"][0]["attempts"] == 2
    assert record["steps"][0]["detail"] == "exit 3 (expected 0)"


async def test_continue_on_failure_lets_dependents_run(h: Harness) -> None:
    await h.manager.register(
        "tolerant",
        {
            "steps": [
                shell_step("optional", "exit 1", continue_on_failure=True),
                shell_step("next", "echo ran", depends_on=["optional"]),
            ]
        },
    )
    record = (await h.manager.run("tolerant")).as_json()
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["optional"]["outcome"] == "failed"
    assert steps["next"]["outcome"] == "succeeded"
    assert steps["next"]["output"].strip() == "ran"
    assert record["outcome"] == "succeeded"


async def test_workflow_timeout_kills_the_running_command(h: Harness, mark: str) -> None:
    await h.manager.register(
        "hangs",
        {
            "timeout": 1.0,
            "steps": [
                {
                    "name": "hang",
                    "action": "run_command",
                    "command": ["sleep", "1000"],
                    "env": {"MEDIC_TEST_MARK": mark},
                },
                shell_step("never", "true", depends_on=["hang"]),
            ],
        },
    )
    run_id = await h.manager.start("hangs")
    await h.wait_process(mark)

    record = await h.wait_run_end("hangs", run_id)

    await h.wait_no_process(mark)
    assert record["outcome"] == "timed_out"
    assert 0.9 <= record["duration_seconds"] < 5.0
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["hang"]["outcome"] == "timed_out"
    assert steps["never"]["outcome"] == "skipped"
    assert h.named("workflow.failed", workflow="hangs", outcome="timed_out")
    assert h.manager.get("hangs")["error_count"] == 1


async def test_dry_run_records_steps_and_runs_nothing(make_harness: ManagerFactory) -> None:
    h = await make_harness(dry_run=True)
    target = h.dir / "touched"
    await h.manager.register(
        "dry",
        {"steps": [shell_step("a", f"touch {target}"), shell_step("b", "true", depends_on=["a"])]},
    )
    record = (await h.manager.run("dry")).as_json()
    assert record["outcome"] == "succeeded"
    assert [s["outcome"] for s in record["steps"]] == ["dry_run", "dry_run"]
    assert not target.exists()


# control ---------------------------------------------------------------------------


async def test_start_while_running_and_unknown_ids(h: Harness) -> None:
    release = h.dir / "release"
    await h.manager.register(
        "busy", {"steps": [shell_step("wait", f"while [ ! -e {release} ]; do sleep 0.02; done")]}
    )
    run_id = await h.manager.start("busy")
    assert h.manager.get("busy")["status"] == "running"

    with pytest.raises(WorkflowAlreadyRunningError):
        await h.manager.start("busy")
    with pytest.raises(WorkflowAlreadyRunningError):
        await h.manager.run("busy")
    for call in (h.manager.start, h.manager.run, h.manager.stop):
        with pytest.raises(WorkflowNotFoundError):
            await call("nope")
    with pytest.raises(WorkflowNotFoundError):
        h.manager.get("nope")
    with pytest.raises(WorkflowNotFoundError):
        h.manager.runs("nope")

    release.touch()
    assert (await h.wait_run_end("busy", run_id))["outcome"] == "succeeded"
    await async_wait_for(lambda: h.manager.get("busy")["status"] == "idle", DEADLINE_S)


async def test_stop_cancels_the_run_and_pauses_the_schedule(h: Harness, mark: str) -> None:
    await h.manager.register(
        "long",
        {
            "schedule": {"interval": 3600},
            "steps": [
                {
                    "name": "hang",
                    "action": "run_command",
                    "command": ["sleep", "1000"],
                    "env": {"MEDIC_TEST_MARK": mark},
                }
            ],
        },
    )
    run_id = await h.manager.start("long")
    await h.wait_process(mark)

    assert await h.manager.stop("long") is True

    await h.wait_no_process(mark)
    record = h.run_json(run_id)
    assert record is not None
    assert record["outcome"] == "cancelled"
    assert record["steps"][0]["outcome"] == "cancelled"
    described = h.manager.get("long")
    assert described["status"] == "stopped"
    assert described["next_run_at"] is None
    assert h.named("workflow.cancelled", workflow="long", run_id=run_id)
    assert await h.manager.stop("long") is False

    second = await h.manager.start("long")
    assert h.manager.get("long")["next_run_at"] is not None
    await h.wait_process(mark)
    assert await h.manager.stop("long") is True
    assert second != run_id


async def test_a_scheduled_fire_during_a_run_is_coalesced(h: Harness) -> None:
    release = h.dir / "release"
    await h.manager.register(
        "overlap",
        {
            "schedule": {"interval": 0.1},
            "steps": [shell_step("wait", f"while [ ! -e {release} ]; do sleep 0.02; done")],
        },
    )
    skipped = await h.wait_event("workflow.skipped", workflow="overlap", reason="coalesced")
    assert "still in progress" in skipped.data["detail"]
    assert h.manager.get("overlap")["run_count"] == 1
    release.touch()
    await async_wait_for(lambda: h.manager.get("overlap")["run_count"] >= 2, DEADLINE_S)


async def test_priority_decides_who_runs_next(make_harness: ManagerFactory) -> None:
    h = await make_harness(max_concurrent=1)
    started, release = h.dir / "started", h.dir / "release"
    await h.manager.register(
        "blocker",
        {
            "steps": [
                shell_step(
                    "hold", f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done"
                )
            ]
        },
    )
    for name, priority in (
        ("low-1", "low"),
        ("normal", "normal"),
        ("high", "high"),
        ("low-2", "low"),
    ):
        await h.manager.register(name, {"priority": priority, "steps": [shell_step("a", "true")]})

    await h.manager.start("blocker")
    await async_wait_for(started.exists, DEADLINE_S)
    for name in ("low-1", "normal", "high", "low-2"):
        await h.manager.start(name)
    await async_wait_for(lambda: h.manager.waiting_runs == 4, DEADLINE_S)
    assert h.manager.get("high")["queued"] is True

    release.touch()
    await async_wait_for(lambda: all(w["status"] == "idle" for w in h.manager.list()), DEADLINE_S)

    order = [e.data["workflow"] for e in h.events if e.name == "workflow.started"]
    assert order == ["blocker", "high", "normal", "low-1", "low-2"]


async def test_shutdown_interrupts_running_and_cancels_queued_runs(
    make_harness: ManagerFactory, mark: str
) -> None:
    h = await make_harness(max_concurrent=1)
    hang = {
        "name": "hang",
        "action": "run_command",
        "command": ["sleep", "1000"],
        "env": {"MEDIC_TEST_MARK": mark},
    }
    await h.manager.register("running", {"steps": [hang]})
    await h.manager.register("queued", {"steps": [shell_step("a", "true")]})
    running_id = await h.manager.start("running")
    await h.wait_process(mark)
    queued_id = await h.manager.start("queued")

    await h.manager.shutdown(grace_s=0.2)

    assert not marked_processes(mark)
    running = h.run_json(running_id)
    queued = h.run_json(queued_id)
    assert running is not None and queued is not None
    assert running["outcome"] == "interrupted"
    assert running["steps"][0]["outcome"] == "interrupted"
    assert queued["outcome"] == "cancelled"
    assert queued["steps"] == []
    with pytest.raises(WorkflowsClosedError):
        await h.manager.start("queued")


# hot reload ----------------------------------------------------------------------


async def test_apply_adds_and_removes_workflows_live(h: Harness) -> None:
    tick = workflow(schedule={"interval": 0.2}, steps=[shell_step("a", "true")])

    changes = await h.manager.apply({"first": tick})
    assert changes == {"added": ["first"], "removed": [], "changed": []}
    await async_wait_for(lambda: h.manager.get("first")["run_count"] >= 1, DEADLINE_S)

    changes = await h.manager.apply({"second": tick})
    assert changes == {"added": ["second"], "removed": ["first"], "changed": []}
    with pytest.raises(WorkflowNotFoundError):
        h.manager.get("first")
    assert h.scheduler.get_job("workflow:first") is None
    await async_wait_for(lambda: h.manager.get("second")["run_count"] >= 2, DEADLINE_S)

    assert await h.manager.apply({"second": tick}) == {"added": [], "removed": [], "changed": []}


async def test_apply_removing_a_running_workflow_cancels_its_run(h: Harness, mark: str) -> None:
    hang = {
        "name": "hang",
        "action": "run_command",
        "command": ["sleep", "1000"],
        "env": {"MEDIC_TEST_MARK": mark},
    }
    await h.manager.apply({"doomed": workflow(steps=[hang])})
    run_id = await h.manager.start("doomed")
    await h.wait_process(mark)

    assert (await h.manager.apply({}))["removed"] == ["doomed"]

    await h.wait_no_process(mark)
    record = h.run_json(run_id)
    assert record is not None
    assert record["outcome"] == "cancelled"
    assert "removed" in record["detail"]


async def test_a_changed_workflow_finishes_its_run_under_the_old_definition(h: Harness) -> None:
    release, out = h.dir / "release", h.dir / "out"
    wait = f"while [ ! -e {release} ]; do sleep 0.02; done"
    old = workflow(steps=[shell_step("write", f"{wait}; echo old >> {out}")])
    new = workflow(steps=[shell_step("write", f"echo new >> {out}")])
    await h.manager.apply({"w": old})
    run_id = await h.manager.start("w")

    assert (await h.manager.apply({"w": new}))["changed"] == ["w"]
    assert h.manager.get("w")["status"] == "running"
    release.touch()
    assert (await h.wait_run_end("w", run_id))["outcome"] == "succeeded"
    await async_wait_for(lambda: h.manager.get("w")["status"] == "idle", DEADLINE_S)
    await h.manager.run("w")

    assert out.read_text().split() == ["old", "new"]


async def test_apply_with_an_invalid_workflow_changes_nothing(h: Harness) -> None:
    good = workflow(steps=[])
    await h.manager.apply({"keep": good})
    bad = workflow(schedule={"cron": "not a cron"}, steps=[])

    with pytest.raises(InvalidWorkflowError) as caught:
        await h.manager.apply({"broken": bad})

    assert "workflow 'broken'" in str(caught.value)
    assert [w["id"] for w in h.manager.list()] == ["keep"]


# step timeouts -------------------------------------------------------------------


async def test_a_step_without_timeout_is_bounded_by_the_workflow_timeout(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The actions' playbook defaults, made short: a workflow step must not be cut by them.
    from medic.heal.actions.run_command import RunCommand
    from medic.heal.actions.sleep import Sleep

    monkeypatch.setattr(RunCommand, "default_timeout_s", 0.3)
    monkeypatch.setattr(Sleep, "default_timeout_s", 0.3)
    await h.manager.register(
        "nightly",
        {
            "timeout": 30,
            "steps": [
                {"name": "extract", "action": "run_command", "command": ["sleep", "1"]},
                {"name": "nap", "action": "sleep", "duration": 2.5},
            ],
        },
    )

    record = (await h.manager.run("nightly")).as_json()

    steps = {s["name"]: s for s in record["steps"]}
    assert steps["extract"]["outcome"] == "succeeded", steps["extract"]
    assert steps["nap"]["outcome"] == "succeeded", steps["nap"]
    assert steps["nap"]["detail"] == "slept 2.5s"
    assert record["outcome"] == "succeeded"


async def test_without_any_timeout_a_step_gets_the_workflow_step_default_but_sleep_does_not(
    h: Harness, monkeypatch: pytest.MonkeyPatch, mark: str
) -> None:
    from medic.workflows import run

    monkeypatch.setattr(run, "STEP_TIMEOUT_S", 0.5)
    await h.manager.register(
        "untimed",
        {
            "steps": [
                {
                    "name": "hang",
                    "action": "run_command",
                    "command": ["sleep", "1000"],
                    "env": {"MEDIC_TEST_MARK": mark},
                },
                {"name": "nap", "action": "sleep", "duration": 1.5},
            ],
        },
    )

    record = (await h.manager.run("untimed")).as_json()

    await h.wait_no_process(mark)
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["hang"]["outcome"] == "timed_out"
    assert steps["hang"]["detail"] == "timed out after 0.5s"
    assert steps["nap"]["outcome"] == "succeeded"
    assert record["outcome"] == "failed"


async def test_playbook_steps_keep_the_action_default_and_sleep_is_not_cut(
    resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medic.config.actions import RunCommandOptions as CommandOptions
    from medic.config.actions import SleepOptions
    from medic.heal.actions.base import ActionContext
    from medic.heal.actions.run_command import RunCommand
    from medic.heal.actions.sleep import Sleep
    from medic.heal.steps import run_step

    monkeypatch.setattr(RunCommand, "default_timeout_s", 0.3)
    monkeypatch.setattr(Sleep, "default_timeout_s", 0.1)
    ctx = ActionContext(resources=resources, state_dir=tmp_path)

    hung = await run_step(CommandOptions(action="run_command", command=["sleep", "1000"]), ctx)
    nap = await run_step(SleepOptions(action="sleep", duration=2.5), ctx)

    assert (hung.outcome, hung.detail) == ("timed_out", "timed out after 0.3s")
    assert (nap.outcome, nap.detail) == ("succeeded", "slept 2.5s")


async def test_register_refuses_a_sleep_longer_than_its_timeouts(h: Harness) -> None:
    with pytest.raises(InvalidWorkflowError) as own:
        await h.manager.register(
            "slow",
            {"steps": [{"name": "nap", "action": "sleep", "duration": "130s", "timeout": 60}]},
        )
    with pytest.raises(InvalidWorkflowError) as workflows_own:
        await h.manager.register(
            "slow", {"timeout": 60, "steps": [{"name": "nap", "action": "sleep", "duration": 130}]}
        )

    assert "the sleep (130s) is longer than the step's timeout (60s)" in str(own.value)
    assert "steps[0].duration: the sleep (130s) is longer than the workflow's timeout (60s)" in str(
        workflows_own.value
    )


async def test_a_database_from_before_the_pause_table_opens_and_keeps_its_runs(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "old" / "medic.db"
    Store(path).close()
    old = sqlite3.connect(path)  # as the version before workflow_control left it
    old.execute("DROP TABLE workflow_control")
    old.execute("PRAGMA user_version=0")
    old.commit()
    old.close()
    before = Store(path)
    run_id = before.start_run("nightly", "manual")
    before.close()

    store = Store(path)
    store.set_workflow_paused("nightly", True)
    store.close()
    reopened = Store(path)

    assert reopened.paused_workflows() == {"nightly"}
    assert reopened.workflow_run(run_id) is not None
    reopened.close()
