"""Interval amounts from cumulative counters (energy, volume, mass). Pure.

A counter only rises, so the amount over an interval is the difference of its readings.
The real world adds: rollover (a register that shows 99999.9 goes to 0.0), a reset to
zero, a meter replaced by one whose counter starts elsewhere, missing readings, readings
that arrive out of order or twice, and single corrupt readings. This module turns a
meter's readings into amounts without creating or losing energy: every reading it does
not use, every amount it excludes or estimates, and every interval whose amount it
cannot know, is reported as a `Finding` with the amount and the reason.

Power integration (trapezoid) is the fallback where a meter has no counter; its amounts
are ESTIMATED.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Final

from collector.accounting.core.series import Amount, Quality


@dataclass(frozen=True)
class Sample:
    """One reading of a cumulative counter (kWh, m3, t) at a time."""

    ts: datetime
    value: float


MODULUS_NEEDS_RATE: Final = (
    "a counter with a modulus needs max_rate (the most it can count per hour): without it "
    "a zero read or a meter swap is taken for a rollover worth most of a turn"
)


@dataclass(frozen=True)
class CounterSpec:
    """What is known about a counter, for telling rollover, reset and glitch apart.

    modulus: the value at which the counter wraps to zero: 100000.0 for a register whose
        last value is 99999.9. None: the counter does not wrap (float registers). Needs
        max_rate: a fall is a rollover only when the rise through the wrap fits what the
        meter can count in the interval, and without a rate any zero read or meter swap
        would pass for a wrap worth most of a turn (energy created from nothing).
    max_rate: the most the meter can count per hour (the meter's or circuit's maximum
        power in kW for a kWh counter, maximum flow in m3/h for a gas meter). A rise above
        max_rate x interval is implausible and excluded. None: rises are never doubted,
        and a decrease counts as a reset only when it reads 0.
    tolerance: decreases up to this much are read as no change (jitter of a re-scaled
        register), never as a reset.
    """

    modulus: float | None = None
    max_rate: float | None = None
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.modulus is not None and not self.modulus > 0:
            raise ValueError("modulus must be positive")
        if self.max_rate is not None and not self.max_rate > 0:
            raise ValueError("max_rate must be positive")
        if self.tolerance < 0:
            raise ValueError("tolerance must not be negative")
        if self.modulus is not None and self.max_rate is None:
            raise ValueError(MODULUS_NEEDS_RATE)

    def limit(self, start: datetime, end: datetime) -> float:
        """The largest plausible amount between two times."""
        if self.max_rate is None:
            return math.inf
        return self.max_rate * (end - start).total_seconds() / 3600.0

    def fits(self, amount: float, start: datetime, end: datetime) -> bool:
        """0 <= amount <= limit; readings are decimal figures held in binary floats
        (128.3 - 3.3 is 125.00000000000001): an amount exactly at the limit fits."""
        return self.fits_seconds(amount, (end - start).total_seconds())

    def fits_seconds(self, amount: float, seconds: float) -> bool:
        """`fits` over an interval of this many seconds."""
        if self.max_rate is None:
            return amount >= 0.0
        return 0.0 <= amount <= self.max_rate * seconds / 3600.0 * (1 + 1e-12) + 1e-9


@dataclass(frozen=True)
class Replacement:
    """A meter swap or counter reset from the maintenance record: readings at or after
    `ts` are the new counter's, which read `new_initial` when fitted. `old_final`, when
    recorded, is the old counter's last reading; without it the energy between the old
    counter's last reading and the swap is not measured (reported). `by`: who recorded it."""

    ts: datetime
    new_initial: float
    old_final: float | None = None
    by: str = ""

    def __post_init__(self) -> None:
        for name, value in (("new_initial", self.new_initial), ("old_final", self.old_final)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite reading, not negative: {value}")


class Issue(StrEnum):
    ROLLOVER = "rollover"
    """The counter wrapped at its modulus; the amount is measured."""
    RESET = "reset"
    """The counter restarted at zero; the amount before the reset is not measured: the
    interval's use is estimated from the neighbouring rates, at least what it shows."""
    REPLACEMENT = "replacement"
    """A recorded meter swap, bridged between the two counters."""
    DISCONTINUITY = "discontinuity"
    """The counter fell (not a rollover, not a plausible reset): a new meter or a
    reprogrammed register; the interval's use is estimated from the neighbouring rates
    (unknown without them)."""
    JUMP = "jump"
    """The counter rose more than max_rate allows, and stayed there: the step is
    excluded, the interval's use estimated from the neighbouring rates."""
    GLITCH = "glitch"
    """A single reading out of line with both neighbours: not used, nothing lost."""
    CONFLICT = "conflict"
    """Two different readings with the same time: the lower one is used."""
    UNRESOLVED = "unresolved"
    """The last reading is out of line and nothing follows it yet: not used for now."""
    GAP = "gap"
    """Readings further apart than expected; the amount is measured, its timing is not."""
    NOT_INTEGRATED = "not_integrated"
    """Power readings too far apart to integrate across: no estimate for the interval."""


@dataclass(frozen=True)
class Finding:
    issue: Issue
    start: datetime
    end: datetime
    before: float
    after: float
    excluded: float | None
    """An amount left out of the totals (a jump), 0.0 when nothing was, None if unknown."""
    detail: str
    estimate: float | None = None
    """The amount put in the totals for the interval, marked ESTIMATED, in place of one
    the counter cannot tell (a jump, a fall, a reset); None: no estimate."""


@dataclass(frozen=True)
class CounterResult:
    amounts: tuple[Amount, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def total(self) -> float:
        return math.fsum(a.value for a in self.amounts)

    @property
    def excluded(self) -> float:
        """What was left out of the totals and is known (implausible jumps)."""
        return math.fsum(f.excluded for f in self.findings if f.excluded)

    @property
    def unknown(self) -> tuple[Finding, ...]:
        """Findings over intervals whose amount is not known at all."""
        return tuple(f for f in self.findings if f.excluded is None)


def _order(samples: Iterable[Sample], findings: list[Finding]) -> list[Sample]:
    """Sorted by time; exact repeats dropped; of conflicting readings the lowest kept."""
    out: list[Sample] = []
    for s in sorted(samples, key=lambda s: (s.ts, s.value)):
        if not math.isfinite(s.value):
            raise ValueError(f"counter reading at {s.ts} is not a finite number")
        if out and out[-1].ts == s.ts:
            if out[-1].value != s.value:
                findings.append(
                    Finding(
                        Issue.CONFLICT,
                        s.ts,
                        s.ts,
                        out[-1].value,
                        s.value,
                        0.0,
                        f"two readings at {s.ts.isoformat()}: {out[-1].value} kept, "
                        f"{s.value} not used",
                    )
                )
            continue
        out.append(s)
    return out


@dataclass(frozen=True)
class _Hole:
    """An interval whose amount the counter cannot tell: it changed level (JUMP,
    DISCONTINUITY, RESET) between `a` and `b`."""

    issue: Issue
    a: Sample
    b: Sample


class _Segment:
    """Walks one meter's readings (one physical counter) in time order."""

    def __init__(self, spec: CounterSpec, max_gap: timedelta | None) -> None:
        self.spec = spec
        self.max_gap = max_gap
        self.amounts: list[Amount] = []
        self.findings: list[Finding] = []
        self.holes: list[_Hole] = []
        self.first: Sample | None = None
        self.good: Sample | None = None
        self.pending: Sample | None = None

    def _plausible(self, a: Sample, b: Sample) -> tuple[float, bool] | None:
        """The amount from a to b and whether it wrapped, or None when out of line."""
        rise = b.value - a.value
        if rise >= -self.spec.tolerance:
            rise = max(rise, 0.0)
            return (rise, False) if self.spec.fits(rise, a.ts, b.ts) else None
        modulus = self.spec.modulus
        if modulus is not None:
            # A fall is a wrap only when the rise through it is what the meter can count
            # in the interval (a CounterSpec with a modulus always has max_rate).
            wrapped = modulus - a.value + b.value
            if self.spec.fits(wrapped, a.ts, b.ts):
                return wrapped, True
        return None

    def _emit(self, a: Sample, b: Sample, amount: float, wrapped: bool) -> None:
        self.amounts.append(Amount(a.ts, b.ts, amount))
        if wrapped:
            self.findings.append(
                Finding(
                    Issue.ROLLOVER,
                    a.ts,
                    b.ts,
                    a.value,
                    b.value,
                    0.0,
                    f"wrapped at {self.spec.modulus:g}",
                )
            )
        if self.max_gap is not None and b.ts - a.ts > self.max_gap:
            self.findings.append(
                Finding(
                    Issue.GAP,
                    a.ts,
                    b.ts,
                    a.value,
                    b.value,
                    0.0,
                    f"no reading for {b.ts - a.ts}; the amount is measured, its timing apportioned",
                )
            )

    def _step(self, good: Sample, new: Sample) -> None:
        """The counter moved from good to a new level and stayed there."""
        if new.value > good.value:
            issue = Issue.JUMP
        elif new.value == 0 or (
            self.spec.max_rate is not None and self.spec.fits(new.value, good.ts, new.ts)
        ):
            issue = Issue.RESET
        else:
            issue = Issue.DISCONTINUITY
        self.holes.append(_Hole(issue, good, new))

    def _neighbour_rate(self, hole: _Hole) -> tuple[float | None, str]:
        """The mean rate (per hour) of the measured intervals just before and just after
        a hole, and which of them it comes from."""
        rates: list[float] = []
        names: list[str] = []
        for amount, name in (
            (next((x for x in self.amounts if x.end == hole.a.ts), None), "before"),
            (next((x for x in self.amounts if x.start == hole.b.ts), None), "after"),
        ):
            if amount is not None and amount.quality is Quality.MEASURED:
                rates.append(amount.value / ((amount.end - amount.start).total_seconds() / 3600))
                names.append(name)
        if not rates:
            return None, "no measured interval next to it"
        return math.fsum(rates) / len(rates), "the rate " + " and ".join(names)

    def _fill(self, hole: _Hole) -> None:
        """The interval's use from the neighbouring rates (marked ESTIMATED), and the
        finding saying what was excluded and estimated, and why."""
        a, b = hole.a, hole.b
        rate, basis = self._neighbour_rate(hole)
        hours = (b.ts - a.ts).total_seconds() / 3600
        # each neighbour's rate is within max_rate, so is their mean: the estimate fits
        estimate = None if rate is None else rate * hours
        span = f"{a.ts.isoformat()} .. {b.ts.isoformat()}"
        if hole.issue is Issue.JUMP:
            step = b.value - a.value
            limit = self.spec.limit(a.ts, b.ts)
            use = estimate if estimate is not None else 0.0
            excluded: float | None = step - use
            detail = (
                f"rose {step:g} in {b.ts - a.ts}, more than max_rate allows ({limit:g}): "
                f"{step - use:g} excluded as a jump"
            )
        elif hole.issue is Issue.RESET:
            # what it shows now was counted after the reset: at least that much
            if estimate is None or estimate < b.value:
                self.amounts.append(Amount(a.ts, b.ts, b.value, Quality.LOWER_BOUND))
                estimate = None
            excluded = 0.0
            detail = (
                f"counter reset ({a.value:g} -> {b.value:g}): the amount before the reset "
                f"is not measured; at least {b.value:g}"
            )
        else:
            excluded = 0.0 if estimate is not None else None
            detail = (
                f"counter fell {a.value:g} -> {b.value:g}, not a rollover nor a reset (a new "
                "meter?): record the swap (energy-collector swap) to bridge it"
            )
        if estimate is not None:
            self.amounts.append(Amount(a.ts, b.ts, estimate, Quality.ESTIMATED))
            detail += f"; use over {span} estimated at {estimate:g} from {basis}"
        elif hole.issue is not Issue.RESET:
            detail += f"; use over {span} not estimated ({basis})"
        self.findings.append(
            Finding(hole.issue, a.ts, b.ts, a.value, b.value, excluded, detail, estimate)
        )

    def feed(self, s: Sample) -> None:
        if self.good is None:
            self.first = self.good = s
            return
        if self.pending is not None:
            found = self._plausible(self.good, s)
            if found is not None:
                p = self.pending
                self.findings.append(
                    Finding(
                        Issue.GLITCH,
                        p.ts,
                        p.ts,
                        self.good.value,
                        p.value,
                        0.0,
                        f"reading {p.value:g} out of line with {self.good.value:g} before and "
                        f"{s.value:g} after; not used",
                    )
                )
                self.pending = None
                self._emit(self.good, s, *found)
                self._advance(s, found[1])
                return
            self._step(self.good, self.pending)
            self.good, self.pending = self.pending, None
        found = self._plausible(self.good, s)
        if found is None:
            self.pending = s
        else:
            self._emit(self.good, s, *found)
            self._advance(s, found[1])

    def _advance(self, s: Sample, wrapped: bool) -> None:
        assert self.good is not None
        if not wrapped and s.value < self.good.value:
            # jitter within tolerance: keep the higher level so nothing is counted twice
            self.good = Sample(s.ts, self.good.value)
        else:
            self.good = s

    def close(self) -> None:
        # after the walk, so that a hole sees the measured interval on either side of it
        for hole in self.holes:
            self._fill(hole)
        if self.pending is not None and self.good is not None:
            p = self.pending
            self.findings.append(
                Finding(
                    Issue.UNRESOLVED,
                    self.good.ts,
                    p.ts,
                    self.good.value,
                    p.value,
                    None,
                    "last reading out of line with the one before; used once a later reading "
                    "tells a glitch from a step",
                )
            )


def deltas(
    samples: Iterable[Sample],
    spec: CounterSpec | None = None,
    replacements: Sequence[Replacement] = (),
    max_gap: timedelta | None = None,
) -> CounterResult:
    """The amounts a counter measured between consecutive readings.

    Readings may come in any order and more than once: the result depends only on the
    set of readings. Amounts are MEASURED; ESTIMATED over an interval where the counter
    changed level (jump, fall, reset: from the neighbouring rates); LOWER_BOUND after a
    reset without neighbours or an unrecorded part of a swap. No amount is above what
    max_rate allows over its interval. Out-of-line readings, exclusions, estimates and
    unknown intervals are in `findings`.
    `max_gap`: readings further apart are reported (GAP) but still measured.
    """
    spec = spec or CounterSpec()
    findings: list[Finding] = []
    ordered = _order(samples, findings)
    swaps = sorted(replacements, key=lambda r: r.ts)
    segments: list[_Segment] = []
    i = 0
    for k in range(len(swaps) + 1):
        seg = _Segment(spec, max_gap)
        until = swaps[k].ts if k < len(swaps) else None
        while i < len(ordered) and (until is None or ordered[i].ts < until):
            seg.feed(ordered[i])
            i += 1
        seg.close()
        segments.append(seg)
    amounts: list[Amount] = []
    for k, seg in enumerate(segments):
        amounts.extend(seg.amounts)
        findings.extend(seg.findings)
        if k + 1 < len(segments):
            _bridge(seg, segments[k + 1], swaps[k], spec, amounts, findings)
    amounts.sort(key=lambda a: (a.start, a.end))
    findings.sort(key=lambda f: (f.start, f.end, f.issue.value))
    return CounterResult(tuple(amounts), tuple(findings))


def _bridge(
    old: _Segment,
    new: _Segment,
    swap: Replacement,
    spec: CounterSpec,
    amounts: list[Amount],
    findings: list[Finding],
) -> None:
    """Join the last reading of the old meter and the first of the new across a swap."""
    last, first = old.good, new.first
    if last is None or first is None:
        findings.append(
            Finding(
                Issue.REPLACEMENT,
                swap.ts,
                swap.ts,
                swap.old_final if swap.old_final is not None else math.nan,
                swap.new_initial,
                None,
                "meter swap without readings on both sides; not bridged",
            )
        )
        return
    after = first.value - swap.new_initial
    before: float | None = None
    if swap.old_final is not None:
        before = swap.old_final - last.value
        if before < 0 and spec.modulus is not None:
            before += spec.modulus  # the old register wrapped before it was taken out
    bridged = after + (before or 0.0)
    who = f" (recorded by {swap.by})" if swap.by else ""
    if (
        after < 0
        or (before is not None and before < 0)
        or not spec.fits(bridged, last.ts, first.ts)
    ):
        findings.append(
            Finding(
                Issue.REPLACEMENT,
                last.ts,
                first.ts,
                last.value,
                first.value,
                None,
                f"the swap record at {swap.ts.isoformat()}{who} (old meter's final reading "
                f"{swap.old_final}, new meter's first {swap.new_initial:g}) does not fit the "
                f"readings {last.value:g} before and {first.value:g} after"
                + ("" if spec.max_rate is None else f" at up to {spec.max_rate:g} per hour")
                + "; not bridged",
            )
        )
        return
    if before is None:
        amounts.append(Amount(last.ts, first.ts, after, Quality.LOWER_BOUND))
        detail = (
            f"new meter from {swap.new_initial:g}{who}: {after:g}; the old meter's final reading "
            "is not recorded, so the amount between its last reading and the swap is not measured"
        )
    else:
        amounts.append(Amount(last.ts, first.ts, bridged))
        detail = (
            f"meter swap{who}: old meter {last.value:g} -> {swap.old_final:g}, "
            f"new meter {swap.new_initial:g} -> {first.value:g}: {bridged:g}"
        )
    findings.append(
        Finding(Issue.REPLACEMENT, last.ts, first.ts, last.value, first.value, 0.0, detail)
    )


def integrate_power(
    samples: Iterable[Sample], max_gap: timedelta, scale: float = 1.0 / 1000.0
) -> CounterResult:
    """Energy by the trapezoid rule from instantaneous power, for a meter without counter.

    Power in W with the default scale gives kWh (x 1/1000 kW/W x hours). Amounts are
    ESTIMATED; readings further apart than max_gap are not integrated across (reported).
    """
    findings: list[Finding] = []
    ordered = _order(samples, findings)
    amounts: list[Amount] = []
    for a, b in pairwise(ordered):
        if b.ts - a.ts > max_gap:
            findings.append(
                Finding(
                    Issue.NOT_INTEGRATED,
                    a.ts,
                    b.ts,
                    a.value,
                    b.value,
                    None,
                    f"power readings {b.ts - a.ts} apart (more than {max_gap}): no estimate",
                )
            )
            continue
        hours = (b.ts - a.ts).total_seconds() / 3600.0
        amounts.append(
            Amount(a.ts, b.ts, (a.value + b.value) / 2.0 * hours * scale, Quality.ESTIMATED)
        )
    return CounterResult(tuple(amounts), tuple(findings))
