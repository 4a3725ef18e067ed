"""Timestamps as the history and the API show them: aware UTC datetimes, and
their ISO 8601 text."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: float) -> datetime:
    """The aware UTC datetime of a ``time.time()`` value."""
    return datetime.fromtimestamp(ts, UTC)


def iso(ts: float | None) -> str | None:
    """``2026-01-06T07:27:00.120000+00:00`` for a ``time.time()`` value; None stays None."""
    return utc(ts).isoformat() if ts is not None else None


def utc_or_none(ts: float | None) -> datetime | None:
    return utc(ts) if ts is not None else None
