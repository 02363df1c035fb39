"""The periods a report covers: a site's month and its local days, in the site's zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from collector.plant import SiteConfig


class ReportError(ValueError):
    """The report cannot be made (unknown site, bad month)."""


def month_bounds(month: str, site: SiteConfig) -> tuple[datetime, datetime]:
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=site.tz)
        # in the try: the month after 9999-12 is past the calendar
        end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=site.tz)
    except ValueError as exc:
        raise ReportError(f"month {month!r}: give YYYY-MM") from exc
    return start, end


def local_days(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The local days of [start, end) (midnights in the zone of `start`): a day is 23 or
    25 hours long where the clocks change."""
    day = start
    while day < end:
        # +26 h then back to midnight lands on the next local day whatever its length.
        nxt = (day + timedelta(days=1, hours=2)).replace(hour=0)
        yield day, min(nxt, end)
        day = nxt


def site_unit(site: SiteConfig) -> str | None:
    """The one output unit of the site's lines, if they share one."""
    units = {x.output_unit for x in site.lines}
    return units.pop() if len(units) == 1 else None
