"""Retry delays and the priority gate, on their own."""

from __future__ import annotations

import asyncio
import random

import pytest

from medic.config.actions import StepRetry
from medic.workflows.pacing import PriorityGate, retry_delay
from tests.helpers import async_wait_for


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        ("exponential", [1.0, 2.0, 4.0, 8.0, 10.0]),
        ("linear", [1.0, 2.0, 3.0, 4.0, 5.0]),
        ("fixed", [1.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_retry_delay_follows_the_backoff_up_to_max_delay(backoff: str, delays: list[float]) -> None:
    retry = StepRetry.model_validate(
        {"backoff": backoff, "initial_delay": 1, "max_delay": 10, "jitter": False}
    )
    rng = random.Random(0)
    assert [retry_delay(retry, n, rng) for n in range(1, 6)] == delays


def test_retry_jitter_stays_within_ten_percent_and_under_max_delay() -> None:
    retry = StepRetry(initial_delay=4.0, max_delay=4.2, jitter=True)
    rng = random.Random(1)
    delays = [retry_delay(retry, 1, rng) for _ in range(200)]
    assert min(delays) >= 3.6
    assert max(delays) == 4.2  # the cap wins over jitter
    assert len(set(delays)) > 50


async def test_gate_admits_waiters_by_priority_then_arrival() -> None:
    gate = PriorityGate(1)
    order: list[str] = []
    hold = asyncio.Event()

    async def holder(name: str, priority: str) -> None:
        async with gate.slot(priority):
            order.append(name)
            await hold.wait()

    first = asyncio.create_task(holder("first", "low"))
    await asyncio.sleep(0)
    waiters = [
        asyncio.create_task(holder(name, prio))
        for name, prio in [
            ("low", "low"),
            ("normal", "normal"),
            ("high-1", "high"),
            ("high-2", "high"),
        ]
    ]
    await async_wait_for(lambda: gate.waiting == 4, 5.0, interval=0.001)
    hold.set()
    await asyncio.gather(first, *waiters)
    assert order == ["first", "high-1", "high-2", "normal", "low"]


async def test_a_raised_limit_admits_waiters_and_a_lowered_one_holds_new_entries() -> None:
    gate = PriorityGate(1)
    inside = 0
    hold = asyncio.Event()

    async def holder() -> None:
        nonlocal inside
        async with gate.slot("normal"):
            inside += 1
            await hold.wait()

    tasks = [asyncio.create_task(holder()) for _ in range(3)]
    await async_wait_for(lambda: gate.waiting == 2, 5.0, interval=0.001)
    gate.resize(3)
    await async_wait_for(lambda: inside == 3, 5.0, interval=0.001)
    gate.resize(1)
    late = asyncio.create_task(holder())
    await async_wait_for(lambda: gate.waiting == 1, 5.0, interval=0.001)
    hold.set()
    await asyncio.gather(*tasks, late)
    assert inside == 4
