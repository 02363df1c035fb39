"""`energy-collector report`: a site's month from the accounting database, traceable.

Energy by meter and carrier, kgce and CO2 (location-based, and market-based when
configured), output and intensity per line judged against its benchmark, progress
against the reduction targets, maximum demand per electricity meter (15-minute average,
1-minute sliding), the TOU split and its cost per unit of output when a calendar is
configured. Every figure names the coefficient or factor behind it and its source.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from collector.accounting.db import AccountingDB, from_ms, ms
from collector.accounting.engine import (
    line_totals,
    meter_factors,
    meter_totals,
    standing,
)
from collector.ledger import data
from collector.ledger.benchmarks import position
from collector.ledger.carbon import market_based
from collector.ledger.conversion import coefficient
from collector.ledger.demand import max_demand
from collector.ledger.intensity import Window
from collector.ledger.series import Amount, Quality
from collector.ledger.targets import Target, progress, project
from collector.ledger.tou import split
from collector.plant import (
    AccountingConfig,
    Carrier,
    SiteConfig,
    _coal_key,
    co2_route,
    min_output,
    resolve_benchmark,
)


class ReportError(ValueError):
    """The report cannot be made (unknown site, bad month)."""


def month_bounds(month: str, site: SiteConfig) -> tuple[datetime, datetime]:
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=site.tz)
    except ValueError as exc:
        raise ReportError(f"month {month!r}: give YYYY-MM") from exc
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=site.tz)
    return start, end


def _r(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def build(config: AccountingConfig, db: AccountingDB, site_id: str, month: str) -> dict[str, Any]:
    site = config.site(site_id)
    if site is None:
        raise ReportError(
            f"site {site_id!r} is not in the plant model: {[s.id for s in config.sites]}"
        )
    start, end = month_bounds(month, site)
    a, b = ms(start), ms(end)
    table = data.coal_table()
    settings = config.conversion_settings
    factors: dict[str, Any] = {}
    meters: list[dict[str, Any]] = []
    by_carrier: dict[str, dict[str, float]] = {}
    for m in site.meters:
        amount, kgce, kgco2, quality = meter_totals(db, config, site.id, m, a, b)
        meters.append(
            {
                "meter": m.id,
                "carrier": m.carrier.value,
                "role": m.role.value,
                "line": m.line,
                "virtual": m.virtual,
                "formula": " + ".join(m.plus) + "".join(f" - {x}" for x in m.minus) or None,
                "amount": _r(amount),
                "unit": m.unit,
                "kgce": _r(kgce),
                "kgco2": _r(kgco2),
                "quality": None if quality is None else Quality(quality).name.lower(),
                "estimated": m.estimated,
            }
        )
        if m.role.value == "boundary":
            c = by_carrier.setdefault(m.carrier.value, {"amount": 0.0, "kgce": 0.0, "kgco2": 0.0})
            c["amount"] += amount
            c["kgce"] += kgce
            c["kgco2"] += kgco2
        if m.carrier.value not in factors:
            coef = coefficient(_coal_key(m.carrier), table, settings)
            kgce_per, co2_per = meter_factors(config, site, m)
            route, _, name = co2_route(site, m.carrier)
            factors[m.carrier.value] = {
                "kgce_per_unit": kgce_per,
                "unit": m.unit,
                "coefficient": f"{coef.value:g} kgce/{coef.per} ({coef.how})",
                "coefficient_source": coef.source,
                "coefficient_confidence": coef.confidence.value,
                "kgco2_per_unit": co2_per,
                "co2_basis": name if route != "fuel" else f"fuel factor {name}",
                "co2_source": _co2_source(site, m.carrier, route, name),
            }
    carriers = [
        {
            "carrier": k,
            "amount": _r(v["amount"]),
            "unit": _unit(k),
            "kgce": _r(v["kgce"]),
            "kgco2": _r(v["kgco2"]),
        }
        for k, v in sorted(by_carrier.items())
    ]
    site_kgce = sum(v["kgce"] for v in by_carrier.values())
    site_co2 = sum(v["kgco2"] for v in by_carrier.values())
    electricity_kwh = by_carrier.get("electricity", {}).get("amount", 0.0)
    co2: dict[str, Any] = {
        "location_based_kgco2": _r(site_co2),
        "grid_factor": site.grid_factor.resolve().label,
    }
    if site.hourly_grid_factor is not None:
        co2["hourly_grid_factor"] = (
            f"{site.hourly_grid_factor.source} ({site.hourly_grid_factor.file}); "
            "the static factor for hours it does not cover"
        )
    if site.market_based is not None and electricity_kwh > 0:
        residual = site.market_based.residual.resolve()
        mb = market_based(electricity_kwh, residual, green_share=site.market_based.green_share)
        co2["market_based_kgco2"] = _r(
            site_co2 - by_carrier["electricity"]["kgco2"] + mb.emission.kg_co2
        )
        co2["market_based_basis"] = mb.emission.basis
        co2["market_based_source"] = mb.emission.source
    lines = [_line(db, config, site, x.id, start, end) for x in site.lines]
    output_total = sum(x["output"] or 0.0 for x in lines)
    report: dict[str, Any] = {
        "site": site.id,
        "month": month,
        "timezone": site.timezone,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "conversion_basis": config.conversion.basis.value,
        "totals": {
            "kgce": _r(site_kgce),
            "kgco2": _r(site_co2),
            "electricity_kwh": _r(electricity_kwh),
        },
        "carriers": carriers,
        "meters": meters,
        "co2": co2,
        "lines": lines,
        "factors": factors,
        "demand": _demand(db, site, a, b),
        "counters": _counters(db, site, a, b),
    }
    va = db.value_added(site.id, month) or site.value_added.get(month)
    if va:
        report["value_added"] = {
            "cny": va,
            "kgce_per_10k_cny": _r(site_kgce / (va / 10_000)),
            "kgco2_per_10k_cny": _r(site_co2 / (va / 10_000)),
        }
    if site.tou is not None:
        report["tou"] = _tou(
            db, site, a, b, output_total if len({x.output_unit for x in site.lines}) == 1 else 0.0
        )
    return report


def _unit(carrier: str) -> str:
    from collector.plant import CARRIERS  # noqa: PLC0415

    return CARRIERS[Carrier(carrier)][0]


def _co2_source(site: SiteConfig, carrier: Carrier, route: str, name: str) -> str:
    if route == "grid":
        return site.grid_factor.resolve().source
    if route == "fuel":
        return data.fuel_factors().fuels[name].source
    return name


def _line(
    db: AccountingDB,
    config: AccountingConfig,
    site: SiteConfig,
    line_id: str,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    line = site.line(line_id)
    judged = resolve_benchmark(line)
    kgce, kgco2, kwh, output, quality = line_totals(db, config, site, line_id, ms(start), ms(end))
    enough = output >= min_output(line)[Window.MONTH_TO_DATE]
    num = {"kgce": kgce, "kgCO2": kgco2, "kWh": kwh}[judged.numerator]
    value = num / output if enough else None
    out: dict[str, Any] = {
        "line": line.id,
        "product": line.product,
        "output": _r(output),
        "output_unit": line.output_unit,
        "output_source": "MES"
        if getattr(line.output, "mes", False)
        else f"meter {getattr(line.output, 'meter', '')}",
        "kgce": _r(kgce),
        "kgco2": _r(kgco2),
        "electricity_kwh": _r(kwh),
        "kgce_per_unit": _r(kgce / output) if enough else None,
        "kgco2_per_unit": _r(kgco2 / output) if enough else None,
        "intensity": _r(value),
        "intensity_unit": judged.unit,
        "status": standing(value, judged),
        "benchmark": {
            "name": judged.name,
            "benchmark": judged.benchmark,
            "baseline": judged.baseline,
            "grades": list(judged.grades) or None,
            "source": judged.source,
        },
        "quality": None if quality is None else Quality(quality).name.lower(),
    }
    targets = site.targets
    goals = []
    for kind, bases, reduction, current in (
        (
            "energy",
            targets.base_energy_intensity,
            targets.energy_reduction,
            kgce / output if enough else None,
        ),
        (
            "co2",
            targets.base_co2_intensity,
            targets.co2_reduction,
            kgco2 / output if enough else None,
        ),
    ):
        base = bases.get(line.id)
        if base is None or current is None:
            continue
        t = Target(targets.base_year, base, targets.target_year, reduction, "configured")
        p = progress(t, start.year, current)
        # At the rate from the base year to this month's intensity, where the target year lands.
        ahead = project(t, {start.year: current}) if start.year > t.base_year else None
        goals.append(
            {
                "projected_target_year_intensity": _r(ahead.projected) if ahead else None,
                "on_track": ahead.on_track if ahead else None,
                "kind": kind,
                "base_year": t.base_year,
                "base_intensity": base,
                "target_year": t.target_year,
                "reduction_required": reduction,
                "reduction_achieved": _r(p.achieved),
                "target_intensity": _r(p.target_intensity),
                "on_path": p.on_path,
            }
        )
    out["targets"] = goals
    indicator = line.green_factory
    if indicator is not None:
        out["green_factory"] = {
            "standard": "GB/T 36132-2025",
            "baseline": indicator.baseline,
            "leading": indicator.leading,
            "position": None
            if value is None
            else _r(position(value, indicator.baseline, indicator.leading)),
            "source": indicator.source,
        }
    return out


def _counters(db: AccountingDB, site: SiteConfig, a: int, b: int) -> list[dict[str, Any]]:
    """Every reading not used, amount excluded or estimated and swap bridged, and why."""
    return [
        {
            "series": r.series,
            "issue": r.finding.issue.value,
            "from": r.finding.start.astimezone(site.tz).isoformat(),
            "to": r.finding.end.astimezone(site.tz).isoformat(),
            "counted": r.counted,
            "excluded": r.finding.excluded,
            "estimated": r.finding.estimate,
            "reason": r.finding.detail,
        }
        for r in db.findings(site.id, a, b)
    ]


def _demand(db: AccountingDB, site: SiteConfig, a: int, b: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for m in site.meters:
        if m.carrier is not Carrier.ELECTRICITY or m.virtual:
            continue
        minutes = {from_ms(r.minute): r.amount for r in db.series_minutes(site.id, m.id, a, b)}
        found = max_demand(minutes, site.tz)
        if not found:
            rows.append({"meter": m.id, "kw": None, "note": "no complete 15-minute window"})
            continue
        d = max(found, key=lambda x: x.kw)
        rows.append(
            {
                "meter": m.id,
                "kw": _r(d.kw),
                "window_start": d.window_start.astimezone(site.tz).isoformat(),
                "windows": d.windows,
                "incomplete_windows": d.incomplete,
            }
        )
    return rows


def _tou(db: AccountingDB, site: SiteConfig, a: int, b: int, output: float) -> dict[str, Any]:
    assert site.tou is not None
    amounts: list[Amount] = []
    for m in site.boundary_meters():
        if m.carrier is Carrier.ELECTRICITY and not m.virtual:
            amounts += [
                Amount(from_ms(r.minute), from_ms(r.minute) + timedelta(minutes=1), r.amount)
                for r in db.series_minutes(site.id, m.id, a, b)
            ]
    cost = split(amounts, site.tou.calendar(), site.tz)
    return {
        "source": site.tou.source,
        "periods": [
            {
                "season": x.season,
                "period": x.period.value,
                "kwh": _r(x.kwh),
                "price": x.price,
                "cny": _r(x.cny),
            }
            for x in cost.lines
        ],
        "kwh": _r(cost.kwh),
        "cny": _r(cost.cny),
        "cny_per_unit": _r(cost.per_unit(output, 1.0)) if output else None,
    }


def daily(
    config: AccountingConfig, db: AccountingDB, site_id: str, month: str
) -> dict[str, list[tuple[datetime, float | None]]]:
    """Per line, the intensity of each local day of the month (None: insufficient output)."""
    site = config.site(site_id)
    assert site is not None
    start, end = month_bounds(month, site)
    out: dict[str, list[tuple[datetime, float | None]]] = {}
    for line in site.lines:
        judged = resolve_benchmark(line)
        day = start
        series: list[tuple[datetime, float | None]] = []
        while day < end:
            nxt = (day + timedelta(days=1, hours=2)).replace(hour=0)
            kgce, kgco2, kwh, output, _ = line_totals(db, config, site, line.id, ms(day), ms(nxt))
            num = {"kgce": kgce, "kgCO2": kgco2, "kWh": kwh}[judged.numerator]
            series.append((day, num / output if output >= min_output(line)[Window.TODAY] else None))
            day = nxt
        out[line.id] = series
    return out


# --- rendering ---------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def render_table(report: dict[str, Any]) -> str:
    totals, co2 = report["totals"], report["co2"]
    parts = [
        f"Energy and carbon report: site {report['site']}, {report['month']} "
        f"({report['from']} .. {report['to']}, {report['timezone']})",
        f"Coal-equivalent basis: {report['conversion_basis']}",
        "",
        "Energy by carrier (boundary meters)",
        _table(
            ["carrier", "amount", "unit", "kgce", "kgCO2"],
            [
                [c["carrier"], c["amount"], c["unit"], c["kgce"], c["kgco2"]]
                for c in report["carriers"]
            ],
        ),
        f"Site total: {_fmt(totals['kgce'])} kgce, {_fmt(totals['kgco2'])} kgCO2 "
        f"(location-based, {co2['grid_factor']})",
    ]
    if "market_based_kgco2" in report["co2"]:
        parts.append(
            f"Market-based: {_fmt(co2['market_based_kgco2'])} kgCO2 ({co2['market_based_basis']})"
        )
    parts += [
        "",
        "Meters",
        _table(
            ["meter", "carrier", "role", "line", "amount", "unit", "kgce", "kgCO2", "quality"],
            [
                [
                    m["meter"]
                    + (f" = {m['formula']}" if m["formula"] else "")
                    + (" (estimated)" if m["estimated"] else ""),
                    m["carrier"],
                    m["role"],
                    m["line"],
                    m["amount"],
                    m["unit"],
                    m["kgce"],
                    m["kgco2"],
                    m["quality"],
                ]
                for m in report["meters"]
            ],
        ),
        "",
        "Lines",
        _table(
            [
                "line",
                "product",
                "output",
                "unit",
                "kgce",
                "kgCO2",
                "intensity",
                "per",
                "status",
                "benchmark",
                "baseline",
            ],
            [
                [
                    x["line"],
                    x["product"],
                    x["output"],
                    x["output_unit"],
                    x["kgce"],
                    x["kgco2"],
                    x["intensity"],
                    x["intensity_unit"],
                    x["status"],
                    x["benchmark"]["benchmark"],
                    x["benchmark"]["baseline"],
                ]
                for x in report["lines"]
            ],
        ),
    ]
    for x in report["lines"]:
        parts.append(
            f"  {x['line']}: judged against {x['benchmark']['name']} "
            f"(source: {x['benchmark']['source']}); output from {x['output_source']}"
        )
        for t in x["targets"]:
            parts.append(
                f"  {x['line']} {t['kind']} target: -{t['reduction_required']:.1%} by "
                f"{t['target_year']} vs {t['base_year']} ({t['base_intensity']}); "
                f"achieved {t['reduction_achieved']:.1%}, "
                f"{'on' if t['on_path'] else 'OFF'} path"
                + (
                    f"; at this rate {t['projected_target_year_intensity']} in "
                    f"{t['target_year']} ({'on' if t['on_track'] else 'OFF'} track)"
                    if t["projected_target_year_intensity"] is not None
                    else ""
                )
            )
        gf = x.get("green_factory")
        if gf is not None and gf["position"] is not None:
            parts.append(
                f"  {x['line']} {gf['standard']}: {gf['position']:.0%} of the way from the "
                f"baseline value {gf['baseline']} to the leading value {gf['leading']} "
                f"({gf['source']})"
            )
    parts += [
        "",
        "Maximum demand (15-min average, 1-min sliding)",
        _table(
            ["meter", "kW", "window start", "complete windows"],
            [
                [d["meter"], d["kw"], d.get("window_start"), d.get("windows")]
                for d in report["demand"]
            ],
        ),
    ]
    if report["counters"]:
        parts += [
            "",
            "Counter readings not used, amounts excluded or estimated (estimated: in the totals)",
            _table(
                ["series", "issue", "from", "counted", "excluded", "estimated", "reason"],
                [
                    [c[k] for k in ("series", "issue", "from", "counted", "excluded")]
                    + [c["estimated"], c["reason"]]
                    for c in report["counters"]
                ],
            ),
        ]
    if "tou" in report:
        tou = report["tou"]
        parts += [
            "",
            f"Time of use (boundary electricity; prices: {tou['source']})",
            _table(
                ["season", "period", "kWh", "CNY/kWh", "CNY"],
                [
                    [p["season"], p["period"], p["kwh"], p["price"], p["cny"]]
                    for p in tou["periods"]
                ],
            ),
            f"Total {_fmt(tou['cny'])} CNY; per unit of output {_fmt(tou['cny_per_unit'])} CNY",
        ]
    if "value_added" in report:
        va = report["value_added"]
        parts.append(
            f"\nValue added {_fmt(va['cny'])} CNY: {_fmt(va['kgce_per_10k_cny'])} kgce and "
            f"{_fmt(va['kgco2_per_10k_cny'])} kgCO2 per 10,000 CNY"
        )
    parts += ["", "Coefficients and factors used"]
    for carrier, f in report["factors"].items():
        parts.append(
            f"  {carrier}: {f['coefficient']}; source {f['coefficient_source']} "
            f"[{f['coefficient_confidence']}]"
        )
        parts.append(
            f"  {carrier}: {f['kgco2_per_unit']:g} kgCO2/{f['unit']} ({f['co2_basis']}); "
            f"source {f['co2_source']}"
        )
    return "\n".join(parts)


def render_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "name", "quantity", "value", "unit", "source"])
    for c in report["carriers"]:
        writer.writerow(["carrier", c["carrier"], "amount", c["amount"], c["unit"], ""])
        writer.writerow(
            [
                "carrier",
                c["carrier"],
                "kgce",
                c["kgce"],
                "kgce",
                report["factors"][c["carrier"]]["coefficient"],
            ]
        )
        writer.writerow(
            [
                "carrier",
                c["carrier"],
                "kgco2",
                c["kgco2"],
                "kgCO2",
                report["factors"][c["carrier"]]["co2_basis"],
            ]
        )
    for m in report["meters"]:
        for q, unit in (("amount", m["unit"]), ("kgce", "kgce"), ("kgco2", "kgCO2")):
            writer.writerow(["meter", m["meter"], q, m[q], unit, m["formula"] or ""])
    for x in report["lines"]:
        writer.writerow(
            ["line", x["line"], "output", x["output"], x["output_unit"], x["output_source"]]
        )
        writer.writerow(
            [
                "line",
                x["line"],
                "intensity",
                x["intensity"],
                x["intensity_unit"],
                x["benchmark"]["name"],
            ]
        )
        writer.writerow(["line", x["line"], "status", x["status"], "", x["benchmark"]["source"]])
    for c in report["counters"]:
        for q in ("counted", "excluded", "estimated"):
            writer.writerow(["counter", c["series"], f"{c['issue']} {q}", c[q], "", c["reason"]])
    for d in report["demand"]:
        writer.writerow(
            ["demand", d["meter"], "max_kw", d["kw"], "kW", "15-min average, 1-min sliding"]
        )
    return buffer.getvalue()


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False)
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)


def plot(config: AccountingConfig, db: AccountingDB, site_id: str, month: str, path: Path) -> None:
    """Intensity per day of each line against its benchmark and baseline (PNG, Agg)."""
    import matplotlib  # noqa: PLC0415 - only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    site = config.site(site_id)
    assert site is not None
    series = daily(config, db, site_id, month)
    fig, axes = plt.subplots(
        len(series) or 1, 1, figsize=(10, 3 * max(1, len(series))), squeeze=False
    )
    for ax, (line_id, points) in zip(axes[:, 0], series.items(), strict=False):
        judged = resolve_benchmark(site.line(line_id))
        days = [d.day for d, _ in points]
        values = [math.nan if v is None else v for _, v in points]
        ax.plot(days, values, marker="o", label=f"{line_id} ({judged.unit})")
        ax.axhline(
            judged.benchmark, color="green", linestyle="--", label=f"benchmark {judged.benchmark:g}"
        )
        ax.axhline(
            judged.baseline, color="red", linestyle="--", label=f"baseline {judged.baseline:g}"
        )
        ax.set_title(f"{site_id} {line_id}: {judged.name}, {month}")
        ax.set_xlabel("day of month")
        ax.set_ylabel(judged.unit)
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
