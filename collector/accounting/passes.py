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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import numpy as np

from collector.accounting.core.counters import Finding, Issue, Sample
from collector.accounting.core.inline import Floats, Ints, Run, in_line, in_line_run
from collector.accounting.core.series import (
    Amount,
    MsAmount,
    MsAmounts,
    Quality,
    allocate_arrays,
    allocate_ms,
)
from collector.accounting.core.walk import State, Walker
from collector.accounting.db import (
    AccountingDB,
    FindingRow,
    KeptReadings,
    MinuteRow,
    Minutes,
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


POWER_MAX_GAP: Final = timedelta(minutes=2)


"""Power readings further apart are not integrated across."""


BULK_MIN: Final = 32
"""Kept readings in a row taken at once (numpy) rather than one by one: fewer cost more
as arrays than as Python numbers."""


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
    stored_after: Iterator[KeptReadings] = (
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
    amounts: MsAmounts | list[MsAmount]
    findings: list[Finding]
    end: int
    """The time of the reading the walk settled at."""


class _AmountLog:
    """A walk's amounts in time order: one at a time from the walker, whole runs of
    in-line readings as arrays."""

    def __init__(self) -> None:
        self._parts: list[MsAmounts] = []
        self._single: list[MsAmount] = []
        self.last: MsAmount | None = None

    def append(self, amount: MsAmount) -> None:
        self._single.append(amount)
        self.last = amount

    def extend(self, run: MsAmounts) -> None:
        if not len(run.start):
            return
        self._flush()
        self._parts.append(run)
        self.last = (int(run.start[-1]), int(run.end[-1]), float(run.value[-1]), 0)

    def result(self) -> MsAmounts | list[MsAmount]:
        """As arrays once there are many (a few cost more as arrays than as tuples)."""
        if not self._parts and len(self._single) < BULK_MIN:
            return self._single
        self._flush()
        if len(self._parts) == 1:
            return self._parts[0]
        return MsAmounts(
            *(np.concatenate([getattr(p, f) for p in self._parts]) for f in MsAmounts.__slots__)
        )

    def _flush(self) -> None:
        if self._single:
            self._parts.append(MsAmounts.of(self._single))
            self._single = []


class _Measure:
    """Readings, in time order, into amounts and the state after each.

    A reading in line with the good one before it (the bulk of any series) is measured
    here as the walker measures it (`core.inline`), without the walker's objects, one at
    a time or a run at once; the walker gets the state back, with the amount that ended
    there, at the next reading it must judge (a walk may start at any reading's state:
    every pass does)."""

    def __init__(self, walker: Walker, seed: Callable[[], list[Amount]], target: Target) -> None:
        self.amounts = _AmountLog()
        self.findings: list[Finding] = []
        self._walker = walker
        self._seed: Callable[[], list[Amount]] | None = seed
        """The amount that ended at the walker's good reading, until it is known."""
        self._spec = target.spec
        self._integrate = target.integrate
        self._swap_times = [ms(x.ts) for x in walker.swaps]
        state = walker.state
        # The good reading while none waits after it (a counter), else None.
        self.good: tuple[int, float] | None = None
        if not target.integrate and state is not None and state.pending is None:
            self.good = (ms(state.good.ts), state.good.value)
        self._behind = False
        """The walk ran in line past the walker's own state."""

    def __call__(self, t: int, value: float) -> ReadingRow:
        good = self.good
        if good is not None and not (
            self._swap_times and _swap_between(self._swap_times, good[0], t)
        ):
            amount = in_line(self._spec, good[0], good[1], t, value)
            if amount is not None:
                self.amounts.append((good[0], t, amount, 0))
                # jitter within tolerance keeps the higher level
                self.good = good = (t, value) if value >= good[1] else (t, good[1])
                self._behind, self._seed = True, None
                return (t, value, t, good[1], None, None)
        walker = self._walker
        if self._behind:
            assert good is not None and self.amounts.last is not None
            back = State(Sample(from_ms(good[0]), good[1]))
            walker = walker.resumed(back, [amount_of(self.amounts.last)])
            self._behind = False
        elif self._seed is not None and walker.state is not None:
            walker = walker.resumed(walker.state, self._seed())
        self._walker, self._seed = walker, None
        step = walker.feed(Sample(from_ms(t), value))
        for a in step.amounts:
            self.amounts.append(ms_amount(a))
        self.findings.extend(step.findings)
        row = reading_row(step.sample, step.state)
        self.good = (row[2], row[3]) if row[4] is None and not self._integrate else None
        return row

    def run(self, ts: Ints, values: Floats) -> Run:
        """The readings (in time order, after the good reading: the walk's state must
        have one) that lead in line, with the good value after each as `__call__` gives
        it reading by reading. None of them is measured until `take` says how many."""
        good = self.good
        assert good is not None
        if self._swap_times:
            # a reading at or after the next swap starts a new counter: the walker's
            n = bisect.bisect_right(self._swap_times, good[0])
            if n < len(self._swap_times):
                cut = int(np.searchsorted(ts, self._swap_times[n]))
                ts, values = ts[:cut], values[:cut]
        return in_line_run(self._spec, good[0], good[1], ts, values)

    def take(self, ts: Ints, run: Run, count: int) -> None:
        """Measure the first `count` readings of a run (`ts`: the times it was given)."""
        if not count:
            return
        good = self.good
        assert good is not None
        ts = ts[:count]
        starts = np.concatenate(([good[0]], ts[:-1]))
        self.amounts.extend(MsAmounts(starts, ts, run.amounts[:count], np.zeros(count, np.int64)))
        self.good = (int(ts[-1]), float(run.good[count - 1]))
        self._behind, self._seed = True, None


class _Walk:
    """Where a walk stands: the readings whose state is new, how far it went, and whether
    it settled (a state came out as stored, with no change after it and `through`
    reached: every later state, and so every later amount, is as stored)."""

    def __init__(self, measure: _Measure, first: int, through: int | None) -> None:
        self.measure, self.first, self.through = measure, first, through
        self.rows: list[ReadingRow] = []
        self.end = first
        self.settled: int | None = None
        self.end_minute = 0
        """Once settled: the walk goes on to the first good reading at or after this."""
        self.as_before = True
        """The state before the next reading is as stored: then so is the amount that
        ends at it, which a hole after it is estimated from (a reading late before one
        that opened a hole changes the estimate, not the states)."""

    def one(self, t: int, value: float, old: ReadingRow | None, changes: bool) -> bool:
        """Walk one reading (`old`: as kept; None: a changed one). Whether to stop."""
        row = self.measure(t, value)
        same = old is not None and (row == old or t < self.first)
        if old is None:
            self.rows.append(row)
        elif self.settled is None and t >= self.first:
            if not same:
                self.rows.append(row)
            elif self.as_before and row[4] is None and not changes and self._through(t):
                self._settle(t)
        self.as_before = same
        if self.settled is None:
            self.end = max(self.end, t)
            return False
        # later amounts start at or after the good reading: past the minutes
        return row[4] is None and row[2] >= self.end_minute

    def run(self, kept: KeptReadings, i: int, limit: int, changes: bool) -> tuple[int, bool]:
        """The kept readings [i, limit) that lead in line, walked at once as `one` walks
        them one by one: how many were taken, and whether to stop."""
        run = self.measure.run(kept.ts[i:limit], kept.value[i:limit])
        good, n = run.good, run.count
        if not n:
            return 0, False
        ts = kept.ts[i : i + n]
        # in line, the state after a reading is its own time and the good value, none
        # pending; a kept state of any other form reads -inf
        same = (ts < self.first) | (kept.good[i : i + n] == good)
        count, stop = n, False
        if self.settled is None:
            ripe = same & np.concatenate(([self.as_before], same[:-1])) & (ts >= self.first)
            ripe &= not changes
            if self.through is not None:
                ripe &= ts >= self.through
            hit = np.flatnonzero(ripe)
            upto = int(hit[0]) if hit.size else n
            for k in np.flatnonzero((ts[:upto] >= self.first) & ~same[:upto]).tolist():
                t = int(ts[k])
                self.rows.append((t, float(kept.value[i + k]), t, float(good[k]), None, None))
            if upto:
                self.end = max(self.end, int(ts[upto - 1]))
            if hit.size:
                self._settle(int(ts[upto]))
                past = np.flatnonzero(ts[upto + 1 :] >= self.end_minute)
                if past.size:
                    count, stop = upto + 2 + int(past[0]), True
        else:
            past = np.flatnonzero(ts >= self.end_minute)
            if past.size:
                count, stop = int(past[0]) + 1, True
        self.measure.take(ts, run, count)
        self.as_before = bool(same[count - 1])
        return count, stop

    def run_new(self, ts: Ints, values: Floats) -> int:
        """Readings not kept before that lead in line, walked at once as `one` walks
        them one by one: how many were taken (each one's state is new; no walk settles
        while readings not kept are still to come)."""
        run = self.measure.run(ts, values)
        count = run.count
        if not count:
            return 0
        self.rows.extend(
            (t, v, t, g, None, None)
            for t, v, g in zip(
                ts[:count].tolist(), values[:count].tolist(), run.good.tolist(), strict=True
            )
        )
        self.end = max(self.end, int(ts[count - 1]))
        self.measure.take(ts, run, count)
        self.as_before = False
        return count

    def walked(self) -> _Walked:
        end = self.end if self.settled is None else self.settled
        return _Walked(self.rows, self.measure.amounts.result(), self.measure.findings, end)

    def _through(self, t: int) -> bool:
        return self.through is None or t >= self.through

    def _settle(self, t: int) -> None:
        self.settled = t
        self.end_minute = _end_minute(t, self.through)


def _walk(
    measure: _Measure,
    stored: Iterator[KeptReadings],
    changed: dict[int, float],
    first: int,
    through: int | None,
) -> _Walked:
    """Walk the stored readings with the changed ones in their place: the readings from
    `first` whose state is new, every amount up to past the minutes the walk touches, and
    the time of the reading it settled at (a state as stored, with no change after it and
    `through` reached). Kept readings in line are walked a run at a time."""
    walk = _Walk(measure, first, through)
    order = sorted(changed)
    new_ts = np.array(order, np.int64)
    new_values = np.array([changed[t] for t in order], np.float64)
    j = 0  # the next changed reading
    kept, i = next(stored, None), 0
    while kept is not None or j < len(order):
        if kept is not None and i == len(kept):
            kept, i = next(stored, None), 0
            continue
        more = j < len(order)
        if measure.good is not None:
            at = (i, j)
            i, j, stop = _runs(walk, kept, i, new_ts, new_values, j)
            if stop:
                break
            if (i, j) != at:
                continue
        if more and (kept is None or order[j] <= kept.ts[i]):
            t, value = order[j], changed[order[j]]
            j += 1
            if kept is not None and kept.ts[i] == t:
                i += 1  # the changed reading takes the kept one's place
            stop = walk.one(t, value, None, j < len(order))
        else:
            assert kept is not None
            old = kept.row(i)
            i += 1
            stop = walk.one(old[0], old[1], old, more)
        if stop:
            break
    return walk.walked()


def _runs(
    walk: _Walk, kept: KeptReadings | None, i: int, new_ts: Ints, new_values: Floats, j: int
) -> tuple[int, int, bool]:
    """Walk a run at a time what leads in line: kept readings before the next changed
    one, else changed ones before the next kept one (a changed one at a kept one's time
    takes its place: walked one by one). Where the walk is then in both, and whether to
    stop."""
    more = j < len(new_ts)
    if kept is not None:
        limit = kept.index(int(new_ts[j])) if more else len(kept)
        if limit - i >= BULK_MIN:
            taken, stop = walk.run(kept, i, limit, more)
            if taken or stop:
                return i + taken, j, stop
    if more:
        limit = len(new_ts) if kept is None else int(np.searchsorted(new_ts, kept.ts[i]))
        if limit - j >= BULK_MIN:
            j += walk.run_new(new_ts[j:limit], new_values[j:limit])
    return i, j, False


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


def counted(amounts: MsAmounts | Sequence[MsAmount], f: Finding) -> float:
    """What the totals hold for a finding's interval."""
    start, end = ms(f.start), ms(f.end)
    if isinstance(amounts, MsAmounts):
        mine = (amounts.start == start) & (amounts.end == end)
        return math.fsum(amounts.value[mine].tolist())
    return math.fsum(a[2] for a in amounts if a[0] == start and a[1] == end)


def ms_amount(a: Amount) -> MsAmount:
    return (ms(a.start), ms(a.end), a.value, int(a.quality))


def amount_of(a: MsAmount) -> Amount:
    return Amount(from_ms(a[0]), from_ms(a[1]), a[2], Quality(a[3]))


def minute_rows(
    amounts: MsAmounts | Sequence[MsAmount], target: Target, first_ms: int, end_ms: int
) -> Minutes | list[MinuteRow]:
    """The minutes in [first, end) the amounts make."""
    if not isinstance(amounts, MsAmounts):
        series, per_unit = target.series, target.kgce_per_unit
        return [
            MinuteRow(series, minute, value, value * per_unit, value * target.kgco2_at(minute), q)
            for minute, value, q in allocate_ms(amounts, MINUTE_MS)
            if first_ms <= minute < end_ms
        ]
    b = allocate_arrays(amounts, MINUTE_MS)
    inside = (b.start >= first_ms) & (b.start < end_ms)
    minute, value, quality = b.start[inside], b.value[inside], b.quality[inside]
    kgce = value * target.kgce_per_unit
    if target.hourly is None:
        factors = (target.kgce_per_unit, target.kgco2_per_unit)
        return Minutes(minute, value, kgce, value * factors[1], quality, factors)
    kgco2 = value * np.array([target.kgco2_at(m) for m in minute.tolist()], np.float64)
    return Minutes(minute, value, kgce, kgco2, quality)
