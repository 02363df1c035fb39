"""One series' readings walked in time order, one reading at a time. Pure.

`counters.deltas` turns a whole set of readings into amounts; the accounting gets them a
few at a time, and some late. It keeps, per reading used, the walker's state after it.
A late reading is walked from the state of the reading before it, and the walk can stop
at the first later reading whose state comes out as stored: from there on nothing
changes. The amounts are then those of the whole set walked in time order, whatever the
order the readings arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from collector.ledger.counters import (
    CounterSpec,
    Finding,
    Sample,
    _Segment,  # the walker deltas uses, here fed one reading at a time
    integrate_power,
)
from collector.ledger.series import Amount


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
    """Feeds readings, in time order and one per time, to a counter (or integrates power)."""

    def __init__(
        self,
        state: State | None,
        spec: CounterSpec,
        max_gap: timedelta | None,
        integrate: bool,
        power_gap: timedelta,
    ) -> None:
        self.state = state
        self._integrate = integrate
        self._power_gap = power_gap
        self._segment = _Segment(spec, max_gap)
        if state is not None:
            self._segment.first = self._segment.good = state.good
            self._segment.pending = state.pending

    def feed(self, s: Sample) -> Step:
        if self.state is not None:
            last = self.state.pending or self.state.good
            if s.ts <= last.ts:
                raise ValueError(f"reading at {s.ts} is not after the last one fed ({last.ts})")
        if self._integrate:
            step = self._power(s)
        else:
            seg = self._segment
            n_amounts, n_findings = len(seg.amounts), len(seg.findings)
            seg.feed(s)
            assert seg.good is not None
            step = Step(
                s,
                State(seg.good, seg.pending),
                tuple(seg.amounts[n_amounts:]),
                tuple(seg.findings[n_findings:]),
            )
        self.state = step.state
        return step

    def _power(self, s: Sample) -> Step:
        if self.state is None:
            return Step(s, State(s), (), ())
        result = integrate_power([self.state.good, s], self._power_gap)
        return Step(s, State(s), result.amounts, result.findings)
