"""The monthly report as a plain-text table."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from collector.reports.breakdown import NO_DATA
from collector.reports.build import QUALITY_KEY
from collector.reports.numbers import (
    DECIMALS,
    ROUNDING_TEXT,
    SIGNIFICANT,
    amount_text,
    given_text,
    ratio_text,
    share_text,
    term,
)
from greengauge.common.i18n import N_, _, decimal_text, ljust, month_text, rjust, width


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(width(h), *(width(r[i]) for r in rows)) if rows else width(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(ljust(h, w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                rjust(c, w) if i else ljust(c, w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _sourced(source: str, confidence: str) -> str:
    return _("source: {source} [confidence {confidence}]").format(
        source=source, confidence=confidence
    )


Section = Callable[[dict[str, Any]], list[str]]
"""A part of the table: the report in, printed lines out."""


def _head(report: dict[str, Any]) -> list[str]:
    year, month = (int(x) for x in report["month"].split("-"))
    return [
        _("Energy and carbon report: site {site}, {month} ({start} .. {end}, {timezone})").format(
            site=report["site"],
            month=month_text(year, month),
            start=report["from"],
            end=report["to"],
            timezone=report["timezone"],
        ),
        _("Coal-equivalent basis: {basis}").format(basis=term(report["conversion_basis"])),
        _("Rounding: {rule}").format(
            rule=_(ROUNDING_TEXT).format(decimals=DECIMALS, significant=SIGNIFICANT)
        ),
    ]


def _carriers(report: dict[str, Any]) -> list[str]:
    totals, co2 = report["totals"], report["co2"]
    parts = [
        "",
        _("Energy by carrier (boundary meters)"),
        _table(
            [_("carrier"), _("meters"), _("amount"), _("unit"), "kgce", "kgCO2"],
            [
                [
                    term(c["carrier"]),
                    " + ".join(c["meters"]),
                    amount_text(c["amount"]),
                    c["unit"],
                    amount_text(c["kgce"]),
                    amount_text(c["kgco2"]),
                ]
                for c in report["carriers"]
            ],
        ),
        _("Site total: {kgce} kgce, {kgco2} kgCO2 (location-based, {factor}; {sourced})").format(
            kgce=amount_text(totals["kgce"]),
            kgco2=amount_text(totals["kgco2"]),
            factor=co2["grid_factor"],
            sourced=_sourced(co2["grid_factor_source"], co2["grid_factor_confidence"]),
        ),
        _("Comprehensive energy consumption: {tce} tce").format(
            tce=amount_text(totals["kgce"] / 1000)
        ),
    ]
    if "hourly_grid_factor" in co2:
        parts.append(
            _("Hourly grid factor: {factor} [confidence {confidence}]").format(
                factor=co2["hourly_grid_factor"],
                confidence=co2["hourly_grid_factor_confidence"],
            )
        )
    if "market_based_kgco2" in co2:
        parts.append(
            _("Market-based: {kgco2} kgCO2 ({basis}; {sourced})").format(
                kgco2=amount_text(co2["market_based_kgco2"]),
                basis=co2["market_based_basis"],
                sourced=_sourced(co2["market_based_source"], co2["market_based_confidence"]),
            )
        )
    return parts


def _meters(report: dict[str, Any]) -> list[str]:
    return [
        "",
        _("Meters"),
        _table(
            [
                _("meter"),
                _("carrier"),
                _("role"),
                _("line"),
                _("amount"),
                _("unit"),
                "kgce",
                "kgCO2",
            ],
            [
                [
                    m["meter"]
                    + (f" = {m['formula']}" if m["formula"] else "")
                    + (_(" (estimated from power)") if m["estimated"] else ""),
                    term(m["carrier"]),
                    term(m["role"]),
                    m["line"] or "-",
                    amount_text(m["amount"]),
                    m["unit"],
                    amount_text(m["kgce"]),
                    amount_text(m["kgco2"]),
                ]
                for m in report["meters"]
            ],
        ),
    ]


def _lines(report: dict[str, Any]) -> list[str]:
    parts = [
        "",
        _("Lines"),
        _table(
            [
                _("line"),
                _("product"),
                _("output"),
                _("unit"),
                "kgce",
                "kgCO2",
                _("intensity"),
                _("per"),
                _("status"),
            ],
            [
                [
                    x["line"],
                    x["product"],
                    amount_text(x["output"]),
                    x["output_unit"],
                    amount_text(x["kgce"]),
                    amount_text(x["kgco2"]),
                    ratio_text(x["intensity"]),
                    x["intensity_unit"],
                    term(x["status"]),
                ]
                for x in report["lines"]
            ],
        ),
    ]
    for x in report["lines"]:
        b = x["benchmark"]
        parts.append(
            _(
                "  {line}: meters {meters}; output from {source}; judged against {name}: "
                "benchmark {benchmark}, baseline {baseline} {unit} ({sourced})"
            ).format(
                line=x["line"],
                meters=" + ".join(x["meters"]) or "-",
                source=x["output_source"],
                name=b["name"],
                benchmark=given_text(b["benchmark"]),
                baseline=given_text(b["baseline"]),
                unit=x["intensity_unit"],
                sourced=_sourced(b["source"], b["confidence"]),
            )
        )
        parts += [_target_text(x["line"], t) for t in x["targets"]]
        gf = x.get("green_factory")
        if gf is not None and gf["position"] is not None:
            parts.append(
                _(
                    "  {line} {standard}: {share} of the way from the baseline value "
                    "{baseline} to the leading value {leading} ({sourced})"
                ).format(
                    line=x["line"],
                    standard=gf["standard"],
                    share=share_text(gf["position"]),
                    baseline=given_text(gf["baseline"]),
                    leading=given_text(gf["leading"]),
                    sourced=_sourced(gf["source"], gf["confidence"]),
                )
            )
    return parts


def _target_text(line: str, t: dict[str, Any]) -> str:
    head = _(
        "  {line} {kind} target: -{required} by {target_year} vs {base_year} (base {base}, "
        "target {target}; {sourced}); {year} so far {intensity}, achieved {achieved}"
    ).format(
        line=line,
        kind=t["kind"],
        required=share_text(t["reduction_required"]),
        target_year=t["target_year"],
        base_year=t["base_year"],
        base=given_text(t["base_intensity"]),
        target=ratio_text(t["target_intensity"]),
        sourced=_sourced(t["reduction_source"], t["reduction_confidence"]),
        year=t["year"],
        intensity=ratio_text(t["intensity"]),
        achieved=share_text(t["reduction_achieved"]),
    )
    if t["on_path"] is None:
        passed = (
            _("{head}; the target year {year} has passed: target reached")
            if t["target_reached"]
            else _("{head}; the target year {year} has passed: target NOT reached")
        )
        return passed.format(head=head, year=t["target_year"])
    path = (
        _("{head}; on path ({intensity} in {year})")
        if t["on_path"]
        else _("{head}; OFF path ({intensity} in {year})")
    ).format(head=head, intensity=ratio_text(t["path_intensity"]), year=t["year"])
    if t["projected_target_year_intensity"] is None:
        return path
    return (
        _("{path}; at this rate {intensity} in {year} (on track)")
        if t["on_track"]
        else _("{path}; at this rate {intensity} in {year} (OFF track)")
    ).format(
        path=path,
        intensity=ratio_text(t["projected_target_year_intensity"]),
        year=t["target_year"],
    )


def _quality_row(name: str, unit: str, q: dict[str, Any]) -> list[str]:
    by = q["by_quality"]
    return [
        name,
        unit,
        share_text(q["completeness"]),
        share_text(q["estimated_share"]),
        *(amount_text(by[k]) for k in QUALITY_KEY.values()),
        decimal_text(Decimal(q["minutes_with_data"])),
    ]


def _quality(report: dict[str, Any]) -> list[str]:
    rows = [
        _quality_row(_("meter {meter}").format(meter=m["meter"]), m["unit"], m["data_quality"])
        for m in report["meters"]
    ]
    rows += [
        _quality_row(_("line {line}").format(line=x["line"]), "kgce", x["data_quality"])
        for x in report["lines"]
    ]
    rows.append(
        _quality_row(
            _("site {site}").format(site=report["site"]),
            "kgce",
            report["totals"]["data_quality"],
        )
    )
    expected = report["totals"]["data_quality"]["expected_minutes"]
    parts = [
        "",
        _(
            "Data quality (of {expected} minutes expected; complete: every minute of the "
            "figure measured by counter readings; estimated share: the part of the figure "
            "spread over gaps or estimated; then the figure split by how each part is known)"
        ).format(expected=decimal_text(Decimal(expected))),
        _table(
            [
                _("figure"),
                _("unit"),
                _("complete"),
                _("estimated share"),
                *(term(k).replace("_", " ") for k in QUALITY_KEY.values()),
                _("minutes with data"),
            ],
            rows,
        ),
    ]
    parts += [
        f"  {term(k).replace('_', ' ')}: {_(v)}" for k, v in report["quality_meaning"].items()
    ]
    return parts


def _demand_section(report: dict[str, Any]) -> list[str]:
    return [
        "",
        _("Maximum demand (15-min average, 1-min sliding)"),
        _table(
            [_("meter"), "kW", _("window start"), _("complete windows")],
            [
                [
                    d["meter"],
                    amount_text(d["kw"]),
                    d.get("window_start") or "-",
                    str(d.get("windows", "-")),
                ]
                for d in report["demand"]
            ],
        ),
    ]


def _counters_section(report: dict[str, Any]) -> list[str]:
    if not report["counters"]:
        return []
    return [
        "",
        _("Counter readings not used, amounts excluded or estimated (estimated: in the totals)"),
        _table(
            [
                _("series"),
                _("issue"),
                _("from"),
                _("counted"),
                _("excluded"),
                _("estimated"),
                _("reason"),
            ],
            [
                [c["series"], c["issue"], c["from"]]
                + [amount_text(c[k]) for k in ("counted", "excluded", "estimated")]
                + [c["reason"]]
                for c in report["counters"]
            ],
        ),
    ]


def _tou_section(report: dict[str, Any]) -> list[str]:
    if "tou" not in report:
        return []
    tou = report["tou"]
    return [
        "",
        _("Time of use (boundary electricity; prices: {sourced})").format(
            sourced=_sourced(tou["source"], tou["confidence"])
        ),
        _table(
            [_("season"), _("period"), "kWh", _("CNY/kWh"), _("CNY")],
            [
                [
                    p["season"],
                    term(p["period"]),
                    amount_text(p["kwh"]),
                    given_text(p["price"]),
                    amount_text(p["cny"]),
                ]
                for p in tou["periods"]
            ],
        ),
        _("Total {kwh} kWh, {cny} CNY; per unit of output {per_unit} CNY").format(
            kwh=amount_text(tou["kwh"]),
            cny=amount_text(tou["cny"]),
            per_unit=ratio_text(tou["cny_per_unit"]),
        ),
    ]


def _value_added(report: dict[str, Any]) -> list[str]:
    if "value_added" not in report:
        return []
    va = report["value_added"]
    return [
        "",
        _("Value added {cny} CNY: {kgce} kgce and {kgco2} kgCO2 per 10,000 CNY").format(
            cny=given_text(va["cny"]),
            kgce=ratio_text(va["kgce_per_10k_cny"]),
            kgco2=ratio_text(va["kgco2_per_10k_cny"]),
        ),
    ]


def _factors_section(report: dict[str, Any]) -> list[str]:
    parts = ["", _("Coefficients and factors used")]
    for carrier, f in report["factors"].items():
        parts.append(
            f"  {term(carrier)}: {f['coefficient']}; "
            f"{_sourced(f['coefficient_source'], f['coefficient_confidence'])}"
        )
        parts.append(
            f"  {term(carrier)}: {given_text(f['kgco2_per_unit'])} kgCO2/{f['unit']} "
            f"({f['co2_basis']}); {_sourced(f['co2_source'], f['co2_confidence'])}"
        )
    return parts


def _breakdown_section(report: dict[str, Any]) -> list[str]:
    site = report["site_intensity"]
    parts = [
        "",
        _("Energy by carrier per line"),
        _table(
            [_("line"), _("carrier"), _("meters"), _("amount"), _("unit"), "kgce", "kgCO2"],
            [
                [
                    x["line"],
                    term(x["carrier"]),
                    " + ".join(x["meters"]),
                    amount_text(x["amount"]),
                    x["unit"],
                    amount_text(x["kgce"]),
                    amount_text(x["kgco2"]),
                ]
                for x in report["line_carriers"]
            ],
        ),
        "",
        _("Not allocated to a line (site boundary minus the lines' meters)"),
        _table(
            [_("carrier"), _("site"), _("lines"), _("remainder"), _("unit"), _("share"), "kgce"],
            [
                [
                    term(x["carrier"]),
                    amount_text(x["site_amount"]),
                    amount_text(x["lines_amount"]),
                    amount_text(x["amount"]),
                    x["unit"],
                    share_text(x["share"]),
                    amount_text(x["kgce"]),
                ]
                for x in report["unallocated"]
            ],
        ),
    ]
    if site["output_unit"] is None:
        parts.append(_("Site intensity: none, the lines count output in different units"))
    else:
        parts.append(
            _(
                "Site intensity: {kgce} kgce/{unit} and {kgco2} kgCO2/{unit} "
                "(output {output} {unit})"
            ).format(
                kgce=ratio_text(site["kgce_per_unit"]),
                kgco2=ratio_text(site["kgco2_per_unit"]),
                output=amount_text(site["output"]),
                unit=site["output_unit"],
            )
        )
    return parts


def _days_section(report: dict[str, Any]) -> list[str]:
    days = report["days"]
    if not days:
        return []
    lines = [x["line"] for x in days[0]["lines"]]
    units = {x["line"]: x["intensity_unit"] for x in report["lines"]}
    return [
        "",
        _("Per day (*: a gap, less than 90 % of the day measured)"),
        _table(
            [
                _("date"),
                "kgce",
                "kgCO2",
                "kWh",
                _("output"),
                _("complete"),
                *(f"{x} {units[x]}" for x in lines),
            ],
            [
                [
                    d["date"] + (" *" if d["gap"] else ""),
                    amount_text(d["kgce"]),
                    amount_text(d["kgco2"]),
                    amount_text(d["electricity_kwh"]),
                    amount_text(d["output"]),
                    share_text(d["completeness"]),
                    *(ratio_text(x["intensity"]) for x in d["lines"]),
                ]
                for d in days
            ],
        ),
    ]


COMPARISON_KINDS: Final = {
    "previous_month": N_("previous month"),
    "same_month_last_year": N_("same month last year"),
}


def _comparisons_section(report: dict[str, Any]) -> list[str]:
    rows = []
    for c in report["comparisons"]:
        if c["status"] == NO_DATA:
            rows.append([_(COMPARISON_KINDS[c["kind"]]), c["month"], _("no data"), *["-"] * 5])
            continue
        f, change = c["figures"], c["change"]
        rows.append(
            [
                _(COMPARISON_KINDS[c["kind"]]),
                c["month"],
                amount_text(f["kgce"]),
                share_text(change["kgce"]),
                amount_text(f["output"]),
                share_text(change["output"]),
                ratio_text(f["kgce_per_unit"]),
                share_text(change["kgce_per_unit"]),
            ]
        )
    return [
        "",
        _("Compared (change: this month against that month)"),
        _table(
            [
                _("against"),
                _("month"),
                "kgce",
                _("change"),
                _("output"),
                _("change"),
                _("kgce per unit"),
                _("change"),
            ],
            rows,
        ),
    ]


def _baselines_section(report: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    for b in report["energy_baselines"]:
        parts += [
            "",
            _(
                "Energy baseline (ISO 50006) of {name}: daily kgce on {variables}, "
                "{first} .. {last}, {n} days"
            ).format(
                name=b["baseline"],
                variables=", ".join(b["variables"]),
                first=b["first_month"],
                last=b["last_month"],
                n=b["observations"],
            ),
        ]
        if b["status"] != "ok":
            parts.append(_("  no model: {reason}").format(reason=b["reason"]))
            continue
        terms = " + ".join(
            f"{ratio_text(v)} x {k} ({b['variable_units'][k]})"
            for k, v in b["coefficients"].items()
            if k != "intercept"
        )
        parts.append(
            _("  kgce/d = {intercept} + {terms}").format(
                intercept=ratio_text(b["coefficients"]["intercept"]), terms=terms
            )
        )
        if b["degree_days_source"]:
            parts.append(_("  degree days: {source}").format(source=b["degree_days_source"]))
        for c in b["checks"]:
            parts.append(
                _("  {statistic} = {value} ({rule} {limit}: {verdict}; {sourced})").format(
                    statistic={"r2": "R²", "cv_rmse": "CV(RMSE)"}.get(
                        c["statistic"], f"t({c['statistic'].removeprefix('t_')})"
                    ),
                    value=ratio_text(c["value"]),
                    rule=c["rule"],
                    limit=given_text(c["limit"]),
                    verdict=_("passes") if c["passes"] else _("FAILS"),
                    sourced=_sourced(c["source"], c["confidence"]),
                )
            )
        parts.append(
            _("  the model is adequate")
            if b["adequate"]
            else _("  the model is NOT adequate: read its savings with care")
        )
        run = b["reporting"]
        parts.append(
            _(
                "  this month, {days} days: actual {actual} kgce, expected {expected} kgce, "
                "savings {savings} kgce; normalised EnPI (actual / expected) {enpi}"
            ).format(
                days=run["days"],
                actual=amount_text(run["actual_kgce"]),
                expected=amount_text(run["expected_kgce"]),
                savings=amount_text(run["savings_kgce"]),
                enpi=ratio_text(run["normalised_enpi"]),
            )
        )
        parts.append(
            _table(
                [_("date"), _("actual"), _("expected"), _("savings"), "CUSUM"],
                [
                    [
                        s["date"],
                        amount_text(s["actual_kgce"]),
                        amount_text(s["expected_kgce"]),
                        amount_text(s["savings_kgce"]),
                        amount_text(s["cusum_kgce"]),
                    ]
                    for s in run["cusum"]
                ],
            )
        )
    return parts


SCOPE_NAMES: Final = {1: N_("scope 1"), 2: N_("scope 2")}


def _scope_name(scope: int) -> str:
    return _(SCOPE_NAMES[scope])


def _emissions_section(report: dict[str, Any]) -> list[str]:
    e = report["emissions"]
    rows = [
        [_scope_name(c["scope"]), term(c["carrier"]), amount_text(c["kgco2"]), "-"]
        for c in e["by_carrier"]
    ]
    rows += [
        [
            _scope_name(1),
            _("{line} process: {name}").format(line=p["line"], name=p["name"]),
            amount_text(p["kgco2"]),
            f"{p['basis']}; {_sourced(p['source'], p['confidence'])}",
        ]
        for p in e["process"]
    ]
    parts = [
        "",
        _("CO2 by scope ({meaning})").format(meaning=_(e["meaning"])),
        _table([_("scope"), _("emitted by"), "kgCO2", _("basis")], rows),
        _(
            "Scope 1: {scope1} kgCO2 (combustion {combustion}, process {process}); "
            "scope 2: {scope2} kgCO2 (location-based)"
        ).format(
            scope1=amount_text(e["scope1_kgco2"]),
            combustion=amount_text(e["scope1_combustion_kgco2"]),
            process=amount_text(e["scope1_process_kgco2"]),
            scope2=amount_text(e["scope2_location_kgco2"]),
        ),
        _("Energy CO2 {energy} kgCO2 + process CO2 {process} kgCO2 = {total} kgCO2").format(
            energy=amount_text(e["energy_kgco2"]),
            process=amount_text(e["process_kgco2"]),
            total=amount_text(e["total_kgco2"]),
        ),
    ]
    parts += [
        _(
            "  {line}: energy CO2 {energy} + process CO2 {process} = {total} kgCO2, "
            "{per_unit} kgCO2/{unit}"
        ).format(
            line=x["line"],
            energy=amount_text(x["kgco2"]),
            process=amount_text(x["process_kgco2"]),
            total=amount_text(x["total_kgco2"]),
            per_unit=ratio_text(x["total_kgco2_per_unit"]),
            unit=x["output_unit"],
        )
        for x in report["lines"]
        if x["process_emissions"]
    ]
    if e["total_market_kgco2"] is not None:
        parts.append(
            _("Market-based: scope 2 {scope2} kgCO2; with scope 1, {total} kgCO2").format(
                scope2=amount_text(e["scope2_market_kgco2"]),
                total=amount_text(e["total_market_kgco2"]),
            )
        )
    return parts


def _grade_text(i: dict[str, Any]) -> str:
    if i["kind"] != "energy_limit":
        return "-"
    if i["value"] is None:
        return _("no grade (insufficient output)")
    if i["grade"] is None:
        return _("above grade 3: fails the limit")
    return _("grade {n}").format(n=i["grade"])


def _levels_text(i: dict[str, Any]) -> str:
    if i["grades"]:
        return " / ".join(
            _("grade {n} {level}").format(n=n, level=given_text(g))
            for n, g in enumerate(i["grades"], start=1)
            if g is not None
        )
    return _("benchmark {benchmark}, baseline {baseline}").format(
        benchmark=given_text(i["benchmark"]), baseline=given_text(i["baseline"])
    )


def _indicators_section(report: dict[str, Any]) -> list[str]:
    rows = [
        [
            x["line"],
            i["name"],
            ratio_text(i["value"]),
            i["unit"],
            term(i["status"]),
            _grade_text(i),
            _levels_text(i),
            _sourced(i["source"], i["confidence"]),
        ]
        for x in report["lines"]
        for i in x["indicators"]
    ]
    if not rows:
        return []
    parts = [
        "",
        _("Indicators and grades (energy-limit standards: grade 1 best, grade 3 the limit)"),
        _table(
            [
                _("line"),
                _("indicator"),
                _("value"),
                _("per"),
                _("status"),
                _("grade"),
                _("levels"),
                _("reference"),
            ],
            rows,
        ),
    ]
    for x in report["lines"]:
        gf = x.get("green_factory")
        if gf is not None and gf["score"] is None:
            parts.append(
                _("  {line} {standard} score: {rule}").format(
                    line=x["line"], standard=gf["standard"], rule=_(gf["score_rule"])
                )
            )
    return parts


TABLE_SECTIONS: Final[list[Section]] = [
    _head,
    _carriers,
    _meters,
    _lines,
    _emissions_section,
    _indicators_section,
    _quality,
    _demand_section,
    _counters_section,
    _tou_section,
    _value_added,
    _breakdown_section,
    _comparisons_section,
    _baselines_section,
    _days_section,
    _factors_section,
]
"""The table, in order; a new part of the report is one more function here."""


def render_table(report: dict[str, Any]) -> str:
    return "\n".join(line for section in TABLE_SECTIONS for line in section(report))


"""section, name, quantity, value (as printed), unit, source, confidence."""
