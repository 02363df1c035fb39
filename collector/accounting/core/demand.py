"""Maximum demand as Chinese two-part tariffs bill it. Pure.

Demand is the average power over a 15-minute window; the meter slides the window in
1-minute steps (滑差) and keeps the month's maximum. Input is energy per minute (kWh,
e.g. counter amounts allocated to 1-minute buckets). Only complete windows (every
minute present) that lie wholly inside one local calendar month count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class MonthlyDemand:
    year: int
    month: int
    kw: float
    window_start: datetime
    window_end: datetime
    windows: int
    """Complete windows the maximum was taken over."""
    incomplete: int
    """Windows left out because a minute in them has no energy figure."""


def max_demand(
    minute_kwh: Mapping[datetime, float],
    tz: tzinfo,
    window: timedelta = timedelta(minutes=15),
    slide: timedelta = MINUTE,
) -> list[MonthlyDemand]:
    """The maximum demand (kW) of each local month, from energy per minute.

    minute_kwh is keyed by each minute's start (aware). kW = kWh in the window / hours.
    """
    if window % MINUTE or slide % MINUTE or not window > timedelta(0) < slide:
        raise ValueError("window and slide must be whole, positive minutes")
    n = window // MINUTE
    hours = window.total_seconds() / 3600.0
    best: dict[tuple[int, int], tuple[float, datetime]] = {}
    counts: dict[tuple[int, int], list[int]] = {}
    starts = sorted(minute_kwh)
    if not starts:
        return []
    first, last = starts[0], starts[-1]
    t = first
    while t + window <= last + MINUTE:
        a, b = t.astimezone(tz), (t + window - MINUTE).astimezone(tz)
        if (a.year, a.month) == (b.year, b.month):
            key = (a.year, a.month)
            c = counts.setdefault(key, [0, 0])
            values = [minute_kwh.get(t + i * MINUTE) for i in range(n)]
            if any(v is None for v in values):
                c[1] += 1
            else:
                c[0] += 1
                kw = sum(v for v in values if v is not None) / hours
                if key not in best or kw > best[key][0]:
                    best[key] = (kw, t)
        t += slide
    return [
        MonthlyDemand(y, m, kw, start, start + window, counts[(y, m)][0], counts[(y, m)][1])
        for (y, m), (kw, start) in sorted(best.items())
    ]
