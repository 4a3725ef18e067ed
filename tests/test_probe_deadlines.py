"""The runner's probe deadlines (one loop timer shared by the probes that start
together) behave as ``asyncio.timeout`` did: each probe gets its own timeout,
one ending early does not end the others' deadline, and a cancellation from
outside stays a cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from medic.config.models import MonitoringConfig, ServiceConfig, ServiceSpec
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.tell.metrics import Metrics
from medic.watch.runner import CheckRunner, Probe, build_check


def _spec(name: str, script: str, timeout: str) -> ServiceSpec:
    svc = ServiceConfig.model_validate(
        {"check": {"type": "command", "command": ["sh", "-c", script]}, "timeout": timeout}
    )
    return ServiceSpec.resolve(name, svc, MonitoringConfig())


async def test_probes_started_together_keep_their_own_verdicts(resources: Resources) -> None:
    runner = CheckRunner(resources, Metrics())
    quick, hung = _spec("quick", "sleep 0.1", "700ms"), _spec("hung", "sleep 60", "700ms")
    t0 = time.monotonic()
    results: list[Probe] = await asyncio.gather(
        *(runner.run(s, build_check(s, resources)) for s in (quick, hung))
    )
    assert results[0].result.healthy
    assert results[1].result.failure_type is FailureType.CONNECTION_TIMEOUT
    assert results[1].result.detail == "no answer within 0.7s"
    assert 0.6 < time.monotonic() - t0 < 5


async def test_a_cancel_from_outside_is_no_timeout(resources: Resources) -> None:
    runner = CheckRunner(resources, Metrics())
    spec = _spec("job", "sleep 60", "5s")
    task = asyncio.create_task(runner.run(spec, build_check(spec, resources)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The shared timer of that deadline is gone with its last probe: the next one times out.
    quick = _spec("late", "sleep 60", "300ms")
    probe = await runner.run(quick, build_check(quick, resources))
    assert probe.result.failure_type is FailureType.CONNECTION_TIMEOUT
