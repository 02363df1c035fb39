"""The report's formats read back as their readers would: the workbook opened with
openpyxl and its figures compared to the report's JSON, the CSV read as Excel reads it
(byte-order mark, comma separators, quoting, CRLF), the plot drawn to a PNG file.

The month: the plant of tests/test_report_enpi.py (September-October 2026 the baseline,
November the report, 5 kgce a day saved), with the TOU calendar, market-based CO2, value
added, a target and a green-factory indicator of tests/test_report_sections.py, so that
every section of the report has figures."""

from __future__ import annotations

import csv
import io
import json
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from test_api import READ, SITE, WRITE, batch, make_rig, tokens
from test_report_enpi import AFTER, BASELINE, plant, write_days
from test_report_sections import config as sections_config

from collector.accounting.db import AccountingDB
from collector.cli import main as collector_main
from collector.plant import AccountingConfig
from collector.reports.build import build
from collector.reports.csvfile import excel_text
from collector.reports.plot import figure, plot
from collector.reports.render import render
from collector.reports.workbook import XLSX_MEDIA_TYPE, render_xlsx
from greengauge.common import i18n


def full_plant() -> AccountingConfig:
    """The enpi plant with every optional section of the sections plant."""
    extra = (
        sections_config()
        .sites[0]
        .model_dump(
            mode="json",
            include={"market_based", "value_added", "tou"},
            exclude_unset=True,
        )
    )
    extra["tou"]["source"] = '=HYPERLINK("http://x","tariff"), a notice'
    extra["targets"] = {"base_energy_intensity": {"kiln": 0.5}}
    return plant(energy_baselines=[BASELINE], **extra)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = AccountingDB(tmp_path_factory.mktemp("db") / "accounting.sqlite")
    write_days(db, date(2026, 9, 1), date(2026, 10, 31))
    write_days(db, date(2026, 11, 1), date(2026, 11, 30), saved=5.0)
    out = build(full_plant(), db, "p1", "2026-11", now=AFTER)
    db.close()
    return out


EXCEL = 1e-15
"""Relative precision of a number in a workbook: Excel keeps 15 significant digits."""


def sheet(book: Any, title: str) -> list[tuple[Any, ...]]:
    return list(book[title].iter_rows(values_only=True))


def test_the_workbook_carries_the_reports_figures_as_numbers(report: dict[str, Any]) -> None:
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(report)))
    assert book.sheetnames[0] == "Summary"
    for title in ("Carriers", "Lines", "Days", "Energy baselines", "CUSUM", "Time of use"):
        assert title in book.sheetnames
    summary = {(r[0], r[2]): r[1] for r in sheet(book, "Summary")[1:]}
    assert summary[("comprehensive energy consumption", "kgce")] == report["totals"]["kgce"]
    assert summary[("comprehensive energy consumption", "tce")] == report["totals"]["kgce"] / 1000
    assert summary[("CO2, market-based", "kgCO2")] == report["co2"]["market_based_kgco2"]
    assert summary[("site intensity", "kgce/pieces")] == report["site_intensity"]["kgce_per_unit"]

    header, *rows = sheet(book, "Carriers")
    assert header == ("carrier", "meters", "amount", "unit", "kgce", "kgCO2")
    assert [(r[0], r[2], r[4]) for r in rows] == [
        (c["carrier"], c["amount"], c["kgce"]) for c in report["carriers"]
    ]
    header, *rows = sheet(book, "Days")
    assert header[:5] == ("date", "kgce", "kgCO2", "electricity (kWh)", "output (pieces)")
    assert header[7] == "kiln intensity (kgce/pieces)"
    assert [r[1] for r in rows] == [d["kgce"] for d in report["days"]]
    # Excel keeps 15 significant digits (openpyxl writes 16): equal to that precision
    assert [r[7] for r in rows] == pytest.approx(
        [d["lines"][0]["intensity"] for d in report["days"]], rel=EXCEL
    )

    (b,) = report["energy_baselines"]
    header, row = sheet(book, "Energy baselines")
    named = dict(zip(header, row, strict=True))
    assert named["R²"] == pytest.approx(b["r2"], rel=EXCEL)
    assert named["CV(RMSE)"] == pytest.approx(b["cv_rmse"], rel=EXCEL, abs=1e-18)
    assert named["savings (kgce)"] == pytest.approx(b["reporting"]["savings_kgce"], rel=EXCEL)
    assert named["normalised EnPI"] == pytest.approx(b["reporting"]["normalised_enpi"], rel=EXCEL)
    assert named["adequate"] is True
    cusum = [r[5] for r in sheet(book, "CUSUM")[1:]]
    assert cusum == pytest.approx([s["cusum_kgce"] for s in b["reporting"]["cusum"]], rel=EXCEL)
    tou = sheet(book, "Time of use")
    assert tou[-1][2] == report["tou"]["kwh"] and tou[-1][4] == report["tou"]["cny"]
    (target,) = sheet(book, "Targets")[1:]
    assert target[4] == 0.5 and target[8] == report["lines"][0]["targets"][0]["intensity"]

    # numbers are numbers, shown to the report's decimals; a figure not known is empty
    days = book["Days"]
    assert days["B2"].data_type == "n" and days["B2"].number_format == "#,##0.000"
    assert days["F2"].number_format == "0.0%"
    (comparison_row,) = [r for r in sheet(book, "Comparisons")[1:] if r[1] == "2025-11"]
    assert comparison_row[2] == "no data" and comparison_row[3] is None


def test_the_workbook_in_chinese(report: dict[str, Any]) -> None:
    with i18n.using("zh-CN"):
        book = openpyxl.load_workbook(io.BytesIO(render_xlsx(report)))
    assert "摘要" in book.sheetnames and "能源基准" in book.sheetnames
    assert "综合能耗" in {r[0] for r in sheet(book, "摘要")}


def excel_rows(data: bytes) -> list[list[str]]:
    """What Excel reads: UTF-8 because of the byte-order mark, then its CSV dialect."""
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    return list(csv.reader(io.StringIO(text, newline=""), dialect="excel"))


def test_the_csv_reads_in_excel_complete(report: dict[str, Any]) -> None:
    rows = excel_rows(render(report, "csv").encode("utf-8"))
    assert all(len(r) == 7 for r in rows)
    keyed = {(r[0], r[1], r[2]): r for r in rows[1:]}
    assert keyed[("site", "p1", "market_based_kgco2")][3] == (
        f"{report['co2']['market_based_kgco2']:.3f}"
    )
    assert ("site", "p1", "electricity_kwh") in keyed and ("site", "p1", "tce") in keyed
    assert ("site", "p1", "value_added") in keyed and ("site", "p1", "kgce_per_unit") in keyed
    assert ("tou", "total", "cny_per_unit") in keyed
    assert ("target", "kiln energy target", "target_intensity") in keyed
    assert ("line_carrier", "kiln electricity", "kgce") in keyed
    assert keyed[("unallocated", "electricity", "share")][3] == "0.5"
    assert keyed[("day", "2026-11-01", "kgce")][3] == f"{report['days'][0]['kgce']:.3f}"
    assert keyed[("comparison", "same_month_last_year 2025-11", "status")][3] == "no_data"
    assert keyed[("baseline", "baseline kiln", "normalised_enpi")][3] == "0.950495"
    assert keyed[("cusum", "kiln 2026-11-30", "cusum_kgce")][3] == "150.000"
    # a source with a comma stays one cell; one that starts like a formula is not run
    tou_rows = [r for r in rows if r[0] == "tou" and r[1] != "total"]
    assert tou_rows[0][5] == """'=HYPERLINK("http://x","tariff"), a notice"""
    # negative figures stay numbers
    assert float(keyed[("comparison", "previous_month 2026-10", "kgce_change")][3]) < 0


def test_the_csv_in_chinese_reads_in_excel(report: dict[str, Any]) -> None:
    with i18n.using("zh-CN"):
        rows = excel_rows(render(report, "csv").encode("utf-8"))
    assert rows[0] == ["部分", "名称", "测量量", "值", "单位", "来源", "可信度"]


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-5.000", "-5.000"),
        ("-", "-"),
        ("-x", "'-x"),
        ("plain, text", "plain, text"),
    ],
)
def test_excel_text_quotes_formulas_not_numbers(cell: str, shown: str) -> None:
    assert excel_text(cell) == shown


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_plot_is_drawn_with_dates_bands_output_and_cusum(
    report: dict[str, Any], tmp_path: Path
) -> None:
    fig = figure(report)
    line_axes, cusum_axes = fig.axes[0], fig.axes[1]
    assert len(line_axes.patches) >= 3  # the benchmark bands, shaded
    labels = [t.get_text() for t in cusum_axes.get_xticklabels()]
    assert any(x.startswith("11-") for x in labels), labels  # dates, not day numbers
    assert "CUSUM" in cusum_axes.get_title()
    twin = fig.axes[2]
    assert twin.get_ylabel() == "output (pieces)"
    path = tmp_path / "month.png"
    plot(report, path)
    width, height = png_size(path)
    assert (width, height) == (1100, 720)
    assert 20_000 < path.stat().st_size < 1_000_000


def test_a_month_with_little_data_says_so(tmp_path: Path) -> None:
    db = AccountingDB(tmp_path / "accounting.sqlite")
    write_days(db, date(2026, 11, 29), date(2026, 11, 30))
    report = build(plant(), db, "p1", "2026-11", now=AFTER)
    texts = [t.get_text() for t in figure(report).axes[0].texts]
    assert "little data: 2 of 30 days with enough output" in texts
    plot(report, tmp_path / "little.png")
    assert png_size(tmp_path / "little.png")[0] == 1100


@pytest.fixture
def collector_yaml(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = AccountingDB(data_dir / "accounting.sqlite")
    write_days(db, date(2026, 9, 1), date(2026, 10, 31))
    write_days(db, date(2026, 11, 1), date(2026, 11, 30), saved=5.0)
    db.close()
    raw = plant(energy_baselines=[BASELINE]).model_dump(mode="json", exclude_unset=True)
    body = {"mqtt": {"url": "mqtt://127.0.0.1:1"}, "data_dir": str(data_dir), "accounting": raw}
    path = tmp_path / "collector.yaml"
    path.write_text(json.dumps(body))
    return path


def test_the_report_command_writes_a_workbook_and_a_plot(
    collector_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "--config", str(collector_yaml), "--site", "p1", "--month", "2026-11"]
    assert collector_main([*args, "--format", "xlsx"]) == 2
    assert "--format xlsx needs --output FILE" in capsys.readouterr().err
    book_path, png = tmp_path / "month.xlsx", tmp_path / "month.png"
    assert (
        collector_main([*args, "--format", "xlsx", "--output", str(book_path), "--plot", str(png)])
        == 0
    )
    book = openpyxl.load_workbook(book_path)
    (row,) = sheet(book, "Energy baselines")[1:]
    assert row[0] == "kiln" and row[5] == pytest.approx(1.0)
    assert png_size(png)[0] == 1100
    csv_path = tmp_path / "month.csv"
    assert collector_main([*args, "--format", "csv", "--output", str(csv_path)]) == 0
    assert excel_rows(csv_path.read_bytes())[0][0] == "section"


def test_the_api_answers_the_workbook_of_the_json_report(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, tokens(READ, WRITE))
    try:
        start = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)
        rig.feed(
            *[
                batch(i, start + timedelta(minutes=i), incomer=(100.0 + 4 * i, 240_000.0))
                for i in range(11)
            ]
        )
        path = f"/api/v1/sites/{SITE}/report"
        headers = {"Authorization": f"Bearer {READ}"}
        answer = rig.client.get(
            path, params={"month": "2026-10", "format": "xlsx"}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == XLSX_MEDIA_TYPE
        assert f'filename="{SITE}-2026-10.xlsx"' in answer.headers["content-disposition"]
        book = openpyxl.load_workbook(io.BytesIO(answer.content))
        summary = {(r[0], r[2]): r[1] for r in sheet(book, "Summary")[1:]}
        figures = rig.get(path, month="2026-10")
        assert summary[("comprehensive energy consumption", "kgce")] == pytest.approx(
            figures["totals"]["kgce"], rel=EXCEL
        )
        assert (
            rig.client.get(path, params={"month": "2026-10", "format": "xlsx"}).status_code == 401
        )
    finally:
        rig.client.close()
        rig.accounting.close()
        rig.store.close()
