"""Targets (progress, projection) and the baseline alert state machine, by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.accounting.core import data
from collector.accounting.core.alerts import AlarmConfig, AlarmState, EventKind, Phase, advance, run
from collector.accounting.core.targets import Target, progress, project, year_end

REL = 1e-3


def test_default_energy_target() -> None:
    # base 2020: 500 kgce per 10 000 CNY; -13.5 % by 2025 -> 500 x 0.865 = 432.5
    t = Target.default(data.target_defaults(), "energy", 500.0)
    assert (t.base_year, t.target_year) == (2020, 2025)
    assert t.target_intensity == pytest.approx(432.5)
    assert "88号" in t.source
    co2 = Target.default(data.target_defaults(), "co2", 1000.0)
    assert co2.target_intensity == pytest.approx(820.0)  # 1000 x (1 - 0.18)


def test_progress_and_projection() -> None:
    t = Target(2020, 500.0, 2025, 0.135)
    # 2023: 460 -> achieved 1 - 460/500 = 8 %.
    # steady path: 500 x 0.865^(3/5) = 500 x 0.91666 = 458.33 -> 460 is not on it.
    p = progress(t, 2023, 460.0)
    assert p.achieved == pytest.approx(0.08)
    assert t.path(2023) == pytest.approx(458.33, rel=REL)
    assert not p.on_path
    # rate: (460/500)^(1/3) - 1 = 0.92^(1/3) - 1 = -2.741 % a year;
    # 2025: 460 x 0.972589^2 = 460 x 0.945929 = 435.13 > 432.5: not on track.
    pr = project(t, {2021: 490.0, 2023: 460.0})
    assert pr.annual_rate == pytest.approx(-0.02741, rel=REL)
    assert pr.projected == pytest.approx(435.13, rel=REL)
    assert not pr.on_track
    assert project(t, {2023: 450.0}).on_track  # 450 x (0.9^(1/3))^2 = 418.0


def test_no_path_and_no_projection_after_the_target_year() -> None:
    t = Target(2020, 500.0, 2025, 0.135)
    # 2026 is after 2025: there is no path to be on (the old code extended it: 500 x
    # 0.865^(6/5) = 420.9 and judged 430 "off path"), only the target 432.5, reached by 430.
    p = progress(t, 2026, 430.0)
    assert p.on_path is None and p.reached
    assert not progress(t, 2026, 440.0).reached
    with pytest.raises(ValueError, match="after the target year"):
        t.path(2026)
    # the old projection stepped back a year from 2026 to 2025; now 2026 is not used
    with pytest.raises(ValueError, match="not after the target year 2025"):
        project(t, {2026: 430.0})
    # years after the target are ignored; 2024 is projected forward one year:
    # rate (450/500)^(1/4) - 1 = -2.599 %; 2025: 450 x 0.97400 = 438.30
    assert project(t, {2024: 450.0, 2026: 300.0}).projected == pytest.approx(438.30, rel=REL)


@given(
    base_year=st.integers(1990, 2040),
    span=st.integers(1, 20),
    ahead=st.integers(1, 40),
    base=st.floats(0.01, 1e6),
    ratio=st.floats(0.05, 3.0),
    reduction=st.floats(0.01, 0.9),
)
def test_projection_only_forward_to_the_target_year(
    base_year: int, span: int, ahead: int, base: float, ratio: float, reduction: float
) -> None:
    t = Target(base_year, base, base_year + span, reduction)
    year = base_year + ahead
    observed = base * ratio
    if year > t.target_year:
        with pytest.raises(ValueError):
            project(t, {year: observed})
        assert progress(t, year, observed).on_path is None
        return
    p = project(t, {year: observed})
    # forward: the rate applied (target year - year) >= 0 times, so the projection moves
    # from the observed value in the direction of the rate, never back past the base
    if p.annual_rate < 0:
        assert p.projected <= observed * (1 + 1e-9)
    else:
        assert p.projected >= observed * (1 - 1e-9)
    expected = observed * (observed / base) ** ((t.target_year - year) / ahead)
    assert p.projected == pytest.approx(expected, rel=1e-9)
    assert progress(t, year, observed).on_path is not None


def test_year_end_at_the_current_rate() -> None:
    # end of September (0.75 of the year): 300 000 kgce for 6 000 000 CNY
    # -> 400 000 kgce, 8 000 000 CNY, 0.05 kgce/CNY (500 per 10 000 CNY)
    ye = year_end(300_000.0, 6_000_000.0, 0.75)
    assert (ye.numerator, ye.denominator) == pytest.approx((400_000.0, 8_000_000.0))
    assert ye.intensity == pytest.approx(0.05)


# --- alerts ---------------------------------------------------------------------------
T0 = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
Q = timedelta(minutes=15)
# clinker baseline 117 kgce/t; clear at 114 or below; conditions must last 30 min
CFG = AlarmConfig.from_baseline(
    "kiln1", baseline=117.0, band=3.0, min_duration=timedelta(minutes=30)
)
SERIES: list[float | None] = [
    110,  # 0    normal
    118,  # 15   rising since 15
    119,  # 30   rising (15 min)
    116.9,  # 45   back at/below 117 before 30 min: a blip, nothing raised
    120,  # 60   rising since 60
    121,  # 75
    122,  # 90   30 min above: RAISED at 90, since 60
    115,  # 105  between 114 and 117: still active (hysteresis)
    113,  # 120  clearing since 120
    118,  # 135  back above 114: active again
    112,  # 150  clearing since 150
    None,  # 165  insufficient output: the clearing is not seen continuously
    113,  # 180  clearing since 180
    113,  # 195
    113,  # 210  30 min at/below 114: CLEARED at 210, since 180
]
READINGS = [(T0 + i * Q, v) for i, v in enumerate(SERIES)]


def test_hysteresis_and_minimum_duration() -> None:
    state, events = run(CFG, READINGS)
    assert [(e.kind, e.ts, e.since) for e in events] == [
        (EventKind.RAISED, T0 + 6 * Q, T0 + 4 * Q),
        (EventKind.CLEARED, T0 + 14 * Q, T0 + 12 * Q),
    ]
    assert events[0].threshold == 117.0
    assert events[1].threshold == 114.0
    assert state.phase is Phase.NORMAL


def test_a_stale_reading_is_ignored() -> None:
    state, _ = run(CFG, READINGS[:7])
    assert state.phase is Phase.ACTIVE
    assert advance(CFG, state, T0, 50.0) == (state, ())


def test_negative_baselines_work() -> None:
    bof = AlarmConfig.from_baseline("bof", baseline=-10.0, band=2.0, min_duration=timedelta(0))
    _, events = run(bof, [(T0, -15.0), (T0 + Q, -9.0), (T0 + 2 * Q, -11.0), (T0 + 3 * Q, -12.5)])
    assert [(e.kind, e.ts) for e in events] == [
        (EventKind.RAISED, T0 + Q),
        (EventKind.CLEARED, T0 + 3 * Q),
    ]


@given(st.integers(0, len(READINGS)))
def test_a_stored_state_resumes_exactly(cut: int) -> None:
    state, first = run(CFG, READINGS[:cut])
    end, second = run(CFG, READINGS[cut:], AlarmState(state.phase, state.since, state.last))
    assert first + second == run(CFG, READINGS)[1]
    assert end == run(CFG, READINGS)[0]


@given(st.lists(st.one_of(st.none(), st.floats(100, 130)), max_size=60))
def test_events_alternate_and_each_condition_lasted(values: list[float | None]) -> None:
    readings = [(T0 + i * Q, v) for i, v in enumerate(values)]
    _, events = run(CFG, readings)
    kinds = [e.kind for e in events]
    assert kinds == [EventKind.RAISED, EventKind.CLEARED] * (len(kinds) // 2) + (
        [EventKind.RAISED] if len(kinds) % 2 else []
    )
    assert all(e.ts - e.since >= CFG.min_duration for e in events)
