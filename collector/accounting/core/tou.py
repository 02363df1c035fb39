"""Energy split by a time-of-use calendar, and its cost. Pure.

A calendar has seasons (months of the year) and, for each, the periods of the local day
(peak, flat, valley, ...). Energy amounts are split pro rata by time at every period
boundary and at midnight, so an amount across midnight or across a season change goes
to the right periods. Prices are per season and period, in CNY/kWh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from enum import StrEnum

from collector.accounting.core.series import Amount, reaches

DAY_MINUTES = 24 * 60


class Period(StrEnum):
    CRITICAL_PEAK = "critical_peak"
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"
    DEEP_VALLEY = "deep_valley"


@dataclass(frozen=True)
class Season:
    """Periods of the local day for some months: spans of (start minute, end minute)."""

    name: str
    months: frozenset[int]
    spans: tuple[tuple[int, int, Period], ...]

    def __post_init__(self) -> None:
        edge = 0
        for start, end, _ in sorted(self.spans):
            if start != edge or end <= start:
                raise ValueError(f"season {self.name}: periods must cover the day once")
            edge = end
        if edge != DAY_MINUTES:
            raise ValueError(f"season {self.name}: periods must cover the whole day")
        if not self.months or not self.months <= set(range(1, 13)):
            raise ValueError(f"season {self.name}: months must be within 1..12")

    @classmethod
    def from_hours(
        cls, name: str, months: Iterable[int], hours: Mapping[Period, Iterable[int]]
    ) -> Season:
        """A season given as hour-start indices per period (0..23)."""
        by_hour: dict[int, Period] = {}
        for period, hs in hours.items():
            for h in hs:
                if h in by_hour or not 0 <= h < 24:
                    raise ValueError(f"season {name}: hour {h} given twice or out of range")
                by_hour[h] = period
        if sorted(by_hour) != list(range(24)):
            raise ValueError(
                f"season {name}: hours missing: {sorted(set(range(24)) - set(by_hour))}"
            )
        spans: list[tuple[int, int, Period]] = []
        for h in range(24):
            if spans and spans[-1][2] is by_hour[h]:
                spans[-1] = (spans[-1][0], (h + 1) * 60, by_hour[h])
            else:
                spans.append((h * 60, (h + 1) * 60, by_hour[h]))
        return cls(name, frozenset(months), tuple(spans))

    def at(self, minute: float) -> tuple[Period, int]:
        """The period at a minute of the day, and the minute it ends."""
        for start, end, period in self.spans:
            if start <= minute < end:
                return period, end
        raise AssertionError("validated seasons cover the day")


@dataclass(frozen=True)
class TouCalendar:
    seasons: tuple[Season, ...]
    prices: Mapping[tuple[str, Period], float]
    """CNY/kWh by (season name, period)."""

    def __post_init__(self) -> None:
        months = sorted(m for s in self.seasons for m in s.months)
        if months != list(range(1, 13)):
            raise ValueError("seasons must cover each month exactly once")
        for s in self.seasons:
            for _, _, period in s.spans:
                if (s.name, period) not in self.prices:
                    raise ValueError(f"no price for {period} in season {s.name}")

    def season(self, month: int) -> Season:
        return next(s for s in self.seasons if month in s.months)


@dataclass(frozen=True)
class TouLine:
    season: str
    period: Period
    kwh: float
    price: float
    cny: float


@dataclass(frozen=True)
class TouCost:
    lines: tuple[TouLine, ...]

    @property
    def kwh(self) -> float:
        return sum(line.kwh for line in self.lines)

    @property
    def cny(self) -> float:
        return sum(line.cny for line in self.lines)

    def kwh_in(self, period: Period) -> float:
        return sum(line.kwh for line in self.lines if line.period is period)

    def per_unit(self, output: float, min_output: float) -> float | None:
        """Cost per unit of output; None when output is below min_output."""
        return self.cny / output if min_output > 0 and reaches(output, min_output) else None


def split(amounts: Iterable[Amount], calendar: TouCalendar, tz: tzinfo) -> TouCost:
    """Energy amounts (kWh) by season and period, priced."""
    kwh: dict[tuple[str, Period], float] = {}
    for a in amounts:
        cursor = a.start
        while cursor < a.end:
            local = cursor.astimezone(tz)
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            minute = (local - midnight).total_seconds() / 60.0
            season = calendar.season(local.month)
            period, end_minute = season.at(minute)
            boundary = min(a.end, midnight + timedelta(minutes=end_minute))
            key = (season.name, period)
            kwh[key] = kwh.get(key, 0.0) + a.share(cursor, boundary)
            cursor = boundary
    lines = tuple(
        TouLine(s, p, v, calendar.prices[(s, p)], v * calendar.prices[(s, p)])
        for (s, p), v in sorted(kwh.items())
    )
    return TouCost(lines)


def seasons_from_hours(
    spec: Mapping[str, tuple[Sequence[int], Mapping[Period, Sequence[int]]]],
) -> tuple[Season, ...]:
    """Seasons from {name: (months, {period: hour-start indices})}."""
    return tuple(Season.from_hours(name, months, hours) for name, (months, hours) in spec.items())
