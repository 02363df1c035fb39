"""The monthly report as CSV: complete, long format, UTF-8 with a byte-order mark so that
Excel on Chinese Windows reads it."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any, Final

from collector.reports.numbers import amount_text, given_text, ratio_text, term
from greengauge.common.i18n import N_, _

CsvRow = tuple[str, str, str, str, str, str, str]
CSV_HEADER: Final = (
    N_("section"),
    N_("name"),
    N_("quantity"),
    N_("value"),
    N_("unit"),
    N_("source"),
    N_("confidence"),
)
"""Column headings, in the reader's language; the first three columns' values are keys."""
CSV_BOM: Final = "\ufeff"
"""Leads the CSV: Excel reads a file without it in the system code page (GBK on Chinese
Windows) and garbles every non-ASCII name."""


def _csv_totals(report: dict[str, Any]) -> list[CsvRow]:
    t = report["totals"]
    basis = _("sum of the carriers")
    return [
        ("site", report["site"], "kgce", amount_text(t["kgce"], False), "kgce", basis, ""),
        ("site", report["site"], "kgco2", amount_text(t["kgco2"], False), "kgCO2", basis, ""),
    ]


def _csv_carriers(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for c in report["carriers"]:
        meters = _("sum of {parts}").format(parts=" + ".join(c["meters"]))
        rows += [
            (
                "carrier",
                c["carrier"],
                "amount",
                amount_text(c["amount"], False),
                c["unit"],
                meters,
                "",
            ),
            ("carrier", c["carrier"], "kgce", amount_text(c["kgce"], False), "kgce", meters, ""),
            ("carrier", c["carrier"], "kgco2", amount_text(c["kgco2"], False), "kgCO2", meters, ""),
        ]
    return rows


def _csv_quality(section: str, name: str, q: dict[str, Any], unit: str) -> list[CsvRow]:
    rows: list[CsvRow] = [
        (
            section,
            name,
            "completeness",
            ratio_text(q["completeness"], False),
            "",
            _("measured minutes / expected minutes"),
            "",
        ),
        (
            section,
            name,
            "estimated_share",
            ratio_text(q["estimated_share"], False),
            "",
            _("(spread over gaps + estimated) / figure"),
            "",
        ),
    ]
    rows += [
        (
            section,
            name,
            k,
            amount_text(v, False),
            unit,
            _("part of the figure: {part}").format(part=term(k)),
            "",
        )
        for k, v in q["by_quality"].items()
    ]
    return rows


def _csv_meters(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for m in report["meters"]:
        for q, unit in (("amount", m["unit"]), ("kgce", "kgce"), ("kgco2", "kgCO2")):
            rows.append(
                ("meter", m["meter"], q, amount_text(m[q], False), unit, m["formula"] or "", "")
            )
        rows += _csv_quality("meter", m["meter"], m["data_quality"], m["unit"])
    return rows


def _csv_lines(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for x in report["lines"]:
        b = x["benchmark"]
        meters = _("sum of {parts}").format(parts=" + ".join(x["meters"]))
        rows += [
            (
                "line",
                x["line"],
                "output",
                amount_text(x["output"], False),
                x["output_unit"],
                x["output_source"],
                "",
            ),
            ("line", x["line"], "kgce", amount_text(x["kgce"], False), "kgce", meters, ""),
            ("line", x["line"], "kgco2", amount_text(x["kgco2"], False), "kgCO2", meters, ""),
            (
                "line",
                x["line"],
                "intensity",
                ratio_text(x["intensity"], False),
                x["intensity_unit"],
                b["name"],
                "",
            ),
            ("line", x["line"], "status", x["status"], "", b["name"], ""),
            (
                "line",
                x["line"],
                "benchmark",
                given_text(b["benchmark"], False),
                x["intensity_unit"],
                b["source"],
                b["confidence"],
            ),
            (
                "line",
                x["line"],
                "baseline",
                given_text(b["baseline"], False),
                x["intensity_unit"],
                b["source"],
                b["confidence"],
            ),
        ]
        for t in x["targets"]:
            src, conf = t["reduction_source"], t["reduction_confidence"]
            name = f"{x['line']} {t['kind']} target"
            rows += [
                (
                    "target",
                    name,
                    "reduction_required",
                    given_text(t["reduction_required"], False),
                    "",
                    src,
                    conf,
                ),
                (
                    "target",
                    name,
                    "reduction_achieved",
                    ratio_text(t["reduction_achieved"], False),
                    "",
                    "",
                    "",
                ),
                (
                    "target",
                    name,
                    "on_path",
                    _flag(t["on_path"]),
                    "",
                    _("path to {year}").format(year=t["target_year"]),
                    "",
                ),
                ("target", name, "target_reached", _flag(t["target_reached"]), "", "", ""),
                (
                    "target",
                    name,
                    "projected_target_year_intensity",
                    ratio_text(t["projected_target_year_intensity"], False),
                    x["intensity_unit"],
                    _("at the rate since {year}").format(year=t["base_year"]),
                    "",
                ),
            ]
        rows += _csv_quality("line", x["line"], x["data_quality"], "kgce")
    return rows


def _flag(value: bool | None) -> str:
    return "-" if value is None else str(value).lower()


def _csv_site_quality(report: dict[str, Any]) -> list[CsvRow]:
    return _csv_quality("site", report["site"], report["totals"]["data_quality"], "kgce")


def _csv_demand(report: dict[str, Any]) -> list[CsvRow]:
    return [
        (
            "demand",
            d["meter"],
            "max_kw",
            amount_text(d["kw"], False),
            "kW",
            _("15-min average, 1-min sliding"),
            "",
        )
        for d in report["demand"]
    ]


def _csv_factors(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for carrier, f in report["factors"].items():
        rows += [
            (
                "factor",
                carrier,
                "kgce_per_unit",
                given_text(f["kgce_per_unit"], False),
                f"kgce/{f['unit']}",
                f["coefficient_source"],
                f["coefficient_confidence"],
            ),
            (
                "factor",
                carrier,
                "kgco2_per_unit",
                given_text(f["kgco2_per_unit"], False),
                f"kgCO2/{f['unit']}",
                f["co2_source"],
                f["co2_confidence"],
            ),
        ]
    return rows


def _csv_counters(report: dict[str, Any]) -> list[CsvRow]:
    return [
        ("counter", c["series"], f"{c['issue']} {q}", amount_text(c[q], False), "", c["reason"], "")
        for c in report["counters"]
        for q in ("counted", "excluded", "estimated")
    ]


def _csv_tou(report: dict[str, Any]) -> list[CsvRow]:
    if "tou" not in report:
        return []
    tou = report["tou"]
    src, conf = tou["source"], tou["confidence"]
    rows: list[CsvRow] = [
        ("tou", f"{p['season']} {p['period']}", q, text, unit, src, conf)
        for p in tou["periods"]
        for q, text, unit in (
            ("kwh", amount_text(p["kwh"], False), "kWh"),
            ("cny", amount_text(p["cny"], False), "CNY"),
        )
    ]
    rows += [
        ("tou", "total", "kwh", amount_text(tou["kwh"], False), "kWh", _("sum of the periods"), ""),
        ("tou", "total", "cny", amount_text(tou["cny"], False), "CNY", _("sum of the periods"), ""),
    ]
    return rows


def _csv_site_extra(report: dict[str, Any]) -> list[CsvRow]:
    """The site's figures beside its totals: electricity, tce, market-based CO2, value added."""
    t, co2, site = report["totals"], report["co2"], report["site"]
    rows: list[CsvRow] = [
        (
            "site",
            site,
            "electricity_kwh",
            amount_text(t["electricity_kwh"], False),
            "kWh",
            _("boundary electricity"),
            "",
        ),
        ("site", site, "tce", amount_text(t["kgce"] / 1000, False), "tce", "kgce / 1000", ""),
    ]
    if "market_based_kgco2" in co2:
        rows.append(
            (
                "site",
                site,
                "market_based_kgco2",
                amount_text(co2["market_based_kgco2"], False),
                "kgCO2",
                f"{co2['market_based_basis']}; {co2['market_based_source']}",
                co2["market_based_confidence"],
            )
        )
    va = report.get("value_added")
    if va is not None:
        rows += [
            ("site", site, "value_added", given_text(va["cny"], False), "CNY", "", ""),
            (
                "site",
                site,
                "kgce_per_10k_cny",
                ratio_text(va["kgce_per_10k_cny"], False),
                "kgce/10^4 CNY",
                "",
                "",
            ),
            (
                "site",
                site,
                "kgco2_per_10k_cny",
                ratio_text(va["kgco2_per_10k_cny"], False),
                "kgCO2/10^4 CNY",
                "",
                "",
            ),
        ]
    si = report["site_intensity"]
    if si["output_unit"] is not None:
        rows += [
            ("site", site, "output", amount_text(si["output"], False), si["output_unit"], "", ""),
            (
                "site",
                site,
                "kgce_per_unit",
                ratio_text(si["kgce_per_unit"], False),
                f"kgce/{si['output_unit']}",
                _("boundary kgce / the lines' output"),
                "",
            ),
        ]
    return rows


def _csv_line_extra(report: dict[str, Any]) -> list[CsvRow]:
    """Each target's intensities, the green-factory position, TOU cost per unit."""
    rows: list[CsvRow] = []
    for x in report["lines"]:
        unit = x["intensity_unit"]
        for t in x["targets"]:
            name = f"{x['line']} {t['kind']} target"
            rows += [
                ("target", name, q, ratio_text(t[q], False), unit, "", "")
                for q in ("intensity", "target_intensity", "path_intensity")
            ]
            rows.append(
                (
                    "target",
                    name,
                    "base_intensity",
                    given_text(t["base_intensity"], False),
                    unit,
                    t["reduction_source"],
                    t["reduction_confidence"],
                )
            )
        gf = x.get("green_factory")
        if gf is not None:
            rows.append(
                (
                    "green_factory",
                    x["line"],
                    "position",
                    ratio_text(gf["position"], False),
                    "",
                    f"{gf['standard']}: {gf['source']}",
                    gf["confidence"],
                )
            )
    if "tou" in report:
        tou = report["tou"]
        rows.append(
            (
                "tou",
                "total",
                "cny_per_unit",
                ratio_text(tou["cny_per_unit"], False),
                "CNY",
                _("cost / output"),
                "",
            )
        )
    return rows


def _csv_breakdowns(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for x in report["line_carriers"]:
        name = f"{x['line']} {x['carrier']}"
        meters = _("sum of {parts}").format(parts=" + ".join(x["meters"]))
        rows += [
            (
                "line_carrier",
                name,
                "amount",
                amount_text(x["amount"], False),
                x["unit"],
                meters,
                "",
            ),
            ("line_carrier", name, "kgce", amount_text(x["kgce"], False), "kgce", meters, ""),
            ("line_carrier", name, "kgco2", amount_text(x["kgco2"], False), "kgCO2", meters, ""),
        ]
    basis = _("site boundary minus the lines' meters")
    for x in report["unallocated"]:
        rows += [
            (
                "unallocated",
                x["carrier"],
                "amount",
                amount_text(x["amount"], False),
                x["unit"],
                basis,
                "",
            ),
            ("unallocated", x["carrier"], "kgce", amount_text(x["kgce"], False), "kgce", basis, ""),
            ("unallocated", x["carrier"], "share", ratio_text(x["share"], False), "", basis, ""),
        ]
    return rows


def _csv_days(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    units = {x["line"]: x["intensity_unit"] for x in report["lines"]}
    for d in report["days"]:
        rows += [
            ("day", d["date"], "kgce", amount_text(d["kgce"], False), "kgce", "", ""),
            ("day", d["date"], "kgco2", amount_text(d["kgco2"], False), "kgCO2", "", ""),
            (
                "day",
                d["date"],
                "electricity_kwh",
                amount_text(d["electricity_kwh"], False),
                "kWh",
                "",
                "",
            ),
            ("day", d["date"], "completeness", ratio_text(d["completeness"], False), "", "", ""),
        ]
        rows += [
            (
                "day",
                f"{d['date']} {x['line']}",
                "intensity",
                ratio_text(x["intensity"], False),
                units[x["line"]],
                "",
                "",
            )
            for x in d["lines"]
        ]
    return rows


def _csv_comparisons(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for c in report["comparisons"]:
        name = f"{c['kind']} {c['month']}"
        if c["status"] != "ok":
            rows.append(("comparison", name, "status", c["status"], "", "", ""))
            continue
        for key, unit in (("kgce", "kgce"), ("kgco2", "kgCO2"), ("electricity_kwh", "kWh")):
            rows += [
                ("comparison", name, key, amount_text(c["figures"][key], False), unit, "", ""),
                (
                    "comparison",
                    name,
                    f"{key}_change",
                    ratio_text(c["change"][key], False),
                    "",
                    _("this month / that month - 1"),
                    "",
                ),
            ]
    return rows


def _csv_baselines(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for b in report["energy_baselines"]:
        name = f"baseline {b['baseline']}"
        period = f"{b['first_month']}..{b['last_month']}"
        rows.append(("baseline", name, "observations", str(b["observations"]), "d", period, ""))
        if b["status"] != "ok":
            rows.append(("baseline", name, "status", b["status"], "", b["reason"], ""))
            continue
        units = {"intercept": "kgce/d"} | {
            k: f"kgce/d per {u}" for k, u in b["variable_units"].items()
        }
        rows += [
            ("baseline", name, f"coefficient {k}", ratio_text(v, False), units[k], period, "")
            for k, v in b["coefficients"].items()
        ]
        rows += [
            (
                "baseline",
                name,
                c["statistic"],
                ratio_text(c["value"], False),
                f"{c['rule']} {given_text(c['limit'])}",
                c["source"],
                c["confidence"],
            )
            for c in b["checks"]
        ]
        rows.append(("baseline", name, "adequate", _flag(b["adequate"]), "", "", ""))
        run = b["reporting"]
        rows += [
            ("baseline", name, key, amount_text(run[key], False), "kgce", "", "")
            for key in ("actual_kgce", "expected_kgce", "savings_kgce")
        ]
        rows.append(
            (
                "baseline",
                name,
                "normalised_enpi",
                ratio_text(run["normalised_enpi"], False),
                "",
                _("actual / expected"),
                "",
            )
        )
        rows += [
            (
                "cusum",
                f"{b['baseline']} {s['date']}",
                "cusum_kgce",
                amount_text(s["cusum_kgce"], False),
                "kgce",
                "",
                "",
            )
            for s in run["cusum"]
        ]
    return rows


def _csv_emissions(report: dict[str, Any]) -> list[CsvRow]:
    e = report["emissions"]
    meaning = _(e["meaning"])
    rows: list[CsvRow] = [
        ("emissions", report["site"], key, amount_text(e[key], False), "kgCO2", meaning, "")
        for key in (
            "scope1_combustion_kgco2",
            "scope1_process_kgco2",
            "scope1_kgco2",
            "scope2_location_kgco2",
            "scope2_market_kgco2",
            "energy_kgco2",
            "process_kgco2",
            "total_kgco2",
            "total_market_kgco2",
        )
        if e[key] is not None
    ]
    rows += [
        ("carrier", c["carrier"], "scope", str(c["scope"]), "", meaning, "")
        for c in e["by_carrier"]
    ]
    basis = _("energy CO2 + process CO2")
    rows += [
        ("line", x["line"], quantity, text, unit, basis, "")
        for x in report["lines"]
        if x["process_emissions"]
        for quantity, text, unit in (
            ("process_kgco2", amount_text(x["process_kgco2"], False), "kgCO2"),
            ("total_kgco2", amount_text(x["total_kgco2"], False), "kgCO2"),
            (
                "total_kgco2_per_unit",
                ratio_text(x["total_kgco2_per_unit"], False),
                f"kgCO2/{x['output_unit']}",
            ),
        )
    ]
    for p in e["process"]:
        name = f"{p['line']} {p['name']}"
        rows += [
            ("process", name, "output", amount_text(p["output"], False), p["output_unit"], "", ""),
            (
                "process",
                name,
                "kgco2_per_unit",
                given_text(p["kgco2_per_unit"], False),
                p["unit"],
                p["source"],
                p["confidence"],
            ),
            ("process", name, "kgco2", amount_text(p["kgco2"], False), "kgCO2", p["basis"], ""),
        ]
    return rows


def _csv_indicators(report: dict[str, Any]) -> list[CsvRow]:
    rows: list[CsvRow] = []
    for x in report["lines"]:
        for i in x["indicators"]:
            name, src, conf = f"{x['line']} {i['name']}", i["source"], i["confidence"]
            rows += [
                ("indicator", name, "value", ratio_text(i["value"], False), i["unit"], src, conf),
                ("indicator", name, "status", i["status"], "", src, conf),
            ]
            if i["kind"] == "energy_limit":
                grade = "-" if i["grade"] is None else str(i["grade"])
                rows.append(("indicator", name, "grade", grade, "", src, conf))
        gf = x.get("green_factory")
        if gf is not None:
            score = "-" if gf["score"] is None else ratio_text(gf["score"], False)
            rows.append(("green_factory", x["line"], "score", score, "", _(gf["score_rule"]), ""))
    return rows


CSV_SECTIONS: Final[list[Callable[[dict[str, Any]], list[CsvRow]]]] = [
    _csv_totals,
    _csv_site_extra,
    _csv_carriers,
    _csv_meters,
    _csv_lines,
    _csv_emissions,
    _csv_indicators,
    _csv_site_quality,
    _csv_demand,
    _csv_counters,
    _csv_tou,
    _csv_line_extra,
    _csv_breakdowns,
    _csv_comparisons,
    _csv_baselines,
    _csv_days,
    _csv_factors,
]
"""The CSV rows, in order; a new part of the report is one more function here."""
"""The CSV rows, in order; a new part of the report is one more function here."""


def render_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO(CSV_BOM)
    buffer.seek(0, io.SEEK_END)
    writer = csv.writer(buffer, dialect="excel")
    writer.writerow([_(h) for h in CSV_HEADER])
    for section in CSV_SECTIONS:
        writer.writerows(tuple(excel_text(c) for c in row) for row in section(report))
    return buffer.getvalue()


FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
"""How a cell Excel would run as a formula starts (OWASP, CSV injection)."""


def excel_text(cell: str) -> str:
    """A cell as Excel shows it and does not run: a text (a source, a meter's name) that
    starts like a formula gets a leading apostrophe; a number (-5.000) stays a number."""
    if cell == "-" or not cell.startswith(FORMULA_START):
        return cell  # "-" alone: a figure not known, which Excel leaves as text
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell
