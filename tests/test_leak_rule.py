"""The leak rule (``medic.watch.checks._leak``) on fixture series of (seconds, RSS)."""

from __future__ import annotations

import pytest

from medic.config.checks import MinGrowth, parse_min_growth
from medic.watch.checks._leak import Sample, judge_growth

MIB = 1_048_576
WINDOW_S = 60.0


def series(values_mib: list[float], step_s: float = 10.0) -> list[Sample]:
    return [(i * step_s, v * MIB) for i, v in enumerate(values_mib)]


def judge(
    values_mib: list[float],
    *,
    step_s: float = 10.0,
    min_samples: int = 5,
    min_growth: MinGrowth | None = None,
) -> tuple[bool, str]:
    verdict = judge_growth(
        series(values_mib, step_s),
        window_s=WINDOW_S,
        min_samples=min_samples,
        min_growth=min_growth or MinGrowth(percent=10),
    )
    return verdict.leak, verdict.reason


def test_a_steady_rise_is_a_leak() -> None:
    verdict = judge_growth(
        series([100, 110, 120, 130, 140, 150, 160]),
        window_s=WINDOW_S,
        min_samples=5,
        min_growth=MinGrowth(percent=10),
    )
    assert verdict.leak, verdict.reason
    assert verdict.growth_bytes_per_s == pytest.approx(1 * MIB)
    assert verdict.window_growth_bytes == pytest.approx(60 * MIB)
    assert verdict.samples == 7
    assert verdict.recent_growth_bytes_per_s == pytest.approx(1 * MIB)
    assert "grew steadily by 60.0 MiB per 60s" in verdict.reason


def test_a_staircase_rise_is_a_leak() -> None:
    # Growth in bursts (+20 MiB every 20 s) still rises all through the window.
    leak, reason = judge([100, 100, 120, 120, 140, 140, 160, 160, 180], step_s=7.5)
    assert leak, reason


def test_a_rise_with_small_dips_is_still_a_leak() -> None:
    # One step in six falls a little (a GC run): still 83% of steps hold.
    leak, reason = judge([100, 112, 121, 119.9, 135, 146, 158])
    assert leak, reason


def test_a_spike_that_drops_back_is_not_a_leak() -> None:
    leak, reason = judge([100, 100, 200, 100, 100, 100, 100])
    assert not leak
    assert "under leak_min_growth" in reason


def test_a_spike_in_the_latest_sample_is_not_a_leak() -> None:
    leak, reason = judge([100, 100, 100, 100, 100, 100, 200])
    assert not leak
    assert reason == "one jump between two levels, not a steady rise"


def test_a_spike_caught_halfway_is_not_a_leak() -> None:
    # Seen for real: 8.5 MiB, then one sample while 100 MiB were being
    # allocated, then 108.6 MiB; 250 ms apart in a 2 s window.
    values = [8.5] * 5 + [58.0] + [108.6] * 3
    verdict = judge_growth(
        series(values, step_s=0.25), window_s=2.0, min_samples=5, min_growth=MinGrowth(percent=10)
    )
    assert not verdict.leak
    assert verdict.reason == "one jump between two levels, not a steady rise"


def test_one_jump_to_a_higher_level_is_not_a_leak() -> None:
    leak, reason = judge([100, 100, 100, 100, 160, 160, 160])
    assert not leak
    assert reason == "one jump between two levels, not a steady rise"


def test_growth_that_levelled_off_is_not_a_leak_now() -> None:
    leak, reason = judge([100, 115, 130, 145, 150, 151, 151])
    assert not leak
    assert reason.startswith("levelled off")


def test_growth_that_came_back_down_is_not_a_leak() -> None:
    values = [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200, 210, 185]
    leak, reason = judge(values, step_s=5)
    assert not leak
    assert reason == "came back down from 210.0 MiB to 185.0 MiB"


def test_a_sawtooth_is_not_steady() -> None:
    leak, reason = judge([100, 130, 105, 140, 110, 150, 120, 160, 125])
    assert not leak
    assert "of steps do not fall" in reason


def test_slow_growth_under_the_limit_is_not_a_leak() -> None:
    # +1 MiB per minute on 100 MiB: 1% per window, the default limit is 10%.
    leak, reason = judge([100, 100.2, 100.4, 100.5, 100.7, 100.9, 101])
    assert not leak
    assert "under leak_min_growth 10.0 MiB" in reason


def test_an_absolute_limit() -> None:
    values = [100, 101, 102, 103, 104, 105, 106]  # 6 MiB per window
    assert judge(values, min_growth=MinGrowth(bytes=5 * MIB))[0]
    assert not judge(values, min_growth=MinGrowth(bytes=7 * MIB))[0]


def test_flat_noise_is_not_a_leak() -> None:
    leak, _ = judge([100, 100.1, 99.9, 100.05, 100, 100.1, 99.95])
    assert not leak


def test_too_few_samples_are_not_judged() -> None:
    leak, reason = judge([100, 150, 200, 250], step_s=20, min_samples=5)
    assert not leak
    assert reason == "collecting samples (4 of 5)"


def test_samples_that_cover_too_little_of_the_window_are_not_judged() -> None:
    # A process younger than the window: 8 samples over 35 s of a 60 s window.
    leak, reason = judge([100, 110, 120, 130, 140, 150, 160, 170], step_s=5)
    assert not leak
    assert reason == "collecting samples (35s of a 60s window)"


def test_only_the_last_window_counts() -> None:
    # An old steep rise, then flat for a whole window: not a leak now.
    old = [(t * 10.0, (100 + t * 20) * MIB) for t in range(6)]
    flat = [(60.0 + t * 10.0, 200.0 * MIB) for t in range(1, 8)]
    verdict = judge_growth(
        old + flat, window_s=WINDOW_S, min_samples=5, min_growth=MinGrowth(percent=10)
    )
    assert not verdict.leak
    assert verdict.samples == 7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10%", MinGrowth(percent=10.0)),
        ("2.5 %", MinGrowth(percent=2.5)),
        ("50MB", MinGrowth(bytes=50_000_000)),
        ("64MiB", MinGrowth(bytes=64 * MIB)),
        (1024, MinGrowth(bytes=1024)),
    ],
)
def test_min_growth_forms(text: object, expected: MinGrowth) -> None:
    assert parse_min_growth(text) == expected


@pytest.mark.parametrize("text", ["0%", "-5%", "0", "lots"])
def test_min_growth_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_min_growth(text)
