"""Telling a memory leak from a spike: a pure function of (time, RSS) samples.

The ``process`` check samples its process's resident memory once per check
and asks :func:`judge_growth` about the samples inside ``leak_window``. It is
a leak when all of these hold:

1. **Enough data**: at least ``leak_min_samples`` samples, spanning at least
   75% of the window (a process younger than the window is not judged yet).
2. **Real growth**: the least-squares line through the samples rises by at
   least ``leak_min_growth`` per window (a byte size, or a percentage of the
   window's first sample).
3. **Mostly monotonic**: at least 80% of the steps between consecutive
   samples do not fall (a fall of under 0.5% is noise).
4. **A line, not a jump**: the straight line fits the samples better (smaller
   squared error) than the best single jump between two flat levels. An
   allocation that happened once, caught at one or two samples, is a jump.
5. **Still growing**: over the latest half of the window the line rises at
   least half as steeply as over the whole window (memory that grew and then
   levelled off is not leaking now).
6. **Still high**: the latest sample is within the top 10% of the window's
   range (memory that went up and came back down is not a leak).

Nothing here touches a process; the check feeds it numbers, and the tests
feed it fixture series.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from medic.config.checks import MinGrowth

MIN_SPAN_FRACTION = 0.75
MIN_STEADY_FRACTION = 0.8
NOISE_FRACTION = 0.005
MIN_RECENT_SLOPE_FRACTION = 0.5
NEAR_MAX_FRACTION = 0.1

Sample = tuple[float, float]
"""(seconds on any monotonic clock, resident bytes)."""


@dataclass(frozen=True)
class LeakVerdict:
    leak: bool
    reason: str
    """Why it is (or is not yet) a leak, for the check's detail."""
    samples: int
    span_s: float
    growth_bytes_per_s: float = 0.0
    window_growth_bytes: float = 0.0
    """The fitted line's rise over one ``window_s``."""
    steady_fraction: float = 0.0
    recent_growth_bytes_per_s: float = 0.0
    """The slope over the latest half of the window."""

    def figures(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "span_s": round(self.span_s, 3),
            "growth_bytes_per_s": round(self.growth_bytes_per_s, 1),
            "window_growth_bytes": round(self.window_growth_bytes),
            "recent_growth_bytes_per_s": round(self.recent_growth_bytes_per_s, 1),
            "steady_fraction": round(self.steady_fraction, 3),
        }


def window_samples(samples: Sequence[Sample], window_s: float) -> list[Sample]:
    """The samples no older than ``window_s`` before the latest one."""
    if not samples:
        return []
    start = samples[-1][0] - window_s
    return [s for s in samples if s[0] >= start]


def judge_growth(
    samples: Sequence[Sample], *, window_s: float, min_samples: int, min_growth: MinGrowth
) -> LeakVerdict:
    """Apply the module's rule to the samples of the last ``window_s`` seconds."""
    kept = window_samples(samples, window_s)
    span = kept[-1][0] - kept[0][0] if kept else 0.0
    if len(kept) < max(min_samples, 3):
        reason = f"collecting samples ({len(kept)} of {max(min_samples, 3)})"
        return LeakVerdict(False, reason, len(kept), span)
    if span < MIN_SPAN_FRACTION * window_s:
        reason = f"collecting samples ({span:.0f}s of a {window_s:g}s window)"
        return LeakVerdict(False, reason, len(kept), span)
    slope = _slope(kept)
    verdict = LeakVerdict(
        leak=False,
        reason="",
        samples=len(kept),
        span_s=span,
        growth_bytes_per_s=slope,
        window_growth_bytes=slope * window_s,
        steady_fraction=_steady_fraction([v for _, v in kept]),
        recent_growth_bytes_per_s=_slope(window_samples(kept, window_s / 2)),
    )
    why_not = _why_not(verdict, kept, min_growth, window_s)
    if why_not is not None:
        return replace(verdict, reason=why_not)
    return replace(verdict, leak=True, reason=_leak_reason(verdict, window_s))


def _why_not(
    verdict: LeakVerdict, kept: Sequence[Sample], min_growth: MinGrowth, window_s: float
) -> str | None:
    """The first rule the samples break, or None when they show a leak."""
    values = [v for _, v in kept]
    threshold = min_growth.threshold(values[0])
    if verdict.window_growth_bytes < threshold:
        return (
            f"growth {_mb(verdict.window_growth_bytes)} per {window_s:g}s"
            f" is under leak_min_growth {_mb(threshold)}"
        )
    if verdict.steady_fraction < MIN_STEADY_FRACTION:
        return f"not steady: only {verdict.steady_fraction:.0%} of steps do not fall"
    if _jump_error(values) <= _line_error(kept):
        return "one jump between two levels, not a steady rise"
    if verdict.recent_growth_bytes_per_s < MIN_RECENT_SLOPE_FRACTION * verdict.growth_bytes_per_s:
        return f"levelled off: {_mb(verdict.recent_growth_bytes_per_s)}/s over the latest half"
    lo, hi = min(values), max(values)
    if values[-1] < hi - NEAR_MAX_FRACTION * (hi - lo):
        return f"came back down from {_mb(hi)} to {_mb(values[-1])}"
    return None


def _leak_reason(verdict: LeakVerdict, window_s: float) -> str:
    return (
        f"resident memory grew steadily by {_mb(verdict.window_growth_bytes)} per {window_s:g}s"
        f" ({_mb(verdict.growth_bytes_per_s)}/s over {verdict.samples} samples,"
        f" {verdict.steady_fraction:.0%} of steps up or flat)"
    )


def _slope(samples: Sequence[Sample]) -> float:
    """Least-squares slope in bytes per second (0 for fewer than two distinct times)."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    stt = sum((t - mean_t) ** 2 for t, _ in samples)
    stv = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return stv / stt if stt > 0 else 0.0


def _line_error(samples: Sequence[Sample]) -> float:
    """Squared error of the least-squares line through ``samples``."""
    n = len(samples)
    slope = _slope(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    return sum((v - (mean_v + slope * (t - mean_t))) ** 2 for t, v in samples)


def _jump_error(values: Sequence[float]) -> float:
    """Squared error of the best fit by two flat levels with one jump between them."""
    n = len(values)
    mean = sum(values) / n
    centred = [v - mean for v in values]  # keeps the prefix sums of squares precise
    sums = [0.0, *itertools.accumulate(centred)]
    squares = [0.0, *itertools.accumulate(v * v for v in centred)]

    def error(lo: int, hi: int) -> float:
        count = hi - lo
        total = sums[hi] - sums[lo]
        return squares[hi] - squares[lo] - total * total / count

    return min(error(0, k) + error(k, n) for k in range(1, n))


def _steady_fraction(values: Sequence[float]) -> float:
    steps = list(itertools.pairwise(values))
    holding = sum(1 for prev, cur in steps if cur >= prev * (1 - NOISE_FRACTION))
    return holding / len(steps) if steps else 0.0


def _mb(value: float) -> str:
    return f"{value / 1_048_576:.1f} MiB"
