"""The platform's indicators of a site for a real-time slot (15, 30 or 60 minutes), a day
or a month, with the data-quality figures the specifications ask for.

Energy is the accounting's, never derived again: the same minute rows through the same
engine queries as the monthly report (engine.meter_totals, engine.line_totals,
reports.build.figure_quality), so a month's figures here equal the report's. Values are
unrounded; a value that cannot be known (no output for an intensity, no value added
given) is None, never 0.

Data quality (thresholds from the catalogue, source and confidence there):
- completeness: real-time slots that hold data in every minute of every boundary meter
  over the slots that should have been collected (those ended by `now`); with the upload
  record, also the slots uploaded over those expected;
- consistency (month): for every additive indicator, |sum of the days - month| / month;
  the days are those uploaded (the record) where there is one, else computed now, so a
  late reading that changed a day after its upload shows here;
- statistics start: how far a day's (month's) start is from local midnight (the first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from collector.accounting.core.intensity import Window
from collector.accounting.core.series import reaches
from collector.accounting.db import AccountingDB, ms
from collector.accounting.queries import line_totals, meter_totals
from collector.plant import (
    CARRIERS,
    AccountingConfig,
    Carrier,
    Role,
    SiteConfig,
    min_output,
    resolve_benchmark,
)
from collector.platform.catalogue import Catalogue, Period, catalogue
from collector.reports.build import figure_quality, meter_parts
from collector.reports.period import ReportError, month_bounds
from greengauge.common.i18n import _

ADDITIVE: Final = ("total_energy", "carrier_amount", "carrier_energy", "product_output")
"""Indicators whose days add up to their month (the consistency check)."""
MINUTE_MS: Final = 60_000


class PeriodError(ValueError):
    """A period the platform has no indicators for (a slot off the grid, a bad date)."""


@dataclass(frozen=True, slots=True)
class Span:
    period: Period
    start: datetime
    end: datetime
    label: str
    """2026-10-15T10:15:00+08:00 (slot), 2026-10-15 (day), 2026-10 (month)."""


@dataclass(frozen=True, slots=True)
class Codes:
    """What the provincial platform calls things: the unit's code (统一社会信用代码) and
    the indicator and carrier codes of its code table, all configured."""

    unit: str | None = None
    indicators: Mapping[str, str] = field(default_factory=dict)
    """By indicator key, or key:carrier / key:line for one carrier's or line's."""
    carriers: Mapping[Carrier, str] = field(default_factory=dict)


def slot_span(site: SiteConfig, start: datetime, minutes: int) -> Span:
    local = start.astimezone(site.tz)
    midnight = datetime.combine(local.date(), time(), site.tz)
    offset = ms(local) - ms(midnight)
    if minutes not in catalogue().slot_minutes or offset % (minutes * MINUTE_MS):
        raise PeriodError(
            _(
                "slot {start}: a slot starts on a multiple of {minutes} minutes of local time"
            ).format(start=local.isoformat(), minutes=minutes)
        )
    try:
        end = local + timedelta(minutes=minutes)
    except OverflowError:
        raise PeriodError(
            _("{period}: past the calendar").format(period=local.isoformat())
        ) from None
    return Span("slot", local, end, local.isoformat())


def day_span(site: SiteConfig, day: date) -> Span:
    start = datetime.combine(day, time(), site.tz)
    try:
        end = datetime.combine(day + timedelta(days=1), time(), site.tz)
    except OverflowError:
        raise PeriodError(_("{period}: past the calendar").format(period=day.isoformat())) from None
    return Span("day", start, end, day.isoformat())


def month_span(site: SiteConfig, month: str) -> Span:
    try:
        start, end = month_bounds(month, site)
    except ReportError:
        raise PeriodError(_("month {month!r}: give YYYY-MM").format(month=month)) from None
    return Span("month", start, end, f"{start.year:04d}-{start.month:02d}")


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PeriodError(_("day {day!r}: give YYYY-MM-DD").format(day=text)) from None


def days_of(span: Span, site: SiteConfig) -> list[Span]:
    out = []
    day = span.start.date()
    while (d := day_span(site, day)).start < span.end:
        out.append(d)
        day += timedelta(days=1)
    return out


@dataclass(frozen=True, slots=True)
class Figures:
    """The accounting's figures of one site over one span."""

    carriers: dict[Carrier, tuple[float, float]]
    """amount in the carrier's unit, kgce; of the boundary meters."""
    meters: dict[str, float]
    """Every meter's amount in its carrier's unit (a virtual one: of its parts)."""
    lines: dict[str, tuple[float, float, float | None]]
    """output, kgce, kgce per output unit (None: too little output)."""


def figures(config: AccountingConfig, db: AccountingDB, site: SiteConfig, span: Span) -> Figures:
    a, b = ms(span.start), ms(span.end)
    amounts: dict[Carrier, list[float]] = {}
    kgce: dict[Carrier, list[float]] = {}
    meters: dict[str, float] = {}
    for m in site.meters:
        amount, ce, _co2, _q = meter_totals(db, config, site.id, m, a, b)
        meters[m.id] = amount
        if m.role is Role.BOUNDARY:
            amounts.setdefault(m.carrier, []).append(amount)
            kgce.setdefault(m.carrier, []).append(ce)
    carriers = {c: (math.fsum(amounts[c]), math.fsum(kgce[c])) for c in sorted(amounts)}
    window = Window.MONTH_TO_DATE if span.period == "month" else Window.TODAY
    lines: dict[str, tuple[float, float, float | None]] = {}
    for line in site.lines:
        ce, _co2, _kwh, output, _q = line_totals(db, config, site, line.id, a, b)
        enough = reaches(output, min_output(line)[window])
        lines[line.id] = (output, ce, ce / output if enough else None)
    return Figures(carriers, meters, lines)


Row = tuple[str | None, float | None, str]
"""What an indicator is of (a carrier, a line, None: the site), its value, its unit."""


def _rows(
    key: str,
    fig: Figures,
    site: SiteConfig,
    money: Mapping[str, float | None],
    table: Catalogue,
) -> list[Row]:
    carriers = fig.carriers

    def of_class(wanted: str) -> list[Row]:
        kgce = [ce for c, (_a, ce) in carriers.items() if table.carriers[c].class_ == wanted]
        return [(None, math.fsum(kgce), "kgce")]

    rows: dict[str, list[Row]] = {
        "total_energy": [(None, math.fsum(ce for _a, ce in carriers.values()), "kgce")],
        "carrier_amount": [(c.value, a, site_unit(c)) for c, (a, _ce) in carriers.items()],
        "carrier_energy": [(c.value, ce, "kgce") for c, (_a, ce) in carriers.items()],
        "meter_amount": [(m.id, fig.meters[m.id], m.unit) for m in site.meters],
        "primary_energy": of_class("primary"),
        "secondary_energy": of_class("secondary"),
        "product_output": [(x.id, fig.lines[x.id][0], x.output_unit) for x in site.lines],
        "unit_product_energy": [
            (x.id, fig.lines[x.id][2], f"kgce/{x.output_unit}") for x in site.lines
        ],
    }
    for name, cny in money.items():
        rows[name] = [(None, cny, "CNY")]
    if key not in rows:
        raise KeyError(f"{key}: an indicator of the catalogue this version cannot compute")
    return rows[key]


def site_unit(carrier: Carrier) -> str:
    return CARRIERS[carrier][0]


def values(
    span: Span,
    fig: Figures,
    site: SiteConfig,
    codes: Codes,
    money: Mapping[str, float | None],
) -> list[dict[str, Any]]:
    """The indicators of the span, in catalogue order, with their codes."""
    table = catalogue()
    out: list[dict[str, Any]] = []
    for ind in table.indicators:
        if span.period not in ind.periods:
            continue
        for of, value, unit in _rows(ind.key, fig, site, money, table):
            configured = codes.indicators.get(f"{ind.key}:{of}") if of is not None else None
            configured = configured or codes.indicators.get(ind.key)
            code = configured or ind.code
            row: dict[str, Any] = {
                "key": ind.key,
                "of": of,
                "name_zh": ind.name_zh,
                "name_en": ind.name_en,
                "value": value,
                "unit": unit,
                "code": code,
                "code_from": "configured" if configured else ("catalogue" if code else None),
            }
            if ind.per == "carrier" and of is not None:
                carrier = Carrier(of)
                row["carrier_class"] = table.carriers[carrier].class_
                row["carrier_code"] = codes.carriers.get(carrier) or table.carriers[carrier].code
            if ind.per == "meter" and of is not None:
                meter = site.meter(of)
                row["carrier"] = meter.carrier.value
                row["role"] = meter.role.value
            if ind.per == "line" and of is not None:
                judged = resolve_benchmark(site.line(of))
                row["energy_limit_standard"] = (
                    judged.name if judged.kind == "energy_limit" else None
                )
            out.append(row)
    return out


def _value_key(row: Mapping[str, Any]) -> str:
    return str(row["key"]) if row["of"] is None else f"{row['key']}:{row['of']}"


def additive(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The additive indicators' values by key (key:of), for the consistency check."""
    return {
        _value_key(r): float(r["value"])
        for r in rows
        if r["key"] in ADDITIVE and r["value"] is not None
    }


def consistency(
    month: Mapping[str, float], days: Sequence[Mapping[str, float]], limit: float
) -> dict[str, Any]:
    """Per additive indicator: the month, the sum of the days, |sum - month| / |month|
    (None when the month is 0: a deviation from nothing is not a ratio) and whether it is
    within `limit`; an indicator missing from a day counts 0 for that day."""
    per: dict[str, Any] = {}
    for key, total in month.items():
        summed = math.fsum(d.get(key, 0.0) for d in days)
        deviation = abs(summed - total) / abs(total) if total else None
        ok = deviation <= limit if deviation is not None else summed == 0
        per[key] = {"month": total, "days": summed, "deviation": deviation, "meets": ok}
    worst = [x["deviation"] for x in per.values() if x["deviation"] is not None]
    return {
        "limit": limit,
        "max_deviation": max(worst) if worst else None,
        "meets": all(x["meets"] for x in per.values()),
        "indicators": per,
    }


def _slots(
    db: AccountingDB,
    site: SiteConfig,
    span: Span,
    slot_minutes: int,
    now: datetime,
    uploaded: set[int] | None,
    limit: float,
) -> dict[str, Any]:
    """Completeness of the real-time slots of a day or month (ended by `now`)."""
    slot_ms = slot_minutes * MINUTE_MS
    a, b = ms(span.start), ms(span.end)
    until = min(b, ms(now))
    starts = list(range(a, until - slot_ms + 1, slot_ms))
    series = [s for m in site.boundary_meters() for s, _sign in meter_parts(m)]
    covered = db.covered_per_slot(site.id, series, a, b, slot_ms)
    complete = sum(1 for s in starts if covered.get(s, 0) == slot_minutes)
    out: dict[str, Any] = {
        "slot_minutes": slot_minutes,
        "slots_expected": len(starts),
        "slots_complete": complete,
        "completeness": complete / len(starts) if starts else None,
    }
    out["meets"] = out["completeness"] is not None and out["completeness"] >= limit
    if uploaded is not None:
        sent = sum(1 for s in starts if s in uploaded)
        out["slots_uploaded"] = sent
        out["uploaded_completeness"] = sent / len(starts) if starts else None
        out["uploaded_meets"] = bool(starts) and sent / len(starts) >= limit
    return out


def compute(
    config: AccountingConfig,
    db: AccountingDB,
    site_id: str,
    span: Span,
    *,
    codes: Codes,
    now: datetime,
    slot_minutes: int = 15,
    output_value: Mapping[str, float] | None = None,
    days_uploaded: Mapping[str, Mapping[str, float]] | None = None,
    slots_uploaded: set[int] | None = None,
) -> dict[str, Any]:
    """The indicators of `span` with their data quality. `days_uploaded`: per day label,
    the additive values as uploaded (the record); `slots_uploaded`: the starts (epoch ms)
    of the slots uploaded."""
    site = config.site(site_id)
    if site is None:
        raise PeriodError(
            _("site {site!r} is not in the plant model: {sites}").format(
                site=site_id, sites=[s.id for s in config.sites]
            )
        )
    table = catalogue()
    limits = table.quality
    fig = figures(config, db, site, span)
    money: dict[str, float | None] = {"output_value": None, "value_added": None}
    if span.period == "month":
        money["output_value"] = (output_value or {}).get(span.label)
        money["value_added"] = db.value_added(site.id, span.label) or site.value_added.get(
            span.label
        )
    rows = values(span, fig, site, codes, money)
    a, b = ms(span.start), ms(span.end)
    expected = max(0, (min(b, ms(now) // MINUTE_MS * MINUTE_MS) - a) // MINUTE_MS)
    parts = [p for m in site.boundary_meters() for p in meter_parts(m)]
    minutes = figure_quality(db, site.id, parts, "kgce", (a, b), expected)
    quality: dict[str, Any] = {
        "minutes": {
            k: minutes[k]
            for k in ("expected_minutes", "minutes_with_data", "measured_minutes", "completeness")
        },
        "completeness_min": limits.completeness_min,
    }
    if span.period == "slot":
        quality["meets_completeness"] = (
            minutes["completeness"] is not None
            and minutes["completeness"] >= limits.completeness_min
        )
    else:
        quality["slots"] = _slots(
            db, site, span, slot_minutes, now, slots_uploaded, limits.completeness_min
        )
        first = span.start.date() if span.period == "day" else span.start.date().replace(day=1)
        offset = abs((span.start - datetime.combine(first, time(), site.tz)).total_seconds())
        most = {"day": limits.day_start_offset_max_s, "month": limits.month_start_offset_max_s}[
            span.period
        ]
        quality["start_offset_s"] = offset
        quality["start_offset_max_s"] = most
        quality["start_meets"] = offset <= most
    if span.period == "month":
        recorded = days_uploaded or {}
        days = []
        for d in days_of(span, site):
            if d.label in recorded:
                days.append(dict(recorded[d.label]))
            else:
                days.append(additive(values(d, figures(config, db, site, d), site, codes, {})))
        quality["consistency"] = consistency(additive(rows), days, limits.consistency_max)
        quality["consistency"]["days_from_record"] = sum(
            1 for d in days_of(span, site) if d.label in recorded
        )
        quality["indicators_missing"] = [_value_key(r) for r in rows if r["value"] is None]
    return {
        "site": site.id,
        "unit_code": codes.unit,
        "period": span.period,
        "label": span.label,
        "from": span.start.isoformat(),
        "to": span.end.isoformat(),
        "timezone": site.timezone,
        "made_at": now.astimezone(site.tz).isoformat(),
        "catalogue": table.version,
        "conversion_basis": config.conversion.basis.value,
        "indicators": rows,
        "quality": quality,
        "sources": {
            "indicators_and_quality": limits.source.text,
            "confidence": limits.source.confidence.value,
            "carrier_classes": table.sources["gbt2589"].text,
            "carrier_classes_confidence": table.sources["gbt2589"].confidence.value,
            "codes": _("configured (platform.codes)")
            if codes.indicators
            else _("not configured: the platform's codes are not public"),
        },
    }
