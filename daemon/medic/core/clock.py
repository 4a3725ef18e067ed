"""Times as medic shows them: ISO 8601 in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    """``ts`` (epoch seconds) as ISO 8601 in UTC; None stays None."""
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
