"""Maximum demand (15-minute sliding windows) and time-of-use split and cost, by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from collector.accounting.core.demand import max_demand
from collector.accounting.core.series import Amount
from collector.accounting.core.tou import Period, Season, TouCalendar, seasons_from_hours, split

CST = timezone(timedelta(hours=8))
M = timedelta(minutes=1)


def minutes(start: datetime, count: int, kwh: float) -> dict[datetime, float]:
    return {start + i * M: kwh for i in range(count)}


def test_sliding_window_finds_the_peak_fixed_blocks_would_split() -> None:
    # 10:00-11:00 at 10 kWh/min (600 kW), with 10:10-10:17 (8 min) at 20 kWh/min.
    start = datetime(2024, 3, 5, 10, 0, tzinfo=CST)
    data = minutes(start, 60, 10.0) | minutes(start + 10 * M, 8, 20.0)
    # Fixed blocks would see 10:00-10:15: 5 x 20 + 10 x 10 = 200 kWh -> 800 kW.
    # Sliding by 1 min, a window holds all 8 minutes: 8 x 20 + 7 x 10 = 230 kWh
    # / 0.25 h = 920 kW.
    (march,) = max_demand(data, CST)
    assert (march.year, march.month) == (2024, 3)
    assert march.kw == pytest.approx(920.0)
    assert march.window_start <= start + 10 * M
    assert march.window_end >= start + 18 * M
    assert march.windows == 60 - 15 + 1
    assert march.incomplete == 0


def test_fixed_blocks_when_the_slide_is_the_window() -> None:
    start = datetime(2024, 3, 5, 10, 0, tzinfo=CST)
    data = minutes(start, 60, 10.0) | minutes(start + 10 * M, 8, 20.0)
    (march,) = max_demand(data, CST, slide=timedelta(minutes=15))
    assert march.kw == pytest.approx(800.0)


def test_a_missing_minute_leaves_its_windows_out() -> None:
    start = datetime(2024, 3, 5, 10, 0, tzinfo=CST)
    data = minutes(start, 30, 10.0) | minutes(start + 10 * M, 1, 100.0)
    del data[start + 10 * M]  # the peak minute is missing: never guessed
    (march,) = max_demand(data, CST)
    assert march.kw == pytest.approx(600.0)  # 15 x 10 kWh / 0.25 h
    assert march.incomplete == 11  # the windows starting 10:00..10:10 all hold 10:10
    assert march.windows == 30 - 15 + 1 - 11


def test_windows_across_a_month_end_count_for_neither_month() -> None:
    # 31 Mar 23:30 - 1 Apr 00:30 local at 5 kWh/min (300 kW); 23:55-00:05 at 30 kWh/min.
    start = datetime(2024, 3, 31, 23, 30, tzinfo=CST)
    data = minutes(start, 60, 5.0) | minutes(start + 25 * M, 10, 30.0)
    march, april = max_demand(data, CST)
    # March's last window 23:45-00:00 holds 23:55-23:59 (5 min): 5 x 30 + 10 x 5 = 200 kWh
    # -> 800 kW. April's first window 00:00-00:15 holds 00:00-00:04: the same 800 kW.
    assert (march.month, april.month) == (3, 4)
    assert march.kw == pytest.approx(800.0)
    assert april.kw == pytest.approx(800.0)


# --- time of use ----------------------------------------------------------------------
# The Shanghai example hours of the domain reference (L: check the provincial notice).
SEASONS = seasons_from_hours(
    {
        "summer": (
            [7, 8, 9],
            {
                Period.PEAK: [8, 9, 10, 13, 14, 18, 19, 20],
                Period.FLAT: [6, 7, 11, 12, 15, 16, 17, 21],
                Period.VALLEY: [0, 1, 2, 3, 4, 5, 22, 23],
            },
        ),
        "non_summer": (
            [1, 2, 3, 4, 5, 6, 10, 11, 12],
            {
                Period.PEAK: [8, 9, 10, 18, 19, 20],
                Period.FLAT: [6, 7, 11, 12, 13, 14, 15, 16, 17, 21],
                Period.VALLEY: [0, 1, 2, 3, 4, 5, 22, 23],
            },
        ),
    }
)
PRICES = {
    ("summer", Period.PEAK): 1.30,
    ("summer", Period.FLAT): 0.70,
    ("summer", Period.VALLEY): 0.30,
    ("non_summer", Period.PEAK): 1.10,
    ("non_summer", Period.FLAT): 0.65,
    ("non_summer", Period.VALLEY): 0.32,
}
CAL = TouCalendar(SEASONS, PRICES)


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def test_across_midnight_all_valley() -> None:
    cost = split([Amount(local(2024, 3, 5, 23), local(2024, 3, 6, 1), 100.0)], CAL, CST)
    assert cost.kwh_in(Period.VALLEY) == pytest.approx(100.0)
    assert cost.cny == pytest.approx(32.0)  # 100 x 0.32


def test_an_amount_split_at_a_period_boundary() -> None:
    # 21:30-22:30, 50 kWh: 21:30-22:00 flat (25), 22:00-22:30 valley (25)
    cost = split([Amount(local(2024, 3, 5, 21, 30), local(2024, 3, 5, 22, 30), 50.0)], CAL, CST)
    assert cost.kwh_in(Period.FLAT) == pytest.approx(25.0)
    assert cost.kwh_in(Period.VALLEY) == pytest.approx(25.0)
    assert cost.cny == pytest.approx(25 * 0.65 + 25 * 0.32)


def test_across_midnight_and_a_season_change() -> None:
    # 30 Sep 20:00 -> 1 Oct 09:00 local, 13 h at 10 kWh/h = 130 kWh.
    # 30 Sep (summer): 20-21 peak 10, 21-22 flat 10, 22-24 valley 20.
    # 1 Oct (non-summer): 00-06 valley 60, 06-08 flat 20, 08-09 peak 10.
    # Cost: 10 x 1.30 + 10 x 0.70 + 20 x 0.30 + 60 x 0.32 + 20 x 0.65 + 10 x 1.10
    #     = 13 + 7 + 6 + 19.2 + 13 + 11 = 69.2 CNY
    a = Amount(local(2024, 9, 30, 20), local(2024, 10, 1, 9), 130.0)
    cost = split([a], CAL, CST)
    got = {(line.season, line.period): line.kwh for line in cost.lines}
    assert got == pytest.approx(
        {
            ("summer", Period.PEAK): 10.0,
            ("summer", Period.FLAT): 10.0,
            ("summer", Period.VALLEY): 20.0,
            ("non_summer", Period.VALLEY): 60.0,
            ("non_summer", Period.FLAT): 20.0,
            ("non_summer", Period.PEAK): 10.0,
        }
    )
    assert cost.kwh == pytest.approx(130.0)
    assert cost.cny == pytest.approx(69.2)
    # 10 t of output: 6.92 CNY/t; 0.5 t is below a 1 t minimum: no figure
    assert cost.per_unit(10.0, min_output=1.0) == pytest.approx(6.92)
    assert cost.per_unit(0.5, min_output=1.0) is None


def test_a_calendar_must_cover_every_hour_and_month_and_price_each_period() -> None:
    with pytest.raises(ValueError, match="hours missing"):
        Season.from_hours("x", [1], {Period.FLAT: range(23)})
    with pytest.raises(ValueError, match="each month"):
        TouCalendar(SEASONS[:1], PRICES)
    with pytest.raises(ValueError, match="no price"):
        TouCalendar(SEASONS, {k: v for k, v in PRICES.items() if k[1] is not Period.PEAK})
