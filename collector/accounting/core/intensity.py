"""Intensity: energy (kgce) or CO2 (kg) per unit of output, over the usual windows. Pure.

A window whose output is below the configured minimum is marked INSUFFICIENT_OUTPUT and
has no value: a start-up hour with three tonnes of output and a full furnace's energy is
not an intensity. Per 10,000 CNY of value added is computed only for months that have a
value added.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum

from collector.accounting.core.series import Amount, Quality, reaches, total, worst


class Window(StrEnum):
    ROLLING_15MIN = "rolling_15min"
    ROLLING_1H = "rolling_1h"
    SHIFT = "shift"
    TODAY = "today"
    MONTH_TO_DATE = "month_to_date"
    YEAR_TO_DATE = "year_to_date"


@dataclass(frozen=True)
class Shift:
    """A named shift in local time; an end at or before the start crosses midnight."""

    name: str
    start: time
    end: time


class Status(StrEnum):
    OK = "ok"
    INSUFFICIENT_OUTPUT = "insufficient_output"


@dataclass(frozen=True)
class Intensity:
    start: datetime
    end: datetime
    numerator: float
    output: float
    value: float | None
    """numerator / output; None when the status is not OK."""
    status: Status
    quality: Quality | None
    """The worst quality of the amounts behind the numerator (None: no data)."""
    label: str = ""


def current_shift(now: datetime, tz: tzinfo, shifts: Sequence[Shift]) -> tuple[Shift, datetime]:
    """The shift running at `now` and its start (aware, in tz)."""
    local = now.astimezone(tz)
    for shift in shifts:
        for day in (local.date(), local.date() - timedelta(days=1)):
            start = datetime.combine(day, shift.start, tzinfo=tz)
            end_day = day if shift.end > shift.start else day + timedelta(days=1)
            end = datetime.combine(end_day, shift.end, tzinfo=tz)
            if start <= local < end:
                return shift, start
    raise ValueError(f"no shift covers {local.isoformat()}: check the shift configuration")


def window_start(
    window: Window, now: datetime, tz: tzinfo, shifts: Sequence[Shift] = ()
) -> datetime:
    """Where a window that ends at `now` begins (local calendar for days, months, years)."""
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    match window:
        case Window.ROLLING_15MIN:
            return now - timedelta(minutes=15)
        case Window.ROLLING_1H:
            return now - timedelta(hours=1)
        case Window.SHIFT:
            return current_shift(now, tz, shifts)[1]
        case Window.TODAY:
            return midnight
        case Window.MONTH_TO_DATE:
            return midnight.replace(day=1)
        case Window.YEAR_TO_DATE:
            return midnight.replace(month=1, day=1)


def intensity(
    numerator: Iterable[Amount],
    output: Iterable[Amount],
    start: datetime,
    end: datetime,
    min_output: float,
    label: str = "",
) -> Intensity:
    """sum(numerator) / sum(output) over [start, end), amounts pro rata at the edges."""
    if not min_output > 0:
        raise ValueError("min_output must be positive: an intensity needs output")
    nums = list(numerator)
    num = total(nums, start, end)
    out = total(output, start, end)
    ok = reaches(out, min_output)
    return Intensity(
        start,
        end,
        num,
        out,
        num / out if ok else None,
        Status.OK if ok else Status.INSUFFICIENT_OUTPUT,
        worst(nums, start, end),
        label,
    )


def windows(
    numerator: Sequence[Amount],
    output: Sequence[Amount],
    now: datetime,
    tz: tzinfo,
    min_output: Mapping[Window, float],
    shifts: Sequence[Shift] = (),
) -> dict[Window, Intensity]:
    """The intensity over each window in min_output (its minimum output), ending now."""
    return {
        w: intensity(numerator, output, window_start(w, now, tz, shifts), now, m, w.value)
        for w, m in min_output.items()
    }


@dataclass(frozen=True)
class ValueAddedIntensity:
    year: int
    month: int
    numerator: float
    value_added_cny: float
    per_10k_cny: float


def per_value_added(
    numerator: Iterable[Amount],
    value_added_cny: Mapping[tuple[int, int], float],
    tz: tzinfo,
) -> list[ValueAddedIntensity]:
    """Per 10,000 CNY of value added, for each (year, month) that has a positive one."""
    nums = list(numerator)
    out: list[ValueAddedIntensity] = []
    for (year, month), cny in sorted(value_added_cny.items()):
        if not (cny > 0 and math.isfinite(cny)):
            continue
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        num = total(nums, start, end)
        out.append(ValueAddedIntensity(year, month, num, cny, num / (cny / 10_000)))
    return out
