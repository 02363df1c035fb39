"""The other alert kinds' conditions (core.conditions): hysteresis and minimum duration
hold for every sequence of observations, either direction; offline, outbox and projected
demand figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.accounting.core.alerts import EventKind
from collector.accounting.core.conditions import (
    Condition,
    Direction,
    age,
    offline,
    outbox_backlog,
    projected_demand,
    run,
    step,
    window_start,
)

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

levels = st.integers(-50, 50).map(float)
values = st.one_of(st.none(), st.integers(-60, 60).map(float))


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    direction = draw(st.sampled_from(Direction))
    a, b = draw(levels), draw(levels)
    raise_at, clear_at = (
        (max(a, b), min(a, b)) if direction is Direction.ABOVE else (min(a, b), max(a, b))
    )
    minutes = draw(st.integers(0, 10))
    return Condition("c", direction, raise_at, clear_at, timedelta(minutes=minutes))


@st.composite
def observations(draw: st.DrawFn) -> list[tuple[datetime, float | None]]:
    gaps = draw(st.lists(st.integers(1, 4), max_size=60))
    out, t = [], T0
    for gap in gaps:
        t += timedelta(minutes=gap)
        out.append((t, draw(values)))
    return out


def past_raise(c: Condition, v: float) -> bool:
    return v > c.raise_at if c.direction is Direction.ABOVE else v < c.raise_at


def at_clear(c: Condition, v: float) -> bool:
    return v <= c.clear_at if c.direction is Direction.ABOVE else v >= c.clear_at


def reference(
    c: Condition, obs: list[tuple[datetime, float | None]]
) -> list[tuple[EventKind, datetime, datetime]]:
    """The rule written out plainly: the condition for the next change (past the raise
    level while normal, at the clear level while active) seen at every observation from
    `start` on, for min_duration, changes the state; an unknown value or one not meeting
    it starts over."""
    events: list[tuple[EventKind, datetime, datetime]] = []
    active = False
    start: datetime | None = None
    for t, v in obs:
        met = v is not None and (at_clear(c, v) if active else past_raise(c, v))
        if not met:
            start = None
            continue
        start = start or t
        if t - start >= c.min_duration:
            events.append((EventKind.CLEARED if active else EventKind.RAISED, t, start))
            active, start = not active, None
    return events


@given(conditions(), observations())
def test_events_are_those_of_the_plain_rule(
    c: Condition, obs: list[tuple[datetime, float | None]]
) -> None:
    _, events = run(c, obs)
    assert [(e.kind, e.ts, e.since) for e in events] == reference(c, obs)


@given(conditions(), observations())
def test_raised_and_cleared_alternate_and_carry_the_levels_as_given(
    c: Condition, obs: list[tuple[datetime, float | None]]
) -> None:
    _, events = run(c, obs)
    kinds = [e.kind for e in events]
    assert kinds == [EventKind.RAISED, EventKind.CLEARED] * (len(kinds) // 2) + (
        [EventKind.RAISED] if len(kinds) % 2 else []
    )
    for e in events:
        assert e.ts - e.since >= c.min_duration
        if e.kind is EventKind.RAISED:
            assert e.threshold == c.raise_at and past_raise(c, e.value)
        else:
            assert e.threshold == c.clear_at and at_clear(c, e.value)


@given(conditions(), observations())
def test_inside_the_band_nothing_changes(
    c: Condition, obs: list[tuple[datetime, float | None]]
) -> None:
    """Values between the levels (neither past raise nor at clear) never raise, and after
    a raise never clear: the hysteresis."""
    inside = [
        (t, v) for t, v in obs if v is not None and not past_raise(c, v) and not at_clear(c, v)
    ]
    assert run(c, inside)[1] == []
    raised = Condition(c.name, c.direction, c.raise_at, c.clear_at, timedelta(0))
    state, first = run(raised, [(T0, c.raise_at + raised.sign)])
    assert [e.kind for e in first] == [EventKind.RAISED]
    later = [(t, v) for t, v in inside if t > T0]
    assert run(raised, later, state)[1] == []


@given(conditions(), observations())
def test_below_mirrors_above(c: Condition, obs: list[tuple[datetime, float | None]]) -> None:
    mirror = Condition(
        c.name,
        Direction.BELOW if c.direction is Direction.ABOVE else Direction.ABOVE,
        -c.raise_at,
        -c.clear_at,
        c.min_duration,
    )
    negated = [(t, None if v is None else -v) for t, v in obs]
    ours, theirs = run(c, obs)[1], run(mirror, negated)[1]
    assert [(e.kind, e.ts, e.since, e.value) for e in ours] == [
        (e.kind, e.ts, e.since, -e.value) for e in theirs
    ]


@given(conditions(), observations(), st.integers(0, 59))
def test_an_observation_not_newer_than_the_last_changes_nothing(
    c: Condition, obs: list[tuple[datetime, float | None]], back: int
) -> None:
    state, _ = run(c, obs)
    if state.last is None:
        return
    assert step(c, state, state.last - timedelta(minutes=back), c.raise_at + 100) == (state, ())


def test_levels_the_wrong_way_round_are_refused() -> None:
    with pytest.raises(ValueError, match="clear level must not be above"):
        Condition("pf", Direction.ABOVE, 1.0, 2.0)
    with pytest.raises(ValueError, match="clear level must not be below"):
        Condition("pf", Direction.BELOW, 0.9, 0.8)
    with pytest.raises(ValueError, match="negative"):
        Condition("pf", Direction.BELOW, 0.9, 0.92, timedelta(seconds=-1))


def test_a_power_factor_below_0_9_for_5_minutes() -> None:
    c = Condition("pf", Direction.BELOW, 0.9, 0.92, timedelta(minutes=5))
    obs = [
        (T0 + timedelta(minutes=m), v)
        for m, v in enumerate(
            [0.95, 0.85, 0.88, 0.86, 0.89, 0.87, 0.88, 0.91, 0.93, 0.94, 0.95, 0.93, 0.96, 0.95]
        )
    ]
    _, events = run(c, obs)
    assert [(e.kind, e.ts - T0, e.value) for e in events] == [
        (EventKind.RAISED, timedelta(minutes=6), 0.88),
        (EventKind.CLEARED, timedelta(minutes=13), 0.95),
    ]


def test_offline_after_a_set_time_and_back() -> None:
    c = offline("meter m1", timedelta(minutes=5))
    heard = T0
    ages = [(T0 + timedelta(minutes=m), age(heard, T0 + timedelta(minutes=m))) for m in range(8)]
    state, events = run(c, ages)
    assert [(e.kind, e.ts - T0) for e in events] == [(EventKind.RAISED, timedelta(minutes=6))]
    back = T0 + timedelta(minutes=8)
    _, events = run(c, [(back, age(back, back))], state)
    assert [e.kind for e in events] == [EventKind.CLEARED]
    assert age(None, T0) is None
    assert age(T0 + timedelta(seconds=5), T0) == 0.0  # a clock ahead is not negative
    with pytest.raises(ValueError, match="back_within"):
        offline("m", timedelta(minutes=1), timedelta(minutes=2))


def test_outbox_backlog_by_depth_or_age() -> None:
    now = T0 + timedelta(minutes=10)
    assert outbox_backlog(120, T0, now, by_age=False) == 120.0
    assert outbox_backlog(120, T0, now, by_age=True) == 600.0
    assert outbox_backlog(0, None, now, by_age=True) == 0.0
    assert outbox_backlog(None, None, now, by_age=True) is None
    assert outbox_backlog(None, None, now, by_age=False) is None


def test_projected_demand_of_the_current_window() -> None:
    start = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    # 5 minutes at 600 kW (50 kWh), 600 kW holding: the window ends at 600 kW
    assert projected_demand(start, start + timedelta(minutes=5), 50.0, 600.0) == pytest.approx(
        600.0
    )
    # the same energy, power now 900 kW: (50 + 900 x 10/60) / 0.25 = 800
    assert projected_demand(start, start + timedelta(minutes=5), 50.0, 900.0) == pytest.approx(
        800.0
    )
    # at the end, only what was used counts
    assert projected_demand(start, start + timedelta(minutes=15), 200.0, 5000.0) == pytest.approx(
        800.0
    )
    with pytest.raises(ValueError, match="inside the window"):
        projected_demand(start, start + timedelta(minutes=16), 0.0, 0.0)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
)
def test_window_start_is_the_quarter_hour_holding_now(now: datetime) -> None:
    start = window_start(now)
    assert start <= now < start + timedelta(minutes=15)
    assert start.minute % 15 == 0 and start.second == 0 and start.microsecond == 0
