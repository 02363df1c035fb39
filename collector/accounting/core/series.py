"""Amounts over time intervals, and how they are split into aligned buckets. Pure.

An `Amount` is a quantity (kWh, m3, t, kgce, kgCO2, units of output) attributed to the
half-open interval [start, end). Splitting an amount over buckets is pro rata by time,
so a total is never changed by bucketing: energy is neither created nor lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

import numpy as np
import numpy.typing as npt

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Quality(IntEnum):
    """How an amount is known, best first; a bucket has the worst of what it holds."""

    MEASURED = 0
    """A counter's difference over exactly this interval."""
    APPORTIONED = 1
    """Measured over a longer interval (a gap in the readings) and split pro rata by time."""
    LOWER_BOUND = 2
    """Measured, but part of the interval is not (a counter reset or a meter swap)."""
    ESTIMATED = 3
    """Not from a counter: integrated from power readings, or configured."""


@dataclass(frozen=True)
class Amount:
    start: datetime
    end: datetime
    value: float
    quality: Quality = Quality.MEASURED

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("amount times must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"empty or reversed interval {self.start} .. {self.end}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def share(self, start: datetime, end: datetime) -> float:
        """The part of the value that falls in [start, end), pro rata by time."""
        lo, hi = max(self.start, start), min(self.end, end)
        if hi <= lo:
            return 0.0
        if lo == self.start and hi == self.end:
            return self.value
        return self.value * (hi - lo).total_seconds() / self.seconds


@dataclass(frozen=True)
class Bucket:
    """The amounts that fall in one aligned interval."""

    start: datetime
    end: datetime
    value: float
    quality: Quality
    covered: float
    """Fraction of the bucket's time that amounts cover (1.0 = no gap)."""


def floor_time(ts: datetime, step: timedelta, origin: datetime = EPOCH) -> datetime:
    """The start of the step-aligned bucket that holds ts (aligned on origin)."""
    n = (ts - origin) // step
    return origin + n * step


def allocate(amounts: Iterable[Amount], step: timedelta, origin: datetime = EPOCH) -> list[Bucket]:
    """Split amounts into buckets of `step` aligned on `origin`, pro rata by time.

    Only buckets that some amount touches are returned, in time order. A bucket that holds
    a share of an amount longer than `step` is at best APPORTIONED.
    Use an origin at a local midnight (e.g. 2024-01-01T00:00+08:00) for local days.
    """
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    values: dict[datetime, float] = {}
    quality: dict[datetime, Quality] = {}
    covered: dict[datetime, float] = {}
    for amount in amounts:
        apportioned = amount.end - amount.start > step
        own = max(amount.quality, Quality.APPORTIONED) if apportioned else amount.quality
        b = floor_time(amount.start, step, origin)
        while b < amount.end:
            e = b + step
            values[b] = values.get(b, 0.0) + amount.share(b, e)
            quality[b] = max(quality.get(b, Quality.MEASURED), own)
            overlap = (min(e, amount.end) - max(b, amount.start)).total_seconds()
            covered[b] = covered.get(b, 0.0) + overlap / step.total_seconds()
            b = e
    return [
        Bucket(b, b + step, values[b], quality[b], min(covered[b], 1.0)) for b in sorted(values)
    ]


MsAmount = tuple[int, int, float, int]
"""An amount as (start, end, value, quality), times in epoch ms: what a long walk keeps
(an `Amount` a reading costs datetimes and validation the walk's own arithmetic does not need)."""


def allocate_ms(amounts: Iterable[MsAmount], step_ms: int) -> list[tuple[int, float, int]]:
    """`allocate` over epoch-aligned buckets for amounts in whole ms: (bucket start, value,
    quality), the same floats `allocate` gives (a share is value x overlap / length, both
    in seconds, which whole ms give exactly as timedeltas do)."""
    if step_ms <= 0:
        raise ValueError("step must be positive")
    values: dict[int, float] = {}
    quality: dict[int, int] = {}
    for start, end, value, q in amounts:
        b = start - start % step_ms
        if end <= b + step_ms:  # within one bucket (a reading a minute or more often)
            values[b] = values.get(b, 0.0) + value
            held = quality.get(b, Quality.MEASURED)
            quality[b] = q if q > held else held
            continue
        own = max(q, Quality.APPORTIONED) if end - start > step_ms else q
        while b < end:
            e = b + step_ms
            lo, hi = max(start, b), min(end, e)
            if hi <= lo:
                share = 0.0
            elif lo == start and hi == end:
                share = value
            else:
                share = value * ((hi - lo) / 1000) / ((end - start) / 1000)
            values[b] = values.get(b, 0.0) + share
            quality[b] = max(quality.get(b, Quality.MEASURED), own)
            b = e
    return [(b, values[b], int(quality[b])) for b in sorted(values)]


@dataclass(frozen=True, slots=True)
class MsAmounts:
    """Amounts as arrays, in time order: starts and ends in epoch ms, values, qualities."""

    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.int64]

    @classmethod
    def of(cls, amounts: Iterable[MsAmount]) -> MsAmounts:
        rows = list(amounts)
        if not rows:
            empty = np.empty(0, np.int64)
            return cls(empty, empty, np.empty(0), empty)
        start, end, value, quality = zip(*rows, strict=True)
        return cls(
            np.array(start, np.int64),
            np.array(end, np.int64),
            np.array(value, np.float64),
            np.array(quality, np.int64),
        )


@dataclass(frozen=True, slots=True)
class Buckets:
    """Bucket starts (epoch ms, ascending), values and worst qualities."""

    start: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.int64]


def allocate_arrays(amounts: MsAmounts, step_ms: int) -> Buckets:
    """`allocate_ms` over arrays (a month of readings at once): the same buckets and the
    same floats. Each amount's shares are added to its buckets in the order `allocate_ms`
    adds them (amount by amount, np.bincount adds in input order), so each sum is made of
    the same additions in the same order."""
    if step_ms <= 0:
        raise ValueError("step must be positive")
    start, end, value, q = amounts.start, amounts.end, amounts.value, amounts.quality
    first = start - start % step_ms
    # pieces per amount: its buckets from the one it starts in while the bucket starts
    # before its end (one piece when it lies within one bucket)
    pieces = np.where(end <= first + step_ms, 1, (end - first + step_ms - 1) // step_ms)
    owner = np.repeat(np.arange(len(start)), pieces)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    bucket = first[owner] + offset * step_ms
    s, e, v = start[owner], end[owner], value[owner]
    lo, hi = np.maximum(s, bucket), np.minimum(e, bucket + step_ms)
    single = (pieces == 1)[owner]
    whole = single | ((lo == s) & (hi == e))
    with np.errstate(invalid="ignore", divide="ignore"):
        part = v * ((hi - lo) / 1000) / ((e - s) / 1000)
    share = np.where(whole, v, np.where(hi <= lo, 0.0, part))
    split = (pieces > 1) & (end - start > step_ms)
    own = np.where(split, np.maximum(q, int(Quality.APPORTIONED)), q)[owner]
    starts, at = _unique(bucket)
    worst = np.zeros(len(starts), np.int64)
    np.maximum.at(worst, at, own)
    values = np.bincount(at, weights=share, minlength=len(starts)).astype(np.float64, copy=False)
    return Buckets(starts, values, worst)


def _unique(values: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """np.unique with the inverse, without a sort when the values come in order (a walk's
    buckets nearly always do)."""
    step = np.diff(values)
    if len(values) and (step >= 0).all():
        new = np.concatenate(([True], step > 0))
        return values[new], np.cumsum(new) - 1
    starts, at = np.unique(values, return_inverse=True)
    return starts, at


def total(amounts: Iterable[Amount], start: datetime, end: datetime) -> float:
    """The sum of amounts over [start, end), pro rata for amounts that straddle its ends."""
    return sum(a.share(start, end) for a in amounts)


def worst(amounts: Iterable[Amount], start: datetime, end: datetime) -> Quality | None:
    """The worst quality among amounts that overlap [start, end); None when none do."""
    qualities = [a.quality for a in amounts if a.start < end and a.end > start]
    return max(qualities) if qualities else None


# Amounts shared out pro rata over minutes sum back with float error (0.40745 + 0.59255
# gives 0.9999999999999999): a minimum is met within this relative tolerance, or one
# piece of output reported for two minutes would read as "insufficient output".
_SUM_TOLERANCE = 1e-9


def reaches(amount: float, minimum: float) -> bool:
    """Whether a summed amount reaches `minimum`, the float error of the sum forgiven."""
    return amount >= minimum * (1 - _SUM_TOLERANCE)
