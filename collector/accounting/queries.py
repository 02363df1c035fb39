"""The accounting's read side: energy, kgce and CO2 totals per meter, line and site,
intensity per window and its standing against the benchmark; used by the API, the
reports and the platform export.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from collector.accounting.core.benchmarks import Standing, classify
from collector.accounting.core.factors import NdrcLevel
from collector.accounting.core.intensity import Intensity, Status, Window, intensity, window_start
from collector.accounting.core.series import Amount
from collector.accounting.db import (
    AccountingDB,
    ms,
)
from collector.accounting.targets import output_series
from collector.plant import (
    AccountingConfig,
    Judged,
    LineConfig,
    MeterConfig,
    SiteConfig,
    min_output,
    resolve_benchmark,
)


@dataclass(frozen=True, slots=True)
class Figure:
    """One line's (or the site's) intensity over one window."""

    window: Window
    kgce: float
    kgco2: float
    kwh: float
    output: float
    judged: Intensity
    """In the benchmark's unit (or kgce per output unit for the site)."""


def meter_totals(
    db: AccountingDB,
    config: AccountingConfig,
    site: str,
    meter: MeterConfig,
    start_ms: int,
    end_ms: int,
) -> tuple[float, float, float, int | None]:
    """amount, kgce, kgCO2, worst quality of a meter (virtual: its parts) over [start, end)."""
    if not meter.virtual:
        return db.totals(site, [meter.id], start_ms, end_ms)
    plus = db.totals(site, list(meter.plus), start_ms, end_ms)
    minus = db.totals(site, list(meter.minus), start_ms, end_ms)
    qualities = [q for q in (plus[3], minus[3]) if q is not None]
    return (
        plus[0] - minus[0],
        plus[1] - minus[1],
        plus[2] - minus[2],
        max(qualities) if qualities else None,
    )


def _numerator(judged_unit: str, kgce: float, kgco2: float, kwh: float) -> float:
    head = judged_unit.split("/", 1)[0]
    return {"kgce": kgce, "kgCO2": kgco2, "kWh": kwh}[head]


def line_totals(
    db: AccountingDB,
    config: AccountingConfig,
    site: SiteConfig,
    line_id: str,
    start_ms: int,
    end_ms: int,
) -> tuple[float, float, float, float, int | None]:
    """kgce, kgCO2, electricity kWh, output and worst quality of a line over [start, end)."""
    kgce = kgco2 = kwh = 0.0
    qualities: list[int] = []
    for m in site.line_meters(line_id):
        amount, ce, co2, q = meter_totals(db, config, site.id, m, start_ms, end_ms)
        kgce += ce
        kgco2 += co2
        if m.carrier.value == "electricity":
            kwh += amount
        if q is not None:
            qualities.append(q)
    output = db.totals(site.id, [output_series(line_id)], start_ms, end_ms)[0]
    return kgce, kgco2, kwh, output, max(qualities) if qualities else None


def site_totals(
    db: AccountingDB, config: AccountingConfig, site: SiteConfig, start_ms: int, end_ms: int
) -> tuple[float, float, float, float, int | None]:
    """kgce, kgCO2, electricity kWh of the boundary meters, the lines' output summed, and
    the worst quality of the meters (None: no data) over [start, end)."""
    kgce = kgco2 = kwh = 0.0
    qualities: list[int] = []
    for m in site.boundary_meters():
        amount, ce, co2, q = meter_totals(db, config, site.id, m, start_ms, end_ms)
        kgce, kgco2 = kgce + ce, kgco2 + co2
        kwh += amount if m.carrier.value == "electricity" else 0.0
        if q is not None:
            qualities.append(q)
    output = db.totals(site.id, [output_series(x.id) for x in site.lines], start_ms, end_ms)[0]
    return kgce, kgco2, kwh, output, max(qualities) if qualities else None


def line_series(site: SiteConfig, line_id: str) -> set[str]:
    """The series a line's figures are computed from (a virtual meter: its parts)."""
    series = {output_series(line_id)}
    for m in site.line_meters(line_id):
        series |= {*m.plus, *m.minus} if m.virtual else {m.id}
    return series


def _windows(site: SiteConfig) -> list[Window]:
    return [w for w in Window if w is not Window.SHIFT or site.shifts]


def line_figures(
    db: AccountingDB, config: AccountingConfig, site: SiteConfig, line: LineConfig, now: datetime
) -> list[Figure]:
    judged = resolve_benchmark(line)
    minimum = min_output(line)
    figures: list[Figure] = []
    for w in _windows(site):
        start = window_start(w, now, site.tz, site.shift_list)
        if start >= now:
            continue
        kgce, kgco2, kwh, output, _ = line_totals(db, config, site, line.id, ms(start), ms(now))
        num = _numerator(judged.unit, kgce, kgco2, kwh)
        value = intensity(
            [Amount(start, now, num)], [Amount(start, now, output)], start, now, minimum[w], w.value
        )
        figures.append(Figure(w, kgce, kgco2, kwh, output, value))
    return figures


def site_figures(
    db: AccountingDB, config: AccountingConfig, site: SiteConfig, now: datetime
) -> list[Figure]:
    """Site intensity (kgce per output unit) over each window: boundary meters over the
    lines' output, when every line counts output in the same unit."""
    units = {line.output_unit for line in site.lines}
    if len(units) != 1:
        return []
    minimum = min(min(min_output(line).values()) for line in site.lines)
    figures: list[Figure] = []
    for w in _windows(site):
        start = window_start(w, now, site.tz, site.shift_list)
        if start >= now:
            continue
        kgce, kgco2, kwh, output, _ = site_totals(db, config, site, ms(start), ms(now))
        value = intensity(
            [Amount(start, now, kgce)], [Amount(start, now, output)], start, now, minimum, w.value
        )
        figures.append(Figure(w, kgce, kgco2, kwh, output, value))
    return figures


STATUS_CODES: Final = {
    "insufficient_output": 0,
    Standing.LEADING.value: 1,
    Standing.COMPLIANT.value: 2,
    Standing.ABOVE_BASELINE.value: 3,
}


def standing(value: float | None, judged: Judged | None) -> str:
    if value is None:
        return Status.INSUFFICIENT_OUTPUT.value
    if judged is None:
        return Status.OK.value
    level = NdrcLevel(
        product=judged.name,
        unit=judged.unit,
        benchmark=judged.benchmark,
        baseline=judged.baseline,
        edition="-",
        source=judged.source,
        confidence="configured",  # type: ignore[arg-type]
    )
    return classify(value, judged.unit, level).standing.value
