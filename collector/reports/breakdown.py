"""The report's breakdowns and comparisons: energy by carrier per line, the remainder no
line accounts for (site boundary minus lines), the site's intensity per unit of output,
a row per day, and the same figures for the previous month and the same month a year
before (when the accounting database holds them).

Figures are unrounded, as in `build`; every total is the exact sum (math.fsum) of its
parts."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from collector.accounting.core.intensity import Window
from collector.accounting.core.series import reaches
from collector.accounting.db import AccountingDB, from_ms, ms
from collector.accounting.queries import line_totals, site_totals
from collector.plant import AccountingConfig, Judged, SiteConfig, min_output, resolve_benchmark
from collector.reports.enpi import baselines
from collector.reports.period import local_days, month_bounds, site_unit

NO_DATA = "no_data"
"""A comparison month the accounting database holds nothing for."""
GAP_SHARE = 0.9
"""A day whose site figure is measured for less than this share of its minutes is marked
as a gap (the provincial platform's completeness requirement is 90 %)."""


def per_unit(judged: Judged, kgce: float, kgco2: float, kwh: float) -> float:
    """The numerator a line is judged on (kgce, kgCO2 or kWh)."""
    return {"kgce": kgce, "kgCO2": kgco2, "kWh": kwh}[judged.numerator]


def month_of(month: str, offset: int) -> str:
    """The month `offset` months from 'YYYY-MM'."""
    year, mon = (int(x) for x in month.split("-"))
    index = year * 12 + mon - 1 + offset
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def line_carriers(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per line and carrier, the line's meters summed (native unit, kgce, kgCO2)."""
    rows: list[dict[str, Any]] = []
    for line in report["lines"]:
        own = [m for m in report["meters"] if m["meter"] in line["meters"]]
        for carrier in sorted({m["carrier"] for m in own}):
            parts = [m for m in own if m["carrier"] == carrier]
            rows.append(
                {
                    "line": line["line"],
                    "carrier": carrier,
                    "meters": [m["meter"] for m in parts],
                    "amount": math.fsum(m["amount"] for m in parts),
                    "unit": parts[0]["unit"],
                    "kgce": math.fsum(m["kgce"] for m in parts),
                    "kgco2": math.fsum(m["kgco2"] for m in parts),
                }
            )
    return rows


def unallocated(report: dict[str, Any], by_line: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per carrier: the site boundary minus what the lines' meters account for (offices,
    utilities, losses). Negative when the lines' meters read more than the boundary: a
    metering error to look into, or a line meter on a carrier the boundary does not meter."""
    boundary = {c["carrier"]: c for c in report["carriers"]}
    rows: list[dict[str, Any]] = []
    for carrier in sorted(set(boundary) | {x["carrier"] for x in by_line}):
        lines = [x for x in by_line if x["carrier"] == carrier]
        site = boundary.get(carrier)
        row: dict[str, Any] = {"carrier": carrier, "metered_at_boundary": site is not None}
        for key in ("amount", "kgce", "kgco2"):
            row[f"site_{key}"] = site[key] if site else 0.0
            row[f"lines_{key}"] = math.fsum(x[key] for x in lines)
            row[key] = row[f"site_{key}"] - row[f"lines_{key}"]
        row["unit"] = site["unit"] if site else lines[0]["unit"]
        row["share"] = row["amount"] / row["site_amount"] if row["site_amount"] else None
        rows.append(row)
    return rows


def site_intensity(
    config: AccountingConfig, site: SiteConfig, report: dict[str, Any]
) -> dict[str, Any]:
    """Site kgce (and kgCO2) per unit of the lines' summed output, as the live site figure
    is made (engine.site_figures): only when every line counts in the same unit."""
    unit = site_unit(site)
    output = math.fsum(x["output"] for x in report["lines"])
    totals = report["totals"]
    if unit is None:
        return {
            "output": None,
            "output_unit": None,
            "kgce_per_unit": None,
            "kgco2_per_unit": None,
            "note": "the lines count output in different units: "
            + ", ".join(sorted({x.output_unit for x in site.lines})),
        }
    minimum = min(min_output(x)[Window.MONTH_TO_DATE] for x in site.lines)
    enough = reaches(output, minimum)
    return {
        "output": output,
        "output_unit": unit,
        "kgce_per_unit": totals["kgce"] / output if enough else None,
        "kgco2_per_unit": totals["kgco2"] / output if enough else None,
        "note": None if enough else "insufficient_output",
    }


def days(
    config: AccountingConfig,
    db: AccountingDB,
    site: SiteConfig,
    span: tuple[datetime, datetime],
    now: datetime,
) -> list[dict[str, Any]]:
    """A row per local day: the site's kgce, kgCO2, electricity and output, how much of
    the day is measured (a gap below GAP_SHARE), and each line's output, kgce and intensity."""
    series = sorted({p for m in site.boundary_meters() for p in (*m.plus, *m.minus) or (m.id,)})
    judged = {x.id: resolve_benchmark(x) for x in site.lines}
    rows: list[dict[str, Any]] = []
    for start, end in local_days(*span):
        a, b = ms(start), ms(end)
        kgce, kgco2, kwh, output, quality = site_totals(db, config, site, a, b)
        expected = max(0, (min(b, ms(now) // 60_000 * 60_000) - a) // 60_000)
        measured = db.covered_minutes(site.id, series, a, b)[1]
        lines = []
        for x in site.lines:
            ce, co2, e, out, _ = line_totals(db, config, site, x.id, a, b)
            enough = reaches(out, min_output(x)[Window.TODAY])
            lines.append(
                {
                    "line": x.id,
                    "output": out,
                    "kgce": ce,
                    "intensity": per_unit(judged[x.id], ce, co2, e) / out if enough else None,
                }
            )
        completeness = measured / expected if expected else None
        rows.append(
            {
                "date": start.date().isoformat(),
                "kgce": kgce,
                "kgco2": kgco2,
                "electricity_kwh": kwh,
                "output": output if site_unit(site) else None,
                "completeness": completeness,
                "gap": expected > 0 and (quality is None or measured < GAP_SHARE * expected),
                "lines": lines,
            }
        )
    return rows


def month_summary(
    config: AccountingConfig, db: AccountingDB, site: SiteConfig, month: str
) -> dict[str, Any] | None:
    """A month's site and line totals, or None when the database has nothing for it."""

    start, end = month_bounds(month, site)
    a, b = ms(start), ms(end)
    kgce, kgco2, kwh, output, quality = site_totals(db, config, site, a, b)
    lines = []
    for x in site.lines:
        ce, co2, e, out, q = line_totals(db, config, site, x.id, a, b)
        quality = quality if q is None else max(q, quality or 0)
        judged = resolve_benchmark(x)
        enough = reaches(out, min_output(x)[Window.MONTH_TO_DATE])
        lines.append(
            {
                "line": x.id,
                "output": out,
                "kgce": ce,
                "intensity": per_unit(judged, ce, co2, e) / out if enough else None,
                "intensity_unit": judged.unit,
            }
        )
    if quality is None and not output:
        return None
    unit = site_unit(site)
    return {
        "month": month,
        "kgce": kgce,
        "kgco2": kgco2,
        "electricity_kwh": kwh,
        "output": output if unit else None,
        "kgce_per_unit": kgce / output if unit and output else None,
        "lines": lines,
    }


def _change(now: float | None, then: float | None) -> float | None:
    """Relative change from `then` to `now` (0.1: 10 % more)."""
    return None if now is None or not then else now / then - 1


def comparisons(
    config: AccountingConfig, db: AccountingDB, site: SiteConfig, month: str
) -> list[dict[str, Any]]:
    """This month beside the previous one and the same month a year before: their
    figures and the relative change of each, or `no_data`."""
    this = month_summary(config, db, site, month) or {}
    out: list[dict[str, Any]] = []
    for kind, offset in (("previous_month", -1), ("same_month_last_year", -12)):
        other = month_of(month, offset)
        then = month_summary(config, db, site, other)
        if then is None:
            out.append({"kind": kind, "month": other, "status": NO_DATA})
            continue
        out.append(
            {
                "kind": kind,
                "month": other,
                "status": "ok",
                "figures": then,
                "change": {
                    key: _change(this.get(key), then[key])
                    for key in ("kgce", "kgco2", "electricity_kwh", "output", "kgce_per_unit")
                },
                "line_change": [
                    {
                        "line": b["line"],
                        **{
                            key: _change(now.get(key), b[key])
                            for key in ("output", "kgce", "intensity")
                        },
                    }
                    for now, b in zip(
                        this.get("lines", [{}] * len(then["lines"])), then["lines"], strict=True
                    )
                ],
            }
        )
    return out


def corrections(
    db: AccountingDB, site: SiteConfig, span: tuple[datetime, datetime]
) -> list[dict[str, Any]]:
    """Alerts of the month raised or cleared on figures that late readings changed
    afterwards: where the live view was corrected."""
    a, b = ms(span[0]), ms(span[1])
    return [
        {
            "line": x.line,
            "kind": x.kind,
            "at": from_ms(x.ts).astimezone(site.tz).isoformat(),
        }
        for x in db.alerts(site.id)
        if x.corrected and a <= x.ts < b
    ]


def extend(
    config: AccountingConfig,
    db: AccountingDB,
    site: SiteConfig,
    report: dict[str, Any],
    span: tuple[datetime, datetime],
    now: datetime,
) -> dict[str, Any]:
    """The report's keys this module adds."""

    by_line = line_carriers(report)
    return {
        "line_carriers": by_line,
        "unallocated": unallocated(report, by_line),
        "site_intensity": site_intensity(config, site, report),
        "days": days(config, db, site, span, now),
        "late_corrections": corrections(db, site, span),
        "comparisons": comparisons(config, db, site, report["month"]),
        "energy_baselines": baselines(config, db, site, span, now),
    }
