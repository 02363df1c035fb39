"""The monthly report's arithmetic, data quality and sources, on months computed by hand.

The worked month (October 2026, Asia/Shanghai): from 10:00 to 10:10 local time on
2026-10-15 (02:00 UTC), readings every 10 s of

    incomer-a  120 kW x 1/6 h = 20 kWh   kgce 20 x 0.1229 = 2.458    kgCO2 20 x 0.5306 = 10.612
    incomer-b   72 kW x 1/6 h = 12 kWh   kgce 12 x 0.1229 = 1.4748   kgCO2 12 x 0.5306 =  6.3672
    l1 (kiln)   60 kW x 1/6 h = 10 kWh   kgce 10 x 0.1229 = 1.229    kgCO2 10 x 0.5306 =  5.306
    rest = incomer-a - l1 = 10 kWh (virtual)
    electricity (boundary: a + b) 32 kWh, kgce 32 x 0.1229 = 3.9328, kgCO2 32 x 0.5306 = 16.9792

Printed to 3 decimals: 2.458 + 1.475 = 3.933 kgce (3.9328 -> 3.933) and
10.612 + 6.367 = 16.979 kgCO2 (16.9792 -> 16.979): the printed parts add up to the
printed total in the table and the CSV; the JSON carries 2.458..., 1.4748..., 3.9328...

Where 6-significant-digit rounding of the parts broke the total (the old report):
    16,474,612.345 kWh -> 16,474,600.0 and 971,678.25 kWh -> 971,678.0: they add up to
    17,446,278.0, but the total 17,446,290.595 was printed 17,446,300.0 (22 kWh off, and
    a false `.0`). Now: 16,474,612.345 + 971,678.250 = 17,446,290.595, as printed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from processes import BIN, write_yaml
from test_report_sections import config as sections_config
from test_report_sections import month_batches

from collector.accounting.db import AccountingDB, MinuteRow, ms
from collector.accounting.engine import Accounting
from collector.plant import AccountingConfig
from collector.reports.build import build
from collector.reports.numbers import DECIMALS
from collector.reports.render import render
from greengauge.contract import MeterReading, Quantity, ReadingBatch

T0 = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 5, tzinfo=UTC)  # "now": October is over
OCTOBER_MINUTES = 31 * 24 * 60  # 44,640
E = Quantity.ENERGY_ACTIVE_IMPORT
UNIT = Decimal(1).scaleb(-DECIMALS)  # 0.001: the last printed decimal of an amount


def site(meters: list[dict[str, Any]], **extra: Any) -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "sites": [
                {
                    "id": "w1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": meters,
                    "lines": [
                        {
                            "id": "kiln",
                            "product": "widgets",
                            "output_unit": "pieces",
                            "output": {"meter": "counter", "quantity": "count"},
                            "benchmark": {
                                "custom": {
                                    "name": "test",
                                    "unit": "kgce/pieces",
                                    "benchmark": 0.001,
                                    "baseline": 0.003,
                                    "source": "test works standard",
                                }
                            },
                        }
                    ],
                    **extra,
                }
            ],
        }
    )


WORKED_METERS: list[dict[str, Any]] = [
    {"id": "incomer-a", "carrier": "electricity", "role": "boundary"},
    {"id": "incomer-b", "carrier": "electricity", "role": "boundary"},
    {"id": "l1", "carrier": "electricity", "line": "kiln"},
    {"id": "rest", "carrier": "electricity", "plus": ["incomer-a"], "minus": ["l1"]},
]


def batches(
    kw: dict[str, float], seconds: list[int], power: dict[str, float]
) -> list[ReadingBatch]:
    """Counter readings at `seconds` after T0 for meters drawing `kw`, power readings (W)
    for `power`, and a production counter counting a piece a second."""
    out = []
    for k, s in enumerate(seconds):
        values: dict[str, dict[Quantity, float]] = {
            m: {E: 1000.0 + p * s / 3600} for m, p in kw.items()
        }
        values |= {m: {Quantity.POWER_ACTIVE: w} for m, w in power.items()}
        values["counter"] = {Quantity.COUNT: 7000.0 + s}
        readings = [
            MeterReading(meter=m, ts=T0 + timedelta(seconds=s), values=v) for m, v in values.items()
        ]
        out.append(ReadingBatch(site="w1", agent="gw", seq=k, readings=readings))
    return out


def worked(tmp_path: Path) -> dict[str, Any]:
    acc = Accounting(site(WORKED_METERS), tmp_path)
    acc.process(batches({"incomer-a": 120, "incomer-b": 72, "l1": 60}, list(range(0, 601, 10)), {}))
    return build(acc.config, acc.db, "w1", "2026-10", now=AFTER)


# --- reading the printed report back ------------------------------------------------------


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def table_rows(table: str, title: str) -> list[list[str]]:
    """The rows of the table under a title line, split on runs of 2+ spaces."""
    lines = table.splitlines()
    start = lines.index(title) + 3  # title, header, dashes
    rows = []
    for line in lines[start:]:
        if not line.strip() or not line.startswith(tuple("abcdefghijklmnopqrstuvwxyz")):
            break
        rows.append(re.split(r" {2,}", line.strip()))
    return rows


def printed(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per format, the printed meter parts, carrier sums and site totals (kWh, kgce, kgCO2)."""
    table = render(report, "table")
    meters = {r[0]: r for r in table_rows(table, "Meters")}
    carriers = {r[0]: r for r in table_rows(table, "Energy by carrier (boundary meters)")}
    site_total = re.search(r"Site total: (\S+) kgce, (\S+) kgCO2", table)
    assert site_total is not None, table
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    value = {(r[0], r[1], r[2]): r[3] for r in rows[1:]}
    out: dict[str, dict[str, Any]] = {"table": {}, "csv": {}}
    for q, col_m, col_c in (("amount", 4, 2), ("kgce", 6, 4), ("kgco2", 7, 5)):
        out["table"][q] = (
            {m: number(r[col_m]) for m, r in meters.items()},
            {c: number(r[col_c]) for c, r in carriers.items()},
        )
        out["csv"][q] = (
            {m: number(v) for (s, m, qq), v in value.items() if s == "meter" and qq == q},
            {c: number(v) for (s, c, qq), v in value.items() if s == "carrier" and qq == q},
        )
    out["table"]["site"] = (number(site_total[1]), number(site_total[2]))
    out["csv"]["site"] = (
        number(value[("site", "w1", "kgce")]),
        number(value[("site", "w1", "kgco2")]),
    )
    return out


def assert_adds_up(report: dict[str, Any]) -> None:
    """In every format, each printed total is the sum of its printed parts within half a
    unit of the last decimal per figure; in the JSON, each total is the exact sum."""
    loaded = json.loads(render(report, "json"))
    meters = {m["meter"]: m for m in loaded["meters"]}
    for c in loaded["carriers"]:
        for q in ("amount", "kgce", "kgco2"):
            assert c[q] == math.fsum(meters[m][q] for m in c["meters"]), (c, q)
    for q in ("kgce", "kgco2"):
        assert loaded["totals"][q] == math.fsum(c[q] for c in loaded["carriers"]), q
    for fmt, got in printed(report).items():
        for q in ("amount", "kgce", "kgco2"):
            parts, sums = got[q]
            for c in loaded["carriers"]:
                n = len(c["meters"])
                gap = abs(sums[c["carrier"]] - sum(parts[m] for m in c["meters"]))
                assert gap <= (n + 1) * UNIT / 2, (fmt, q, c["carrier"], gap)
        for i, q in enumerate(("kgce", "kgco2")):
            carriers = got[q][1]
            gap = abs(got["site"][i] - sum(carriers.values()))
            assert gap <= (len(carriers) + 1) * UNIT / 2, (fmt, q, gap)


# --- the worked month -------------------------------------------------------------------


def test_worked_month_adds_up_in_table_json_and_csv(tmp_path: Path) -> None:
    report = worked(tmp_path)
    assert_adds_up(report)
    meters = {m["meter"]: m for m in report["meters"]}
    assert meters["incomer-a"]["amount"] == pytest.approx(20.0, rel=1e-9)
    assert meters["incomer-b"]["kgce"] == pytest.approx(1.4748, rel=1e-9)
    assert meters["rest"]["amount"] == pytest.approx(10.0, rel=1e-9)
    (electricity,) = report["carriers"]
    assert electricity["meters"] == ["incomer-a", "incomer-b"]
    assert electricity["kgce"] == pytest.approx(3.9328, rel=1e-9)
    got = printed(report)
    for fmt in ("table", "csv"):
        parts, sums = got[fmt]["kgce"]
        assert (parts["incomer-a"], parts["incomer-b"]) == (Decimal("2.458"), Decimal("1.475"))
        assert sums["electricity"] == Decimal("3.933") == got[fmt]["site"][0]
        parts, sums = got[fmt]["kgco2"]
        assert (parts["incomer-a"], parts["incomer-b"]) == (Decimal("10.612"), Decimal("6.367"))
        assert sums["electricity"] == Decimal("16.979") == got[fmt]["site"][1]
    table = render(report, "table")
    assert "Site total: 3.933 kgce, 16.979 kgCO2" in table
    assert "Rounding: JSON carries unrounded figures" in table


def minute_rows(db: AccountingDB, amounts: dict[str, tuple[float, float, float]]) -> None:
    """One October minute per meter with the given kWh, kgce and kgCO2."""
    with db.transaction() as conn:
        for meter, (kwh, kgce, kgco2) in amounts.items():
            db.add_minutes(conn, "w1", [MinuteRow(meter, ms(T0), kwh, kgce, kgco2, 0)])


def test_the_six_significant_digit_case_now_adds_up(tmp_path: Path) -> None:
    config = site(WORKED_METERS[:2])
    db = AccountingDB(tmp_path / "accounting.sqlite")
    minute_rows(
        db,
        {
            "incomer-a": (16_474_612.345, 16_474_612.345 * 0.1229, 16_474_612.345 * 0.5306),
            "incomer-b": (971_678.25, 971_678.25 * 0.1229, 971_678.25 * 0.5306),
        },
    )
    report = build(config, db, "w1", "2026-10", now=AFTER)
    assert_adds_up(report)
    table = render(report, "table")
    assert "16,474,612.345" in table and "971,678.250" in table
    (row,) = table_rows(table, "Energy by carrier (boundary meters)")
    assert row[2] == "17,446,290.595"
    assert "17,446,300.0" not in table and "16,474,600.0" not in table
    assert next(
        r[:5]
        for r in csv.reader(io.StringIO(render(report, "csv")))
        if r[:3] == ["carrier", "electricity", "amount"]
    ) == ["carrier", "electricity", "amount", "17446290.595", "kWh"]
    assert (
        json.loads(render(report, "json"))["carriers"][0]["amount"] == 16_474_612.345 + 971_678.25
    )


amounts = st.floats(min_value=0, max_value=1e10, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(amounts, amounts, amounts), min_size=1, max_size=6))
def test_every_format_adds_up_for_any_meter_amounts(
    figures: list[tuple[float, float, float]],
) -> None:
    meters = [
        {"id": f"m{i}", "carrier": "electricity", "role": "boundary"} for i in range(len(figures))
    ]
    with tempfile.TemporaryDirectory() as folder:
        db = AccountingDB(Path(folder) / "accounting.sqlite")
        try:
            minute_rows(db, {f"m{i}": f for i, f in enumerate(figures)})
            report = build(site(meters), db, "w1", "2026-10", now=AFTER)
        finally:
            db.close()
    assert_adds_up(report)
    loaded = json.loads(render(report, "json"))
    assert [m["amount"] for m in loaded["meters"]] == [f[0] for f in figures]  # unrounded


# --- targets ----------------------------------------------------------------------------


def october(tmp_path: Path, **targets: Any) -> dict[str, Any]:
    config = site(WORKED_METERS, targets={"base_energy_intensity": {"kiln": 0.01}, **targets})
    acc = Accounting(config, tmp_path)
    acc.process(batches({"incomer-a": 120, "incomer-b": 72, "l1": 60}, list(range(0, 601, 10)), {}))
    return build(acc.config, acc.db, "w1", "2026-10", now=AFTER)


def test_an_october_2026_report_projects_forward_to_the_target_year(tmp_path: Path) -> None:
    (line,) = october(tmp_path, target_year=2030, energy_reduction=0.135)["lines"]
    (energy,) = line["targets"]
    # kiln: 10 kWh x 0.1229 / 600 pieces = 0.0020483 kgce a piece in 2026.
    # rate from 2020: (0.0020483 / 0.01) ** (1/6) - 1 = -23.2 % a year; forward four years
    # to 2030: 0.0020483 x (1 + rate) ** 4, below 0.0020483 (it falls: the rate is negative).
    now = 10 * 0.1229 / 600
    rate = (now / 0.01) ** (1 / 6) - 1
    assert energy["annual_rate"] == pytest.approx(rate, rel=1e-9)
    assert energy["projected_target_year_intensity"] == pytest.approx(
        now * (1 + rate) ** 4, rel=1e-9
    )
    assert energy["projected_target_year_intensity"] < now
    # the path to 2030 in 2026: 0.01 x 0.865 ** (6/10) = 0.0091676; 0.0020483 is below it
    assert energy["path_intensity"] == pytest.approx(0.01 * 0.865**0.6, rel=1e-9)
    assert energy["on_path"] is True and energy["on_track"] is True
    assert (
        energy["reduction_source"] == "configured"
        and energy["reduction_confidence"] == "configured"
    )


def test_an_october_2026_report_does_not_judge_a_2025_target_on_path(tmp_path: Path) -> None:
    report = october(tmp_path)
    (energy,) = report["lines"][0]["targets"]
    assert energy["target_year"] == 2025
    assert energy["on_path"] is None and energy["projected_target_year_intensity"] is None
    assert energy["target_reached"] is True
    table = render(report, "table")
    assert "the target year 2025 has passed: target reached" in table
    assert "at this rate" not in table and " path (" not in table
    # the default reduction comes from collector/data/targets.yaml, with its source
    assert "88号" in energy["reduction_source"] and energy["reduction_confidence"] == "H"


# --- data quality -------------------------------------------------------------------------


def test_data_quality_of_meters_lines_and_the_site(tmp_path: Path) -> None:
    """incomer-a reads every 10 s but for a 3-minute gap (10:05-10:08): its 20 kWh are
    14 measured (minutes 0-4 and 8-9: 7 minutes) and 120 kW x 3/60 h = 6 spread over the
    gap (minutes 5-7). l1 reads every 10 s: 10 kWh measured, 10 minutes. pm has no counter:
    60 kW of power integrated over 10 minutes = 10 kWh, all estimated. The month expects
    31 x 1440 = 44,640 minutes."""
    meters = [*WORKED_METERS[:1], WORKED_METERS[2], WORKED_METERS[3]]
    meters.append(
        {"id": "pm", "carrier": "electricity", "role": "boundary", "quantity": "power_active"}
    )
    acc = Accounting(site(meters), tmp_path)
    every = list(range(0, 601, 10))
    gapped = [s for s in every if not 300 < s < 480]
    acc.process(batches({"l1": 60}, every, {"pm": 60_000.0}))
    acc.process(batches({"incomer-a": 120}, gapped, {}))
    report = build(acc.config, acc.db, "w1", "2026-10", now=AFTER)
    q = {m["meter"]: m["data_quality"] for m in report["meters"]}
    a = q["incomer-a"]
    assert a["expected_minutes"] == OCTOBER_MINUTES
    assert (a["minutes_with_data"], a["measured_minutes"]) == (10, 7)
    assert a["completeness"] == pytest.approx(7 / OCTOBER_MINUTES)
    assert a["by_quality"]["measured"] == pytest.approx(14.0, rel=1e-9)
    assert a["by_quality"]["spread_over_gap"] == pytest.approx(6.0, rel=1e-9)
    assert a["estimated_share"] == pytest.approx(6 / 20, rel=1e-9)
    assert q["l1"]["measured_minutes"] == 10 and q["l1"]["estimated_share"] == 0
    assert q["pm"]["measured_minutes"] == 0 and q["pm"]["estimated_share"] == pytest.approx(1.0)
    assert q["pm"]["by_quality"]["estimated"] == pytest.approx(10.0, rel=1e-6)
    # rest = incomer-a - l1: complete only where both are measured; its parts by quality
    # add up to its 10 kWh (measured 14 - 10 = 4, spread over the gap 6)
    rest = q["rest"]
    assert rest["measured_minutes"] == 7
    assert rest["by_quality"]["measured"] == pytest.approx(4.0, rel=1e-9)
    assert math.fsum(rest["by_quality"].values()) == pytest.approx(10.0, rel=1e-9)
    line = report["lines"][0]["data_quality"]
    assert line["measured_minutes"] == 10 and line["by_quality"]["measured"] == pytest.approx(1.229)
    # the site: incomer-a (2.458 kgce, 0.7374 of it spread over the gap) and pm (1.229
    # kgce estimated): (0.7374 + 1.229) / 3.687 = 53.3 % estimated; complete in no minute
    # where pm, with no counter, is part of the figure
    total = report["totals"]["data_quality"]
    assert total["estimated_share"] == pytest.approx((6 + 10) / 30, rel=1e-6)
    assert total["measured_minutes"] == 0
    table = render(report, "table")
    assert "spread over gap: a counter difference across a gap in the readings" in table
    assert "apportioned" not in table
    assert "30 %" in table  # incomer-a: 6 of its 20 kWh spread over the gap


# --- sources and confidence, from the real command ------------------------------------------


def test_the_report_command_prints_source_and_confidence_of_every_factor_and_benchmark(
    tmp_path: Path,
) -> None:
    """The month of tests/test_report_sections.py, accounted by the engine into a data_dir,
    reported by `energy-collector report` as a separate process."""
    data_dir = tmp_path / "data"
    accounting = sections_config()
    acc = Accounting(accounting, data_dir)
    acc.process(month_batches())
    acc.close()
    raw = accounting.model_dump(mode="json", exclude_unset=True)
    collector_yaml = write_yaml(
        tmp_path / "collector.yaml",
        {"mqtt": {"url": "mqtt://127.0.0.1:1"}, "data_dir": str(data_dir), "accounting": raw},
    )

    def run(fmt: str) -> str:
        args = ["report", "--config", str(collector_yaml), "--site", "s1", "--month", "2026-11"]
        return subprocess.run(
            [str(BIN / "energy-collector"), *args, "--format", fmt],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    table = run("table")
    factors = table[table.index("Coefficients and factors used") :]
    assert "0.1229 kgce/kWh" in factors and "GB/T 2589" in factors
    assert "0.5306 kgCO2/kWh (national_average 2023" in factors
    assert factors.count("[confidence H]") == 2  # coefficient and grid factor
    assert (
        "judged against test: benchmark 0.001, baseline 0.003 kgce/pieces "
        "(source: test [confidence configured])" in table
    )
    assert "national_excl_market_nonfossil 2023" in table and "[confidence H])" in table
    assert "prices: source: test calendar [confidence configured]" in table
    assert "(source: test sector rule [confidence configured])" in table
    assert "88号" in table  # the default target's source
    for line in table.splitlines():
        if "source" in line and "Rounding" not in line:
            assert "[confidence " in line, line
    assert not re.search(r"\d\.0(?!\d)", table), "a false .0"
    csv_text = run("csv")
    assert csv_text.startswith("\ufeff")  # Excel's sign of UTF-8
    rows = list(csv.reader(io.StringIO(csv_text.removeprefix("\ufeff"))))
    assert rows[0] == ["section", "name", "quantity", "value", "unit", "source", "confidence"]
    sourced = {(r[0], r[1], r[2]): (r[5], r[6]) for r in rows[1:] if r}
    assert sourced[("factor", "electricity", "kgce_per_unit")][1] == "H"
    assert sourced[("factor", "electricity", "kgco2_per_unit")][1] == "H"
    assert sourced[("line", "kiln", "benchmark")] == ("test", "configured")
    loaded = json.loads(run("json"))
    assert loaded["factors"]["electricity"]["co2_confidence"] == "H"
    assert loaded["lines"][0]["benchmark"]["confidence"] == "configured"
