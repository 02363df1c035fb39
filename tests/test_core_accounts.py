"""Worked examples, computed by hand: a month of a cement clinker line, and a mixed
electricity + natural gas + steam site. Conversion, CO2, intensity and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from collector.accounting.core import benchmarks as bm
from collector.accounting.core import carbon, conversion, data
from collector.accounting.core.conversion import CoalBasis, Configured, ConversionSettings
from collector.accounting.core.factors import Confidence
from collector.accounting.core.intensity import (
    Shift,
    Status,
    Window,
    current_shift,
    intensity,
    per_value_added,
    window_start,
    windows,
)
from collector.accounting.core.series import Amount, Quality

REL = 1e-3  # 0.1 %
CST = timezone(timedelta(hours=8))
COAL = data.coal_table()


# --- a month of a cement clinker line -------------------------------------------------
# March: 30 000 t clinker, 1 650 000 kWh, 4 000 t raw coal.
CLINKER_T = 30_000.0
CLINKER_KWH = 1_650_000.0
COAL_T = 4_000.0


def test_clinker_month_kgce_per_tonne_and_standing() -> None:
    elec = conversion.to_kgce("electricity", CLINKER_KWH, "kWh", COAL)
    coal = conversion.to_kgce("raw_coal", COAL_T, "t", COAL)
    # electricity: 1 650 000 kWh x 0.1229 kgce/kWh = 202 785 kgce
    assert elec.value == pytest.approx(202_785.0, rel=REL)
    assert elec.coefficient.confidence is Confidence.HIGH
    # coal: 4 000 t = 4 000 000 kg x 0.7143 kgce/kg = 2 857 200 kgce
    assert coal.value == pytest.approx(2_857_200.0, rel=REL)
    # (202 785 + 2 857 200) / 30 000 t = 3 059 985 / 30 000 = 102.00 kgce/t
    per_t = (elec.value + coal.value) / CLINKER_T
    assert per_t == pytest.approx(102.0, rel=REL)

    level = data.benchmarks().ndrc_level("cement_clinker")  # benchmark 100, baseline 117
    c = bm.classify(per_t, "kgce/t", level)
    assert c.standing is bm.Standing.COMPLIANT
    assert c.to_benchmark == pytest.approx(2.0, rel=1e-2)  # 102.0 - 100
    # GB 16780-2021 grades 100 / 107 / 117: grade 2
    g = bm.grade(per_t, "kgce/t", data.benchmarks().energy_limit("cement_clinker_comprehensive"))
    assert g.grade == 2
    # electricity alone: 1 650 000 / 30 000 = 55 kWh/t; grades 48 / 57 / 61: grade 2
    g = bm.grade(
        CLINKER_KWH / CLINKER_T, "kWh/t", data.benchmarks().energy_limit("clinker_electricity")
    )
    assert g.grade == 2
    # GB/T 36132-2025 style: (117 - 102) / (117 - 100) = 15 / 17 = 0.882
    assert bm.position(per_t, baseline=117, leading=100) == pytest.approx(15 / 17, rel=REL)


def test_clinker_month_with_a_measured_coal_calorific_value() -> None:
    # the lab measures 22 000 kJ/kg: 22 000 / 29 307 = 0.75067 kgce/kg
    # 4 000 000 kg x 0.75067 = 3 002 695 kgce; + 202 785 = 3 205 480; / 30 000 = 106.85
    settings = ConversionSettings(
        measured_lhv={"raw_coal": Configured(22_000.0, "kJ/kg", "lab report 2024-03")}
    )
    coal = conversion.to_kgce("raw_coal", COAL_T, "t", COAL, settings)
    assert coal.coefficient.value == pytest.approx(0.75067, rel=REL)
    assert coal.coefficient.confidence is Confidence.CONFIGURED
    elec = conversion.to_kgce("electricity", CLINKER_KWH, "kWh", COAL, settings)
    per_t = (coal.value + elec.value) / CLINKER_T
    assert per_t == pytest.approx(106.85, rel=REL)
    assert (
        bm.grade(
            per_t, "kgce/t", data.benchmarks().energy_limit("cement_clinker_comprehensive")
        ).grade
        == 2
    )


def test_clinker_month_co2_from_energy() -> None:
    grid = data.grid_factors().get("national_average", 2022)
    elec = carbon.location_based(CLINKER_KWH, grid)
    coal = carbon.fuel("raw_coal", COAL_T, "t", data.fuel_factors())
    # electricity: 1 650 000 kWh x 0.5366 = 885 390 kgCO2
    assert elec.kg_co2 == pytest.approx(885_390.0, rel=REL)
    assert "national_average 2022" in elec.basis
    # coal: 4 000 000 kg x 2.0 kgCO2/kg = 8 000 000 kgCO2
    assert coal.kg_co2 == pytest.approx(8_000_000.0, rel=REL)
    # (885 390 + 8 000 000) / 30 000 t = 296.18 kgCO2/t (energy only: calcination excluded)
    assert (elec.kg_co2 + coal.kg_co2) / CLINKER_T == pytest.approx(296.18, rel=REL)
    # by calorific value: 4 000 000 kg x 0.020908 GJ/kg x 26.4 x 0.98 x 44/12
    # = 83 632 GJ x 94.864 kgCO2/GJ = 7 933 600 kgCO2 (the table rounds to 2.0 kg/kg)
    by_cv = carbon.fuel_by_calorific_value("raw_coal", COAL_T, "t", data.fuel_factors())
    assert by_cv.kg_co2 == pytest.approx(7_933_600.0, rel=REL)


# --- a mixed electricity + natural gas + steam site -----------------------------------
# A month: 120 000 kWh, 15 000 m3 natural gas (gas field), 200 t low-pressure steam bought.


def test_mixed_site_kgce() -> None:
    e = conversion.to_kgce("electricity", 120_000, "kWh", COAL)
    g = conversion.to_kgce("natural_gas_gasfield", 15_000, "m3", COAL)
    s = conversion.to_kgce("steam_low_pressure", 200, "t", COAL)
    # 120 000 x 0.1229 = 14 748; 15 000 x 1.2143 = 18 214.5; 200 000 kg x 0.1286 = 25 720
    assert (e.value, g.value, s.value) == pytest.approx((14_748.0, 18_214.5, 25_720.0), rel=REL)
    assert e.value + g.value + s.value == pytest.approx(58_682.5, rel=REL)
    assert s.coefficient.confidence is Confidence.LOW  # steam's source is weak: shown


def test_mixed_site_kgce_at_equal_value() -> None:
    with pytest.raises(conversion.MissingCoefficient, match="no fixed number"):
        conversion.to_kgce(
            "electricity", 1.0, "kWh", COAL, ConversionSettings(basis=CoalBasis.EQUAL)
        )
    settings = ConversionSettings(
        basis=CoalBasis.EQUAL,
        electricity_equal_value=Configured(0.300, "kgce/kWh", "site energy audit 2024"),
    )
    # 120 000 kWh x 0.300 = 36 000 kgce; with gas and steam 36 000 + 18 214.5 + 25 720
    e = conversion.to_kgce("electricity", 120, "MWh", COAL, settings)
    assert e.value == pytest.approx(36_000.0, rel=REL)
    assert e.value + 18_214.5 + 25_720 == pytest.approx(79_934.5, rel=REL)


def test_mixed_site_co2() -> None:
    east = data.grid_factors().get("regional_average", 2022, "east")
    # location-based: 120 000 x 0.5617 = 67 404 kgCO2
    assert carbon.location_based(120_000, east).kg_co2 == pytest.approx(67_404.0, rel=REL)
    # market-based, 40 % green certificates: 72 000 kWh x 0.5856 (excl. market non-fossil)
    residual = data.grid_factors().get("national_excl_market_nonfossil", 2022)
    mb = carbon.market_based(120_000, residual, green_share=0.4)
    assert mb.emission.kg_co2 == pytest.approx(42_163.2, rel=REL)
    assert (mb.covered_kwh, mb.unused_kwh) == pytest.approx((48_000.0, 0.0))
    # gas per unit: 15 000 m3 x 2.16 = 32 400; by calorific value:
    # 15 000 x 0.038931 GJ/m3 = 583.965 GJ x 15.3 x 0.99 x 44/12 (55.539) = 32 433
    fuels = data.fuel_factors()
    assert carbon.fuel("natural_gas", 15_000, "m3", fuels).kg_co2 == pytest.approx(
        32_400.0, rel=REL
    )
    cv = carbon.fuel_by_calorific_value("natural_gas", 15_000, "m3", fuels)
    assert cv.kg_co2 == pytest.approx(32_433.0, rel=REL)
    # a measured 0.0360 GJ/m3: 540 GJ x 55.539 = 29 991
    cv = carbon.fuel_by_calorific_value("natural_gas", 15_000, "m3", fuels, ncv_gj_per_unit=0.036)
    assert cv.kg_co2 == pytest.approx(29_991.0, rel=REL)
    assert cv.confidence is Confidence.CONFIGURED


def test_instruments_beyond_consumption_are_not_negative_co2() -> None:
    residual = data.grid_factors().get("national_excl_market_nonfossil", 2023)
    ppa = carbon.Instrument("PPA", 150_000)
    mb = carbon.market_based(120_000, residual, [ppa])
    assert mb.emission.kg_co2 == 0.0
    assert mb.unused_kwh == pytest.approx(30_000.0)


def test_an_hourly_factor_series_overrides_the_static_one() -> None:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    h = timedelta(hours=1)
    energy = [Amount(t0, t0 + 2 * h, 200.0), Amount(t0 + 2 * h, t0 + 3 * h, 50.0)]
    static = data.grid_factors().get("national_average", 2023)
    # hour 0: 100 kWh x 0.40; hour 1: 100 kWh x 0.70; hour 2 not in series: 50 x 0.5306
    r = carbon.hourly(energy, {t0: 0.40, t0 + h: 0.70}, static)
    assert r.emission.kg_co2 == pytest.approx(40 + 70 + 26.53, rel=REL)
    assert (r.kwh_from_series, r.kwh_from_fallback) == pytest.approx((200.0, 50.0))


def test_a_carrier_without_a_single_coefficient_must_be_configured() -> None:
    with pytest.raises(conversion.MissingCoefficient, match="range"):
        conversion.to_kgce("coke_oven_gas", 1.0, "m3", COAL)
    with pytest.raises(conversion.MissingCoefficient, match="configure"):
        conversion.to_kgce("hot_water", 1.0, "t", COAL)
    s = ConversionSettings(coefficients={"hot_water": Configured(0.05, "kgce/t", "site study")})
    assert conversion.to_kgce("hot_water", 10, "t", COAL, s).value == pytest.approx(0.5)


def test_units_must_match() -> None:
    with pytest.raises(ValueError, match="cannot convert"):
        conversion.to_kgce("electricity", 1.0, "m3", COAL)
    level = data.benchmarks().ndrc_level("cement_clinker")
    with pytest.raises(bm.UnitMismatch):
        bm.classify(100.0, "kWh/t", level)


# --- benchmarks: edges ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "standing"),
    [
        (99.0, "leading"),
        (100.0, "leading"),
        (110.0, "compliant"),
        (117.0, "compliant"),
        (117.1, "above_baseline"),
    ],
)
def test_clinker_standing_at_the_edges(value: float, standing: str) -> None:
    level = data.benchmarks().ndrc_level("cement_clinker")
    assert bm.classify(value, "kgce/t", level).standing == standing


@pytest.mark.parametrize(
    ("value", "standing"),
    [
        (-35.0, "leading"),
        (-30.0, "leading"),
        (-20.0, "compliant"),
        (-10.0, "compliant"),
        (-5.0, "above_baseline"),
        (3.0, "above_baseline"),
    ],
)
def test_bof_negative_levels(value: float, standing: str) -> None:
    # BOF benchmark -30, baseline -10 kgce/t: more negative is better
    level = data.benchmarks().ndrc_level("bof_converter")
    assert bm.classify(value, "kgce/t", level).standing == standing


def test_grades_with_a_missing_grade_2_and_beyond_the_limit() -> None:
    eaf = data.benchmarks().energy_limit("eaf_lt50t")  # [61, null, 86]
    assert bm.grade(61.0, "kgce/t", eaf).grade == 1
    assert bm.grade(70.0, "kgce/t", eaf).grade == 3
    beyond = bm.grade(90.0, "kgce/t", eaf)
    assert beyond.grade is None
    assert not beyond.within_limit


def test_position_is_clamped_and_works_both_ways() -> None:
    assert bm.position(130, baseline=117, leading=100) == 0.0
    assert bm.position(90, baseline=117, leading=100) == 1.0
    assert bm.position(108.5, baseline=117, leading=100) == pytest.approx(0.5)
    # higher is better, e.g. a renewable share: baseline 0.2, leading 0.6
    assert bm.position(0.5, baseline=0.2, leading=0.6) == pytest.approx(0.75)


# --- intensity windows ----------------------------------------------------------------

SHIFTS = [Shift("day", time(8), time(20)), Shift("night", time(20), time(8))]


def _hourly(
    start: datetime, values: list[float], quality: Quality = Quality.MEASURED
) -> list[Amount]:
    h = timedelta(hours=1)
    return [Amount(start + i * h, start + (i + 1) * h, v, quality) for i, v in enumerate(values)]


def test_windows_and_insufficient_output() -> None:
    # 2024-03-05 local: 00:00-10:00, 1 000 kgce and 10 t per hour, but 02:00-03:00
    # is a stop: 1 000 kgce for 0 t.
    day = datetime(2024, 3, 5, tzinfo=CST)
    energy = _hourly(day, [1000.0] * 10)
    output = _hourly(day, [10.0, 10.0, 0.0, *[10.0] * 7])
    now = day + timedelta(hours=10)
    got = windows(
        energy,
        output,
        now,
        CST,
        {
            Window.ROLLING_15MIN: 1.0,
            Window.ROLLING_1H: 5.0,
            Window.SHIFT: 5.0,
            Window.TODAY: 5.0,
            Window.MONTH_TO_DATE: 5.0,
        },
        SHIFTS,
    )
    # last 15 min: 250 kgce / 2.5 t = 100 kgce/t
    assert got[Window.ROLLING_15MIN].value == pytest.approx(100.0)
    # day shift since 08:00: 2 000 / 20 = 100
    assert got[Window.SHIFT].start == day + timedelta(hours=8)
    assert got[Window.SHIFT].value == pytest.approx(100.0)
    # today: 10 000 kgce / 90 t = 111.1 kgce/t
    assert got[Window.TODAY].value == pytest.approx(111.11, rel=REL)
    assert got[Window.MONTH_TO_DATE].start == datetime(2024, 3, 1, tzinfo=CST)
    # the stop hour alone: 1 000 kgce, 0 t -> no value
    stop = intensity(energy, output, day + timedelta(hours=2), day + timedelta(hours=3), 5.0)
    assert (stop.status, stop.value, stop.numerator) == (Status.INSUFFICIENT_OUTPUT, None, 1000.0)


def test_output_shared_out_over_minutes_still_reaches_its_minimum() -> None:
    # One piece shared out over three minutes as 0.2 + 0.7 + 0.1 sums back in float to
    # 0.9999999999999999, which must still meet a minimum output of 1 piece.
    day = datetime(2024, 3, 5, 9, tzinfo=CST)
    minute = timedelta(minutes=1)
    pieces = [
        Amount(day + i * minute, day + (i + 1) * minute, v) for i, v in enumerate([0.2, 0.7, 0.1])
    ]
    assert sum(p.value for p in pieces) < 1.0  # the float sum the engine sees
    energy = [Amount(day, day + 3 * minute, 7.0)]
    r = intensity(energy, pieces, day, day + 3 * minute, 1.0)
    assert r.status is Status.OK
    assert r.value == pytest.approx(7.0)


def test_night_shift_crosses_midnight() -> None:
    now = datetime(2024, 3, 5, 3, 0, tzinfo=CST)
    shift, start = current_shift(now, CST, SHIFTS)
    assert (shift.name, start) == ("night", datetime(2024, 3, 4, 20, 0, tzinfo=CST))
    assert window_start(Window.YEAR_TO_DATE, now, CST) == datetime(2024, 1, 1, tzinfo=CST)
    with pytest.raises(ValueError, match="no shift"):
        current_shift(now, CST, [Shift("day", time(8), time(20))])


def test_quality_of_the_worst_amount_is_carried() -> None:
    day = datetime(2024, 3, 5, tzinfo=CST)
    energy = _hourly(day, [10.0]) + _hourly(day + timedelta(hours=1), [10.0], Quality.ESTIMATED)
    r = intensity(energy, _hourly(day, [1.0, 1.0]), day, day + timedelta(hours=2), 1.0)
    assert (r.value, r.quality) == (10.0, Quality.ESTIMATED)


def test_per_10k_cny_only_for_months_that_have_value_added() -> None:
    # March: 31 days x 24 h x 100 kgce = 74 400 kgce; value added 12 000 000 CNY
    # = 1 200 x 10 000 CNY -> 74 400 / 1 200 = 62.0 kgce per 10 000 CNY. April has none.
    energy = _hourly(datetime(2024, 3, 1, tzinfo=CST), [100.0] * (31 + 30) * 24)
    got = per_value_added(energy, {(2024, 3): 12_000_000.0, (2024, 4): 0.0}, CST)
    assert len(got) == 1
    assert got[0].month == 3
    assert got[0].per_10k_cny == pytest.approx(62.0)
