"""The provincial platform's indicators and their data quality, on a day worked by hand.

The worked day: 2026-10-15 in Asia/Shanghai (1,440 minutes), minute rows written straight
into the accounting database (what the accounting engine would have written):

    grid    electricity, boundary: 1 kWh a minute, 0.1229 kgce/kWh, but for 4 minutes
            missing in the 10:00 slot and 10 in the 13:15 slot: 1,426 kWh, 175.2554 kgce
    gas     natural gas, boundary: 0.25 m3 a minute all day: 360 m3, x 1.2143 = 437.148 kgce
    l1      electricity, line kiln (submeter): 0.5 kWh a minute: 720 kWh, 88.488 kgce
    kiln output: 0.01 t a minute: 14.4 t; 88.488 / 14.4 = 6.145 kgce/t

    total comprehensive energy 175.2554 + 437.148 = 612.4034 kgce
    primary (natural gas) 437.148, secondary (electricity) 175.2554
    15-minute slots: 96, complete 94 (10:00 and 13:15 miss minutes): 94/96 = 0.97917 >= 0.9
    slot 10:00-10:15: grid 11 kWh, gas 3.75 m3; 11 of 15 minutes whole: 0.7333 < 0.9
    month 2026-10 (only that day has data): consistency against a record of the day as
    uploaded with 600.0 kgce: |600 - 612.4034| / 612.4034 = 0.020254 <= 0.05;
    with 580.0: 32.4034 / 612.4034 = 0.052912 > 0.05.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.accounting.db import AccountingDB, MinuteRow, ms
from collector.accounting.targets import output_series
from collector.plant import AccountingConfig
from collector.platform.catalogue import catalogue
from collector.platform.indicators import (
    Codes,
    PeriodError,
    compute,
    consistency,
    day_span,
    month_span,
    parse_day,
    slot_span,
)
from collector.reports.build import build
from collector.reports.period import ReportError

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 10, 15)
MIDNIGHT = datetime(2026, 10, 15, tzinfo=TZ)
AFTER = datetime(2026, 11, 5, tzinfo=UTC)
GAS_KGCE = 1.2143
ELEC_KGCE = 0.1229
MISSING = {MIDNIGHT + timedelta(hours=10, minutes=m) for m in (3, 4, 5, 6)} | {
    MIDNIGHT + timedelta(hours=13, minutes=15 + m) for m in range(10)
}


def plant(**extra: Any) -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "conversion": {
                "coefficients": {
                    "natural_gas": {
                        "value": GAS_KGCE,
                        "unit": "kgce/m3",
                        "source": "GB/T 2589-2020 Annex A, gas-field gas",
                    }
                }
            },
            "sites": [
                {
                    "id": "p1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "co2_factors": {},
                    "meters": [
                        {"id": "grid", "carrier": "electricity", "role": "boundary"},
                        {"id": "gas", "carrier": "natural_gas", "role": "boundary"},
                        {"id": "l1", "carrier": "electricity", "line": "kiln"},
                    ],
                    "lines": [
                        {
                            "id": "kiln",
                            "product": "clinker",
                            "output_unit": "t",
                            "output": {"meter": "scale", "quantity": "mass"},
                            "benchmark": {"energy_limit": "cement_clinker_comprehensive"},
                        }
                    ],
                    "value_added": {"2026-10": 1_000_000.0},
                    **extra,
                }
            ],
        }
    )


def rows(
    series: str, amount: float, kgce: float, skip: set[datetime], midnight: datetime = MIDNIGHT
) -> list[MinuteRow]:
    out = []
    for k in range(24 * 60):
        t = midnight + timedelta(minutes=k)
        if t not in skip:
            out.append(MinuteRow(series, ms(t), amount, kgce, 0.0, 0))
    return out


@pytest.fixture
def db(tmp_path: Path) -> AccountingDB:
    return seeded(tmp_path / "accounting.sqlite")


def seeded(path: Path, midnight: datetime = MIDNIGHT) -> AccountingDB:
    """The worked day (starting at `midnight`) in an accounting database at `path`."""
    accounting = AccountingDB(path)
    missing = {midnight + (t - MIDNIGHT) for t in MISSING}
    with accounting.transaction() as conn:
        for series, amount, kgce, skip in (
            ("grid", 1.0, ELEC_KGCE, missing),
            ("gas", 0.25, 0.25 * GAS_KGCE, set()),
            ("l1", 0.5, 0.5 * ELEC_KGCE, set()),
            (output_series("kiln"), 0.01, 0.0, set()),
        ):
            AccountingDB.add_minutes(conn, "p1", rows(series, amount, kgce, skip, midnight))
    return accounting


def by_key(report: dict[str, Any]) -> dict[str, Any]:
    return {
        (r["key"] if r["of"] is None else f"{r['key']}:{r['of']}"): r for r in report["indicators"]
    }


def test_the_day_worked_by_hand(db: AccountingDB) -> None:
    config = plant()
    site = config.sites[0]
    report = compute(config, db, "p1", day_span(site, DAY), codes=Codes(), now=AFTER)
    values = {k: r["value"] for k, r in by_key(report).items()}
    assert values["total_energy"] == pytest.approx(612.4034, abs=1e-9)
    assert values["carrier_amount:electricity"] == pytest.approx(1426.0)
    assert values["carrier_amount:natural_gas"] == pytest.approx(360.0)
    assert values["carrier_energy:electricity"] == pytest.approx(175.2554)
    assert values["carrier_energy:natural_gas"] == pytest.approx(437.148)
    assert values["meter_amount:grid"] == pytest.approx(1426.0)
    assert values["meter_amount:gas"] == pytest.approx(360.0)
    assert values["meter_amount:l1"] == pytest.approx(720.0)  # a submeter: not in the total
    assert values["primary_energy"] == pytest.approx(437.148)
    assert values["secondary_energy"] == pytest.approx(175.2554)
    assert values["product_output:kiln"] == pytest.approx(14.4)
    assert values["unit_product_energy:kiln"] == pytest.approx(6.145)
    # monthly only: not in a day
    assert "value_added" not in values and "output_value" not in values
    rows_ = by_key(report)
    assert rows_["carrier_amount:natural_gas"]["unit"] == "m3"
    assert rows_["carrier_amount:natural_gas"]["carrier_class"] == "primary"
    assert rows_["unit_product_energy:kiln"]["unit"] == "kgce/t"
    assert rows_["unit_product_energy:kiln"]["energy_limit_standard"] == (
        "GB 16780-2021 cement_clinker_comprehensive"
    )
    slots = report["quality"]["slots"]
    assert (slots["slots_expected"], slots["slots_complete"]) == (96, 94)
    assert slots["completeness"] == pytest.approx(94 / 96)
    assert slots["meets"] is True
    assert report["quality"]["minutes"]["minutes_with_data"] == 1440 - 14
    assert report["quality"]["start_offset_s"] == 0
    assert report["quality"]["start_meets"] is True
    assert report["from"] == "2026-10-15T00:00:00+08:00"
    assert report["to"] == "2026-10-16T00:00:00+08:00"


def test_a_day_under_90_percent_does_not_meet(db: AccountingDB) -> None:
    """Three more hours without the grid meter: 12 more slots incomplete, 82/96 < 0.9."""
    with db.transaction() as conn:
        conn.execute(
            "DELETE FROM minute WHERE series = 'grid' AND minute >= ? AND minute < ?",
            (ms(MIDNIGHT), ms(MIDNIGHT + timedelta(hours=3))),
        )
    config = plant()
    report = compute(config, db, "p1", day_span(config.sites[0], DAY), codes=Codes(), now=AFTER)
    slots = report["quality"]["slots"]
    assert slots["slots_complete"] == 82
    assert slots["completeness"] == pytest.approx(82 / 96)
    assert slots["meets"] is False


def test_today_expects_only_the_slots_ended(db: AccountingDB) -> None:
    config = plant()
    now = MIDNIGHT + timedelta(hours=10, minutes=20)  # 40 slots ended, the 10:00 one not whole
    report = compute(config, db, "p1", day_span(config.sites[0], DAY), codes=Codes(), now=now)
    slots = report["quality"]["slots"]
    assert (slots["slots_expected"], slots["slots_complete"]) == (41, 40)


def test_a_slot_worked_by_hand(db: AccountingDB) -> None:
    config = plant()
    span = slot_span(config.sites[0], MIDNIGHT + timedelta(hours=10), 15)
    report = compute(config, db, "p1", span, codes=Codes(), now=AFTER)
    values = {k: r["value"] for k, r in by_key(report).items()}
    assert set(values) == {
        "meter_amount:grid",
        "meter_amount:gas",
        "meter_amount:l1",
        "total_energy",
        "carrier_amount:electricity",
        "carrier_amount:natural_gas",
        "carrier_energy:electricity",
        "carrier_energy:natural_gas",
    }
    assert values["carrier_amount:electricity"] == pytest.approx(11.0)
    assert values["carrier_amount:natural_gas"] == pytest.approx(3.75)
    assert values["total_energy"] == pytest.approx(11 * ELEC_KGCE + 3.75 * GAS_KGCE)
    assert report["quality"]["minutes"]["completeness"] == pytest.approx(11 / 15)
    assert report["quality"]["meets_completeness"] is False
    assert report["to"] == "2026-10-15T10:15:00+08:00"


@pytest.mark.parametrize("minutes", [15, 30, 60])
def test_slots_start_on_their_grid(minutes: int) -> None:
    site = plant().sites[0]
    assert slot_span(site, MIDNIGHT + timedelta(minutes=2 * minutes), minutes).start == (
        MIDNIGHT + timedelta(minutes=2 * minutes)
    )
    with pytest.raises(PeriodError, match="multiple of"):
        slot_span(site, MIDNIGHT + timedelta(minutes=minutes + 5), minutes)


def test_a_slot_length_the_specification_does_not_allow() -> None:
    with pytest.raises(PeriodError, match="multiple of 20"):
        slot_span(plant().sites[0], MIDNIGHT, 20)


def test_the_month_equals_the_report_and_checks_consistency(db: AccountingDB) -> None:
    config = plant()
    site = config.sites[0]
    codes = Codes(
        unit="91330000MA2XXXXX0X",
        indicators={"total_energy": "T-001", "carrier_amount:electricity": "E-01"},
    )
    month = compute(
        config,
        db,
        "p1",
        month_span(site, "2026-10"),
        codes=codes,
        now=AFTER,
        output_value={"2026-10": 5_000_000.0},
    )
    report = build(config, db, "p1", "2026-10", now=AFTER)
    rows_ = by_key(month)
    assert rows_["total_energy"]["value"] == pytest.approx(report["totals"]["kgce"])
    for c in report["carriers"]:
        assert rows_[f"carrier_amount:{c['carrier']}"]["value"] == pytest.approx(c["amount"])
        assert rows_[f"carrier_energy:{c['carrier']}"]["value"] == pytest.approx(c["kgce"])
    assert rows_["unit_product_energy:kiln"]["value"] == pytest.approx(
        report["lines"][0]["kgce_per_unit"]
    )
    assert rows_["value_added"]["value"] == 1_000_000.0
    assert rows_["output_value"]["value"] == 5_000_000.0
    assert rows_["total_energy"]["code"] == "T-001"
    assert rows_["total_energy"]["code_from"] == "configured"
    assert rows_["carrier_amount:electricity"]["code"] == "E-01"
    assert rows_["carrier_amount:natural_gas"]["code"] is None
    assert month["unit_code"] == "91330000MA2XXXXX0X"
    check = month["quality"]["consistency"]
    assert check["max_deviation"] == 0.0 and check["meets"] is True
    assert check["days_from_record"] == 0
    # 31 days x 96 slots, only one day with data
    assert month["quality"]["slots"]["slots_expected"] == 31 * 96
    assert month["quality"]["slots"]["slots_complete"] == 94
    assert month["quality"]["slots"]["meets"] is False


@pytest.mark.parametrize(
    ("uploaded", "deviation", "meets"),
    [(600.0, 12.4034 / 612.4034, True), (580.0, 32.4034 / 612.4034, False)],
)
def test_consistency_against_the_days_as_uploaded(
    db: AccountingDB, uploaded: float, deviation: float, meets: bool
) -> None:
    config = plant()
    month = compute(
        config,
        db,
        "p1",
        month_span(config.sites[0], "2026-10"),
        codes=Codes(),
        now=AFTER,
        days_uploaded={"2026-10-15": {"total_energy": uploaded}},
    )
    total = month["quality"]["consistency"]["indicators"]["total_energy"]
    assert total["days"] == uploaded
    assert total["deviation"] == pytest.approx(deviation)
    assert total["meets"] is meets
    assert month["quality"]["consistency"]["meets"] is False  # the day recorded no carriers
    assert month["quality"]["consistency"]["days_from_record"] == 1


def test_missing_month_figures_are_listed(db: AccountingDB) -> None:
    config = plant(value_added={})
    month = compute(
        config, db, "p1", month_span(config.sites[0], "2026-10"), codes=Codes(), now=AFTER
    )
    assert month["quality"]["indicators_missing"] == ["output_value", "value_added"]


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_subnormal=False),
        min_size=1,
    ),
    st.integers(min_value=1, max_value=31),
)
def test_days_splitting_the_month_exactly_are_consistent(
    month: dict[str, float], parts: int
) -> None:
    days = [{k: v / parts for k, v in month.items()} for _ in range(parts)]
    check = consistency(month, days, 0.05)
    assert check["meets"] is True
    for entry in check["indicators"].values():
        assert entry["deviation"] is None or entry["deviation"] < 1e-9


def test_a_month_of_zero_with_days_not_zero_fails() -> None:
    check = consistency({"x": 0.0}, [{"x": 1.0}], 0.05)
    assert check["indicators"]["x"] == {
        "month": 0.0,
        "days": 1.0,
        "deviation": None,
        "meets": False,
    }


def test_the_catalogue_says_every_code_is_unconfirmed_and_sourced() -> None:
    table = catalogue()
    assert all(x.code is None for x in table.indicators)
    assert all(x.code is None for x in table.carriers.values())
    assert table.quality.completeness_min == 0.9
    assert table.quality.consistency_max == 0.05
    assert table.quality.day_start_offset_max_s == 60
    assert table.quality.month_start_offset_max_s == 86400
    assert table.slot_minutes == (15, 30, 60)
    assert all(x.source.text and x.source.confidence for x in table.indicators)


def test_bad_periods_are_named() -> None:
    site = plant().sites[0]
    with pytest.raises(PeriodError, match="2026-13"):
        month_span(site, "2026-13")


# --- periods named by people: any text is a period or a clear error -----------------------


@given(st.text(max_size=30) | st.from_regex(r"\d{4}-\d{2}-\d{2}", fullmatch=True))
def test_any_day_text_is_a_day_or_a_period_error(text: str) -> None:
    site = plant().sites[0]
    try:
        span = day_span(site, parse_day(text))
    except PeriodError as exc:
        assert repr(text) in str(exc) or "9999-12-31" in str(exc)
    else:
        assert span.end > span.start and span.label == parse_day(text).isoformat()


@given(st.text(max_size=12) | st.from_regex(r"-?\d{1,5}-\d{1,3}", fullmatch=True))
def test_any_month_text_is_a_month_or_a_period_error(text: str) -> None:
    site = plant().sites[0]
    try:
        span = month_span(site, text)
    except PeriodError as exc:
        assert repr(text) in str(exc)
    else:
        assert span.end > span.start and span.start.day == 1


@given(
    st.integers(min_value=0, max_value=24 * 60 - 1),
    st.sampled_from([15, 30, 60]),
)
def test_a_slot_is_accepted_exactly_on_its_grid(minute: int, minutes: int) -> None:
    site = plant().sites[0]
    start = MIDNIGHT + timedelta(minutes=minute)
    if minute % minutes:
        with pytest.raises(PeriodError):
            slot_span(site, start, minutes)
    else:
        span = slot_span(site, start, minutes)
        assert span.end - span.start == timedelta(minutes=minutes)


def test_the_last_day_and_month_of_the_calendar_are_period_errors() -> None:
    site = plant().sites[0]
    with pytest.raises(PeriodError, match="9999-12-31"):
        day_span(site, date(9999, 12, 31))
    with pytest.raises(PeriodError, match="9999-12"):
        month_span(site, "9999-12")
    with pytest.raises(PeriodError):
        slot_span(site, datetime(9999, 12, 31, 23, 45, tzinfo=TZ), 15)


def test_the_reports_month_past_the_calendar_is_a_report_error(db: AccountingDB) -> None:
    """month_bounds (shared with the monthly report): 9999-12 has no end to count to."""
    with pytest.raises(ReportError, match="9999-12"):
        build(plant(), db, "p1", "9999-12", now=AFTER)
