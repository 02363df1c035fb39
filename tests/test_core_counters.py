"""Interval amounts from cumulative counters: the edge cases, worked by hand, and
properties: no energy created or lost, whatever the order of arrival."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from collector.accounting.core.counters import (
    CounterResult,
    CounterSpec,
    Issue,
    Replacement,
    Sample,
    deltas,
    integrate_power,
)
from collector.accounting.core.series import Quality, allocate

T0 = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
FIVE_DIGIT = CounterSpec(modulus=100000.0, max_rate=500.0)  # shows 99999.9 last; 500 kW


def hourly(*values: float) -> list[Sample]:
    return [Sample(T0 + i * H, v) for i, v in enumerate(values)]


def issues(result: CounterResult) -> list[Issue]:
    return [f.issue for f in result.findings]


def test_plain_rising_counter() -> None:
    r = deltas(hourly(100.0, 150.5, 151.0), FIVE_DIGIT)
    assert [a.value for a in r.amounts] == pytest.approx([50.5, 0.5])
    assert r.findings == ()


def test_rollover_at_99999_9() -> None:
    # 99950.0 -> 99999.9 -> 0.0 is 50 kWh + 0.1 kWh; then 0.0 -> 30.0 is 30 kWh.
    # Across the wrap: 100000.0 - 99950.0 + 30.0 = 80.0 kWh in one hour.
    r = deltas(hourly(99900.0, 99950.0, 30.0), FIVE_DIGIT)
    assert [a.value for a in r.amounts] == pytest.approx([50.0, 80.0])
    assert issues(r) == [Issue.ROLLOVER]
    assert r.total == pytest.approx(130.0)


def test_a_modulus_without_max_rate_is_refused() -> None:
    # Without a rate any fall passes for a wrap: 600010 -> 0 would be 399,990 m3.
    with pytest.raises(ValueError, match="modulus needs max_rate"):
        CounterSpec(modulus=1_000_000.0)


def test_reset_to_zero_counts_what_was_counted_since() -> None:
    # 1200 -> 1250 (50), reset, reads 20 an hour later: the part between 1250 and the
    # reset is not measured; the hour's use is estimated from the rates either side
    # (50 kWh/h before, 50 after: 50 kWh, marked estimated, more than the 20 it shows);
    # then 20 -> 70 (50).
    r = deltas(hourly(1200.0, 1250.0, 20.0, 70.0), FIVE_DIGIT)
    assert [a.value for a in r.amounts] == pytest.approx([50.0, 50.0, 50.0])
    assert [a.quality for a in r.amounts] == [
        Quality.MEASURED,
        Quality.ESTIMATED,
        Quality.MEASURED,
    ]
    assert issues(r) == [Issue.RESET]
    assert r.findings[0].estimate == pytest.approx(50.0)
    # with no measured neighbour, at least what it shows since: 20, a lower bound
    r = deltas(hourly(1250.0, 20.0, 3000.0, 3001.0), FIVE_DIGIT)
    reset = next(a for a in r.amounts if a.start == T0)
    assert (reset.value, reset.quality) == (20.0, Quality.LOWER_BOUND)


def test_meter_swapped_mid_day_with_the_record() -> None:
    # Old meter: 5000 at 10:00, 5100 at 11:00, removed at 11:30 reading 5140.
    # New meter fitted at 11:30 reading 12.0, reads 52.0 at 12:00 and 152.0 at 13:00.
    # 10-11: 100; 11-12: (5140 - 5100) + (52 - 12) = 40 + 40 = 80; 12-13: 100. Total 280.
    t = T0.replace(hour=10)
    samples = [
        Sample(t, 5000.0),
        Sample(t + H, 5100.0),
        Sample(t + 2 * H, 52.0),
        Sample(t + 3 * H, 152.0),
    ]
    swap = Replacement(ts=t + 1.5 * H, new_initial=12.0, old_final=5140.0)
    r = deltas(samples, FIVE_DIGIT, [swap])
    assert [a.value for a in r.amounts] == pytest.approx([100.0, 80.0, 100.0])
    assert r.total == pytest.approx(280.0)
    assert issues(r) == [Issue.REPLACEMENT]
    assert all(a.quality is Quality.MEASURED for a in r.amounts)


def test_meter_swapped_without_the_final_reading_is_a_lower_bound() -> None:
    t = T0.replace(hour=10)
    samples = [Sample(t, 5000.0), Sample(t + H, 5100.0), Sample(t + 2 * H, 52.0)]
    r = deltas(samples, FIVE_DIGIT, [Replacement(ts=t + 1.5 * H, new_initial=12.0)])
    assert [a.value for a in r.amounts] == pytest.approx([100.0, 40.0])  # 52 - 12
    assert r.amounts[-1].quality is Quality.LOWER_BOUND


def test_meter_swapped_without_a_record_is_reported_not_guessed() -> None:
    # 5100 -> 3000 -> (nothing measured after): the fall is reported, not estimated
    r = deltas(hourly(5100.0, 3000.0, 9000.0, 9001.0), FIVE_DIGIT)
    assert Issue.DISCONTINUITY in issues(r)
    (unknown,) = [f for f in r.unknown if f.issue is Issue.DISCONTINUITY]
    assert (unknown.start, unknown.end) == (T0, T0 + H)


def test_a_missing_hour_is_measured_and_apportioned() -> None:
    # Readings at 00:00, 01:00, (02:00 missing), 03:00: 01-03 is 90 kWh over two hours.
    samples = [Sample(T0, 0.0), Sample(T0 + H, 40.0), Sample(T0 + 3 * H, 130.0)]
    r = deltas(samples, FIVE_DIGIT, max_gap=timedelta(minutes=90))
    assert r.total == pytest.approx(130.0)
    assert issues(r) == [Issue.GAP]
    buckets = allocate(r.amounts, H)
    assert [b.value for b in buckets] == pytest.approx([40.0, 45.0, 45.0])
    assert [b.quality for b in buckets] == [
        Quality.MEASURED,
        Quality.APPORTIONED,
        Quality.APPORTIONED,
    ]


def test_an_out_of_order_batch_gives_the_same_amounts() -> None:
    # A backlog arrives after live readings: the result depends only on the set.
    samples = hourly(10.0, 20.0, 35.0, 50.0, 80.0)
    late_first = samples[3:] + samples[:3]
    assert deltas(late_first, FIVE_DIGIT) == deltas(samples, FIVE_DIGIT)
    assert deltas(samples + samples[1:3], FIVE_DIGIT) == deltas(samples, FIVE_DIGIT)


def test_conflicting_readings_at_one_time_keep_the_lower() -> None:
    samples = [*hourly(10.0, 20.0, 30.0), Sample(T0 + H, 25.0)]
    r = deltas(samples, FIVE_DIGIT)
    assert r.total == pytest.approx(20.0)
    assert issues(r) == [Issue.CONFLICT]


def test_an_implausible_jump_that_stays_is_excluded_and_reported() -> None:
    # 500 kW for one hour is at most 500 kWh; 1000 -> 9000 is 8000: a jump. The hour's
    # use is estimated from the rates either side (100 kWh/h, 100 kWh/h): 100, so
    # 8000 - 100 = 7900 is excluded. Total 100 + 100 (estimated) + 100 = 300.
    r = deltas(hourly(900.0, 1000.0, 9000.0, 9100.0), FIVE_DIGIT)
    assert [a.value for a in r.amounts] == pytest.approx([100.0, 100.0, 100.0])
    assert r.amounts[1].quality is Quality.ESTIMATED
    assert issues(r) == [Issue.JUMP]
    assert r.excluded == pytest.approx(7900.0)
    (jump,) = r.findings
    assert jump.estimate == pytest.approx(100.0)
    assert "7900 excluded" in jump.detail and "estimated at 100" in jump.detail


def test_a_single_corrupt_reading_loses_nothing() -> None:
    # 1000 -> 9000 (corrupt) -> 1100: the reading is dropped, 1000 -> 1100 is 100 kWh.
    r = deltas(hourly(900.0, 1000.0, 9000.0, 1100.0), FIVE_DIGIT)
    assert r.total == pytest.approx(200.0)
    assert issues(r) == [Issue.GLITCH]
    assert r.amounts[-1].start == T0 + H  # spans the dropped reading
    # a reading of zero between good ones is a glitch, not a reset
    r = deltas(hourly(900.0, 1000.0, 0.0, 1100.0), FIVE_DIGIT)
    assert r.total == pytest.approx(200.0)
    assert issues(r) == [Issue.GLITCH]


def test_an_out_of_line_last_reading_waits_for_the_next() -> None:
    r = deltas(hourly(900.0, 1000.0, 9000.0), FIVE_DIGIT)
    assert r.total == pytest.approx(100.0)
    assert issues(r) == [Issue.UNRESOLVED]


# --- the issue's worked examples (minute readings) ---------------------------------------

M = timedelta(minutes=1)
GAS = CounterSpec(modulus=1_000_000.0, max_rate=600.0)  # gas-main: G400, at most 600 m3/h


def minutely(*values: float) -> list[Sample]:
    return [Sample(T0 + i * M, v) for i, v in enumerate(values)]


def test_a_zero_read_on_a_counter_above_half_the_modulus_is_a_glitch() -> None:
    # 600000, 600010, 0, 600030, 600040 one minute apart: 600010 -> 0 would be a wrap of
    # 1,000,000 - 600,010 + 0 = 399,990 m3 in a minute, far above 600 m3/h x 1/60 h
    # = 10 m3: not a wrap. 600010 -> 600030 (20 m3 in 2 min) fits: the 0 is a glitch.
    # Total 10 + 20 + 10 = 40 m3 (it was 1,000,040 with no rate).
    r = deltas(minutely(600000.0, 600010.0, 0.0, 600030.0, 600040.0), GAS)
    assert r.total == pytest.approx(40.0, rel=1e-3)
    assert issues(r) == [Issue.GLITCH]
    (glitch,) = r.findings
    assert (glitch.start, glitch.after) == (T0 + 2 * M, 0.0)
    assert "reading 0 out of line" in glitch.detail


def test_a_real_rollover_near_the_modulus_is_accepted() -> None:
    # 999990 -> 999998 -> 5 -> 12: the wrap is 1,000,000 - 999,998 + 5 = 7 m3 in a
    # minute, within 10 m3: accepted. Total 8 + 7 + 7 = 22 m3.
    r = deltas(minutely(999990.0, 999998.0, 5.0, 12.0), GAS)
    assert [a.value for a in r.amounts] == pytest.approx([8.0, 7.0, 7.0], rel=1e-3)
    assert issues(r) == [Issue.ROLLOVER]


def test_a_recorded_swap_gives_the_energy_across_it() -> None:
    # Old meter 123400.0 at 10:00, 123450.0 at 11:00, taken out at 11:30 reading
    # 123456.7; new meter fitted at 11:30 reading 0.3, reads 40.3 at 12:00, 140.3 at 13:00.
    # 10-11: 50; 11-12: (123456.7 - 123450.0) + (40.3 - 0.3) = 6.7 + 40.0 = 46.7;
    # 12-13: 100. Total 196.7 kWh, all measured.
    t = T0.replace(hour=10)
    samples = [
        Sample(t, 123400.0),
        Sample(t + H, 123450.0),
        Sample(t + 2 * H, 40.3),
        Sample(t + 3 * H, 140.3),
    ]
    swap = Replacement(t + 1.5 * H, new_initial=0.3, old_final=123456.7, by="J. Wang")
    r = deltas(samples, CounterSpec(modulus=1_000_000.0, max_rate=500.0), [swap])
    assert [a.value for a in r.amounts] == pytest.approx([50.0, 46.7, 100.0], rel=1e-3)
    assert r.total == pytest.approx(196.7, rel=1e-3)
    assert all(a.quality is Quality.MEASURED for a in r.amounts)
    (f,) = r.findings
    assert f.issue is Issue.REPLACEMENT and "J. Wang" in f.detail
    # the same readings without the record: a fall to 40.3, a reset, not 123,410 created
    r = deltas(samples, CounterSpec(modulus=1_000_000.0, max_rate=500.0))
    assert issues(r) == [Issue.RESET]
    assert r.total <= 3 * 500.0


def test_a_swap_record_that_does_not_fit_is_not_bridged() -> None:
    # old final 9000 would mean 9000 - 5100 = 3900 kWh in 1 h on a 500 kW meter
    t = T0.replace(hour=10)
    samples = [Sample(t, 5000.0), Sample(t + H, 5100.0), Sample(t + 2 * H, 52.0)]
    swap = Replacement(t + 1.5 * H, new_initial=12.0, old_final=9000.0)
    r = deltas(samples, FIVE_DIGIT, [swap])
    assert r.total == pytest.approx(100.0)
    (f,) = r.unknown
    assert f.issue is Issue.REPLACEMENT and "does not fit" in f.detail


def test_a_jump_that_stays_excludes_only_the_jump() -> None:
    # 1 kWh a minute, then +5000 in the 4th minute and stays (a register re-scaled or
    # a corrupt write): 3 -> 5004 is 5001 in a minute, more than 120 kW x 1/60 h = 2.
    # The minute's use is estimated at the neighbours' rate, 1 kWh (60 kWh/h before and
    # after x 1/60 h); excluded 5001 - 1 = 5000. Total 3 + 1 (estimated) + 2 = 6 kWh, the
    # real use, not 5 (the minute lost with the jump) nor 5006.
    r = deltas(minutely(0.0, 1.0, 2.0, 3.0, 5004.0, 5005.0, 5006.0), CounterSpec(max_rate=120.0))
    assert r.total == pytest.approx(6.0, rel=1e-3)
    assert r.excluded == pytest.approx(5000.0, rel=1e-3)
    estimated = [a for a in r.amounts if a.quality is Quality.ESTIMATED]
    assert [(a.start, a.end, round(a.value, 9)) for a in estimated] == [
        (T0 + 3 * M, T0 + 4 * M, 1.0)
    ]
    (jump,) = r.findings
    assert jump.issue is Issue.JUMP and jump.estimate == pytest.approx(1.0)


def test_a_jump_over_a_long_interval_keeps_that_intervals_use() -> None:
    # 200 kW for 60 hours is 12,000 kWh. Readings hourly; between hours 30 and 31 the
    # register gains 5000 more than it counted. Before the fix the hour's 200 kWh went
    # with the jump (11,800); now it is estimated from 200 kWh/h either side: 12,000.
    values = [200.0 * h + (5000.0 if h >= 31 else 0.0) for h in range(61)]
    r = deltas(hourly(*values), CounterSpec(max_rate=400.0))
    assert r.total == pytest.approx(12_000.0, rel=1e-3)
    assert r.excluded == pytest.approx(5000.0, rel=1e-3)


def test_a_fall_that_stays_is_estimated_and_asks_for_the_swap() -> None:
    # 5100 -> 3000: not a rollover (no modulus), not a reset (3000 > 500 kWh in an hour):
    # the hour's use is estimated from 100 kWh/h either side.
    r = deltas(hourly(5000.0, 5100.0, 3000.0, 3100.0), FIVE_DIGIT)
    assert [a.value for a in r.amounts] == pytest.approx([100.0, 100.0, 100.0])
    (f,) = r.findings
    assert f.issue is Issue.DISCONTINUITY and f.estimate == pytest.approx(100.0)
    assert "energy-collector swap" in f.detail


def test_jitter_within_tolerance_is_not_a_reset() -> None:
    spec = CounterSpec(max_rate=500.0, tolerance=0.01)
    r = deltas(hourly(100.0, 100.005, 100.0, 101.0), spec)
    # 100 -> 100.005 (0.005), 100.005 -> 100.0 read as 0, then from 100.005 to 101
    assert r.total == pytest.approx(1.0)
    assert r.findings == ()


def test_power_integration_is_estimated() -> None:
    # 10 kW then 20 kW 30 min apart: (10 + 20) / 2 x 0.5 h = 7.5 kWh;
    # then a 3 h silence: not integrated across.
    samples = [
        Sample(T0, 10_000.0),
        Sample(T0 + timedelta(minutes=30), 20_000.0),
        Sample(T0 + timedelta(hours=3, minutes=30), 20_000.0),
    ]
    r = integrate_power(samples, max_gap=timedelta(hours=1))
    assert [a.value for a in r.amounts] == pytest.approx([7.5])
    assert r.amounts[0].quality is Quality.ESTIMATED
    assert issues(r) == [Issue.NOT_INTEGRATED]


# --- properties ------------------------------------------------------------------------

MODULUS_TENTHS = 1_000_000  # a register that shows 99999.9 last
RATE = 100.0  # kW
SPEC = CounterSpec(modulus=MODULUS_TENTHS / 10, max_rate=RATE)


@st.composite
def meter_history(draw: st.DrawFn) -> tuple[list[Sample], int]:
    """Readings of a wrapping counter and the true consumption in tenths of a kWh."""
    start = draw(st.integers(0, MODULUS_TENTHS - 1))
    steps = draw(st.lists(st.integers(1, 120), min_size=1, max_size=60))  # minutes
    ts, cum, samples, true = T0, start, [Sample(T0, start / 10)], 0
    for minutes in steps:
        # at most RATE kW x minutes/60 h, in tenths of a kWh
        inc = draw(st.integers(0, int(RATE * minutes / 60 * 10)))
        ts += timedelta(minutes=minutes)
        cum += inc
        true += inc
        samples.append(Sample(ts, (cum % MODULUS_TENTHS) / 10))
    return samples, true


@given(meter_history())
@example(  # a rise exactly at max_rate x interval, 125.00000000000001 in binary floats
    (
        [
            Sample(T0, 0.0),
            Sample(T0 + timedelta(minutes=5), 3.3),
            Sample(T0 + timedelta(minutes=80), 128.3),
        ],
        1283,
    )
)
@settings(max_examples=300)
def test_sum_of_deltas_is_the_true_consumption(history: tuple[list[Sample], int]) -> None:
    samples, true = history
    r = deltas(samples, SPEC)
    assert math.isclose(r.total, true / 10, abs_tol=1e-6)
    assert set(issues(r)) <= {Issue.ROLLOVER}


@given(meter_history(), st.randoms(use_true_random=False))
@settings(max_examples=200)
def test_order_of_arrival_and_redelivery_change_nothing(
    history: tuple[list[Sample], int], rnd: random.Random
) -> None:
    samples, _ = history
    shuffled = samples + rnd.sample(samples, k=len(samples) // 3)
    rnd.shuffle(shuffled)
    assert deltas(shuffled, SPEC) == deltas(samples, SPEC)


@given(meter_history(), st.data())
@settings(max_examples=200)
def test_a_corrupt_reading_loses_nothing(
    history: tuple[list[Sample], int], data: st.DataObject
) -> None:
    samples, true = history
    if len(samples) < 3:
        return
    i = data.draw(st.integers(0, len(samples) - 2))
    a, b = samples[i], samples[i + 1]
    # far out of line: more than any interval allows, less than half a turn
    offset = data.draw(st.integers(30_000, MODULUS_TENTHS // 2 - 30_000))
    bad = Sample(a.ts + (b.ts - a.ts) / 2, ((round(a.value * 10) + offset) % MODULUS_TENTHS) / 10)
    r = deltas([*samples, bad], SPEC)
    assert math.isclose(r.total, true / 10, abs_tol=1e-6)
    assert Issue.GLITCH in issues(r)


@given(meter_history(), st.sampled_from([timedelta(minutes=1), timedelta(minutes=15), H]))
@settings(max_examples=200)
def test_bucketing_keeps_the_total(history: tuple[list[Sample], int], step: timedelta) -> None:
    samples, true = history
    buckets = allocate(deltas(samples, SPEC).amounts, step)
    assert math.isclose(math.fsum(b.value for b in buckets), true / 10, abs_tol=1e-6)
    assert all(0 < b.covered <= 1 for b in buckets)


@st.composite
def hostile_history(draw: st.DrawFn) -> tuple[list[Sample], list[Replacement]]:
    """Any readings a broken, swapped, reset or wrapping meter might send, in any order,
    with any swap records (right or wrong)."""
    values = st.one_of(
        st.just(0.0),
        st.floats(0.0, 99_999.9, allow_nan=False),
        st.integers(0, 999_999).map(lambda v: v / 10),
    )
    times = st.integers(0, 600).map(lambda m: T0 + timedelta(minutes=m))
    samples = draw(st.lists(st.builds(Sample, times, values), max_size=40))
    swaps = draw(
        st.lists(
            st.builds(
                Replacement,
                times,
                st.floats(0.0, 99_999.9),
                st.none() | st.floats(0.0, 99_999.9),
            ),
            max_size=3,
            unique_by=lambda r: r.ts,
        )
    )
    return samples, swaps


@given(hostile_history())
@settings(max_examples=500)
def test_no_sequence_creates_energy_or_goes_negative(
    history: tuple[list[Sample], list[Replacement]],
) -> None:
    samples, swaps = history
    r = deltas(samples, SPEC, swaps)
    ordered = sorted(r.amounts, key=lambda a: (a.start, a.end))
    for a in ordered:
        # each amount within what the meter can count over its interval, never negative
        hours = (a.end - a.start).total_seconds() / 3600
        assert 0.0 <= a.value <= RATE * hours * (1 + 1e-9) + 1e-6, a
    for x, y in pairwise(ordered):
        assert x.end <= y.start  # no interval counted twice
    if samples:
        span = (max(s.ts for s in samples) - min(s.ts for s in samples)).total_seconds() / 3600
        assert r.total <= RATE * span * (1 + 1e-9) + 1e-6
    for f in r.findings:
        assert f.excluded is None or f.excluded >= 0.0
        assert f.estimate is None or f.estimate >= 0.0
