"""One series' readings walked in time order, one reading at a time. Pure.

`counters.deltas` turns a whole set of readings into amounts; the accounting gets them a
few at a time, and some late. It keeps, per reading used, the walker's state after it.
A late reading is walked from the state of the reading before it, and the walk can stop
at the first later reading whose state comes out as stored: from there on nothing
changes. The amounts are then those of the whole set walked in time order, whatever the
order the readings arrived in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from collector.accounting.core.counters import (
    CounterSpec,
    Finding,
    Replacement,
    Sample,
    _bridge,
    _Segment,  # the walker deltas uses, here fed one reading at a time
    integrate_power,
)
from collector.accounting.core.series import Amount


@dataclass(frozen=True, slots=True)
class State:
    """After a reading: the last good reading and an out-of-line one not yet judged."""

    good: Sample
    pending: Sample | None = None


@dataclass(frozen=True, slots=True)
class Step:
    sample: Sample
    state: State
    """The state after the sample."""
    amounts: tuple[Amount, ...]
    """Amounts the sample completed (an interval ends at or before it)."""
    findings: tuple[Finding, ...]


class Walker:
    """Feeds readings, in time order and one per time, to a counter (or integrates power).

    `swaps`: the meter's recorded swaps (in the series' unit): a reading at or after one,
    the first after the one before it, starts a new counter, bridged to the old as `deltas`
    does. `before`: the amount that ended at the state's good reading (the rate before a
    hole the next reading may open). A hole (jump, reset, fall) is filled as soon as it is
    found, from the amounts on either side the walk has by then, so that what a reading
    yields does not depend on where a pass started."""

    def __init__(
        self,
        state: State | None,
        spec: CounterSpec,
        max_gap: timedelta | None,
        integrate: bool,
        power_gap: timedelta,
        swaps: Sequence[Replacement] = (),
        before: Sequence[Amount] = (),
    ) -> None:
        self.state = state
        self._integrate = integrate
        self._power_gap = power_gap
        self._spec = spec
        self._max_gap = max_gap
        self._swaps = sorted(swaps, key=lambda x: x.ts)
        self._segment = _Segment(spec, max_gap)
        self._segment.amounts.extend(before)
        if state is not None:
            self._segment.first = self._segment.good = state.good
            self._segment.pending = state.pending

    @property
    def swaps(self) -> Sequence[Replacement]:
        return self._swaps

    def resumed(self, state: State, before: Sequence[Amount]) -> Walker:
        """A walker of the same counter from another state (as a pass starting there)."""
        return Walker(
            state,
            self._spec,
            self._max_gap,
            self._integrate,
            self._power_gap,
            self._swaps,
            before,
        )

    def feed(self, s: Sample) -> Step:
        if self.state is not None:
            last = self.state.pending or self.state.good
            if s.ts <= last.ts:
                raise ValueError(f"reading at {s.ts} is not after the last one fed ({last.ts})")
        step = self._power(s) if self._integrate else self._count(s)
        self.state = step.state
        return step

    def _count(self, s: Sample) -> Step:
        seg = self._segment
        last = None if self.state is None else self.state.pending or self.state.good
        swap = next(
            (x for x in self._swaps if (last is None or last.ts < x.ts) and x.ts <= s.ts), None
        )
        if swap is not None and last is not None:
            old, n_findings = seg, len(seg.findings)
            old.close()
            seg = self._segment = _Segment(self._spec, self._max_gap)
            seg.feed(s)
            amounts: list[Amount] = []
            findings = list(old.findings[n_findings:])
            _bridge(old, seg, swap, self._spec, amounts, findings)
            seg.amounts.extend(amounts)
            assert seg.good is not None
            return Step(s, State(seg.good), tuple(amounts), tuple(findings))
        n_amounts, n_findings = len(seg.amounts), len(seg.findings)
        seg.feed(s)
        for hole in seg.holes:
            seg._fill(hole)
        seg.holes.clear()
        assert seg.good is not None
        return Step(
            s,
            State(seg.good, seg.pending),
            tuple(seg.amounts[n_amounts:]),
            tuple(seg.findings[n_findings:]),
        )

    def _power(self, s: Sample) -> Step:
        if self.state is None:
            return Step(s, State(s), (), ())
        result = integrate_power([self.state.good, s], self._power_gap)
        return Step(s, State(s), result.amounts, result.findings)
