"""Wall-clock aligned ticks: whole multiples of the interval, strictly after now."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.schedule import last_tick, next_tick

EPOCH_2023 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
EPOCH_2100 = 4_102_444_800.0  # 2100-01-01T00:00:00Z

# The agent's config allows intervals from 0.1 s to a day.
whole_intervals = st.sampled_from([1, 2, 5, 10, 15, 30, 60, 300, 900, 3600, 86400])
any_intervals = st.floats(min_value=0.1, max_value=86400, allow_nan=False, allow_infinity=False)
epochs = st.floats(min_value=0, max_value=1e10, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    ("now", "interval", "expected"),
    [
        (0.0, 1.0, 1.0),
        (0.5, 1.0, 1.0),
        (0.999, 1.0, 1.0),
        (59.0, 60.0, 60.0),
        (59.999, 60.0, 60.0),
        (61.0, 60.0, 120.0),
        (119.999, 60.0, 120.0),
        (7.0, 5.0, 10.0),
        (EPOCH_2023, 60.0, 1_700_000_040.0),
        (EPOCH_2023 + 0.25, 1.0, 1_700_000_001.0),
        (EPOCH_2023 + 0.999, 1.0, 1_700_000_001.0),
        (EPOCH_2023 + 1799.0, 3600.0, 1_700_002_800.0),
        (EPOCH_2023, 86400.0, 1_700_006_400.0),
        (EPOCH_2100 + 0.5, 1.0, EPOCH_2100 + 1),
        (EPOCH_2100 + 30.0, 60.0, EPOCH_2100 + 60),
        (-0.5, 1.0, 0.0),
    ],
)
def test_examples(now: float, interval: float, expected: float) -> None:
    assert next_tick(now, interval) == expected


@pytest.mark.parametrize(
    ("now", "interval"),
    [
        (0.0, 1.0),
        (1.0, 1.0),
        (60.0, 60.0),
        (120.0, 60.0),
        (10.0, 5.0),
        (EPOCH_2023, 1.0),
        (1_700_000_040.0, 60.0),
        (EPOCH_2100, 1.0),
        (EPOCH_2100, 60.0),
        (EPOCH_2100, 86400.0),
        (2.5, 0.5),
        (0.75, 0.25),
    ],
)
def test_an_exact_multiple_gives_the_next_one(now: float, interval: float) -> None:
    assert next_tick(now, interval) == now + interval


@pytest.mark.parametrize(
    ("now", "interval", "expected"),
    [
        (10.05, 0.1, 10.1),
        (10.0, 0.5, 10.5),
        (10.3, 0.25, 10.5),
        (EPOCH_2023 + 0.37, 0.5, EPOCH_2023 + 0.5),
        (EPOCH_2023 + 0.01, 0.1, EPOCH_2023 + 0.1),
        (EPOCH_2023 + 0.51, 0.2, EPOCH_2023 + 0.6),
    ],
)
def test_sub_second_intervals(now: float, interval: float, expected: float) -> None:
    tick = next_tick(now, interval)
    assert tick > now
    assert tick == pytest.approx(expected, abs=1e-6)


def test_each_tick_leads_to_the_next() -> None:
    tick = next_tick(EPOCH_2023 + 0.3, 1.0)
    ticks = [tick]
    for _ in range(5):
        tick = next_tick(tick, 1.0)
        ticks.append(tick)
    assert ticks == [EPOCH_2023 + i for i in range(1, 7)]


def test_a_late_read_does_not_shift_later_ticks() -> None:
    # a read that overran by 2.7 intervals resumes on the grid, not 2.7 s off it
    minute = 1_700_000_040.0
    assert next_tick(minute + 60 + 162.0, 60.0) == minute + 240.0


def test_60_s_ticks_are_whole_minutes() -> None:
    for offset in (0.0, 0.001, 13.5, 59.999):
        tick = next_tick(EPOCH_2023 + offset, 60.0)
        assert tick % 60 == 0
        assert 0 < tick - (EPOCH_2023 + offset) <= 60


@given(now=epochs, interval=whole_intervals)
@example(now=EPOCH_2023, interval=60)
@example(now=EPOCH_2100, interval=1)
@example(now=math.nextafter(EPOCH_2100, 0), interval=1)
def test_whole_second_intervals_are_exact(now: float, interval: int) -> None:
    tick = next_tick(now, interval)
    assert tick > now
    assert tick - now <= interval
    assert tick % interval == 0
    # the first multiple after now, exactly
    assert Fraction(tick) == (math.floor(Fraction(now) / interval) + 1) * interval


@given(now=epochs, interval=any_intervals)
@example(now=0.3, interval=0.1)
@example(now=0.7, interval=0.1)
@example(now=EPOCH_2023 + 0.7, interval=0.1)
@example(now=EPOCH_2100, interval=0.1)
def test_result_is_within_one_interval_after_now(now: float, interval: float) -> None:
    tick = next_tick(now, interval)
    # Float multiples of a non-binary interval are rounded: allow that rounding, nothing more.
    slack = 2 * math.ulp(tick)
    assert tick > now
    assert tick - now <= interval + slack


@given(now=epochs, interval=any_intervals)
def test_result_is_aligned_to_a_multiple(now: float, interval: float) -> None:
    tick = next_tick(now, interval)
    k = round(tick / interval)
    assert abs(tick - k * interval) <= 2 * math.ulp(tick)
    # and it is the first multiple after now: the one before is not after now
    assert (k - 1) * interval <= now + 2 * math.ulp(tick)


@given(now=epochs, interval=any_intervals)
def test_same_result_anywhere_between_two_ticks(now: float, interval: float) -> None:
    tick = next_tick(now, interval)
    halfway = tick - interval / 2
    if halfway > now:
        assert next_tick(halfway, interval) == pytest.approx(tick, abs=4 * math.ulp(tick))


@given(now=epochs, interval=any_intervals, late=st.floats(min_value=0, max_value=0.9))
def test_a_read_belongs_to_the_tick_it_was_started_for(
    now: float, interval: float, late: float
) -> None:
    tick = next_tick(now, interval)
    started = tick + late * interval  # however late the read began within its interval
    slack = 4 * math.ulp(started)
    assert last_tick(started, interval) == pytest.approx(tick, abs=slack)
    assert last_tick(started, interval) <= started
