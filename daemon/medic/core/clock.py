"""Time as medic keeps it.

Durations (check intervals, backoff, attempt windows, circuit cooldowns,
leases, timeouts) run on the monotonic clock, so a wall clock that jumps (NTP
stepping, a wrong date set by hand) never makes a wait expire early or last
an hour longer. The wall clock only stamps what is shown and stored: aware UTC
datetimes and their ISO 8601 text. ``wall_of``/``mono_of`` translate between
the two at the moment they are called.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc(ts: float) -> datetime:
    """The aware UTC datetime of a ``time.time()`` value."""
    return datetime.fromtimestamp(ts, UTC)


def iso(ts: float | None) -> str | None:
    """``2026-01-06T07:27:00.120000+00:00`` for a ``time.time()`` value; None stays None."""
    return utc(ts).isoformat() if ts is not None else None


def utc_or_none(ts: float | None) -> datetime | None:
    return utc(ts) if ts is not None else None


def wall_of(mono: float) -> float:
    """The wall-clock time (``time.time()``) of a ``time.monotonic()`` value, as the
    wall clock reads now: for showing a monotonic deadline."""
    return time.time() - (time.monotonic() - mono)


def mono_of(wall: float) -> float:
    """The ``time.monotonic()`` value of a wall-clock time read back from history."""
    return time.monotonic() - (time.time() - wall)


def iso_mono(mono: float | None) -> str | None:
    """ISO 8601 text of a monotonic time (a deadline shown to a user); None stays None."""
    return iso(wall_of(mono)) if mono is not None else None
