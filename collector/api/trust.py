"""How far a figure on the dashboard can be trusted: whether the meters it rests on are
current, how much of it is measured, and an alert that is building up but not raised yet.

Pure reads of the plant model, the meters' health (collector.api.figures.meters) and the
accounting database; nothing here decides a benchmark class.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from collector.accounting.core.alerts import Phase
from collector.accounting.core.intensity import Window, window_start
from collector.accounting.db import AccountingDB, ms
from collector.accounting.targets import output_series
from collector.plant import Judged, LineConfig, OutputFromMeter, SiteConfig
from collector.reports.build import figure_quality, meter_parts

QUALITY_WINDOWS: Final = (Window.ROLLING_1H, Window.TODAY)
"""The windows whose data quality the dashboard shows beside the figures."""
CURRENT: Final = "online"
"""The one meter state a figure may rest on and still be current."""


def line_meters(site: SiteConfig, line: LineConfig) -> list[str]:
    """The real meters a line's figures rest on: its energy meters (a virtual one: its
    parts) and the production counter its output comes from."""
    ids = [series for m in site.line_meters(line.id) for series, _ in meter_parts(m)]
    if isinstance(line.output, OutputFromMeter):
        ids.append(line.output.meter)
    return list(dict.fromkeys(ids))


def boundary_meters(site: SiteConfig) -> list[str]:
    """The real meters the site's own figures (power, today's energy) rest on."""
    return list(
        dict.fromkeys(series for m in site.boundary_meters() for series, _ in meter_parts(m))
    )


def freshness(meters: Sequence[dict[str, Any]], feeding: Sequence[str]) -> dict[str, Any]:
    """`live` when every meter in `feeding` is online and current; `stale` naming those
    that are not (offline, stale, never heard of); `no_data` when none has a reading.
    `age_s` is the age of the oldest newest reading among them: what the figure is
    at least that old by."""
    by_id = {m["id"]: m for m in meters}
    late: list[dict[str, Any]] = []
    ages: list[float] = []
    for meter_id in feeding:
        m = by_id.get(meter_id)
        state = m["state"] if m else "unknown"
        age = m["age_s"] if m else None
        if age is not None:
            ages.append(age)
        if state != CURRENT:
            late.append({"id": meter_id, "state": state, "age_s": age})
    return {
        "state": "no_data" if not ages else "stale" if late else "live",
        "age_s": max(ages) if ages else None,
        "meters": late,
        "fed_by": list(feeding),
    }


def _expected_minutes(start: datetime, now: datetime) -> int:
    first = -(-ms(start) // 60_000)  # the first whole minute in the window
    return max(0, ms(now) // 60_000 - first)


def _quality(
    db: AccountingDB,
    site: SiteConfig,
    parts: list[tuple[str, float]],
    also: list[str],
    findings_of: set[str],
    now: datetime,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in QUALITY_WINDOWS:
        start = window_start(w, now, site.tz, site.shift_list)
        q = figure_quality(
            db, site.id, parts, "kgce", (ms(start), ms(now)), _expected_minutes(start, now), also
        )
        found = [f for f in db.findings(site.id, ms(start), ms(now)) if f.series in findings_of]
        out[w.value] = {
            "completeness": q["completeness"],
            "estimated_share": q["estimated_share"],
            "expected_minutes": q["expected_minutes"],
            "measured_minutes": q["measured_minutes"],
            "by_quality": q["by_quality"],
            # Readings left out or replaced by an estimate, by what was wrong with them.
            "findings": [
                {
                    "series": f.series,
                    "issue": f.finding.issue.value,
                    "excluded": f.finding.excluded,
                    "estimated": f.finding.estimate,
                }
                for f in found
            ],
        }
    return out


def line_quality(
    db: AccountingDB, site: SiteConfig, line: LineConfig, now: datetime
) -> dict[str, Any]:
    """Completeness and estimated share of a line's kgce, by window, with its findings."""
    parts = [p for m in site.line_meters(line.id) for p in meter_parts(m)]
    counted = [output_series(line.id)] if isinstance(line.output, OutputFromMeter) else []
    return _quality(db, site, parts, counted, {s for s, _ in parts} | set(counted), now)


def site_quality(db: AccountingDB, site: SiteConfig, now: datetime) -> dict[str, Any]:
    """Completeness and estimated share of the site's kgce (its boundary), by window."""
    parts = [p for m in site.boundary_meters() for p in meter_parts(m)]
    return _quality(db, site, parts, [], {s for s, _ in parts}, now)


def pending_alert(
    db: AccountingDB, site: SiteConfig, line: LineConfig, judged: Judged
) -> dict[str, Any] | None:
    """A line over its alert threshold, or back under it, for less than the minimum
    duration: when that began and when the alert would be raised (or cleared)."""
    settings = line.alert
    if settings is None:
        return None
    state = db.alarm_state(site.id, line.id)
    if state.phase not in (Phase.RISING, Phase.CLEARING) or state.since is None:
        return None
    threshold = settings.threshold if settings.threshold is not None else judged.baseline
    return {
        "phase": state.phase.value,
        "since": state.since.isoformat(timespec="seconds"),
        "min_duration_s": settings.min_duration,
        "threshold": threshold if state.phase is Phase.RISING else threshold - settings.band,
        "window": settings.window.value,
    }
