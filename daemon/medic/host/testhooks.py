"""Test-only hooks into the running daemon, off unless ``MEDIC_TEST_HOOKS=1``.

With the variable set, ``SIGUSR2`` blocks the event loop with ``time.sleep``
for ``MEDIC_TEST_STALL_S`` seconds (default 120), the way a blocking call or a
busy loop in a bug would. The watchdog pings come from that loop, so they stop
and systemd's ``WatchdogSec=`` kills and restarts medic: the systemd tests use
this to prove the watchdog end to end. Without the variable nothing is
installed and ``SIGUSR2`` keeps its default action.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Mapping

from medic.core.logging import get_logger

ENABLE_ENV = "MEDIC_TEST_HOOKS"
STALL_ENV = "MEDIC_TEST_STALL_S"
STALL_SIGNAL = signal.SIGUSR2
DEFAULT_STALL_S = 120.0

_log = get_logger("TestHooks")


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ENABLE_ENV) == "1"


def stall_seconds(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    try:
        return float(env.get(STALL_ENV, DEFAULT_STALL_S))
    except ValueError:
        return DEFAULT_STALL_S


def stall_loop(seconds: float) -> None:
    """Block the calling thread (the event loop's) for *seconds*."""
    _log.warning(
        "testhooks.stalling", message="Test hook: stalling the event loop", seconds=seconds
    )
    time.sleep(seconds)  # blocking on purpose: this is the fault being simulated


def install(loop: asyncio.AbstractEventLoop) -> bool:
    """Install the hooks when enabled; True when they were."""
    if not enabled():
        return False
    loop.add_signal_handler(STALL_SIGNAL, stall_loop, stall_seconds())
    _log.warning(
        "testhooks.enabled",
        message="Test hooks are on: SIGUSR2 stalls the event loop",
        env=ENABLE_ENV,
    )
    return True


def remove(loop: asyncio.AbstractEventLoop) -> None:
    if enabled():
        loop.remove_signal_handler(STALL_SIGNAL)
