"""One accounting pass over the stored readings of one series (`account`): the counter walk
from the stored state before the first changed reading, the minutes it touches replaced
(never added to), the walk's state stored with each reading; it stops where a stored
state comes out the same. The same function serves live passes, late readings, recompute
and recorded swaps.
"""

from __future__ import annotations

import bisect
import logging
import math
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from collector.accounting.core.counters import CounterSpec, Finding, Issue, Sample
from collector.accounting.core.series import Amount, MsAmount, Quality, allocate_ms
from collector.accounting.core.walk import State, Walker
from collector.accounting.db import (
    AccountingDB,
    FindingRow,
    MinuteRow,
    ReadingRow,
    from_ms,
    ms,
    reading_row,
    state_of,
)
from collector.accounting.targets import Target, scaled
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

MINUTE_MS: Final = 60_000


END_OF_TIME: Final = 2**62


"""Epoch ms after every reading."""


MAX_GAP: Final = timedelta(minutes=5)


"""Counter readings further apart are reported as a gap (still measured)."""


MAX_GAP_MS: Final = 300_000


POWER_MAX_GAP: Final = timedelta(minutes=2)


"""Power readings further apart are not integrated across."""


@dataclass(frozen=True, slots=True)
class Span:
    """The minutes [first, end) (epoch ms) of one series, computed again and replaced."""

    site: str
    series: str
    first: int
    end: int
    late: int
    """Readings that arrived before the last one used (0: in order)."""
    changed: int
    """Minutes whose figures changed (or went)."""


RECORDED: Final = (
    Issue.GLITCH,
    Issue.CONFLICT,
    Issue.JUMP,
    Issue.RESET,
    Issue.DISCONTINUITY,
    Issue.REPLACEMENT,
)


"""Findings kept in the accounting database for the report: every reading not used,
amount excluded or estimated, and every swap bridged."""


class _Tail:
    """The stored readings a pass needs around where its walk starts, taken from the last
    two a series keeps when they are the ones (an in-order pass asks once, not five times)."""

    def __init__(self, conn: sqlite3.Connection, site: str, series: str) -> None:
        self._conn, self._site, self._series = conn, site, series
        self.rows = AccountingDB.last_readings(conn, site, series, END_OF_TIME, 2)

    @property
    def latest(self) -> ReadingRow | None:
        return self.rows[0] if self.rows else None

    def before(self, t: int) -> ReadingRow | None:
        """The last reading before t."""
        rows = self.rows
        if not rows:
            return None
        if rows[0][0] < t:
            return rows[0]
        if len(rows) == 1:
            return None  # the only reading is at or after t
        if rows[1][0] < t:
            return rows[1]
        return AccountingDB.reading_before(self._conn, self._site, self._series, t)


def _before(tail: _Tail, start: ReadingRow, walker: Walker) -> list[Amount]:
    """The amount that ended at a stored state's good reading (the rate before a hole the
    next reading may open), as a walk through that reading would have it."""
    good_ms = start[2]
    prev = tail.before(good_ms)
    at = tail.before(good_ms + 1)
    if prev is None or at is None or at[0] != good_ms:
        return []
    good = state_of(start).good
    step = walker.resumed(state_of(prev), ()).feed(Sample(good.ts, at[1]))
    return [a for a in step.amounts if a.end == good.ts]


def account(
    conn: sqlite3.Connection,
    site: str,
    target: Target,
    new: Sequence[Sample],
    since: int | None = None,
    through: int | None = None,
) -> Span | None:
    """Add readings to a series' stored ones and replace the minutes they change.

    Of two readings at one time the lower is kept, as `deltas` does; one already stored
    changes nothing (a re-delivery). The readings from the earliest new one (or `since`)
    are walked from the state before it, up to the first stored reading, at or after
    `through`, whose state comes out as stored: from there on every state and amount is
    as stored. The minutes the walked amounts touch are then split again from every
    amount that overlaps them, in time order, and replaced: each minute is a function of
    the stored readings, not of the order they came in.
    """
    series = target.series
    tail = _Tail(conn, site, series)
    if tail.latest is None and _carry_over(conn, site, series):
        tail = _Tail(conn, site, series)
    latest = tail.latest
    last = None if latest is None else latest[0]
    incoming: dict[int, float] = {}
    for s in new:
        t = ms(s.ts)
        incoming[t] = min(incoming.get(t, s.value), s.value)
    changed: dict[int, float] = {}
    if incoming:
        stored: dict[int, float] = {}
        if last is not None and min(incoming) <= last:  # in time order: nothing to compare
            stored = AccountingDB.stored_values(conn, site, series, min(incoming), max(incoming))
        changed = {t: v for t, v in incoming.items() if t not in stored or v < stored[t]}
    if not changed and since is None:
        return None  # nothing the accounting has not used already
    first = min([*changed, *([since] if since is not None else [])])
    before = tail.before(first)
    # The walk's amounts start at the good reading before the first new one; the walk
    # starts at the last reading at or before that minute, so that it also yields the
    # amounts that share the minute.
    first_minute = _floor_minute(first if before is None else before[2])
    start = tail.before(min(first_minute + 1, first))
    stored_after: Iterator[ReadingRow] = (
        iter(())  # it is the last kept: nothing after it
        if start is not None and start == latest
        else AccountingDB.readings_from(
            conn, site, series, first_minute if start is None else start[0] + 1
        )
    )
    swaps = [scaled(x, target.scale) for x in AccountingDB.swaps(conn, site, target.meter)]
    walker = Walker(
        None if start is None else state_of(start),
        target.spec,
        MAX_GAP,
        target.integrate,
        POWER_MAX_GAP,
        swaps,
    )
    # (asked for only when the walker judges a reading before any in line: rarely)
    seed = (lambda: []) if start is None else (lambda: _before(tail, start, walker))
    walked = _walk(_Measure(walker, seed, target), stored_after, changed, first, through)
    AccountingDB.save_readings(conn, site, series, walked.rows)
    _log_findings(series, walked.findings)
    # the findings of the readings walked replace those stored for them
    AccountingDB.drop_findings(conn, site, series, None if start is None else start[0], walked.end)
    recorded = [f for f in walked.findings if f.issue in RECORDED]
    if recorded:
        AccountingDB.put_findings(
            conn, site, [FindingRow(series, f, counted(walked.amounts, f)) for f in recorded]
        )
    end_minute = _end_minute(walked.end, through)
    rows = minute_rows(walked.amounts, target, first_minute, end_minute)
    minutes = AccountingDB.replace_minutes(conn, site, series, first_minute, end_minute, rows)
    late = sum(1 for t in changed if last is not None and t <= last)
    return Span(site, series, first_minute, end_minute, late, minutes)


@dataclass(slots=True)
class _Walked:
    rows: list[ReadingRow]
    """The readings whose state is new (to be saved)."""
    amounts: list[MsAmount]
    findings: list[Finding]
    end: int
    """The time of the reading the walk settled at."""


def _in_line(spec: CounterSpec, good_t: int, good_v: float, t: int, v: float) -> float | None:
    """The amount the walker measures from its good reading (none waiting after it) to
    the next reading when nothing but that amount comes of it: no gap, wrap or step (a
    swap between them is the caller's to rule out). None: the walker must judge it."""
    rise = v - good_v
    if rise < -spec.tolerance or t - good_t > MAX_GAP_MS:
        return None
    rise = max(rise, 0.0)
    return rise if spec.fits_seconds(rise, (t - good_t) / 1000) else None


class _Measure:
    """Readings, in time order, into amounts and the state after each.

    A reading in line with the good one before it (the bulk of any series) is measured
    here as the walker measures it, without the walker's objects; the walker gets the
    state back, with the amount that ended there, at the next reading it must judge (a
    walk may start at any reading's state: every pass does)."""

    def __init__(self, walker: Walker, seed: Callable[[], list[Amount]], target: Target) -> None:
        self.amounts: list[MsAmount] = []
        self.findings: list[Finding] = []
        self._walker = walker
        self._seed: Callable[[], list[Amount]] | None = seed
        """The amount that ended at the walker's good reading, until it is known."""
        self._spec = target.spec
        self._integrate = target.integrate
        self._swap_times = [ms(x.ts) for x in walker.swaps]
        state = walker.state
        # The good reading while none waits after it (a counter), else None.
        self._good: tuple[int, float] | None = None
        if not target.integrate and state is not None and state.pending is None:
            self._good = (ms(state.good.ts), state.good.value)
        self._behind = False
        """The walk ran in line past the walker's own state."""

    def __call__(self, t: int, value: float) -> ReadingRow:
        good = self._good
        if good is not None and not (
            self._swap_times and _swap_between(self._swap_times, good[0], t)
        ):
            amount = _in_line(self._spec, good[0], good[1], t, value)
            if amount is not None:
                self.amounts.append((good[0], t, amount, 0))
                # jitter within tolerance keeps the higher level
                self._good = good = (t, value) if value >= good[1] else (t, good[1])
                self._behind, self._seed = True, None
                return (t, value, t, good[1], None, None)
        walker = self._walker
        if self._behind:
            assert good is not None
            back = State(Sample(from_ms(good[0]), good[1]))
            walker = walker.resumed(back, [amount_of(self.amounts[-1])])
            self._behind = False
        elif self._seed is not None and walker.state is not None:
            walker = walker.resumed(walker.state, self._seed())
        self._walker, self._seed = walker, None
        step = walker.feed(Sample(from_ms(t), value))
        self.amounts.extend(ms_amount(a) for a in step.amounts)
        self.findings.extend(step.findings)
        row = reading_row(step.sample, step.state)
        self._good = (row[2], row[3]) if row[4] is None and not self._integrate else None
        return row


def _walk(
    measure: _Measure,
    stored: Iterator[ReadingRow],
    changed: dict[int, float],
    first: int,
    through: int | None,
) -> _Walked:
    """Walk the stored readings with the changed ones in their place: the readings from
    `first` whose state is new, every amount up to past the minutes the walk touches, and
    the time of the reading it settled at (a state as stored, with no change after it and
    `through` reached)."""
    out = _Walked([], measure.amounts, measure.findings, first)
    changes = deque(sorted(changed.items()))
    following = next(stored, None)
    settled: int | None = None
    settle_at = 0
    # The state before the reading is as stored: then so is the amount that ends at it,
    # which a hole after it is estimated from (a reading late before one that opened a
    # hole changes the estimate, not the states).
    as_before = True
    while changes or following is not None:
        old: ReadingRow | None = None
        if changes and (following is None or changes[0][0] <= following[0]):
            t, value = changes.popleft()
            if following is not None and following[0] == t:
                following = next(stored, None)
        else:
            assert following is not None
            old, following = following, next(stored, None)
            t, value = old[0], old[1]
        row = measure(t, value)
        same = old is not None and (row == old or t < first)
        if old is None:
            out.rows.append(row)
        elif settled is None and t >= first:
            if not same:
                out.rows.append(row)
            elif as_before and row[4] is None and not changes and (through is None or t >= through):
                settled = t  # every later state, and so every later amount, is as stored
                settle_at = _end_minute(settled, through)
        as_before = same
        if settled is None:
            out.end = max(out.end, t)
        elif row[4] is None and row[2] >= settle_at:
            break  # later amounts start at or after the good reading: past the minutes
    if settled is not None:
        out.end = settled
    return out


def _swap_between(swap_times: list[int], after: int, through: int) -> bool:
    """Whether a swap falls in (after, through]: the walker then starts a new counter."""
    i = bisect.bisect_right(swap_times, after)
    return i < len(swap_times) and swap_times[i] <= through


def _end_minute(end: int, through: int | None) -> int:
    """The end of the minutes a walk to `end` (and a recompute through `through`) replaces."""
    return _floor_minute(max(end, through or end)) + MINUTE_MS


def _carry_over(conn: sqlite3.Connection, site: str, series: str) -> bool:
    """A database from before readings were kept: its last good reading is the first kept
    (the out-of-line one after it, if any, is judged again by the next reading)."""
    old = AccountingDB.load_state(conn, site, series)
    if old is not None:
        AccountingDB.save_readings(conn, site, series, [reading_row(old.good, State(old.good))])
    return old is not None


def _floor_minute(t: int) -> int:
    return t - t % MINUTE_MS


def _log_findings(series: str, findings: Sequence[Finding]) -> None:
    for f in findings:
        if f.issue in (Issue.UNRESOLVED, Issue.GAP, Issue.CONFLICT):
            continue
        log.warning(
            f"counter {f.issue.value}",
            extra=fields(series=series, start=f.start.isoformat(), detail=f.detail),
        )


def counted(amounts: Sequence[MsAmount], f: Finding) -> float:
    """What the totals hold for a finding's interval."""
    start, end = ms(f.start), ms(f.end)
    return math.fsum(a[2] for a in amounts if a[0] == start and a[1] == end)


def ms_amount(a: Amount) -> MsAmount:
    return (ms(a.start), ms(a.end), a.value, int(a.quality))


def amount_of(a: MsAmount) -> Amount:
    return Amount(from_ms(a[0]), from_ms(a[1]), a[2], Quality(a[3]))


def minute_rows(
    amounts: Sequence[MsAmount], target: Target, first_ms: int, end_ms: int
) -> list[MinuteRow]:
    """The minutes in [first, end) the amounts make."""
    series, kgce = target.series, target.kgce_per_unit
    if target.hourly is None:
        kgco2 = target.kgco2_per_unit
        return [
            MinuteRow(series, minute, value, value * kgce, value * kgco2, quality)
            for minute, value, quality in allocate_ms(amounts, MINUTE_MS)
            if first_ms <= minute < end_ms
        ]
    return [
        MinuteRow(series, minute, value, value * kgce, value * target.kgco2_at(minute), quality)
        for minute, value, quality in allocate_ms(amounts, MINUTE_MS)
        if first_ms <= minute < end_ms
    ]
