"""`energy-collector report`: a site's month from the accounting database, traceable.

Energy by meter and carrier, kgce and CO2 (location-based, and market-based when
configured), output and intensity per line judged against its benchmark, progress
against the reduction targets, maximum demand per electricity meter (15-minute average,
1-minute sliding), the TOU split and its cost per unit of output when a calendar is
configured, and how every meter's, line's and the site's figure is known (data
quality). Every coefficient, factor and benchmark is printed with its source and
confidence.

Rounding (ROUNDING_RULE): `build` returns unrounded figures, and every total in it is
the exact sum (math.fsum) of the parts listed with it; this is what the JSON carries.
The table and the CSV round each figure once, for display only (`amount_text`,
`ratio_text`): amounts to a fixed number of decimals, never to significant digits, so a
printed total differs from the sum of its printed parts by at most half a unit of the
last decimal per figure.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from collector.accounting.db import AccountingDB, from_ms, ms
from collector.accounting.engine import line_totals, meter_factors, output_series, standing
from collector.ledger import data
from collector.ledger.benchmarks import position
from collector.ledger.carbon import market_based
from collector.ledger.conversion import coefficient
from collector.ledger.demand import max_demand
from collector.ledger.factors import Confidence
from collector.ledger.intensity import Window
from collector.ledger.series import Amount, Quality, reaches
from collector.ledger.targets import Target, progress, project, projectable
from collector.ledger.tou import split
from collector.plant import (
    AccountingConfig,
    Carrier,
    MeterConfig,
    OutputFromMeter,
    SiteConfig,
    _coal_key,
    co2_route,
    min_output,
    resolve_benchmark,
)
from greengauge.common.i18n import N_, _, decimal_text, ljust, month_text, rjust, width

DECIMALS: Final = 3
"""Decimals of every additive figure printed (kWh, m3, t, kgce, kgCO2, output, CNY, kW)."""
SIGNIFICANT: Final = 6
"""Significant digits of every printed ratio (intensity, share, per-unit cost)."""
ROUNDING_TEXT: Final = N_(
    "JSON carries unrounded figures, and every total in it is the exact sum of the parts "
    "listed with it. The table and the CSV round each figure once, for display: amounts "
    "to {decimals} decimals, ratios to {significant} significant digits; a total is "
    "rounded from the unrounded sum, so it differs from the sum of its printed parts by at "
    "most half a unit of the last decimal per figure."
)
ROUNDING_RULE: Final = ROUNDING_TEXT.format(decimals=DECIMALS, significant=SIGNIFICANT)
QUALITY_KEY: Final = {
    Quality.MEASURED: "measured",
    Quality.APPORTIONED: "spread_over_gap",
    Quality.LOWER_BOUND: "lower_bound",
    Quality.ESTIMATED: "estimated",
}
"""How each part of a figure is known, by what was done (not the engine's class name)."""
QUALITY_MEANING: Final = {
    Quality.MEASURED: N_("the difference of two counter readings around the minute"),
    Quality.APPORTIONED: N_(
        "a counter difference across a gap in the readings longer than a minute, shared "
        "out over the gap pro rata by time (interpolated)"
    ),
    Quality.LOWER_BOUND: N_("a counter reset or meter swap left part of the interval unmeasured"),
    Quality.ESTIMATED: N_("integrated from power readings (the meter has no energy counter)"),
}


TERMS: Final = frozenset(
    {
        # carriers
        N_("electricity"),
        N_("natural_gas"),
        N_("steam"),
        N_("hot_water"),
        N_("diesel"),
        N_("coal"),
        N_("coke"),
        N_("fuel_oil"),
        # meter roles
        N_("boundary"),
        N_("submeter"),
        # a line's standing against its benchmark, or why it has none
        N_("leading"),
        N_("compliant"),
        N_("above_baseline"),
        N_("insufficient_output"),
        # coal-equivalent bases
        N_("equivalent"),
        N_("equal"),
        # time-of-use periods
        N_("critical_peak"),
        N_("peak"),
        N_("flat"),
        N_("valley"),
        N_("deep_valley"),
        # how a figure is known (QUALITY_KEY)
        N_("measured"),
        N_("spread_over_gap"),
        N_("lower_bound"),
        N_("estimated"),
    }
)
"""Values in the report that are words (not names): printed in the reader's language."""


def _term(value: str) -> str:
    """A value of the report in the reader's language if it is one of TERMS; a name
    (meter, line, season) as it is."""
    return _(value) if value in TERMS else value


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


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def meter_parts(meter: MeterConfig) -> list[tuple[str, float]]:
    """The series a meter's figure is made of, with their signs."""
    if not meter.virtual:
        return [(meter.id, 1.0)]
    return [(x, 1.0) for x in meter.plus] + [(x, -1.0) for x in meter.minus]


class _Month:
    """What the report reads: one site's accounting database over one month."""

    def __init__(
        self,
        config: AccountingConfig,
        db: AccountingDB,
        site: SiteConfig,
        month: str,
        now: datetime,
    ) -> None:
        self.config, self.db, self.site = config, db, site
        self.start, self.end = month_bounds(month, site)
        self.a, self.b = ms(self.start), ms(self.end)
        # Minutes a complete record would hold: the month, or up to now for this month.
        until = min(self.b, ms(now) // 60_000 * 60_000)
        self.expected = max(0, (until - self.a) // 60_000)

    def parts(self, meter: MeterConfig) -> list[tuple[str, float]]:
        return meter_parts(meter)

    def quality(
        self, parts: Sequence[tuple[str, float]], column: str, also: Sequence[str] = ()
    ) -> dict[str, Any]:
        return figure_quality(
            self.db, self.site.id, parts, column, (self.a, self.b), self.expected, also
        )


def figure_quality(
    db: AccountingDB,
    site: str,
    parts: Sequence[tuple[str, float]],
    column: str,
    span: tuple[int, int],
    expected: int,
    also: Sequence[str] = (),
) -> dict[str, Any]:
    """How a figure made of `parts` (series, sign) over `span` (epoch ms) is known: its
    `column` (amount or kgce) per quality, summing to the figure; completeness (of
    `expected` minutes) over `also` too (a line's output counter). The report's and the
    dashboard's data quality both come from here."""
    a, b = span
    index = {"amount": 3, "kgce": 4, "kgco2": 5}[column]
    values: dict[Quality, list[float]] = {q: [] for q in Quality}
    series = sorted({s for s, _ in parts})
    for row in db.by_quality(site, series, a, b):
        for name, sign in parts:
            if name == row[0]:
                values[Quality(row[1])].append(sign * float(row[index]))
    covered, measured = db.covered_minutes(site, [*series, *also], a, b)
    by = {q: math.fsum(v) for q, v in values.items()}
    figure = math.fsum(by.values())
    return {
        "expected_minutes": expected,
        "minutes_with_data": covered,
        "measured_minutes": measured,
        "completeness": _ratio(measured, expected),
        "estimated_share": _ratio(by[Quality.APPORTIONED] + by[Quality.ESTIMATED], figure),
        "by_quality": {QUALITY_KEY[q]: by[q] for q in Quality},
        "unit_of": column,
    }


def build(
    config: AccountingConfig,
    db: AccountingDB,
    site_id: str,
    month: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The month's figures, unrounded; `now` bounds the minutes expected of this month."""
    site = config.site(site_id)
    if site is None:
        raise ReportError(
            f"site {site_id!r} is not in the plant model: {[s.id for s in config.sites]}"
        )
    m = _Month(config, db, site, month, now or datetime.now(UTC))
    meters = [_meter(m, x) for x in site.meters]
    by_id = {x["meter"]: x for x in meters}
    boundary = [by_id[x.id] for x in site.boundary_meters()]
    carriers: list[dict[str, Any]] = [
        {
            "carrier": c.value,
            "meters": [x["meter"] for x in boundary if x["carrier"] == c.value],
            "amount": math.fsum(x["amount"] for x in boundary if x["carrier"] == c.value),
            "unit": _unit(c.value),
            "kgce": math.fsum(x["kgce"] for x in boundary if x["carrier"] == c.value),
            "kgco2": math.fsum(x["kgco2"] for x in boundary if x["carrier"] == c.value),
        }
        for c in sorted({Carrier(x["carrier"]) for x in boundary}, key=lambda c: c.value)
    ]
    site_kgce = math.fsum(c["kgce"] for c in carriers)
    site_co2 = math.fsum(c["kgco2"] for c in carriers)
    electricity = next((c for c in carriers if c["carrier"] == "electricity"), None)
    electricity_kwh = electricity["amount"] if electricity else 0.0
    grid = site.grid_factor.resolve()
    co2: dict[str, Any] = {
        "location_based_kgco2": site_co2,
        "grid_factor": grid.label,
        "grid_factor_source": grid.source,
        "grid_factor_confidence": grid.confidence.value,
    }
    if site.hourly_grid_factor is not None:
        co2["hourly_grid_factor"] = (
            f"{site.hourly_grid_factor.source} ({site.hourly_grid_factor.file}); "
            "the static factor for hours it does not cover"
        )
        co2["hourly_grid_factor_confidence"] = Confidence.CONFIGURED.value
    if site.market_based is not None and electricity is not None and electricity_kwh > 0:
        residual = site.market_based.residual.resolve()
        mb = market_based(electricity_kwh, residual, green_share=site.market_based.green_share)
        co2["market_based_kgco2"] = site_co2 - electricity["kgco2"] + mb.emission.kg_co2
        co2["market_based_basis"] = mb.emission.basis
        co2["market_based_source"] = mb.emission.source
        co2["market_based_confidence"] = residual.confidence.value
    lines = [_line(m, x.id, by_id) for x in site.lines]
    site_parts = [p for x in site.boundary_meters() for p in m.parts(x)]
    report: dict[str, Any] = {
        "site": site.id,
        "month": month,
        "timezone": site.timezone,
        "from": m.start.isoformat(),
        "to": m.end.isoformat(),
        "conversion_basis": config.conversion.basis.value,
        "rounding": ROUNDING_RULE,
        "totals": {
            "kgce": site_kgce,
            "kgco2": site_co2,
            "electricity_kwh": electricity_kwh,
            "data_quality": m.quality(site_parts, "kgce"),
        },
        "carriers": carriers,
        "meters": meters,
        "co2": co2,
        "lines": lines,
        "factors": _factors(config, site),
        "demand": _demand(db, site, m.a, m.b),
        "quality_meaning": {QUALITY_KEY[q]: QUALITY_MEANING[q] for q in Quality},
        "counters": _counters(db, site, m.a, m.b),
    }
    va = db.value_added(site.id, month) or site.value_added.get(month)
    if va:
        report["value_added"] = {
            "cny": va,
            "kgce_per_10k_cny": site_kgce / (va / 10_000),
            "kgco2_per_10k_cny": site_co2 / (va / 10_000),
        }
    if site.tou is not None:
        output = math.fsum(x["output"] for x in lines)
        same_unit = len({x.output_unit for x in site.lines}) == 1
        report["tou"] = _tou(db, site, m.a, m.b, output if same_unit else 0.0)
    return report


def _meter(m: _Month, meter: MeterConfig) -> dict[str, Any]:
    # A virtual meter is the signed sum of its parts' rows, as the engine computes it.
    amount: list[float] = []
    kgce: list[float] = []
    kgco2: list[float] = []
    for series, sign in m.parts(meter):
        a, ce, co2, _ = m.db.totals(m.site.id, [series], m.a, m.b)
        amount.append(sign * a)
        kgce.append(sign * ce)
        kgco2.append(sign * co2)
    return {
        "meter": meter.id,
        "carrier": meter.carrier.value,
        "role": meter.role.value,
        "line": meter.line,
        "virtual": meter.virtual,
        "formula": " + ".join(meter.plus) + "".join(f" - {x}" for x in meter.minus) or None,
        "amount": math.fsum(amount),
        "unit": meter.unit,
        "kgce": math.fsum(kgce),
        "kgco2": math.fsum(kgco2),
        "estimated": meter.estimated,
        "data_quality": m.quality(m.parts(meter), "amount"),
    }


def _unit(carrier: str) -> str:
    from collector.plant import CARRIERS  # noqa: PLC0415

    return CARRIERS[Carrier(carrier)][0]


def _factors(config: AccountingConfig, site: SiteConfig) -> dict[str, Any]:
    """Per carrier of the site's meters: the coal coefficient and the CO2 factor, each with
    its source and confidence."""
    table = data.coal_table()
    out: dict[str, Any] = {}
    for meter in site.meters:
        if meter.carrier.value in out:
            continue
        coef = coefficient(_coal_key(meter.carrier), table, config.conversion_settings)
        kgce_per, co2_per = meter_factors(config, site, meter)
        route, _, name = co2_route(site, meter.carrier)
        if route == "grid":
            grid = site.grid_factor.resolve()
            source, confidence = grid.source, grid.confidence.value
        elif route == "fuel":
            fuel = data.fuel_factors().fuels[name]
            source, confidence = fuel.source, fuel.confidence.value
        else:
            source, confidence = name, Confidence.CONFIGURED.value
        out[meter.carrier.value] = {
            "kgce_per_unit": kgce_per,
            "unit": meter.unit,
            "coefficient": f"{coef.value:g} kgce/{coef.per} ({coef.how})",
            "coefficient_source": coef.source,
            "coefficient_confidence": coef.confidence.value,
            "kgco2_per_unit": co2_per,
            "co2_basis": name if route != "fuel" else f"fuel factor {name}",
            "co2_source": source,
            "co2_confidence": confidence,
        }
    return out


def _line(m: _Month, line_id: str, meters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    site = m.site
    line = site.line(line_id)
    judged = resolve_benchmark(line)
    own = [meters[x.id] for x in site.line_meters(line_id)]
    kgce = math.fsum(x["kgce"] for x in own)
    kgco2 = math.fsum(x["kgco2"] for x in own)
    kwh = math.fsum(x["amount"] for x in own if x["carrier"] == "electricity")
    output = m.db.totals(site.id, [output_series(line_id)], m.a, m.b)[0]
    enough = reaches(output, min_output(line)[Window.MONTH_TO_DATE])
    num = {"kgce": kgce, "kgCO2": kgco2, "kWh": kwh}[judged.numerator]
    value = num / output if enough else None
    parts = [p for x in site.line_meters(line_id) for p in m.parts(x)]
    counted = [output_series(line_id)] if isinstance(line.output, OutputFromMeter) else []
    out: dict[str, Any] = {
        "line": line.id,
        "product": line.product,
        "meters": [x["meter"] for x in own],
        "output": output,
        "output_unit": line.output_unit,
        "output_source": "MES"
        if not isinstance(line.output, OutputFromMeter)
        else f"meter {line.output.meter}",
        "kgce": kgce,
        "kgco2": kgco2,
        "electricity_kwh": kwh,
        "kgce_per_unit": kgce / output if enough else None,
        "kgco2_per_unit": kgco2 / output if enough else None,
        "intensity": value,
        "intensity_unit": judged.unit,
        "status": standing(value, judged),
        "benchmark": {
            "name": judged.name,
            "benchmark": judged.benchmark,
            "baseline": judged.baseline,
            "grades": list(judged.grades) or None,
            "source": judged.source,
            "confidence": judged.confidence.value,
        },
        "data_quality": m.quality(parts, "kgce", counted),
        "targets": _targets(
            m, line.id, kgce / output if enough else None, kgco2 / output if enough else None
        ),
    }
    indicator = line.green_factory
    if indicator is not None:
        out["green_factory"] = {
            "standard": "GB/T 36132-2025",
            "baseline": indicator.baseline,
            "leading": indicator.leading,
            "position": None
            if value is None
            else position(value, indicator.baseline, indicator.leading),
            "source": indicator.source,
            "confidence": Confidence.CONFIGURED.value,
        }
    return out


def _targets(
    m: _Month, line_id: str, energy: float | None, co2: float | None
) -> list[dict[str, Any]]:
    """Progress of a line against its reduction targets; this month's intensity taken as
    the year's. A projection only forward, up to the target year; past it, only whether
    the target intensity is reached."""
    targets = m.site.targets
    defaults = data.target_defaults()
    year = m.start.year
    goals = []
    for kind, bases, reduction, current, default in (
        (
            "energy",
            targets.base_energy_intensity,
            targets.energy_reduction,
            energy,
            defaults.energy,
        ),
        ("co2", targets.base_co2_intensity, targets.co2_reduction, co2, defaults.co2),
    ):
        base = bases.get(line_id)
        if base is None or current is None:
            continue
        configured = f"{kind}_reduction" in targets.model_fields_set
        source = "configured" if configured else default.source
        if not configured and (targets.base_year, targets.target_year) != (
            defaults.base_year,
            defaults.target_year,
        ):
            source += (
                f" (a reduction for {defaults.base_year}-{defaults.target_year}; "
                "the years here are configured)"
            )
        confidence = Confidence.CONFIGURED if configured else default.confidence
        t = Target(targets.base_year, base, targets.target_year, reduction, source)
        p = progress(t, year, current)
        ahead = project(t, {year: current}) if projectable(t, year) else None
        goals.append(
            {
                "kind": kind,
                "year": year,
                "intensity": current,
                "base_year": t.base_year,
                "base_intensity": base,
                "target_year": t.target_year,
                "reduction_required": reduction,
                "reduction_source": source,
                "reduction_confidence": confidence.value,
                "reduction_achieved": p.achieved,
                "target_intensity": p.target_intensity,
                "path_intensity": t.path(year) if year <= t.target_year else None,
                "on_path": p.on_path,
                "target_reached": p.reached,
                "projected_target_year_intensity": ahead.projected if ahead else None,
                "annual_rate": ahead.annual_rate if ahead else None,
                "on_track": ahead.on_track if ahead else None,
            }
        )
    return goals


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
                "kw": d.kw,
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
    cny = math.fsum(x.cny for x in cost.lines)
    return {
        "source": site.tou.source,
        "confidence": Confidence.CONFIGURED.value,
        "periods": [
            {
                "season": x.season,
                "period": x.period.value,
                "kwh": x.kwh,
                "price": x.price,
                "cny": x.cny,
            }
            for x in cost.lines
        ],
        "kwh": math.fsum(x.kwh for x in cost.lines),
        "cny": cny,
        "cny_per_unit": cny / output if output else None,
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
            enough = reaches(output, min_output(line)[Window.TODAY])
            series.append((day, num / output if enough else None))
            day = nxt
        out[line.id] = series
    return out


# --- rendering: the only place figures are rounded ------------------------------------------


def _plain(value: Decimal, grouped: bool) -> str:
    """A decimal without exponent and without zeros after its last significant digit."""
    text = decimal_text(value, grouped)
    return "0" if text in ("-0", "") else text


def amount_text(value: float | None, grouped: bool = True) -> str:
    """An additive figure to DECIMALS decimals (a total and its parts alike)."""
    if value is None or not math.isfinite(value):
        return "-"
    # Python rounds the float (exactly, half to even); the locale only spells the digits.
    rounded = Decimal(f"{value:.{DECIMALS}f}")
    return decimal_text(abs(rounded) if rounded.is_zero() else rounded, grouped, DECIMALS)


def ratio_text(value: float | None, grouped: bool = True) -> str:
    """A ratio to SIGNIFICANT significant digits, without a false trailing `.0`."""
    if value is None or not math.isfinite(value):
        return "-"
    return _plain(Decimal(f"{value:.{SIGNIFICANT}g}"), grouped)


def share_text(value: float | None) -> str:
    return (
        "-"
        if value is None or not math.isfinite(value)
        else _("{share} %").format(share=ratio_text(100 * value))
    )


def given_text(value: float | None, grouped: bool = True) -> str:
    """A figure as given in a data file or the configuration: exactly, not rounded."""
    if value is None:
        return "-"
    return _plain(Decimal(repr(float(value))), grouped)


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
        _("Coal-equivalent basis: {basis}").format(basis=_term(report["conversion_basis"])),
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
                    _term(c["carrier"]),
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
                    _term(m["carrier"]),
                    _term(m["role"]),
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
                    _term(x["status"]),
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
                *(_term(k).replace("_", " ") for k in QUALITY_KEY.values()),
                _("minutes with data"),
            ],
            rows,
        ),
    ]
    parts += [
        f"  {_term(k).replace('_', ' ')}: {_(v)}" for k, v in report["quality_meaning"].items()
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
                    _term(p["period"]),
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
            f"  {_term(carrier)}: {f['coefficient']}; "
            f"{_sourced(f['coefficient_source'], f['coefficient_confidence'])}"
        )
        parts.append(
            f"  {_term(carrier)}: {given_text(f['kgco2_per_unit'])} kgCO2/{f['unit']} "
            f"({f['co2_basis']}); {_sourced(f['co2_source'], f['co2_confidence'])}"
        )
    return parts


TABLE_SECTIONS: Final[list[Section]] = [
    _head,
    _carriers,
    _meters,
    _lines,
    _quality,
    _demand_section,
    _counters_section,
    _tou_section,
    _value_added,
    _factors_section,
]
"""The table, in order; a new part of the report is one more function here."""


def render_table(report: dict[str, Any]) -> str:
    return "\n".join(line for section in TABLE_SECTIONS for line in section(report))


CsvRow = tuple[str, str, str, str, str, str, str]
"""section, name, quantity, value (as printed), unit, source, confidence."""
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
            _("part of the figure: {part}").format(part=_term(k)),
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


CSV_SECTIONS: Final[list[Callable[[dict[str, Any]], list[CsvRow]]]] = [
    _csv_totals,
    _csv_carriers,
    _csv_meters,
    _csv_lines,
    _csv_site_quality,
    _csv_demand,
    _csv_counters,
    _csv_tou,
    _csv_factors,
]
"""The CSV rows, in order; a new part of the report is one more function here."""


def render_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO(CSV_BOM)
    buffer.seek(0, io.SEEK_END)
    writer = csv.writer(buffer)
    writer.writerow([_(h) for h in CSV_HEADER])
    for section in CSV_SECTIONS:
        writer.writerows(section(report))
    return buffer.getvalue()


def json_safe(value: Any) -> Any:
    """NaN and infinity (not JSON) as null, the way the table prints them as '-'."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(json_safe(report), indent=2, ensure_ascii=False, allow_nan=False)
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
