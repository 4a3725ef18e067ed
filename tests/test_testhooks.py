"""The test-only loop stall: off by default, SIGUSR2 blocks the loop when on.

Under systemd, the stall making the watchdog restart medic is proven in
tests/systemd/test_medic_service.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from medic.host import testhooks


async def test_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(testhooks.ENABLE_ENV, raising=False)
    assert testhooks.install(asyncio.get_running_loop()) is False
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


async def test_sigusr2_blocks_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(testhooks.ENABLE_ENV, "1")
    monkeypatch.setenv(testhooks.STALL_ENV, "0.3")
    loop = asyncio.get_running_loop()
    assert testhooks.install(loop) is True
    try:
        t0 = time.monotonic()
        os.kill(os.getpid(), signal.SIGUSR2)
        # A 10 ms timer cannot fire while the handler sleeps on the loop.
        await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert time.monotonic() - t0 >= 0.3
    finally:
        testhooks.remove(loop)
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


def test_stall_seconds_falls_back_on_nonsense() -> None:
    assert testhooks.stall_seconds({testhooks.STALL_ENV: "soon"}) == testhooks.DEFAULT_STALL_S
    assert testhooks.stall_seconds({testhooks.STALL_ENV: "2.5"}) == 2.5
