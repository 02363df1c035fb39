"""The monthly report's figures (`energy-collector report`): a site's month from the
accounting database, traceable.

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

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from collector.accounting.core import data
from collector.accounting.core.benchmarks import grade, position
from collector.accounting.core.carbon import market_based
from collector.accounting.core.conversion import coefficient
from collector.accounting.core.demand import max_demand
from collector.accounting.core.emissions import by_scope, process
from collector.accounting.core.factors import Confidence
from collector.accounting.core.intensity import Window
from collector.accounting.core.series import Amount, Quality, reaches
from collector.accounting.core.targets import Target, progress, project, projectable
from collector.accounting.core.tou import split
from collector.accounting.db import AccountingDB, from_ms, ms
from collector.accounting.queries import standing
from collector.accounting.targets import meter_factors, output_series
from collector.plant import (
    AccountingConfig,
    Carrier,
    LineConfig,
    MeterConfig,
    OutputFromMeter,
    SiteConfig,
    _coal_key,
    co2_route,
    energy_limit,
    line_indicators,
    min_output,
    resolve_benchmark,
)
from collector.reports.breakdown import extend
from collector.reports.numbers import ROUNDING_RULE
from collector.reports.period import ReportError, month_bounds
from greengauge.common.i18n import N_

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
            "scope": site.scope(c),
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
        co2["market_based_electricity_kgco2"] = mb.emission.kg_co2
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
        "emissions": _emissions(carriers, co2, lines),
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
    report.update(_breakdowns(config, db, site, report, m, now or datetime.now(UTC)))
    return report


def _breakdowns(
    config: AccountingConfig,
    db: AccountingDB,
    site: SiteConfig,
    report: dict[str, Any],
    m: _Month,
    now: datetime,
) -> dict[str, Any]:
    """Breakdowns, days, comparisons and energy baselines (collector.reports.breakdown)."""

    return extend(config, db, site, report, (m.start, m.end), now)


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
        "scope": m.site.scope(meter.carrier),
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
        "indicators": indicators(
            line, output if enough else None, {"kgce": kgce, "kgCO2": kgco2, "kWh": kwh}
        ),
        **_process(line, output, kgco2, enough),
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
            "score": None,
            "score_rule": GREEN_FACTORY_SCORE_RULE,
        }
    return out


GREEN_FACTORY_SCORE_RULE: Final = N_(
    "no score: the points GB/T 36132-2025 gives a quantitative indicator between its "
    "baseline value (基准值) and leading value (引领值) were not found in any reference (the "
    "2018 edition's thresholds are unconfirmed too); the position is shown instead"
)
"""Why a green-factory indicator has a position but no score."""
SCOPE_MEANING: Final = N_(
    "scope 1: fuels burned on site and process emissions; scope 2: purchased "
    "electricity, heat and steam (GHG Protocol; GB/T 32150-2015)"
)


def indicators(
    line: LineConfig, output: float | None, numerators: dict[str, float]
) -> list[dict[str, Any]]:
    """Every indicator of a line, each against its own benchmark kind; the grade (1/2/3,
    None above grade 3) where the benchmark is an energy-limit standard's grades."""
    out: list[dict[str, Any]] = []
    for judged in line_indicators(line):
        value = numerators[judged.numerator] / output if output else None
        graded = None
        if judged.kind == "energy_limit" and value is not None:
            graded = grade(value, judged.unit, energy_limit(judged)).grade
        out.append(
            {
                "name": judged.name,
                "kind": judged.kind,
                "value": value,
                "unit": judged.unit,
                "status": standing(value, judged),
                "grade": graded,
                "grades": list(judged.grades) or None,
                "benchmark": judged.benchmark,
                "baseline": judged.baseline,
                "source": judged.source,
                "confidence": judged.confidence.value,
            }
        )
    return out


def _process(line: LineConfig, output: float, energy_kgco2: float, enough: bool) -> dict[str, Any]:
    """A line's process CO2: its output x each configured factor; with its energy CO2,
    the line's total (per unit of output: GB/T 36132's carbon emissions per unit product
    count both)."""
    parts = [
        (p, process(output, line.output_unit, p.name, p.value, p.source, p.confidence))
        for p in line.process_emissions
    ]
    return {
        "process_emissions": [
            {
                "name": p.name,
                "kgco2_per_unit": p.value,
                "unit": p.unit,
                "kgco2": e.kg_co2,
                "basis": e.basis,
                "source": e.source,
                "confidence": e.confidence.value,
            }
            for p, e in parts
        ],
        "process_kgco2": (process_kg := math.fsum(e.kg_co2 for _, e in parts)),
        "total_kgco2": (total := math.fsum((energy_kgco2, process_kg))),
        "total_kgco2_per_unit": total / output if enough else None,
    }


def _emissions(
    carriers: Sequence[dict[str, Any]], co2: dict[str, Any], lines: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The site's CO2 by scope: energy (boundary carriers) and process (the lines')
    apart and together; market-based scope 2 when configured."""
    market = None
    if "market_based_electricity_kgco2" in co2:
        market = math.fsum(
            [c["kgco2"] for c in carriers if c["scope"] == 2 and c["carrier"] != "electricity"]
            + [co2["market_based_electricity_kgco2"]]
        )
    s = by_scope(
        [(c["scope"], c["kgco2"]) for c in carriers],
        [x["process_kgco2"] for x in lines],
        market,
    )
    return {
        "scope1_combustion_kgco2": s.scope1_combustion,
        "scope1_process_kgco2": s.scope1_process,
        "scope1_kgco2": s.scope1,
        "scope2_location_kgco2": s.scope2_location,
        "scope2_market_kgco2": s.scope2_market,
        "energy_kgco2": s.energy_location,
        "process_kgco2": s.scope1_process,
        "total_kgco2": s.total_location,
        "total_market_kgco2": s.total_market,
        "by_carrier": [
            {"carrier": c["carrier"], "scope": c["scope"], "kgco2": c["kgco2"]} for c in carriers
        ],
        "process": [
            {
                "line": x["line"],
                "product": x["product"],
                "output": x["output"],
                "output_unit": x["output_unit"],
                **p,
            }
            for x in lines
            for p in x["process_emissions"]
        ],
        "meaning": SCOPE_MEANING,
    }


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
