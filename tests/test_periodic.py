"""Periodic checks: one tick per interval on the loop's monotonic clock, each service
at its own phase."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict

from medic.watch.periodic import SLOT_S, PeriodicChecks, check_phase, slot_of


class Starts:
    """Records every check start as (service, when it started, when it was due)."""

    def __init__(self) -> None:
        self.by_service: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.changed = asyncio.Event()

    def __call__(self, name: str, due: float) -> None:
        self.by_service[name].append((asyncio.get_running_loop().time(), due))
        self.changed.set()

    async def until(self, done: object, deadline_s: float) -> None:
        assert callable(done)
        async with asyncio.timeout(deadline_s):
            while not done():
                self.changed.clear()
                await self.changed.wait()


async def test_each_service_runs_once_per_interval_at_its_own_phase() -> None:
    starts = Starts()
    periodic = PeriodicChecks(starts)
    names = [f"svc{i}" for i in range(40)]
    for name in names:
        periodic.add(name, 0.4)

    await starts.until(lambda: all(len(starts.by_service[n]) >= 4 for n in names), 10)

    assert periodic.intervals == [0.4]
    for name in names:
        runs = starts.by_service[name]
        dues = [due for _started, due in runs]
        gaps = [b - a for a, b in itertools.pairwise(dues)]
        assert all(abs(gap - 0.4) < 0.01 for gap in gaps), (name, gaps)
        assert all(started - due < 0.25 for started, due in runs), (name, runs)
    # Not all due in one instant: the first round is spread over the interval,
    # each service at its phase, rounded down to its slot.
    first_due = {n: starts.by_service[n][0][1] for n in names}
    assert max(first_due.values()) - min(first_due.values()) > 0.2
    origin = min(first_due[n] - slot_of(check_phase(n, 0.4)) for n in names)
    for name in names:
        offset = first_due[name] - origin
        assert abs(offset - slot_of(check_phase(name, 0.4))) < 1e-6, name
        assert 0 <= check_phase(name, 0.4) - offset < SLOT_S


async def test_removed_service_is_no_longer_started_and_its_job_goes() -> None:
    starts = Starts()
    periodic = PeriodicChecks(starts)
    periodic.add("keep", 0.3)
    periodic.add("drop", 0.3)
    periodic.add("slow", 5)
    await starts.until(lambda: len(starts.by_service["drop"]) >= 1, 5)

    periodic.remove("drop")
    dropped_at = len(starts.by_service["drop"])
    await starts.until(lambda: len(starts.by_service["keep"]) >= 4, 5)
    assert len(starts.by_service["drop"]) == dropped_at
    assert sorted(periodic.intervals) == [0.3, 5]

    periodic.remove("slow")
    assert periodic.intervals == [0.3]


async def test_a_service_whose_interval_changes_moves_to_the_new_group() -> None:
    starts = Starts()
    periodic = PeriodicChecks(starts)
    periodic.add("web", 30)
    periodic.add("web", 0.2)
    assert periodic.intervals == [0.2]
    await starts.until(lambda: len(starts.by_service["web"]) >= 3, 5)


async def test_stop_starts_no_more_checks() -> None:
    starts = Starts()
    periodic = PeriodicChecks(starts)
    for i in range(10):
        periodic.add(f"svc{i}", 0.2)
    await starts.until(lambda: sum(map(len, starts.by_service.values())) >= 10, 5)

    periodic.stop()
    count = sum(map(len, starts.by_service.values()))
    await asyncio.sleep(0.5)  # two and a half intervals in which nothing may start
    assert sum(map(len, starts.by_service.values())) == count


async def test_intervals_that_print_alike_keep_jobs_of_their_own() -> None:
    starts = Starts()
    periodic = PeriodicChecks(starts)
    periodic.add("a", 0.3)
    periodic.add("b", 0.3000001)
    assert len(periodic.intervals) == 2
    await starts.until(
        lambda: len(starts.by_service["a"]) >= 2 and len(starts.by_service["b"]) >= 2, 5
    )
