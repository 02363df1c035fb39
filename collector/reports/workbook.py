"""The monthly report as an Excel workbook (openpyxl): a summary sheet, then a sheet per
section. Figures are numbers (unrounded, as the JSON carries them; a number format only
shows them to the report's decimals), units are in the column headings, a figure not
known is an empty cell."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from collector.reports.build import QUALITY_KEY
from collector.reports.numbers import DECIMALS, term
from collector.reports.table import COMPARISON_KINDS
from greengauge.common.i18n import N_, _

XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
AMOUNT: Final = "#,##0." + "0" * DECIMALS
SHARE: Final = "0.0%"
Cell = str | float | int | bool | None


@dataclass(frozen=True)
class Column:
    header: str
    """A message (translated when written) naming the figure."""
    unit: str | None = None
    """Printed after the header, in brackets: the same for every row of the column."""
    format: str | None = None


def _title(text: str) -> str:
    """A sheet name Excel accepts: 31 characters, none of []:*?/\\ ."""
    for c in "[]:*?/\\":
        text = text.replace(c, " ")
    return text[:31]


@dataclass(frozen=True)
class Sheet:
    title: str
    columns: Sequence[Column]
    rows: Callable[[dict[str, Any]], list[list[Cell]]]


def _summary(report: dict[str, Any]) -> list[list[Cell]]:
    t, co2, si = report["totals"], report["co2"], report["site_intensity"]
    rows: list[list[Cell]] = [
        [_("site"), report["site"], None],
        [_("month"), report["month"], None],
        [_("from"), report["from"], None],
        [_("to"), report["to"], None],
        [_("time zone"), report["timezone"], None],
        [_("coal-equivalent basis"), term(report["conversion_basis"]), None],
        [_("comprehensive energy consumption"), t["kgce"], "kgce"],
        [_("comprehensive energy consumption"), t["kgce"] / 1000, "tce"],
        [_("CO2, location-based"), t["kgco2"], "kgCO2"],
        [_("CO2, market-based"), co2.get("market_based_kgco2"), "kgCO2"],
        [_("boundary electricity"), t["electricity_kwh"], "kWh"],
        [_("data completeness"), t["data_quality"]["completeness"], None],
    ]
    if si["output_unit"] is not None:
        rows += [
            [_("output"), si["output"], si["output_unit"]],
            [_("site intensity"), si["kgce_per_unit"], f"kgce/{si['output_unit']}"],
        ]
    va = report.get("value_added")
    if va is not None:
        rows += [
            [_("value added"), va["cny"], "CNY"],
            [_("kgce per 10,000 CNY of value added"), va["kgce_per_10k_cny"], "kgce/10^4 CNY"],
        ]
    rows.append([_("grid factor"), co2["grid_factor"], co2["grid_factor_source"]])
    return rows


def _carriers(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [term(c["carrier"]), " + ".join(c["meters"]), c["amount"], c["unit"], c["kgce"], c["kgco2"]]
        for c in report["carriers"]
    ]


def _meters(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            m["meter"],
            term(m["carrier"]),
            term(m["role"]),
            m["line"],
            m["formula"],
            m["amount"],
            m["unit"],
            m["kgce"],
            m["kgco2"],
            m["data_quality"]["completeness"],
        ]
        for m in report["meters"]
    ]


def _lines(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            x["line"],
            x["product"],
            x["output"],
            x["output_unit"],
            x["kgce"],
            x["kgco2"],
            x["electricity_kwh"],
            x["intensity"],
            x["intensity_unit"],
            term(x["status"]),
            x["benchmark"]["benchmark"],
            x["benchmark"]["baseline"],
            f"{x['benchmark']['name']}: {x['benchmark']['source']}",
            x["benchmark"]["confidence"],
        ]
        for x in report["lines"]
    ]


def _line_carriers(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            x["line"],
            term(x["carrier"]),
            " + ".join(x["meters"]),
            x["amount"],
            x["unit"],
            x["kgce"],
            x["kgco2"],
        ]
        for x in report["line_carriers"]
    ]


def _unallocated(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            term(x["carrier"]),
            x["site_amount"],
            x["lines_amount"],
            x["amount"],
            x["unit"],
            x["share"],
            x["kgce"],
            x["kgco2"],
        ]
        for x in report["unallocated"]
    ]


def _targets(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            x["line"],
            t["kind"],
            x["intensity_unit"],
            t["base_year"],
            t["base_intensity"],
            t["target_year"],
            t["reduction_required"],
            t["target_intensity"],
            t["intensity"],
            t["reduction_achieved"],
            t["on_path"],
            t["target_reached"],
            t["projected_target_year_intensity"],
            t["reduction_source"],
        ]
        for x in report["lines"]
        for t in x["targets"]
    ]


def _days(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            d["date"],
            d["kgce"],
            d["kgco2"],
            d["electricity_kwh"],
            d["output"],
            d["completeness"],
            d["gap"],
            *(x["intensity"] for x in d["lines"]),
        ]
        for d in report["days"]
    ]


def _day_columns(report: dict[str, Any]) -> list[Column]:
    units = {x["line"]: x["intensity_unit"] for x in report["lines"]}
    lines = [x["line"] for x in report["days"][0]["lines"]] if report["days"] else []
    return [
        Column(N_("date")),
        Column("kgce", None, AMOUNT),
        Column("kgCO2", None, AMOUNT),
        Column(N_("electricity"), "kWh", AMOUNT),
        Column(N_("output"), _site_unit(report), AMOUNT),
        Column(N_("complete"), None, SHARE),
        Column(N_("gap")),
        *(Column(f"{x} {_('intensity')}", units[x]) for x in lines),
    ]


def _site_unit(report: dict[str, Any]) -> str | None:
    unit: str | None = report["site_intensity"]["output_unit"]
    return unit


def _comparisons(report: dict[str, Any]) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for c in report["comparisons"]:
        kind = _(COMPARISON_KINDS[c["kind"]])
        if c["status"] != "ok":
            rows.append([kind, c["month"], _("no data")])
            continue
        f, ch = c["figures"], c["change"]
        rows.append(
            [
                kind,
                c["month"],
                f["kgce"],
                ch["kgce"],
                f["kgco2"],
                ch["kgco2"],
                f["electricity_kwh"],
                ch["electricity_kwh"],
                f["output"],
                ch["output"],
                f["kgce_per_unit"],
                ch["kgce_per_unit"],
            ]
        )
    return rows


def _baselines(report: dict[str, Any]) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for b in report["energy_baselines"]:
        head: list[Cell] = [b["baseline"], f"{b['first_month']}..{b['last_month']}"]
        head += [", ".join(b["variables"]), b["observations"]]
        if b["status"] != "ok":
            rows.append([*head, _("no model: {reason}").format(reason=b["reason"])])
            continue
        checks = {c["statistic"]: c for c in b["checks"]}
        run = b["reporting"]
        coefficients = "; ".join(
            f"{k} = {v:.6g} kgce/d per {b['variable_units'][k]} "
            f"(t = {checks['t_' + k]['value']:.3g})"
            if k in b["variable_units"]
            else f"{k} = {v:.6g} kgce/d"
            for k, v in b["coefficients"].items()
        )
        rows.append(
            [
                *head,
                coefficients,
                b["r2"],
                checks["r2"]["passes"],
                b["cv_rmse"],
                checks["cv_rmse"]["passes"],
                b["adequate"],
                run["actual_kgce"],
                run["expected_kgce"],
                run["savings_kgce"],
                run["normalised_enpi"],
                "; ".join(sorted({c["source"] for c in b["checks"]})),
            ]
        )
    return rows


def _cusum(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            b["baseline"],
            s["date"],
            s["actual_kgce"],
            s["expected_kgce"],
            s["savings_kgce"],
            s["cusum_kgce"],
        ]
        for b in report["energy_baselines"]
        if b["status"] == "ok"
        for s in b["reporting"]["cusum"]
    ]


def _tou(report: dict[str, Any]) -> list[list[Cell]]:
    tou = report.get("tou")
    if tou is None:
        return []
    rows: list[list[Cell]] = [
        [p["season"], term(p["period"]), p["kwh"], p["price"], p["cny"]] for p in tou["periods"]
    ]
    rows.append([_("total"), None, tou["kwh"], None, tou["cny"]])
    return rows


def _demand(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [d["meter"], d["kw"], d.get("window_start"), d.get("windows")] for d in report["demand"]
    ]


def _quality(report: dict[str, Any]) -> list[list[Cell]]:
    figures = [
        (_("meter {meter}").format(meter=m["meter"]), m["unit"], m["data_quality"])
        for m in report["meters"]
    ]
    figures += [
        (_("line {line}").format(line=x["line"]), "kgce", x["data_quality"])
        for x in report["lines"]
    ]
    figures.append(
        (_("site {site}").format(site=report["site"]), "kgce", report["totals"]["data_quality"])
    )
    return [
        [name, unit, q["completeness"], q["estimated_share"]]
        + [q["by_quality"][k] for k in QUALITY_KEY.values()]
        + [q["minutes_with_data"], q["expected_minutes"]]
        for name, unit, q in figures
    ]


def _counters(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            c["series"],
            c["issue"],
            c["from"],
            c["to"],
            c["counted"],
            c["excluded"],
            c["estimated"],
            c["reason"],
        ]
        for c in report["counters"]
    ]


def _factors(report: dict[str, Any]) -> list[list[Cell]]:
    return [
        [
            term(carrier),
            f["kgce_per_unit"],
            f"kgce/{f['unit']}",
            f["coefficient_source"],
            f["coefficient_confidence"],
            f["kgco2_per_unit"],
            f"kgCO2/{f['unit']}",
            f["co2_source"],
            f["co2_confidence"],
        ]
        for carrier, f in report["factors"].items()
    ]


def _sheets(report: dict[str, Any]) -> list[Sheet]:
    site_unit = _site_unit(report)
    return [
        Sheet(
            N_("Summary"),
            [Column(N_("figure")), Column(N_("value"), None, AMOUNT), Column(N_("unit"))],
            _summary,
        ),
        Sheet(
            N_("Carriers"),
            [
                Column(N_("carrier")),
                Column(N_("meters")),
                Column(N_("amount"), None, AMOUNT),
                Column(N_("unit")),
                Column("kgce", None, AMOUNT),
                Column("kgCO2", None, AMOUNT),
            ],
            _carriers,
        ),
        Sheet(
            N_("Meters"),
            [
                Column(N_("meter")),
                Column(N_("carrier")),
                Column(N_("role")),
                Column(N_("line")),
                Column(N_("formula")),
                Column(N_("amount"), None, AMOUNT),
                Column(N_("unit")),
                Column("kgce", None, AMOUNT),
                Column("kgCO2", None, AMOUNT),
                Column(N_("complete"), None, SHARE),
            ],
            _meters,
        ),
        Sheet(
            N_("Lines"),
            [
                Column(N_("line")),
                Column(N_("product")),
                Column(N_("output"), None, AMOUNT),
                Column(N_("unit")),
                Column("kgce", None, AMOUNT),
                Column("kgCO2", None, AMOUNT),
                Column(N_("electricity"), "kWh", AMOUNT),
                Column(N_("intensity")),
                Column(N_("per")),
                Column(N_("status")),
                Column(N_("benchmark value")),
                Column(N_("baseline value")),
                Column(N_("source")),
                Column(N_("confidence")),
            ],
            _lines,
        ),
        Sheet(
            N_("By line and carrier"),
            [
                Column(N_("line")),
                Column(N_("carrier")),
                Column(N_("meters")),
                Column(N_("amount"), None, AMOUNT),
                Column(N_("unit")),
                Column("kgce", None, AMOUNT),
                Column("kgCO2", None, AMOUNT),
            ],
            _line_carriers,
        ),
        Sheet(
            N_("Not allocated"),
            [
                Column(N_("carrier")),
                Column(N_("site"), None, AMOUNT),
                Column(N_("lines"), None, AMOUNT),
                Column(N_("remainder"), None, AMOUNT),
                Column(N_("unit")),
                Column(N_("share"), None, SHARE),
                Column("kgce", None, AMOUNT),
                Column("kgCO2", None, AMOUNT),
            ],
            _unallocated,
        ),
        Sheet(
            N_("Targets"),
            [
                Column(N_("line")),
                Column(N_("kind")),
                Column(N_("per")),
                Column(N_("base year")),
                Column(N_("base intensity")),
                Column(N_("target year")),
                Column(N_("reduction required"), None, SHARE),
                Column(N_("target intensity")),
                Column(N_("intensity")),
                Column(N_("reduction achieved"), None, SHARE),
                Column(N_("on path")),
                Column(N_("target reached")),
                Column(N_("projected")),
                Column(N_("source")),
            ],
            _targets,
        ),
        Sheet(N_("Days"), _day_columns(report), _days),
        Sheet(
            N_("Comparisons"),
            [
                Column(N_("against")),
                Column(N_("month")),
                Column("kgce", None, AMOUNT),
                Column(N_("change"), None, SHARE),
                Column("kgCO2", None, AMOUNT),
                Column(N_("change"), None, SHARE),
                Column(N_("electricity"), "kWh", AMOUNT),
                Column(N_("change"), None, SHARE),
                Column(N_("output"), site_unit, AMOUNT),
                Column(N_("change"), None, SHARE),
                Column(N_("kgce per unit"), f"kgce/{site_unit}" if site_unit else None),
                Column(N_("change"), None, SHARE),
            ],
            _comparisons,
        ),
        Sheet(
            N_("Energy baselines"),
            [
                Column(N_("baseline")),
                Column(N_("period")),
                Column(N_("variables")),
                Column(N_("days"), "d"),
                Column(N_("model")),
                Column("R²"),
                Column(N_("R² passes")),
                Column("CV(RMSE)", None, SHARE),
                Column(N_("CV(RMSE) passes")),
                Column(N_("adequate")),
                Column(N_("actual"), "kgce", AMOUNT),
                Column(N_("expected"), "kgce", AMOUNT),
                Column(N_("savings"), "kgce", AMOUNT),
                Column(N_("normalised EnPI")),
                Column(N_("source")),
            ],
            _baselines,
        ),
        Sheet(
            "CUSUM",
            [
                Column(N_("baseline")),
                Column(N_("date")),
                Column(N_("actual"), "kgce", AMOUNT),
                Column(N_("expected"), "kgce", AMOUNT),
                Column(N_("savings"), "kgce", AMOUNT),
                Column("CUSUM", "kgce", AMOUNT),
            ],
            _cusum,
        ),
        Sheet(
            N_("Time of use"),
            [
                Column(N_("season")),
                Column(N_("period")),
                Column(N_("electricity"), "kWh", AMOUNT),
                Column(N_("price"), "CNY/kWh"),
                Column(N_("cost"), "CNY", AMOUNT),
            ],
            _tou,
        ),
        Sheet(
            N_("Demand"),
            [
                Column(N_("meter")),
                Column(N_("maximum demand"), "kW", AMOUNT),
                Column(N_("window start")),
                Column(N_("complete windows")),
            ],
            _demand,
        ),
        Sheet(
            N_("Data quality"),
            [
                Column(N_("figure")),
                Column(N_("unit")),
                Column(N_("complete"), None, SHARE),
                Column(N_("estimated share"), None, SHARE),
                *(Column(k, None, AMOUNT) for k in QUALITY_KEY.values()),
                Column(N_("minutes with data"), "min"),
                Column(N_("minutes expected"), "min"),
            ],
            _quality,
        ),
        Sheet(
            N_("Counters"),
            [
                Column(N_("series")),
                Column(N_("issue")),
                Column(N_("from")),
                Column(N_("to")),
                Column(N_("counted"), None, AMOUNT),
                Column(N_("excluded"), None, AMOUNT),
                Column(N_("estimated"), None, AMOUNT),
                Column(N_("reason")),
            ],
            _counters,
        ),
        Sheet(
            N_("Factors"),
            [
                Column(N_("carrier")),
                Column(N_("coal equivalent")),
                Column(N_("unit")),
                Column(N_("source")),
                Column(N_("confidence")),
                Column("CO2"),
                Column(N_("unit")),
                Column(N_("source")),
                Column(N_("confidence")),
            ],
            _factors,
        ),
    ]


def header_text(column: Column) -> str:
    name = term(column.header) if column.header in QUALITY_KEY.values() else _(column.header)
    return f"{name} ({column.unit})" if column.unit else name


def render_xlsx(report: dict[str, Any]) -> bytes:
    from openpyxl import Workbook  # noqa: PLC0415 - only for --format xlsx
    from openpyxl.styles import Font  # noqa: PLC0415

    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for sheet in _sheets(report):
        ws = book.create_sheet(_title(_(sheet.title)))
        ws.append([header_text(c) for c in sheet.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
        for row in sheet.rows(report):
            ws.append([None if isinstance(c, float) and not math.isfinite(c) else c for c in row])
        for k, column in enumerate(sheet.columns, start=1):
            letter = ws.cell(row=1, column=k).column_letter
            ws.column_dimensions[letter].width = max(10, min(60, len(header_text(column)) + 4))
            if column.format is None:
                continue
            for (cell,) in ws.iter_rows(min_row=2, min_col=k, max_col=k):
                if isinstance(cell.value, float | int) and not isinstance(cell.value, bool):
                    cell.number_format = column.format
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
