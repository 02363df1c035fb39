"""Interval amounts from cumulative counters (energy, volume, mass). Pure.

A counter only rises, so the amount over an interval is the difference of its readings.
The real world adds: rollover (a register that shows 99999.9 goes to 0.0), a reset to
zero, a meter replaced by one whose counter starts elsewhere, missing readings, readings
that arrive out of order or twice, and single corrupt readings. This module turns a
meter's readings into amounts without creating or losing energy: every reading it does
not use, and every interval whose amount it cannot know, is reported as a `Finding`.

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

from collector.ledger.series import Amount, Quality


@dataclass(frozen=True)
class Sample:
    """One reading of a cumulative counter (kWh, m3, t) at a time."""

    ts: datetime
    value: float


@dataclass(frozen=True)
class CounterSpec:
    """What is known about a counter, for telling rollover, reset and glitch apart.

    modulus: the value at which the counter wraps to zero: 100000.0 for a register whose
        last value is 99999.9. None: the counter does not wrap (float registers).
    max_rate: the most the meter can count per hour (the meter's or circuit's maximum
        power in kW for a kWh counter, maximum flow in m3/h for a gas meter). A rise above
        max_rate x interval is implausible and excluded. None: rises are never doubted,
        and a decrease that is not a rollover counts as a reset only when it reads 0.
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

    def limit(self, start: datetime, end: datetime) -> float:
        """The largest plausible amount between two times."""
        if self.max_rate is None:
            return math.inf
        return self.max_rate * (end - start).total_seconds() / 3600.0


@dataclass(frozen=True)
class Replacement:
    """A meter swap from the maintenance record: readings at or after `ts` are the new
    meter's, whose counter read `new_initial` when fitted. `old_final`, when recorded, is
    the old meter's last reading; without it the energy between the old meter's last
    reading and the swap is not measured (reported)."""

    ts: datetime
    new_initial: float
    old_final: float | None = None


class Issue(StrEnum):
    ROLLOVER = "rollover"
    """The counter wrapped at its modulus; the amount is measured."""
    RESET = "reset"
    """The counter restarted at zero; the amount before the reset is not measured."""
    REPLACEMENT = "replacement"
    """A recorded meter swap, bridged between the two counters."""
    DISCONTINUITY = "discontinuity"
    """The counter fell (not a rollover, not a plausible reset): a new meter or a
    reprogrammed register; the amount over the interval is unknown."""
    JUMP = "jump"
    """The counter rose more than max_rate allows, and stayed there: excluded."""
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


class _Segment:
    """Walks one meter's readings (one physical counter) in time order."""

    def __init__(self, spec: CounterSpec, max_gap: timedelta | None) -> None:
        self.spec = spec
        self.max_gap = max_gap
        self.amounts: list[Amount] = []
        self.findings: list[Finding] = []
        self.first: Sample | None = None
        self.good: Sample | None = None
        self.pending: Sample | None = None

    def _plausible(self, a: Sample, b: Sample) -> tuple[float, bool] | None:
        """The amount from a to b and whether it wrapped, or None when out of line."""
        # Readings are decimal figures held in binary floats (128.3 - 3.3 is
        # 125.00000000000001): a rise exactly at the limit must not read as a jump.
        limit = self.spec.limit(a.ts, b.ts) * (1 + 1e-12) + 1e-9
        rise = b.value - a.value
        if rise >= -self.spec.tolerance:
            rise = max(rise, 0.0)
            return (rise, False) if rise <= limit else None
        modulus = self.spec.modulus
        if modulus is not None:
            wrapped = modulus - a.value + b.value
            bounded = self.spec.max_rate is not None or wrapped < modulus / 2
            if 0 <= wrapped <= limit and bounded:
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
                    f"wrapped at {self.spec.modulus}",
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
        limit = self.spec.limit(good.ts, new.ts)
        if new.value > good.value:
            step = new.value - good.value
            self.findings.append(
                Finding(
                    Issue.JUMP,
                    good.ts,
                    new.ts,
                    good.value,
                    new.value,
                    step,
                    f"rose {step:g} in {new.ts - good.ts}, more than max_rate allows ({limit:g}); "
                    "excluded",
                )
            )
        elif new.value == 0 or (self.spec.max_rate is not None and new.value <= limit):
            # Restarted at zero: what it shows now was counted after the reset.
            self.amounts.append(Amount(good.ts, new.ts, new.value, Quality.LOWER_BOUND))
            self.findings.append(
                Finding(
                    Issue.RESET,
                    good.ts,
                    new.ts,
                    good.value,
                    new.value,
                    0.0,
                    "counter reset to zero; the amount before the reset is not measured",
                )
            )
        else:
            self.findings.append(
                Finding(
                    Issue.DISCONTINUITY,
                    good.ts,
                    new.ts,
                    good.value,
                    new.value,
                    None,
                    "counter fell, not a rollover nor a reset (a new meter?); the amount in "
                    "this interval is unknown: record the swap to bridge it",
                )
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
                        f"reading {p.value} out of line with {self.good.value} before and "
                        f"{s.value} after; not used",
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
    set of readings. Amounts are MEASURED, or LOWER_BOUND after a reset or an unrecorded
    part of a swap; out-of-line readings and unknown intervals are in `findings`.
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
            before += spec.modulus
    if after < 0 or (before is not None and before < 0):
        findings.append(
            Finding(
                Issue.REPLACEMENT,
                last.ts,
                first.ts,
                last.value,
                first.value,
                None,
                f"the swap record ({swap.old_final} -> {swap.new_initial}) does not fit the "
                "readings; not bridged",
            )
        )
        return
    if before is None:
        amounts.append(Amount(last.ts, first.ts, after, Quality.LOWER_BOUND))
        detail = (
            f"new meter from {swap.new_initial}; the old meter's final reading is not "
            "recorded, so the amount between its last reading and the swap is not measured"
        )
    else:
        amounts.append(Amount(last.ts, first.ts, before + after))
        detail = (
            f"old meter {last.value} -> {swap.old_final}, "
            f"new meter {swap.new_initial} -> {first.value}"
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
